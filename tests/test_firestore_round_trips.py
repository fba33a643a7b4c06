"""Firestore round trips: each operation's RPCs, counted on the real client, at the floor.

The counts are behaviour, not timing: an interceptor on the client's gRPC
channel counts the calls the emulator receives. The floors are DESIGN.md's
"Round trips" table; a transaction is BeginTransaction, its reads and one
Commit. Every test runs on both backends: `FirestoreRepository` on a
``Client``, and `AsyncFirestoreRepository` on an ``AsyncClient`` (its
``grpc.aio`` channel counted), awaited on one event loop behind
`support.sync_facade.SyncFacade` so the same sync client and WSGI app drive it.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from rpc_counter import RpcCounter, counted_async_client, counted_client

from servio_twilio.domain.models import Channel, Communication
from servio_twilio.firestore import AsyncFirestoreRepository, FirestoreRepository
from servio_twilio.sending.client import CommunicationsClient
from servio_twilio.sending.results import OutboundMessage
from servio_twilio.storage.repository import CommunicationRepository
from servio_twilio.testing import FakeTwilio
from servio_twilio.webhooks.verifier import WebhookVerifier
from servio_twilio.webhooks.wsgi import make_wsgi_app
from support.firestore_emulator import PROJECT, unique_collection
from support.sending import BASE, TO, make_settings
from support.sync_facade import LoopThread, SyncFacade
from support.twilio_callbacks import TOKEN, inbound_params, message_params, signed

pytestmark = pytest.mark.firestore

TRANSACTION = {"BeginTransaction": 1, "BatchGetDocuments": 1, "Commit": 1}


class Kit:
    """A client and a webhook app on one counted Firestore repository."""

    def __init__(self, repository: CommunicationRepository, counter: RpcCounter) -> None:
        self.repository = repository
        self.counter = counter
        self.fake = FakeTwilio()
        self.client = CommunicationsClient(
            make_settings(auth_token=TOKEN), repository=repository, http_client=self.fake
        )
        app = make_wsgi_app(
            verifier=WebhookVerifier(TOKEN), repository=repository, public_base_url=BASE
        )
        # Mounted at the root here; it verifies signatures against public_base_url.
        self.http = httpx.Client(
            transport=httpx.WSGITransport(app=app), base_url="http://testserver"
        )

    def deliver(
        self, route: str, params: dict[str, str], query: str = "", token: str | None = None
    ) -> int:
        """POST a signed callback to the webhook app; its status code."""
        url = BASE + route + ("?" + query if query else "")
        headers, body = signed(url, params)
        if token is not None:
            headers["I-Twilio-Idempotency-Token"] = token
        path = route + ("?" + query if query else "")
        return self.http.post(path, content=body, headers=headers).status_code

    def counted(self) -> dict[str, int]:
        """The RPCs since the last call, by method; the counter starts again."""
        return self.counter.take()


@pytest.fixture(params=["sync", "async"])
def kit(request: pytest.FixtureRequest, firestore_emulator: str) -> Iterator[Kit]:
    """A kit on a counted `FirestoreRepository`, or `AsyncFirestoreRepository` behind a facade."""
    loop = None
    if request.param == "sync":
        client, counter = counted_client(PROJECT)
        repository: CommunicationRepository = FirestoreRepository(
            client, collection=unique_collection(), timeout=15.0
        )
    else:
        client, counter = counted_async_client(PROJECT)
        loop = LoopThread()
        backend = AsyncFirestoreRepository(client, collection=unique_collection(), timeout=15.0)
        facade: Any = SyncFacade(backend, loop)  # a CommunicationRepository by its methods
        repository = facade
    kit = Kit(repository, counter)
    yield kit
    kit.http.close()
    if loop is not None:
        loop.close()


def _sent(kit: Kit) -> Communication:
    result = kit.client.send_sms(TO, "Oi", prospect_id="p1")
    record = kit.repository.get(result.communication_id)
    assert record is not None
    kit.counter.reset()
    return record


class TestRoundTrips:
    def test_a_send_is_a_create_and_one_transaction(self, kit: Kit) -> None:
        """send_sms: the pending record's create, then Twilio's answer merged: 4 RPCs."""
        kit.client.send_sms(TO, "Oi")
        assert kit.counted() == {"Commit": 2, "BeginTransaction": 1, "BatchGetDocuments": 1}

    def test_a_status_callback_through_cid_is_one_transaction(self, kit: Kit) -> None:
        """A callback with ``cid``: read by id, then record, count and event in one commit."""
        record = _sent(kit)
        params = message_params(record.twilio_sid or "", "delivered")
        assert kit.deliver("/message-status", params, query=f"cid={record.id}") == 204
        assert kit.counted() == TRANSACTION
        assert kit.repository.get(record.id or "").status == "delivered"  # type: ignore[union-attr]
        assert len(kit.repository.events(record.id or "")) == 1

    def test_a_status_callback_by_sid_is_one_transaction(self, kit: Kit) -> None:
        """A callback without ``cid``: the SID query runs inside the transaction."""
        record = _sent(kit)
        assert (
            kit.deliver("/message-status", message_params(record.twilio_sid or "", "sent")) == 204
        )
        assert kit.counted() == {"BeginTransaction": 1, "RunQuery": 1, "Commit": 1}
        assert kit.repository.get(record.id or "").status == "sent"  # type: ignore[union-attr]

    def test_an_unknown_sid_creates_its_record_in_the_transaction(self, kit: Kit) -> None:
        """No record for the SID: created with its first event in the same commit."""
        sid = "SM" + "e" * 32
        assert kit.deliver("/message-status", message_params(sid, "sent")) == 204
        assert kit.counted() == {"BeginTransaction": 1, "RunQuery": 1, "Commit": 1}
        assert kit.repository.find_by_sid(sid) is not None

    def test_an_inbound_message_is_a_query_and_one_commit(self, kit: Kit) -> None:
        """Inbound: the prospect lookup, then the record with its first event: 2 RPCs."""
        assert kit.deliver("/inbound", inbound_params("SM" + "f" * 32)) == 200
        assert kit.counted() == {"RunQuery": 1, "Commit": 1}

    def test_a_retried_delivery_is_kept_once(self, kit: Kit) -> None:
        """The same idempotency token twice: one event, the record unchanged by the retry."""
        record = _sent(kit)
        assert record.id is not None
        sid = record.twilio_sid or ""
        query = f"cid={record.id}"
        for _ in range(2):
            assert (
                kit.deliver("/message-status", message_params(sid, "sent"), query, "tok-1") == 204
            )
        assert kit.counted()["BeginTransaction"] == 2
        assert len(kit.repository.events(record.id)) == 1
        assert (
            kit.deliver("/message-status", message_params(sid, "delivered"), query, "tok-2") == 204
        )
        assert len(kit.repository.events(record.id)) == 2

    def test_a_retried_inbound_message_is_kept_once(self, kit: Kit) -> None:
        """An inbound message delivered twice with one token: one record, one event."""
        params = inbound_params("SM" + "a" * 32)
        assert kit.deliver("/inbound", params, token="tok-in") == 200
        assert kit.deliver("/inbound", params, token="tok-in") == 200
        assert len(kit.repository.events("sid-SM" + "a" * 32)) == 1

    @pytest.mark.parametrize("concurrency", [1, 10, 50])
    def test_a_batch_of_100_is_one_commit_and_grouped_merges(
        self, kit: Kit, concurrency: int
    ) -> None:
        """100 messages: one commit of the pending records, answers merged in groups."""
        messages = [OutboundMessage(to=TO, body=f"#{i}", prospect_id="p1") for i in range(100)]
        report = kit.client.send_batch(messages, max_concurrency=concurrency)
        assert report.succeeded == 100
        counted = kit.counted()
        groups = math.ceil(100 / max(10, concurrency))
        assert counted["Commit"] <= 1 + groups
        assert sum(counted.values()) <= 1 + 3 * groups <= 110
        assert "RunQuery" not in counted  # no pre-read, no lookups
        stored = kit.repository.history("p1", limit=200)
        assert {c.status for c in stored} == {"queued"}

    @pytest.mark.parametrize(
        "operation", ["history", "events", "ping", "get", "communications", "count_by_day"]
    )
    def test_reads_are_one_rpc(self, kit: Kit, operation: str) -> None:
        """history, events, ping, get, communications and count_by_day: one RPC each."""
        record = _sent(kit)
        day = timedelta(days=1)
        calls: dict[str, Any] = {
            "history": lambda: kit.repository.history("p1", channel=Channel.SMS),
            "events": lambda: kit.repository.events(record.id or ""),
            "ping": kit.repository.ping,
            "get": lambda: kit.repository.get(record.id or ""),
            "communications": lambda: kit.repository.communications(
                channel=Channel.SMS,
                status=["queued", "sent"],
                prospect_id="p1",
                open_only=True,
                since=record.timestamp - day,
                before=record.timestamp + day,
            ),
            "count_by_day": lambda: kit.repository.count_by_day(
                since=record.timestamp - day, until=record.timestamp + day
            ),
        }
        found = calls[operation]()
        assert kit.counter.total == 1
        if operation in {"communications", "count_by_day"}:
            assert len(found) == 1  # the sent record: the one RPC did the whole work

    def test_a_page_of_many_records_and_a_count_over_them_are_one_rpc_each(self, kit: Kit) -> None:
        """300 records: a page of 200 of them is one RunQuery; counting all 300 by day, one."""
        start = datetime(2024, 5, 1, tzinfo=UTC)
        kit.repository.add_many(
            Communication(
                to=TO,
                from_="+15005550006",
                channel=Channel.SMS,
                status="sent" if i % 2 else "failed",
                timestamp=start + timedelta(hours=i),
            )
            for i in range(300)
        )
        kit.counter.reset()
        page = kit.repository.communications(status="sent", open_only=True, limit=200)
        assert len(page) == 150
        assert kit.counted() == {"RunQuery": 1}
        counted = kit.repository.count_by_day(since=start, until=start + timedelta(days=30))
        assert sum(row.count for row in counted) == 300
        assert len(counted) == 2 * 13  # 12.5 days: 13 days of sent and failed
        assert kit.counted() == {"RunQuery": 1}
