"""Fault injection for batches: 1000 sends, ~10% faults, zero lost, zero sent twice.

Ten batches of 100 go through `FakeTwilio` with a seeded mix of faults on
about one message in ten (429 once or for good, 5xx, read timeouts,
connections refused once or for good, Twilio refusals), one batch whose bulk
write fails, and a few records whose update after the send fails. Every
message has a unique body, so the ledger below counts, per message, the
requests Twilio received and the ones it accepted.

`TestDeadFirestore` runs a batch against a Firestore that is down (a closed
port, a server that never answers): it must report within its timeout.
"""

from __future__ import annotations

import random
import socket
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

import pytest
from google.cloud import firestore

from servio_twilio.domain.errors import RepositoryError
from servio_twilio.domain.models import Channel, Communication
from servio_twilio.sending.client import CommunicationsClient
from servio_twilio.sending.results import BatchItemResult, BatchReport, OutboundMessage
from servio_twilio.storage.firestore.repository import FirestoreRepository
from servio_twilio.storage.memory import InMemoryRepository
from servio_twilio.testing import FakeTwilio
from servio_twilio.testing.fake_twilio import Fault
from support.clients import make_client
from support.processes import free_port
from support.sending import make_settings

pytestmark = pytest.mark.usefixtures("client_kind")

ACCOUNT = "AC" + "5" * 32
BATCHES = 10
PER_BATCH = 100
FAULT_RATE = 0.10
STORAGE_DOWN_BATCH = 6

# kind -> (the fault, how many times it strikes (None: always))
FAULTS: dict[str, tuple[Fault, int | None]] = {
    "429_once": (Fault.rate_limited(retry_after=1), 1),
    "429_always": (Fault.rate_limited(retry_after=1), None),
    "500": (Fault.server_error(status=500, code=20500), None),
    "503": (Fault.server_error(status=503, code=20503), None),
    "read_timeout": (Fault.read_timeout(), None),
    "connect_once": (Fault.connect_error(), 1),
    "connect_always": (Fault.connect_error(), None),
    "refused": (
        Fault.error(code=21610, status=400, message="Attempt to send to unsubscribed"),
        None,
    ),
}


class _Ledger(FakeTwilio):
    """FakeTwilio that counts, per message body, requests received and accepted."""

    def __init__(self) -> None:
        super().__init__()
        self.received: Counter[str] = Counter()
        self.accepted: Counter[str] = Counter()
        self.refused_connections: Counter[str] = Counter()
        self._ledger_lock = threading.Lock()

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        data = kwargs.get("data") or (args[1] if len(args) > 1 else None) or {}
        body = str(data.get("Body"))
        try:
            response = super().request(method, url, *args, **kwargs)
        except Exception as exc:
            with self._ledger_lock:
                if "ReadTimeout" in type(exc).__name__:
                    self.received[body] += 1
                else:
                    self.refused_connections[body] += 1
            raise
        with self._ledger_lock:
            self.received[body] += 1
            if 200 <= response.status_code < 300:
                self.accepted[body] += 1
        return response


class _FlakyRepository(InMemoryRepository):
    """Fails one batch's bulk write, and the post-send update of chosen bodies.

    A batch merges Twilio's answers in groups, all or none: a group holding
    a broken body fails whole, and its records are listed in ``unmerged``.
    """

    def __init__(self, broken_updates: set[str]) -> None:
        super().__init__()
        self.fail_next_add_many = False
        self.broken_updates = broken_updates
        self.unmerged: set[str] = set()

    def add_many(self, communications: Iterable[Communication]) -> list[Communication]:
        if self.fail_next_add_many:
            self.fail_next_add_many = False
            raise RepositoryError("deadline exceeded writing the batch")
        return super().add_many(communications)

    def update(
        self, communication_id: str, fn: Callable[[Communication], Communication]
    ) -> Communication:
        current = self.get(communication_id)
        if current is not None and current.body in self.broken_updates:
            raise RepositoryError("unavailable")
        return super().update(communication_id, fn)

    def update_many(
        self, updates: Mapping[str, Callable[[Communication], Communication]]
    ) -> dict[str, Communication]:
        records = [self.get(communication_id) for communication_id in updates]
        if any(r is not None and r.body in self.broken_updates for r in records):
            self.unmerged.update(updates)
            raise RepositoryError("unavailable")
        return super().update_many(updates)


def _plan(rng: random.Random) -> list[tuple[OutboundMessage, str | None]]:
    """1000 messages with unique numbers and bodies, each with its fault kind or None."""
    plan = []
    kinds = sorted(FAULTS)
    for n in range(BATCHES * PER_BATCH):
        whatsapp = n % 3 == 0
        message = OutboundMessage(
            to=f"+5511980{n:06d}",
            body=f"m{n}-{uuid.uuid4().hex[:8]}",
            channel=Channel.WHATSAPP if whatsapp else Channel.SMS,
            media_url="https://cdn.servio.test/p.jpg" if whatsapp and n % 2 else None,
            prospect_id=f"p{n % 37}",
        )
        kind = rng.choice(kinds) if rng.random() < FAULT_RATE else None
        plan.append((message, kind))
    return plan


def _run() -> tuple[
    list[tuple[OutboundMessage, str | None]], list[BatchReport], Any, Any, set[str]
]:
    rng = random.Random(20250101)
    plan = _plan(rng)
    clean = [m.body for m, kind in plan if kind is None and m.body is not None]
    broken_updates = set(rng.sample(clean, 8))
    fake = _Ledger()
    for message, kind in plan:
        if kind is not None:
            fault, times = FAULTS[kind]
            fake.fail_number(message.to, fault, times=times)
    repo = _FlakyRepository(broken_updates)
    settings = make_settings(account_sid=ACCOUNT, auth_token="fault-token")
    client = make_client(
        settings, repository=repo, http_client=fake, sleep=lambda _s: None, max_retries=3
    )
    reports = []
    for b in range(BATCHES):
        repo.fail_next_add_many = b == STORAGE_DOWN_BATCH
        chunk = [m for m, _ in plan[b * PER_BATCH : (b + 1) * PER_BATCH]]
        reports.append(client.send_batch(chunk, max_concurrency=10))
    return plan, reports, fake, repo, broken_updates


@pytest.fixture(scope="module")
def outcome() -> tuple[
    list[tuple[OutboundMessage, str | None]], list[BatchReport], Any, Any, set[str]
]:
    return _run()


def _items(reports: list[BatchReport]) -> list[BatchItemResult]:
    return [item for report in reports for item in report.items]


class TestThousandSendsWithFaults:
    def test_roughly_ten_percent_faults(self, outcome: Any) -> None:
        """The plan injects faults into about one message in ten, of every kind."""
        plan = outcome[0]
        kinds = Counter(kind for _, kind in plan if kind is not None)
        assert 70 <= sum(kinds.values()) <= 130
        assert set(kinds) == set(FAULTS)

    def test_every_message_reported_once(self, outcome: Any) -> None:
        """Zero lost: 10 reports of 100, counts adding up, each item for its own message."""
        plan, reports = outcome[0], outcome[1]
        for report in reports:
            assert report.total == PER_BATCH
            assert report.succeeded + report.failed == PER_BATCH
        items = _items(reports)
        assert len(items) == len(plan) == BATCHES * PER_BATCH
        for (message, _), item in zip(plan, items, strict=True):
            assert item.to == message.to

    def test_never_accepted_twice(self, outcome: Any) -> None:
        """Zero sent twice: no message body was accepted by Twilio more than once."""
        fake = outcome[2]
        assert max(fake.accepted.values()) == 1
        assert sum(fake.accepted.values()) == len(fake.accepted)

    def test_each_item_matches_what_happened(self, outcome: Any) -> None:
        """Per message: sent once with its record, or failed/unknown with a record saying why."""
        plan, reports, fake, repo, broken_updates = outcome
        items = _items(reports)
        seen = Counter[str]()
        for n, ((message, kind), item) in enumerate(zip(plan, items, strict=True)):
            body = message.body
            assert body is not None
            storage_down = n // PER_BATCH == STORAGE_DOWN_BATCH
            record = repo.get(item.communication_id) if item.communication_id else None
            unmerged = item.communication_id in repo.unmerged
            if unmerged:
                # Its group's merge failed: Twilio's callbacks complete the record.
                assert record is not None
                assert record.status == "pending"
            if storage_down:
                outcome_kind = "storage_down"
                assert not item.ok
                assert item.error is not None
                assert item.error.startswith("not sent: the pending records could not be stored")
                assert item.communication_id is None
                assert fake.received[body] == fake.refused_connections[body] == 0
            elif kind in {None, "429_once", "connect_once"}:
                outcome_kind = "sent"
                assert item.ok, item.error
                assert item.result is not None
                assert fake.accepted[body] == 1
                assert fake.received[body] == (2 if kind == "429_once" else 1)
                assert unmerged or body not in broken_updates
                if not unmerged:
                    assert record is not None
                    assert (record.twilio_sid, record.status) == (item.result.sid, "queued")
            elif kind == "read_timeout":
                outcome_kind = "unknown"
                assert not item.ok
                assert item.error is not None
                assert item.error.startswith("outcome unknown: ")
                assert fake.received[body] == 1
                if not unmerged:
                    assert record is not None
                    assert record.status == "unknown"
            else:
                outcome_kind = "failed"
                assert not item.ok
                assert item.error
                assert fake.accepted[body] == 0
                expected_requests = {"429_always": 4, "connect_always": 0}.get(kind, 1)
                assert fake.received[body] == expected_requests
                if kind != "connect_always":
                    assert item.error_code is not None
                if not unmerged:
                    assert record is not None
                    assert record.status == "failed"
                    assert record.error
                    assert record.error_code == item.error_code
            seen[outcome_kind] += 1
        assert seen["storage_down"] == PER_BATCH
        assert seen["sent"] + seen["failed"] + seen["unknown"] + 100 == len(plan)
        assert seen["unknown"] > 0
        assert seen["failed"] > 0
        merged = {i.communication_id for i in items if i.communication_id} - repo.unmerged
        assert len(merged) > len(repo.unmerged)  # most groups merged

    def test_no_request_without_a_record(self, outcome: Any) -> None:
        """Every body Twilio received belongs to a message whose record was written first."""
        plan, _, fake, repo, _ = outcome
        stored = {c.body for n in range(37) for c in repo.history(f"p{n}", limit=1000)}
        assert set(fake.received) <= stored
        assert len(stored) == len(plan) - PER_BATCH


DEAD_TIMEOUT = 2.0
DEAD_SLACK = 3.0


class _CountingFirestore(FirestoreRepository):
    """A FirestoreRepository that counts its ``update`` calls."""

    updates = 0

    def update(
        self, communication_id: str, fn: Callable[[Communication], Communication]
    ) -> Communication:
        self.updates += 1
        return super().update(communication_id, fn)


@pytest.fixture
def silent_listener() -> Iterator[str]:
    """A ``host:port`` whose socket listens but never answers (connections hang)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"127.0.0.1:{sock.getsockname()[1]}"


class TestDeadFirestore:
    @pytest.mark.parametrize("dead", ["closed-port", "silent-server"])
    def test_a_batch_reports_within_its_timeout(
        self, monkeypatch: pytest.MonkeyPatch, silent_listener: str, dead: str
    ) -> None:
        """Firestore down (timeout=2): the bulk write and one bounded attempt to mark the
        records failed, so the batch reports within 2 x timeout + 3 s; nothing is sent."""
        host = f"127.0.0.1:{free_port()}" if dead == "closed-port" else silent_listener
        monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", host)
        repo = _CountingFirestore(firestore.Client(project="demo-x"), timeout=DEAD_TIMEOUT)
        fake = FakeTwilio()
        client = CommunicationsClient(
            make_settings(account_sid=ACCOUNT, auth_token="fault-token"),
            repository=repo,
            http_client=fake,
            sleep=lambda _s: None,
        )
        messages = [OutboundMessage(to=f"+55119800000{n:02d}", body=f"d{n}") for n in range(20)]
        started = time.monotonic()
        report = client.send_batch(messages, max_concurrency=10)
        elapsed = time.monotonic() - started
        assert elapsed < 2 * DEAD_TIMEOUT + DEAD_SLACK, f"the batch took {elapsed:.1f} s"
        assert repo.updates == 1
        assert fake.requests == []
        assert [item.ok for item in report.items] == [False] * 20
        error = report.items[0].error or ""
        assert error.startswith("not sent: the pending records could not be stored")
        expected = "ServiceUnavailable" if dead == "closed-port" else "DeadlineExceeded"
        assert f"add_many failed: {expected}: " in error
