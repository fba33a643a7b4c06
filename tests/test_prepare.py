"""Unit tests for sending.prepare: the pending record and Twilio's create parameters."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import pytest

from servio_twilio.domain.errors import ConfigurationError, InvalidPhoneNumber
from servio_twilio.domain.models import Channel, Direction
from servio_twilio.domain.settings import TwilioSettings
from servio_twilio.sending.prepare import (
    CALL_EVENTS,
    RECORDING_EVENTS,
    PreparedSend,
    prepare_call,
    prepare_message,
)
from support.sending import (
    BASE,
    PHONE,
    SERVICE,
    TEMPLATE,
    TO,
    TO_MASKED,
    WHATSAPP,
    make_settings as _settings,
)

NOW = datetime(2025, 3, 1, 9, 30, tzinfo=UTC)
IMAGE = "https://cdn.servio.test/a.jpg"


class _Clock:
    """Returns NOW and counts how often it was asked."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> datetime:
        self.calls += 1
        return NOW


def _sms(settings: TwilioSettings | None = None, **options: Any) -> PreparedSend:
    options.setdefault("body", "hi")
    return prepare_message(settings or _settings(), _Clock(), Channel.SMS, TO, **options)


def _whatsapp(settings: TwilioSettings | None = None, **options: Any) -> PreparedSend:
    return prepare_message(settings or _settings(), _Clock(), Channel.WHATSAPP, TO, **options)


def _call(settings: TwilioSettings | None = None, **options: Any) -> PreparedSend:
    if "twiml_url" not in options:
        options.setdefault("twiml", "<Response/>")
    return prepare_call(settings or _settings(), _Clock(), TO, **options)


def _cid(url: str) -> str:
    [cid] = parse_qs(urlsplit(url).query)["cid"]
    return cid


class TestPreparedSend:
    def test_communication_id_is_the_records_id(self) -> None:
        """communication_id is the pending record's id, a 20-character hex id."""
        prepared = _sms()
        assert prepared.communication_id == prepared.record.id
        assert re.fullmatch(r"[0-9a-f]{20}", prepared.communication_id)

    def test_each_preparation_gets_a_new_id(self) -> None:
        """Two preparations of the same message get different record ids."""
        assert _sms().communication_id != _sms().communication_id

    def test_is_frozen(self) -> None:
        """A prepared send cannot be changed after it is built."""
        prepared = _sms()
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            prepared.kind = "call"  # type: ignore[misc]


class TestPrepareSms:
    def test_params_and_pending_record(self) -> None:
        """An SMS from the phone number: Twilio's to/from_/body/status_callback and the record."""
        clock = _Clock()
        prepared = prepare_message(
            _settings(), clock, Channel.SMS, "+55 11 99999-9999", body="hi", prospect_id="p1"
        )
        cid = prepared.communication_id
        assert prepared.kind == "message"
        assert dict(prepared.params) == {
            "to": TO,
            "from_": PHONE,
            "body": "hi",
            "status_callback": f"{BASE}/message-status?cid={cid}",
        }
        record = prepared.record
        assert (record.channel, record.direction, record.status) == (
            Channel.SMS,
            Direction.OUTBOUND,
            "pending",
        )
        assert (record.to, record.from_, record.body, record.prospect_id) == (TO, PHONE, "hi", "p1")
        assert (record.media_url, record.media_urls, record.twilio_sid) == (None, (), None)
        assert record.timestamp == record.created_at == record.updated_at == NOW
        assert clock.calls == 1

    def test_messaging_service_replaces_from(self) -> None:
        """With a messaging service (even beside a phone number) Twilio gets its SID, no From."""
        prepared = _sms(_settings(messaging_service_sid=SERVICE))
        assert prepared.params["messaging_service_sid"] == SERVICE
        assert "from_" not in prepared.params
        assert prepared.record.from_ == ""

    def test_channel_given_as_a_string(self) -> None:
        """The channel may be given by its value ("sms")."""
        prepared = prepare_message(_settings(), _Clock(), "sms", TO, body="hi")  # type: ignore[arg-type]
        assert prepared.record.channel == Channel.SMS

    def test_no_callback_without_a_base_url(self) -> None:
        """Without webhook_base_url or status_callback no callback URL is sent."""
        prepared = _sms(_settings(webhook_base_url=None))
        assert "status_callback" not in prepared.params

    def test_given_callback_gets_the_cid(self) -> None:
        """A given status_callback keeps its query; its cid is replaced by the record's."""
        prepared = _sms(status_callback="https://hooks.servio.test/s?tenant=a&cid=forged&x=")
        url = prepared.params["status_callback"]
        parts = urlsplit(url)
        assert (parts.netloc, parts.path) == ("hooks.servio.test", "/s")
        assert parse_qs(parts.query, keep_blank_values=True) == {
            "tenant": ["a"],
            "x": [""],
            "cid": [prepared.communication_id],
        }

    def test_given_callback_keeps_its_fragment(self) -> None:
        """A fragment stays after the query that now carries the cid."""
        prepared = _sms(status_callback="https://hooks.servio.test/s#frag")
        cid = prepared.communication_id
        assert prepared.params["status_callback"] == f"https://hooks.servio.test/s?cid={cid}#frag"

    def test_bad_given_callback(self) -> None:
        """A relative status_callback is a ValueError naming the route's callback."""
        with pytest.raises(ValueError, match="message_status callback must be an absolute"):
            _sms(status_callback="/message-status")

    def test_limited_per_prospect(self) -> None:
        """With a prospect id the limiter key and name are the prospect id."""
        prepared = _sms(prospect_id="p9")
        assert (prepared.limit_key, prepared.limit_name) == ("p9", "p9")

    def test_limited_per_number_masked_in_the_name(self) -> None:
        """Without a prospect the key is the number; the name shown in errors masks it."""
        prepared = _sms()
        assert prepared.limit_key == f"to:{TO}"
        assert prepared.limit_name == f"to:{TO_MASKED}"
        assert TO not in prepared.limit_name

    def test_no_sms_sender(self) -> None:
        """Without a phone number or messaging service: ConfigurationError; the clock unused."""
        clock = _Clock()
        settings = _settings(phone_number=None)
        with pytest.raises(ConfigurationError, match="TWILIO_PHONE_NUMBER"):
            prepare_message(settings, clock, Channel.SMS, TO, body="hi")
        assert clock.calls == 0

    def test_whatsapp_address_refused(self) -> None:
        """An SMS to a whatsapp: address is InvalidPhoneNumber."""
        with pytest.raises(InvalidPhoneNumber, match="cannot receive an SMS"):
            prepare_message(_settings(), _Clock(), Channel.SMS, "whatsapp:" + TO, body="hi")

    @pytest.mark.parametrize(
        "options",
        [
            {"body": ""},
            {"body": "hi", "media_url": IMAGE},
            {"body": "hi", "prospect_id": " "},
            {"body": "hi", "status_callback": "ftp://x"},
        ],
    )
    def test_bad_input_reads_no_clock(self, options: dict[str, Any]) -> None:
        """Every refusal happens before the clock is read: nothing is built."""
        clock = _Clock()
        with pytest.raises(ValueError, match=r"body|media|prospect_id|callback"):
            prepare_message(_settings(), clock, Channel.SMS, TO, **options)
        assert clock.calls == 0

    def test_calls_are_refused(self) -> None:
        """prepare_message does not build calls."""
        with pytest.raises(ValueError, match="calls"):
            prepare_message(_settings(), _Clock(), Channel.CALL, TO, body="hi")


class TestPrepareWhatsapp:
    def test_prefixed_addresses_and_plain_record_numbers(self) -> None:
        """Twilio gets whatsapp: addresses; the record keeps plain E.164 numbers."""
        prepared = _whatsapp(body="olá")
        assert prepared.params["to"] == "whatsapp:" + TO
        assert prepared.params["from_"] == "whatsapp:" + WHATSAPP
        assert (prepared.record.to, prepared.record.from_) == (TO, WHATSAPP)
        assert prepared.record.channel == Channel.WHATSAPP

    def test_prefixed_recipient_is_accepted(self) -> None:
        """A recipient given with its whatsapp: prefix is not prefixed twice."""
        prepared = prepare_message(
            _settings(), _Clock(), Channel.WHATSAPP, "whatsapp:" + TO, body="x"
        )
        assert prepared.params["to"] == "whatsapp:" + TO

    def test_media_as_a_list_and_on_the_record(self) -> None:
        """Media URLs go to Twilio as a list; the record has them all and the first."""
        urls = [IMAGE, "https://cdn.servio.test/b.pdf"]
        prepared = _whatsapp(media_url=tuple(urls))
        assert prepared.params["media_url"] == urls
        assert "body" not in prepared.params
        assert prepared.record.media_urls == tuple(urls)
        assert prepared.record.media_url == IMAGE
        assert prepared.record.body is None

    def test_template_with_variables(self) -> None:
        """A template goes as content_sid with its variables as a JSON string; no body."""
        prepared = _whatsapp(content_sid=TEMPLATE, content_variables={"1": "Ana"})
        assert prepared.params["content_sid"] == TEMPLATE
        assert json.loads(prepared.params["content_variables"]) == {"1": "Ana"}
        assert "body" not in prepared.params
        assert prepared.record.body is None

    def test_template_without_variables_sends_none(self) -> None:
        """A template without variables sends no content_variables."""
        prepared = _whatsapp(content_sid=TEMPLATE)
        assert "content_variables" not in prepared.params

    def test_messaging_service_is_not_used(self) -> None:
        """WhatsApp is sent from the WhatsApp number even when a messaging service is set."""
        prepared = _whatsapp(_settings(messaging_service_sid=SERVICE), body="x")
        assert "messaging_service_sid" not in prepared.params
        assert prepared.params["from_"] == "whatsapp:" + WHATSAPP

    def test_no_whatsapp_sender(self) -> None:
        """Without a WhatsApp number: ConfigurationError naming the variable."""
        with pytest.raises(ConfigurationError, match="TWILIO_WHATSAPP_NUMBER"):
            _whatsapp(_settings(whatsapp_number=None), body="x")

    def test_limit_key_ignores_the_prefix(self) -> None:
        """SMS and WhatsApp to the same number share one limiter key."""
        prepared = prepare_message(
            _settings(), _Clock(), Channel.WHATSAPP, "whatsapp:" + TO, body="x"
        )
        assert prepared.limit_key == _sms().limit_key


class TestPrepareCall:
    def test_twiml_document_with_status_events(self) -> None:
        """A call: to/from_/twiml, the status callback with its four events, and the record."""
        prepared = _call(prospect_id="p1")
        cid = prepared.communication_id
        assert prepared.kind == "call"
        assert dict(prepared.params) == {
            "to": TO,
            "from_": PHONE,
            "twiml": "<Response/>",
            "status_callback": f"{BASE}/call-status?cid={cid}",
            "status_callback_event": list(CALL_EVENTS),
        }
        assert CALL_EVENTS == ("initiated", "ringing", "answered", "completed")
        record = prepared.record
        assert (record.channel, record.to, record.from_, record.body) == (
            Channel.CALL,
            TO,
            PHONE,
            None,
        )
        assert (record.status, record.prospect_id, record.timestamp) == ("pending", "p1", NOW)

    def test_twiml_url(self) -> None:
        """A TwiML URL goes as url, with no twiml."""
        prepared = _call(twiml_url="https://servio.test/t.xml")
        assert prepared.params["url"] == "https://servio.test/t.xml"
        assert "twiml" not in prepared.params

    def test_recorded_with_the_default_recording_callback(self) -> None:
        """record=True asks Twilio to record and report to /recording-status with the cid."""
        prepared = _call(record=True)
        cid = prepared.communication_id
        assert prepared.params["record"] is True
        assert prepared.params["recording_status_callback"] == f"{BASE}/recording-status?cid={cid}"
        assert prepared.params["recording_status_callback_event"] == list(RECORDING_EVENTS)
        assert RECORDING_EVENTS == ("completed", "absent")

    def test_recorded_with_a_given_recording_callback(self) -> None:
        """A given recording callback is used, with the same cid as the status callback."""
        prepared = _call(record=True, recording_status_callback="https://hooks.servio.test/rec")
        recording = prepared.params["recording_status_callback"]
        assert recording.startswith("https://hooks.servio.test/rec?")
        assert _cid(recording) == _cid(prepared.params["status_callback"])

    def test_recorded_without_any_callback_url(self) -> None:
        """record=True without a base URL records but sets no callback or event list."""
        prepared = _call(_settings(webhook_base_url=None), record=True)
        assert prepared.params["record"] is True
        for key in ("status_callback", "status_callback_event", "recording_status_callback"):
            assert key not in prepared.params

    def test_not_recorded_by_default(self) -> None:
        """Without record=True nothing about recording is sent."""
        assert not any("record" in key for key in _call().params)

    def test_recording_callback_needs_record(self) -> None:
        """A recording callback without record=True is a ValueError."""
        with pytest.raises(ValueError, match="needs record=True"):
            _call(recording_status_callback="https://hooks.servio.test/rec")

    @pytest.mark.parametrize("record", [1, "yes", None])
    def test_record_must_be_a_bool(self, record: object) -> None:
        """record must be exactly a bool: 1 or "yes" is a TypeError."""
        with pytest.raises(TypeError, match="record must be a bool"):
            _call(record=record)

    def test_bad_recording_callback(self) -> None:
        """A malformed recording callback is a ValueError naming it."""
        with pytest.raises(ValueError, match="recording_status callback"):
            _call(record=True, recording_status_callback="hooks/rec")

    def test_needs_a_phone_number(self) -> None:
        """A messaging service alone cannot make calls: ConfigurationError."""
        settings = _settings(phone_number=None, messaging_service_sid=SERVICE)
        with pytest.raises(ConfigurationError, match="making calls"):
            _call(settings)

    def test_whatsapp_address_refused(self) -> None:
        """A call to a whatsapp: address is InvalidPhoneNumber."""
        with pytest.raises(InvalidPhoneNumber, match="cannot receive a call"):
            prepare_call(_settings(), _Clock(), "whatsapp:" + TO, twiml="<Response/>")

    def test_twiml_rules_apply(self) -> None:
        """Neither twiml_url nor twiml is a ValueError; the clock is not read."""
        clock = _Clock()
        with pytest.raises(ValueError, match="exactly one"):
            prepare_call(_settings(), clock, TO)
        assert clock.calls == 0
