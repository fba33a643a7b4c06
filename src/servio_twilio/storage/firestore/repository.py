"""The Google Cloud Firestore backend of the ``communications`` collection, blocking.

Install it with ``pip install servio-twilio[firestore]``. This module imports
``google.cloud.firestore`` itself, so ``import servio_twilio`` never does.

Documents keep the earlier Node.js service's field names (``prospectId``,
``type``, ``twilioSid``, ...); `to_document` and `from_document` (from
`servio_twilio.storage.firestore.documents`) are the one place that converts.
What each call does is written once, as steps, in
`servio_twilio.storage.firestore.operations`, shared with
`AsyncFirestoreRepository`; this class runs those steps on a
``google.cloud.firestore.Client``. Every ``google.api_core``, ``grpc`` and
``google.auth`` error is translated at this boundary (by
`servio_twilio.storage.firestore.errors`):

```
google.api_core.exceptions.AlreadyExists  -> DuplicateRecord
any other GoogleAPIError, grpc.RpcError,
google.auth.exceptions.GoogleAuthError    -> RepositoryError
```
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from servio_twilio.domain.models import Channel, Communication, DayCount
from servio_twilio.storage.firestore.documents import from_document, to_document
from servio_twilio.storage.firestore.operations import (
    EVENTS_SUBCOLLECTION,
    MAX_BATCH_WRITES,
    Operations,
)
from servio_twilio.storage.firestore.steps import Steps, drive, execute

if TYPE_CHECKING:
    from google.cloud import firestore

__all__ = [
    "EVENTS_SUBCOLLECTION",
    "MAX_BATCH_WRITES",
    "FirestoreRepository",
    "from_document",
    "to_document",
]

T = TypeVar("T")


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
    For an event loop, `AsyncFirestoreRepository` stores the same documents.

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
        self._operations = Operations(client, collection=collection, timeout=timeout)
        self._execute = functools.partial(execute, client)

    def __repr__(self) -> str:
        return f"<FirestoreRepository collection={self.collection!r}>"

    @property
    def collection(self) -> str:
        """The collection's name."""
        return self._operations.name

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
        return self._run(self._operations.add(communication, event, token))

    def add_many(self, communications: Iterable[Communication]) -> list[Communication]:
        """Create many records in batched commits of at most 500 writes.

        Nothing is written when an id repeats in the input (`DuplicateRecord`).
        Each commit is atomic and creates its documents, so one whose id
        exists fails (`DuplicateRecord`) with nothing of it written; the
        commits before it stay.
        """
        return self._run(self._operations.add_many(communications))

    def get(self, communication_id: str) -> Communication | None:
        """The record with this id, or None."""
        return self._run(self._operations.get(communication_id))

    def find_by_sid(self, sid: str) -> Communication | None:
        """The record whose ``twilioSid`` is ``sid``, or None."""
        return self._run(self._operations.find_by_sid(sid))

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
        return self._run(self._operations.update(communication_id, fn))

    def update_many(
        self, updates: Mapping[str, Callable[[Communication], Communication]]
    ) -> dict[str, Communication]:
        """Apply each ``fn`` in one transaction: one read of all the records, one commit.

        Ids with no record are left out of the result. At most 500 records
        are updated per transaction (Firestore's limit of writes per
        commit): a larger call runs one transaction per 500, each atomic.
        """
        return self._run(self._operations.update_many(updates))

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
        steps = self._operations.record_event(
            event, apply, communication_id=communication_id, sid=sid, token=token
        )
        return self._run(steps)

    def append_event(self, communication_id: str, event: Mapping[str, Any]) -> None:
        """Keep ``event`` in the record's ``events`` subcollection, after earlier ones.

        One transaction reads the record (missing: `RecordNotFound`), bumps
        its ``eventCount`` and writes the event document ``{seq, storedAt,
        payload}``, so events keep their order even within a millisecond.
        A value Firestore cannot store raises `RepositoryError`.
        """
        self._run(self._operations.append_event(communication_id, event))

    def events(self, communication_id: str) -> list[dict[str, Any]]:
        """The record's kept callbacks as given, oldest first."""
        return self._run(self._operations.events(communication_id))

    def history(
        self,
        prospect_id: str,
        *,
        channel: Channel | None = None,
        limit: int = 50,
        before: datetime | None = None,
    ) -> list[Communication]:
        """A prospect's records, newest ``timestamp`` first; ``before`` is exclusive."""
        steps = self._operations.history(prospect_id, channel=channel, limit=limit, before=before)
        return self._run(steps)

    def latest_outbound_to(self, number: str) -> Communication | None:
        """The newest outbound record whose ``to`` is ``number``, or None."""
        return self._run(self._operations.latest_outbound_to(number))

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
        """Records matching every filter given, newest ``timestamp`` first: one query.

        Equality filters on ``type``, ``prospectId``, ``open`` (``open_only``)
        and ``status`` (``in`` for several), a ``timestamp`` range, ordered by
        ``timestamp`` descending, ``limit``. ``open_only`` finds the documents
        whose stored ``open`` is true: a record written by version 0.1 has no
        ``open`` until its next update. See
        `CommunicationRepository.communications`.

        New in 0.2.0.
        """
        steps = self._operations.communications(
            channel=channel,
            status=status,
            prospect_id=prospect_id,
            open_only=open_only,
            since=since,
            before=before,
            limit=limit,
        )
        return self._run(steps)

    def count_by_day(self, *, since: datetime, until: datetime) -> list[DayCount]:
        """Records per (UTC day, channel, status) in ``[since, until)``: one query.

        The query reads only ``type``, ``status`` and ``timestamp`` of each
        record in the range (a projection); the counting happens here. See
        `CommunicationRepository.count_by_day`.

        New in 0.2.0.
        """
        return self._run(self._operations.count_by_day(since=since, until=until))

    def ping(self) -> None:
        """Read one document of the collection (if any): `RepositoryError` when that fails."""
        self._run(self._operations.ping())

    def _run(self, steps: Steps[T]) -> T:
        """Run one call's steps on the client, blocking."""
        return drive(steps, self._execute)
