"""The Firestore consent stores: one document per channel and number, with its history.

Install them with ``pip install 'servio-twilio[firestore]'``. A consent is the
document ``{collection}/{channel}:{number}`` (``sms:+5511999999999``):

| field | type |
|---|---|
| `number` | E.164 string |
| `channel` | `sms` \\| `whatsapp` \\| `call` |
| `optedOut` | boolean: the latest change |
| `source` | string: what made the latest change (``inbound:STOP``, ``twilio:21610``) |
| `updatedAt` | timestamp of the latest change |

and each change is a document of its ``history`` subcollection
(``optedOut``, ``source``, ``at``). A change is one commit of both writes
(atomic, no read, no transaction), so opting out costs one RPC;
`is_opted_out` is one read of the consent document and `get` two (the
document and the latest `MAX_CONSENT_HISTORY` changes). `opted_out` is one
query (``optedOut == true`` [and ``channel ==``], ``updatedAt`` descending),
served by the two ``consents`` indexes of ``firestore.indexes.json``. When two
changes race, the later commit decides. Every ``google.api_core``, ``grpc`` and
``google.auth`` error becomes `RepositoryError`.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Final, Generic, TypeVar

from servio_twilio.domain.consent import (
    MAX_CONSENT_HISTORY,
    Consent,
    ConsentChange,
    check_source,
    consent_number,
)
from servio_twilio.domain.errors import InvalidArgument, RepositoryError
from servio_twilio.domain.models import Channel, parse_channel, utcnow
from servio_twilio.storage.consent import aware_utc_now, check_listing_args

try:
    from google.cloud import firestore
except ImportError as exc:  # pragma: no cover - depends on the installed extras
    raise ImportError(
        "servio_twilio.firestore needs google-cloud-firestore: "
        "pip install 'servio-twilio[firestore]'"
    ) from exc

from servio_twilio.storage.firestore.errors import read_options, translated, write_options
from servio_twilio.storage.firestore.operations import valid_id

__all__ = [
    "CONSENTS_COLLECTION",
    "HISTORY_SUBCOLLECTION",
    "AsyncFirestoreConsentStore",
    "FirestoreConsentStore",
    "consent_document_id",
]

CONSENTS_COLLECTION: Final = "consents"
"""The default collection of consent documents."""
HISTORY_SUBCOLLECTION: Final = "history"
"""The subcollection of a consent document that keeps its changes."""


def consent_document_id(number: str, channel: Channel | str) -> str:
    """The id of the consent document of ``number`` on ``channel``: ``sms:+5511999999999``.

    New in 0.2.0.
    """
    return f"{parse_channel(channel).value}:{consent_number(number)}"


def _check_collection(collection: object) -> str:
    if not isinstance(collection, str) or not valid_id(collection):
        raise InvalidArgument(f"invalid Firestore collection name {collection!r:.60}")
    return collection


def _check_timeout(timeout: object) -> float | None:
    if timeout is None:
        return None
    if isinstance(timeout, bool) or not isinstance(timeout, int | float) or not timeout > 0:
        raise InvalidArgument(f"timeout must be positive seconds or None, got {timeout!r}")
    return float(timeout)


def _plain_utc(value: object) -> datetime:
    """A stored time as a plain aware-UTC datetime (Firestore gives a nanosecond subclass)."""
    if not isinstance(value, datetime):
        raise TypeError(f"expected a timestamp, got {type(value).__name__}")
    v = value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    return datetime(v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond, tzinfo=UTC)


def _changed(
    number: str, channel: Channel | str, opted_out: bool, source: str, clock: Callable[[], datetime]
) -> tuple[str, str, dict[str, Any], dict[str, Any]]:
    """(document id, history id, the consent document, the change's document) of one change."""
    number = consent_number(number)
    parsed = parse_channel(channel)
    source = check_source(source)
    at = aware_utc_now(clock)
    state = {
        "number": number,
        "channel": parsed.value,
        "optedOut": opted_out,
        "source": source,
        "updatedAt": at,
    }
    change = {"optedOut": opted_out, "source": source, "at": at}
    history_id = f"{at:%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}"
    return f"{parsed.value}:{number}", history_id, state, change


def _consent(document_id: str, data: Mapping[str, Any], changes: list[Any]) -> Consent:
    """The `Consent` stored as ``data``, with ``changes`` (history snapshots, any order)."""
    try:
        history = sorted(
            (
                (_plain_utc(item.get("at")), item.id, item.to_dict() or {})
                for item in changes
                if item.exists
            ),
            key=lambda entry: (entry[0], entry[1]),
        )
        return Consent(
            number=str(data["number"]),
            channel=str(data["channel"]),
            opted_out=bool(data["optedOut"]),
            source=str(data.get("source") or ""),
            updated_at=_plain_utc(data.get("updatedAt")),
            history=tuple(
                ConsentChange(
                    opted_out=bool(entry.get("optedOut")), source=str(entry.get("source")), at=at
                )
                for at, _, entry in history
            ),
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RepositoryError(
            f"consent document {document_id!r} cannot be read: {type(exc).__name__}: {exc}"
        ) from exc


_Client = TypeVar("_Client", "firestore.Client", "firestore.AsyncClient")


class _ConsentCollection(Generic[_Client]):
    """What both Firestore consent stores hold: the checked collection, timeout and clock."""

    def __init__(
        self,
        client: _Client,
        *,
        collection: str = CONSENTS_COLLECTION,
        timeout: float | None = 30.0,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._collection_name = _check_collection(collection)
        self._timeout = _check_timeout(timeout)
        if not callable(clock):
            raise TypeError("clock must be callable")
        self._client: _Client = client
        self._clock = clock
        self._collection: Any = client.collection(collection)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} collection={self._collection_name!r}>"

    @property
    def collection(self) -> str:
        """The collection's name."""
        return self._collection_name


class FirestoreConsentStore(_ConsentCollection[firestore.Client]):
    """A `ConsentStore` over a Firestore collection (``google.cloud.firestore.Client``).

    ``timeout`` is the seconds each call may take, retries included (None:
    the client library's defaults); ``clock`` gives the time of each change.

    Raises:
        InvalidArgument: (a ``ValueError``) a malformed ``collection`` name or a
            ``timeout`` that is not positive.

    New in 0.2.0.
    """

    blocking = True
    """Calls wait on Firestore: an ASGI app runs them in a worker thread."""

    def opt_out(self, number: str, channel: Channel | str, *, source: str) -> None:
        """See `ConsentStore.opt_out`: one commit."""
        self._change(number, channel, True, source, "opt_out")

    def opt_in(self, number: str, channel: Channel | str, *, source: str) -> None:
        """See `ConsentStore.opt_in`: one commit."""
        self._change(number, channel, False, source, "opt_in")

    def is_opted_out(self, number: str, channel: Channel | str) -> bool:
        """See `ConsentStore.is_opted_out`: one read."""
        ref = self._collection.document(consent_document_id(number, channel))
        with translated("consent is_opted_out"):
            snapshot = ref.get(field_paths=["optedOut"], **read_options(self._timeout))
        return bool(snapshot.exists and (snapshot.to_dict() or {}).get("optedOut") is True)

    def get(self, number: str, channel: Channel | str) -> Consent | None:
        """See `ConsentStore.get`: two reads (the document, its latest changes)."""
        document_id = consent_document_id(number, channel)
        ref = self._collection.document(document_id)
        with translated("consent get"):
            snapshot = ref.get(**read_options(self._timeout))
            if not snapshot.exists:
                return None
            changes = list(_latest(ref).stream(**read_options(self._timeout)))
        return _consent(document_id, snapshot.to_dict() or {}, changes)

    def opted_out(
        self,
        *,
        channel: Channel | str | None = None,
        limit: int = 50,
        before: datetime | None = None,
    ) -> list[Consent]:
        """See `ConsentStore.opted_out`: one query."""
        query = _opted_out_query(self._collection, channel, limit, before)
        with translated("consent opted_out"):
            snapshots = list(query.stream(**read_options(self._timeout)))
        return _listed(snapshots)

    def _change(
        self, number: str, channel: Channel | str, opted_out: bool, source: str, operation: str
    ) -> None:
        document_id, history_id, state, change = _changed(
            number, channel, opted_out, source, self._clock
        )
        ref = self._collection.document(document_id)
        with translated(f"consent {operation}"):
            batch = self._client.batch()
            batch.set(ref, state)
            batch.create(ref.collection(HISTORY_SUBCOLLECTION).document(history_id), change)
            batch.commit(**write_options(self._timeout))


def _opted_out_query(
    collection: Any, channel: Channel | str | None, limit: int, before: datetime | None
) -> Any:
    """The query of `opted_out`, once its arguments are checked."""
    wanted = check_listing_args(channel, limit, before)
    query = collection.where(filter=firestore.FieldFilter("optedOut", "==", True))
    if wanted is not None:
        query = query.where(filter=firestore.FieldFilter("channel", "==", wanted.value))
    if before is not None:
        query = query.where(filter=firestore.FieldFilter("updatedAt", "<", before))
    return query.order_by("updatedAt", direction=firestore.Query.DESCENDING).limit(limit)


def _listed(snapshots: list[Any]) -> list[Consent]:
    """The consents of `opted_out`'s documents (without their history)."""
    return [_consent(item.id, item.to_dict() or {}, []) for item in snapshots if item.exists]


def _latest(ref: Any) -> Any:
    """The query of a consent document's latest `MAX_CONSENT_HISTORY` changes."""
    return (
        ref.collection(HISTORY_SUBCOLLECTION)
        .order_by("at", direction=firestore.Query.DESCENDING)
        .limit(MAX_CONSENT_HISTORY)
    )


class AsyncFirestoreConsentStore(_ConsentCollection[firestore.AsyncClient]):
    """An `AsyncConsentStore` over a Firestore collection (``google.cloud.firestore.AsyncClient``).

    Stores exactly the documents `FirestoreConsentStore` stores; the same
    arguments and errors.

    Raises:
        InvalidArgument: (a ``ValueError``) a malformed ``collection`` name or a
            ``timeout`` that is not positive.

    New in 0.2.0.
    """

    blocking = False
    """Calls are awaited on the event loop."""

    async def opt_out(self, number: str, channel: Channel | str, *, source: str) -> None:
        """See `ConsentStore.opt_out`: one commit."""
        await self._change(number, channel, True, source, "opt_out")

    async def opt_in(self, number: str, channel: Channel | str, *, source: str) -> None:
        """See `ConsentStore.opt_in`: one commit."""
        await self._change(number, channel, False, source, "opt_in")

    async def is_opted_out(self, number: str, channel: Channel | str) -> bool:
        """See `ConsentStore.is_opted_out`: one read."""
        ref = self._collection.document(consent_document_id(number, channel))
        with translated("consent is_opted_out"):
            snapshot = await ref.get(
                field_paths=["optedOut"], **read_options(self._timeout, asynchronous=True)
            )
        return bool(snapshot.exists and (snapshot.to_dict() or {}).get("optedOut") is True)

    async def get(self, number: str, channel: Channel | str) -> Consent | None:
        """See `ConsentStore.get`: two reads (the document, its latest changes)."""
        document_id = consent_document_id(number, channel)
        ref = self._collection.document(document_id)
        with translated("consent get"):
            snapshot = await ref.get(**read_options(self._timeout, asynchronous=True))
            if not snapshot.exists:
                return None
            query = _latest(ref).stream(**read_options(self._timeout, asynchronous=True))
            changes = [item async for item in query]
        return _consent(document_id, snapshot.to_dict() or {}, changes)

    async def opted_out(
        self,
        *,
        channel: Channel | str | None = None,
        limit: int = 50,
        before: datetime | None = None,
    ) -> list[Consent]:
        """See `ConsentStore.opted_out`: one query."""
        query = _opted_out_query(self._collection, channel, limit, before)
        with translated("consent opted_out"):
            stream = query.stream(**read_options(self._timeout, asynchronous=True))
            snapshots = [item async for item in stream]
        return _listed(snapshots)

    async def _change(
        self, number: str, channel: Channel | str, opted_out: bool, source: str, operation: str
    ) -> None:
        document_id, history_id, state, change = _changed(
            number, channel, opted_out, source, self._clock
        )
        ref = self._collection.document(document_id)
        with translated(f"consent {operation}"):
            batch = self._client.batch()
            batch.set(ref, state)
            batch.create(ref.collection(HISTORY_SUBCOLLECTION).document(history_id), change)
            await batch.commit(**write_options(self._timeout, asynchronous=True))
