"""Firestore's errors at our storage boundary: translated into ours, and bounded retries.

```
google.api_core.exceptions.AlreadyExists  -> DuplicateRecord
any other GoogleAPIError, grpc.RpcError,
google.auth.exceptions.GoogleAuthError    -> RepositoryError
```

Imports ``google.api_core`` and ``grpc``: only the Firestore backend imports it.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Iterator
from typing import Any, Final

import grpc
from google.api_core import exceptions as api_exceptions, retry as api_retry
from google.auth import exceptions as auth_exceptions

from servio_twilio.domain.errors import DuplicateRecord, RepositoryError, ServioTwilioError

__all__ = ["detail", "read_options", "storage_cause", "translated", "write_options"]

_log = logging.getLogger("servio_twilio.firestore")

_MAX_DETAIL: Final = 200
_STORAGE_ERRORS: Final = (
    api_exceptions.GoogleAPIError,
    grpc.RpcError,
    auth_exceptions.GoogleAuthError,
)


# Where an error that gave up retrying keeps the last error it saw.
_WRAPPED_ATTRIBUTES: Final = ("cause", "last_exc", "last_exception")

_TRANSIENT_WRITE_ERRORS: Final = (
    api_exceptions.ServiceUnavailable,
    api_exceptions.ResourceExhausted,
)
_TRANSIENT_READ_ERRORS: Final = (
    *_TRANSIENT_WRITE_ERRORS,
    api_exceptions.InternalServerError,
    api_exceptions.DeadlineExceeded,
)


def read_options(timeout: float | None, *, asynchronous: bool = False) -> dict[str, Any]:
    """``retry`` and ``timeout`` for one Firestore read (see `_call_options`).

    ``asynchronous``: for a call of ``google.cloud.firestore.AsyncClient``
    (its retries are ``AsyncRetry``).
    """
    return _call_options(timeout, _TRANSIENT_READ_ERRORS, asynchronous)


def write_options(timeout: float | None, *, asynchronous: bool = False) -> dict[str, Any]:
    """``retry`` and ``timeout`` for one Firestore write (see `_call_options`)."""
    return _call_options(timeout, _TRANSIENT_WRITE_ERRORS, asynchronous)


def _call_options(
    timeout: float | None, transient: tuple[type[Exception], ...], asynchronous: bool
) -> dict[str, Any]:
    """``retry`` and ``timeout`` for one Firestore call, retrying ``transient`` errors.

    The client's query stream re-runs a query whenever the retry predicate
    accepts the error, with no deadline of its own: the predicate here stops
    accepting once ``timeout`` seconds have passed, so a dead server fails
    the call in about ``timeout`` seconds instead of minutes.
    """
    if timeout is None:
        return {}
    deadline = time.monotonic() + timeout

    def predicate(exc: Exception) -> bool:
        return isinstance(exc, transient) and time.monotonic() < deadline

    kind = api_retry.AsyncRetry if asynchronous else api_retry.Retry
    policy = kind(predicate=predicate, initial=0.1, maximum=2.0, multiplier=2.0, timeout=timeout)
    return {"retry": policy, "timeout": timeout}


def detail(exc: BaseException) -> str:
    """What failed, without anything a credential could hide in.

    A ``RetryError`` (the client gave up retrying) is named by the error it
    gave up on, when that is a storage error: ``ServiceUnavailable: DNS
    resolution failed ... (Timeout of 5.0s exceeded)``, not only ``RetryError:
    Timeout of 5.0s exceeded``. Any other error it wraps is named by its type.
    """
    if isinstance(exc, api_exceptions.RetryError):
        inner = storage_cause(exc)
        if inner is not None and inner is not exc:
            note = f" ({exc.message})"
            return _cut(detail(inner), _MAX_DETAIL - len(note)) + note
        wrapped = _wrapped(exc)
        note = "" if wrapped is None else f" (last error: {type(wrapped).__name__})"
        return _cut(f"{type(exc).__name__}: {exc.message}", _MAX_DETAIL - len(note)) + note
    if isinstance(exc, api_exceptions.GoogleAPIError):
        message = getattr(exc, "message", None) or str(exc)
        text = f"{type(exc).__name__}: {message}"
    elif isinstance(exc, grpc.RpcError):
        code = exc.code() if isinstance(exc, grpc.Call) else None
        text = f"gRPC error {code.name if code is not None else type(exc).__name__}"
    else:
        text = type(exc).__name__
    return _cut(text, _MAX_DETAIL)


def _cut(text: str, size: int) -> str:
    """``text``, cut to at most ``size`` characters ending in ``...``."""
    return text if len(text) <= size else text[: max(size - 3, 0)] + "..."


def _wrapped(exc: BaseException) -> BaseException | None:
    """The error ``exc`` says it gave up on (a ``RetryError``'s ``cause``, a ``last_exc``)."""
    for name in _WRAPPED_ATTRIBUTES:
        inner = getattr(exc, name, None)
        if isinstance(inner, BaseException) and inner is not exc:
            return inner
    return None


def storage_cause(exc: BaseException) -> BaseException | None:
    """The first Firestore, gRPC or auth error behind ``exc``, if any.

    The chain is ``__cause__`` / ``__context__``; a ``RetryError`` is looked
    through to the error it gave up on (its ``cause``, or a ``last_exc``-style
    attribute), which is returned when it is a storage error itself.
    """
    seen: set[int] = set()
    retried: BaseException | None = None
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if isinstance(current, _STORAGE_ERRORS) and not isinstance(
            current, api_exceptions.RetryError
        ):
            return current
        if isinstance(current, api_exceptions.RetryError) and retried is None:
            retried = current
        current = _wrapped(current) or current.__cause__ or current.__context__
    return retried


@contextlib.contextmanager
def translated(operation: str) -> Iterator[None]:
    """Turn every Firestore, gRPC and auth error raised inside into ours."""
    try:
        yield
    except ServioTwilioError:
        raise
    except api_exceptions.AlreadyExists as exc:
        raise DuplicateRecord(f"Firestore {operation}: the record already exists") from exc
    except _STORAGE_ERRORS as exc:
        what = detail(exc)
        _log.warning("Firestore %s failed: %s", operation, what)
        raise RepositoryError(f"Firestore {operation} failed: {what}") from exc
