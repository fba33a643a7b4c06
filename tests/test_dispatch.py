"""Unit tests for sending.dispatch: a written record sent to Twilio, answered or not."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

import attrs
import pytest
from twilio.http.response import Response

from servio_twilio.domain.errors import (
    RateLimited,
    RecordNotFound,
    SendOutcomeUnknown,
    TwilioAPIError,
)
from servio_twilio.domain.models import Channel, Communication
from servio_twilio.domain.settings import TwilioSettings
from servio_twilio.domain.status import advance
from servio_twilio.domain.steps import run
from servio_twilio.sending.dispatch import dispatch
from servio_twilio.sending.prepare import PreparedSend, prepare_call, prepare_message
from servio_twilio.sending.results import SendResult
from servio_twilio.sending.transport import NoAnswer, RetryingHttpClient
from servio_twilio.sending.twilio_rest import TwilioRest
from servio_twilio.storage.memory import InMemoryRepository
from servio_twilio.testing import FakeTwilio
from servio_twilio.testing.fake_twilio import Fault
from support.sending import (
    ACCOUNT,
    PHONE,
    SERVICE,
    TO,
    TO_MASKED,
    WHATSAPP,
    TickingClock as _Clock,
    make_settings as _settings,
)

LOGGER = "servio_twilio.client"


class _Rewriting(FakeTwilio):
    """A FakeTwilio whose successful answers get some fields replaced."""

    def __init__(self, **changes: Any) -> None:
        super().__init__()
        self.changes = changes

    def request(self, *args: Any, **kwargs: Any) -> Any:
        response = super().request(*args, **kwargs)
        payload = json.loads(response.text)
        payload.update(self.changes)
        return Response(response.status_code, json.dumps(payload), {})


class _BrokenUpdates(InMemoryRepository):
    """Stores records but every update fails with a driver's own exception."""

    def update(
        self, communication_id: str, fn: Callable[[Communication], Communication]
    ) -> Communication:
        raise RuntimeError("driver exploded")


@attrs.define
class Kit:
    fake: FakeTwilio
    repo: InMemoryRepository
    clock: _Clock
    rest: TwilioRest
    settings: TwilioSettings

    def message(self, channel: Channel = Channel.SMS, **options: Any) -> PreparedSend:
        """A prepared message whose pending record is written."""
        options.setdefault("body", "hi")
        prepared = prepare_message(self.settings, self.clock, channel, TO, **options)
        self.repo.add(prepared.record)
        return prepared

    def call(self, **options: Any) -> PreparedSend:
        """A prepared call whose pending record is written."""
        prepared = prepare_call(self.settings, self.clock, TO, twiml="<Response/>", **options)
        self.repo.add(prepared.record)
        return prepared

    def send(self, prepared: PreparedSend) -> SendResult:
        targets = {"twilio": self.rest, "repository": self.repo}
        return run(dispatch(prepared, clock=self.clock), targets)

    def stored(self, prepared: PreparedSend) -> Communication:
        record = self.repo.get(prepared.communication_id)
        assert record is not None
        return record


def _kit(
    *, fake: FakeTwilio | None = None, repo: InMemoryRepository | None = None, **settings: Any
) -> Kit:
    fake = FakeTwilio() if fake is None else fake
    config = _settings(**settings)
    http = RetryingHttpClient(fake, max_retries=0, sleep=lambda _: None)
    return Kit(
        fake=fake,
        repo=InMemoryRepository() if repo is None else repo,
        clock=_Clock(),
        rest=TwilioRest(config, http),
        settings=config,
    )


@pytest.fixture
def kit() -> Kit:
    return _kit()


class TestDispatchAnswered:
    def test_sms_result_and_completed_record(self, kit: Kit) -> None:
        """Twilio's answer gives the SendResult and completes the record with SID and status."""
        prepared = kit.message()
        result = kit.send(prepared)
        assert result.sid.startswith("SM")
        assert result == SendResult(
            communication_id=prepared.communication_id,
            sid=result.sid,
            status="queued",
            to=TO,
            from_=PHONE,
            channel=Channel.SMS,
        )
        record = kit.stored(prepared)
        assert (record.twilio_sid, record.status, record.updated_at) == (
            result.sid,
            "queued",
            kit.clock.now,
        )
        assert record.created_at < record.updated_at

    def test_message_params_go_to_messages_create(self, kit: Kit) -> None:
        """A message is created on Messages.json with the prepared parameters."""
        prepared = kit.message()
        kit.send(prepared)
        [request] = kit.fake.requests
        assert request.path == f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
        assert request.data == {
            "To": TO,
            "From": PHONE,
            "Body": "hi",
            "StatusCallback": prepared.params["status_callback"],
        }

    def test_call_goes_to_calls_create(self, kit: Kit) -> None:
        """A call is created on Calls.json; the result is a call with Twilio's CA SID."""
        prepared = kit.call()
        result = kit.send(prepared)
        [request] = kit.fake.requests
        assert request.path.endswith("/Calls.json")
        assert request.data["Twiml"] == "<Response/>"
        assert request.data["StatusCallbackEvent"] == [
            "initiated",
            "ringing",
            "answered",
            "completed",
        ]
        assert result.sid.startswith("CA")
        assert (result.channel, result.status) == (Channel.CALL, "queued")
        assert kit.stored(prepared).twilio_sid == result.sid

    def test_whatsapp_sender_loses_its_prefix(self, kit: Kit) -> None:
        """Twilio answers from "whatsapp:+1..."; the result's sender is the plain number."""
        prepared = kit.message(Channel.WHATSAPP)
        result = kit.send(prepared)
        assert kit.fake.requests[0].data["From"] == f"whatsapp:{WHATSAPP}"
        assert result.from_ == WHATSAPP
        assert kit.stored(prepared).from_ == WHATSAPP

    def test_messaging_service_sender_is_filled_from_the_answer(self) -> None:
        """With a messaging service the record has no sender until Twilio's answer names one."""
        kit = _kit(fake=_Rewriting(**{"from": "+15005550009"}), messaging_service_sid=SERVICE)
        prepared = kit.message()
        assert prepared.record.from_ == ""
        result = kit.send(prepared)
        assert result.from_ == "+15005550009"
        assert kit.stored(prepared).from_ == "+15005550009"

    def test_messaging_service_without_a_sender_in_the_answer(self) -> None:
        """When Twilio's answer names no sender (accepted by the service), it stays empty."""
        kit = _kit(messaging_service_sid=SERVICE)
        prepared = kit.message()
        result = kit.send(prepared)
        assert (result.status, result.from_) == ("accepted", "")
        assert kit.stored(prepared).from_ == ""

    def test_answer_without_status_reads_as_unknown(self) -> None:
        """An answer with a SID but a null status stores the SID and status unknown."""
        kit = _kit(fake=_Rewriting(status=None))
        prepared = kit.message()
        result = kit.send(prepared)
        assert result.status == "unknown"
        assert (kit.stored(prepared).status, kit.stored(prepared).twilio_sid) == (
            "unknown",
            result.sid,
        )

    def test_a_callback_that_came_first_keeps_its_status(self, kit: Kit) -> None:
        """A record already delivered is not moved back by the queued answer; the result says so."""
        prepared = kit.message()
        kit.repo.update(
            prepared.communication_id,
            lambda r: advance(r, updated_at=kit.clock(), status="delivered"),
        )
        result = kit.send(prepared)
        assert result.status == "delivered"
        assert kit.stored(prepared).status == "delivered"
        assert kit.stored(prepared).twilio_sid == result.sid


class TestDispatchRefused:
    def test_refusal_marks_failed_and_names_the_record(
        self, kit: Kit, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Twilio refused: the record is failed with message and code; the error names it."""
        kit.fake.fail_next(1, Fault.error(code=21610, status=400, message="Unsubscribed recipient"))
        prepared = kit.message()
        with caplog.at_level(logging.INFO, logger=LOGGER), pytest.raises(TwilioAPIError) as caught:
            kit.send(prepared)
        assert caught.value.communication_id == prepared.communication_id
        assert (caught.value.status, caught.value.code) == (400, 21610)
        record = kit.stored(prepared)
        assert (record.status, record.error, record.error_code, record.twilio_sid) == (
            "failed",
            "Unsubscribed recipient",
            21610,
            None,
        )
        [log] = [r for r in caplog.records if r.name == LOGGER]
        assert log.levelno == logging.INFO
        assert TO_MASKED in log.getMessage()
        assert TO not in log.getMessage()

    def test_rate_limited_is_failed_with_its_code(self, kit: Kit) -> None:
        """A 429 with no retries left raises RateLimited with the id; the record is failed 20429."""
        kit.fake.fail_next(1, Fault.rate_limited(retry_after=5))
        prepared = kit.call()
        with pytest.raises(RateLimited) as caught:
            kit.send(prepared)
        assert caught.value.communication_id == prepared.communication_id
        assert caught.value.retry_after == 5.0
        assert (kit.stored(prepared).status, kit.stored(prepared).error_code) == ("failed", 20429)

    def test_connect_failure_is_failed_and_retryable(self, kit: Kit) -> None:
        """Never connected: TwilioAPIError retryable with status 0, not an unknown outcome."""
        kit.fake.fail_next(1, Fault.connect_error())
        prepared = kit.message()
        with pytest.raises(TwilioAPIError) as caught:
            kit.send(prepared)
        assert not isinstance(caught.value, NoAnswer)
        assert (caught.value.status, caught.value.retryable) == (0, True)
        assert kit.stored(prepared).status == "failed"


class TestDispatchNoAnswer:
    def test_read_timeout_is_unknown(self, kit: Kit, caplog: pytest.LogCaptureFixture) -> None:
        """No answer: SendOutcomeUnknown from NoAnswer, the record unknown, a masked warning."""
        kit.fake.fail_next(1, Fault.read_timeout())
        prepared = kit.message()
        with (
            caplog.at_level(logging.WARNING, logger=LOGGER),
            pytest.raises(SendOutcomeUnknown) as caught,
        ):
            kit.send(prepared)
        cid = prepared.communication_id
        assert caught.value.communication_id == cid
        assert isinstance(caught.value.__cause__, NoAnswer)
        assert str(caught.value) == (
            f"no answer from Twilio for sms {cid}; its status callbacks will settle the record"
        )
        record = kit.stored(prepared)
        assert (record.status, record.twilio_sid, record.error) == ("unknown", None, None)
        [log] = [r for r in caplog.records if r.name == LOGGER]
        assert log.levelno == logging.WARNING
        assert TO_MASKED in log.getMessage()
        assert TO not in log.getMessage()

    @pytest.mark.parametrize("sid", [None, "", 7])
    def test_answer_without_a_sid_is_unknown(self, sid: object) -> None:
        """A 2xx answer with no usable SID cannot be tracked: the outcome is unknown."""
        kit = _kit(fake=_Rewriting(sid=sid))
        prepared = kit.call()
        with pytest.raises(SendOutcomeUnknown, match="for call ") as caught:
            kit.send(prepared)
        cause = caught.value.__cause__
        assert isinstance(cause, NoAnswer)
        assert cause.message == "Twilio's answer has no SID"
        assert kit.stored(prepared).status == "unknown"

    def test_an_unknown_outcome_does_not_move_a_settled_record(self, kit: Kit) -> None:
        """A record a callback already marked delivered stays delivered after a lost answer."""
        kit.fake.fail_next(1, Fault.read_timeout())
        prepared = kit.message()
        kit.repo.update(
            prepared.communication_id,
            lambda r: advance(r, updated_at=kit.clock(), status="delivered"),
        )
        with pytest.raises(SendOutcomeUnknown):
            kit.send(prepared)
        assert kit.stored(prepared).status == "delivered"


class TestDispatchStorageFailures:
    def test_success_without_a_stored_record(
        self, kit: Kit, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Twilio accepted but the record is missing: the result is returned, the failure logged."""
        prepared = prepare_message(kit.settings, kit.clock, Channel.SMS, TO, body="hi")
        with caplog.at_level(logging.ERROR, logger=LOGGER):
            result = kit.send(prepared)
        assert (result.status, result.communication_id) == ("queued", prepared.communication_id)
        [log] = [r for r in caplog.records if r.name == LOGGER]
        message = log.getMessage()
        assert RecordNotFound.__name__ in message
        assert result.sid in message
        assert TO_MASKED in message
        assert TO not in message

    def test_a_driver_error_on_update_is_logged_not_raised(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """Any exception from repository.update after a send is logged; the result stands."""
        kit = _kit(repo=_BrokenUpdates())
        prepared = kit.message()
        with caplog.at_level(logging.ERROR, logger=LOGGER):
            result = kit.send(prepared)
        assert result.status == "queued"
        assert "RuntimeError: driver exploded" in caplog.text
        assert kit.stored(prepared).status == "pending"

    def test_refusal_is_raised_even_when_storage_fails(self) -> None:
        """When the failed status cannot be stored, the caller still gets Twilio's refusal."""
        kit = _kit(repo=_BrokenUpdates())
        kit.fake.fail_next(1, Fault.error(code=21211))
        prepared = kit.message()
        with pytest.raises(TwilioAPIError) as caught:
            kit.send(prepared)
        assert caught.value.code == 21211
        assert caught.value.communication_id == prepared.communication_id

    def test_unknown_outcome_is_raised_even_when_storage_fails(self) -> None:
        """When the unknown status cannot be stored, SendOutcomeUnknown is still raised."""
        kit = _kit(repo=_BrokenUpdates())
        kit.fake.fail_next(1, Fault.read_timeout())
        prepared = kit.message()
        with pytest.raises(SendOutcomeUnknown) as caught:
            kit.send(prepared)
        assert caught.value.communication_id == prepared.communication_id
