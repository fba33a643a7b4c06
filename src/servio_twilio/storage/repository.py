"""The storage contract every backend of the ``communications`` collection meets."""

from __future__ import annotations

import inspect
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime
from typing import Any, Protocol, runtime_checkable

from servio_twilio.domain.errors import InvalidArgument, RepositoryError
from servio_twilio.domain.models import Channel, Communication, DayCount

__all__ = [
    "MAX_HISTORY_LIMIT",
    "MAX_STATUS_FILTER",
    "AsyncCommunicationRepository",
    "CommunicationRepository",
    "check_aware",
    "check_count_args",
    "check_history_args",
    "check_page_args",
    "check_update_result",
    "is_async_repository",
    "timestamp_order",
]


@runtime_checkable
class CommunicationRepository(Protocol):
    """Where communications and their callbacks are kept.

    Write your own backend by implementing these methods; the contract suite
    in the project's tests (``tests/test_repository_contract.py``) shows what
    each must do. Every storage failure raises `RepositoryError` (or one of
    its subclasses), never a driver's exception.

    ``blocking`` is True when calls do I/O: the ASGI webhook app then runs
    them in a worker thread.

    New in 0.1.0.
    """

    blocking: bool

    def add(
        self,
        communication: Communication,
        *,
        event: Mapping[str, Any] | None = None,
        token: str | None = None,
    ) -> Communication:
        """Store a new record and return it with its ``id``.

        Assigns an ``id`` when it has none, keeps a given one; an ``id`` that
        exists raises `DuplicateRecord` (and nothing is written). With
        ``event``, the record's first callback is kept in the same atomic
        write (remembering ``token``, Twilio's idempotency token, if given).

        Changed in 0.2.0: ``event`` and ``token``.
        """
        ...

    def add_many(self, communications: Iterable[Communication]) -> list[Communication]:
        """Store many new records in bulk, in order; same rules as `add`."""
        ...

    def get(self, communication_id: str) -> Communication | None:
        """The record with this id, or None."""
        ...

    def find_by_sid(self, sid: str) -> Communication | None:
        """The record with this Twilio SID, or None."""
        ...

    def update(
        self, communication_id: str, fn: Callable[[Communication], Communication]
    ) -> Communication:
        """Atomically read the record, apply ``fn`` to it and write the result.

        ``fn`` may run more than once (a backend may retry on contention), so
        it must be pure. A missing id raises `RecordNotFound`.
        """
        ...

    def update_many(
        self, updates: Mapping[str, Callable[[Communication], Communication]]
    ) -> dict[str, Communication]:
        """Atomically apply each ``fn`` to the record of its id, all in one write.

        Returns the updated records by id. Ids with no record are left out of
        the result (nothing is written for them); the others are updated as
        `update` would, all or none. ``fn`` may run more than once.

        New in 0.2.0.
        """
        ...

    def record_event(
        self,
        event: Mapping[str, Any],
        apply: Callable[[Communication | None], Communication],
        *,
        communication_id: str | None = None,
        sid: str | None = None,
        token: str | None = None,
    ) -> Communication | None:
        """Atomically find a record, update (or create) it and keep ``event``: one callback.

        The record is the one with id ``communication_id`` when it exists and
        its ``twilio_sid`` is unset or ``sid``; else the one whose
        ``twilio_sid`` is ``sid`` (when ``sid`` is given); else none. When a
        record is found and ``token`` (Twilio's ``I-Twilio-Idempotency-Token``)
        was already kept with one of its events, nothing changes and None is
        returned: a retried delivery. Otherwise ``apply(record or None)``
        gives the record to store: the found one updated (its id unchanged),
        or a new one (created; an id that exists raises `DuplicateRecord`);
        it is written together with ``event``, kept after the record's
        earlier events with ``token``, and returned. ``apply`` may run more
        than once; an exception from it reaches the caller with nothing
        written.

        New in 0.2.0.
        """
        ...

    def append_event(self, communication_id: str, event: Mapping[str, Any]) -> None:
        """Keep one callback as received, after the record's earlier ones.

        A missing id raises `RecordNotFound`.
        """
        ...

    def events(self, communication_id: str) -> list[dict[str, Any]]:
        """The record's kept callbacks, oldest first (empty when none or no record)."""
        ...

    def history(
        self,
        prospect_id: str,
        *,
        channel: Channel | None = None,
        limit: int = 50,
        before: datetime | None = None,
    ) -> list[Communication]:
        """A prospect's records, newest ``timestamp`` first.

        ``before`` (an aware datetime) keeps only records strictly older: pass
        the last record's ``timestamp`` to page.
        """
        ...

    def latest_outbound_to(self, number: str) -> Communication | None:
        """The newest outbound record sent to ``number`` (E.164), or None."""
        ...

    def communications(
        self,
        *,
        channel: Channel | None = None,
        status: str | Collection[str] | None = None,
        prospect_id: str | None = None,
        open_only: bool = False,
        since: datetime | None = None,
        before: datetime | None = None,
        limit: int = 50,
    ) -> list[Communication]:
        """Records matching every filter given, newest ``timestamp`` first.

        ``status`` is one status or several (any of them); ``open_only`` keeps
        the records `servio_twilio.domain.status.is_open` calls open (what
        `reconcile` looks at); ``since`` keeps records at or after it and
        ``before`` those strictly older (pass the last record's ``timestamp``
        to page). Check the arguments with `check_page_args` first.

        New in 0.2.0.
        """
        ...

    def count_by_day(self, *, since: datetime, until: datetime) -> list[DayCount]:
        """How many records each (UTC day, channel, status) has, ``since <= timestamp < until``.

        Only non-zero counts, ordered by day, channel, status. Check the
        arguments with `check_count_args` first.

        New in 0.2.0.
        """
        ...

    def ping(self) -> None:
        """Return when storage answers; raise `RepositoryError` when it does not."""
        ...


@runtime_checkable
class AsyncCommunicationRepository(Protocol):
    """`CommunicationRepository` with coroutine methods: the same contract, awaited.

    Every method means exactly what the method of the same name in
    `CommunicationRepository` means (the contract suite runs on both kinds).
    An async repository is awaited on the event loop: `make_asgi_app` and
    `AsyncCommunicationsClient` never run it in a thread. Tell the kinds
    apart with `is_async_repository` (``isinstance`` checks only the names).

    New in 0.2.0.
    """

    async def add(
        self,
        communication: Communication,
        *,
        event: Mapping[str, Any] | None = None,
        token: str | None = None,
    ) -> Communication:
        """See `CommunicationRepository.add`."""
        ...

    async def add_many(self, communications: Iterable[Communication]) -> list[Communication]:
        """See `CommunicationRepository.add_many`."""
        ...

    async def get(self, communication_id: str) -> Communication | None:
        """See `CommunicationRepository.get`."""
        ...

    async def find_by_sid(self, sid: str) -> Communication | None:
        """See `CommunicationRepository.find_by_sid`."""
        ...

    async def update(
        self, communication_id: str, fn: Callable[[Communication], Communication]
    ) -> Communication:
        """See `CommunicationRepository.update`."""
        ...

    async def update_many(
        self, updates: Mapping[str, Callable[[Communication], Communication]]
    ) -> dict[str, Communication]:
        """See `CommunicationRepository.update_many`."""
        ...

    async def record_event(
        self,
        event: Mapping[str, Any],
        apply: Callable[[Communication | None], Communication],
        *,
        communication_id: str | None = None,
        sid: str | None = None,
        token: str | None = None,
    ) -> Communication | None:
        """See `CommunicationRepository.record_event`."""
        ...

    async def append_event(self, communication_id: str, event: Mapping[str, Any]) -> None:
        """See `CommunicationRepository.append_event`."""
        ...

    async def events(self, communication_id: str) -> list[dict[str, Any]]:
        """See `CommunicationRepository.events`."""
        ...

    async def history(
        self,
        prospect_id: str,
        *,
        channel: Channel | None = None,
        limit: int = 50,
        before: datetime | None = None,
    ) -> list[Communication]:
        """See `CommunicationRepository.history`."""
        ...

    async def latest_outbound_to(self, number: str) -> Communication | None:
        """See `CommunicationRepository.latest_outbound_to`."""
        ...

    async def communications(
        self,
        *,
        channel: Channel | None = None,
        status: str | Collection[str] | None = None,
        prospect_id: str | None = None,
        open_only: bool = False,
        since: datetime | None = None,
        before: datetime | None = None,
        limit: int = 50,
    ) -> list[Communication]:
        """See `CommunicationRepository.communications`."""
        ...

    async def count_by_day(self, *, since: datetime, until: datetime) -> list[DayCount]:
        """See `CommunicationRepository.count_by_day`."""
        ...

    async def ping(self) -> None:
        """See `CommunicationRepository.ping`."""
        ...


def is_async_repository(repository: object) -> bool:
    """Whether ``repository``'s methods are coroutines (an `AsyncCommunicationRepository`).

    New in 0.2.0.
    """
    return inspect.iscoroutinefunction(getattr(repository, "add", None))


MAX_HISTORY_LIMIT = 1000


def check_history_args(
    limit: int, before: datetime | None, channel: Channel | str | None = None
) -> None:
    """Raise `InvalidArgument` (a ``ValueError``) for a ``limit`` outside 1..1000, a
    naive ``before`` or an unknown ``channel``.

    Backends call it first, so every backend refuses the same bad input.
    """
    if channel is not None and channel not in {c.value for c in Channel}:
        raise InvalidArgument(f"channel must be one of sms, whatsapp, call, not {channel!r}")
    if isinstance(limit, bool) or not isinstance(limit, int):
        raise TypeError(f"limit must be an int, not {type(limit).__name__}")
    if not 1 <= limit <= MAX_HISTORY_LIMIT:
        raise InvalidArgument(f"limit must be between 1 and {MAX_HISTORY_LIMIT}, got {limit}")
    check_aware("before", before)


def check_update_result(updated: object, communication_id: str) -> Communication:
    """Return ``updated``, what an `update` function gave for ``communication_id``.

    Raise `RepositoryError` when it is not a `Communication` or has another
    ``id``. Backends call it on the function's result, so every backend
    refuses the same bad result.
    """
    if not isinstance(updated, Communication):
        raise RepositoryError(
            f"update function returned {type(updated).__name__}, not Communication"
        )
    if updated.id != communication_id:
        raise RepositoryError("update function must not change the record's id")
    return updated


def timestamp_order(communication: Communication) -> tuple[datetime, str]:
    """Sort key of records: by ``timestamp``, ties by ``id``; the newest sorts last."""
    return (communication.timestamp, communication.id or "")


MAX_STATUS_FILTER = 10
"""The most statuses one `communications` filter may name (Firestore's ``in`` allows 30)."""


def check_page_args(
    *,
    channel: Channel | str | None,
    status: str | Collection[str] | None,
    prospect_id: str | None,
    since: datetime | None,
    before: datetime | None,
    limit: int,
) -> tuple[str, ...] | None:
    """Check `communications`' arguments; the statuses asked for (None: any).

    Raises `InvalidArgument` (a ``ValueError``) or ``TypeError`` as
    `check_history_args` does, and for an empty or oversized status list, a
    status or prospect id that is not a non-empty string, or a naive ``since``.
    """
    check_history_args(limit, before, channel)
    check_aware("since", since)
    if prospect_id is not None and (not isinstance(prospect_id, str) or not prospect_id):
        raise InvalidArgument("prospect_id must be a non-empty string")
    if status is None:
        return None
    statuses = (status,) if isinstance(status, str) else tuple(status)
    if not 1 <= len(statuses) <= MAX_STATUS_FILTER:
        raise InvalidArgument(f"status must name 1 to {MAX_STATUS_FILTER} statuses")
    for one in statuses:
        if not isinstance(one, str) or not one:
            raise InvalidArgument("each status must be a non-empty string")
    return statuses


def check_count_args(since: datetime, until: datetime) -> None:
    """Raise `InvalidArgument` for naive bounds or ``until`` not after ``since``."""
    check_aware("since", since, required=True)
    check_aware("until", until, required=True)
    if until <= since:
        raise InvalidArgument("until must be after since")


def check_aware(name: str, value: object, *, required: bool = False) -> None:
    """Raise ``TypeError`` unless ``value`` (named ``name``) is a datetime, None when not
    ``required``; `InvalidArgument` when it is naive."""
    if value is None and not required:
        return
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, not {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgument(f"{name} must be an aware datetime (UTC)")
