"""Async faces of synchronous repositories: one implementation of the data, two ways in.

`AsyncRepositoryView` gives any `CommunicationRepository` the coroutine methods
of `AsyncCommunicationRepository`. A repository that is not ``blocking``
(`InMemoryRepository`) is called inline, on the event loop: its calls never
wait. A ``blocking`` one (`servio_twilio.firestore.FirestoreRepository`) runs
in a thread pool of the view's own, ``max_threads`` workers, never in
asyncio's default executor (``cpu + 4`` threads: 6 on a 2-core host).

`AsyncInMemoryRepository` is the async client's default: the view over an
`InMemoryRepository`, whose records it shares (``.sync``).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping
from datetime import datetime
from typing import Any, TypeVar

from servio_twilio.domain.models import Channel, Communication, DayCount
from servio_twilio.storage.memory import InMemoryRepository
from servio_twilio.storage.repository import CommunicationRepository
from servio_twilio.storage.threads import DEFAULT_MAX_THREADS, Threads

__all__ = ["AsyncInMemoryRepository", "AsyncRepositoryView"]


T = TypeVar("T")


class AsyncRepositoryView:
    """An `AsyncCommunicationRepository` over a synchronous ``repository``.

    Calls of a ``blocking`` repository run in this view's own pool of
    ``max_threads`` threads, started on first use; others run inline. Both
    faces see the same records. `close` stops the pool's threads.

    Raises:
        TypeError: ``repository`` is not a `CommunicationRepository`.
        InvalidArgument: (a ``ValueError``) ``max_threads`` is not an int >= 1.

    New in 0.2.0.
    """

    def __init__(
        self, repository: CommunicationRepository, *, max_threads: int = DEFAULT_MAX_THREADS
    ) -> None:
        if not isinstance(repository, CommunicationRepository):
            raise TypeError(
                "repository must implement CommunicationRepository, "
                f"not {type(repository).__name__}"
            )
        self._threads = Threads(max_threads, name="servio-repository")
        self.sync = repository
        """The synchronous repository this view calls."""
        self.blocking = bool(getattr(repository, "blocking", True))
        """Whether the calls run in the view's threads."""
        self.max_threads = max_threads

    def __repr__(self) -> str:
        return f"<{type(self).__name__} over {self.sync!r}>"

    def close(self) -> None:
        """Stop the pool's threads once their calls end (a later call starts a new pool)."""
        self._threads.close()

    async def _run(self, method: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if not self.blocking:
            return method(*args, **kwargs)
        return await self._threads.run(method, *args, **kwargs)

    async def add(
        self,
        communication: Communication,
        *,
        event: Mapping[str, Any] | None = None,
        token: str | None = None,
    ) -> Communication:
        """See `CommunicationRepository.add`."""
        if event is None and token is None:  # a backend written before 0.2 takes no keywords
            return await self._run(self.sync.add, communication)
        return await self._run(self.sync.add, communication, event=event, token=token)

    async def add_many(self, communications: Iterable[Communication]) -> list[Communication]:
        """See `CommunicationRepository.add_many`."""
        return await self._run(self.sync.add_many, list(communications))

    async def get(self, communication_id: str) -> Communication | None:
        """See `CommunicationRepository.get`."""
        return await self._run(self.sync.get, communication_id)

    async def find_by_sid(self, sid: str) -> Communication | None:
        """See `CommunicationRepository.find_by_sid`."""
        return await self._run(self.sync.find_by_sid, sid)

    async def update(
        self, communication_id: str, fn: Callable[[Communication], Communication]
    ) -> Communication:
        """See `CommunicationRepository.update`."""
        return await self._run(self.sync.update, communication_id, fn)

    async def update_many(
        self, updates: Mapping[str, Callable[[Communication], Communication]]
    ) -> dict[str, Communication]:
        """See `CommunicationRepository.update_many`."""
        return await self._run(self.sync.update_many, updates)

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
        return await self._run(
            self.sync.record_event,
            event,
            apply,
            communication_id=communication_id,
            sid=sid,
            token=token,
        )

    async def append_event(self, communication_id: str, event: Mapping[str, Any]) -> None:
        """See `CommunicationRepository.append_event`."""
        await self._run(self.sync.append_event, communication_id, event)

    async def events(self, communication_id: str) -> list[dict[str, Any]]:
        """See `CommunicationRepository.events`."""
        return await self._run(self.sync.events, communication_id)

    async def history(
        self,
        prospect_id: str,
        *,
        channel: Channel | None = None,
        limit: int = 50,
        before: datetime | None = None,
    ) -> list[Communication]:
        """See `CommunicationRepository.history`."""
        return await self._run(
            self.sync.history, prospect_id, channel=channel, limit=limit, before=before
        )

    async def latest_outbound_to(self, number: str) -> Communication | None:
        """See `CommunicationRepository.latest_outbound_to`."""
        return await self._run(self.sync.latest_outbound_to, number)

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
        """See `CommunicationRepository.communications`. New in 0.2.0."""
        return await self._run(
            self.sync.communications,
            channel=channel,
            status=status,
            prospect_id=prospect_id,
            open_only=open_only,
            since=since,
            before=before,
            limit=limit,
        )

    async def count_by_day(self, *, since: datetime, until: datetime) -> list[DayCount]:
        """See `CommunicationRepository.count_by_day`. New in 0.2.0."""
        return await self._run(self.sync.count_by_day, since=since, until=until)

    async def ping(self) -> None:
        """See `CommunicationRepository.ping`."""
        await self._run(self.sync.ping)


class AsyncInMemoryRepository(AsyncRepositoryView):
    """The embedded default of `AsyncCommunicationsClient`: in memory, awaited inline.

    The data is an `InMemoryRepository` (``.sync``, a new one unless given),
    so a sync client, an async client and both webhook apps can share one
    set of records. Its calls never block the event loop.

    New in 0.2.0.
    """

    sync: InMemoryRepository

    def __init__(self, repository: InMemoryRepository | None = None) -> None:
        if repository is None:
            repository = InMemoryRepository()
        elif not isinstance(repository, InMemoryRepository):
            raise TypeError(
                f"repository must be an InMemoryRepository, not {type(repository).__name__}"
            )
        super().__init__(repository)

    def __len__(self) -> int:
        """How many records are stored."""
        return len(self.sync)
