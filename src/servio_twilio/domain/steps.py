"""The I/O steps of sending, and the two drivers that do them.

The rules of sending (`servio_twilio.sending.send_core`, `.batch`, `.health`)
are written once, as generators that yield a `Call` for each piece of I/O
they need (store a record, ask Twilio, take a send from the limiter) and
receive its result, or its exception thrown back in. They never do I/O
themselves: `run` drives them with blocking calls (`CommunicationsClient`),
`run_async` awaits what the calls return (`AsyncCommunicationsClient`). The
two clients differ only in the targets they hand the driver.

Targets, by name: ``repository`` (a repository), ``twilio`` (the Twilio
REST access: `TwilioRest` or `AsyncTwilioRest`), ``limiter`` (the send
limiter), ``consent`` (the consent store), ``rate`` (a batch's rate cap),
``engine`` (a batch's concurrency: threads or tasks).

Everything a call raises, ``BaseException`` included (an interrupted batch
still settles its records), is thrown into the generator at the ``yield``
that asked for it.
"""

from __future__ import annotations

import inspect
from collections.abc import Generator, Mapping
from typing import Any, TypeAlias, TypeVar

import attrs

__all__ = ["Call", "Steps", "is_async_callable", "run", "run_async"]

T = TypeVar("T")


@attrs.frozen
class Call:
    """One piece of I/O: ``targets[target].method(*args, **kwargs)``."""

    target: str
    method: str
    args: tuple[Any, ...] = ()
    kwargs: Mapping[str, Any] = attrs.field(factory=dict)


Steps: TypeAlias = Generator[Call, Any, T]
"""A generator of `Call` steps that returns a ``T``."""


def run(steps: Steps[T], targets: Mapping[str, Any]) -> T:
    """Drive ``steps`` to its result, doing each call in this thread."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            call = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as stop:
            result: T = stop.value
            return result
        try:
            value = getattr(targets[call.target], call.method)(*call.args, **call.kwargs)
            error = None
        except BaseException as exc:  # thrown in: the rules decide what survives
            value, error = None, exc


def is_async_callable(fn: object) -> bool:
    """Whether calling ``fn`` gives a coroutine (an async function or async ``__call__``)."""
    if isinstance(fn, type):
        return False  # calling a class builds an instance, whatever its __call__ is
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        getattr(fn, "__call__", None)  # noqa: B004 - an object whose __call__ is async
    )


async def run_async(steps: Steps[T], targets: Mapping[str, Any]) -> T:
    """Drive ``steps`` to its result on the event loop, awaiting what the calls return."""
    value: Any = None
    error: BaseException | None = None
    while True:
        try:
            call = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as stop:
            result: T = stop.value
            return result
        try:
            value = getattr(targets[call.target], call.method)(*call.args, **call.kwargs)
            if inspect.isawaitable(value):
                value = await value
            error = None
        except BaseException as exc:  # CancelledError too: the rules settle, then re-raise
            value, error = None, exc
