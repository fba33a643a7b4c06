"""The Google Cloud Firestore backend of the ``communications`` collection.

Install it with ``pip install servio-twilio[firestore]``. This module imports
``google.cloud.firestore`` itself, so ``import servio_twilio`` never does.

Documents keep the earlier Node.js service's field names (``prospectId``,
``type``, ``twilioSid``, ...); `to_document` and `from_document` are the one
place that converts. Every ``google.api_core``, ``grpc`` and ``google.auth``
error is translated at this boundary:

```
google.api_core.exceptions.AlreadyExists  -> DuplicateRecord
any other GoogleAPIError, grpc.RpcError,
google.auth.exceptions.GoogleAuthError    -> RepositoryError
```
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from datetime import UTC, datetime
from typing import Any, Final

import attrs

from servio_twilio.errors import (
    DuplicateRecord,
    RecordNotFound,
    RepositoryError,
    ServioTwilioError,
)
from servio_twilio.memory import new_id
from servio_twilio.models import Channel, Communication, Direction, utcnow
from servio_twilio.phone import strip_channel_prefix
from servio_twilio.repository import check_history_args
from servio_twilio.status import UNKNOWN, status_rank

try:
    import grpc
    from google.api_core import exceptions as api_exceptions
    from google.api_core import retry as api_retry
    from google.auth import exceptions as auth_exceptions
    from google.cloud import firestore
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "servio_twilio.firestore needs google-cloud-firestore: "
        "pip install 'servio-twilio[firestore]'"
    ) from exc

__all__ = [
    "EVENTS_SUBCOLLECTION",
    "MAX_BATCH_WRITES",
    "FirestoreRepository",
    "from_document",
    "to_document",
]

_log = logging.getLogger("servio_twilio.firestore")

MAX_BATCH_WRITES: Final = 500
"""The most writes one Firestore commit may carry."""

EVENTS_SUBCOLLECTION: Final = "events"
"""The subcollection of a record that keeps its callbacks."""
_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)
_MAX_ID_BYTES: Final = 1500
_MAX_DETAIL: Final = 200
_WHATSAPP_PREFIX: Final = "whatsapp:"


# --- conversion: the one place that knows the stored field names ---------------------------


def to_document(communication: Communication) -> dict[str, Any]:
    """The Firestore document of ``communication`` (its ``id`` is the document id).

    ``prospectId``, ``type``, ``direction``, ``to``, ``from``, ``status``,
    ``statusRank``, ``mediaUrls`` and the three timestamps are always written
    (``prospectId`` may be null); every other field only when it has a value,
    so ``twilioSid`` is absent while the record is pending. ``mediaUrl`` is
    ``media_url``, or the first of ``media_urls`` when that is unset.

    New in 0.1.0.
    """
    c = communication
    media_url = c.media_url if c.media_url is not None else next(iter(c.media_urls), None)
    document: dict[str, Any] = {
        "prospectId": c.prospect_id,
        "type": c.channel.value,
        "direction": c.direction.value,
        "to": c.to,
        "from": c.from_,
        "status": c.status,
        "statusRank": status_rank(c.channel, c.status),
        "mediaUrls": list(c.media_urls),
        "timestamp": c.timestamp,
        "createdAt": c.created_at,
        "updatedAt": c.updated_at,
    }
    optional = {
        "body": c.body,
        "mediaUrl": media_url,
        "twilioSid": c.twilio_sid,
        "duration": c.duration,
        "recordingDuration": c.recording_duration,
        "recordingUrl": c.recording_url,
        "recordingSid": c.recording_sid,
        "error": c.error,
        "errorCode": c.error_code,
    }
    document.update({key: value for key, value in optional.items() if value is not None})
    return document


_STORED_FIELDS: Final = frozenset(
    {
        *("prospectId", "type", "direction", "to", "from", "body", "mediaUrl", "mediaUrls"),
        *("twilioSid", "status", "statusRank", "duration", "recordingDuration"),
        *("recordingUrl", "recordingSid", "error", "errorCode"),
        *("timestamp", "createdAt", "updatedAt"),
    }
)
"""The fields `to_document` owns; `update` keeps any other field a document has."""


def from_document(
    document_id: str, data: Mapping[str, Any], *, fallback_time: datetime | None = None
) -> Communication:
    """The `Communication` stored as ``data`` under ``document_id``.

    Tolerates documents written by the earlier Node.js service: a missing
    ``direction`` reads as outbound, a missing ``type`` as WhatsApp when a
    number has a ``whatsapp:`` prefix (else SMS), ``whatsapp:`` prefixes are
    stripped, a missing ``status`` reads as ``unknown``, a missing
    ``mediaUrls`` as ``[mediaUrl]``, numeric strings as integers, ISO 8601
    strings or JavaScript milliseconds as times. Missing ``createdAt`` and
    ``updatedAt`` take ``timestamp``; a missing ``timestamp`` takes
    ``createdAt``, else ``updatedAt``, else ``fallback_time`` (the document's
    create time), else the Unix epoch. A document that still cannot be read
    raises `RepositoryError` naming it.

    New in 0.1.0.
    """
    try:
        raw_to = _text(data.get("to")) or ""
        raw_from = _text(data.get("from")) or ""
        channel = _channel(data.get("type"), raw_to, raw_from)
        direction = data.get("direction") or Direction.OUTBOUND
        media_urls = _media_urls(data.get("mediaUrls"), data.get("mediaUrl"))
        media_url = _text(data.get("mediaUrl")) or next(iter(media_urls), None)
        stamp = _time(data.get("timestamp"))
        created = _time(data.get("createdAt"))
        updated = _time(data.get("updatedAt"))
        timestamp = stamp or created or updated or _plain_utc(fallback_time) or _EPOCH
        return Communication(
            id=document_id,
            prospect_id=_text(data.get("prospectId")),
            channel=channel,
            direction=direction,
            to=strip_channel_prefix(raw_to),
            from_=strip_channel_prefix(raw_from),
            body=_text(data.get("body")),
            media_url=media_url,
            media_urls=media_urls,
            twilio_sid=_text(data.get("twilioSid")),
            status=_text(data.get("status")) or UNKNOWN,
            duration=_integer(data.get("duration")),
            recording_url=_text(data.get("recordingUrl")),
            recording_sid=_text(data.get("recordingSid")),
            recording_duration=_integer(data.get("recordingDuration")),
            error=_text(data.get("error")),
            error_code=_integer(data.get("errorCode")),
            timestamp=timestamp,
            created_at=created or timestamp,
            updated_at=updated or created or timestamp,
        )
    except (TypeError, ValueError) as exc:
        raise RepositoryError(
            f"document {document_id!r} cannot be read as a communication: {exc}"
        ) from exc


def _channel(value: object, raw_to: str, raw_from: str) -> Channel:
    if value is None or value == "":
        prefixed = any(n.strip().lower().startswith(_WHATSAPP_PREFIX) for n in (raw_to, raw_from))
        return Channel.WHATSAPP if prefixed else Channel.SMS
    return Channel(str(value))


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def _integer(value: object) -> int | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return int(value.strip())
    return None


def _media_urls(urls: object, first: object) -> tuple[str, ...]:
    if isinstance(urls, list | tuple):
        return tuple(str(url) for url in urls if url)
    if isinstance(first, str) and first:
        return (first,)
    return ()


def _plain_utc(value: datetime | None) -> datetime | None:
    """A plain aware-UTC `datetime` (Firestore gives a subclass with nanoseconds)."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=UTC)
    v = value.astimezone(UTC)
    return datetime(v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond, tzinfo=UTC)


def _time(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return _plain_utc(value)
    if isinstance(value, str) and value.strip():
        return _plain_utc(datetime.fromisoformat(value.strip()))
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _plain_utc(datetime.fromtimestamp(value / 1000, UTC))
    return None


# --- error translation: the boundary ---------------------------------------------------------


_STORAGE_ERRORS: Final = (
    api_exceptions.GoogleAPIError,
    grpc.RpcError,
    auth_exceptions.GoogleAuthError,
)


_TRANSIENT_WRITE_ERRORS: Final = (
    api_exceptions.ServiceUnavailable,
    api_exceptions.ResourceExhausted,
)
_TRANSIENT_READ_ERRORS: Final = (
    *_TRANSIENT_WRITE_ERRORS,
    api_exceptions.InternalServerError,
    api_exceptions.DeadlineExceeded,
)


def _call_options(timeout: float | None, transient: tuple[type[Exception], ...]) -> dict[str, Any]:
    """``retry`` and ``timeout`` for one Firestore call, retrying ``transient`` errors.

    The client's query stream re-runs a query whenever the retry predicate
    accepts the error, with no deadline of its own: the predicate here stops
    accepting once ``timeout`` seconds have passed, so a dead server fails
    the call in about ``timeout`` seconds instead of minutes.
    """
    if timeout is None:
        return {}
    deadline = time.monotonic() + timeout

    def predicate(exc: Exception) -> bool:
        return isinstance(exc, transient) and time.monotonic() < deadline

    policy = api_retry.Retry(
        predicate=predicate, initial=0.1, maximum=2.0, multiplier=2.0, timeout=timeout
    )
    return {"retry": policy, "timeout": timeout}


def _detail(exc: BaseException) -> str:
    """What failed, without anything a credential could hide in."""
    if isinstance(exc, api_exceptions.GoogleAPIError):
        message = getattr(exc, "message", None) or str(exc)
        text = f"{type(exc).__name__}: {message}"
    elif isinstance(exc, grpc.RpcError):
        code = exc.code() if isinstance(exc, grpc.Call) else None
        text = f"gRPC error {code.name if code is not None else type(exc).__name__}"
    else:
        text = type(exc).__name__
    return text if len(text) <= _MAX_DETAIL else text[: _MAX_DETAIL - 3] + "..."


def _storage_cause(exc: BaseException) -> BaseException | None:
    """The first Firestore, gRPC or auth error behind ``exc``, if any."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, _STORAGE_ERRORS):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


@contextlib.contextmanager
def _translated(operation: str) -> Iterator[None]:
    """Turn every Firestore, gRPC and auth error raised inside into ours."""
    try:
        yield
    except ServioTwilioError:
        raise
    except api_exceptions.AlreadyExists as exc:
        raise DuplicateRecord(f"Firestore {operation}: the record already exists") from exc
    except _STORAGE_ERRORS as exc:
        _log.warning("Firestore %s failed: %s", operation, _detail(exc))
        raise RepositoryError(f"Firestore {operation} failed: {_detail(exc)}") from exc


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
    collection name; ``timeout`` the seconds each Firestore call may take,
    retries included (None: the client library's default).

    `update` runs in a Firestore transaction; `add_many` commits batches of
    at most 500 writes; `append_event` keeps callbacks in the record's
    ``events`` subcollection, numbered by an ``eventCount`` on the record in
    the same transaction. Every storage failure raises `RepositoryError`.

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
        if not isinstance(collection, str) or not _valid_id(collection):
            raise ValueError(f"invalid Firestore collection name {collection!r}")
        if timeout is not None and not timeout > 0:
            raise ValueError(f"timeout must be positive seconds or None, got {timeout!r}")
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

    def add(self, communication: Communication) -> Communication:
        """Create the record's document; an existing id raises `DuplicateRecord`."""
        item = self._with_id(communication)
        assert item.id is not None
        with _translated("add"):
            self._collection.document(item.id).create(to_document(item), **self._writing())
        return item

    def add_many(self, communications: Iterable[Communication]) -> list[Communication]:
        """Create many records in batched commits of at most 500 writes.

        Nothing is written when an id repeats in the input or, as far as a
        read just before writing can tell, already exists (`DuplicateRecord`).
        Each commit is atomic; when one fails, the commits before it stay.
        """
        originals = list(communications)
        given = [c.id for c in originals if c.id is not None]
        items = [self._with_id(c) for c in originals]
        seen: set[str] = set()
        for item in items:
            assert item.id is not None
            if item.id in seen:
                raise DuplicateRecord(f"the id {item.id!r} appears twice in one add_many")
            seen.add(item.id)
        with _translated("add_many"):
            self._refuse_existing(given)
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
        with _translated("get"):
            snapshot = self._collection.document(communication_id).get(**self._reading())
        return self._read(snapshot) if snapshot.exists else None

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
            current = self._read(snapshot)
            updated = fn(current)
            if not isinstance(updated, Communication):
                raise RepositoryError(
                    f"update function returned {type(updated).__name__}, not Communication"
                )
            if updated.id != communication_id:
                raise RepositoryError("update function must not change the record's id")
            if updated != current:
                document = to_document(updated)
                removed = (snapshot.to_dict() or {}).keys() & _STORED_FIELDS - document.keys()
                document.update(dict.fromkeys(removed))  # cleared: stored as null
                transaction.update(ref, document)
            return updated

        result: Communication = self._transact("update", _apply)
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
            seq = _integer((snapshot.to_dict() or {}).get("eventCount")) or 0
            transaction.update(ref, {"eventCount": seq + 1})
            # The suffix keeps two writers that saw the same count (possible only
            # without isolation, as on emulators) from overwriting each other.
            event_ref = ref.collection(EVENTS_SUBCOLLECTION).document(f"{seq:012d}-{new_id()[:8]}")
            try:
                transaction.set(event_ref, {"seq": seq, "storedAt": utcnow(), "payload": payload})
            except (TypeError, ValueError) as exc:  # the client encodes values here
                raise RepositoryError(f"event cannot be stored in Firestore: {exc}") from exc

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
        with _translated("events"):
            snapshots = list(query.stream(**self._reading()))
        kept = [(s.to_dict() or {}, s.id) for s in snapshots]
        kept.sort(key=lambda pair: (_integer(pair[0].get("seq")) or 0, pair[1]))
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
        with _translated("ping"):
            list(self._collection.limit(1).stream(**self._reading()))

    # --- helpers ---

    def _with_id(self, communication: Communication) -> Communication:
        if communication.id is None:
            return attrs.evolve(communication, id=new_id())
        if not _valid_id(communication.id):
            raise RepositoryError(f"Firestore cannot store a document with id {communication.id!r}")
        return communication

    def _reading(self) -> dict[str, Any]:
        return _call_options(self._timeout, _TRANSIENT_READ_ERRORS)

    def _writing(self) -> dict[str, Any]:
        return _call_options(self._timeout, _TRANSIENT_WRITE_ERRORS)

    def _transact(self, operation: str, body: Callable[[Any], Any]) -> Any:
        """Run ``body(transaction)`` in a Firestore transaction, retried on contention."""
        with _translated(operation):
            try:
                return firestore.transactional(body)(self._client.transaction())
            except ValueError as exc:
                # The client raises ValueError when it gives up after max_attempts
                # aborts, or when it cannot roll back after a failed begin: the
                # storage error is then its cause or context.
                cause = _storage_cause(exc)
                if cause is None:
                    raise
                raise RepositoryError(f"Firestore {operation} failed: {_detail(cause)}") from cause

    def _refuse_existing(self, ids: list[str]) -> None:
        """Raise `DuplicateRecord` when a caller-given id is already stored.

        Auto-assigned ids are fresh, so only given ones are read (one call).
        """
        if not ids:
            return
        refs = [self._collection.document(i) for i in ids]
        for snapshot in self._client.get_all(refs, field_paths=[], **self._reading()):
            if snapshot.exists:
                raise DuplicateRecord(f"a record with id {snapshot.id!r} already exists")

    def _read(self, snapshot: Any) -> Communication:
        create_time = getattr(snapshot, "create_time", None)
        return from_document(
            snapshot.id,
            snapshot.to_dict() or {},
            fallback_time=create_time if isinstance(create_time, datetime) else None,
        )

    def _run(self, operation: str, query: Any) -> list[Communication]:
        with _translated(operation):
            snapshots = list(query.stream(**self._reading()))
        records = [self._read(s) for s in snapshots]
        records.sort(key=lambda c: (c.timestamp, c.id or ""), reverse=True)
        return records
