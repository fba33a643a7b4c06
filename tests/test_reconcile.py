"""Tests for reconcile and costs: records settled from Twilio's API when callbacks got lost.

Every test runs on both clients (`client_kind`), over a FakeTwilio that keeps
what it accepted (fetchable and listable like Twilio) and a shared clock.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from servio_twilio.domain.errors import InvalidArgument, SendOutcomeUnknown
from servio_twilio.domain.models import Channel, Communication, Direction, replace
from servio_twilio.domain.status import advance, is_open
from servio_twilio.sending.reconcile import NOT_SENT_ERROR
from servio_twilio.sending.results import ReconcileReport
from servio_twilio.storage.memory import InMemoryRepository
from servio_twilio.testing import FakeTwilio
from servio_twilio.testing.fake_twilio import Fault
from support.clients import make_client
from support.sending import PHONE, TO, WHATSAPP, make_settings

pytestmark = pytest.mark.usefixtures("client_kind")

T0 = datetime(2025, 3, 4, 12, 0, tzinfo=UTC)
LATER = timedelta(minutes=20)
MUCH_LATER = timedelta(hours=2)


class Clock:
    """A clock that stands still until moved; thread-safe."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def move(self, by: timedelta) -> None:
        """Move the clock ``by`` forward."""
        with self._lock:
            self.now += by


class World:
    """One repository, one FakeTwilio and one clock, and clients over them."""

    def __init__(self, repository: Any = None) -> None:
        self.clock = Clock()
        self.fake = FakeTwilio(clock=self.clock)
        self.memory = InMemoryRepository()
        self.repository = repository if repository is not None else self.memory
        self.client = self.new_client()

    def new_client(self) -> Any:
        """A client of the running test's kind over this world."""
        return make_client(
            make_settings(),
            repository=self.repository,
            http_client=self.fake,
            clock=self.clock,
            sleep=lambda _: None,
        )

    def record(self, cid: str) -> Communication:
        """The stored record ``cid``."""
        found = self.memory.get(cid)
        assert found is not None
        return found

    def add(self, **fields: Any) -> Communication:
        """Store a record as a crashed send would have left it."""
        values: dict[str, Any] = {
            "prospect_id": "p1",
            "channel": Channel.SMS,
            "to": TO,
            "from_": PHONE,
            "body": "hello",
            "timestamp": self.clock(),
            "created_at": self.clock(),
            "updated_at": self.clock(),
        }
        values.update(fields)
        return self.memory.add(Communication(**values))


@pytest.fixture
def world() -> World:
    return World()


def _counts(report: ReconcileReport) -> tuple[int, int, int, int, int]:
    return (
        report.examined,
        report.settled,
        report.still_open,
        report.not_sent,
        len(report.failed),
    )


class TestLostCallbacks:
    def test_a_delivered_message_is_settled_with_its_price(self, world: World) -> None:
        """A message whose callbacks never came is fetched: status, price and segments kept."""
        sent = world.client.send_sms(TO, "hello", prospect_id="p1")
        world.fake.set_status(
            sent.sid, "delivered", price="-0.00750", price_unit="USD", num_segments=1
        )
        world.clock.move(LATER)
        report = world.client.reconcile()
        assert _counts(report) == (1, 1, 0, 0, 0)
        record = world.record(sent.communication_id)
        assert (record.status, record.price, record.price_unit, record.num_segments) == (
            "delivered",
            "-0.00750",
            "USD",
            1,
        )
        assert not is_open(record)
        assert world.client.costs("p1") == {"USD": Decimal("0.00750")}

    def test_a_record_settled_by_its_callbacks_is_fetched_once_for_its_price(
        self, world: World
    ) -> None:
        """Callbacks carry no price: a final record is fetched once (``reconciled``), then left."""
        priced = world.client.send_sms(TO, "priced", prospect_id="p1")
        unpriced = world.client.send_sms(TO, "free", prospect_id="p1")
        for sent in (priced, unpriced):  # the delivered callback arrived
            world.memory.update(
                sent.communication_id,
                lambda r: advance(r, updated_at=T0, status="delivered"),
            )
            world.fake.set_status(sent.sid, "delivered")
        world.fake.set_status(priced.sid, "delivered", price="-0.0075", price_unit="USD")
        world.clock.move(LATER)
        assert _counts(world.client.reconcile()) == (2, 2, 0, 0, 0)
        assert world.record(priced.communication_id).price == "-0.0075"
        assert world.record(unpriced.communication_id).reconciled
        assert world.record(unpriced.communication_id).price is None
        assert world.client.reconcile().examined == 0
        assert world.client.costs("p1") == {"USD": Decimal("0.0075")}

    def test_a_message_twilio_still_has_in_flight_stays_open(self, world: World) -> None:
        """Twilio still says ``sent``: the record says so too and stays open."""
        sent = world.client.send_sms(TO, "hello", prospect_id="p1")
        world.fake.set_status(sent.sid, "sent")
        world.clock.move(LATER)
        assert _counts(world.client.reconcile()) == (1, 0, 1, 0, 0)
        assert world.record(sent.communication_id).status == "sent"

    def test_young_final_and_inbound_records_are_not_examined(self, world: World) -> None:
        """Only open outbound records older than ``older_than`` are looked at."""
        final = world.client.send_sms(TO, "one", prospect_id="p1")
        world.fake.set_status(final.sid, "delivered")
        world.clock.move(timedelta(seconds=1))
        assert world.client.reconcile(older_than=timedelta(0)).settled == 1
        world.add(direction=Direction.INBOUND, status="received", twilio_sid="SM" + "9" * 32)
        world.clock.move(LATER)
        young = world.client.send_sms(TO, "two", prospect_id="p1")
        report = world.client.reconcile()
        assert report.examined == 0
        assert world.fake.resource(young.sid) is not None
        gets = [r for r in world.fake.requests if r.method == "GET"]
        assert len(gets) == 1  # the fetch of the first run only

    def test_records_older_than_max_age_are_left(self, world: World) -> None:
        """``max_age`` bounds how far back a run looks."""
        sent = world.client.send_sms(TO, "hello", prospect_id="p1")
        world.fake.set_status(sent.sid, "delivered")
        world.clock.move(timedelta(days=8))
        assert world.client.reconcile().examined == 0
        assert world.client.reconcile(max_age=timedelta(days=9)).settled == 1

    def test_a_failed_message_keeps_twilio_s_error(self, world: World) -> None:
        """Twilio's error code and message reach the record, as a callback's would."""
        sent = world.client.send_sms(TO, "hello", prospect_id="p1")
        world.fake.set_status(
            sent.sid, "undelivered", error_code=30003, error_message="Unreachable handset"
        )
        world.clock.move(LATER)
        assert world.client.reconcile().settled == 1
        record = world.record(sent.communication_id)
        assert (record.status, record.error_code, record.error) == (
            "undelivered",
            30003,
            "Unreachable handset",
        )

    def test_a_call_owes_its_recording_until_it_is_listed(self, world: World) -> None:
        """A completed call made with record=True stays open until its recording is stored."""
        call = world.client.make_call(TO, twiml="<Response/>", prospect_id="p1", record=True)
        world.fake.set_status(call.sid, "completed", duration=42, price="-0.0130", price_unit="USD")
        world.clock.move(LATER)
        assert _counts(world.client.reconcile()) == (1, 0, 1, 0, 0)
        record = world.record(call.communication_id)
        assert (record.status, record.duration, record.recording_sid) == ("completed", 42, None)
        assert is_open(record)

        recording = world.fake.add_recording(call.sid, duration=40)
        assert _counts(world.client.reconcile()) == (1, 1, 0, 0, 0)
        record = world.record(call.communication_id)
        assert record.recording_sid == recording
        assert record.recording_duration == 40
        assert record.recording_url is not None
        assert record.recording_url.startswith("https://api.twilio.com/2010-04-01/")
        assert recording in record.recording_url
        assert not is_open(record)

    def test_a_call_without_recording_asked_settles_on_completed(self, world: World) -> None:
        """No recording asked for: ``completed`` is final, no recordings are listed."""
        call = world.client.make_call(TO, twiml="<Response/>", prospect_id="p1")
        world.fake.set_status(call.sid, "completed", duration=5)
        world.clock.move(LATER)
        assert world.client.reconcile().settled == 1
        assert not any("Recordings" in r.url for r in world.fake.requests)


class TestUnknownOutcomes:
    def test_an_unknown_send_that_reached_twilio_gets_its_sid(self, world: World) -> None:
        """The create's answer was lost: the message is found in Twilio's list by body."""
        world.fake.fail_next(1, Fault.read_timeout())
        with pytest.raises(SendOutcomeUnknown) as raised:
            world.client.send_sms(TO, "are you there?", prospect_id="p1")
        cid = raised.value.communication_id
        assert cid is not None
        assert world.record(cid).twilio_sid is None
        [resource] = world.fake.resources("message")
        world.fake.set_status(resource["sid"], "delivered", price="-0.0079", price_unit="USD")
        world.clock.move(LATER)
        assert _counts(world.client.reconcile()) == (1, 1, 0, 0, 0)
        record = world.record(cid)
        assert (record.twilio_sid, record.status, record.price) == (
            resource["sid"],
            "delivered",
            "-0.0079",
        )

    def test_an_unknown_call_is_matched_by_start_time(self, world: World) -> None:
        """A call whose answer was lost is found by its start time, within a minute."""
        world.fake.fail_next(1, Fault.read_timeout())
        with pytest.raises(SendOutcomeUnknown) as raised:
            world.client.make_call(TO, twiml="<Response/>", prospect_id="p1")
        [resource] = world.fake.resources("call")
        world.fake.set_status(resource["sid"], "completed", duration=9)
        world.clock.move(LATER)
        assert world.client.reconcile().settled == 1
        cid = raised.value.communication_id
        assert cid is not None
        assert world.record(cid).twilio_sid == resource["sid"]

    def test_an_unknown_whatsapp_message_is_listed_with_its_prefix(self, world: World) -> None:
        """WhatsApp numbers are looked up as Twilio keeps them, ``whatsapp:+...``."""
        world.fake.fail_next(1, Fault.read_timeout())
        with pytest.raises(SendOutcomeUnknown):
            world.client.send_whatsapp(TO, "olá", prospect_id="p1")
        [resource] = world.fake.resources("message")
        assert resource["to"] == f"whatsapp:{TO}"
        world.fake.set_status(resource["sid"], "read")
        world.clock.move(LATER)
        assert world.client.reconcile().settled == 1
        listed = [r for r in world.fake.requests if r.method == "GET" and "Messages.json" in r.url]
        assert listed
        assert all(r.params.get("To") == f"whatsapp:{TO}" for r in listed)
        assert all(r.params.get("From") == f"whatsapp:{WHATSAPP}" for r in listed)

    @pytest.mark.parametrize("status", ["pending", "unknown"])
    def test_a_send_twilio_never_saw_fails_after_not_sent_after(
        self, world: World, status: str
    ) -> None:
        """Not in Twilio's list: open while young, then ``failed``, never resent."""
        record = world.add(status=status)
        world.clock.move(LATER)
        assert _counts(world.client.reconcile()) == (1, 0, 1, 0, 0)
        assert world.record(record.id or "").status == status
        world.clock.move(MUCH_LATER)
        assert _counts(world.client.reconcile()) == (1, 0, 0, 1, 0)
        settled = world.record(record.id or "")
        assert (settled.status, settled.error) == (
            "failed",
            NOT_SENT_ERROR.format(noun="message"),
        )
        assert not [r for r in world.fake.requests if r.method == "POST"]

    def test_a_send_the_day_filter_misses_is_found_undated_before_failing(
        self, world: World
    ) -> None:
        """Before failing a record, the newest sends are listed without a date (a message
        Twilio still queues or schedules has no DateSent): found there, it is not failed."""
        world.fake.fail_next(1, Fault.read_timeout())
        with pytest.raises(SendOutcomeUnknown) as raised:
            world.client.send_sms(TO, "scheduled for later", prospect_id="p1")
        cid = raised.value.communication_id
        assert cid is not None
        # Twilio dates it two days after our record (queued, scheduled): the day filter misses.
        world.memory.update(cid, lambda r: replace(r, timestamp=r.timestamp - timedelta(days=2)))
        world.clock.move(LATER)
        report = world.client.reconcile()
        assert (report.examined, report.still_open, report.not_sent) == (1, 1, 0)
        assert world.record(cid).twilio_sid is not None  # found by the undated list
        lists = [r for r in world.fake.requests if r.method == "GET" and "Messages.json" in r.url]
        assert [("DateSent" in r.params) for r in lists] == [True, False]

    def test_a_call_twilio_never_saw_says_call(self, world: World) -> None:
        """The error names the kind: ``not sent: Twilio has no such call``."""
        record = world.add(channel=Channel.CALL, body=None, status="unknown")
        world.clock.move(MUCH_LATER)
        assert world.client.reconcile().not_sent == 1
        assert world.record(record.id or "").error == "not sent: Twilio has no such call"

    def test_a_resent_message_s_sid_is_not_taken_by_the_lost_one(self, world: World) -> None:
        """Same text sent again after an unknown outcome: the original does not claim its SID."""
        lost = world.add(status="unknown", body="same text")
        resent = world.client.send_sms(TO, "same text", prospect_id="p1")
        world.fake.set_status(resent.sid, "delivered")
        world.clock.move(MUCH_LATER)
        report = world.client.reconcile()
        assert (report.examined, report.settled, report.not_sent) == (2, 1, 1)
        assert world.record(lost.id or "").status == "failed"
        assert world.record(lost.id or "").twilio_sid is None
        assert world.record(resent.communication_id).twilio_sid == resent.sid

    def test_a_message_sent_just_before_midnight_is_found_the_next_day(self) -> None:
        """A record minutes before midnight is looked up on its day, then the next: Twilio
        dated it after midnight."""
        world = World()
        world.clock.now = datetime(2025, 3, 5, 0, 2, tzinfo=UTC)  # Twilio's date
        world.fake.fail_next(1, Fault.read_timeout())
        with pytest.raises(SendOutcomeUnknown) as raised:
            world.client.send_sms(TO, "late", prospect_id="p1")
        cid = raised.value.communication_id
        assert cid is not None
        late = datetime(2025, 3, 4, 23, 58, tzinfo=UTC)  # ours, four minutes earlier
        world.memory.update(cid, lambda r: replace(r, timestamp=late))
        world.clock.move(LATER)
        assert world.client.reconcile().examined == 1
        assert world.record(cid).twilio_sid is not None
        days = [
            str(r.params.get("DateSent"))[:10]
            for r in world.fake.requests
            if r.method == "GET" and "Messages.json" in r.url
        ]
        assert days == ["2025-03-04", "2025-03-05"]


class _RaceRepository:
    """An InMemoryRepository where a callback lands just before reconcile's write."""

    def __init__(self, inner: InMemoryRepository, land: Callable[[], None]) -> None:
        self.inner = inner
        self.blocking = False
        self._land: Callable[[], None] | None = land

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def update_many(
        self, updates: Mapping[str, Callable[[Communication], Communication]]
    ) -> dict[str, Communication]:
        land, self._land = self._land, None
        if land is not None:
            land()
        return self.inner.update_many(updates)


class TestConcurrency:
    def test_a_callback_landing_mid_run_is_neither_undone_nor_lost(self) -> None:
        """Reconcile merges into the record as it is when written: no regression, no lost field."""
        memory = InMemoryRepository()
        cid_box: list[str] = []

        def land() -> None:
            memory.update(
                cid_box[0],
                lambda r: advance(
                    r, updated_at=T0 + LATER, status="read", error="late callback field"
                ),
            )

        world = World(_RaceRepository(memory, land))
        world.memory = memory
        sent = world.client.send_sms(TO, "hello", prospect_id="p1")
        cid_box.append(sent.communication_id)
        world.fake.set_status(sent.sid, "delivered", price="-0.0075", price_unit="USD")
        world.clock.move(LATER)
        assert world.client.reconcile().settled == 1
        record = world.record(sent.communication_id)
        assert record.status == "read"  # the callback's higher status stays
        assert record.error == "late callback field"
        assert record.price == "-0.0075"  # and reconcile's fields are added

    def test_two_reconcilers_at_once_give_the_same_records(self, world: World) -> None:
        """Two clients reconciling the same records at once end where one would."""
        sids = []
        for n in range(12):
            sent = world.client.send_sms(TO, f"message {n}", prospect_id="p1")
            world.fake.set_status(sent.sid, "delivered" if n % 2 else "sent", price="-0.0075")
            sids.append(sent)
        world.fake.fail_next(1, Fault.read_timeout())
        with pytest.raises(SendOutcomeUnknown):
            world.client.send_sms(TO, "lost answer", prospect_id="p1")
        [taken] = [r for r in world.fake.resources("message") if r["body"] == "lost answer"]
        world.fake.set_status(taken["sid"], "delivered")
        lost = world.add(status="unknown", body="never sent")
        world.clock.move(MUCH_LATER)
        other = world.new_client()
        reports: list[ReconcileReport] = []
        threads = [
            threading.Thread(target=lambda c=c: reports.append(c.reconcile(max_concurrency=4)))
            for c in (world.client, other)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert all(report.ok for report in reports)
        after_two = {r.id: r for r in world.memory.history("p1", limit=100)}
        again = world.client.reconcile()
        after_three = {r.id: r for r in world.memory.history("p1", limit=100)}
        assert {cid: _settled_fields(r) for cid, r in after_two.items()} == {
            cid: _settled_fields(r) for cid, r in after_three.items()
        }
        assert again.examined == 6  # the six "sent" ones stay open
        assert after_two[lost.id].status == "failed"
        sids_held = [r.twilio_sid for r in after_two.values() if r.twilio_sid]
        assert len(sids_held) == len(set(sids_held)) == 13


def _settled_fields(record: Communication) -> tuple[Any, ...]:
    return (record.status, record.twilio_sid, record.price, record.error)


class TestFailures:
    def test_a_sid_twilio_does_not_know_is_reported_and_the_rest_settled(
        self, world: World
    ) -> None:
        """A 404 on fetch fails that record in the report; the others are still settled."""
        good = world.client.send_sms(TO, "good", prospect_id="p1")
        world.fake.set_status(good.sid, "delivered")
        gone = world.client.send_sms(TO, "gone", prospect_id="p1")
        world.fake.forget(gone.sid)
        world.clock.move(LATER)
        report = world.client.reconcile()
        assert _counts(report) == (2, 1, 0, 0, 1)
        assert not report.ok
        [failure] = report.failed
        assert failure.communication_id == gone.communication_id
        assert "no such resource" in failure.reason
        assert world.record(gone.communication_id).status == "queued"

    def test_twilio_down_fails_each_record_without_raising(self, world: World) -> None:
        """5xx from Twilio: every record in ``failed`` with the reason, nothing written."""
        sent = world.client.send_sms(TO, "hello", prospect_id="p1")
        world.clock.move(LATER)
        world.fake.fail_next(10, Fault.server_error(503))
        report = world.client.reconcile()
        assert _counts(report) == (1, 0, 0, 0, 1)
        assert "503" in report.failed[0].reason
        assert TO not in report.failed[0].reason
        assert world.record(sent.communication_id).status == "queued"

    @pytest.mark.parametrize(
        ("kwargs", "error"),
        [
            ({"limit": 0}, InvalidArgument),
            ({"limit": 1001}, InvalidArgument),
            ({"limit": 1.5}, TypeError),
            ({"max_concurrency": 0}, InvalidArgument),
            ({"older_than": timedelta(minutes=-1)}, InvalidArgument),
            ({"older_than": 600}, TypeError),
            ({"not_sent_after": "1h"}, TypeError),
            ({"max_age": timedelta(minutes=5)}, InvalidArgument),
        ],
    )
    def test_bad_arguments_are_refused_before_any_io(
        self, world: World, kwargs: dict[str, Any], error: type[Exception]
    ) -> None:
        """Bad arguments raise before anything is read or asked."""
        with pytest.raises(error):
            world.client.reconcile(**kwargs)
        assert world.fake.requests == []


class TestCosts:
    def test_costs_sum_per_currency_since_a_time(self, world: World) -> None:
        """Positive sums per currency, exact decimals; ``since`` keeps the later records."""
        world.add(price="-0.0075", price_unit="USD", status="delivered")
        world.add(price="-0.0075", price_unit="usd", status="delivered")
        world.clock.move(timedelta(hours=1))
        world.add(price="-0.10", price_unit="BRL", status="delivered")
        world.add(price=None, status="sent")
        world.add(prospect_id="p2", price="-5", price_unit="USD", status="delivered")
        assert world.client.costs("p1") == {"BRL": Decimal("0.10"), "USD": Decimal("0.0150")}
        assert world.client.costs("p1", since=T0 + timedelta(minutes=30)) == {
            "BRL": Decimal("0.10")
        }
        assert world.client.costs("nobody") == {}

    def test_costs_read_every_page(self, world: World) -> None:
        """More records than one page of history: every one counts."""
        for n in range(1205):
            world.clock.move(timedelta(seconds=1))
            world.add(price="-0.01", price_unit="USD", status="delivered", body=f"{n}")
        assert world.client.costs("p1") == {"USD": Decimal("12.05")}

    @pytest.mark.parametrize(
        ("args", "kwargs"),
        [(("",), {}), (("p1",), {"since": datetime(2025, 1, 1)})],
    )
    def test_bad_arguments(self, world: World, args: Iterable[Any], kwargs: Any) -> None:
        """An empty prospect id or a naive ``since`` is an InvalidArgument."""
        with pytest.raises(InvalidArgument):
            world.client.costs(*args, **kwargs)
