"""How a batch runs its items at once: threads for the sync client, tasks for the async one.

Each engine is the ``engine`` target of a batch (`servio_twilio.sending.batch`):
``start(jobs, workers)`` begins running the jobs (generators of
`servio_twilio.domain.steps.Call` steps, each giving its item's outcome and
never raising), at most ``workers`` at once, on the client's other targets;
``next_done()`` waits for at least one more to finish and returns
``(finished, remaining)``, the finished ones as ``(position, outcome)``;
``stop()``, after an interruption, lets the running jobs end, cancels the
ones not started and returns ``(finished, never_started)``. A job that
raised anyway (they are written not to) finishes with its exception as its
outcome.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from servio_twilio.domain.steps import Steps, run, run_async

__all__ = ["TaskEngine", "ThreadEngine"]

Finished = list[tuple[int, Any]]


class ThreadEngine:
    """Runs a batch's jobs in a pool of threads, each job driven by `run`."""

    def __init__(self, targets: Mapping[str, Any]) -> None:
        self._targets = targets
        self._pool: ThreadPoolExecutor | None = None
        self._positions: dict[Future[Any], int] = {}
        self._waiting: set[Future[Any]] = set()

    def start(self, jobs: list[Steps[Any]], workers: int) -> None:
        """Submit every job to a new pool of ``workers`` threads."""
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="servio-batch")
        self._positions = {
            self._pool.submit(run, job, self._targets): position
            for position, job in enumerate(jobs)
        }
        self._waiting = set(self._positions)

    def next_done(self) -> tuple[Finished, int]:
        """Wait for at least one job to finish; the finished ones and how many remain."""
        done, self._waiting = wait(self._waiting, return_when=FIRST_COMPLETED)
        if not self._waiting:
            self._close()
        return [(self._positions[f], _result(f)) for f in done], len(self._waiting)

    def stop(self) -> tuple[Finished, list[int]]:
        """Cancel the jobs not started, wait for the running ones: (finished, never started)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        finished = [(self._positions[f], _result(f)) for f in self._waiting if not f.cancelled()]
        never_started = sorted(self._positions[f] for f in self._waiting if f.cancelled())
        self._waiting = set()
        return finished, never_started

    def _close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True)


def _result(future: Future[Any]) -> Any:
    try:
        return future.result()
    except Exception as exc:
        return exc


class TaskEngine:
    """Runs a batch's jobs as tasks, ``workers`` at once, each driven by `run_async`."""

    def __init__(self, targets: Mapping[str, Any]) -> None:
        self._targets = targets
        self._positions: dict[asyncio.Task[Any], int] = {}
        self._waiting: set[asyncio.Task[Any]] = set()
        self._started: set[int] = set()

    def start(self, jobs: list[Steps[Any]], workers: int) -> None:
        """Make one task a job; a semaphore lets ``workers`` of them run at once."""
        gate = asyncio.Semaphore(workers)
        self._positions = {
            asyncio.ensure_future(self._run(gate, position, job)): position
            for position, job in enumerate(jobs)
        }
        self._waiting = set(self._positions)

    async def _run(self, gate: asyncio.Semaphore, position: int, job: Steps[Any]) -> Any:
        async with gate:
            self._started.add(position)
            return await run_async(job, self._targets)

    async def next_done(self) -> tuple[Finished, int]:
        """Wait for at least one job to finish; the finished ones and how many remain."""
        done, self._waiting = await asyncio.wait(self._waiting, return_when=asyncio.FIRST_COMPLETED)
        return [(self._positions[t], _task_result(t)) for t in done], len(self._waiting)

    async def stop(self) -> tuple[Finished, list[int]]:
        """Cancel the jobs not started, wait for the running ones: (finished, never started)."""
        never_started = sorted(
            self._positions[t] for t in self._waiting if self._positions[t] not in self._started
        )
        for task in self._waiting:
            if self._positions[task] not in self._started:
                task.cancel()
        if self._waiting:
            await asyncio.wait(self._waiting)
        finished = [
            (self._positions[t], _task_result(t))
            for t in self._waiting
            if self._positions[t] in self._started
        ]
        self._waiting = set()
        return finished, never_started


def _task_result(task: asyncio.Task[Any]) -> Any:
    if task.cancelled():
        return asyncio.CancelledError()
    exc = task.exception()
    return exc if exc is not None else task.result()
