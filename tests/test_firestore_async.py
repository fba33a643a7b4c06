"""What only `AsyncFirestoreRepository` has: the object, cancellation and concurrent calls.

The contract suite, the stored documents, error translation, deadlines,
dead hosts and round trips are tested for both Firestore repositories in
`test_repository_contract.py`, `test_firestore.py` and
`test_firestore_round_trips.py`; this file awaits the repository directly.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore

from servio_twilio.domain.errors import RecordNotFound
from servio_twilio.domain.models import Channel, Communication
from servio_twilio.firestore import AsyncFirestoreRepository
from servio_twilio.storage.repository import AsyncCommunicationRepository, is_async_repository
from support.firestore_emulator import PROJECT, unique_collection
from support.firestore_fakes import AsyncApi

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


def offline_client() -> Any:
    """An ``AsyncClient`` that never connects (its API is replaced before any call)."""
    return firestore.AsyncClient(project="demo-offline", credentials=AnonymousCredentials())


def make(**changes: Any) -> Communication:
    fields: dict[str, Any] = {
        "prospect_id": "prospect-1",
        "channel": Channel.SMS,
        "to": "+5511999999999",
        "from_": "+15005550006",
        "body": "Oi",
        "timestamp": T0,
    }
    fields.update(changes)
    return Communication(**fields)


class TestRepositoryObject:
    def test_repr_and_kind(self) -> None:
        """repr names the collection only; it is an async repository, told apart as one."""
        repo = AsyncFirestoreRepository(offline_client(), collection="comms-x")
        assert repr(repo) == "<AsyncFirestoreRepository collection='comms-x'>"
        assert repo.collection == "comms-x"
        assert isinstance(repo, AsyncCommunicationRepository)
        assert is_async_repository(repo)

    @pytest.mark.parametrize("arguments", [{"collection": "a/b"}, {"timeout": 0}])
    def test_bad_arguments(self, arguments: dict[str, Any]) -> None:
        """A collection Firestore cannot use, or a timeout not above 0, is refused."""
        with pytest.raises(ValueError, match=next(iter(arguments))):
            AsyncFirestoreRepository(offline_client(), **arguments)


class _HangingReads:
    """A Firestore API whose transactions begin and whose reads never answer."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def rpc(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            if name == "begin_transaction":
                return type("Begun", (), {"transaction": b"tx"})()
            return None

        return rpc


class TestCancellation:
    def test_a_cancelled_transaction_rolls_back(self) -> None:
        """A call cancelled inside its transaction rolls it back, then the cancellation goes on."""
        api = _HangingReads()

        class Hanging(AsyncApi):
            def __getattr__(self, name: str) -> Callable[..., Any]:
                if name != "batch_get_documents":
                    return super().__getattr__(name)

                async def hang(*args: Any, **kwargs: Any) -> Any:
                    api.calls.append(name)
                    await asyncio.Event().wait()

                return hang

        client = offline_client()
        client._firestore_api_internal = Hanging(api)
        repo = AsyncFirestoreRepository(client, timeout=30.0)

        async def main() -> None:
            task = asyncio.ensure_future(repo.update("x", lambda c: c))
            while api.calls[-1:] != ["batch_get_documents"]:
                await asyncio.sleep(0)
            task.cancel()
            with pytest.raises(asyncio.CancelledError):
                await task

        asyncio.run(main())
        assert api.calls == ["begin_transaction", "batch_get_documents", "rollback"]


@pytest.mark.firestore
class TestOnTheEmulator:
    def test_concurrent_calls_share_one_client(self, firestore_emulator: str) -> None:
        """Fifty adds, reads and event appends awaited at once on one client all land."""
        repo = AsyncFirestoreRepository(
            firestore.AsyncClient(project=PROJECT), collection=unique_collection(), timeout=15.0
        )

        async def one(i: int) -> Communication | None:
            stored = await repo.add(make(id=f"c{i}", body=f"#{i}"))
            await repo.append_event(f"c{i}", {"n": i})
            return await repo.get(stored.id or "")

        async def main() -> list[Communication | None]:
            return await asyncio.gather(*(one(i) for i in range(50)))

        found = asyncio.run(main())
        assert [c.body if c else None for c in found] == [f"#{i}" for i in range(50)]

    def test_a_missing_record_is_record_not_found(self, firestore_emulator: str) -> None:
        """The contract's errors reach the awaiting caller as they are."""
        repo = AsyncFirestoreRepository(
            firestore.AsyncClient(project=PROJECT), collection=unique_collection()
        )
        with pytest.raises(RecordNotFound):
            asyncio.run(repo.update("missing", lambda c: c))

    def test_pages_and_counts_awaited_beside_writes(self, firestore_emulator: str) -> None:
        """communications and count_by_day, awaited directly and at once with updates that
        settle records, see each record before or after its update, never half of it."""
        repo = AsyncFirestoreRepository(
            firestore.AsyncClient(project=PROJECT), collection=unique_collection(), timeout=15.0
        )
        day = timedelta(days=1)

        async def main() -> tuple[list[Communication], list[Any], list[Communication]]:
            await repo.add_many(
                make(id=f"c{i}", status="sent", timestamp=T0 + timedelta(seconds=i))
                for i in range(20)
            )
            settle = [
                repo.update(f"c{i}", lambda c: attrs.evolve(c, status="delivered"))
                for i in range(0, 20, 2)
            ]
            page, counted, *_ = await asyncio.gather(
                repo.communications(open_only=True),
                repo.count_by_day(since=T0 - day, until=T0 + day),
                *settle,
            )
            return page, counted, await repo.communications(open_only=True)

        page, counted, after = asyncio.run(main())
        assert 10 <= len(page) <= 20
        assert sum(row.count for row in counted) == 20
        assert {row.status for row in counted} <= {"sent", "delivered"}
        assert [c.id for c in after] == [f"c{i}" for i in range(19, 0, -2)]
