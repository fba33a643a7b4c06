"""The async HTTP wrapper around twilio's async seam: timeouts, safe retries, error translation.

`AsyncRetryingHttpClient` is `RetryingHttpClient` for ``twilio.http.AsyncHttpClient``:
the same keywords, the same rules (`servio_twilio.sending.http_rules`, one
`RetryPolicy` for both), awaited. It retries only what cannot have reached
Twilio or what Twilio did not process (429 / 20429 and failures to connect)
and nothing that may have: twilio's own ``aiohttp-retry`` defaults, which
retry 5xx answers to a POST, are never used. Its default inner client is
`AiohttpTwilioClient` (a session opened in the running loop, ``timeout`` on
every request, a pool sized for batches, closed by `aclose`).

aiohttp and asyncio errors are classified as requests' are, most specific first:

```
ClientSSLError (certificate, handshake), ServerFingerprintMismatch,
  InvalidURL                                   -> TwilioAPIError(status=0): never sent
ClientConnectorError (refused, DNS, proxy), ConnectionTimeoutError,
  ClientHttpProxyError                         -> retried, then TwilioAPIError(status=0, retryable)
ServerTimeoutError / SocketTimeoutError, asyncio.TimeoutError,
  ServerDisconnectedError, ClientPayloadError,
  any other ClientError                        -> NoAnswer (a TwilioAPIError, status 0)
anything else (a custom client's): ConnectionRefusedError in its chain -> retried, else NoAnswer
429 / 20429 past the retries                   -> RateLimited(retry_after=...)
```
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import random
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from twilio.http import AsyncHttpClient, HttpClient  # type: ignore[import-untyped]

from servio_twilio.domain.errors import ServioTwilioError
from servio_twilio.sending.aiohttp_client import AiohttpTwilioClient
from servio_twilio.sending.http_rules import (
    FailureKind,
    RetryPolicy,
    caused_by,
    check_pool_size,
    check_seconds,
    describe_request,
)

__all__ = ["AsyncRetryingHttpClient"]

_log = logging.getLogger("servio_twilio.transport")

_NEVER_SENT: tuple[type[BaseException], ...] = (
    aiohttp.ClientSSLError,
    aiohttp.ServerFingerprintMismatch,
    aiohttp.InvalidURL,
    aiohttp.NonHttpUrlClientError,
)
_CONNECT: tuple[type[BaseException], ...] = (
    aiohttp.ClientConnectorError,
    aiohttp.ConnectionTimeoutError,
    aiohttp.ClientHttpProxyError,
)


class AsyncRetryingHttpClient(AsyncHttpClient):  # type: ignore[misc]
    """A ``twilio.http.AsyncHttpClient`` that adds a timeout and safe retries to another one.

    ``inner`` is the client that does the HTTP: a new `AiohttpTwilioClient`
    when None, or any ``twilio.http.AsyncHttpClient`` (``is_async`` true),
    such as ``FakeTwilio().aio``. The one built when None keeps up to
    `DEFAULT_POOL_SIZE` connections, and more when `ensure_pool` asks; a
    given ``inner`` is used as it is. ``timeout`` (seconds) applies to every
    request that does not give its own. 429 answers and failures to connect
    are retried up to ``max_retries`` times, waiting with ``sleep`` (awaited:
    ``asyncio.sleep`` or any async callable) as `RetryingHttpClient` does.

    `aclose` (or ``async with``) closes ``inner``, a given one included.
    aiohttp and asyncio errors never leave it: see the module docstring.

    Raises:
        InvalidArgument: (a ``ValueError``) a number of seconds or ``max_retries`` out of range.
        TypeError: ``inner`` is not an async ``twilio.http.HttpClient``.

    New in 0.2.0.
    """

    def __init__(
        self,
        inner: Any = None,
        *,
        timeout: float = 10.0,
        max_retries: int = 3,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        backoff_base: float = 0.5,
        backoff_cap: float = 8.0,
        max_retry_after: float = 30.0,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        check_seconds("timeout", timeout)
        policy = RetryPolicy(
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_cap=backoff_cap,
            max_retry_after=max_retry_after,
            jitter=jitter,
        )
        owned: AiohttpTwilioClient | None = None
        if inner is None:
            inner = owned = AiohttpTwilioClient(timeout=timeout)
        elif not isinstance(inner, HttpClient):
            raise TypeError(
                f"http_client must be a twilio.http.AsyncHttpClient, not {type(inner).__name__}"
            )
        if not inner.is_async:
            raise TypeError("http_client must be asynchronous (is_async is False)")
        super().__init__(_log, True, timeout)
        self.inner = inner
        self.policy = policy
        self._owned = owned
        self._sleep = sleep

    def __repr__(self) -> str:
        return (
            f"<AsyncRetryingHttpClient inner={type(self.inner).__name__} "
            f"timeout={self.timeout:g} max_retries={self.max_retries}>"
        )

    @property
    def max_retries(self) -> int:
        """How many times a 429 or a failure to connect is retried (``policy.max_retries``)."""
        return self.policy.max_retries

    def ensure_pool(self, size: int) -> int | None:
        """Let the default HTTP client keep at least ``size`` connections.

        For callers that run up to ``size`` requests at once: past the pool,
        requests wait for a free connection. The pool only grows (from the
        next request on; requests under way finish on the old session).

        Returns the pool size now in effect, or None when ``inner`` was given
        by the caller (it is left alone).

        Raises:
            InvalidArgument: (a ``ValueError``) ``size`` is not an int >= 1.
        """
        check_pool_size(size)
        return None if self._owned is None else self._owned.ensure_pool(size)

    async def request(  # noqa: PLR0917 - twilio's AsyncHttpClient.request signature
        self,
        method: str,
        url: str,
        params: dict[str, object] | None = None,
        data: dict[str, object] | None = None,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Any:
        """Send one request through ``inner``, retrying what is safe to retry.

        Returns the final ``twilio.http.response.Response`` (any status but a
        429); raises `RateLimited`, `NoAnswer` or `TwilioAPIError`.
        """
        where = describe_request(method, url)
        attempt = 0
        while True:
            try:
                response = await self.inner.request(
                    method,
                    url,
                    params=params,
                    data=data,
                    headers=headers,
                    auth=auth,
                    timeout=self.timeout if timeout is None else timeout,
                    allow_redirects=allow_redirects,
                )
            except ServioTwilioError:
                raise
            except Exception as exc:
                delay = self.policy.delay_after_failure(exc, _classify(exc), attempt, where)
            else:
                answered = self.policy.delay_after_answer(response, attempt, where)
                if answered is None:
                    return response
                delay = answered
            await self._sleep(delay)
            attempt += 1

    async def aclose(self) -> None:
        """Close ``inner`` (its ``aclose()``, else its ``close()``); a later request reopens it."""
        close = getattr(self.inner, "aclose", None) or getattr(self.inner, "close", None)
        if close is None:
            return
        result = close()
        if inspect.isawaitable(result):
            await result

    async def __aenter__(self) -> AsyncRetryingHttpClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()


def _classify(exc: BaseException) -> FailureKind:
    """``connect`` (nothing sent, retry), ``not_sent`` (do not retry) or ``no_answer``."""
    if isinstance(exc, _NEVER_SENT):  # before _CONNECT: ClientSSLError is a ClientConnectorError
        return "not_sent"
    if isinstance(exc, _CONNECT):
        return "connect"
    if isinstance(exc, aiohttp.ClientError | asyncio.TimeoutError):
        return "no_answer"  # ServerTimeoutError, ServerDisconnectedError, ClientPayloadError...
    if caused_by(exc, (ConnectionRefusedError, *_CONNECT)) and not caused_by(exc, _NEVER_SENT):
        return "connect"
    return "no_answer"  # an unknown failure of a custom client: assume the worst
