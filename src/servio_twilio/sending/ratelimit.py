"""`TokenBucket`: a thread-safe cap on how many requests per second go to Twilio.

`CommunicationsClient.send_batch` takes one token before each create, in
whichever worker thread is about to send. Pass ``rate_per_second=`` a number
for a bucket of that batch alone, or one `TokenBucket` to several batches
(or threads) to cap them together.

The bucket holds at most one second's worth of tokens (``rate`` of them, at
least one) and a new bucket starts with one: it paces sends ``1 / rate``
seconds apart from the first one, and after a pause it lets through at most
one second's worth at once. A taker that finds the bucket empty reserves
the next token (the bucket goes into debt) and sleeps until it is due, so
takers are served in the order they asked, however many threads share it.
`TokenBucket.acquire_async` does the same for the async client's tasks,
sleeping without blocking the event loop.

Anything with ``acquire()`` and ``acquire_async()`` is a `RateLimit`;
`servio_twilio.sending.shared_limits.SharedRateLimit` is one whose pace is
shared by every process (Redis). The bucket is our own: the ``limits``
package has fixed and moving windows, no token bucket that paces takes
``1 / rate`` apart.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Awaitable, Callable
from typing import Protocol, TypeGuard, runtime_checkable

from servio_twilio.domain.errors import InvalidArgument

__all__ = ["RateLimit", "TokenBucket", "is_positive_int", "is_positive_number"]


@runtime_checkable
class RateLimit(Protocol):
    """A cap on sends per second that a batch takes from before each send.

    `TokenBucket` (this process) and `SharedRateLimit` (every process sharing
    its storage) are rate limits.

    New in 0.2.0.
    """

    def acquire(self) -> float:
        """Take one send, sleeping until it is due; return the seconds slept."""
        ...

    async def acquire_async(self) -> float:
        """`acquire` for an event loop: wait without blocking it."""
        ...


class TokenBucket:
    """At most ``rate`` takes per second on average, with bursts of at most ``burst``.

    ``burst`` (default: one second's worth, ``max(1, rate)``) is the most
    tokens the bucket holds; it must be between 1 and ``max(1, rate)``. A new
    bucket holds one token. ``clock`` returns seconds on a monotonic scale
    (``time.monotonic``); ``sleep`` waits (``time.sleep``) and ``async_sleep``
    waits in `acquire_async` (``asyncio.sleep``): tests pass fakes.
    Thread-safe, and safe to share between threads and tasks.

    Raises:
        InvalidArgument: (a ``ValueError``) ``rate`` not a positive finite number,
            ``burst`` out of range.

    New in 0.1.0.
    """

    def __init__(
        self,
        rate: float,
        *,
        burst: float | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], object] = time.sleep,
        async_sleep: Callable[[float], Awaitable[object]] | None = None,
    ) -> None:
        if not is_positive_number(rate):
            raise InvalidArgument(f"rate must be a positive number per second, got {rate!r}")
        ceiling = max(1.0, float(rate))
        if burst is None:
            burst = ceiling
        elif not is_positive_number(burst) or not 1 <= burst <= ceiling:
            raise InvalidArgument(f"burst must be between 1 and {ceiling:g} (one second's worth)")
        if not callable(clock) or not callable(sleep):
            raise TypeError("clock and sleep must be callable")
        if async_sleep is not None and not callable(async_sleep):
            raise TypeError("async_sleep must be callable")
        self.rate = float(rate)
        self.burst = float(burst)
        self._clock = clock
        self._sleep = sleep
        self._async_sleep = async_sleep
        self._lock = threading.Lock()
        self._tokens = 1.0
        self._stamp = clock()

    def __repr__(self) -> str:
        return f"<TokenBucket rate={self.rate:g}/s burst={self.burst:g}>"

    def reserve(self) -> float:
        """Take one token now and return the seconds to wait before using it (0: at once)."""
        with self._lock:
            now = self._clock()
            elapsed = max(now - self._stamp, 0.0)
            self._stamp = max(now, self._stamp)
            self._tokens = min(self.burst, self._tokens + elapsed * self.rate) - 1.0
            if self._tokens >= 0:
                return 0.0
            return -self._tokens / self.rate

    def acquire(self) -> float:
        """Take one token, sleeping until it is due; return the seconds slept."""
        wait = self.reserve()
        if wait > 0:
            self._sleep(wait)
        return wait

    async def acquire_async(self) -> float:
        """`acquire` for the async client: await the token without blocking the loop.

        The reservation is the same as `reserve`'s, so threads and tasks
        sharing one bucket are served in the order they asked.

        New in 0.2.0.
        """
        wait = self.reserve()
        if wait > 0:
            if self._async_sleep is None:
                import asyncio  # noqa: PLC0415 - kept out of `import servio_twilio`

                await asyncio.sleep(wait)
            else:
                await self._async_sleep(wait)
        return wait


def is_positive_number(value: object) -> TypeGuard[float]:
    """True for an int or float (not a bool) that is finite and above zero."""
    return (
        not isinstance(value, bool)
        and isinstance(value, int | float)
        and math.isfinite(value)
        and value > 0
    )


def is_positive_int(value: object) -> TypeGuard[int]:
    """True for an int (not a bool) of at least 1."""
    return not isinstance(value, bool) and isinstance(value, int) and value >= 1
