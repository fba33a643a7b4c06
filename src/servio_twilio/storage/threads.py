"""`Threads`: a pool of our own for blocking calls made from an event loop.

The async faces of sync stores (`servio_twilio.storage.async_view`,
`servio_twilio.storage.consent`) and the ASGI webhook app run blocking
calls here, never in asyncio's default executor (``cpu + 4`` threads: 6 on
a 2-core host). ``asyncio`` is imported on first use, so importing a module
that holds one stays light.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from servio_twilio.domain.errors import InvalidArgument

__all__ = ["DEFAULT_MAX_THREADS", "Threads"]

DEFAULT_MAX_THREADS = 32
"""Worker threads of a pool for blocking calls, unless told otherwise."""

T = TypeVar("T")


class Threads:
    """At most ``max_threads`` threads named ``name-N``, started on first use; thread-safe.

    Raises:
        InvalidArgument: (a ``ValueError``) ``max_threads`` is not an int >= 1.
    """

    def __init__(self, max_threads: int = DEFAULT_MAX_THREADS, *, name: str) -> None:
        if isinstance(max_threads, bool) or not isinstance(max_threads, int) or max_threads < 1:
            raise InvalidArgument(f"max_threads must be an int >= 1, got {max_threads!r}")
        self.max_threads = max_threads
        self.name = name
        self._pool: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<Threads {self.name} max_threads={self.max_threads}>"

    async def run(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """``call(*args, **kwargs)`` in one of the pool's threads, awaited on the running loop."""
        import asyncio  # noqa: PLC0415 - only awaited code needs it

        with self._lock:
            pool = self._pool
            if pool is None:
                pool = self._pool = ThreadPoolExecutor(
                    self.max_threads, thread_name_prefix=self.name
                )
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(pool, functools.partial(call, *args, **kwargs))

    def close(self) -> None:
        """Stop the threads once their calls end (a later call starts a new pool)."""
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False)
