"""The embedded default repository: complete, thread-safe, in process memory."""

from __future__ import annotations

import copy
import heapq
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import date, datetime
from typing import Any

from servio_twilio.domain.errors import DuplicateRecord, RecordNotFound
from servio_twilio.domain.models import Channel, Communication, DayCount, Direction, replace
from servio_twilio.domain.status import is_open
from servio_twilio.storage.repository import (
    check_count_args,
    check_history_args,
    check_page_args,
    check_update_result,
    timestamp_order,
)

__all__ = ["InMemoryRepository", "day_counts", "new_id"]


_SCALARS = (str, int, float, bool, type(None))


def _copy_value(value: Any) -> Any:
    if type(value) is dict:
        return _copy_event(value)
    if isinstance(value, _SCALARS):
        return value
    if isinstance(value, list | tuple):
        return [_copy_value(item) for item in value]
    if isinstance(value, Mapping):
        return _copy_event(value)
    return copy.deepcopy(value)


def _copy_event(event: Mapping[str, Any]) -> dict[str, Any]:
    """A deep copy of a JSON-shaped event, several times faster than `copy.deepcopy`."""
    # Most values are str: skipping the call for them halves the cost.
    return {
        key: value if type(value) is str else _copy_value(value) for key, value in event.items()
    }


def new_id() -> str:
    """A new random record id (20 characters, like Firestore's auto ids)."""
    return uuid.uuid4().hex[:20]


def day_counts(keys: Iterable[tuple[date, Channel, str]]) -> list[DayCount]:
    """`DayCount` rows of (UTC day, channel, status) keys, one per record: ordered, non-zero.

    New in 0.2.0.
    """
    counted = Counter(keys)
    return [
        DayCount(day=day, channel=channel, status=status, count=count)
        for (day, channel, status), count in sorted(counted.items())
    ]


class InMemoryRepository:
    """A `CommunicationRepository` that keeps everything in memory.

    Complete (every method of the contract), thread-safe (one lock, so
    `update` is atomic), and fast; the default for the client and the
    webhook apps, and a real backend for tests and single-process hosts.
    Contents are lost with the process.

    New in 0.1.0.
    """

    blocking = False

    def __init__(self) -> None:
        self._lock = threading.RLock()
        self._records: dict[str, Communication] = {}
        self._by_sid: dict[str, str] = {}
        self._events: dict[str, list[dict[str, Any]]] = {}
        self._tokens: dict[str, set[str]] = {}

    def __repr__(self) -> str:
        return f"<InMemoryRepository records={len(self._records)}>"

    def __len__(self) -> int:
        """How many records are stored."""
        return len(self._records)

    def add(
        self,
        communication: Communication,
        *,
        event: Mapping[str, Any] | None = None,
        token: str | None = None,
    ) -> Communication:
        """Store a new record, with its first event if given; see `CommunicationRepository.add`."""
        kept = None if event is None else _copy_event(event)
        with self._lock:
            [item] = self.add_many([communication])
            if kept is not None:
                assert item.id is not None
                self._keep(item.id, kept, token)
        return item

    def add_many(self, communications: Iterable[Communication]) -> list[Communication]:
        """Store new records all at once: either all are stored or none is."""
        items = [c if c.id is not None else replace(c, id=new_id()) for c in communications]
        with self._lock:
            seen: set[str] = set()
            for item in items:
                assert item.id is not None
                if item.id in self._records or item.id in seen:
                    raise DuplicateRecord(f"a record with id {item.id!r} already exists")
                seen.add(item.id)
            for item in items:
                self._put(item)
        return items

    def get(self, communication_id: str) -> Communication | None:
        """The record with this id, or None."""
        return self._records.get(communication_id)

    def find_by_sid(self, sid: str) -> Communication | None:
        """The record with this Twilio SID, or None."""
        with self._lock:
            communication_id = self._by_sid.get(sid)
            return None if communication_id is None else self._records.get(communication_id)

    def update(
        self, communication_id: str, fn: Callable[[Communication], Communication]
    ) -> Communication:
        """Read, apply ``fn`` and write under the lock; see `CommunicationRepository.update`."""
        with self._lock:
            current = self._records.get(communication_id)
            if current is None:
                raise RecordNotFound(f"no record with id {communication_id!r}")
            updated = check_update_result(fn(current), communication_id)
            if updated is not current:
                self._put(updated)
            return updated

    def update_many(
        self, updates: Mapping[str, Callable[[Communication], Communication]]
    ) -> dict[str, Communication]:
        """Apply every ``fn`` under the lock, then write all; see the Protocol."""
        with self._lock:
            updated = {
                communication_id: check_update_result(fn(current), communication_id)
                for communication_id, fn in updates.items()
                if (current := self._records.get(communication_id)) is not None
            }
            for communication_id, record in updated.items():
                if record is not self._records[communication_id]:
                    self._put(record)
            return updated

    def record_event(
        self,
        event: Mapping[str, Any],
        apply: Callable[[Communication | None], Communication],
        *,
        communication_id: str | None = None,
        sid: str | None = None,
        token: str | None = None,
    ) -> Communication | None:
        """Find, update or create, and keep ``event`` under the lock; see the Protocol."""
        kept = _copy_event(event)
        with self._lock:
            current = None if communication_id is None else self._records.get(communication_id)
            if current is not None and current.twilio_sid not in (None, sid) and sid is not None:
                current = None
            if current is None and sid is not None:
                current = self.find_by_sid(sid)
            if current is not None:
                assert current.id is not None
                if token is not None and token in self._tokens.get(current.id, ()):
                    return None
                record = check_update_result(apply(current), current.id)
                if record is not current:
                    self._put(record)
            else:
                [record] = self.add_many([apply(None)])
            assert record.id is not None
            self._keep(record.id, kept, token)
            return record

    def append_event(self, communication_id: str, event: Mapping[str, Any]) -> None:
        """Keep a deep copy of ``event`` after the record's earlier ones."""
        kept = _copy_event(event)
        with self._lock:
            if communication_id not in self._records:
                raise RecordNotFound(f"no record with id {communication_id!r}")
            self._keep(communication_id, kept, None)

    def events(self, communication_id: str) -> list[dict[str, Any]]:
        """Copies of the record's kept callbacks, oldest first."""
        with self._lock:
            return [_copy_event(event) for event in self._events.get(communication_id, [])]

    def history(
        self,
        prospect_id: str,
        *,
        channel: Channel | None = None,
        limit: int = 50,
        before: datetime | None = None,
    ) -> list[Communication]:
        """A prospect's records, newest first; see `CommunicationRepository.history`."""
        check_history_args(limit, before, channel)
        with self._lock:
            found = [
                c
                for c in self._records.values()
                if c.prospect_id == prospect_id
                and (channel is None or c.channel == channel)
                and (before is None or c.timestamp < before)
            ]
        found.sort(key=timestamp_order, reverse=True)
        return found[:limit]

    def latest_outbound_to(self, number: str) -> Communication | None:
        """The newest outbound record to ``number``, or None."""
        with self._lock:
            sent = [
                c
                for c in self._records.values()
                if c.to == number and c.direction == Direction.OUTBOUND
            ]
        return max(sent, key=timestamp_order, default=None)

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
        """Records matching every filter, newest first; see the Protocol's `communications`.

        New in 0.2.0.
        """
        statuses = check_page_args(
            channel=channel,
            status=status,
            prospect_id=prospect_id,
            since=since,
            before=before,
            limit=limit,
        )
        wanted = None if statuses is None else frozenset(statuses)
        with self._lock:
            found = [
                c
                for c in self._records.values()
                if (channel is None or c.channel == channel)
                and (wanted is None or c.status in wanted)
                and (prospect_id is None or c.prospect_id == prospect_id)
                and (since is None or c.timestamp >= since)
                and (before is None or c.timestamp < before)
                and (not open_only or is_open(c))
            ]
        return heapq.nlargest(limit, found, key=timestamp_order)

    def count_by_day(self, *, since: datetime, until: datetime) -> list[DayCount]:
        """Records per (UTC day, channel, status) in ``[since, until)``; see the Protocol.

        New in 0.2.0.
        """
        check_count_args(since, until)
        with self._lock:
            keys = [
                (c.timestamp.date(), c.channel, c.status)
                for c in self._records.values()
                if since <= c.timestamp < until
            ]
        return day_counts(keys)

    def ping(self) -> None:
        """Always answers: memory is never down."""

    def _keep(self, communication_id: str, event: dict[str, Any], token: str | None) -> None:
        self._events.setdefault(communication_id, []).append(event)
        if token is not None:
            self._tokens.setdefault(communication_id, set()).add(token)

    def _put(self, communication: Communication) -> None:
        assert communication.id is not None
        previous = self._records.get(communication.id)
        if (
            previous is not None
            and previous.twilio_sid
            and previous.twilio_sid != (communication.twilio_sid)
        ):
            self._by_sid.pop(previous.twilio_sid, None)
        self._records[communication.id] = communication
        if communication.twilio_sid:
            self._by_sid[communication.twilio_sid] = communication.id
