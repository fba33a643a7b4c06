"""Counting Firestore RPCs: a gRPC interceptor on the real client's channel.

`counted_client` counts a ``google.cloud.firestore.Client`` (a sync channel
wrapped by ``grpc.intercept_channel``), `counted_async_client` an
``AsyncClient`` (a ``grpc.aio`` channel opened with the counter's
interceptors: ``grpc.aio`` takes them only when the channel is made).

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
        method = details.method  # bytes on a grpc.aio channel
        name = method.decode() if isinstance(method, bytes) else str(method)
        with self._lock:
            self.calls.append(name.rsplit("/", 1)[-1])

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

    def aio_interceptors(self) -> list[grpc.aio.ClientInterceptor]:
        """Interceptors for a ``grpc.aio`` channel counting into this counter, one per RPC kind.

        (``grpc.aio`` files each interceptor under the first kind it is, so
        one object cannot serve all four.)
        """
        return [
            _AioUnaryUnary(self),
            _AioUnaryStream(self),
            _AioStreamUnary(self),
            _AioStreamStream(self),
        ]


class _AioCounting:
    def __init__(self, counter: RpcCounter) -> None:
        self.counter = counter


class _AioUnaryUnary(_AioCounting, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        self.counter._count(details)
        return await continuation(details, request)


class _AioUnaryStream(_AioCounting, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        self.counter._count(details)
        return await continuation(details, request)


class _AioStreamUnary(_AioCounting, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        self.counter._count(details)
        return await continuation(details, requests)


class _AioStreamStream(_AioCounting, grpc.aio.StreamStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_stream(self, continuation: Any, details: Any, requests: Any) -> Any:
        self.counter._count(details)
        return await continuation(details, requests)


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


def counted_async_client(project: str) -> tuple[Any, RpcCounter]:
    """A real ``google.cloud.firestore.AsyncClient`` on the emulator whose RPCs are counted.

    Its channel opens on the event loop of its first call, as the client's own would.
    """
    from google.cloud import firestore  # noqa: PLC0415 - only where RPCs are counted
    from google.cloud.firestore_v1 import base_client  # noqa: PLC0415

    client: Any = firestore.AsyncClient(project=project)
    counter = RpcCounter()
    # The options the client's own emulator channel gets (the token "owner", message sizes).
    options = [("Authorization", "Bearer owner"), *base_client._GRPC_MSG_SIZE_OPTIONS]

    def channel(transport: Any) -> Any:
        return grpc.aio.insecure_channel(
            client._emulator_host, options=options, interceptors=counter.aio_interceptors()
        )

    client._emulator_channel = channel
    return client, counter
