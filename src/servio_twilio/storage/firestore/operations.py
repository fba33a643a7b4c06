"""What both Firestore repositories do, written once: each call as steps.

`Operations` holds a client (``google.cloud.firestore.Client`` or
``AsyncClient``: both build references, queries, batches and transactions
the same way), the collection and the timeout. Each of its methods returns
the steps of one repository call (`servio_twilio.storage.firestore.steps`):
the id checks, documents and their diffs, the queries, the transaction
bodies and the translation of errors are all here. `FirestoreRepository`
runs the steps blocking, `AsyncFirestoreRepository` awaits them; the two
store exactly the same documents.
"""

from __future__ import annotations

try:  # first, so a missing extra is named before anything else imports google
    from google.cloud import firestore  # noqa: F401 - imported for the check; queries uses it
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "servio_twilio.firestore needs google-cloud-firestore: "
        "pip install 'servio-twilio[firestore]'"
    ) from exc

import hashlib
from collections.abc import Callable, Collection, Iterable, Iterator, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

from servio_twilio.domain.errors import (
    DuplicateRecord,
    InvalidArgument,
    RecordNotFound,
    RepositoryError,
)
from servio_twilio.domain.models import (
    Channel,
    Communication,
    DayCount,
    replace,
    utcnow,
)
from servio_twilio.storage.firestore import queries
from servio_twilio.storage.firestore.documents import (
    COUNTED_FIELDS,
    STORED_FIELDS,
    count_key,
    from_document,
    stored_integer,
    to_document,
)
from servio_twilio.storage.firestore.errors import translated
from servio_twilio.storage.firestore.steps import Commit, GetAll, RunQuery, Steps
from servio_twilio.storage.firestore.transaction import InTransaction, transact
from servio_twilio.storage.memory import day_counts, new_id
from servio_twilio.storage.repository import (
    check_count_args,
    check_history_args,
    check_page_args,
    check_update_result,
    timestamp_order,
)

__all__ = [
    "EVENTS_SUBCOLLECTION",
    "MAX_BATCH_WRITES",
    "Operations",
    "changes",
    "event_ref",
    "valid_id",
]

MAX_BATCH_WRITES: Final = 500
"""The most writes one Firestore commit may carry."""

EVENTS_SUBCOLLECTION: Final = "events"
"""The subcollection of a record that keeps its callbacks."""

_MAX_ID_BYTES: Final = 1500

_Update = Callable[[Communication], Communication]


def valid_id(document_id: object) -> bool:
    """Whether Firestore can hold a document with this id in one collection."""
    return (
        isinstance(document_id, str)
        and document_id not in {"", ".", ".."}
        and "/" not in document_id
        and not (document_id.startswith("__") and document_id.endswith("__"))
        and len(document_id.encode("utf-8", "surrogatepass")) <= _MAX_ID_BYTES
    )


class Operations:
    """The steps of every repository call on one collection of one client.

    Raises:
        InvalidArgument: (a ``ValueError``) a malformed ``collection`` name, or a
            ``timeout`` that is not positive.
    """

    def __init__(self, client: Any, *, collection: str, timeout: float | None) -> None:
        if not valid_id(collection):
            raise InvalidArgument(f"invalid Firestore collection name {collection!r}")
        if timeout is not None and not timeout > 0:
            raise InvalidArgument(f"timeout must be positive seconds or None, got {timeout!r}")
        self.client = client
        self.name = collection
        self.timeout = timeout
        self.collection = client.collection(collection)

    def add(
        self, communication: Communication, event: Mapping[str, Any] | None, token: str | None
    ) -> Steps[Communication]:
        """Create the record's document (with its first event: one commit)."""
        item = self._with_id(communication)
        ref = self.collection.document(item.id)
        batch = self.client.batch()
        with translated("add"):
            if event is None:
                batch.create(ref, to_document(item))
            else:
                batch.create(ref, {**to_document(item), "eventCount": 1})
                _keep_event(batch, ref, 0, event, token)
            yield Commit(batch=batch, timeout=self.timeout)
        return item

    def add_many(self, communications: Iterable[Communication]) -> Steps[list[Communication]]:
        """Create the records in commits of at most `MAX_BATCH_WRITES`, after an id check."""
        items = [self._with_id(c) for c in communications]
        seen: set[str | None] = set()
        for item in items:
            if item.id in seen:
                raise DuplicateRecord(f"the id {item.id!r} appears twice in one add_many")
            seen.add(item.id)
        with translated("add_many"):
            for chunk in _chunks(items, MAX_BATCH_WRITES):
                batch = self.client.batch()
                for item in chunk:
                    batch.create(self.collection.document(item.id), to_document(item))
                yield Commit(batch=batch, timeout=self.timeout)
        return items

    def get(self, communication_id: str) -> Steps[Communication | None]:
        """One document read."""
        if not valid_id(communication_id):
            return None
        ref = self.collection.document(communication_id)
        with translated("get"):
            snapshots = yield GetAll(refs=[ref], timeout=self.timeout)
        snapshot = _found(snapshots, ref)
        return None if snapshot is None else _read(snapshot, snapshot.to_dict() or {})

    def find_by_sid(self, sid: str) -> Steps[Communication | None]:
        """``twilioSid ==``, limit 1."""
        found = yield from self._records("find_by_sid", queries.by_sid(self.collection, sid))
        return found[0] if found else None

    def update(self, communication_id: str, fn: _Update) -> Steps[Communication]:
        """A transaction: read, ``fn``, field update."""
        if not valid_id(communication_id):
            raise RecordNotFound(f"no record with id {communication_id!r}")
        ref = self.collection.document(communication_id)

        def body(tx: InTransaction) -> Steps[Communication]:
            snapshot = _found((yield tx.get_all([ref])), ref)
            if snapshot is None:
                raise RecordNotFound(f"no record with id {communication_id!r}")
            return _apply_fn(tx.transaction, snapshot, fn)

        return (yield from transact(self.client, "update", body, self.timeout))

    def update_many(self, updates: Mapping[str, _Update]) -> Steps[dict[str, Communication]]:
        """A transaction per `MAX_BATCH_WRITES` records: one read of them all, one commit."""
        wanted = {i: fn for i, fn in updates.items() if valid_id(i)}
        done: dict[str, Communication] = {}
        ids = list(wanted)
        for start in range(0, len(ids), MAX_BATCH_WRITES):
            refs = [self.collection.document(i) for i in ids[start : start + MAX_BATCH_WRITES]]

            def body(tx: InTransaction, refs: list[Any] = refs) -> Steps[dict[str, Communication]]:
                found: dict[str, Communication] = {}
                for snapshot in (yield tx.get_all(refs)):
                    if snapshot.exists:
                        fn = wanted[snapshot.id]
                        found[snapshot.id] = _apply_fn(tx.transaction, snapshot, fn)
                return found

            done.update((yield from transact(self.client, "update_many", body, self.timeout)))
        return done

    def record_event(
        self,
        event: Mapping[str, Any],
        apply: Callable[[Communication | None], Communication],
        *,
        communication_id: str | None,
        sid: str | None,
        token: str | None,
    ) -> Steps[Communication | None]:
        """A transaction: find the record (id, else SID), update or create it, keep ``event``."""
        payload = dict(event)
        by_id = None
        if communication_id is not None and valid_id(communication_id):
            by_id = self.collection.document(communication_id)
        query = None if sid is None else queries.by_sid(self.collection, sid)

        def body(tx: InTransaction) -> Steps[Communication | None]:
            snapshot, seen = None, False
            if by_id is not None:
                refs = [by_id] if token is None else [by_id, event_ref(by_id, 0, token)]
                found = yield tx.get_all(refs)
                snapshot = _found(found, by_id)
                seen = token is not None and _found(found, refs[-1]) is not None
                stored_sid = (snapshot.to_dict() or {}).get("twilioSid") if snapshot else None
                if sid is not None and stored_sid not in (None, sid):
                    snapshot, seen = None, False  # cid names a record of another SID
            if snapshot is None and query is not None:
                matches = yield tx.query(query)
                snapshot = matches[0] if matches else None
                if snapshot is not None and token is not None:
                    token_ref = event_ref(snapshot.reference, 0, token)
                    seen = _found((yield tx.get_all([token_ref])), token_ref) is not None
            writes = tx.transaction
            if snapshot is None:
                created = self._with_id(apply(None))
                ref = self.collection.document(created.id)
                writes.create(ref, {**to_document(created), "eventCount": 1})
                _keep_event(writes, ref, 0, payload, token)
                return created
            if seen:
                return None
            data = snapshot.to_dict() or {}
            current = _read(snapshot, data)
            updated = check_update_result(apply(current), snapshot.id)
            seq = stored_integer(data.get("eventCount")) or 0
            diff = changes(data, updated) if updated != current else {}
            writes.update(snapshot.reference, {**diff, "eventCount": seq + 1})
            _keep_event(writes, snapshot.reference, seq, payload, token)
            return updated

        return (yield from transact(self.client, "record_event", body, self.timeout))

    def append_event(self, communication_id: str, event: Mapping[str, Any]) -> Steps[None]:
        """A transaction: read the record, bump its ``eventCount``, write the event."""
        if not valid_id(communication_id):
            raise RecordNotFound(f"no record with id {communication_id!r}")
        payload = dict(event)
        ref = self.collection.document(communication_id)

        def body(tx: InTransaction) -> Steps[None]:
            snapshot = _found((yield tx.get_all([ref])), ref)
            if snapshot is None:
                raise RecordNotFound(f"no record with id {communication_id!r}")
            seq = stored_integer((snapshot.to_dict() or {}).get("eventCount")) or 0
            tx.transaction.update(ref, {"eventCount": seq + 1})
            _keep_event(tx.transaction, ref, seq, payload, None)

        yield from transact(self.client, "append_event", body, self.timeout)

    def events(self, communication_id: str) -> Steps[list[dict[str, Any]]]:
        """The ``events`` subcollection, ordered by ``seq``."""
        if not valid_id(communication_id):
            return []
        record = self.collection.document(communication_id)
        query = record.collection(EVENTS_SUBCOLLECTION).order_by("seq")
        with translated("events"):
            snapshots = yield RunQuery(query=query, timeout=self.timeout)
        kept = [(s.to_dict() or {}, s.id) for s in snapshots]
        kept.sort(key=lambda pair: (stored_integer(pair[0].get("seq")) or 0, pair[1]))
        return [dict(data["payload"]) if "payload" in data else data for data, _ in kept]

    def history(
        self, prospect_id: str, *, channel: Channel | None, limit: int, before: datetime | None
    ) -> Steps[list[Communication]]:
        """`queries.history`: newest first, ``limit``."""
        check_history_args(limit, before, channel)
        query = queries.history(
            self.collection, prospect_id, channel=channel, before=before, limit=limit
        )
        return (yield from self._records("history", query))

    def latest_outbound_to(self, number: str) -> Steps[Communication | None]:
        """`queries.latest_outbound_to`: the newest outbound record to ``number``."""
        query = queries.latest_outbound_to(self.collection, number)
        found = yield from self._records("latest_outbound_to", query)
        return found[0] if found else None

    def communications(
        self,
        *,
        channel: Channel | None,
        status: str | Collection[str] | None,
        prospect_id: str | None,
        open_only: bool,
        since: datetime | None,
        before: datetime | None,
        limit: int,
    ) -> Steps[list[Communication]]:
        """`queries.page`: one query, every filter in it, newest first."""
        statuses = check_page_args(
            channel=channel,
            status=status,
            prospect_id=prospect_id,
            since=since,
            before=before,
            limit=limit,
        )
        query = queries.page(
            self.collection,
            channel=channel,
            statuses=statuses,
            prospect_id=prospect_id,
            open_only=open_only,
            since=since,
            before=before,
            limit=limit,
        )
        return (yield from self._records("communications", query))

    def count_by_day(self, *, since: datetime, until: datetime) -> Steps[list[DayCount]]:
        """`queries.day_range` of the `COUNTED_FIELDS`: one query, counted here."""
        check_count_args(since, until)
        query = queries.day_range(self.collection, since, until, COUNTED_FIELDS)
        with translated("count_by_day"):
            snapshots = yield RunQuery(query=query, timeout=self.timeout)
        keys = (count_key(s.id, s.to_dict() or {}) for s in snapshots)
        return day_counts(key for key in keys if key is not None)

    def ping(self) -> Steps[None]:
        """A one-document query on the collection."""
        with translated("ping"):
            yield RunQuery(query=self.collection.limit(1), timeout=self.timeout)

    def _records(self, operation: str, query: Any) -> Steps[list[Communication]]:
        with translated(operation):
            snapshots = yield RunQuery(query=query, timeout=self.timeout)
        records = [_read(s, s.to_dict() or {}) for s in snapshots]
        records.sort(key=timestamp_order, reverse=True)
        return records

    def _with_id(self, communication: Communication) -> Communication:
        if communication.id is None:
            return replace(communication, id=new_id())
        if not valid_id(communication.id):
            raise RepositoryError(f"Firestore cannot store a document with id {communication.id!r}")
        return communication


def changes(data: Mapping[str, Any], updated: Communication) -> dict[str, Any]:
    """The field update that turns the stored ``data`` into ``updated``.

    Fields this library does not know (``eventCount``, a legacy service's
    extras) are kept; an optional field ``updated`` cleared is stored as null.
    """
    document = to_document(updated)
    removed = data.keys() & STORED_FIELDS - document.keys()
    document.update(dict.fromkeys(removed))
    return document


def event_ref(record: Any, seq: int, token: str | None) -> Any:
    """Where one kept callback goes in the record's ``events`` subcollection.

    With Twilio's idempotency token the id is derived from it, so a retried
    delivery finds its first copy by id. Without, the suffix keeps two
    writers that saw the same count (possible only without isolation, as on
    emulators) from overwriting each other.
    """
    events = record.collection(EVENTS_SUBCOLLECTION)
    if token is not None:
        return events.document("t-" + hashlib.sha256(token.encode("utf-8", "replace")).hexdigest())
    return events.document(f"{seq:012d}-{new_id()[:8]}")


def _keep_event(
    writer: Any, record: Any, seq: int, payload: Mapping[str, Any], token: str | None
) -> None:
    """Add the event document ``{seq, storedAt, payload}`` to a transaction or batch."""
    try:
        writer.set(
            event_ref(record, seq, token),
            {"seq": seq, "storedAt": utcnow(), "payload": dict(payload)},
        )
    except (TypeError, ValueError) as exc:  # the client encodes values here
        raise RepositoryError(f"event cannot be stored in Firestore: {exc}") from exc


def _found(snapshots: Sequence[Any], ref: Any) -> Any:
    """The snapshot of ``ref`` among ``snapshots`` (a `GetAll`'s result) if it exists, else None."""
    for snapshot in snapshots:
        if snapshot.reference.path == ref.path:
            return snapshot if snapshot.exists else None
    return None


def _apply_fn(transaction: Any, snapshot: Any, fn: _Update) -> Communication:
    """``fn`` applied to the record in ``snapshot``; its changes added to ``transaction``."""
    data = snapshot.to_dict() or {}
    current = _read(snapshot, data)
    updated = check_update_result(fn(current), snapshot.id)
    if updated != current:
        transaction.update(snapshot.reference, changes(data, updated))
    return updated


def _read(snapshot: Any, data: Mapping[str, Any]) -> Communication:
    """The record in ``snapshot``, whose ``to_dict()`` (a deep copy) is ``data``."""
    create_time = getattr(snapshot, "create_time", None)
    return from_document(
        snapshot.id,
        data,
        fallback_time=create_time if isinstance(create_time, datetime) else None,
    )


def _chunks(items: list[Communication], size: int) -> Iterator[list[Communication]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
