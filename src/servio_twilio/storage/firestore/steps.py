"""Firestore's I/O as data: the steps an operation yields, and the drivers that run them.

Every repository call is a generator (`servio_twilio.storage.firestore.operations`)
in the sans-IO style of h11: it yields one step per Firestore call it needs
and is sent the call's result, or thrown its error, so its own ``try`` and
``with`` blocks see the errors of its calls. It never does I/O itself.
`FirestoreRepository` runs the steps with `drive` and `execute` (blocking,
on ``google.cloud.firestore.Client``), `AsyncFirestoreRepository` with
`drive_async` and `execute_async` (awaited, on ``AsyncClient``): the pairs
below are the only code the two write differently.

```
step       the call                                    result sent back
GetAll     client.get_all(refs, transaction=...)       [DocumentSnapshot, ...] (missing ones too)
RunQuery   query.stream(transaction=...)               [DocumentSnapshot, ...]
Commit     batch.commit()                              the write results
Rpc        client._firestore_api.<method>(request)     the RPC's answer
```

Each step carries the seconds its call may take (``timeout``; None: the
client library's defaults), and gets the matching retry policy
(`read_options` or `write_options`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Generator
from typing import Any, TypeAlias, TypeVar

import attrs

from servio_twilio.storage.firestore.errors import read_options, write_options

__all__ = [
    "Commit",
    "GetAll",
    "Rpc",
    "RunQuery",
    "Step",
    "Steps",
    "drive",
    "drive_async",
    "execute",
    "execute_async",
]

T = TypeVar("T")


@attrs.frozen(kw_only=True)
class GetAll:
    """Read documents by reference (in ``transaction``, when given): one ``BatchGetDocuments``."""

    refs: tuple[Any, ...] = attrs.field(converter=tuple)
    transaction: Any = None
    timeout: float | None
    reads = True


@attrs.frozen(kw_only=True)
class RunQuery:
    """Run ``query`` (in ``transaction``, when given): one ``RunQuery``."""

    query: Any
    transaction: Any = None
    timeout: float | None
    reads = True


@attrs.frozen(kw_only=True)
class Commit:
    """Commit a write batch: one ``Commit``."""

    batch: Any
    timeout: float | None
    reads = False


@attrs.frozen(kw_only=True)
class Rpc:
    """One call of the client's generated API (a transaction's begin, commit or rollback)."""

    method: str
    request: dict[str, Any]
    reads: bool
    timeout: float | None


Step: TypeAlias = GetAll | RunQuery | Commit | Rpc
Steps: TypeAlias = Generator[Step, Any, T]
"""One repository call: yields its steps, is sent their results, returns the call's result."""


def _options(step: Step, asynchronous: bool) -> dict[str, Any]:
    make = read_options if step.reads else write_options
    return make(step.timeout, asynchronous=asynchronous)


def drive(steps: Steps[T], run: Callable[[Step], Any]) -> T:
    """Run ``steps`` to their result, each step by ``run`` (blocking); errors are thrown in."""
    result: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = steps.send(result) if error is None else steps.throw(error)
        except StopIteration as stop:
            done: T = stop.value
            return done
        result, error = None, None
        try:
            result = run(step)
        except BaseException as exc:  # the operation decides: retry, roll back or raise
            error = exc


async def drive_async(steps: Steps[T], run: Callable[[Step], Awaitable[Any]]) -> T:
    """`drive`, awaiting each step (a cancellation is thrown in like any error)."""
    result: Any = None
    error: BaseException | None = None
    while True:
        try:
            step = steps.send(result) if error is None else steps.throw(error)
        except StopIteration as stop:
            done: T = stop.value
            return done
        result, error = None, None
        try:
            result = await run(step)
        except BaseException as exc:  # the operation decides: retry, roll back or raise
            error = exc


def execute(client: Any, step: Step) -> Any:
    """Make ``step``'s call on a ``google.cloud.firestore.Client``."""
    options = _options(step, asynchronous=False)
    if isinstance(step, GetAll):
        return list(client.get_all(list(step.refs), transaction=step.transaction, **options))
    if isinstance(step, RunQuery):
        return list(step.query.stream(transaction=step.transaction, **options))
    if isinstance(step, Commit):
        return step.batch.commit(**options)
    call = getattr(client._firestore_api, step.method)
    return call(request=step.request, metadata=client._rpc_metadata, **options)


async def execute_async(client: Any, step: Step) -> Any:
    """Make ``step``'s call on a ``google.cloud.firestore.AsyncClient``."""
    options = _options(step, asynchronous=True)
    if isinstance(step, GetAll):
        found = client.get_all(list(step.refs), transaction=step.transaction, **options)
        return [snapshot async for snapshot in found]
    if isinstance(step, RunQuery):
        stream = step.query.stream(transaction=step.transaction, **options)
        return [snapshot async for snapshot in stream]
    if isinstance(step, Commit):
        return await step.batch.commit(**options)
    call = getattr(client._firestore_api, step.method)
    return await call(request=step.request, metadata=client._rpc_metadata, **options)
