"""Unit tests for servio_twilio.storage.firestore.documents: pure conversion of stored documents."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from google.api_core.datetime_helpers import DatetimeWithNanoseconds
from hypothesis import given, settings, strategies as st

from servio_twilio.domain.errors import RepositoryError
from servio_twilio.domain.models import Channel, Communication, Direction
from servio_twilio.domain.status import CALL_STATUS_RANKS, MESSAGE_STATUS_RANKS, is_open
from servio_twilio.storage.firestore.documents import (
    COUNTED_FIELDS,
    STORED_FIELDS,
    count_key,
    from_document,
    stored_integer,
    to_document,
)

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
T1 = T0 + timedelta(minutes=5)
TO = "+5511999999999"
FROM = "+14155238886"
ALWAYS = {
    "prospectId",
    "type",
    "direction",
    "to",
    "from",
    "status",
    "statusRank",
    "open",
    "mediaUrls",
    "timestamp",
    "createdAt",
    "updatedAt",
}


def _record(**changes: Any) -> Communication:
    fields: dict[str, Any] = {
        "id": "doc1",
        "prospect_id": "p1",
        "channel": Channel.SMS,
        "to": TO,
        "from_": FROM,
        "timestamp": T0,
        "created_at": T0,
        "updated_at": T0,
    }
    fields.update(changes)
    return Communication(**fields)


_texts = st.text(max_size=12)
_optional_texts = st.none() | _texts
_optional_ints = st.none() | st.integers(min_value=0, max_value=10**9)
_times = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)


@st.composite
def _communications(draw: st.DrawFn) -> Communication:
    channel = draw(st.sampled_from(Channel))
    ranks = CALL_STATUS_RANKS if channel == Channel.CALL else MESSAGE_STATUS_RANKS
    media = tuple(draw(st.lists(st.text(min_size=1, max_size=8), max_size=3)))
    created = draw(_times)
    return Communication(
        id=draw(st.text(min_size=1, max_size=20)),
        prospect_id=draw(_optional_texts),
        channel=channel,
        direction=draw(st.sampled_from(Direction)),
        to=draw(st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True)),
        from_=draw(st.just("") | st.from_regex(r"\+[1-9][0-9]{6,14}", fullmatch=True)),
        body=draw(_optional_texts),
        media_url=media[0] if media else draw(st.none() | st.text(min_size=1, max_size=8)),
        media_urls=media,
        twilio_sid=draw(_optional_texts),
        status=draw(st.sampled_from(sorted(ranks)) | st.text(min_size=1, max_size=8)),
        duration=draw(_optional_ints),
        recording_url=draw(_optional_texts),
        recording_sid=draw(_optional_texts),
        recording_duration=draw(_optional_ints),
        error=draw(_optional_texts),
        error_code=draw(_optional_ints),
        timestamp=draw(_times),
        created_at=created,
        updated_at=created + timedelta(seconds=draw(st.integers(0, 10**6))),
        recording_requested=draw(st.booleans()),
        price=draw(st.none() | st.from_regex(r"-?[0-9]{1,3}\.[0-9]{1,6}", fullmatch=True)),
        price_unit=draw(st.none() | st.sampled_from(["USD", "BRL", "EUR"])),
        num_segments=draw(_optional_ints),
    )


class TestToDocument:
    def test_minimal_record_writes_only_the_always_fields(self) -> None:
        """A pending record with nothing optional writes exactly the always-present fields."""
        document = to_document(_record(prospect_id=None))
        assert set(document) == ALWAYS
        assert document["prospectId"] is None
        assert "id" not in document

    def test_field_types_are_firestore_native(self) -> None:
        """Enums are written as plain strings, media as a list, times as aware datetimes."""
        document = to_document(_record(media_urls=("https://a",)))
        assert type(document["type"]) is str
        assert type(document["direction"]) is str
        assert type(document["mediaUrls"]) is list
        assert type(document["statusRank"]) is int
        for key in ("timestamp", "createdAt", "updatedAt"):
            assert document[key].tzinfo is not None

    def test_zeros_are_written(self) -> None:
        """Zero durations and codes are values, written like any other (not dropped as unset)."""
        document = to_document(
            _record(channel=Channel.CALL, duration=0, recording_duration=0, error_code=0, body="")
        )
        assert (document["duration"], document["recordingDuration"], document["errorCode"]) == (
            0,
            0,
            0,
        )
        assert document["body"] == ""

    @pytest.mark.parametrize(
        ("channel", "status", "rank"),
        [
            (Channel.CALL, "completed", 6),
            (Channel.CALL, "failed", 9),
            (Channel.SMS, "failed", 10),
            (Channel.WHATSAPP, "read", 8),
            (Channel.SMS, "something-new", 1),
        ],
    )
    def test_status_rank_follows_the_channels_table(
        self, channel: Channel, status: str, rank: int
    ) -> None:
        """statusRank is the rank of the status in its channel's table (unlisted ranks 1)."""
        assert to_document(_record(channel=channel, status=status))["statusRank"] == rank

    def test_inbound_record(self) -> None:
        """An inbound record is written with direction "inbound"."""
        document = to_document(_record(direction=Direction.INBOUND, status="received"))
        assert (document["direction"], document["status"]) == ("inbound", "received")

    def test_a_given_media_url_wins_over_the_list(self) -> None:
        """An explicit media_url is written as mediaUrl even if it is not the list's first."""
        document = to_document(_record(media_url="https://x", media_urls=("https://a",)))
        assert (document["mediaUrl"], document["mediaUrls"]) == ("https://x", ["https://a"])

    def test_every_written_field_is_a_stored_field(self) -> None:
        """A full record writes exactly STORED_FIELDS: the fields the module owns."""
        full = _record(
            channel=Channel.CALL,
            body="b",
            media_urls=("https://a",),
            twilio_sid="CA1",
            duration=1,
            recording_url="https://r",
            recording_sid="RE1",
            recording_duration=1,
            error="e",
            error_code=1,
            recording_requested=True,
            price="-0.0130",
            price_unit="USD",
            num_segments=1,
            reconciled=True,
        )
        assert set(to_document(full)) == STORED_FIELDS

    @pytest.mark.parametrize(
        ("changes", "expected"),
        [
            ({"status": "pending"}, True),
            ({"status": "sent", "twilio_sid": "SM1"}, True),
            ({"status": "something-new"}, True),
            ({"status": "delivered"}, False),
            ({"status": "failed"}, False),
            ({"direction": Direction.INBOUND, "status": "received"}, False),
            ({"channel": Channel.CALL, "status": "in-progress"}, True),
            ({"channel": Channel.CALL, "status": "completed"}, False),
            ({"channel": Channel.CALL, "status": "completed", "recording_requested": True}, True),
            (
                {
                    "channel": Channel.CALL,
                    "status": "completed",
                    "recording_requested": True,
                    "recording_sid": "RE1",
                },
                False,
            ),
        ],
    )
    def test_open_is_is_open_of_the_record(self, changes: dict[str, Any], expected: bool) -> None:
        """``open`` is written on every document: is_open(record), a plain bool."""
        record = _record(**changes)
        document = to_document(record)
        assert document["open"] is expected
        assert is_open(record) is expected

    def test_cost_fields_are_stored_as_given(self) -> None:
        """price stays the string Twilio gave (no float rounding); numSegments is an int."""
        document = to_document(_record(price="-0.00750", price_unit="USD", num_segments=3))
        assert (document["price"], document["priceUnit"], document["numSegments"]) == (
            "-0.00750",
            "USD",
            3,
        )
        assert type(document["numSegments"]) is int

    def test_recording_requested_is_written_only_when_true(self) -> None:
        """recordingRequested: true when asked for; absent otherwise (absent reads as false)."""
        assert to_document(_record(recording_requested=True))["recordingRequested"] is True
        assert "recordingRequested" not in to_document(_record())


class TestFromDocument:
    @settings(max_examples=150, deadline=None)
    @given(_communications())
    def test_round_trip(self, record: Communication) -> None:
        """from_document(to_document(c)) is c for every consistent record."""
        assert record.id is not None
        assert from_document(record.id, to_document(record)) == record

    def test_open_is_not_read(self) -> None:
        """A stored ``open`` that disagrees with the record is ignored (it is derived) and the
        next write sets it right."""
        data = {**to_document(_record(status="delivered")), "open": True}
        record = from_document("doc1", data)
        assert record == _record(status="delivered")
        assert to_document(record)["open"] is False

    def test_documents_without_the_new_fields(self) -> None:
        """A 0.1 document (no open, recordingRequested, price, priceUnit, numSegments) reads with
        the defaults: recording not requested, no cost."""
        data = to_document(_record(status="sent"))
        for name in ("open", "recordingRequested", "price", "priceUnit", "numSegments"):
            data.pop(name, None)
        record = from_document("doc1", data)
        assert record == _record(status="sent")
        assert record.recording_requested is False
        assert (record.price, record.price_unit, record.num_segments) == (None, None, None)

    @pytest.mark.parametrize(
        ("stored", "expected"),
        [(True, True), (False, False), (None, False), ("true", False), (1, False)],
    )
    def test_recording_requested_reads_only_true_as_true(
        self, stored: object, expected: bool
    ) -> None:
        """Only a stored boolean true means a recording was asked for."""
        record = from_document("d", {"type": "call", "recordingRequested": stored})
        assert record.recording_requested is expected

    def test_cost_fields_of_other_types(self) -> None:
        """A price stored as a number reads as its text; numSegments as a string reads as int."""
        record = from_document(
            "d", {"type": "sms", "price": -0.0075, "priceUnit": "USD", "numSegments": "2"}
        )
        assert (record.price, record.price_unit, record.num_segments) == ("-0.0075", "USD", 2)

    def test_firestore_timestamps_become_plain_datetimes(self) -> None:
        """Firestore's DatetimeWithNanoseconds is read as a plain aware-UTC datetime."""
        stamp = DatetimeWithNanoseconds(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
        record = from_document("d", {"type": "sms", "timestamp": stamp, "createdAt": stamp})
        assert type(record.timestamp) is datetime
        assert type(record.created_at) is datetime
        assert record.timestamp == T0

    def test_times_in_other_zones_become_utc(self) -> None:
        """ISO strings with an offset and naive values are read as UTC instants."""
        plus_two = timezone(timedelta(hours=2))
        record = from_document(
            "d",
            {
                "type": "sms",
                "timestamp": "2024-05-01T14:00:00.123456+02:00",
                "createdAt": datetime(2024, 5, 1, 12, 0, 0, 123456),
                "updatedAt": T1.astimezone(plus_two),
            },
        )
        assert record.timestamp == record.created_at == T0
        assert record.updated_at == T1
        assert record.updated_at.tzinfo is UTC

    def test_javascript_milliseconds(self) -> None:
        """Numbers are JavaScript milliseconds since the epoch (ints and floats)."""
        millis = int(T0.timestamp() * 1000)
        record = from_document("d", {"type": "sms", "timestamp": millis, "updatedAt": millis + 0.0})
        assert record.timestamp == T0.replace(microsecond=123000)
        assert record.updated_at == record.timestamp

    @pytest.mark.parametrize("blank", [True, "   ", None])
    def test_unusable_time_values_fall_back(self, blank: object) -> None:
        """A boolean, blank or null timestamp is treated as missing: createdAt is used."""
        record = from_document("d", {"type": "sms", "timestamp": blank, "createdAt": T0})
        assert record.timestamp == T0

    def test_created_only_fills_every_time(self) -> None:
        """With only createdAt, timestamp and updatedAt take it."""
        record = from_document("d", {"type": "sms", "createdAt": T0})
        assert record.timestamp == record.created_at == record.updated_at == T0

    def test_timestamp_and_updated_without_created(self) -> None:
        """Without createdAt, created_at is the timestamp; updatedAt is kept."""
        record = from_document("d", {"type": "sms", "timestamp": T0, "updatedAt": T1})
        assert (record.timestamp, record.created_at, record.updated_at) == (T0, T0, T1)

    def test_naive_fallback_time_is_utc(self) -> None:
        """A naive document create time, used as fallback, is read as UTC."""
        record = from_document("d", {"type": "sms"}, fallback_time=datetime(2024, 5, 1, 12))
        assert record.timestamp == datetime(2024, 5, 1, 12, tzinfo=UTC)

    def test_legacy_node_inbound_message(self) -> None:
        """A Node-service inbound WhatsApp message: no type, upper-case prefix, direction kept."""
        record = from_document(
            "in1",
            {
                "prospectId": 42,
                "direction": "inbound",
                "to": "WhatsApp:" + FROM,
                "from": " whatsapp:" + TO,
                "body": "Oi",
                "status": "received",
                "twilioSid": "SM1",
                "timestamp": T0,
            },
        )
        assert record.channel == Channel.WHATSAPP
        assert record.direction == Direction.INBOUND
        assert (record.to, record.from_) == (FROM, TO)
        assert record.prospect_id == "42"
        assert (record.media_url, record.media_urls) == (None, ())

    def test_empty_type_and_direction_read_as_defaults(self) -> None:
        """Empty type and direction are read as missing: SMS (no prefix) and outbound."""
        record = from_document("d", {"type": "", "direction": "", "to": TO, "from": FROM})
        assert (record.channel, record.direction) == (Channel.SMS, Direction.OUTBOUND)

    def test_missing_numbers_read_as_empty(self) -> None:
        """A document without to/from reads them as empty strings, not an error."""
        record = from_document("d", {"type": "call"})
        assert (record.to, record.from_) == ("", "")

    def test_media_list_drops_empty_entries(self) -> None:
        """Null and empty entries of mediaUrls are dropped; media_url is the first left."""
        record = from_document("d", {"type": "whatsapp", "mediaUrls": [None, "", "https://a"]})
        assert (record.media_url, record.media_urls) == ("https://a", ("https://a",))

    def test_media_url_without_a_list(self) -> None:
        """A legacy single mediaUrl becomes a one-item media_urls."""
        record = from_document("d", {"type": "whatsapp", "mediaUrl": "https://a"})
        assert record.media_urls == ("https://a",)

    def test_unreadable_numbers_are_dropped(self) -> None:
        """Integer fields that cannot be read as integers are left unset, not an error."""
        record = from_document(
            "d", {"type": "call", "duration": "12.5", "errorCode": "n/a", "recordingDuration": []}
        )
        assert (record.duration, record.error_code, record.recording_duration) == (None, None, None)

    @pytest.mark.parametrize(
        ("data", "cause"),
        [
            ({"type": "fax", "to": TO}, ValueError),
            ({"type": "sms", "direction": "sideways", "to": TO}, ValueError),
            ({"type": "sms", "createdAt": "not a time", "to": TO}, ValueError),
        ],
    )
    def test_unreadable_documents(self, data: dict[str, Any], cause: type[Exception]) -> None:
        """An unreadable document is RepositoryError naming it, from the error, without numbers."""
        with pytest.raises(RepositoryError) as caught:
            from_document("bad-1", data)
        assert str(caught.value).startswith("document 'bad-1' cannot be read as a communication: ")
        assert isinstance(caught.value.__cause__, cause)
        assert TO not in str(caught.value)


class TestCountKey:
    def test_counted_fields_are_what_it_reads(self) -> None:
        """The projection of the counting query holds type, status and timestamp."""
        assert set(COUNTED_FIELDS) == {"type", "status", "timestamp"}

    def test_day_channel_and_status(self) -> None:
        """A document counts under the UTC date of its timestamp, its type and status."""
        data = to_document(_record(channel=Channel.WHATSAPP, status="read"))
        projected = {name: data[name] for name in COUNTED_FIELDS}
        assert count_key("doc1", projected) == (T0.date(), Channel.WHATSAPP, "read")

    def test_utc_date_of_other_zones_and_firestore_times(self) -> None:
        """The day is the UTC date: an offset string or a DatetimeWithNanoseconds alike."""
        late = DatetimeWithNanoseconds(2024, 5, 1, 23, 59, 59, 999999, tzinfo=UTC)
        assert count_key("d", {"type": "sms", "status": "sent", "timestamp": late}) == (
            late.date(),
            Channel.SMS,
            "sent",
        )
        key = count_key("d", {"type": "sms", "timestamp": "2024-05-01T22:30:00-03:00"})
        assert key is not None
        assert key[0].isoformat() == "2024-05-02"

    def test_missing_values(self) -> None:
        """No type counts as SMS, no status as unknown, no timestamp: not counted (None)."""
        assert count_key("d", {"timestamp": T0}) == (T0.date(), Channel.SMS, "unknown")
        assert count_key("d", {"type": "sms", "status": "sent"}) is None

    def test_an_unknown_type_names_the_document(self) -> None:
        """A type that is no channel raises RepositoryError naming the document."""
        with pytest.raises(RepositoryError, match="'bad-1'"):
            count_key("bad-1", {"type": "fax", "timestamp": T0})


class TestStoredInteger:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (7, 7),
            (0, 0),
            (-3, -3),
            (12.0, 12),
            ("37", 37),
            (" 42 ", 42),
            ("-5", -5),
            (None, None),
            (True, None),
            (False, None),
            (12.5, None),
            (float("nan"), None),
            ("12.5", None),
            ("", None),
            ("abc", None),
            ([1], None),
        ],
    )
    def test_values(self, value: object, expected: int | None) -> None:
        """Ints, whole floats and numeric strings are ints; booleans and anything else None."""
        result = stored_integer(value)
        assert result == expected
        assert result is None or type(result) is int


class TestPurity:
    def test_imports_no_google_cloud(self) -> None:
        """Importing the module alone loads nothing of google.cloud, google.api_core or grpc."""
        code = (
            "import sys, servio_twilio.storage.firestore.documents as m; "
            "print(sorted(n for n in sys.modules "
            "if n.split('.')[0] in {'grpc', 'google'}))"
        )
        output = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True
        ).stdout
        assert output.strip() == "[]"
