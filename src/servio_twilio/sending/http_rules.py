"""The retry rules both HTTP wrappers follow, with no I/O: when to retry, how long to wait.

`RetryingHttpClient` (sync, requests) and `AsyncRetryingHttpClient` (asyncio,
aiohttp) each run a loop of a few lines of I/O; every decision in it is made
here, once (the sans-IO shape of h11: one set of rules, two drivers):

- an answer: `RetryPolicy.delay_after_answer` returns None (hand it back),
  or the wait before retrying a 429 / 20429, or raises `RateLimited` past
  the retries or for a ``Retry-After`` over ``max_retry_after``;
- a failure, once its driver has classified it (`FailureKind`):
  `RetryPolicy.delay_after_failure` returns the wait before retrying a
  failure to connect, or raises our error: `TwilioAPIError` (retryable) for
  connect failures past the retries, `TwilioAPIError` for a request never
  sent, `NoAnswer` for anything that may have reached Twilio.

`translate_twilio_error` turns twilio's own exceptions into ours.
"""

from __future__ import annotations

import json
import logging
import math
import random
from collections.abc import Callable
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any, Literal
from urllib.parse import urlsplit

import attrs
from twilio.base.exceptions import (  # type: ignore[import-untyped]
    TwilioRestException,
    TwilioServiceException,
)

from servio_twilio.domain.errors import InvalidArgument, RateLimited, TwilioAPIError
from servio_twilio.domain.phone_text import mask_phone_numbers
from servio_twilio.sending.ratelimit import is_positive_number

__all__ = [
    "DEFAULT_POOL_SIZE",
    "FailureKind",
    "NoAnswer",
    "RetryPolicy",
    "caused_by",
    "check_pool_size",
    "check_seconds",
    "describe_request",
    "is_rate_limited",
    "retry_after_seconds",
    "translate_twilio_error",
    "twilio_http_log",
]

DEFAULT_POOL_SIZE = 100
"""Connections per host the default HTTP clients keep (twilio's own: ``min(32, cpu + 4)``)."""

FailureKind = Literal["connect", "not_sent", "no_answer"]
"""What a failed attempt means: nothing sent (retry), never sent (do not), or maybe sent."""

_RATE_LIMIT_CODE = 20429
_DOCS_ERRORS = "https://www.twilio.com/docs/errors/"
_CHAIN_DEPTH = 8

_log = logging.getLogger("servio_twilio.transport")


class _MaskPhoneNumbers(logging.Filter):
    """Masks the phone numbers in twilio's request log (it logs GET query parameters)."""

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        masked = mask_phone_numbers(text)
        if masked != text:
            record.msg, record.args = masked, None
        return True


twilio_http_log = logging.getLogger("twilio.http_client.servio_twilio")
"""Where the default HTTP clients log each request, numbers masked.

A child of twilio's own ``twilio.http_client`` logger, so hosts' logging of
it still applies.
"""
twilio_http_log.addFilter(_MaskPhoneNumbers())


class NoAnswer(TwilioAPIError):
    """The request may have reached Twilio but no answer came (status 0).

    Raised for a read timeout, a connection lost after the request was sent,
    or an answer cut short. Never retried: Twilio may have acted on it. The
    client turns it into `SendOutcomeUnknown` for sends.

    New in 0.1.0.
    """


def check_seconds(name: str, value: object) -> None:
    """Raise `InvalidArgument` unless ``value`` is a positive finite number.

    New in 0.2.0.
    """
    if not is_positive_number(value):
        raise InvalidArgument(f"{name} must be a positive number of seconds, got {value!r}")


def check_pool_size(size: object) -> int:
    """``size`` when it is an int >= 1; else raise `InvalidArgument`.

    New in 0.2.0.
    """
    if isinstance(size, bool) or not isinstance(size, int) or size < 1:
        raise InvalidArgument(f"size must be an int >= 1, got {size!r}")
    return size


def _check_retries(instance: object, attribute: attrs.Attribute[int], value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise InvalidArgument(f"max_retries must be an int >= 0, got {value!r}")


def _check_seconds(instance: object, attribute: attrs.Attribute[float], value: object) -> None:
    check_seconds(attribute.name, value)


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How many times, and after how long, a request is tried again.

    429 answers (or Twilio code 20429) and failures to connect are retried up
    to ``max_retries`` times after a capped exponential backoff with full
    jitter (``jitter() * min(backoff_cap, backoff_base * 2**n)`` seconds), or
    after Twilio's ``Retry-After`` when longer; a ``Retry-After`` over
    ``max_retry_after`` is not waited for. ``attempt`` counts from 0.

    Raises:
        InvalidArgument: (a ``ValueError``) a count or a number of seconds out of range.

    New in 0.2.0.
    """

    max_retries: int = attrs.field(default=3, validator=_check_retries)
    backoff_base: float = attrs.field(default=0.5, validator=_check_seconds)
    backoff_cap: float = attrs.field(default=8.0, validator=_check_seconds)
    max_retry_after: float = attrs.field(default=30.0, validator=_check_seconds)
    jitter: Callable[[], float] = attrs.field(default=random.random, eq=False, repr=False)

    def backoff(self, attempt: int) -> float:
        """The wait before retry number ``attempt + 1``, jitter applied."""
        return self.jitter() * min(self.backoff_cap, self.backoff_base * 2.0**attempt)

    def delay_after_answer(self, response: Any, attempt: int, where: str) -> float | None:
        """None to hand ``response`` back; else how long to wait before retrying its 429.

        Raises:
            RateLimited: past ``max_retries``, or ``Retry-After`` over ``max_retry_after``.
        """
        if not is_rate_limited(response):
            return None
        retry_after = retry_after_seconds(response)
        if attempt >= self.max_retries or (
            retry_after is not None and retry_after > self.max_retry_after
        ):
            raise _rate_limited_error(response, retry_after, attempt + 1, where)
        delay = max(self.backoff(attempt), retry_after or 0.0)
        _log.warning(
            "Twilio rate-limited %s (429); retry %d of %d in %.2fs",
            where,
            attempt + 1,
            self.max_retries,
            delay,
        )
        return delay

    def delay_after_failure(
        self, exc: BaseException, kind: FailureKind, attempt: int, where: str
    ) -> float:
        """How long to wait before retrying a failure to connect; our error for anything else.

        Call it in the ``except`` block that caught ``exc``: the error raised
        chains it (``raise ... from exc``).

        Raises:
            TwilioAPIError: ``connect`` past the retries (retryable), or ``not_sent``.
            NoAnswer: ``no_answer``: the request may have reached Twilio.
        """
        name = type(exc).__name__
        if kind == "connect" and attempt < self.max_retries:
            delay = self.backoff(attempt)
            _log.warning(
                "could not connect to Twilio for %s (%s); retry %d of %d in %.2fs",
                where,
                name,
                attempt + 1,
                self.max_retries,
                delay,
            )
            return delay
        if kind == "connect":
            raise TwilioAPIError(
                f"could not connect to Twilio for {where} ({name}) after {attempt + 1} attempts",
                retryable=True,
            ) from exc
        if kind == "not_sent":
            raise TwilioAPIError(f"request {where} not sent ({name})") from exc
        raise NoAnswer(
            f"no answer from Twilio to {where} ({name}); it may have been processed"
        ) from exc


def describe_request(method: str, url: str) -> str:
    """``"POST /2010-04-01/..."``: how logs and errors name a request (no query, no host).

    New in 0.2.0.
    """
    return f"{method.upper()} {urlsplit(url).path}"


def caused_by(exc: BaseException, types: tuple[type[BaseException], ...]) -> bool:
    """Whether an exception of ``types`` is in ``exc``'s chain (causes, contexts, args, reason).

    New in 0.2.0.
    """
    pending: list[object] = [exc]
    seen: set[int] = set()
    while pending and len(seen) < _CHAIN_DEPTH * 4:
        item = pending.pop()
        if id(item) in seen or not isinstance(item, BaseException):
            continue
        seen.add(id(item))
        if isinstance(item, types):
            return True
        pending.extend(item.args)
        pending.extend((getattr(item, "reason", None), item.__cause__, item.__context__))
    return False


def is_rate_limited(response: Any) -> bool:
    """A 429, or an error answer whose body carries Twilio's code 20429.

    New in 0.2.0.
    """
    status = getattr(response, "status_code", 0)
    if status == 429:
        return True
    return bool(status >= 400 and _body(response).get("code") == _RATE_LIMIT_CODE)


def retry_after_seconds(response: Any) -> float | None:
    """``Retry-After`` in seconds (delta-seconds or an HTTP date), or None.

    New in 0.2.0.
    """
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
