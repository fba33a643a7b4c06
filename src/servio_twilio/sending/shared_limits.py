"""Limits shared by every process and instance: counts kept in Redis (or any ``limits`` storage).

`SharedSendLimiter` is the per-prospect cap of `InMemorySendLimiter` (a
sliding window per key) with its counts in a storage of the ``limits``
package, so every instance of a service counts the same sends.
`SharedRateLimit` is a send rate shared the same way: takes are paced
``1 / per_second`` apart across all processes, as a `TokenBucket` paces one.

Storages are named by URI: ``redis://host:6379/0``, ``rediss://`` (TLS, as
Memorystore for Redis with in-transit encryption), ``memcached://``,
``mongodb://``, or ``memory://`` (this process only, for tests). Redis needs
``pip install 'servio-twilio[redis]'``; the async methods use ``redis.asyncio``
through ``limits.aio``.

Both fail closed: when the storage cannot be reached or answers an error,
they raise `LimiterUnavailable` (a `SendLimitExceeded`), so nothing is sent
unchecked; no exception of ``redis`` or ``limits`` reaches the caller. A
Redis connection gets 2-second connect and read timeouts unless the
``storage_options`` say otherwise.
"""

from __future__ import annotations

import math
import time
from collections.abc import Awaitable, Callable, Iterator, Mapping
from typing import Any, Final

from servio_twilio.domain.errors import InvalidArgument, LimiterUnavailable
from servio_twilio.sending.limits_storage import (
    DEFAULT_REDIS_TIMEOUT,
    LimitsStorage,
    storage_key,
    unavailable,
)
from servio_twilio.sending.ratelimit import is_positive_int, is_positive_number

try:
    import limits
    from limits import strategies
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "shared limits need the limits package: pip install 'servio-twilio[redis]'"
    ) from exc

__all__ = ["DEFAULT_REDIS_TIMEOUT", "SharedRateLimit", "SharedSendLimiter"]

_MAX_WINDOWS: Final = 3600  # a taker looks at most this many seconds ahead for a free slot
_KEY_TTL_MARGIN: Final = 60
_NAMESPACE: Final = "servio-twilio"


class SharedSendLimiter:
    """At most ``max_sends`` sends per key in any ``per_seconds`` window, counted in shared storage.

    A `SendLimiter` (and `AsyncSendLimiter`) like `InMemorySendLimiter`, with
    the same answers: ``try_acquire(key)`` counts the send and returns None,
    or refuses without counting and returns the seconds until the oldest
    counted send leaves the window. The client's key is the prospect id, or
    ``"to:<E.164 number>"`` for a send without one; keys are stored hashed.
    The window is ``limits``' moving window: exact, one list of timestamps
    per key, checked and appended in one atomic step (a Lua script on
    Redis). Processes share it through ``storage_uri``; their clocks should
    agree (NTP), as the window is measured on each caller's wall clock.

    ``per_seconds`` is a whole number of seconds (``limits`` counts in
    seconds). ``storage_options`` are passed to the ``limits`` storage (for
    Redis, to ``redis.Redis``: ``socket_timeout``, ``ssl_ca_certs``...).

    Raises:
        InvalidArgument: (a ``ValueError``) ``max_sends`` below 1, ``per_seconds``
            not a whole number of seconds >= 1, a malformed URI.
        ConfigurationError: an unknown storage scheme, or its driver is missing.
        LimiterUnavailable: (from the methods) the storage failed: nothing counted.

    New in 0.2.0.
    """

    def __init__(
        self,
        storage_uri: str,
        *,
        max_sends: int = 10,
        per_seconds: int = 60,
        storage_options: Mapping[str, Any] | None = None,
    ) -> None:
        if not is_positive_int(max_sends):
            raise InvalidArgument(f"max_sends must be an int >= 1, got {max_sends!r}")
        if not (
            is_positive_number(per_seconds) and float(per_seconds).is_integer() and per_seconds >= 1
        ):
            raise InvalidArgument(
                f"per_seconds must be a whole number of seconds >= 1, got {per_seconds!r}"
            )
        self.max_sends = max_sends
        self.per_seconds = int(per_seconds)
        self._storage = LimitsStorage(storage_uri, storage_options)
        self._item = limits.RateLimitItemPerSecond(max_sends, self.per_seconds, _NAMESPACE)
        self._limiter = strategies.MovingWindowRateLimiter(self._storage.blocking)

    def __repr__(self) -> str:
        return (
            f"<SharedSendLimiter max_sends={self.max_sends} per_seconds={self.per_seconds} "
            f"storage={self._storage.shown}>"
        )

    def try_acquire(self, key: str) -> float | None:
        """Count one send for ``key`` and return None, or return the seconds to wait."""
        ident = storage_key(key)
        try:
            if self._limiter.hit(self._item, ident):
                return None
            reset, remaining = self._limiter.get_window_stats(self._item, ident)
        except Exception as exc:  # any storage failure: refuse, never send unchecked
            raise unavailable(key, exc) from exc
        return _wait(reset, remaining)

    async def try_acquire_async(self, key: str) -> float | None:
        """`try_acquire` for the async client, on ``limits.aio`` (never blocks the loop)."""
        ident = storage_key(key)

        async def run(storage: Any) -> tuple[bool, float, int]:
            from limits.aio import strategies as aio_strategies  # noqa: PLC0415

            limiter = aio_strategies.MovingWindowRateLimiter(storage)
            if await limiter.hit(self._item, ident):
                return True, 0.0, 0
            reset, remaining = await limiter.get_window_stats(self._item, ident)
            return False, reset, remaining

        def sync() -> tuple[bool, float, int]:
            if self._limiter.hit(self._item, ident):
                return True, 0.0, 0
            reset, remaining = self._limiter.get_window_stats(self._item, ident)
            return False, reset, remaining

        try:
            allowed, reset, remaining = await self._storage.call_async(sync, run)
        except Exception as exc:  # any storage failure: refuse, never send unchecked
            raise unavailable(key, exc) from exc
        return None if allowed else _wait(reset, remaining)

    def close(self) -> None:
        """Close the connections the blocking methods opened (a later call opens new ones)."""
        self._storage.close()

    async def aclose(self) -> None:
        """Close the connections the async methods opened on this event loop.

        Call it before the loop ends (an async client's ``aclose`` does).
        """
        await self._storage.aclose()

    def remaining(self, key: str) -> int:
        """How many sends ``key`` may still get in the current window."""
        try:
            return int(self._limiter.get_window_stats(self._item, storage_key(key)).remaining)
        except Exception as exc:
            raise unavailable(key, exc) from exc


def _wait(reset: float, remaining: int) -> float:
    """Seconds until a refused key may send: 0 when a send left the window meanwhile."""
    if remaining > 0:
        return 0.0
    return max(reset - time.time(), 0.0)


class SharedRateLimit:
    """At most ``per_second`` takes per second across every process sharing ``storage_uri``.

    A `RateLimit`, usable wherever a `TokenBucket` is
    (``send_batch(rate_per_second=SharedRateLimit(...))``): `acquire` blocks
    until the caller's turn, `acquire_async` awaits it. Takes are paced on
    one grid for all processes, ``1 / per_second`` apart on the wall clock:
    each second's slots are handed out in turn by an atomic counter in the
    storage (``incr``; one key per second, expiring after a minute). A
    taker gets the next free slot, at most an hour ahead, and sleeps until
    it; slots of the current second that nobody took may still be used, so
    after a pause at most one second's worth go at once, as with a
    `TokenBucket`. ``name`` separates independent rates in one storage
    (processes that share a rate use the same name and ``per_second``).

    ``clock`` is the wall clock (``time.time``: processes on several hosts
    must agree, NTP); ``sleep`` and ``async_sleep`` wait (tests pass fakes).

    Raises:
        InvalidArgument: (a ``ValueError``) ``per_second`` not a positive finite
            number, an empty ``name``, a malformed URI.
        ConfigurationError: an unknown storage scheme, or its driver is missing.
        LimiterUnavailable: (from the methods) the storage failed: nothing taken.

    New in 0.2.0.
    """

    def __init__(
        self,
        storage_uri: str,
        *,
        per_second: float,
        name: str = "default",
        storage_options: Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], object] = time.sleep,
        async_sleep: Callable[[float], Awaitable[object]] | None = None,
    ) -> None:
        if not is_positive_number(per_second):
            raise InvalidArgument(
                f"per_second must be a positive number per second, got {per_second!r}"
            )
        if not isinstance(name, str) or not name.strip() or len(name) > 100:
            raise InvalidArgument("name must be 1 to 100 characters, not blank")
        if not callable(clock) or not callable(sleep):
            raise TypeError("clock and sleep must be callable")
        if async_sleep is not None and not callable(async_sleep):
            raise TypeError("async_sleep must be callable")
        self.rate = float(per_second)
        self.name = name
        self._storage = LimitsStorage(storage_uri, storage_options)
        self._clock = clock
        self._sleep = sleep
        self._async_sleep = async_sleep
        self._prefix = f"{_NAMESPACE}/rate/{storage_key(name)}"

    def __repr__(self) -> str:
        return (
            f"<SharedRateLimit rate={self.rate:g}/s name={self.name!r} "
            f"storage={self._storage.shown}>"
        )

    def _first_slot(self, second: int) -> int:
        """The index of the first slot at or after the start of ``second`` (slots are m / rate)."""
        return math.ceil(second * self.rate)

    def _slots(self, now: float) -> Iterator[tuple[str, int, int, int]]:
        """(key, ttl, first slot index, capacity) of each second from ``now``'s, in order."""
        second = math.floor(now)
        for _ in range(_MAX_WINDOWS):
            first, following = self._first_slot(second), self._first_slot(second + 1)
            if following > first:
                ttl = math.ceil(second + 1 - now) + _KEY_TTL_MARGIN
                yield f"{self._prefix}/{second}", ttl, first, following - first
            second += 1

    def _wait(self, first: int, ticket: int, now: float) -> float:
        return max((first + ticket - 1) / self.rate - now, 0.0)

    def reserve(self) -> float:
        """Take the next free slot now; return the seconds until it (0: at once)."""
        now = self._clock()
        try:
            for key, ttl, first, capacity in self._slots(now):
                ticket = self._storage.blocking.incr(key, ttl)
                if ticket <= capacity:
                    return self._wait(first, ticket, now)
        except Exception as exc:  # any storage failure: refuse, never send unpaced
            raise unavailable(f"rate {self.name}", exc) from exc
        raise LimiterUnavailable(f"rate {self.name}", "no free slot within an hour")

    async def reserve_async(self) -> float:
        """`reserve` for an event loop (``limits.aio``; memory:// inline)."""
        now = self._clock()
        try:
            for key, ttl, first, capacity in self._slots(now):

                def sync(key: str = key, ttl: int = ttl) -> int:
                    return int(self._storage.blocking.incr(key, ttl))

                async def run(storage: Any, key: str = key, ttl: int = ttl) -> int:
                    return int(await storage.incr(key, ttl))

                ticket = await self._storage.call_async(sync, run)
                if ticket <= capacity:
                    return self._wait(first, ticket, now)
        except Exception as exc:  # any storage failure: refuse, never send unpaced
            raise unavailable(f"rate {self.name}", exc) from exc
        raise LimiterUnavailable(f"rate {self.name}", "no free slot within an hour")

    def close(self) -> None:
        """Close the connections the blocking methods opened (a later call opens new ones)."""
        self._storage.close()

    async def aclose(self) -> None:
        """Close the connections the async methods opened on this event loop.

        Call it before the loop ends (an async client's ``aclose`` does).
        """
        await self._storage.aclose()

    def acquire(self) -> float:
        """Take one send, sleeping until its slot; return the seconds slept."""
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
        return wait

    async def acquire_async(self) -> float:
        """`acquire` for the async client: await the slot without blocking the loop."""
        wait = await self.reserve_async()
        if wait > 0:
            if self._async_sleep is None:
                import asyncio  # noqa: PLC0415

                await asyncio.sleep(wait)
            else:
                await self._async_sleep(wait)
        return wait
