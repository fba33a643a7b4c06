"""What Twilio's fetched and listed instances say, read for reconcile.

`observed` turns a fetched message or call into the fields a callback
would set (`advance` keywords); `recording_fields` does the same for a
call's recordings; `candidates` picks, from Twilio's list of messages or
calls, the ones that may be a record whose create's answer never came
(by body, or by start time within `MATCH_WINDOW`); `days_to_list` and
`twilio_address` are what that list is asked for.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from datetime import date, datetime, timedelta
from typing import Any

from servio_twilio.domain.models import Channel, Communication
from servio_twilio.domain.phone_text import WHATSAPP_PREFIX
from servio_twilio.sending.dispatch import charge_of

__all__ = [
    "MATCH_WINDOW",
    "candidates",
    "days_to_list",
    "observed",
    "recording_fields",
    "twilio_address",
]

MATCH_WINDOW = timedelta(minutes=1)
"""How far a listed call's start time may be from a record's ``timestamp`` to match it."""

_MIDNIGHT_MARGIN = timedelta(minutes=10)


def observed(kind: str, instance: Any) -> dict[str, Any]:
    """What a fetched or listed Twilio instance says, as `advance` keywords."""
    observation: dict[str, Any] = charge_of(instance)
    status = getattr(instance, "status", None)
    if isinstance(status, str) and status:
        observation["status"] = status
    code = getattr(instance, "error_code", None)
    if isinstance(code, int | str) and not isinstance(code, bool) and str(code).isdigit():
        observation["error_code"] = int(code)
        message = getattr(instance, "error_message", None)
        observation["error"] = (
            message if isinstance(message, str) and message else (f"Twilio error {int(code)}")
        )
    if kind == "call":
        duration = _seconds(getattr(instance, "duration", None))
        if duration is not None:
            observation["duration"] = duration
    return observation


def recording_fields(listed: Sequence[Any]) -> dict[str, Any]:
    """The fields a completed recording callback would set, from a call's listed recordings."""
    for recording in listed:
        if getattr(recording, "status", "completed") not in (None, "completed"):
            continue
        sid = getattr(recording, "sid", None)
        if not isinstance(sid, str) or not sid:
            continue
        fields: dict[str, Any] = {"recording_sid": sid}
        uri = getattr(recording, "uri", None)
        if isinstance(uri, str) and uri:
            fields["recording_url"] = _recording_url(uri)
        duration = _seconds(getattr(recording, "duration", None))
        if duration is not None:
            fields["recording_duration"] = duration
        return fields
    return {}


def _recording_url(uri: str) -> str:
    """Twilio's ``uri`` (``/2010-04-01/.../RE....json``) as a callback's ``RecordingUrl``."""
    path = uri.removesuffix(".json")
    return path if path.startswith("https://") else f"https://api.twilio.com{path}"


def candidates(record: Communication, kind: str, listed: Sequence[Any]) -> Iterator[Any]:
    """The listed instances that may be ``record``'s, the likeliest first."""
    matching = []
    for instance in listed:
        sid = getattr(instance, "sid", None)
        if not isinstance(sid, str) or not sid:
            continue
        when = _when(instance, kind)
        if kind == "call":
            if when is None or abs(when - record.timestamp) > MATCH_WINDOW:
                continue
        elif not _same_body(record.body, getattr(instance, "body", None)):
            continue
        distance = abs(when - record.timestamp) if when is not None else timedelta.max
        matching.append((distance, sid, instance))
    matching.sort(key=lambda match: (match[0], match[1]))
    for _, _, instance in matching:
        yield instance


def _same_body(ours: str | None, theirs: object) -> bool:
    if not isinstance(theirs, str):
        return False
    ours = ours or ""
    # A trial account prefixes its own text: the body we sent is the end of Twilio's.
    return theirs == ours or (bool(ours) and theirs.endswith(ours))


def _when(instance: Any, kind: str) -> datetime | None:
    names = ("start_time", "date_created") if kind == "call" else ("date_created", "date_sent")
    for name in names:
        value = getattr(instance, name, None)
        if isinstance(value, datetime) and value.tzinfo is not None:
            return value
    return None


def days_to_list(timestamp: datetime) -> list[date]:
    """The UTC day of ``timestamp``, and the next one when it is close to midnight."""
    days = [timestamp.date()]
    if (timestamp + _MIDNIGHT_MARGIN).date() != days[0]:
        days.append(days[0] + timedelta(days=1))
    return days


def twilio_address(record: Communication, number: str) -> str | None:
    if not number:
        return None  # a messaging service picked the sender: list by To alone
    return WHATSAPP_PREFIX + number if record.channel == Channel.WHATSAPP else number


def _seconds(value: object) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value.strip())
    return None
