"""Status rules: rank tables, merge_status and advance over late, repeated, reordered callbacks."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest
from hypothesis import given, settings, strategies as st

from servio_twilio.domain.models import Channel, Communication
from servio_twilio.domain.status import (
    CALL_STATUS_RANKS,
    MESSAGE_STATUS_RANKS,
    PENDING,
    RECEIVED,
    UNKNOWN,
    advance,
    merge_status,
    status_rank,
)

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

# DESIGN.md's table, written out here independently of the module.
DESIGN_MESSAGE_RANKS = {
    "pending": 0,
    "unknown": 1,
    "accepted": 2,
    "scheduled": 2,
    "queued": 3,
    "sending": 4,
    "sent": 5,
    "partially_delivered": 6,
    "delivered": 7,
    "read": 8,
    "undelivered": 9,
    "failed": 10,
    "canceled": 11,
}
DESIGN_CALL_RANKS = {
    "pending": 0,
    "unknown": 1,
    "queued": 2,
    "initiated": 3,
    "ringing": 4,
    "in-progress": 5,
    "completed": 6,
    "busy": 7,
    "no-answer": 8,
    "failed": 9,
    "canceled": 10,
}


def _record(channel: Channel, **fields: Any) -> Communication:
    values: dict[str, Any] = {
        "id": "c1",
        "channel": channel,
        "to": "+5511999999999",
        "from_": "+12025550100",
        "timestamp": T0,
        "created_at": T0,
        "updated_at": T0,
    }
    values.update(fields)
    return Communication(**values)


# Observations as the client and the webhook apps make them: a status with the
# fields its callback carries. Values differ between statuses on purpose, so
# the properties also cover callbacks that disagree.
_SID = "SM" + "a" * 32
MESSAGE_OBSERVATIONS: dict[str, dict[str, Any]] = {
    "accepted": {"twilio_sid": _SID},
    "scheduled": {"twilio_sid": _SID},
    "queued": {"twilio_sid": _SID},
    "sending": {},
    "sent": {},
    "partially_delivered": {},
    "delivered": {},
    "read": {},
    "undelivered": {"error": "Unknown destination handset", "error_code": 30003},
    "failed": {"error": "Message delivery - Unknown error", "error_code": 30008},
    "canceled": {},
    "unknown": {},
    "mystery_status": {"error": "odd", "error_code": 1},
}
CALL_OBSERVATIONS: dict[str, dict[str, Any]] = {
    "queued": {"twilio_sid": "CA" + "b" * 32},
    "initiated": {},
    "ringing": {},
    "in-progress": {},
    "completed": {"duration": 42},
    "busy": {"duration": 0},
    "no-answer": {"duration": 0},
    "failed": {"error": "Invalid number", "error_code": 13224},
    "canceled": {},
    "unknown": {},
}
RECORDING_OBSERVATIONS: list[dict[str, Any]] = [
    {"recording_sid": "RE" + "c" * 32, "recording_url": "https://api.twilio.com/rec/RE1"},
    {
        "recording_sid": "RE" + "c" * 32,
        "recording_url": "https://api.twilio.com/rec/RE1",
        "recording_duration": 40,
    },
]


def _observation(channel: Channel) -> st.SearchStrategy[dict[str, Any]]:
    table = CALL_OBSERVATIONS if channel == Channel.CALL else MESSAGE_OBSERVATIONS
    with_status = st.sampled_from(sorted(table)).map(lambda s: {"status": s, **table[s]})
    if channel != Channel.CALL:
        return with_status
    return st.one_of(with_status, st.sampled_from(RECORDING_OBSERVATIONS))


def _fold(record: Communication, observations: list[dict[str, Any]]) -> Communication:
    for observation in observations:
        record = advance(record, updated_at=T0 + timedelta(seconds=1), **observation)
    return record


@st.composite
def _sequence_and_reordering(
    draw: st.DrawFn, channel: Channel
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """A sequence of observations and the same ones reordered, some repeated."""
    sequence = draw(st.lists(_observation(channel), min_size=1, max_size=8))
    repeats = draw(st.lists(st.sampled_from(sequence), max_size=6))
    reordered = draw(st.permutations(sequence + repeats))
    return sequence, list(reordered)


class TestRankTables:
    def test_message_ranks_match_design(self) -> None:
        """The message table is exactly DESIGN.md's."""
        assert dict(MESSAGE_STATUS_RANKS) == DESIGN_MESSAGE_RANKS

    def test_call_ranks_match_design(self) -> None:
        """The call table is exactly DESIGN.md's."""
        assert dict(CALL_STATUS_RANKS) == DESIGN_CALL_RANKS

    def test_constants(self) -> None:
        """The named statuses are the strings the tables and DESIGN use."""
        assert (PENDING, UNKNOWN, RECEIVED) == ("pending", "unknown", "received")

    @pytest.mark.parametrize("channel", [Channel.SMS, Channel.WHATSAPP, "sms", "whatsapp"])
    def test_messages_use_the_message_table(self, channel: Channel | str) -> None:
        """SMS and WhatsApp (enum or string) rank by the message table."""
        for status, rank in DESIGN_MESSAGE_RANKS.items():
            assert status_rank(channel, status) == rank

    @pytest.mark.parametrize("channel", [Channel.CALL, "call"])
    def test_calls_use_the_call_table(self, channel: Channel | str) -> None:
        """Calls (enum or string) rank by the call table."""
        for status, rank in DESIGN_CALL_RANKS.items():
            assert status_rank(channel, status) == rank

    @given(st.text(max_size=30), st.sampled_from(list(Channel)))
    def test_unlisted_statuses_rank_one(self, status: str, channel: Channel) -> None:
        """Any status not in the channel's table ranks 1, like ``unknown``."""
        table = DESIGN_CALL_RANKS if channel == Channel.CALL else DESIGN_MESSAGE_RANKS
        expected = table.get(status, 1)
        assert status_rank(channel, status) == expected

    def test_received_ranks_one(self) -> None:
        """``received`` (inbound messages) is unlisted: rank 1."""
        assert status_rank(Channel.SMS, RECEIVED) == 1


_ANY_MESSAGE_STATUS = st.one_of(st.sampled_from(sorted(DESIGN_MESSAGE_RANKS)), st.text(max_size=8))
_ANY_CALL_STATUS = st.one_of(st.sampled_from(sorted(DESIGN_CALL_RANKS)), st.text(max_size=8))


class TestMergeStatus:
    @given(_ANY_MESSAGE_STATUS, _ANY_MESSAGE_STATUS)
    def test_commutative(self, a: str, b: str) -> None:
        """The order two statuses meet in does not matter."""
        assert merge_status(Channel.SMS, a, b) == merge_status(Channel.SMS, b, a)

    @given(_ANY_CALL_STATUS, _ANY_CALL_STATUS, _ANY_CALL_STATUS)
    def test_associative(self, a: str, b: str, c: str) -> None:
        """Grouping does not matter."""
        left = merge_status(Channel.CALL, merge_status(Channel.CALL, a, b), c)
        right = merge_status(Channel.CALL, a, merge_status(Channel.CALL, b, c))
        assert left == right

    @given(_ANY_MESSAGE_STATUS)
    def test_idempotent(self, a: str) -> None:
        """A status merged with itself is itself."""
        assert merge_status(Channel.WHATSAPP, a, a) == a

    @given(_ANY_MESSAGE_STATUS, _ANY_MESSAGE_STATUS)
    def test_result_is_one_of_the_inputs_with_the_higher_rank(self, a: str, b: str) -> None:
        """The winner is an input, and no input outranks it."""
        winner = merge_status(Channel.SMS, a, b)
        assert winner in (a, b)
        assert status_rank(Channel.SMS, winner) == max(
            status_rank(Channel.SMS, a), status_rank(Channel.SMS, b)
        )

    @pytest.mark.parametrize(
        ("channel", "a", "b", "winner"),
        [
            (Channel.SMS, "accepted", "scheduled", "scheduled"),
            (Channel.SMS, "unknown", "mystery", "unknown"),
            (Channel.SMS, "unknown", "zzz", "zzz"),
            (Channel.SMS, "received", "unknown", "unknown"),
            (Channel.CALL, "unknown", "answered", "unknown"),
        ],
    )
    def test_equal_ranks_pick_the_alphabetically_greater(
        self, channel: Channel, a: str, b: str, winner: str
    ) -> None:
        """At equal rank the alphabetically greater name wins, in either order."""
        assert merge_status(channel, a, b) == winner
        assert merge_status(channel, b, a) == winner

    @pytest.mark.parametrize(
        ("channel", "a", "b", "winner"),
        [
            (Channel.SMS, "delivered", "sent", "delivered"),
            (Channel.SMS, "read", "delivered", "read"),
            (Channel.SMS, "failed", "undelivered", "failed"),
            (Channel.SMS, "queued", "pending", "queued"),
            (Channel.SMS, "unknown", "pending", "unknown"),
            (Channel.CALL, "completed", "ringing", "completed"),
            (Channel.CALL, "queued", "initiated", "initiated"),
            (Channel.CALL, "no-answer", "busy", "no-answer"),
        ],
    )
    def test_higher_rank_wins(self, channel: Channel, a: str, b: str, winner: str) -> None:
        """A late lower-ranked callback never moves a record back."""
        assert merge_status(channel, a, b) == winner
        assert merge_status(channel, b, a) == winner


class TestAdvance:
    @settings(max_examples=300, deadline=None)
    @given(
        st.sampled_from([Channel.SMS, Channel.WHATSAPP]).flatmap(
            lambda c: st.tuples(st.just(c), _sequence_and_reordering(c))
        )
    )
    def test_messages_any_order_any_repetition(
        self, case: tuple[Channel, tuple[list[dict[str, Any]], list[dict[str, Any]]]]
    ) -> None:
        """Message callbacks folded in any order, repeated, give the same record."""
        channel, (sequence, reordered) = case
        start = _record(channel)
        assert _fold(start, sequence) == _fold(start, reordered)

    @settings(max_examples=300, deadline=None)
    @given(_sequence_and_reordering(Channel.CALL))
    def test_calls_any_order_any_repetition(
        self, case: tuple[list[dict[str, Any]], list[dict[str, Any]]]
    ) -> None:
        """Call and recording callbacks folded in any order, repeated, give the same record."""
        sequence, reordered = case
        start = _record(Channel.CALL)
        assert _fold(start, sequence) == _fold(start, reordered)

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(
            st.fixed_dictionaries(
                {},
                optional={
                    "status": _ANY_CALL_STATUS,
                    "duration": st.integers(0, 10_000),
                    "recording_url": st.text(max_size=5),
                    "recording_sid": st.text(max_size=5),
                    "recording_duration": st.integers(0, 10_000),
                    "error": st.text(max_size=5),
                    "error_code": st.integers(0, 99_999),
                },
            ),
            min_size=1,
            max_size=6,
        ).flatmap(lambda seq: st.tuples(st.just(seq), st.permutations(seq + seq[:2])))
    )
    def test_arbitrary_observations_are_order_independent(
        self, case: tuple[list[dict[str, Any]], list[dict[str, Any]]]
    ) -> None:
        """Even observations that disagree on every field settle on one record."""
        sequence, reordered = case
        start = _record(Channel.CALL)
        assert _fold(start, sequence) == _fold(start, list(reordered))

    @settings(max_examples=200, deadline=None)
    @given(_sequence_and_reordering(Channel.SMS))
    def test_status_is_the_merge_of_every_status_seen(
        self, case: tuple[list[dict[str, Any]], list[dict[str, Any]]]
    ) -> None:
        """The folded status is merge_status over all observations, from ``pending``."""
        sequence, _ = case
        expected = PENDING
        for observation in sequence:
            expected = merge_status(Channel.SMS, expected, observation["status"])
        assert _fold(_record(Channel.SMS), sequence).status == expected

    def test_a_late_lower_callback_does_not_move_the_record_back(self) -> None:
        """``sent`` after ``delivered`` leaves the record delivered and untouched."""
        delivered = advance(_record(Channel.SMS), updated_at=T0 + timedelta(1), status="delivered")
        later = advance(delivered, updated_at=T0 + timedelta(2), status="sent")
        assert later is delivered

    def test_nothing_changes_returns_the_same_object(self) -> None:
        """A repeated callback returns the very same record, ``updated_at`` unchanged."""
        record = _record(
            Channel.CALL,
            status="completed",
            twilio_sid="CA1",
            duration=42,
            recording_url="u",
            recording_sid="RE1",
            recording_duration=40,
            error="e",
            error_code=1,
        )
        later = T0 + timedelta(hours=1)
        for observation in (
            {},
            {"status": "completed", "duration": 42},
            {"status": "ringing"},
            {"twilio_sid": "CA1"},
            {"twilio_sid": "CA-other"},
            {"recording_url": "u", "recording_sid": "RE1", "recording_duration": 40},
            {"error": "e", "error_code": 1},
        ):
            result = advance(record, updated_at=later, **observation)
            assert result is record
            assert result.updated_at == T0

    def test_changes_set_updated_at(self) -> None:
        """Any change stamps ``updated_at`` with the given time and keeps other fields."""
        record = _record(Channel.SMS, body="hi", prospect_id="p1")
        later = T0 + timedelta(minutes=5)
        result = advance(record, updated_at=later, status="sent", twilio_sid="SM1")
        assert (result.status, result.twilio_sid, result.updated_at) == ("sent", "SM1", later)
        assert attrs.evolve(result, status="pending", twilio_sid=None, updated_at=T0) == record
        assert record.status == "pending"

    def test_fields_are_set_and_never_erased(self) -> None:
        """Fields arrive with their callbacks and stay when later callbacks omit them."""
        record = _record(Channel.CALL)
        record = advance(record, updated_at=T0, status="completed", duration=42)
        record = advance(
            record,
            updated_at=T0,
            recording_url="https://r",
            recording_sid="RE1",
            recording_duration=40,
        )
        record = advance(record, updated_at=T0, status="canceled")
        assert (record.status, record.duration, record.recording_url) == (
            "canceled",
            42,
            "https://r",
        )
        assert (record.recording_sid, record.recording_duration) == ("RE1", 40)

    def test_a_record_keeps_its_sid(self) -> None:
        """A SID once set is not replaced by another."""
        record = advance(_record(Channel.SMS), updated_at=T0, twilio_sid="SM1")
        assert advance(record, updated_at=T0, twilio_sid="SM2").twilio_sid == "SM1"

    def test_disagreeing_fields_keep_the_greater_value(self) -> None:
        """Two callbacks with different values settle on the greater, in either order."""
        one = {"status": "undelivered", "error_code": 30003, "error": "a"}
        two = {"status": "failed", "error_code": 30008, "error": "b"}
        for order in ([one, two], [two, one]):
            record = _fold(_record(Channel.SMS), order)
            assert (record.status, record.error_code, record.error) == ("failed", 30008, "b")
