"""Consent stores: who opted out of which channel.

`ConsentStore` is the Protocol both clients and the webhook apps use;
`AsyncConsentStore` the same with coroutine methods. `InMemoryConsentStore`
ships (thread-safe, in process memory), with `AsyncInMemoryConsentStore`, an
async face over the same data; `AsyncConsentStoreView` is the async face of
any sync store (a ``blocking`` one runs in threads of its own); the Firestore
backends live in `servio_twilio.firestore`. One contract suite (``tests/test_consent_contract.py``)
runs against every backend.

Numbers are keyed as E.164 (a ``whatsapp:`` prefix is stripped); consent is
per channel. Every opt-out and opt-in is recorded as a change, even one that
repeats the current state; the latest change decides. `ConsentStore.opted_out`
lists the numbers opted out now, newest change first (what the operator
console's ``/consents`` page shows).
"""

from __future__ import annotations

import inspect
import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, Protocol, TypeVar, runtime_checkable

import attrs

from servio_twilio.domain.consent import (
    MAX_CONSENT_HISTORY,
    Consent,
    ConsentChange,
    check_source,
    consent_number,
)
from servio_twilio.domain.errors import InvalidArgument
from servio_twilio.domain.models import Channel, parse_channel, utcnow
from servio_twilio.storage.repository import check_history_args
from servio_twilio.storage.threads import DEFAULT_MAX_THREADS, Threads

__all__ = [
    "AsyncConsentStore",
    "AsyncConsentStoreView",
    "AsyncInMemoryConsentStore",
    "ConsentStore",
    "InMemoryConsentStore",
    "aware_utc_now",
    "check_listing_args",
    "is_async_consent_store",
]

T = TypeVar("T")


@runtime_checkable
class ConsentStore(Protocol):
    """Where opt-outs and opt-ins are kept, per number and channel.

    ``number`` is an E.164 number (a ``whatsapp:`` prefix is accepted and
    stripped; anything else raises `InvalidPhoneNumber`); ``channel`` a
    `Channel` or its value (else `InvalidArgument`); ``source`` says what made
    the change (``"inbound:STOP"``, ``"twilio:21610"``, ``"admin"``: 1 to
    200 characters). Every storage failure raises `RepositoryError`, never a
    driver's exception. Write your own backend by implementing these methods;
    the project's ``tests/test_consent_contract.py`` shows what each must do.

    New in 0.2.0.
    """

    def opt_out(self, number: str, channel: Channel | str, *, source: str) -> None:
        """Record that ``number`` opted out of ``channel``."""
        ...

    def opt_in(self, number: str, channel: Channel | str, *, source: str) -> None:
        """Record that ``number`` opted (back) in to ``channel``."""
        ...

    def is_opted_out(self, number: str, channel: Channel | str) -> bool:
        """Whether the latest change for ``number`` on ``channel`` is an opt-out (False: none)."""
        ...

    def get(self, number: str, channel: Channel | str) -> Consent | None:
        """What is kept for ``number`` on ``channel``, with its recent history; None: nothing."""
        ...

    def opted_out(
        self,
        *,
        channel: Channel | str | None = None,
        limit: int = 50,
        before: datetime | None = None,
    ) -> list[Consent]:
        """The numbers opted out now (of ``channel``, or of any), newest change first.

        At most ``limit`` (1 to 1000) `Consent` values, without their history
        (`get` has it). ``before`` (aware) keeps those whose latest change is
        strictly older: pass the last one's ``updated_at`` to page (changes
        made at the very same instant as a page's last one are skipped, as
        with `CommunicationRepository.history`). Check the arguments with
        `check_listing_args` first.

        New in 0.2.0.
        """
        ...


@runtime_checkable
class AsyncConsentStore(Protocol):
    """`ConsentStore` with coroutine methods, for `AsyncCommunicationsClient` and the ASGI app.

    Tell the two kinds apart with `is_async_consent_store` (``isinstance``
    checks only the names).

    New in 0.2.0.
    """

    async def opt_out(self, number: str, channel: Channel | str, *, source: str) -> None:
        """See `ConsentStore.opt_out`."""
        ...

    async def opt_in(self, number: str, channel: Channel | str, *, source: str) -> None:
        """See `ConsentStore.opt_in`."""
        ...

    async def is_opted_out(self, number: str, channel: Channel | str) -> bool:
        """See `ConsentStore.is_opted_out`."""
        ...

    async def get(self, number: str, channel: Channel | str) -> Consent | None:
        """See `ConsentStore.get`."""
        ...

    async def opted_out(
        self,
        *,
        channel: Channel | str | None = None,
        limit: int = 50,
        before: datetime | None = None,
    ) -> list[Consent]:
        """See `ConsentStore.opted_out`."""
        ...


def is_async_consent_store(store: object) -> bool:
    """Whether ``store``'s methods are coroutines (an `AsyncConsentStore`).

    New in 0.2.0.
    """
    return inspect.iscoroutinefunction(getattr(store, "is_opted_out", None))


def check_listing_args(
    channel: Channel | str | None, limit: int, before: datetime | None
) -> Channel | None:
    """The parsed ``channel`` of an `opted_out` call, once its arguments are checked.

    Raises:
        InvalidArgument: (a ``ValueError``) an unknown channel, a ``limit``
            outside 1..1000 or a naive ``before``.
        TypeError: a ``limit`` that is not an int or a ``before`` that is not
            a datetime.

    New in 0.2.0.
    """
    parsed = None if channel is None else parse_channel(channel)
    check_history_args(limit, before)
    return parsed


def _listing_order(consent: Consent) -> tuple[datetime, str, str]:
    """Sort key of `opted_out`: the change time, ties by channel and number."""
    return (consent.updated_at, consent.channel.value, consent.number)


def aware_utc_now(clock: Callable[[], datetime]) -> datetime:
    """``clock()`` as an aware UTC datetime; `InvalidArgument` when the clock gives a naive one.

    New in 0.2.0.
    """
    now = clock()
    if not isinstance(now, datetime) or now.tzinfo is None or now.utcoffset() is None:
        raise InvalidArgument(f"the clock must return an aware datetime, not {now!r:.60}")
    return now.astimezone(UTC)


class InMemoryConsentStore:
    """A `ConsentStore` in process memory: thread-safe, complete, never blocking.

    ``clock`` gives the time of each change (aware; `utcnow` by default).
    Each number and channel keeps its latest `MAX_CONSENT_HISTORY` changes.
    Contents are lost with the process: use a Firestore store to keep
    opt-outs across deploys and instances.

    New in 0.2.0.
    """

    blocking = False
    """Calls never wait on I/O."""

    def __init__(self, *, clock: Callable[[], datetime] = utcnow) -> None:
        if not callable(clock):
            raise TypeError("clock must be callable")
        self._clock = clock
        self._lock = threading.Lock()
        self._consents: dict[tuple[str, Channel], Consent] = {}

    def __repr__(self) -> str:
        return f"<InMemoryConsentStore entries={len(self._consents)}>"

    def __len__(self) -> int:
        """How many numbers and channels have a consent kept."""
        return len(self._consents)

    def opt_out(self, number: str, channel: Channel | str, *, source: str) -> None:
        """See `ConsentStore.opt_out`."""
        self._change(number, channel, opted_out=True, source=source)

    def opt_in(self, number: str, channel: Channel | str, *, source: str) -> None:
        """See `ConsentStore.opt_in`."""
        self._change(number, channel, opted_out=False, source=source)

    def is_opted_out(self, number: str, channel: Channel | str) -> bool:
        """See `ConsentStore.is_opted_out`."""
        consent = self.get(number, channel)
        return consent is not None and consent.opted_out

    def get(self, number: str, channel: Channel | str) -> Consent | None:
        """See `ConsentStore.get`."""
        key = (consent_number(number), parse_channel(channel))
        with self._lock:
            return self._consents.get(key)

    def opted_out(
        self,
        *,
        channel: Channel | str | None = None,
        limit: int = 50,
        before: datetime | None = None,
    ) -> list[Consent]:
        """See `ConsentStore.opted_out`."""
        wanted = check_listing_args(channel, limit, before)
        with self._lock:
            found = [
                consent
                for consent in self._consents.values()
                if consent.opted_out
                and (wanted is None or consent.channel is wanted)
                and (before is None or consent.updated_at < before)
            ]
        found.sort(key=_listing_order, reverse=True)
        return [attrs.evolve(consent, history=()) for consent in found[:limit]]

    def _change(self, number: str, channel: Channel | str, *, opted_out: bool, source: str) -> None:
        key = (consent_number(number), parse_channel(channel))
        source = check_source(source)
        with self._lock:
            at = aware_utc_now(self._clock)
            change = ConsentChange(opted_out=opted_out, source=source, at=at)
            previous = self._consents.get(key)
            history = (*(previous.history if previous else ()), change)
            self._consents[key] = Consent(
                number=key[0],
                channel=key[1],
                opted_out=opted_out,
                source=source,
                updated_at=at,
                history=history[-MAX_CONSENT_HISTORY:],
            )


class AsyncInMemoryConsentStore:
    """An `AsyncConsentStore` over an `InMemoryConsentStore` (``.sync``), sharing its data.

    A sync client, an async client and both webhook apps can so share one set
    of opt-outs. Its calls never block the event loop (they run inline).

    New in 0.2.0.
    """

    blocking = False
    """Calls never wait on I/O."""

    def __init__(self, store: InMemoryConsentStore | None = None) -> None:
        if store is None:
            store = InMemoryConsentStore()
        elif not isinstance(store, InMemoryConsentStore):
            raise TypeError(f"store must be an InMemoryConsentStore, not {type(store).__name__}")
        self.sync = store
        """The in-memory store whose data this view shares."""

    def __repr__(self) -> str:
        return f"<AsyncInMemoryConsentStore over {self.sync!r}>"

    async def opt_out(self, number: str, channel: Channel | str, *, source: str) -> None:
        """See `ConsentStore.opt_out`."""
        self.sync.opt_out(number, channel, source=source)

    async def opt_in(self, number: str, channel: Channel | str, *, source: str) -> None:
        """See `ConsentStore.opt_in`."""
        self.sync.opt_in(number, channel, source=source)

    async def is_opted_out(self, number: str, channel: Channel | str) -> bool:
        """See `ConsentStore.is_opted_out`."""
        return self.sync.is_opted_out(number, channel)

    async def get(self, number: str, channel: Channel | str) -> Consent | None:
        """See `ConsentStore.get`."""
        return self.sync.get(number, channel)

    async def opted_out(
        self,
        *,
        channel: Channel | str | None = None,
        limit: int = 50,
        before: datetime | None = None,
    ) -> list[Consent]:
        """See `ConsentStore.opted_out`."""
        return self.sync.opted_out(channel=channel, limit=limit, before=before)


class AsyncConsentStoreView:
    """An `AsyncConsentStore` over a synchronous `ConsentStore` (``.sync``).

    Calls of a ``blocking`` store (`servio_twilio.firestore.FirestoreConsentStore`,
    or any store without a ``blocking`` attribute) run in this view's own pool
    of ``max_threads`` threads, started on first use, never in asyncio's
    default executor; others (`InMemoryConsentStore`) run inline. `close`
    stops the pool's threads. `AsyncCommunicationsClient` builds one for a sync
    store in its policy.

    Raises:
        TypeError: ``store`` is not a sync `ConsentStore`.
        InvalidArgument: (a ``ValueError``) ``max_threads`` is not an int >= 1.

    New in 0.2.0.
    """

    def __init__(self, store: ConsentStore, *, max_threads: int = DEFAULT_MAX_THREADS) -> None:
        if not isinstance(store, ConsentStore) or is_async_consent_store(store):
            raise TypeError(f"store must be a sync ConsentStore, not {type(store).__name__}")
        self._threads = Threads(max_threads, name="servio-consent")
        self.sync = store
        """The synchronous store this view calls."""
        self.blocking = bool(getattr(store, "blocking", True))
        """Whether the calls run in the view's threads."""
        self.max_threads = max_threads

    def __repr__(self) -> str:
        return f"<AsyncConsentStoreView over {self.sync!r}>"

    def close(self) -> None:
        """Stop the pool's threads once their calls end (a later call starts a new pool)."""
        self._threads.close()

    async def _run(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if not self.blocking:
            return method(*args, **kwargs)
        return await self._threads.run(method, *args, **kwargs)

    async def opt_out(self, number: str, channel: Channel | str, *, source: str) -> None:
        """See `ConsentStore.opt_out`."""
        await self._run(self.sync.opt_out, number, channel, source=source)

    async def opt_in(self, number: str, channel: Channel | str, *, source: str) -> None:
        """See `ConsentStore.opt_in`."""
        await self._run(self.sync.opt_in, number, channel, source=source)

    async def is_opted_out(self, number: str, channel: Channel | str) -> bool:
        """See `ConsentStore.is_opted_out`."""
        return await self._run(self.sync.is_opted_out, number, channel)

    async def get(self, number: str, channel: Channel | str) -> Consent | None:
        """See `ConsentStore.get`."""
        return await self._run(self.sync.get, number, channel)

    async def opted_out(
        self,
        *,
        channel: Channel | str | None = None,
        limit: int = 50,
        before: datetime | None = None,
    ) -> list[Consent]:
        """See `ConsentStore.opted_out`."""
        return await self._run(self.sync.opted_out, channel=channel, limit=limit, before=before)
