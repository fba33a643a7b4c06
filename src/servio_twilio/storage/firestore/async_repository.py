"""The Google Cloud Firestore backend of the ``communications`` collection, awaited.

`AsyncFirestoreRepository` runs on ``google.cloud.firestore.AsyncClient``
(gRPC's asyncio channel, async transactions) and never blocks the event
loop. What each call does is written once, as steps, in
`servio_twilio.storage.firestore.operations`: it stores exactly the
documents `FirestoreRepository` stores, makes the same Firestore calls and
translates the same errors; only the I/O is awaited.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, TypeVar

from servio_twilio.domain.models import Channel, Communication, DayCount
from servio_twilio.storage.firestore.operations import Operations
from servio_twilio.storage.firestore.steps import Steps, drive_async, execute_async

if TYPE_CHECKING:
    from google.cloud import firestore

__all__ = ["AsyncFirestoreRepository"]

T = TypeVar("T")


class AsyncFirestoreRepository:
    """An `AsyncCommunicationRepository` over a Firestore collection.

    ``client`` is a ``google.cloud.firestore.AsyncClient`` (its gRPC channel
    belongs to the event loop of its first call: use it on one loop);
    ``collection`` and ``timeout`` mean what they mean for
    `FirestoreRepository`, whose documents, transactions, Firestore calls
    and errors this repository shares: every call, whole transactions
    included, ends within ``timeout`` seconds (None: the client library's
    defaults), and every storage failure raises `RepositoryError` naming its
    cause. Its methods are coroutines, awaited on the event loop, never in a
    thread.

    Raises:
        InvalidArgument: (a ``ValueError``) a malformed ``collection`` name, or a
            ``timeout`` that is not positive.

    New in 0.2.0.
    """

    def __init__(
        self,
        client: firestore.AsyncClient,
        *,
        collection: str = "communications",
        timeout: float | None = 30.0,
    ) -> None:
        self._operations = Operations(client, collection=collection, timeout=timeout)
        self._execute = functools.partial(execute_async, client)

    def __repr__(self) -> str:
        return f"<AsyncFirestoreRepository collection={self.collection!r}>"

    @property
    def collection(self) -> str:
        """The collection's name."""
        return self._operations.name

    async def add(
        self,
        communication: Communication,
        *,
        event: Mapping[str, Any] | None = None,
        token: str | None = None,
    ) -> Communication:
        """See `FirestoreRepository.add`."""
        return await self._run(self._operations.add(communication, event, token))

    async def add_many(self, communications: Iterable[Communication]) -> list[Communication]:
        """See `FirestoreRepository.add_many`."""
        return await self._run(self._operations.add_many(communications))

    async def get(self, communication_id: str) -> Communication | None:
        """See `FirestoreRepository.get`."""
        return await self._run(self._operations.get(communication_id))

    async def find_by_sid(self, sid: str) -> Communication | None:
        """See `FirestoreRepository.find_by_sid`."""
        return await self._run(self._operations.find_by_sid(sid))

    async def update(
        self, communication_id: str, fn: Callable[[Communication], Communication]
    ) -> Communication:
        """See `FirestoreRepository.update`."""
        return await self._run(self._operations.update(communication_id, fn))

    async def update_many(
        self, updates: Mapping[str, Callable[[Communication], Communication]]
    ) -> dict[str, Communication]:
        """See `FirestoreRepository.update_many`."""
        return await self._run(self._operations.update_many(updates))

    async def record_event(
        self,
        event: Mapping[str, Any],
        apply: Callable[[Communication | None], Communication],
        *,
        communication_id: str | None = None,
        sid: str | None = None,
        token: str | None = None,
    ) -> Communication | None:
        """See `FirestoreRepository.record_event`."""
        steps = self._operations.record_event(
            event, apply, communication_id=communication_id, sid=sid, token=token
        )
        return await self._run(steps)

    async def append_event(self, communication_id: str, event: Mapping[str, Any]) -> None:
        """See `FirestoreRepository.append_event`."""
        await self._run(self._operations.append_event(communication_id, event))

    async def events(self, communication_id: str) -> list[dict[str, Any]]:
        """See `FirestoreRepository.events`."""
        return await self._run(self._operations.events(communication_id))

    async def history(
        self,
        prospect_id: str,
        *,
        channel: Channel | None = None,
        limit: int = 50,
        before: datetime | None = None,
    ) -> list[Communication]:
        """See `FirestoreRepository.history`."""
        steps = self._operations.history(prospect_id, channel=channel, limit=limit, before=before)
        return await self._run(steps)

    async def latest_outbound_to(self, number: str) -> Communication | None:
        """See `FirestoreRepository.latest_outbound_to`."""
        return await self._run(self._operations.latest_outbound_to(number))

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
        """See `FirestoreRepository.communications`. New in 0.2.0."""
        steps = self._operations.communications(
            channel=channel,
            status=status,
            prospect_id=prospect_id,
            open_only=open_only,
            since=since,
            before=before,
            limit=limit,
        )
        return await self._run(steps)

    async def count_by_day(self, *, since: datetime, until: datetime) -> list[DayCount]:
        """See `FirestoreRepository.count_by_day`. New in 0.2.0."""
        return await self._run(self._operations.count_by_day(since=since, until=until))

    async def ping(self) -> None:
        """See `FirestoreRepository.ping`."""
        await self._run(self._operations.ping())

    async def _run(self, steps: Steps[T]) -> T:
        """Run one call's steps on the client, awaiting each."""
        return await drive_async(steps, self._execute)
