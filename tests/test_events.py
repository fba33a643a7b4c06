"""Tests for servio_twilio.webhooks.events: Twilio's callback fields parsed into typed events."""

from __future__ import annotations

import json

import pytest

from servio_twilio.domain.errors import MalformedCallback, ServioTwilioError
from servio_twilio.domain.models import Channel
from servio_twilio.webhooks.events import (
    CallStatusEvent,
    InboundMessageEvent,
    MessageStatusEvent,
    RecordingStatusEvent,
)
from support.twilio_callbacks import (
    ACCOUNT_SID,
    PROSPECT_NUMBER,
    SENDER,
    call_params,
    inbound_params,
    message_params,
    recording_params,
    sid,
)

SM = sid("SM", 1)
CA = sid("CA", 2)
RE = sid("RE", 3)


class TestMessageStatusEvent:
    def test_parses_the_fields_twilio_sends(self) -> None:
        """A delivered SMS callback gives typed fields, the cid and the params as received."""
        params = message_params(SM, "delivered", MessagingServiceSid="MG" + "1" * 32)
        event = MessageStatusEvent.from_params(params, cid="rec123")
        assert event.message_sid == SM
        assert event.sid == SM
        assert event.status == "delivered"
        assert event.channel == Channel.SMS
        assert event.to == PROSPECT_NUMBER
        assert event.from_ == SENDER
        assert event.account_sid == ACCOUNT_SID
        assert event.messaging_service_sid == "MG" + "1" * 32
        assert event.error_code is None
        assert event.cid == "rec123"
        assert event.raw == params

    def test_whatsapp_prefix_is_dropped_and_sets_the_channel(self) -> None:
        """``whatsapp:`` numbers give channel WHATSAPP and bare E.164 numbers."""
        params = message_params(
            SM, "read", To="whatsapp:" + PROSPECT_NUMBER, From="whatsapp:" + SENDER
        )
        event = MessageStatusEvent.from_params(params)
        assert event.channel == Channel.WHATSAPP
        assert (event.to, event.from_) == (PROSPECT_NUMBER, SENDER)

    def test_legacy_sms_fields_are_enough(self) -> None:
        """Only SmsSid and SmsStatus (older callbacks) still parse."""
        event = MessageStatusEvent.from_params({"SmsSid": SM, "SmsStatus": "sent"})
        assert (event.message_sid, event.status) == (SM, "sent")

    def test_error_code_and_message(self) -> None:
        """ErrorCode becomes an int; a non-numeric one is None, kept in raw."""
        event = MessageStatusEvent.from_params(
            message_params(SM, "undelivered", ErrorCode="30003", ErrorMessage="Unreachable")
        )
        assert (event.error_code, event.error_message) == (30003, "Unreachable")
        odd = MessageStatusEvent.from_params(message_params(SM, "failed", ErrorCode="x1"))
        assert odd.error_code is None
        assert odd.raw["ErrorCode"] == "x1"

    def test_unknown_status_is_kept_lowercased(self) -> None:
        """A status Twilio adds later is kept as given (lower case): the rules rank it 1."""
        event = MessageStatusEvent.from_params(message_params(SM, "Brand_New"))
        assert event.status == "brand_new"

    @pytest.mark.parametrize(
        ("drop", "field"), [("MessageSid", "MessageSid"), ("MessageStatus", "MessageStatus")]
    )
    def test_missing_required_field(self, drop: str, field: str) -> None:
        """Without a SID or a status (in either spelling) the callback is malformed."""
        params = message_params(SM, "sent")
        params.pop(drop)
        params.pop("SmsSid" if drop == "MessageSid" else "SmsStatus")
        with pytest.raises(MalformedCallback) as info:
            MessageStatusEvent.from_params(params)
        assert info.value.fields == (field,)
        assert isinstance(info.value, ServioTwilioError)
        assert isinstance(info.value, ValueError)

    @pytest.mark.parametrize("bad", ["SM/../x", "a", "SM" + "0" * 70, "SM 1", "SMé"])
    def test_malformed_sid(self, bad: str) -> None:
        """A SID that could not be a Twilio SID (and so a record id) is refused."""
        with pytest.raises(MalformedCallback, match="MessageSid is malformed"):
            MessageStatusEvent.from_params({"MessageSid": bad, "MessageStatus": "sent"})

    def test_blank_values_count_as_missing(self) -> None:
        """A field sent empty is as good as absent."""
        with pytest.raises(MalformedCallback, match="MessageStatus is missing"):
            MessageStatusEvent.from_params({"MessageSid": SM, "MessageStatus": "  "})

    def test_repeated_field_uses_the_first_value(self) -> None:
        """A repeated field is read from its first value; raw keeps them all."""
        event = MessageStatusEvent.from_params(
            {"MessageSid": SM, "MessageStatus": ["sent", "delivered"]}
        )
        assert event.status == "sent"
        assert event.raw["MessageStatus"] == ["sent", "delivered"]

    def test_to_dict_is_json_ready(self) -> None:
        """to_dict() serializes with json, ``from`` for ``from_``."""
        data = MessageStatusEvent.from_params(message_params(SM, "sent")).to_dict()
        assert json.loads(json.dumps(data))["from"] == SENDER
        assert data["channel"] == "sms"

    def test_frozen(self) -> None:
        """Events are immutable values."""
        event = MessageStatusEvent.from_params(message_params(SM, "sent"))
        with pytest.raises(AttributeError):
            event.status = "read"  # type: ignore[misc]


class TestCallStatusEvent:
    def test_parses_a_completed_call(self) -> None:
        """CallDuration and SequenceNumber become ints; Direction is kept."""
        event = CallStatusEvent.from_params(
            call_params(CA, "completed", CallDuration="37", SequenceNumber="3"), cid="c1"
        )
        assert (event.call_sid, event.sid, event.status) == (CA, CA, "completed")
        assert (event.duration, event.sequence_number) == (37, 3)
        assert event.direction == "outbound-api"
        assert (event.to, event.from_, event.cid) == (PROSPECT_NUMBER, SENDER, "c1")

    def test_missing_status_is_malformed(self) -> None:
        """CallStatus is required."""
        params = call_params(CA, "ringing")
        del params["CallStatus"]
        with pytest.raises(MalformedCallback) as info:
            CallStatusEvent.from_params(params)
        assert info.value.fields == ("CallStatus",)

    def test_both_missing_are_named(self) -> None:
        """Every missing field is named at once."""
        with pytest.raises(MalformedCallback) as info:
            CallStatusEvent.from_params({})
        assert info.value.fields == ("CallSid", "CallStatus")

    def test_malformed_account_sid(self) -> None:
        """An AccountSid that is not SID-shaped is refused."""
        with pytest.raises(MalformedCallback, match="AccountSid"):
            CallStatusEvent.from_params(call_params(CA, "ringing", AccountSid="AC/1"))

    def test_negative_duration_is_none(self) -> None:
        """Only a plain non-negative integer counts as a duration."""
        event = CallStatusEvent.from_params(call_params(CA, "completed", CallDuration="-4"))
        assert event.duration is None


class TestRecordingStatusEvent:
    def test_parses_a_completed_recording(self) -> None:
        """Recording SID, URL, duration; the record to update is the call's."""
        event = RecordingStatusEvent.from_params(recording_params(CA, RE))
        assert (event.recording_sid, event.call_sid, event.sid) == (RE, CA, CA)
        assert event.status == "completed"
        assert event.duration == 42
        assert event.recording_url is not None
        assert event.recording_url.endswith(RE)

    def test_status_defaults_to_completed(self) -> None:
        """Older recording callbacks have no RecordingStatus: completed."""
        params = recording_params(CA, RE)
        del params["RecordingStatus"]
        assert RecordingStatusEvent.from_params(params).status == "completed"

    def test_requires_call_and_recording_sids(self) -> None:
        """Both SIDs are required."""
        with pytest.raises(MalformedCallback) as info:
            RecordingStatusEvent.from_params({"RecordingStatus": "completed"})
        assert info.value.fields == ("RecordingSid", "CallSid")

    def test_malformed_status(self) -> None:
        """A status with characters no status has is refused."""
        with pytest.raises(MalformedCallback, match="RecordingStatus"):
            RecordingStatusEvent.from_params(recording_params(CA, RE, RecordingStatus="a b"))


class TestInboundMessageEvent:
    def test_parses_an_sms(self) -> None:
        """Body, numbers, no media."""
        event = InboundMessageEvent.from_params(inbound_params(SM, "Olá, tudo bem?"))
        assert event.message_sid == SM
        assert event.body == "Olá, tudo bem?"
        assert (event.from_, event.to, event.channel) == (PROSPECT_NUMBER, SENDER, Channel.SMS)
        assert event.media_urls == ()

    def test_whatsapp_with_media(self) -> None:
        """MediaUrlN/MediaContentTypeN up to NumMedia; whatsapp: sets the channel."""
        params = inbound_params(
            SM,
            "",
            From="whatsapp:" + PROSPECT_NUMBER,
            To="whatsapp:" + SENDER,
            NumMedia="2",
            MediaUrl0="https://m/0",
            MediaContentType0="image/png",
            MediaUrl1="https://m/1",
            MediaContentType1="application/pdf",
            MediaUrl2="https://m/ignored",
            ProfileName="Ana",
        )
        event = InboundMessageEvent.from_params(params)
        assert event.channel == Channel.WHATSAPP
        assert event.from_ == PROSPECT_NUMBER
        assert event.media_urls == ("https://m/0", "https://m/1")
        assert event.media_content_types == ("image/png", "application/pdf")
        assert event.profile_name == "Ana"
        assert event.body == ""

    def test_body_whitespace_is_kept(self) -> None:
        """The body is the prospect's text as sent, spaces and newlines included."""
        event = InboundMessageEvent.from_params(inbound_params(SM, "  sim\n"))
        assert event.body == "  sim\n"

    @pytest.mark.parametrize("num_media", ["x", "-1", "101"])
    def test_malformed_num_media(self, num_media: str) -> None:
        """NumMedia must be a small non-negative integer."""
        with pytest.raises(MalformedCallback, match="NumMedia"):
            InboundMessageEvent.from_params(inbound_params(SM, NumMedia=num_media))

    def test_requires_from_and_to(self) -> None:
        """From and To are required (a blank one too)."""
        with pytest.raises(MalformedCallback) as info:
            InboundMessageEvent.from_params({"MessageSid": SM, "From": " "})
        assert info.value.fields == ("From", "To")

    def test_to_dict_lists_media(self) -> None:
        """to_dict() gives lists for the media tuples."""
        data = InboundMessageEvent.from_params(
            inbound_params(SM, NumMedia="1", MediaUrl0="https://m/0")
        ).to_dict()
        assert data["media_urls"] == ["https://m/0"]
        assert json.loads(json.dumps(data))["from"] == PROSPECT_NUMBER
