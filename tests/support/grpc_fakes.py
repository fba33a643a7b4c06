"""A raw gRPC error, as the transport below google's API wrappers raises it."""

from __future__ import annotations

from typing import Any

import grpc


class RpcCall(grpc.RpcError, grpc.Call):  # type: ignore[misc]
    """A ``grpc.RpcError`` that is also a ``grpc.Call``, with a status code and details."""

    def __init__(
        self,
        code: grpc.StatusCode = grpc.StatusCode.UNAVAILABLE,
        details: str = "connection refused",
    ) -> None:
        super().__init__(details)
        self._code = code
        self._details = details

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._details

    def initial_metadata(self) -> Any:
        return None

    def trailing_metadata(self) -> Any:
        return None

    def is_active(self) -> bool:
        return False

    def time_remaining(self) -> Any:
        return None

    def cancel(self) -> bool:
        return False

    def add_callback(self, callback: Any) -> bool:
        return False
