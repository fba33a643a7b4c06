"""Counting Firestore RPCs: a gRPC interceptor on the real client's channel.

`bench/firestore.py` and `tests/test_firestore_round_trips.py` (pytest puts
``bench/`` on its path) both count with it; benches never import ``tests/``.
"""

from __future__ import annotations

import threading
from collections import Counter
from typing import Any

import grpc


class RpcCounter(
    grpc.UnaryUnaryClientInterceptor,  # type: ignore[misc]
    grpc.UnaryStreamClientInterceptor,  # type: ignore[misc]
    grpc.StreamUnaryClientInterceptor,  # type: ignore[misc]
    grpc.StreamStreamClientInterceptor,  # type: ignore[misc]
):
    """Counts every RPC the channel makes, by method name (``Commit``, ``RunQuery``...)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.calls: list[str] = []

    def reset(self) -> None:
        """Forget the calls counted so far."""
        with self._lock:
            self.calls.clear()

    @property
    def total(self) -> int:
        """How many RPCs since the last reset."""
        with self._lock:
            return len(self.calls)

    def take(self) -> dict[str, int]:
        """The RPCs since the last reset, by method; counting starts again."""
        with self._lock:
            found = dict(Counter(self.calls))
            self.calls.clear()
        return found

    def _count(self, details: Any) -> None:
        with self._lock:
            self.calls.append(str(details.method).rsplit("/", 1)[-1])

    def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        self._count(details)
        return continuation(details, request)

    def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        self._count(details)
        return continuation(details, request)

    def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        self._count(details)
        return continuation(details, requests)

    def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        self._count(details)
        return continuation(details, requests)


def counted_client(project: str) -> tuple[Any, RpcCounter]:
    """A real ``google.cloud.firestore.Client`` on the emulator whose RPCs are counted."""
    from google.cloud import firestore  # noqa: PLC0415 - only where RPCs are counted

    client: Any = firestore.Client(project=project)
    counter = RpcCounter()
    open_channel = client._emulator_channel  # the one seam of the client's own channel

    def channel(transport: Any) -> Any:
        return grpc.intercept_channel(open_channel(transport), counter)

    client._emulator_channel = channel
    return client, counter
