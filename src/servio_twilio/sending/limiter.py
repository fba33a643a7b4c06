"""Send limits: how many sends one prospect (or one number) may get in a window.

The client asks its limiter before anything is written or sent. A limiter is
anything with ``try_acquire(key) -> float | None`` (the `SendLimiter`
Protocol); the async client awaits ``try_acquire_async(key)`` when the limiter
has it (`AsyncSendLimiter`). `InMemorySendLimiter` ships, a sliding window
per key in process memory; `servio_twilio.sending.shared_limits.SharedSendLimiter`
keeps the same window in Redis (or any storage of the ``limits`` package), shared
by every process.

The in-memory window is our own rather than ``limits``' memory storage: that
one reads the wall clock (``time.time``) with no way to inject a clock, counts
whole-second windows only (``per_seconds=0.5`` would become 0) and starts a
timer thread per storage; this one takes a monotonic, injectable clock and
any positive window.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol, runtime_checkable

from servio_twilio.domain.errors import InvalidArgument
from servio_twilio.sending.ratelimit import is_positive_int, is_positive_number

__all__ = ["AsyncSendLimiter", "InMemorySendLimiter", "SendLimiter"]


@runtime_checkable
class SendLimiter(Protocol):
    """Decides whether one more send to ``key`` is allowed now.

    The client uses the prospect id as the key, or ``"to:<E.164 number>"``
    for a send without a prospect. Implement it over Redis or a database to
    share one limit between processes.

    New in 0.1.0.
    """

    def try_acquire(self, key: str) -> float | None:
        """Take one send for ``key``: None when allowed (and counted), else the
        seconds until a send may be allowed (nothing is counted then)."""
        ...


@runtime_checkable
class AsyncSendLimiter(Protocol):
    """A send limiter the async client can await: ``try_acquire_async(key)``.

    Same answer as `SendLimiter.try_acquire`. `InMemorySendLimiter` and
    `SharedSendLimiter` have both methods, so one limiter serves a sync and
    an async client together.

    New in 0.2.0.
    """

    async def try_acquire_async(self, key: str) -> float | None:
        """As `SendLimiter.try_acquire`, as a coroutine."""
        ...


class InMemorySendLimiter:
    """At most ``max_sends`` sends per key in any ``per_seconds`` window.

    A sliding window (the times of the last ``max_sends`` sends per key),
    thread-safe, in process memory: each process counts its own sends.
    ``clock`` returns seconds on a monotonic scale (``time.monotonic`` by
    default; tests pass a fake). Keys whose sends have all left the window
    are forgotten, so memory stays bounded by the keys active in one window.

    Raises:
        InvalidArgument: (a ``ValueError``) ``max_sends`` below 1 or ``per_seconds``
            not a positive number.

    New in 0.1.0.
    """

    def __init__(
        self,
        max_sends: int = 10,
        per_seconds: float = 60,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not is_positive_int(max_sends):
            raise InvalidArgument(f"max_sends must be an int >= 1, got {max_sends!r}")
        if not is_positive_number(per_seconds):
            raise InvalidArgument(f"per_seconds must be a positive number, got {per_seconds!r}")
        self.max_sends = max_sends
        self.per_seconds = float(per_seconds)
        self._clock = clock
        self._lock = threading.Lock()
        self._sends: dict[str, deque[float]] = {}
        self._next_sweep = clock() + self.per_seconds

    def __repr__(self) -> str:
        return (
            f"<InMemorySendLimiter max_sends={self.max_sends} "
            f"per_seconds={self.per_seconds:g} keys={len(self._sends)}>"
        )

    def try_acquire(self, key: str) -> float | None:
        """Count one send for ``key`` and return None, or return the seconds to wait."""
        with self._lock:
            now = self._clock()
            if now >= self._next_sweep:
                self._sweep(now)
            times = self._sends.get(key)
            if times is None:
                times = self._sends[key] = deque()
            self._expire(times, now)
            if len(times) < self.max_sends:
                times.append(now)
                return None
            return max(times[0] + self.per_seconds - now, 0.0)

    async def try_acquire_async(self, key: str) -> float | None:
        """`try_acquire` for the async client: it never waits, so it runs inline.

        New in 0.2.0.
        """
        return self.try_acquire(key)

    def remaining(self, key: str) -> int:
        """How many sends ``key`` may still get in the current window."""
        with self._lock:
            times = self._sends.get(key)
            if times is None:
                return self.max_sends
            self._expire(times, self._clock())
            return self.max_sends - len(times)

    def _expire(self, times: deque[float], now: float) -> None:
        horizon = now - self.per_seconds
        while times and times[0] <= horizon:
            times.popleft()

    def _sweep(self, now: float) -> None:
        for key in list(self._sends):
            times = self._sends[key]
            self._expire(times, now)
            if not times:
                del self._sends[key]
        self._next_sweep = now + self.per_seconds
