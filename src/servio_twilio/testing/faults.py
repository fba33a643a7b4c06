"""`Fault`: the failures `FakeTwilio` injects, and what each one does at either seam.

An answer (a Twilio error, a 429, a 5xx) is the same at both seams; a
failure of the connection raises what the seam's HTTP library raises:
requests' exceptions at the sync seam, aiohttp's at the async one.
"""

from __future__ import annotations

from typing import Any, Literal
from urllib.parse import urlsplit

import attrs

from servio_twilio.testing.twilio_answers import error_response

__all__ = ["Fault", "FaultKind", "check_fault", "connection_refused", "fault_answer"]

FaultKind = Literal["error", "rate_limited", "server_error", "read_timeout", "connect_error"]


@attrs.frozen(kw_only=True)
class Fault:
    """One failure `FakeTwilio` can inject; build it with the class methods.

    New in 0.1.0.
    """

    kind: FaultKind
    status: int = 0
    code: int | None = None
    message: str | None = None
    retry_after: float | None = None

    @classmethod
    def error(cls, code: int = 21211, status: int = 400, message: str | None = None) -> Fault:
        """Twilio refuses with its error ``code`` and HTTP ``status`` (JSON body like Twilio's)."""
        return cls(kind="error", status=status, code=code, message=message)

    @classmethod
    def rate_limited(cls, retry_after: float | None = 1.0) -> Fault:
        """A 429 with code 20429 and, unless None, a ``Retry-After`` header (seconds)."""
        return cls(kind="rate_limited", status=429, code=20429, retry_after=retry_after)

    @classmethod
    def server_error(cls, status: int = 500, code: int = 20500) -> Fault:
        """A 5xx answer from Twilio."""
        return cls(kind="server_error", status=status, code=code)

    @classmethod
    def read_timeout(cls) -> Fault:
        """A read timeout, raised after the request is recorded and answered.

        Twilio acted on the request (a message or call created is kept by
        `FakeTwilio`); only its answer is lost.
        ``requests.exceptions.ReadTimeout`` on the sync seam,
        ``aiohttp.SocketTimeoutError`` on ``fake.aio``.
        """
        return cls(kind="read_timeout")

    @classmethod
    def connect_error(cls) -> Fault:
        """A refused connection, raised before the request is received (not recorded).

        ``requests.exceptions.ConnectionError`` on the sync seam,
        ``aiohttp.ClientConnectorError`` on ``fake.aio``.
        """
        return cls(kind="connect_error")


def check_fault(fault: object) -> None:
    """Raise TypeError unless ``fault`` is a `Fault`.

    New in 0.2.0.
    """
    if not isinstance(fault, Fault):
        raise TypeError(f"expected a Fault (FakeTwilio.Fault.error(...)), got {fault!r}")


def fault_answer(fault: Fault, url: str, *, is_async: bool) -> Any:
    """The answer ``fault`` gives to a received request, or the read timeout it raises.

    New in 0.2.0.
    """
    if fault.kind == "read_timeout":
        raise _read_timeout(url, is_async=is_async)
    if fault.kind == "rate_limited":
        headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
        return error_response(
            429, fault.code or 20429, fault.message or "Too Many Requests", headers
        )
    if fault.kind == "server_error":
        return error_response(
            fault.status, fault.code or 20500, fault.message or "Internal Server Error"
        )
    return error_response(
        fault.status, fault.code or 0, fault.message or f"Twilio error {fault.code}"
    )


def _read_timeout(url: str, *, is_async: bool) -> Exception:
    if is_async:
        import aiohttp  # noqa: PLC0415

        return aiohttp.SocketTimeoutError(f"Timeout on reading data from socket ({url})")
    import requests  # noqa: PLC0415

    return requests.exceptions.ReadTimeout(
        f"HTTPSConnectionPool(host='api.twilio.com', port=443): Read timed out. ({url})"
    )


def connection_refused(url: str, *, is_async: bool) -> Exception:
    """What the seam's HTTP library raises when ``url``'s host refuses the connection.

    New in 0.2.0.
    """
    if is_async:
        import aiohttp  # noqa: PLC0415
        from aiohttp.client_reqrep import ConnectionKey  # noqa: PLC0415

        parts = urlsplit(url)
        key = ConnectionKey(
            host=parts.hostname or "api.twilio.com",
            port=parts.port or 443,
            is_ssl=parts.scheme == "https",
            ssl=True,
            proxy=None,
            proxy_auth=None,
            proxy_headers_hash=None,
        )
        return aiohttp.ClientConnectorError(key, ConnectionRefusedError(111, "Connect call failed"))
    import requests  # noqa: PLC0415
    from urllib3.exceptions import MaxRetryError, NewConnectionError  # noqa: PLC0415

    refused = "Failed to establish a new connection: [Errno 111] Connection refused"
    reason = NewConnectionError(None, refused)  # type: ignore[arg-type]
    return requests.exceptions.ConnectionError(
        MaxRetryError(None, url, reason)  # type: ignore[arg-type]
    )
