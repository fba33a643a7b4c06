"""Tests for servio_twilio.sending.batch: CommunicationsClient.send_batch over FakeTwilio."""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections import Counter
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import twilio.rest

from servio_twilio.domain.errors import BatchTooLarge, RepositoryError
from servio_twilio.domain.models import Channel, Communication
from servio_twilio.domain.settings import TwilioSettings
from servio_twilio.sending import batch_input as batch_module
from servio_twilio.sending.limiter import InMemorySendLimiter
from servio_twilio.sending.ratelimit import TokenBucket
from servio_twilio.sending.results import BatchReport, OutboundMessage
from servio_twilio.storage.memory import InMemoryRepository
from servio_twilio.testing import FakeTwilio
from servio_twilio.testing.fake_twilio import Fault
from support.clients import make_client
from support.sending import (
    TEMPLATE,
    WHATSAPP,
    TickingClock as _Clock,
    make_settings as _settings,
)

pytestmark = pytest.mark.usefixtures("client_kind")


def _number(i: int) -> str:
    return f"+5511990{i:06d}"


class _SpyRepository(InMemoryRepository):
    """Counts add/add_many calls; ``fail_add_many`` makes add_many raise it."""

    def __init__(self) -> None:
        super().__init__()
        self.adds = 0
        self.add_many_calls: list[int] = []
        self.fail_add_many: Exception | None = None
        self.written_before_failure = 0

    def add(self, communication: Communication) -> Communication:
        self.adds += 1
        return super().add(communication)

    def add_many(self, communications: Iterable[Communication]) -> list[Communication]:
        items = list(communications)
        self.add_many_calls.append(len(items))
        if self.fail_add_many is not None:
            if self.written_before_failure:  # a chunked backend's first commit went through
                super().add_many(items[: self.written_before_failure])
            raise self.fail_add_many
        return super().add_many(items)


class _Kit:
    def __init__(self, settings: TwilioSettings | None = None, **kwargs: Any) -> None:
        self.fake: FakeTwilio = kwargs.pop("http_client", None) or FakeTwilio()
        self.repo = _SpyRepository()
        self.sleeps: list[float] = []
        self.client = make_client(
            settings or _settings(),
            repository=self.repo,
            http_client=self.fake,
            clock=_Clock(),
            sleep=self.sleeps.append,
            **kwargs,
        )

    def bodies_sent(self) -> Counter[str]:
        return Counter(str(r.data.get("Body")) for r in self.fake.requests)


@pytest.fixture
def kit() -> _Kit:
    return _Kit()


def _sms(n: int, **kwargs: Any) -> list[OutboundMessage]:
    return [OutboundMessage(to=_number(i), body=f"message {i}", **kwargs) for i in range(n)]


def _check_consistent(report: BatchReport, total: int) -> None:
    assert report.total == total
    assert report.succeeded + report.failed == report.total
    assert [item.index for item in report.items] == list(range(total))
    assert report.succeeded == sum(item.ok for item in report.items)


class _Gate(FakeTwilio):
    """A FakeTwilio whose Messages requests wait at a barrier of ``parties`` threads.

    ``gate_peak`` is the most requests ever waiting or being answered at once.
    """

    def __init__(self, parties: int) -> None:
        super().__init__()
        self.barrier = threading.Barrier(parties, timeout=10)
        self.gate_peak = 0
        self._gate_count = 0
        self._gate_lock = threading.Lock()

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if not url.endswith("/Messages.json"):
            return super().request(method, url, *args, **kwargs)
        with self._gate_lock:
            self._gate_count += 1
            self.gate_peak = max(self.gate_peak, self._gate_count)
        try:
            self.barrier.wait()
            return super().request(method, url, *args, **kwargs)
        finally:
            with self._gate_lock:
                self._gate_count -= 1


class TestSendBatchReport:
    def test_all_sent_in_input_order(self, kit: _Kit) -> None:
        """Every item goes out once; the report is in input order and each record matches."""
        messages = _sms(30, prospect_id="p1")
        report = kit.client.send_batch(messages, max_concurrency=8)
        _check_consistent(report, 30)
        assert report.succeeded == 30
        assert kit.bodies_sent() == Counter(f"message {i}" for i in range(30))
        for i, item in enumerate(report.items):
            assert item.ok
            assert item.result is not None
            assert item.to == _number(i) == item.result.to
            assert item.communication_id == item.result.communication_id
            record = kit.repo.get(item.result.communication_id)
            assert record is not None
            assert record.body == f"message {i}"
            assert record.twilio_sid == item.result.sid
            assert record.status == "queued"
            assert record.prospect_id == "p1"

    def test_to_dict_is_json(self, kit: _Kit) -> None:
        """The report's ``to_dict`` survives a JSON round trip with the counts and items."""
        kit.fake.fail_number(_number(1), Fault.error(code=21610, status=400))
        data = kit.client.send_batch(_sms(3)).to_dict()
        assert json.loads(json.dumps(data)) == data
        assert (data["total"], data["succeeded"], data["failed"]) == (3, 2, 1)
        assert data["items"][1]["error_code"] == 21610
        assert data["items"][0]["result"]["sid"].startswith("SM")

    def test_empty_batch(self, kit: _Kit) -> None:
        """No messages: an empty report, nothing written, nothing sent."""
        report = kit.client.send_batch([])
        assert (report.total, report.succeeded, report.failed) == (0, 0, 0)
        assert kit.repo.add_many_calls == []
        assert kit.fake.requests == []

    def test_any_iterable(self, kit: _Kit) -> None:
        """A generator of messages is accepted."""
        report = kit.client.send_batch(m for m in _sms(4))
        assert report.succeeded == 4

    def test_whatsapp_media_and_templates(self, kit: _Kit) -> None:
        """WhatsApp items with media and templates are sent with whatsapp: addresses."""
        messages = [
            OutboundMessage(
                to=_number(0),
                body="foto",
                channel=Channel.WHATSAPP,
                media_url=("https://cdn.servio.test/a.jpg", "https://cdn.servio.test/b.jpg"),
            ),
            OutboundMessage(
                to=f"whatsapp:{_number(1)}",
                channel=Channel.WHATSAPP,
                content_sid=TEMPLATE,
                content_variables={"1": "15h"},
            ),
        ]
        report = kit.client.send_batch(messages)
        assert report.succeeded == 2
        first, second = sorted(kit.fake.requests, key=lambda r: str(r.data["To"]))
        assert first.data["To"] == f"whatsapp:{_number(0)}"
        assert first.data["From"] == f"whatsapp:{WHATSAPP}"
        assert first.data["MediaUrl"] == [
            "https://cdn.servio.test/a.jpg",
            "https://cdn.servio.test/b.jpg",
        ]
        assert second.data["ContentSid"] == TEMPLATE
        assert json.loads(str(second.data["ContentVariables"])) == {"1": "15h"}
        assert report.items[1].to == _number(1)
        record = kit.repo.get(report.items[0].communication_id or "")
        assert record is not None
        assert record.channel == Channel.WHATSAPP
        assert record.media_urls == (
            "https://cdn.servio.test/a.jpg",
            "https://cdn.servio.test/b.jpg",
        )

    def test_mappings_in_the_earlier_shape(self, kit: _Kit) -> None:
        """Dicts with the earlier service's keys are read with OutboundMessage.from_dict."""
        report = kit.client.send_batch(
            [
                {"to": _number(0), "body": "oi", "prospectId": "p9"},
                {
                    "to": _number(1),
                    "channel": "whatsapp",
                    "mediaUrl": "https://cdn.servio.test/c.pdf",
                },
            ]
        )
        assert report.succeeded == 2
        records = [kit.repo.get(item.communication_id or "") for item in report.items]
        assert records[0] is not None
        assert records[0].prospect_id == "p9"
        assert records[1] is not None
        assert records[1].channel == Channel.WHATSAPP
        assert records[1].media_url == "https://cdn.servio.test/c.pdf"

    def test_messaging_service_sender(self) -> None:
        """With a messaging service, batch SMS go out with MessagingServiceSid, status accepted."""
        kit = _Kit(_settings(phone_number=None, messaging_service_sid="MG" + "3" * 32))
        report = kit.client.send_batch(_sms(2))
        assert report.succeeded == 2
        assert all("MessagingServiceSid" in r.data for r in kit.fake.requests)
        assert {item.result.status for item in report.items if item.result} == {"accepted"}


class TestSendBatchSize:
    def test_over_the_limit_raises_before_anything(self) -> None:
        """101 messages: BatchTooLarge; zero records, zero requests, the limiter untouched."""
        limiter = InMemorySendLimiter(max_sends=1000)
        kit = _Kit(send_limiter=limiter)
        with pytest.raises(BatchTooLarge) as caught:
            kit.client.send_batch(_sms(101, prospect_id="p1"))
        assert (caught.value.size, caught.value.limit) == (101, 100)
        assert len(kit.repo) == 0
        assert kit.repo.add_many_calls == []
        assert kit.fake.requests == []
        assert limiter.remaining("p1") == 1000

    def test_exactly_the_limit_is_fine(self, kit: _Kit) -> None:
        """100 messages (the default limit) are sent in one bulk write."""
        report = kit.client.send_batch(_sms(100))
        assert report.succeeded == 100
        assert kit.repo.add_many_calls == [100]
        assert kit.repo.adds == 0

    def test_raised_limit(self, kit: _Kit) -> None:
        """``max_batch_size`` can be raised (and lowered)."""
        assert kit.client.send_batch(_sms(120), max_batch_size=120).succeeded == 120
        with pytest.raises(BatchTooLarge):
            kit.client.send_batch(_sms(3), max_batch_size=2)


class TestSendBatchArguments:
    @pytest.mark.parametrize(
        "kwargs",
        [
            {"max_concurrency": 0},
            {"max_concurrency": -1},
            {"max_concurrency": True},
            {"max_concurrency": 2.5},
            {"max_batch_size": 0},
            {"max_batch_size": "100"},
            {"rate_per_second": 0},
            {"rate_per_second": -5},
            {"rate_per_second": float("nan")},
            {"rate_per_second": float("inf")},
            {"rate_per_second": "50"},
        ],
    )
    def test_bad_numbers_are_value_errors(self, kit: _Kit, kwargs: dict[str, Any]) -> None:
        """Out-of-range knobs raise ValueError before anything is written or sent."""
        with pytest.raises(ValueError, match=next(iter(kwargs))):
            kit.client.send_batch(_sms(2), **kwargs)
        assert len(kit.repo) == 0
        assert kit.fake.requests == []

    @pytest.mark.parametrize(
        "messages",
        ["+5511999999999", {"to": "+5511999999999", "body": "x"}, None, 42],
    )
    def test_messages_must_be_an_iterable_of_messages(self, kit: _Kit, messages: Any) -> None:
        """A string, one mapping, None or a number instead of a list is a TypeError."""
        with pytest.raises(TypeError, match="messages must be an iterable"):
            kit.client.send_batch(messages)

    def test_one_message_instead_of_a_list(self, kit: _Kit) -> None:
        """A single OutboundMessage (not in a list) is a TypeError."""
        with pytest.raises(TypeError, match="not one OutboundMessage"):
            kit.client.send_batch(_sms(1)[0])  # type: ignore[arg-type]


class TestSendBatchValidation:
    def test_invalid_items_fail_alone(self, kit: _Kit) -> None:
        """Bad items fail with 'invalid: ...', no record and no request; the rest go out."""
        messages: list[Any] = [
            OutboundMessage(to=_number(0), body="ok 0"),
            OutboundMessage(to="+55 11 1234", body="bad number"),
            OutboundMessage(to=_number(2), body="   "),
            OutboundMessage(to=_number(3), body="ok 3"),
            OutboundMessage(to=_number(4), body="x", media_url="https://cdn.servio.test/a.jpg"),
            OutboundMessage(
                to=_number(5), body="x", channel=Channel.WHATSAPP, content_sid=TEMPLATE
            ),
            OutboundMessage(to=_number(6), body="call me", channel=Channel.CALL),
            {"to": _number(7), "body": "x", "prospect_id": "wrong key"},
            {"body": "no to"},
            42,
            OutboundMessage(to=_number(10), body="x" * 1601),
            OutboundMessage(to=_number(11), body="ok 11"),
        ]
        report = kit.client.send_batch(messages)
        _check_consistent(report, 12)
        assert [item.ok for item in report.items] == [
            True, False, False, True, False, False, False, False, False, False, False, True,
        ]  # fmt: skip
        expected = {
            1: "invalid phone number",
            2: "body must not be empty",
            4: "media and templates are sent with send_whatsapp",
            5: "cannot be combined with body",
            6: "not call",
            7: "unknown keys",
            8: "'to' is required",
            9: "an item must be an OutboundMessage or a mapping, not int",
            10: "Twilio's limit is 1600",
        }
        for index, words in expected.items():
            item = report.items[index]
            assert item.error is not None
            assert item.error.startswith("invalid: ")
            assert words in item.error
            assert item.communication_id is None
            assert item.error_code is None
        assert report.items[1].to == "+55 11 1234"
        assert report.items[8].to == ""
        assert kit.bodies_sent() == Counter({"ok 0": 1, "ok 3": 1, "ok 11": 1})
        assert len(kit.repo) == 3
        assert kit.repo.add_many_calls == [3]

    def test_whatsapp_without_sender(self) -> None:
        """No WhatsApp sender configured: WhatsApp items fail, SMS items still go."""
        kit = _Kit(_settings(whatsapp_number=None))
        report = kit.client.send_batch(
            [
                OutboundMessage(to=_number(0), body="wa", channel=Channel.WHATSAPP),
                OutboundMessage(to=_number(1), body="sms"),
            ]
        )
        assert [item.ok for item in report.items] == [False, True]
        assert report.items[0].error is not None
        assert "TWILIO_WHATSAPP_NUMBER" in report.items[0].error
        assert kit.bodies_sent() == Counter({"sms": 1})
        assert len(kit.repo) == 1

    def test_national_numbers_with_a_default_region(self) -> None:
        """With default_region="BR", national numbers in OutboundMessages and mappings
        (SMS and WhatsApp) are sent, reported and stored in E.164."""
        kit = _Kit(_settings(default_region="BR"))
        report = kit.client.send_batch(
            [
                OutboundMessage(to="(11) 99000-0001", body="a"),
                {"to": "11 99000-0002", "body": "b", "channel": "whatsapp"},
            ]
        )
        assert [item.ok for item in report.items] == [True, True]
        assert [item.to for item in report.items] == [_number(1), _number(2)]
        sent = {str(r.data["Body"]): r.data["To"] for r in kit.fake.requests}
        assert sent == {"a": _number(1), "b": f"whatsapp:{_number(2)}"}
        for item in report.items:
            assert item.communication_id is not None
            record = kit.repo.get(item.communication_id)
            assert record is not None
            assert record.to == item.to

    def test_national_number_without_a_region_fails_alone(self, kit: _Kit) -> None:
        """Without a region a national item fails in the report, unsent; the others go."""
        report = kit.client.send_batch(
            [
                OutboundMessage(to="(11) 99000-0001", body="national"),
                OutboundMessage(to=_number(2), body="e164"),
            ]
        )
        assert [item.ok for item in report.items] == [False, True]
        assert report.items[0].error is not None
        assert "no country code" in report.items[0].error
        assert report.items[0].communication_id is None
        assert kit.bodies_sent() == Counter({"e164": 1})

    def test_nothing_valid_writes_nothing(self, kit: _Kit) -> None:
        """A batch of only invalid items calls no add_many and sends nothing."""
        report = kit.client.send_batch([OutboundMessage(to="nope", body="x")])
        assert (report.total, report.failed) == (1, 1)
        assert kit.repo.add_many_calls == []
        assert kit.fake.requests == []


class TestSendBatchLimiter:
    def test_items_over_the_limit_fail(self) -> None:
        """The send limiter counts per item: over it, failed items with the reason, no record."""
        limiter = InMemorySendLimiter(max_sends=2, per_seconds=60)
        kit = _Kit(send_limiter=limiter)
        other = OutboundMessage(to=_number(9), body="other", prospect_id="p2")
        messages = [*_sms(4, prospect_id="p1"), other]
        report = kit.client.send_batch(messages)
        assert [item.ok for item in report.items] == [True, True, False, False, True]
        for item in report.items[2:4]:
            assert item.error is not None
            assert "send limit reached for prospect 'p1'" in item.error
            assert item.communication_id is None
        assert kit.bodies_sent() == Counter({"message 0": 1, "message 1": 1, "other": 1})
        assert len(kit.repo) == 3

    def test_invalid_items_do_not_count(self) -> None:
        """An invalid item does not use up the prospect's sends."""
        limiter = InMemorySendLimiter(max_sends=1, per_seconds=60)
        kit = _Kit(send_limiter=limiter)
        report = kit.client.send_batch(
            [
                OutboundMessage(to="bad", body="x", prospect_id="p1"),
                OutboundMessage(to=_number(1), body="y", prospect_id="p1"),
            ]
        )
        assert [item.ok for item in report.items] == [False, True]

    def test_a_failing_limiter_fails_the_item(self) -> None:
        """A limiter that raises (its store is down) fails that item, not the batch."""

        class _Broken:
            def try_acquire(self, key: str) -> float | None:
                if key == "p-broken":
                    raise ConnectionError("redis is down")
                return None

        kit = _Kit(send_limiter=_Broken())
        report = kit.client.send_batch(
            [
                OutboundMessage(to=_number(0), body="a", prospect_id="p-broken"),
                OutboundMessage(to=_number(1), body="b", prospect_id="p-ok"),
            ]
        )
        assert [item.ok for item in report.items] == [False, True]
        assert report.items[0].error == "send limiter failed: ConnectionError: redis is down"
        assert kit.bodies_sent() == Counter({"b": 1})


class TestSendBatchWriteAhead:
    @pytest.mark.parametrize(
        "client_kind", ["sync"]
    )  # spies on the sync FakeTwilio.request; async: test_async_client.py
    def test_one_bulk_write_before_any_request(self, client_kind: str, kit: _Kit) -> None:
        """All pending records are written in one add_many before the first request."""
        seen_at_first_request: list[int] = []
        original = kit.fake.request

        def spy(*args: Any, **kwargs: Any) -> Any:
            if not seen_at_first_request:
                seen_at_first_request.append(len(kit.repo))
            return original(*args, **kwargs)

        kit.fake.request = spy  # type: ignore[method-assign]
        kit.client.send_batch(_sms(10))
        assert kit.repo.add_many_calls == [10]
        assert kit.repo.adds == 0
        assert seen_at_first_request == [10]

    @pytest.mark.parametrize(
        ("error", "reason"),
        [
            (RepositoryError("firestore is down"), "(firestore is down)"),
            (RuntimeError("boom"), "(RuntimeError: boom)"),
        ],
    )
    def test_storage_failure_sends_nothing(self, kit: _Kit, error: Exception, reason: str) -> None:
        """add_many fails: nothing sent, every valid item fails saying why; invalid ones too."""
        kit.repo.fail_add_many = error
        report = kit.client.send_batch([*_sms(5), OutboundMessage(to="bad", body="x")])
        _check_consistent(report, 6)
        assert report.failed == 6
        assert kit.fake.requests == []
        assert len(kit.repo) == 0
        for item in report.items[:5]:
            assert item.error == f"not sent: the pending records could not be stored {reason}"
            assert item.communication_id is None
        assert report.items[5].error is not None
        assert report.items[5].error.startswith("invalid: ")

    def test_records_written_before_a_failure_are_marked(self, kit: _Kit) -> None:
        """A bulk write that stored a first chunk then failed: those records say 'not sent'."""
        kit.repo.fail_add_many = RepositoryError("second commit failed")
        kit.repo.written_before_failure = 3
        report = kit.client.send_batch(_sms(6))
        assert kit.fake.requests == []
        assert report.failed == 6
        marked = [item for item in report.items if item.communication_id is not None]
        assert [item.index for item in marked] == [0, 1, 2]
        for item in marked:
            record = kit.repo.get(item.communication_id or "")
            assert record is not None
            assert record.status == "failed"
            assert record.error is not None
            assert record.error.startswith("not sent: ")
        assert len(kit.repo) == 3


class TestSendBatchTwilioFaults:
    def test_partial_failures_carry_twilio_codes(self, kit: _Kit) -> None:
        """Refused numbers fail with Twilio's code and message; records failed; no retries."""
        kit.fake.fail_number(
            _number(2), Fault.error(code=21610, status=400, message="Unsubscribed")
        )
        kit.fake.fail_number(_number(5), Fault.error(code=21408, status=400))
        report = kit.client.send_batch(_sms(8), max_concurrency=3)
        _check_consistent(report, 8)
        assert [i for i, item in enumerate(report.items) if not item.ok] == [2, 5]
        assert (report.items[2].error_code, report.items[5].error_code) == (21610, 21408)
        assert report.items[2].error is not None
        assert "Unsubscribed" in report.items[2].error
        assert "HTTP 400" in report.items[2].error
        record = kit.repo.get(report.items[2].communication_id or "")
        assert record is not None
        assert (record.status, record.error_code) == ("failed", 21610)
        assert kit.bodies_sent() == Counter(f"message {i}" for i in range(8))

    def test_server_errors_are_reported_not_retried(self, kit: _Kit) -> None:
        """A 5xx may have been processed: the item fails, one request only."""
        kit.fake.fail_number(_number(1), Fault.server_error(status=503, code=20503))
        report = kit.client.send_batch(_sms(3))
        assert [item.ok for item in report.items] == [True, False, True]
        assert report.items[1].error_code == 20503
        assert kit.bodies_sent()["message 1"] == 1

    def test_429_storm_is_retried_with_retry_after(self, kit: _Kit) -> None:
        """Numbers rate-limited twice are retried (Retry-After honoured) and sent once each."""
        for i in range(6):
            kit.fake.fail_number(_number(i), Fault.rate_limited(retry_after=2), times=2)
        report = kit.client.send_batch(_sms(10), max_concurrency=5)
        assert report.succeeded == 10
        sent = kit.bodies_sent()
        assert [sent[f"message {i}"] for i in range(10)] == [3] * 6 + [1] * 4
        assert kit.sleeps.count(2.0) == 12
        records = [kit.repo.get(item.communication_id or "") for item in report.items]
        assert all(r is not None and r.twilio_sid for r in records)

    def test_429_past_the_retries_fails_the_item(self, kit: _Kit) -> None:
        """A number rate-limited every time fails with 20429 after 1 + max_retries tries."""
        kit.fake.fail_number(_number(0), Fault.rate_limited(retry_after=1))
        report = kit.client.send_batch(_sms(2))
        assert [item.ok for item in report.items] == [False, True]
        assert report.items[0].error_code == 20429
        assert kit.bodies_sent()["message 0"] == 4
        record = kit.repo.get(report.items[0].communication_id or "")
        assert record is not None
        assert record.status == "failed"

    def test_read_timeout_is_unknown(self, kit: _Kit) -> None:
        """No answer: the item fails saying the outcome is unknown; record unknown; not retried."""
        kit.fake.fail_number(_number(1), Fault.read_timeout())
        report = kit.client.send_batch(_sms(3))
        item = report.items[1]
        assert not item.ok
        assert item.error is not None
        assert item.error.startswith("outcome unknown: ")
        record = kit.repo.get(item.communication_id or "")
        assert record is not None
        assert record.status == "unknown"
        assert kit.bodies_sent()["message 1"] == 1

    def test_connect_failures_are_retried(self, kit: _Kit) -> None:
        """A refused connection is retried and sent once; one that never connects fails."""
        kit.fake.fail_number(_number(0), Fault.connect_error(), times=1)
        kit.fake.fail_number(_number(1), Fault.connect_error())
        report = kit.client.send_batch(_sms(3))
        assert [item.ok for item in report.items] == [True, False, True]
        assert report.items[1].error is not None
        assert "could not connect" in report.items[1].error
        sent = kit.bodies_sent()
        assert (sent["message 0"], sent["message 1"]) == (1, 0)
        record = kit.repo.get(report.items[1].communication_id or "")
        assert record is not None
        assert record.status == "failed"


class TestSendBatchConcurrency:
    @pytest.mark.parametrize(("bound", "n"), [(4, 20), (10, 30)])
    @pytest.mark.parametrize(
        "client_kind", ["sync"]
    )  # a threading barrier in FakeTwilio.request; async: test_async_client.py
    def test_exactly_max_concurrency_in_flight(self, client_kind: str, bound: int, n: int) -> None:
        """A barrier of ``bound`` parties passes only if ``bound`` sends overlap; never more."""
        gate = _Gate(bound)
        kit = _Kit(http_client=gate)
        kwargs = {} if bound == 10 else {"max_concurrency": bound}
        report = kit.client.send_batch(_sms(n), **kwargs)
        assert report.succeeded == n
        assert gate.gate_peak == bound

    def test_peak_in_flight_with_latency_stays_under_the_bound(self) -> None:
        """With 20 ms of latency per request, FakeTwilio never sees more than 3 at once."""
        fake = FakeTwilio(latency=0.02)
        kit = _Kit(http_client=fake)
        report = kit.client.send_batch(_sms(12), max_concurrency=3)
        assert report.succeeded == 12
        assert 1 <= fake.peak_in_flight <= 3

    @pytest.mark.parametrize(
        "client_kind", ["sync"]
    )  # threads are the sync engine; async: test_async_client.py
    def test_small_batch_uses_few_threads(self, client_kind: str) -> None:
        """Two messages with max_concurrency=50 start two workers, not fifty."""
        started: list[str] = []
        kit = _Kit()
        rest = kit.client._targets["twilio"]
        original = rest.create

        def spy(*args: Any) -> Any:
            started.append(threading.current_thread().name)
            return original(*args)

        with pytest.MonkeyPatch.context() as mp:
            mp.setattr(rest, "create", spy)
            kit.client.send_batch(_sms(2), max_concurrency=50)
        assert len(started) == 2
        assert all(name.startswith("servio-batch") for name in started)

    def test_rest_client_built_once_under_concurrent_first_use(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """20 workers using a fresh client at once build the twilio REST client exactly once."""
        built: list[int] = []
        real = twilio.rest.Client

        class _SlowClient(real):  # type: ignore[misc, valid-type]
            def __init__(self, *args: Any, **kwargs: Any) -> None:
                built.append(1)
                time.sleep(0.05)  # widen the window a race would need
                super().__init__(*args, **kwargs)

        monkeypatch.setattr(twilio.rest, "Client", _SlowClient)
        gate = _Gate(20)
        kit = _Kit(http_client=gate)
        report = kit.client.send_batch(_sms(40), max_concurrency=20)
        assert report.succeeded == 40
        assert built == [1]


def _no_sleep(_seconds: float) -> None:
    pass


async def _no_wait(_seconds: float) -> None:
    pass


def _bucket(rate: float, *, clock: Any, sleep: Any) -> TokenBucket:
    """A TokenBucket whose sync and async waits both go to ``sleep`` (for both clients)."""

    async def wait(seconds: float) -> None:
        sleep(seconds)

    return TokenBucket(rate, clock=clock, sleep=sleep, async_sleep=wait)


class TestSendBatchRateCap:
    def test_a_shared_rate_limit_caps_a_batch(self) -> None:
        """A SharedRateLimit is a rate_per_second too: one slot taken per send, on both clients."""
        import uuid

        from servio_twilio import SharedRateLimit

        taken: list[str] = []

        class _Counting(SharedRateLimit):
            def acquire(self) -> float:
                taken.append("sync")
                return super().acquire()

            async def acquire_async(self) -> float:
                taken.append("async")
                return await super().acquire_async()

        rate = _Counting("memory://", per_second=1000, name=uuid.uuid4().hex)
        kit = _Kit()
        report = kit.client.send_batch(_sms(6), max_concurrency=3, rate_per_second=rate)
        assert report.succeeded == 6
        assert len(taken) == 6
        assert len(set(taken)) == 1

    def test_frozen_clock_spaces_sends(self) -> None:
        """With time frozen, the workers wait 0, 1/r, 2/r, ...: one token per send, shared."""
        waits: list[float] = []
        lock = threading.Lock()

        def sleep(seconds: float) -> None:
            with lock:
                waits.append(seconds)

        bucket = _bucket(5, clock=lambda: 0.0, sleep=sleep)
        kit = _Kit()
        report = kit.client.send_batch(_sms(10), max_concurrency=4, rate_per_second=bucket)
        assert report.succeeded == 10
        assert len(kit.fake.requests) == 10
        assert sorted(waits) == pytest.approx([k / 5 for k in range(1, 10)])

    @pytest.mark.parametrize("client_kind", ["sync"])  # async twin: test_async_client.py
    def test_requests_follow_the_bucket(self, client_kind: str) -> None:
        """One worker and a fake clock moved by the bucket's sleeps: requests 1/r apart."""
        now = [0.0]
        stamps: list[float] = []
        bucket = TokenBucket(
            4, clock=lambda: now[0], sleep=lambda s: now.__setitem__(0, now[0] + s)
        )

        class _Stamped(FakeTwilio):
            def request(self, *args: Any, **kwargs: Any) -> Any:
                stamps.append(now[0])
                return super().request(*args, **kwargs)

        kit = _Kit(http_client=_Stamped())
        kit.client.send_batch(_sms(5), max_concurrency=1, rate_per_second=bucket)
        assert stamps == pytest.approx([0.0, 0.25, 0.5, 0.75, 1.0])

    def test_shared_bucket_spans_batches(self) -> None:
        """One bucket passed to two batches keeps counting: the second continues the slots."""
        waits: list[float] = []
        bucket = _bucket(10, clock=lambda: 0.0, sleep=waits.append)
        kit = _Kit()
        kit.client.send_batch(_sms(5), max_concurrency=1, rate_per_second=bucket)
        kit.client.send_batch(_sms(5), max_concurrency=1, rate_per_second=bucket)
        assert waits == pytest.approx([k / 10 for k in range(1, 10)])

    def test_a_number_makes_a_bucket_per_batch(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """``rate_per_second=50`` builds a TokenBucket(50) for that batch and takes one per send."""
        made: list[_CountingBucket] = []

        class _CountingBucket(TokenBucket):
            def __init__(self, rate: float) -> None:
                super().__init__(rate, clock=lambda: 0.0, sleep=_no_sleep, async_sleep=_no_wait)
                self.taken = 0
                made.append(self)

            def acquire(self) -> float:
                self.taken += 1
                return super().acquire()

            async def acquire_async(self) -> float:
                self.taken += 1
                return await super().acquire_async()

        monkeypatch.setattr(batch_module, "TokenBucket", _CountingBucket)
        kit = _Kit()
        kit.client.send_batch([*_sms(6), OutboundMessage(to="bad", body="x")], rate_per_second=50)
        assert [(b.rate, b.taken) for b in made] == [(50.0, 6)]

    def test_a_failing_bucket_fails_the_item_unsent(self, kit: _Kit) -> None:
        """A rate limiter whose sleep raises: the item is not sent and its record says so."""
        calls = [0]

        def sleep(_seconds: float) -> None:
            calls[0] += 1
            if calls[0] == 1:
                raise OSError("sleep interrupted")

        bucket = _bucket(10, clock=lambda: 0.0, sleep=sleep)
        report = kit.client.send_batch(_sms(3), max_concurrency=1, rate_per_second=bucket)
        assert [item.ok for item in report.items] == [True, False, True]
        assert report.items[1].error == (
            "not sent: the rate limiter failed: OSError: sleep interrupted"
        )
        record = kit.repo.get(report.items[1].communication_id or "")
        assert record is not None
        assert record.status == "failed"
        assert kit.bodies_sent()["message 1"] == 0


class TestSendBatchWorkerErrors:
    def test_one_worker_exception_loses_nothing(
        self, kit: _Kit, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """An unexpected exception in one item: it fails with type and message, others kept."""
        rest = kit.client._targets["twilio"]
        original = rest.create

        def create(kind: str, params: Any) -> Any:
            if params["body"] == "message 3":
                raise RuntimeError("boom")
            return original(kind, params)

        monkeypatch.setattr(rest, "create", create)
        report = kit.client.send_batch(_sms(8), max_concurrency=4)
        _check_consistent(report, 8)
        assert [i for i, item in enumerate(report.items) if not item.ok] == [3]
        assert report.items[3].error == "RuntimeError: boom"
        record = kit.repo.get(report.items[3].communication_id or "")
        assert record is not None
        assert (record.status, record.error) == ("unknown", "RuntimeError: boom")

    def test_storage_failure_after_send_keeps_the_items_sent(self, kit: _Kit) -> None:
        """Twilio accepted but merging the answers failed: the items are still reported sent."""

        def update_many(updates: Any) -> Any:
            raise RepositoryError("firestore is down")

        kit.repo.update_many = update_many  # type: ignore[method-assign]
        report = kit.client.send_batch(_sms(3))
        assert report.succeeded == 3
        for item in report.items:
            record = kit.repo.get(item.communication_id or "")
            assert record is not None
            assert record.status == "pending"  # Twilio's callbacks will complete it
        assert kit.bodies_sent()["message 1"] == 1


class TestSendBatchLogging:
    def test_logs_mask_numbers(self, kit: _Kit, caplog: pytest.LogCaptureFixture) -> None:
        """Batch logs never show a full phone number, even for failed items."""
        kit.fake.fail_number(_number(1), Fault.error(code=21610))
        kit.fake.fail_number(_number(2), Fault.read_timeout())
        with caplog.at_level(logging.DEBUG, logger="servio_twilio"):
            kit.client.send_batch([*_sms(3), OutboundMessage(to="+5511990999999", body="")])
        assert "batch of 4: 1 sent, 3 failed" in caplog.text
        for i in (0, 1, 2):
            assert _number(i) not in caplog.text
        assert "+5511990999999" not in caplog.text


class TestBatchesPage:
    def test_samples_run(self) -> None:
        """Every Python sample of docs/sending/batches.md runs, in order, and its asserts hold."""
        path = Path(__file__).resolve().parent.parent / "docs" / "sending" / "batches.md"
        blocks = re.findall(r"```python\n(.*?)```", path.read_text(encoding="utf-8"), re.S)
        assert len(blocks) >= 5
        namespace: dict[str, Any] = {}
        for block in blocks:
            exec(compile(block, str(path), "exec"), namespace)
        assert namespace["report"].total == 3


class TestSendBatchPool:
    def test_the_http_pool_grows_to_the_workers(
        self, kit: _Kit, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """A batch asks the HTTP client for one kept connection per worker."""
        asked: list[int] = []
        monkeypatch.setattr(kit.client._targets["twilio"], "ensure_pool", asked.append)
        kit.client.send_batch(_sms(30), max_concurrency=25)
        kit.client.send_batch(_sms(3), max_concurrency=25)
        assert asked == [25, 3]
