"""The HTTP wrapper around twilio's client: timeouts, safe retries, error translation.

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

Translation at this boundary, most specific first:

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

import json
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from twilio.base.exceptions import (  # type: ignore[import-untyped]
    TwilioRestException,
    TwilioServiceException,
)
from twilio.http import HttpClient  # type: ignore[import-untyped]
from urllib3.exceptions import ConnectTimeoutError

from servio_twilio.domain.errors import (
    InvalidArgument,
    RateLimited,
    ServioTwilioError,
    TwilioAPIError,
)
from servio_twilio.domain.phone_text import mask_phone_numbers
from servio_twilio.sending.ratelimit import is_positive_number

__all__ = ["DEFAULT_POOL_SIZE", "NoAnswer", "RetryingHttpClient", "translate_twilio_error"]

DEFAULT_POOL_SIZE = 100
"""Connections per host the default HTTP client keeps (twilio's own: ``min(32, cpu + 4)``)."""

# Host pools the default client keeps (requests' default): Twilio's API is a handful of
# hosts (api.twilio.com and a few product hosts), far under this.
_POOL_HOSTS = 10

_log = logging.getLogger("servio_twilio.transport")


class _MaskPhoneNumbers(logging.Filter):
    """Masks the phone numbers in twilio's request log (it logs GET query parameters)."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        masked = mask_phone_numbers(text)
        if masked != text:
            record.msg, record.args = masked, None
        return True


# The default TwilioHttpClient logs here, a child of twilio's own logger, so hosts'
# logging of ``twilio.http_client`` still applies, with the numbers masked.
_twilio_http_log = logging.getLogger("twilio.http_client.servio_twilio")
_twilio_http_log.addFilter(_MaskPhoneNumbers())

_RATE_LIMIT_CODE = 20429
_DOCS_ERRORS = "https://www.twilio.com/docs/errors/"
_CHAIN_DEPTH = 8


class NoAnswer(TwilioAPIError):
    """The request may have reached Twilio but no answer came (status 0).

    Raised for a read timeout, a connection lost after the request was sent,
    or an answer cut short. Never retried: Twilio may have acted on it. The
    client turns it into `SendOutcomeUnknown` for sends.

    New in 0.1.0.
    """


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
        _check_positive("timeout", timeout)
        _check_positive("backoff_base", backoff_base)
        _check_positive("backoff_cap", backoff_cap)
        _check_positive("max_retry_after", max_retry_after)
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 0:
            raise InvalidArgument(f"max_retries must be an int >= 0, got {max_retries!r}")
        adapter: _PoolAdapter | None = None
        if inner is None:
            from twilio.http.http_client import (  # type: ignore[import-untyped]  # noqa: PLC0415
                TwilioHttpClient,
            )

            inner = TwilioHttpClient(timeout=timeout, logger=_twilio_http_log)
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
        self.max_retries = max_retries
        self.backoff_base = float(backoff_base)
        self.backoff_cap = float(backoff_cap)
        self.max_retry_after = float(max_retry_after)
        self._sleep = sleep
        self._jitter = jitter

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
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise InvalidArgument(f"size must be an int >= 1, got {size!r}")
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
        where = f"{method.upper()} {urlsplit(url).path}"
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
                kind = _classify(exc)
                name = type(exc).__name__
                if kind == "connect" and attempt < self.max_retries:
                    delay = self._backoff(attempt)
                    _log.warning(
                        "could not connect to Twilio for %s (%s); retry %d of %d in %.2fs",
                        where,
                        name,
                        attempt + 1,
                        self.max_retries,
                        delay,
                    )
                    self._sleep(delay)
                    attempt += 1
                    continue
                if kind == "connect":
                    raise TwilioAPIError(
                        f"could not connect to Twilio for {where} ({name}) "
                        f"after {attempt + 1} attempts",
                        retryable=True,
                    ) from exc
                if kind == "not_sent":
                    raise TwilioAPIError(f"request {where} not sent ({name})") from exc
                raise NoAnswer(
                    f"no answer from Twilio to {where} ({name}); it may have been processed"
                ) from exc
            if not _is_rate_limited(response):
                return response
            retry_after = _retry_after(response)
            if attempt >= self.max_retries or (
                retry_after is not None and retry_after > self.max_retry_after
            ):
                raise _rate_limited_error(response, retry_after, attempt + 1, where)
            delay = max(self._backoff(attempt), retry_after or 0.0)
            _log.warning(
                "Twilio rate-limited %s (429); retry %d of %d in %.2fs",
                where,
                attempt + 1,
                self.max_retries,
                delay,
            )
            self._sleep(delay)
            attempt += 1

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.backoff_cap, self.backoff_base * 2.0**attempt)
        return self._jitter() * ceiling


def translate_twilio_error(exc: BaseException) -> TwilioAPIError:
    """Our error for one of twilio's: `RateLimited` for a 429, else `TwilioAPIError`.

    Handles ``TwilioServiceException`` (RFC 9457 problem details),
    ``TwilioRestException`` and any other ``TwilioException``.

    New in 0.1.0.
    """
    if isinstance(exc, TwilioServiceException):
        status = _as_int(exc.status) or 0
        code = _as_int(exc.code)
        message = str(exc.title or "Twilio error")
        if exc.detail:
            message = f"{message}: {exc.detail}"
        more_info = str(exc.type) if exc.type else _more_info(code)
    elif isinstance(exc, TwilioRestException):
        status = _as_int(exc.status) or 0
        code = _as_int(exc.code)
        if code == status:
            code = None  # twilio fills in the HTTP status when the body had no code
        message = str(exc.msg or "Twilio error")
        prefix, sep, rest = message.partition(": ")
        if sep and prefix.startswith("Unable to ") and rest:
            message = rest  # twilio's "Unable to create record: " before Twilio's own message
        more_info = _more_info(code)
    else:
        return TwilioAPIError(f"Twilio client error: {type(exc).__name__}: {exc}")
    if status == 429 or code == _RATE_LIMIT_CODE:
        return RateLimited(message, status=status, code=code, more_info=more_info)
    return TwilioAPIError(message, status=status, code=code, more_info=more_info)


def _check_positive(name: str, value: object) -> None:
    if not is_positive_number(value):
        raise InvalidArgument(f"{name} must be a positive number of seconds, got {value!r}")


def _as_int(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def _more_info(code: int | None) -> str | None:
    return f"{_DOCS_ERRORS}{code}" if code is not None and code >= 10000 else None


def _classify(exc: BaseException) -> str:  # noqa: PLR0911 - one return per kind of failure
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
    """Whether urllib3's NewConnectionError / ConnectTimeoutError is in ``exc``'s chain."""
    pending: list[object] = [exc]
    seen: set[int] = set()
    while pending and len(seen) < _CHAIN_DEPTH * 4:
        item = pending.pop()
        if id(item) in seen or not isinstance(item, BaseException):
            continue
        seen.add(id(item))
        if isinstance(item, ConnectTimeoutError | ConnectionRefusedError):
            return True  # NewConnectionError and NameResolutionError subclass ConnectTimeoutError
        pending.extend(item.args)
        pending.extend((getattr(item, "reason", None), item.__cause__, item.__context__))
    return False


def _is_rate_limited(response: Any) -> bool:
    status = getattr(response, "status_code", 0)
    if status == 429:
        return True
    return bool(status >= 400 and _body(response).get("code") == _RATE_LIMIT_CODE)


def _body(response: Any) -> dict[str, Any]:
    try:
        payload = json.loads(response.text)
    except (TypeError, ValueError, AttributeError):
        return {}
    return payload if isinstance(payload, dict) else {}


def _header(response: Any, name: str) -> str | None:
    headers = getattr(response, "headers", None)
    if not headers:
        return None
    try:
        items = headers.items()
    except AttributeError:
        return None
    wanted = name.lower()
    for key, value in items:
        if isinstance(key, str) and key.lower() == wanted:
            return str(value)
    return None


def _retry_after(response: Any) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), or None."""
    raw = _header(response, "Retry-After")
    if raw is None:
        return None
    text = raw.strip()
    try:
        seconds = float(text)
    except ValueError:
        try:
            when = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = (when - datetime.now(UTC)).total_seconds()
    if not math.isfinite(seconds):
        return None
    return max(seconds, 0.0)


def _rate_limited_error(
    response: Any, retry_after: float | None, attempts: int, where: str
) -> RateLimited:
    body = _body(response)
    code = _as_int(body.get("code")) or _RATE_LIMIT_CODE
    message = str(body.get("message") or "Too Many Requests")
    more_info = body.get("more_info")
    return RateLimited(
        f"Twilio rate-limited {where} after {attempts} attempt(s): {message}",
        status=int(getattr(response, "status_code", 429)),
        code=code,
        more_info=str(more_info) if more_info else _more_info(code),
        retry_after=retry_after,
    )
