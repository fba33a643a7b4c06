"""A blocking face of an async repository, so tests written for the sync Protocol run on it.

`LoopThread` owns one event loop, run in a thread of its own; `SyncFacade`
turns each coroutine method of an `AsyncCommunicationRepository` into a
plain method that runs the coroutine to completion on that loop. Every
call of one facade runs on the same loop (an ``AsyncClient``'s gRPC channel
belongs to the loop of its first call), and calls from several threads (a
batch's sends) run there concurrently.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")


class LoopThread:
    """An event loop running in a daemon thread until `close`."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self.loop.run_forever, name="sync-facade-loop", daemon=True
        )
        self._thread.start()

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the loop and wait for its result (or error)."""
        return asyncio.run_coroutine_threadsafe(coroutine, self.loop).result()

    def close(self) -> None:
        """Let the loop finish what it runs, stop it and close it."""

        async def _drain() -> None:
            current = asyncio.current_task()
            tasks = [t for t in asyncio.all_tasks() if t is not current]
            await asyncio.gather(*tasks, return_exceptions=True)
            await self.loop.shutdown_asyncgens()

        self.run(_drain())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=10)
        self.loop.close()


class SyncFacade:
    """``repository``'s methods, blocking: each call awaited on ``loop`` until it ends.

    It satisfies `CommunicationRepository` (its ``blocking`` is True: calls
    wait), so a sync client, a WSGI app or a test body uses it unchanged,
    while every Firestore call is the async repository's own.
    """

    blocking = True

    def __init__(self, repository: Any, loop: LoopThread) -> None:
        self.repository = repository
        self._loop = loop

    def __repr__(self) -> str:
        return f"<SyncFacade over {self.repository!r}>"

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.repository, name)
        if not inspect.iscoroutinefunction(method):
            return method

        @functools.wraps(method)
        def blocking_call(*args: Any, **kwargs: Any) -> Any:
            return self._loop.run(method(*args, **kwargs))

        return blocking_call
