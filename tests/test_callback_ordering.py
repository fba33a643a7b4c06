"""Late, repeated, out-of-order and concurrent callbacks settle on one record."""

from __future__ import annotations

import http.client
import itertools
import random
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import pytest

from servio_twilio.domain.errors import DuplicateRecord
from servio_twilio.domain.models import Channel, Communication
from servio_twilio.domain.status import advance
from servio_twilio.storage.memory import InMemoryRepository
from servio_twilio.webhooks.core import WebhookCore, WebhookRequest, build_core, run_sync
from servio_twilio.webhooks.verifier import WebhookVerifier
from servio_twilio.webhooks.wsgi import make_wsgi_app
from support.twilio_callbacks import (
    PROSPECT_NUMBER,
    SENDER,
    TOKEN,
    call_params,
    message_params,
    recording_params,
    sid,
    signed,
)

BASE = "https://hooks.servio.test/twilio"
SM = sid("SM", 77)
CA = sid("CA", 78)
RE = sid("RE", 79)

Callback = tuple[str, dict[str, str]]

MESSAGE_CALLBACKS: list[Callback] = [
    ("/message-status", message_params(SM, "queued")),
    ("/message-status", message_params(SM, "sent")),
    ("/message-status", message_params(SM, "delivered")),
    ("/message-status", message_params(SM, "read")),
]
FAILING_MESSAGE_CALLBACKS: list[Callback] = [
    ("/message-status", message_params(SM, "sent")),
    ("/message-status", message_params(SM, "undelivered", ErrorCode="30003")),
    ("/message-status", message_params(SM, "failed", ErrorCode="30008", ErrorMessage="Unknown")),
]
CALL_CALLBACKS: list[Callback] = [
    ("/call-status", call_params(CA, "initiated", SequenceNumber="0")),
    ("/call-status", call_params(CA, "ringing", SequenceNumber="1")),
    ("/call-status", call_params(CA, "in-progress", SequenceNumber="2")),
    ("/call-status", call_params(CA, "completed", SequenceNumber="3", CallDuration="48")),
    ("/recording-status", recording_params(CA, RE)),
]


def make_core(repository: InMemoryRepository) -> WebhookCore:
    return build_core(
        settings=None,
        verifier=WebhookVerifier(TOKEN),
        repository=repository,
        public_base_url=BASE,
        trust_forwarded_headers=False,
        on_event=None,
        on_inbound=None,
        prospect_resolver=None,
        max_body_bytes=65536,
        allow_async_hooks=False,
    )


def deliver(core: WebhookCore, route: str, params: dict[str, str], cid: str | None = None) -> int:
    query = f"cid={cid}" if cid else ""
    headers, body = signed(BASE + route + ("?" + query if query else ""), params)
    request = WebhookRequest(
        method="POST",
        route=route,
        raw_path="/twilio" + route,
        query=query,
        scheme="https",
        host="hooks.servio.test",
        headers={k.lower(): v for k, v in headers.items()},
        body=body,
    )
    return run_sync(core.handle(request)).status


def essence(record: Communication | None) -> dict[str, Any]:
    """A record without its times, which say when, not what."""
    assert record is not None
    data = record.to_dict()
    for name in ("timestamp", "created_at", "updated_at"):
        data.pop(name)
    return data


def settle(callbacks: list[Callback], *, pending: bool) -> tuple[dict[str, Any], int, int]:
    """Deliver ``callbacks`` in order; the record, how many records, how many events."""
    repository = InMemoryRepository()
    core = make_core(repository)
    cid = None
    if pending:
        channel = Channel.CALL if callbacks[0][0] != "/message-status" else Channel.SMS
        cid = repository.add(
            Communication(
                id="pending1", channel=channel, to=PROSPECT_NUMBER, from_=SENDER, prospect_id="p1"
            )
        ).id
    for route, params in callbacks:
        assert deliver(core, route, params, cid) == 204
    sid_ = callbacks[0][1].get("MessageSid") or callbacks[0][1]["CallSid"]
    record = repository.find_by_sid(sid_)
    assert record is not None
    assert record.id is not None
    return essence(record), len(repository), len(repository.events(record.id))


class TestPermutations:
    @pytest.mark.parametrize("pending", [False, True], ids=["no-record", "pending-record"])
    @pytest.mark.parametrize(
        "callbacks",
        [MESSAGE_CALLBACKS, FAILING_MESSAGE_CALLBACKS],
        ids=["delivered", "failed"],
    )
    def test_every_message_order_gives_the_same_record(
        self, callbacks: list[Callback], pending: bool
    ) -> None:
        """All orders of a message's callbacks settle on one record with every callback kept."""
        results = [
            settle(list(order), pending=pending) for order in itertools.permutations(callbacks)
        ]
        first = results[0]
        assert all(result == first for result in results)
        record, records, events = first
        assert (records, events) == (1, len(callbacks))
        if callbacks is MESSAGE_CALLBACKS:
            assert record["status"] == "read"
        else:
            assert (record["status"], record["error_code"], record["error"]) == (
                "failed",
                30008,
                "Unknown",
            )
        assert record["id"] == ("pending1" if pending else "sid-" + SM)

    @pytest.mark.parametrize("pending", [False, True], ids=["no-record", "pending-record"])
    def test_every_call_order_gives_the_same_record(self, pending: bool) -> None:
        """All 120 orders of a call's four status and one recording callback agree."""
        results = [
            settle(list(order), pending=pending) for order in itertools.permutations(CALL_CALLBACKS)
        ]
        first = results[0]
        assert all(result == first for result in results)
        record, records, events = first
        assert (records, events) == (1, 5)
        assert (record["status"], record["duration"]) == ("completed", 48)
        assert (record["recording_sid"], record["recording_duration"]) == (RE, 42)
        assert (record["to"], record["from"]) == (PROSPECT_NUMBER, SENDER)

    @pytest.mark.parametrize("seed", range(20))
    def test_repetitions_change_nothing(self, seed: int) -> None:
        """Each callback delivered one to three times, shuffled: the same record."""
        rng = random.Random(seed)
        for callbacks in (MESSAGE_CALLBACKS, CALL_CALLBACKS):
            repeated = [cb for cb in callbacks for _ in range(rng.randint(1, 3))]
            rng.shuffle(repeated)
            once, _, _ = settle(callbacks, pending=False)
            record, records, events = settle(repeated, pending=False)
            assert record == once
            assert (records, events) == (1, len(repeated))


class TestPendingRecord:
    def test_callback_before_create_returns(self) -> None:
        """The callback lands on the pending record by cid; the create's answer then merges."""
        repository = InMemoryRepository()
        core = make_core(repository)
        pending = repository.add(
            Communication(channel=Channel.SMS, to=PROSPECT_NUMBER, from_=SENDER, prospect_id="p1")
        )
        assert pending.id is not None
        assert deliver(core, "/message-status", message_params(SM, "sent"), pending.id) == 204
        # The client's create returns later, with Twilio's first status.
        record = repository.update(
            pending.id,
            lambda r: advance(r, updated_at=r.updated_at, twilio_sid=SM, status="queued"),
        )
        assert len(repository) == 1
        assert (record.twilio_sid, record.status, record.prospect_id) == (SM, "sent", "p1")

    def test_cid_of_a_record_with_another_sid_is_ignored(self) -> None:
        """A cid pointing at a record that has another SID does not hijack it."""
        repository = InMemoryRepository()
        core = make_core(repository)
        other = repository.add(
            Communication(
                channel=Channel.SMS, to=PROSPECT_NUMBER, from_=SENDER, twilio_sid=sid("SM", 1)
            )
        )
        assert deliver(core, "/message-status", message_params(SM, "sent"), other.id) == 204
        assert len(repository) == 2
        assert repository.get(other.id or "") == other
        record = repository.find_by_sid(SM)
        assert record is not None
        assert record.id == "sid-" + SM

    def test_unknown_cid_creates_from_the_callback(self) -> None:
        """A cid naming no record: the callback creates sid-<SID>."""
        repository = InMemoryRepository()
        assert (
            deliver(make_core(repository), "/message-status", message_params(SM, "sent"), "gone")
            == 204
        )
        assert repository.get("sid-" + SM) is not None


class _LosingRaceRepository(InMemoryRepository):
    """A backend without isolation losing a create race once, as Firestore's may.

    The first `record_event` lets ``racer`` (another first callback for the
    same SID) store its record, then fails with `DuplicateRecord`, as a
    transaction whose create found the document already made would.
    """

    def __init__(self) -> None:
        super().__init__()
        self.racer: Callable[[], object] | None = None
        self.duplicates = 0

    def record_event(self, *args: Any, **kwargs: Any) -> Communication | None:
        racer, self.racer = self.racer, None
        if racer is not None:
            racer()
            self.duplicates += 1
            raise DuplicateRecord("the racing callback created the record first")
        return super().record_event(*args, **kwargs)


class TestRaces:
    def test_racing_first_callbacks_make_one_record(self) -> None:
        """Two first callbacks for an unknown SID: the one that lost the create updates instead."""
        repository = _LosingRaceRepository()
        core = make_core(repository)
        statuses: list[int] = []
        repository.racer = lambda: statuses.append(
            deliver(core, "/message-status", message_params(SM, "sent"))
        )
        statuses.append(deliver(core, "/message-status", message_params(SM, "delivered")))
        assert statuses == [204, 204]
        assert repository.duplicates == 1
        assert len(repository) == 1
        record = repository.find_by_sid(SM)
        assert record is not None
        assert record.status == "delivered"
        assert len(repository.events("sid-" + SM)) == 2

    @pytest.mark.server
    def test_concurrent_delivery_over_http_loses_nothing(
        self, wsgi_server: Callable[..., str]
    ) -> None:
        """8 threads deliver a message's and a call's callbacks, shuffled, over real HTTP."""
        repository = InMemoryRepository()
        app = make_wsgi_app(
            verifier=WebhookVerifier(TOKEN), repository=repository, public_base_url=BASE
        )
        base = wsgi_server(app)
        callbacks = MESSAGE_CALLBACKS + CALL_CALLBACKS
        expected_message, _, _ = settle(MESSAGE_CALLBACKS, pending=False)
        expected_call, _, _ = settle(CALL_CALLBACKS, pending=False)
        failures: list[str] = []

        def worker(seed: int) -> None:
            rng = random.Random(seed)
            order = callbacks * 2
            rng.shuffle(order)
            address = urlsplit(base)
            connection = http.client.HTTPConnection(
                address.hostname or "", address.port, timeout=30
            )
            try:
                for route, params in order:
                    headers, body = signed(BASE + route, params)
                    connection.request("POST", route, body=body, headers=headers)
                    response = connection.getresponse()
                    response.read()
                    if response.status != 204:
                        failures.append(f"{route}: {response.status}")
                    connection.close()
            finally:
                connection.close()

        threads = [threading.Thread(target=worker, args=(seed,)) for seed in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(60)
        assert failures == []
        assert len(repository) == 2
        assert essence(repository.find_by_sid(SM)) == expected_message
        assert essence(repository.find_by_sid(CA)) == expected_call
        total = len(repository.events("sid-" + SM)) + len(repository.events("sid-" + CA))
        assert total == 8 * 2 * len(callbacks)
