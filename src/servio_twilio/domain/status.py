"""Status rules: how late, repeated and out-of-order callbacks settle a record.

A record's status is the highest-ranked status it has seen; at equal rank the
alphabetically greater name wins. Applying the same callbacks in any order,
any number of times, gives the same record.

| rank | message statuses      | call statuses |
|------|-----------------------|---------------|
| 0    | pending               | pending       |
| 1    | unknown, anything else| unknown, anything else |
| 2    | accepted, scheduled   | queued        |
| 3    | queued                | initiated     |
| 4    | sending               | ringing       |
| 5    | sent                  | in-progress   |
| 6    | partially_delivered   | completed     |
| 7    | delivered             | busy          |
| 8    | read                  | no-answer     |
| 9    | undelivered           | failed        |
| 10   | failed                | canceled      |
| 11   | canceled              |               |
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Final

from servio_twilio.domain.models import Channel, Communication, replace

__all__ = [
    "CALL_STATUS_RANKS",
    "FAILURE_STATUSES",
    "MESSAGE_STATUS_RANKS",
    "PENDING",
    "RECEIVED",
    "UNKNOWN",
    "advance",
    "is_final",
    "is_open",
    "merge_status",
    "status_rank",
]

PENDING: Final = "pending"
UNKNOWN: Final = "unknown"
RECEIVED: Final = "received"
_UNLISTED_RANK: Final = 1

MESSAGE_STATUS_RANKS: Final[Mapping[str, int]] = {
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

CALL_STATUS_RANKS: Final[Mapping[str, int]] = {
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


_OPEN_MESSAGE_RANK_BELOW: Final = MESSAGE_STATUS_RANKS["partially_delivered"]
_OPEN_CALL_RANK_BELOW: Final = CALL_STATUS_RANKS["completed"]

FAILURE_STATUSES: Final[frozenset[str]] = frozenset(
    {"failed", "undelivered", "busy", "no-answer", "canceled"}
)
"""Final statuses that mean the message or call did not get through (for the console)."""


def is_final(record: Communication) -> bool:
    """Whether ``record``'s status can no longer change: Twilio is done with it.

    Inbound records are final. Outbound messages at or above
    ``partially_delivered`` and calls at or above ``completed`` are, except a
    ``completed`` call made with ``record=True`` whose recording is not
    stored yet.

    New in 0.2.0.
    """
    if record.direction != "outbound":
        return True
    if record.channel == Channel.CALL:
        if CALL_STATUS_RANKS.get(record.status, _UNLISTED_RANK) < _OPEN_CALL_RANK_BELOW:
            return False
        return not (
            record.status == "completed"
            and record.recording_requested
            and record.recording_sid is None
        )
    return MESSAGE_STATUS_RANKS.get(record.status, _UNLISTED_RANK) >= _OPEN_MESSAGE_RANK_BELOW


def is_open(record: Communication) -> bool:
    """Whether `reconcile` still has to ask Twilio about ``record``.

    An outbound record is open while it is not final (`is_final`: a
    message ``pending``, ``unknown`` or unlisted, ``accepted``,
    ``scheduled``, ``queued``, ``sending``, ``sent``; a call below
    ``completed``, or ``completed`` and owing its recording), and once final
    until reconcile has fetched it (``reconciled``) when it has a SID and no
    price: Twilio's callbacks carry no price, so that fetch is where the cost
    comes from. Inbound records are never open.

    New in 0.2.0.
    """
    if record.direction != "outbound":
        return False
    if not is_final(record):
        return True
    return record.twilio_sid is not None and record.price is None and not record.reconciled


def status_rank(channel: Channel | str, status: str) -> int:
    """The rank of ``status`` for ``channel``; unlisted statuses rank 1, like ``unknown``."""
    ranks = CALL_STATUS_RANKS if channel == Channel.CALL else MESSAGE_STATUS_RANKS
    return ranks.get(status, _UNLISTED_RANK)


def merge_status(channel: Channel | str, current: str, incoming: str) -> str:
    """The status a record settles on after ``current`` meets ``incoming``.

    Commutative, associative and idempotent: the higher rank wins; at equal
    rank, the alphabetically greater name.
    """
    ranks = CALL_STATUS_RANKS if channel == Channel.CALL else MESSAGE_STATUS_RANKS
    current_key = (ranks.get(current, _UNLISTED_RANK), current)
    incoming_key = (ranks.get(incoming, _UNLISTED_RANK), incoming)
    return incoming if incoming_key > current_key else current


def advance(
    record: Communication,
    *,
    updated_at: datetime,
    status: str | None = None,
    twilio_sid: str | None = None,
    duration: int | None = None,
    recording_url: str | None = None,
    recording_sid: str | None = None,
    recording_duration: int | None = None,
    error: str | None = None,
    error_code: int | None = None,
    price: str | None = None,
    price_unit: str | None = None,
    num_segments: int | None = None,
) -> Communication:
    """``record`` after one observation (a callback or Twilio's answer).

    The status merges by rank. The other fields are set when given and never
    erased; when two observations disagree about a field, the greater value
    stays (the longer duration; for text, the greater string), so the record
    does not depend on the order callbacks arrive in. (Letting the
    higher-ranked callback's value win cannot be order-independent without
    remembering which callback set each field.) A record with a SID keeps it.
    ``updated_at`` changes only when something else does, so a repeated
    callback leaves the record as it was (the same object).
    """
    changes: dict[str, object] = {}
    if status is not None:
        merged = merge_status(record.channel, record.status, status)
        if merged != record.status:
            changes["status"] = merged
    if twilio_sid is not None and record.twilio_sid is None:
        changes["twilio_sid"] = twilio_sid
    observed = (
        ("duration", duration),
        ("recording_url", recording_url),
        ("recording_sid", recording_sid),
        ("recording_duration", recording_duration),
        ("error", error),
        ("error_code", error_code),
        ("price", price),
        ("price_unit", price_unit),
        ("num_segments", num_segments),
    )
    for name, value in observed:
        if value is None:
            continue
        present = getattr(record, name)
        if present is None or value > present:
            changes[name] = value
    if not changes:
        return record
    return replace(record, updated_at=updated_at, **changes)
