"""The Google Cloud Firestore backend of the ``communications`` collection.

Install it with ``pip install servio-twilio[firestore]``. This module imports
``google.cloud.firestore`` itself, so ``import servio_twilio`` never does.

Documents keep the earlier Node.js service's field names (``prospectId``,
``type``, ``twilioSid``, ...); `to_document` and `from_document` (from
`servio_twilio.storage.firestore.documents`) are the one place that converts. Every
``google.api_core``, ``grpc`` and ``google.auth`` error is translated at this
boundary (by `servio_twilio.storage.firestore.errors`):

```
google.api_core.exceptions.AlreadyExists  -> DuplicateRecord
any other GoogleAPIError, grpc.RpcError,
google.auth.exceptions.GoogleAuthError    -> RepositoryError
```
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextvars import ContextVar
from datetime import datetime
from typing import Any, Final

from servio_twilio.domain.errors import (
    DuplicateRecord,
    InvalidArgument,
    RecordNotFound,
    RepositoryError,
)
from servio_twilio.domain.models import Channel, Communication, Direction, replace, utcnow
from servio_twilio.storage.firestore.documents import (
    STORED_FIELDS,
    from_document,
    stored_integer,
    to_document,
)
from servio_twilio.storage.memory import new_id
from servio_twilio.storage.repository import (
    check_history_args,
    check_update_result,
    timestamp_order,
)

try:
    from google.api_core import exceptions as api_exceptions
    from google.cloud import firestore
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "servio_twilio.firestore needs google-cloud-firestore: "
        "pip install 'servio-twilio[firestore]'"
    ) from exc

from servio_twilio.storage.firestore.errors import (
    detail,
    read_options,
    storage_cause,
    translated,
    write_options,
)

__all__ = [
    "EVENTS_SUBCOLLECTION",
    "MAX_BATCH_WRITES",
    "FirestoreRepository",
]

MAX_BATCH_WRITES: Final = 500
"""The most writes one Firestore commit may carry."""

EVENTS_SUBCOLLECTION: Final = "events"
"""The subcollection of a record that keeps its callbacks."""
_MAX_ID_BYTES: Final = 1500
_MAX_ATTEMPTS: Final = 5  # a transaction's commits Firestore may abort, as the client's runner

_log = logging.getLogger("servio_twilio.firestore")

# The repository running a transaction in this thread (or task) and when its time runs out.
_DEADLINE: ContextVar[tuple[object, float | None]] = ContextVar(
    "servio_twilio_firestore_deadline", default=(None, None)
)


class _OutOfTime(RepositoryError):
    """A transaction's time ran out before its next call: `_transact` names the operation."""


def _valid_id(communication_id: object) -> bool:
    """Whether Firestore can hold a document with this id in one collection."""
    return (
        isinstance(communication_id, str)
        and communication_id not in {"", ".", ".."}
        and "/" not in communication_id
        and not (communication_id.startswith("__") and communication_id.endswith("__"))
        and len(communication_id.encode("utf-8", "surrogatepass")) <= _MAX_ID_BYTES
    )


def _chunks(items: list[Communication], size: int) -> Iterator[list[Communication]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# --- the repository -------------------------------------------------------------------------


class FirestoreRepository:
    """A `CommunicationRepository` over a Firestore collection.

    ``client`` is a ``google.cloud.firestore.Client``; ``collection`` the
    collection name; ``timeout`` the seconds each repository call may take,
    retries and whole transactions included (None: the client library's
    defaults, which let a transaction wait minutes for a dead host).

    `update` runs in a Firestore transaction; `add_many` commits batches of
    at most 500 writes; `append_event` keeps callbacks in the record's
    ``events`` subcollection, numbered by an ``eventCount`` on the record in
    the same transaction. Every storage failure raises `RepositoryError`.

    Raises:
        InvalidArgument: (a ``ValueError``) a malformed ``collection`` name, or a
            ``timeout`` that is not positive.

    New in 0.1.0.
    """

    blocking = True

    def __init__(
        self,
        client: firestore.Client,
        *,
        collection: str = "communications",
        timeout: float | None = 30.0,
    ) -> None:
        if not _valid_id(collection):
            raise InvalidArgument(f"invalid Firestore collection name {collection!r}")
        if timeout is not None and not timeout > 0:
            raise InvalidArgument(f"timeout must be positive seconds or None, got {timeout!r}")
        self._client = client
        self._collection_name = collection
        self._timeout = timeout
        self._collection = client.collection(collection)

    def __repr__(self) -> str:
        return f"<FirestoreRepository collection={self._collection_name!r}>"

    @property
    def collection(self) -> str:
        """The collection's name."""
        return self._collection_name

    def add(
        self,
        communication: Communication,
        *,
        event: Mapping[str, Any] | None = None,
        token: str | None = None,
    ) -> Communication:
        """Create the record's document (with its first event: one commit).

        An existing id raises `DuplicateRecord`, with nothing written.
        """
        item = self._with_id(communication)
        assert item.id is not None
        ref = self._collection.document(item.id)
        with translated("add"):
            if event is None:
                ref.create(to_document(item), **self._writing())
                return item
            batch = self._client.batch()
            batch.create(ref, {**to_document(item), "eventCount": 1})
            _keep_event(batch, ref, 0, event, token)
            batch.commit(**self._writing())
        return item

    def add_many(self, communications: Iterable[Communication]) -> list[Communication]:
        """Create many records in batched commits of at most 500 writes.

        Nothing is written when an id repeats in the input (`DuplicateRecord`).
        Each commit is atomic and creates its documents, so one whose id
        exists fails (`DuplicateRecord`) with nothing of it written; the
        commits before it stay.
        """
        items = [self._with_id(c) for c in communications]
        seen: set[str] = set()
        for item in items:
            assert item.id is not None
            if item.id in seen:
                raise DuplicateRecord(f"the id {item.id!r} appears twice in one add_many")
            seen.add(item.id)
        with translated("add_many"):
            for chunk in _chunks(items, MAX_BATCH_WRITES):
                batch = self._client.batch()
                for item in chunk:
                    assert item.id is not None
                    batch.create(self._collection.document(item.id), to_document(item))
                batch.commit(**self._writing())
        return items

    def get(self, communication_id: str) -> Communication | None:
        """The record with this id, or None."""
        if not _valid_id(communication_id):
            return None
        with translated("get"):
            snapshot = self._collection.document(communication_id).get(**self._reading())
        return self._read(snapshot, snapshot.to_dict() or {}) if snapshot.exists else None

    def find_by_sid(self, sid: str) -> Communication | None:
        """The record whose ``twilioSid`` is ``sid``, or None."""
        query = self._collection.where(filter=firestore.FieldFilter("twilioSid", "==", sid))
        found = self._run("find_by_sid", query.limit(1))
        return found[0] if found else None

    def update(
        self, communication_id: str, fn: Callable[[Communication], Communication]
    ) -> Communication:
        """Read, apply ``fn`` and write in one Firestore transaction.

        Only changed documents are written, with a field update: fields this
        library does not know (``eventCount``, a legacy service's extras) are
        kept, and an optional field ``fn`` cleared is stored as null. A missing
        id raises `RecordNotFound`; ``fn`` returning another type or changing
        the id raises `RepositoryError`.
        """
        if not _valid_id(communication_id):
            raise RecordNotFound(f"no record with id {communication_id!r}")
        ref = self._collection.document(communication_id)

        def _apply(transaction: Any) -> Communication:
            snapshot = ref.get(transaction=transaction, **self._reading())
            if not snapshot.exists:
                raise RecordNotFound(f"no record with id {communication_id!r}")
            return self._apply_fn(transaction, snapshot, fn)

        result: Communication = self._transact("update", _apply)
        return result

    def update_many(
        self, updates: Mapping[str, Callable[[Communication], Communication]]
    ) -> dict[str, Communication]:
        """Apply each ``fn`` in one transaction: one read of all the records, one commit.

        Ids with no record are left out of the result. At most 500 records
        are updated per transaction (Firestore's limit of writes per
        commit): a larger call runs one transaction per 500, each atomic.
        """
        wanted = {i: fn for i, fn in updates.items() if _valid_id(i)}
        done: dict[str, Communication] = {}
        ids = list(wanted)
        for start in range(0, len(ids), MAX_BATCH_WRITES):
            refs = [self._collection.document(i) for i in ids[start : start + MAX_BATCH_WRITES]]

            def _apply(transaction: Any, refs: list[Any] = refs) -> dict[str, Communication]:
                found: dict[str, Communication] = {}
                snapshots = self._client.get_all(refs, transaction=transaction, **self._reading())
                for snapshot in snapshots:
                    if snapshot.exists:
                        found[snapshot.id] = self._apply_fn(
                            transaction, snapshot, wanted[snapshot.id]
                        )
                return found

            done.update(self._transact("update_many", _apply))
        return done

    def record_event(
        self,
        event: Mapping[str, Any],
        apply: Callable[[Communication | None], Communication],
        *,
        communication_id: str | None = None,
        sid: str | None = None,
        token: str | None = None,
    ) -> Communication | None:
        """Find, update or create the record and keep ``event``: one transaction.

        By id that is one read (the record and, with ``token``, the event
        that token would have kept, in one call) and one commit; the lookup
        by SID, when the id does not serve, is one query in the same
        transaction. See `CommunicationRepository.record_event`.
        """
        payload = dict(event)
        by_id = (
            self._collection.document(communication_id)
            if communication_id is not None and _valid_id(communication_id)
            else None
        )
        query = None
        if sid is not None:
            query = self._collection.where(
                filter=firestore.FieldFilter("twilioSid", "==", sid)
            ).limit(1)

        def _record(transaction: Any) -> Communication | None:
            snapshot, seen = None, False
            if by_id is not None:
                refs = [by_id] if token is None else [by_id, _event_ref(by_id, 0, token)]
                for found in self._client.get_all(refs, transaction=transaction, **self._reading()):
                    if found.reference.path == by_id.path:
                        snapshot = found if found.exists else None
                    else:
                        seen = found.exists
                stored_sid = (snapshot.to_dict() or {}).get("twilioSid") if snapshot else None
                if sid is not None and stored_sid not in (None, sid):
                    snapshot, seen = None, False  # cid names a record of another SID
            if snapshot is None and query is not None:
                matches = list(query.stream(transaction=transaction, **self._reading()))
                snapshot = matches[0] if matches else None
                if snapshot is not None and token is not None:
                    token_ref = _event_ref(snapshot.reference, 0, token)
                    [kept] = self._client.get_all(
                        [token_ref], transaction=transaction, **self._reading()
                    )
                    seen = kept.exists
            if snapshot is None:
                created = apply(None)
                created = self._with_id(created)
                assert created.id is not None
                ref = self._collection.document(created.id)
                transaction.create(ref, {**to_document(created), "eventCount": 1})
                _keep_event(transaction, ref, 0, payload, token)
                return created
            if seen:
                return None
            data = snapshot.to_dict() or {}
            current = self._read(snapshot, data)
            updated = check_update_result(apply(current), snapshot.id)
            seq = stored_integer(data.get("eventCount")) or 0
            changes = _changes(data, updated) if updated != current else {}
            transaction.update(snapshot.reference, {**changes, "eventCount": seq + 1})
            _keep_event(transaction, snapshot.reference, seq, payload, token)
            return updated

        result: Communication | None = self._transact("record_event", _record)
        return result

    def append_event(self, communication_id: str, event: Mapping[str, Any]) -> None:
        """Keep ``event`` in the record's ``events`` subcollection, after earlier ones.

        One transaction reads the record (missing: `RecordNotFound`), bumps
        its ``eventCount`` and writes the event document ``{seq, storedAt,
        payload}``, so events keep their order even within a millisecond.
        A value Firestore cannot store raises `RepositoryError`.
        """
        if not _valid_id(communication_id):
            raise RecordNotFound(f"no record with id {communication_id!r}")
        payload = dict(event)
        ref = self._collection.document(communication_id)

        def _append(transaction: Any) -> None:
            snapshot = ref.get(transaction=transaction, **self._reading())
            if not snapshot.exists:
                raise RecordNotFound(f"no record with id {communication_id!r}")
            seq = stored_integer((snapshot.to_dict() or {}).get("eventCount")) or 0
            transaction.update(ref, {"eventCount": seq + 1})
            _keep_event(transaction, ref, seq, payload, None)

        self._transact("append_event", _append)

    def events(self, communication_id: str) -> list[dict[str, Any]]:
        """The record's kept callbacks as given, oldest first."""
        if not _valid_id(communication_id):
            return []
        query = (
            self._collection.document(communication_id)
            .collection(EVENTS_SUBCOLLECTION)
            .order_by("seq")
        )
        with translated("events"):
            snapshots = list(query.stream(**self._reading()))
        kept = [(s.to_dict() or {}, s.id) for s in snapshots]
        kept.sort(key=lambda pair: (stored_integer(pair[0].get("seq")) or 0, pair[1]))
        return [dict(data["payload"]) if "payload" in data else data for data, _ in kept]

    def history(
        self,
        prospect_id: str,
        *,
        channel: Channel | None = None,
        limit: int = 50,
        before: datetime | None = None,
    ) -> list[Communication]:
        """A prospect's records, newest ``timestamp`` first; ``before`` is exclusive."""
        check_history_args(limit, before, channel)
        query = self._collection.where(
            filter=firestore.FieldFilter("prospectId", "==", prospect_id)
        )
        if channel is not None:
            query = query.where(filter=firestore.FieldFilter("type", "==", Channel(channel).value))
        if before is not None:
            query = query.where(filter=firestore.FieldFilter("timestamp", "<", before))
        query = query.order_by("timestamp", direction=firestore.Query.DESCENDING).limit(limit)
        return self._run("history", query)

    def latest_outbound_to(self, number: str) -> Communication | None:
        """The newest outbound record whose ``to`` is ``number``, or None."""
        query = (
            self._collection.where(filter=firestore.FieldFilter("to", "==", number))
            .where(filter=firestore.FieldFilter("direction", "==", Direction.OUTBOUND.value))
            .order_by("timestamp", direction=firestore.Query.DESCENDING)
            .limit(1)
        )
        found = self._run("latest_outbound_to", query)
        return found[0] if found else None

    def ping(self) -> None:
        """Read one document of the collection (if any): `RepositoryError` when that fails."""
        with translated("ping"):
            list(self._collection.limit(1).stream(**self._reading()))

    # --- helpers ---

    def _with_id(self, communication: Communication) -> Communication:
        if communication.id is None:
            return replace(communication, id=new_id())
        if not _valid_id(communication.id):
            raise RepositoryError(f"Firestore cannot store a document with id {communication.id!r}")
        return communication

    def _reading(self) -> dict[str, Any]:
        return read_options(self._time_left())

    def _writing(self) -> dict[str, Any]:
        return write_options(self._time_left())

    def _time_left(self) -> float | None:
        """The seconds the next Firestore call may take: inside `_transact`, what is left.

        Raises `_OutOfTime` inside a transaction whose time has run out.
        """
        owner, deadline = _DEADLINE.get()
        if owner is not self or deadline is None:
            return self._timeout
        left = deadline - time.monotonic()
        if left <= 0:
            raise _OutOfTime(f"the timeout of {self._timeout:g} s ran out")
        return left

    def _transact(self, operation: str, body: Callable[[Any], Any]) -> Any:
        """Run ``body(transaction)`` in a Firestore transaction, retried on contention.

        The whole transaction ends within the repository's ``timeout``: its
        begin, the body's reads, its commit and rollback each get what is left
        of it (the client library's own runner, ``firestore.transactional``,
        gives begin, commit and rollback its default policy: up to a minute
        each against a dead host). A commit Firestore aborts (contention)
        begins again, at most `_MAX_ATTEMPTS` times in all, while time is left.
        """
        deadline = None if self._timeout is None else time.monotonic() + self._timeout
        scope = _DEADLINE.set((self, deadline))
        try:
            with translated(operation):
                return self._attempts(operation, body)
        except _OutOfTime as exc:
            cause = storage_cause(exc)
            what = f"{exc}" if cause is None else f"{exc}; last error: {detail(cause)}"
            _log.warning("Firestore %s failed: %s", operation, what)
            raise RepositoryError(f"Firestore {operation} failed: {what}") from cause
        finally:
            _DEADLINE.reset(scope)

    def _attempts(self, operation: str, body: Callable[[Any], Any]) -> Any:
        """`_transact`'s loop: begin, ``body``, commit; again while commits abort."""
        client = self._client
        api = client._firestore_api
        transaction = client.transaction()
        retry_id: bytes | None = None
        aborted: BaseException | None = None
        attempts = 0
        while attempts < _MAX_ATTEMPTS:
            try:
                options = self._reading()
            except _OutOfTime:
                if aborted is None:
                    raise
                break
            attempts += 1
            transaction._clean_up()
            begun = api.begin_transaction(
                request={
                    "database": client._database_string,
                    "options": transaction._options_protobuf(retry_id),
                },
                metadata=client._rpc_metadata,
                **options,
            )
            transaction._id = begun.transaction
            retry_id = retry_id or begun.transaction
            try:
                result = body(transaction)
            except BaseException:
                self._roll_back(transaction)
                raise
            try:
                api.commit(
                    request={
                        "database": client._database_string,
                        "writes": transaction._write_pbs,
                        "transaction": transaction._id,
                    },
                    metadata=client._rpc_metadata,
                    **self._writing(),
                )
            except api_exceptions.Aborted as exc:  # contention: Firestore ended it
                aborted = exc
                transaction._clean_up()
                continue
            except BaseException:
                self._roll_back(transaction)
                raise
            transaction._clean_up()
            return result
        assert aborted is not None
        what = f"{detail(aborted)} (aborted {attempts} times)"
        _log.warning("Firestore %s failed: %s", operation, what)
        raise RepositoryError(f"Firestore {operation} failed: {what}") from aborted

    def _roll_back(self, transaction: Any) -> None:
        """Roll back a transaction in progress, in the time left; a failure is only logged.

        With no time left the rollback is skipped: Firestore ends an idle
        transaction by itself.
        """
        if not transaction.in_progress:
            return
        try:
            options = self._writing()
        except _OutOfTime:
            transaction._clean_up()
            return
        client = self._client
        try:
            client._firestore_api.rollback(
                request={"database": client._database_string, "transaction": transaction._id},
                metadata=client._rpc_metadata,
                **options,
            )
        except Exception as exc:  # the error that made us roll back is the one to raise
            _log.debug("Firestore rollback failed: %s", detail(exc))
        finally:
            transaction._clean_up()

    def _apply_fn(
        self, transaction: Any, snapshot: Any, fn: Callable[[Communication], Communication]
    ) -> Communication:
        """``fn`` applied to the record in ``snapshot``; its changes added to ``transaction``."""
        data = snapshot.to_dict() or {}
        current = self._read(snapshot, data)
        updated = check_update_result(fn(current), snapshot.id)
        if updated != current:
            transaction.update(snapshot.reference, _changes(data, updated))
        return updated

    def _read(self, snapshot: Any, data: Mapping[str, Any]) -> Communication:
        """The record in ``snapshot``, whose ``to_dict()`` (a deep copy) is ``data``."""
        create_time = getattr(snapshot, "create_time", None)
        return from_document(
            snapshot.id,
            data,
            fallback_time=create_time if isinstance(create_time, datetime) else None,
        )

    def _run(self, operation: str, query: Any) -> list[Communication]:
        with translated(operation):
            snapshots = list(query.stream(**self._reading()))
        records = [self._read(s, s.to_dict() or {}) for s in snapshots]
        records.sort(key=timestamp_order, reverse=True)
        return records


def _changes(data: Mapping[str, Any], updated: Communication) -> dict[str, Any]:
    """The field update that turns the stored ``data`` into ``updated``.

    Fields this library does not know (``eventCount``, a legacy service's
    extras) are kept; an optional field ``updated`` cleared is stored as null.
    """
    document = to_document(updated)
    removed = data.keys() & STORED_FIELDS - document.keys()
    document.update(dict.fromkeys(removed))
    return document


def _event_ref(record: Any, seq: int, token: str | None) -> Any:
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
            _event_ref(record, seq, token),
            {"seq": seq, "storedAt": utcnow(), "payload": dict(payload)},
        )
    except (TypeError, ValueError) as exc:  # the client encodes values here
        raise RepositoryError(f"event cannot be stored in Firestore: {exc}") from exc
