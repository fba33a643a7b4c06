"""The Communication record, its enums, and the JSON helpers."""

from __future__ import annotations

import enum
import json
from datetime import UTC, datetime, timedelta, timezone
from types import MappingProxyType
from typing import Any

import attrs
import pytest
from hypothesis import given, strategies as st

from servio_twilio.domain.models import (
    Channel,
    Communication,
    Direction,
    json_ready,
    replace,
    to_json_dict,
    utcnow,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

# DESIGN.md's model fields, in its order.
# Version 0.2 (DESIGN "A record that stays true"): the cost Twilio reports, and
# whether a call's recording is still to come (what reconcile looks for).
ADDED_FIELDS = ["recording_requested", "price", "price_unit", "num_segments", "reconciled"]

DESIGN_FIELDS = [
    "id",
    "prospect_id",
    "channel",
    "direction",
    "to",
    "from_",
    "body",
    "media_url",
    "media_urls",
    "twilio_sid",
    "status",
    "duration",
    "recording_url",
    "recording_sid",
    "recording_duration",
    "error",
    "error_code",
    "timestamp",
    "created_at",
    "updated_at",
]


def _communication(**fields: Any) -> Communication:
    values: dict[str, Any] = {"channel": Channel.SMS, "to": "+5511999999999", "from_": "+1202"}
    values.update(fields)
    return Communication(**values)


class TestEnums:
    def test_channel_values(self) -> None:
        """The stored ``type`` values of the earlier service."""
        assert [c.value for c in Channel] == ["sms", "whatsapp", "call"]

    def test_direction_values(self) -> None:
        """The stored ``direction`` values of the earlier service."""
        assert [d.value for d in Direction] == ["inbound", "outbound"]

    def test_str_enums(self) -> None:
        """They compare equal to, and format as, their plain strings."""
        assert Channel.WHATSAPP == "whatsapp"
        assert f"{Direction.INBOUND}" == "inbound"
        assert json.dumps(Channel.CALL) == '"call"'


class TestUtcnow:
    def test_aware_utc(self) -> None:
        """The default clock returns an aware datetime in UTC."""
        now = utcnow()
        assert now.tzinfo is UTC
        assert now.utcoffset() == timedelta(0)


class TestCommunication:
    def test_fields_match_design(self) -> None:
        """The model has DESIGN's fields, in DESIGN's order, then the 0.2 ones."""
        assert [field.name for field in attrs.fields(Communication)] == [
            *DESIGN_FIELDS,
            *ADDED_FIELDS,
        ]

    def test_defaults(self) -> None:
        """A new record is outbound, ``pending``, with no media and aware UTC times."""
        record = _communication()
        assert record.id is None
        assert record.direction is Direction.OUTBOUND
        assert record.status == "pending"
        assert record.media_urls == ()
        for stamp in (record.timestamp, record.created_at, record.updated_at):
            assert stamp.tzinfo is UTC

    def test_channel_and_direction_convert_from_strings(self) -> None:
        """Stored strings become the enums."""
        record = _communication(channel="whatsapp", direction="inbound")
        assert record.channel is Channel.WHATSAPP
        assert record.direction is Direction.INBOUND

    @pytest.mark.parametrize(("field", "value"), [("channel", "fax"), ("direction", "sideways")])
    def test_unknown_enum_values_are_refused(self, field: str, value: str) -> None:
        """An unknown channel or direction is a ValueError naming the value."""
        with pytest.raises(ValueError, match=value):
            _communication(**{field: value})

    @pytest.mark.parametrize(
        ("value", "expected"),
        [("https://a/1.png", ("https://a/1.png",)), (["a", "b"], ("a", "b")), (None, ())],
    )
    def test_media_urls_converter(self, value: Any, expected: tuple[str, ...]) -> None:
        """One URL, a list or None become a tuple (so the record stays hashable)."""
        record = _communication(media_urls=value)
        assert record.media_urls == expected
        hash(record)

    @pytest.mark.parametrize("field", ["timestamp", "created_at", "updated_at"])
    def test_naive_datetimes_are_refused(self, field: str) -> None:
        """A naive datetime is ambiguous: ValueError."""
        with pytest.raises(ValueError, match="naive"):
            _communication(**{field: datetime(2024, 5, 1, 12, 0)})

    @pytest.mark.parametrize("value", ["2024-05-01T12:00:00Z", 1714564800, None])
    def test_non_datetimes_are_refused(self, value: object) -> None:
        """Strings, numbers and None are not datetimes: TypeError naming the type."""
        with pytest.raises(TypeError, match=type(value).__name__):
            _communication(timestamp=value)

    def test_other_zones_are_converted_to_utc(self) -> None:
        """An aware time in another zone is stored as the same instant in UTC."""
        sao_paulo = timezone(timedelta(hours=-3))
        record = _communication(created_at=datetime(2024, 5, 1, 9, 0, tzinfo=sao_paulo))
        assert record.created_at == T0
        assert record.created_at.tzinfo is UTC

    def test_frozen(self) -> None:
        """Records are immutable; changes go through ``attrs.evolve``."""
        record = _communication()
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            record.status = "sent"  # type: ignore[misc]
        assert attrs.evolve(record, status="sent").status == "sent"

    def test_keyword_only(self) -> None:
        """Positional construction is refused."""
        with pytest.raises(TypeError):
            Communication("c1", None, Channel.SMS)  # type: ignore[misc]

    def test_to_dict_is_json_ready(self) -> None:
        """to_dict gives snake_case keys, ``from`` for ``from_``, ISO times, plain strings."""
        record = _communication(
            id="c1",
            prospect_id="p1",
            channel=Channel.WHATSAPP,
            media_url="https://a/1.png",
            media_urls=["https://a/1.png", "https://a/2.png"],
            twilio_sid="SM1",
            status="delivered",
            error_code=30003,
            timestamp=T0,
            created_at=T0,
            updated_at=T0 + timedelta(seconds=5),
        )
        data = record.to_dict()
        assert json.loads(json.dumps(data)) == data
        assert data["from"] == "+1202"
        assert "from_" not in data
        assert data["channel"] == "whatsapp"
        assert type(data["channel"]) is str
        assert data["direction"] == "outbound"
        assert data["media_urls"] == ["https://a/1.png", "https://a/2.png"]
        assert data["timestamp"] == "2024-05-01T12:00:00+00:00"
        assert data["updated_at"] == "2024-05-01T12:00:05+00:00"
        assert datetime.fromisoformat(data["created_at"]) == T0
        assert set(data) == {name.rstrip("_") for name in [*DESIGN_FIELDS, *ADDED_FIELDS]}


# Values of the fields a callback or Twilio's answer changes, and of the converted ones.
_CHANGES = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from(["queued", "sent", "delivered", "failed"]),
        "twilio_sid": st.text(alphabet="SM0123456789abcdef", min_size=2, max_size=34),
        "duration": st.none() | st.integers(0, 10_000),
        "recording_url": st.none() | st.just("https://api.twilio.com/rec/RE1"),
        "error": st.none() | st.text(max_size=20),
        "error_code": st.none() | st.integers(10_000, 99_999),
        "channel": st.sampled_from(["sms", "whatsapp", "call", Channel.CALL]),
        "direction": st.sampled_from(["inbound", "outbound", Direction.INBOUND]),
        "media_urls": st.lists(st.just("https://a/1.png"), max_size=2),
        "updated_at": st.datetimes(timezones=st.just(UTC)),
    },
)


class TestReplace:
    @given(_CHANGES)
    def test_equals_attrs_evolve(self, changes: dict[str, Any]) -> None:
        """`replace` gives what `attrs.evolve` gives, converters included."""
        record = _communication(id="c1", twilio_sid="SM1", status="pending", timestamp=T0)
        assert replace(record, **changes) == attrs.evolve(record, **changes)

    def test_leaves_the_record_alone(self) -> None:
        """The record replaced is unchanged, and the copy is a new record."""
        record = _communication(id="c1", status="queued")
        updated = replace(record, status="sent", updated_at=T0)
        assert (record.status, updated.status, updated.updated_at) == ("queued", "sent", T0)
        assert updated is not record
        assert replace(record) == record

    def test_converts_times_to_utc(self) -> None:
        """An aware time in another zone is stored in UTC; a naive one is refused."""
        later = datetime(2024, 5, 1, 9, 0, tzinfo=timezone(timedelta(hours=-3)))
        assert replace(_communication(), updated_at=later).updated_at == T0
        assert replace(_communication(), updated_at=later).updated_at.tzinfo is UTC
        with pytest.raises(ValueError, match="naive"):
            replace(_communication(), updated_at=datetime(2024, 5, 1))

    def test_unknown_field(self) -> None:
        """A name that is not a field raises TypeError, as `attrs.evolve` does."""
        with pytest.raises(TypeError, match="stauts"):
            replace(_communication(), stauts="sent")

    def test_subclass_keeps_its_type(self) -> None:
        """A subclass of Communication goes through `attrs.evolve`: its type and checks stay."""

        @attrs.frozen(kw_only=True, slots=False)
        class Tagged(Communication):
            tag: str = "x"

        record = Tagged(channel=Channel.SMS, to="+1", from_="+2", tag="y")
        updated = replace(record, status="sent")
        assert type(updated) is Tagged
        assert (updated.tag, updated.status) == ("y", "sent")


class TestJsonReady:
    def test_nested_values(self) -> None:
        """Datetimes, enums, tuples and mappings are converted at any depth."""

        class Color(enum.Enum):
            RED = 1

        value = {
            "when": T0,
            "items": (Channel.SMS, [Color.RED, {"at": T0}]),
            "proxy": MappingProxyType({"a": (1, 2)}),
            "n": None,
        }
        assert json_ready(value) == {
            "when": "2024-05-01T12:00:00+00:00",
            "items": ["sms", [1, {"at": "2024-05-01T12:00:00+00:00"}]],
            "proxy": {"a": [1, 2]},
            "n": None,
        }
        json.dumps(json_ready(value))

    def test_plain_values_unchanged(self) -> None:
        """Strings, numbers, booleans and None pass through."""
        for plain in ("x", 1, 1.5, True, None):
            assert json_ready(plain) == plain

    def test_to_json_dict_drops_trailing_underscore(self) -> None:
        """An attrs instance becomes a dict with ``from_`` as ``from``."""

        @attrs.frozen(kw_only=True)
        class Sample:
            from_: str
            at: datetime

        assert to_json_dict(Sample(from_="+1", at=T0)) == {
            "from": "+1",
            "at": "2024-05-01T12:00:00+00:00",
        }
