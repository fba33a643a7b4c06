"""AsyncCommunicationsClient: what only the async client has.

Every rule the clients share is tested once, on both: the sending tests
(test_client.py, test_batch.py, test_batch_faults.py) run each body against
the sync and the async client (the ``client_kind`` fixture). Here: event-loop
concurrency, the async seams, cancellation, and sharing with sync code.
"""

from __future__ import annotations

import asyncio
import json
import threading
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
from twilio.http import AsyncHttpClient
from twilio.http.response import Response

from servio_twilio import (
    AsyncCommunicationsClient,
    AsyncInMemoryRepository,
    CommunicationsClient,
    InMemoryRepository,
    OutboundMessage,
    SendOutcomeUnknown,
    TokenBucket,
)
from servio_twilio.domain.status import advance
from servio_twilio.testing import FakeTwilio
from support.sending import TO, TickingClock, make_settings

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _client(
    fake: FakeTwilio | AsyncHttpClient | None = None, **kwargs: Any
) -> AsyncCommunicationsClient:
    http = fake.aio if isinstance(fake, FakeTwilio) else fake
    return AsyncCommunicationsClient(
        make_settings(), http_client=http or FakeTwilio().aio, clock=TickingClock(), **kwargs
    )


def _sms(n: int) -> list[OutboundMessage]:
    return [
        OutboundMessage(to=f"+5511988{k:06d}", body=f"message {k}", prospect_id="batch")
        for k in range(n)
    ]


class _Wrapping(AsyncHttpClient):  # type: ignore[misc]
    """An async seam that lets a test act before FakeTwilio answers, and change the answer."""

    def __init__(self, fake: FakeTwilio, before: Any = None, answer: Any = None) -> None:
        super().__init__(None, True, None)
        self.fake, self.before, self.answer = fake, before, answer

    async def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if self.before is not None:
            await self.before(method, url, kwargs)
        response = await self.fake.aio.request(method, url, *args, **kwargs)
        return self.answer(response) if self.answer is not None else response


class TestConcurrency:
    async def test_sends_from_one_loop_overlap(self) -> None:
        """20 sends gathered on one loop are all in flight at once (the sync client: 1)."""
        fake = FakeTwilio(latency=0.05)
        async with _client(fake) as client:
            results = await asyncio.gather(*(client.send_sms(TO, f"hi {n}") for n in range(20)))
        assert len({r.sid for r in results}) == 20
        assert fake.peak_in_flight == 20

    @pytest.mark.parametrize(("bound", "n"), [(4, 20), (10, 30)])
    async def test_batch_keeps_max_concurrency_in_flight(self, bound: int, n: int) -> None:
        """A batch's tasks overlap up to ``max_concurrency`` and never beyond it."""
        fake = FakeTwilio(latency=0.02)
        async with _client(fake) as client:
            report = await client.send_batch(_sms(n), max_concurrency=bound)
        assert report.succeeded == n
        assert fake.peak_in_flight == bound

    async def test_one_bulk_write_before_any_request(self) -> None:
        """All pending records are written in one add_many before the first request."""
        repo = InMemoryRepository()
        seen: list[int] = []

        async def before(*_: Any) -> None:
            if not seen:
                seen.append(len(repo))

        async with _client(_Wrapping(FakeTwilio(), before), repository=repo) as client:
            await client.send_batch(_sms(10))
        assert seen == [10]

    async def test_a_blocking_repository_runs_in_the_clients_own_threads(self) -> None:
        """A blocking sync repository's calls run in the client's pool, not the loop's executor."""
        threads: list[str] = []

        class Blocking(InMemoryRepository):
            blocking = True

            def add(self, communication: Any, **kwargs: Any) -> Any:
                threads.append(threading.current_thread().name)
                return super().add(communication, **kwargs)

        async with _client(repository=Blocking(), max_threads=3) as client:
            await asyncio.gather(*(client.send_sms(TO, "x") for _ in range(5)))
        assert len(threads) == 5
        assert all(name.startswith("servio-repository") for name in threads)


def _delivered(record: Any) -> Any:
    return advance(record, updated_at=record.updated_at, status="delivered")


class TestSeamOutcomes:
    async def test_callback_before_create_returns_is_not_moved_back(self) -> None:
        """A status callback landing before Twilio's answer keeps its higher status."""
        repo = AsyncInMemoryRepository()

        async def deliver_first(_method: str, _url: str, kwargs: Any) -> None:
            callback = str(kwargs["data"]["StatusCallback"])
            cid = parse_qs(urlsplit(callback).query)["cid"][0]
            await repo.update(
                cid, lambda r: advance(r, updated_at=r.updated_at, status="delivered")
            )

        async with _client(_Wrapping(FakeTwilio(), deliver_first), repository=repo) as client:
            result = await client.send_sms(TO, "hi")
        record = await repo.get(result.communication_id)
        assert record is not None
        assert (record.status, record.twilio_sid, result.status) == (
            "delivered",
            result.sid,
            "delivered",
        )

    async def test_unreadable_success_is_unknown(self) -> None:
        """A 2xx answer that is not JSON: the message may be out, so the outcome is unknown."""
        garbled = _Wrapping(FakeTwilio(), answer=lambda _r: Response(201, "<html>oops</html>", {}))
        async with _client(garbled) as client:
            with pytest.raises(SendOutcomeUnknown) as info:
                await client.send_sms(TO, "hi")
            record = await client.repository.get(info.value.communication_id)
        assert record is not None
        assert record.status == "unknown"


class TestCancellation:
    async def test_a_cancelled_batch_settles_its_records(self) -> None:
        """Cancelled mid-batch: sent items are merged, never-started ones failed, none pending."""
        fake = FakeTwilio(latency=0.2)
        repo = InMemoryRepository()
        client = _client(fake, repository=repo)
        task = asyncio.ensure_future(client.send_batch(_sms(10), max_concurrency=2))
        while len(fake.requests) < 2:
            await asyncio.sleep(0.01)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await client.aclose()
        statuses = [record.status for record in repo.history("batch", limit=100)]
        assert len(statuses) == 10
        assert "pending" not in statuses
        assert statuses.count("failed") == 10 - len(fake.requests)
        assert statuses.count("queued") == len(fake.requests)


class TestSharing:
    async def test_sync_and_async_clients_share_one_memory(self) -> None:
        """AsyncInMemoryRepository over an InMemoryRepository: both clients see every record."""
        memory = InMemoryRepository()
        sync = CommunicationsClient(make_settings(), repository=memory, http_client=FakeTwilio())
        first = await asyncio.to_thread(sync.send_sms, TO, "from sync", prospect_id="p1")
        async with _client(repository=AsyncInMemoryRepository(memory)) as client:
            second = await client.send_sms(TO, "from async", prospect_id="p1")
            history = await client.history("p1")
        assert {c.id for c in history} == {first.communication_id, second.communication_id}

    async def test_one_token_bucket_paces_sync_and_async_senders(self) -> None:
        """A TokenBucket shared by a sync and an async batch hands out one token per send."""
        bucket = TokenBucket(1000)
        fake = FakeTwilio()
        sync = CommunicationsClient(make_settings(), http_client=fake)
        async with _client(fake) as client:
            reports = await asyncio.gather(
                asyncio.to_thread(sync.send_batch, _sms(20), rate_per_second=bucket),
                client.send_batch(_sms(20), rate_per_second=bucket),
            )
        assert [r.succeeded for r in reports] == [20, 20]
        assert {r.is_async for r in fake.requests} == {True, False}


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
def test_json_of_recorded_async_requests_is_the_same(anyio_backend: str) -> None:
    """The async seam sends Twilio the same form as the sync one (FakeTwilio records both)."""
    fake = FakeTwilio()
    CommunicationsClient(make_settings(), http_client=fake).send_sms(TO, "same")

    async def send() -> None:
        async with _client(fake) as client:
            await client.send_sms(TO, "same")

    asyncio.run(send())
    sync_form, async_form = (json.dumps(r.data, sort_keys=True) for r in fake.requests)
    strip = lambda text: text.split('"StatusCallback"')[0]  # noqa: E731 - cid differs
    assert strip(sync_form) == strip(async_form)
