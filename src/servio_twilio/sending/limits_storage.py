"""The ``limits`` storages behind the shared limits: built from a URI, errors translated.

`LimitsStorage` builds a storage of the ``limits`` package from its URI (the
blocking one at once, an async one per event loop), with 2-second Redis
timeouts by default; `unavailable` turns anything a storage raises into
`LimiterUnavailable`. Keys are stored as `storage_key` hashes, so no phone
number is written to the storage.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import urllib.parse
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Final

from servio_twilio.domain.errors import ConfigurationError, InvalidArgument, LimiterUnavailable
from servio_twilio.domain.phone_text import mask_phone_numbers

try:
    from limits import errors as limits_errors
    from limits.storage import storage_from_string
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "shared limits need the limits package: pip install 'servio-twilio[redis]'"
    ) from exc

if TYPE_CHECKING:
    import asyncio

__all__ = [
    "DEFAULT_REDIS_TIMEOUT",
    "LimitsStorage",
    "failure_detail",
    "shown_uri",
    "storage_key",
    "unavailable",
]

DEFAULT_REDIS_TIMEOUT: Final = 2.0
"""Seconds a Redis connection may take to connect, and a command to answer, by default."""
_REDIS_SCHEMES: Final = ("redis", "rediss", "valkey", "valkeys")
_log = logging.getLogger("servio_twilio.limits")


def shown_uri(uri: str) -> str:
    """``uri`` without user, password or query, for messages and reprs."""
    parts = urllib.parse.urlsplit(uri)
    host = parts.netloc.rsplit("@", 1)[-1]
    return f"{parts.scheme}://{host}{parts.path}"


def storage_key(key: str) -> str:
    """What a key is stored as: its hash, so no phone number is written to the storage."""
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def failure_detail(exc: BaseException) -> str:
    """What failed, for `LimiterUnavailable`: the storage's own error, bounded and masked."""
    inner = exc.storage_error if isinstance(exc, limits_errors.StorageError) else exc
    text = f"{type(inner).__name__}: {inner}"
    return mask_phone_numbers(text if len(text) <= 200 else text[:197] + "...")


class LimitsStorage:
    """One URI's ``limits`` storages: the blocking one, and one per event loop for async use.

    ``blocking`` is built at once (no I/O: a missing driver or unknown scheme
    fails here); the async one of each event loop on its first call
    (``limits.aio``; Redis through ``redis.asyncio``). ``memory://`` is
    called inline from async code: it never waits, and one count serves both.
    """

    def __init__(self, storage_uri: object, options: Mapping[str, Any] | None) -> None:
        if not isinstance(storage_uri, str):
            raise TypeError(f"storage_uri must be a str, not {type(storage_uri).__name__}")
        if options is not None and not isinstance(options, Mapping):
            raise TypeError("storage_options must be a mapping of keyword arguments")
        uri = storage_uri.strip().removeprefix("async+")
        self.scheme = urllib.parse.urlsplit(uri).scheme
        self.shown = shown_uri(uri)
        self.uri = uri
        self.inline = self.scheme == "memory"  # never waits: async calls run it inline
        settings: dict[str, Any] = dict(options or {})
        if self.scheme in _REDIS_SCHEMES or self.scheme.startswith(("redis+", "valkey+")):
            settings.setdefault("socket_connect_timeout", DEFAULT_REDIS_TIMEOUT)
            settings.setdefault("socket_timeout", DEFAULT_REDIS_TIMEOUT)
        self.options = settings
        self.blocking = self._build(uri, settings)
        self._async: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )
        self._lock = threading.Lock()

    def _build(self, uri: str, options: Mapping[str, Any]) -> Any:
        try:
            return storage_from_string(uri, wrap_exceptions=True, **options)
        except limits_errors.ConfigurationError as exc:
            raise ConfigurationError(
                f"cannot use the limits storage {self.shown}: {exc} (Redis needs "
                "pip install 'servio-twilio[redis]')"
            ) from exc
        except (TypeError, ValueError) as exc:
            raise InvalidArgument(f"malformed limits storage URI {self.shown}: {exc}") from exc

    def for_loop(self) -> Any:
        """The async storage of the running loop, or None when calls run in a thread."""
        import asyncio  # noqa: PLC0415 - only the async methods need it

        loop = asyncio.get_running_loop()
        with self._lock:
            if loop not in self._async:
                options = dict(self.options)
                if self.scheme in _REDIS_SCHEMES or self.scheme.startswith(("redis+", "valkey+")):
                    options.setdefault("implementation", "redispy")  # redis.asyncio, no coredis
                try:
                    built = storage_from_string(
                        f"async+{self.uri}", wrap_exceptions=True, **options
                    )
                except limits_errors.ConfigurationError:
                    built = None  # no async storage for this scheme: the blocking one, in a thread
                self._async[loop] = built
            return self._async[loop]

    async def aclose(self) -> None:
        """Close the connections the running loop's async storage opened (it is built anew)."""
        import asyncio  # noqa: PLC0415

        with self._lock:
            storage = self._async.pop(asyncio.get_running_loop(), None)
        client = getattr(getattr(storage, "bridge", None), "storage", None)
        close = getattr(client, "aclose", None)
        if close is not None:
            await close()

    def close(self) -> None:
        """Close the blocking storage's connections (a later call opens new ones)."""
        client = getattr(self.blocking, "storage", None)
        close = getattr(client, "close", None)
        if close is not None and not self.inline:
            close()

    async def call_async(self, sync: Callable[[], Any], run: Any) -> Any:
        """``run(async storage)`` on the loop; ``sync()`` inline (memory) or in a thread."""
        if self.inline:
            return sync()
        storage = self.for_loop()
        if storage is None:
            import asyncio  # noqa: PLC0415

            return await asyncio.to_thread(sync)
        return await run(storage)


def unavailable(key: str, exc: BaseException) -> LimiterUnavailable:
    """The `LimiterUnavailable` for ``key`` when the storage raised ``exc`` (logged, masked)."""
    detail = failure_detail(exc)
    _log.warning("shared limit storage failed; refusing the send (fail closed): %s", detail)
    return LimiterUnavailable(key, detail)
