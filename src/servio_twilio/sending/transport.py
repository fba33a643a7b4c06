"""The sync HTTP wrapper around twilio's client: timeouts, safe retries, error translation.

twilio's ``TwilioHttpClient`` turns every non-2xx answer into an exception
that has lost the response headers, so ``Retry-After`` cannot be read above
it. `RetryingHttpClient` sits between the twilio REST client and the real
HTTP client, where the raw ``twilio.http.response.Response`` is visible, and
retries only what cannot have reached Twilio or what Twilio did not process:

- an answer of 429 (or a body with Twilio error code 20429): never processed;
- a failure to connect (DNS, refused connection, connect timeout, proxy):
  nothing was sent.

Nothing that may have reached Twilio is retried: a read timeout, a connection
lost after the request went out, a truncated answer raise `NoAnswer`, which
the client records as ``unknown`` and raises as `SendOutcomeUnknown`.

The rules live in `servio_twilio.sending.http_rules` (shared with the async
wrapper); this module runs them over requests and classifies its errors,
most specific first:

```
requests ConnectTimeout, ProxyError,
  ConnectionError caused by NewConnectionError  -> retried, then TwilioAPIError(status=0, retryable)
requests ReadTimeout, ChunkedEncodingError,
  any other ConnectionError                     -> NoAnswer (a TwilioAPIError, status 0)
other requests errors (bad URL, TLS)            -> TwilioAPIError(status=0)
429 / 20429 past the retries                    -> RateLimited(retry_after=...)
TwilioServiceException, TwilioRestException     -> TwilioAPIError, RateLimited
```
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import requests
from requests.adapters import HTTPAdapter
from twilio.http import HttpClient  # type: ignore[import-untyped]
from urllib3.exceptions import ConnectTimeoutError

from servio_twilio.domain.errors import ServioTwilioError
from servio_twilio.sending.http_rules import (
    DEFAULT_POOL_SIZE,
    FailureKind,
    NoAnswer,
    RetryPolicy,
    caused_by,
    check_pool_size,
    check_seconds,
    describe_request,
    translate_twilio_error,
    twilio_http_log,
)

__all__ = ["DEFAULT_POOL_SIZE", "NoAnswer", "RetryingHttpClient", "translate_twilio_error"]

# Host pools the default client keeps (requests' default): Twilio's API is a handful of
# hosts (api.twilio.com and a few product hosts), far under this.
_POOL_HOSTS = 10

_log = logging.getLogger("servio_twilio.transport")


class _PoolAdapter(HTTPAdapter):
    """requests' ``HTTPAdapter`` whose connection pool can grow while it is in use."""

    def __init__(self, *, hosts: int, maxsize: int) -> None:
        super().__init__(pool_connections=hosts, pool_maxsize=maxsize)
        self.hosts = hosts
        self.maxsize = maxsize

    def grow(self, maxsize: int) -> None:
        """Build a pool manager keeping ``maxsize`` connections per host; close the old idle ones.

        Requests under way keep the old manager's connection until they end, and
        then close it (a closed urllib3 pool takes nothing back). The swap is one
        attribute assignment, so it is safe while other threads send.
        """
        old, old_proxies = self.poolmanager, self.proxy_manager
        self.init_poolmanager(self.hosts, maxsize)
        self.maxsize = maxsize
        self.proxy_manager = {}
        old.clear()
        for manager in old_proxies.values():
            manager.clear()


class RetryingHttpClient(HttpClient):  # type: ignore[misc]
    """A ``twilio.http.HttpClient`` that adds a timeout and safe retries to another one.

    ``inner`` is the client that does the HTTP (a new
    ``twilio.http.http_client.TwilioHttpClient`` when None, or any
    ``twilio.http.HttpClient``, such as `servio_twilio.testing.FakeTwilio`).
    The one built when None keeps up to `DEFAULT_POOL_SIZE` connections to each
    host, and more when `ensure_pool` asks; a given ``inner`` is used as it is.
    ``timeout`` (seconds) applies to every request that does not give its own.
    429 answers and failures to connect are retried up to ``max_retries``
    times, waiting with ``sleep`` for a capped exponential backoff with full
    jitter (``backoff_base * 2**n`` seconds, at most ``backoff_cap``) or for
    Twilio's ``Retry-After`` when longer; a ``Retry-After`` above
    ``max_retry_after`` is not waited for: `RateLimited` is raised at once.

    Requests errors never leave it: see the module docstring.

    New in 0.1.0.
    """

    def __init__(
        self,
        inner: Any = None,
        *,
        timeout: float = 10.0,
        max_retries: int = 3,
        sleep: Callable[[float], object] = time.sleep,
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
        adapter: _PoolAdapter | None = None
        if inner is None:
            from twilio.http.http_client import (  # type: ignore[import-untyped]  # noqa: PLC0415
                TwilioHttpClient,
            )

            inner = TwilioHttpClient(timeout=timeout, logger=twilio_http_log)
            adapter = _PoolAdapter(hosts=_POOL_HOSTS, maxsize=DEFAULT_POOL_SIZE)
            inner.session.mount("https://", adapter)
        elif not isinstance(inner, HttpClient):
            raise TypeError(
                f"http_client must be a twilio.http.HttpClient, not {type(inner).__name__}"
            )
        if inner.is_async:
            raise TypeError("http_client must be synchronous (is_async is True)")
        super().__init__(_log, False, timeout)
        self._adapter = adapter
        self._pool_lock = threading.Lock()
        self.inner = inner
        self.policy = policy
        self._sleep = sleep

    @property
    def max_retries(self) -> int:
        """How many times a 429 or a failure to connect is retried (``policy.max_retries``)."""
        return self.policy.max_retries

    def __repr__(self) -> str:
        return (
            f"<RetryingHttpClient inner={type(self.inner).__name__} timeout={self.timeout:g} "
            f"max_retries={self.max_retries}>"
        )

    def ensure_pool(self, size: int) -> int | None:
        """Let the default HTTP client keep at least ``size`` connections to each host.

        For callers that run up to ``size`` requests at once (`send_batch` with
        its ``max_concurrency``): with a smaller pool urllib3 logs "Connection
        pool is full, discarding connection" and the next requests reconnect.
        The pool only grows; growing it closes the idle connections of the
        smaller one (requests under way finish on theirs). Thread-safe.

        Returns the pool size now in effect, or None when ``inner`` was given
        by the caller (it is left alone).

        Raises:
            InvalidArgument: (a ``ValueError``) ``size`` is not an int >= 1.
        """
        check_pool_size(size)
        adapter = self._adapter
        if adapter is None:
            return None
        with self._pool_lock:
            if size > adapter.maxsize:
                adapter.grow(size)
            return adapter.maxsize

    def request(  # noqa: PLR0917 - twilio's HttpClient.request signature
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
                response = self.inner.request(
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
            self._sleep(delay)
            attempt += 1


def _classify(exc: BaseException) -> FailureKind:  # noqa: PLR0911 - one return per kind of failure
    """``connect`` (nothing sent, retry), ``not_sent`` (do not retry) or ``no_answer``."""
    if isinstance(exc, requests.exceptions.ConnectTimeout | requests.exceptions.ProxyError):
        return "connect"
    if isinstance(exc, requests.exceptions.SSLError):
        return "not_sent"
    if isinstance(exc, requests.exceptions.ConnectionError):
        return "connect" if _caused_by_connect_failure(exc) else "no_answer"
    if isinstance(
        exc,
        requests.exceptions.Timeout
        | requests.exceptions.ChunkedEncodingError
        | requests.exceptions.ContentDecodingError,
    ):
        return "no_answer"
    if isinstance(exc, requests.exceptions.RequestException):
        return "not_sent"  # InvalidURL, MissingSchema, InvalidHeader...: raised before sending
    if _caused_by_connect_failure(exc):
        return "connect"
    return "no_answer"  # an unknown failure of a custom client: assume the worst


def _caused_by_connect_failure(exc: BaseException) -> bool:
    # NewConnectionError and NameResolutionError subclass ConnectTimeoutError
    return caused_by(exc, (ConnectTimeoutError, ConnectionRefusedError))
