"""What `FakeTwilio` keeps: the messages, calls and recordings Twilio holds, as Twilio's JSON.

`TwilioStore` keeps each resource by SID, finds them with the filters of
Twilio's list routes and changes them as Twilio's side would (`set_status`,
`add_recording`). The builders shape each resource like Twilio's 2010 API
(field names from Twilio's OpenAPI description). Nothing here locks:
`FakeTwilio` calls the store under its own lock.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any, Literal

from servio_twilio.domain.errors import InvalidArgument

__all__ = [
    "API",
    "ResourceKind",
    "TwilioStore",
    "call_resource",
    "filter_day",
    "message_resource",
    "new_sid",
    "rfc2822",
]

API = "/2010-04-01/Accounts"
ResourceKind = Literal["message", "call", "recording"]
_KINDS: dict[str, ResourceKind] = {
    "SM": "message",
    "MM": "message",
    "CA": "call",
    "RE": "recording",
}
_FINAL_CALL = frozenset({"completed", "busy", "failed", "no-answer", "canceled"})
# (filter parameter, resource field, comparison) per listed kind; a date filter
# compares the day (UTC) of the field with the day given.
_FILTERS: dict[ResourceKind, tuple[tuple[str, str, str], ...]] = {
    "message": (
        ("To", "to", "=="),
        ("From", "from", "=="),
        ("DateSent", "date_sent", "day=="),
        ("DateSent<", "date_sent", "day<="),
        ("DateSent>", "date_sent", "day>="),
    ),
    "call": (
        ("To", "to", "=="),
        ("From", "from", "=="),
        ("Status", "status", "=="),
        ("StartTime", "start_time", "day=="),
        ("StartTime<", "start_time", "day<="),
        ("StartTime>", "start_time", "day>="),
    ),
    "recording": (("CallSid", "call_sid", "=="),),
}


def rfc2822(moment: datetime) -> str:
    """``moment`` as Twilio writes its dates (RFC 2822, GMT): ``Fri, 24 May 2019 17:18:27 +0000``.

    New in 0.2.0.
    """
    return format_datetime(moment.astimezone(UTC))


def new_sid(prefix: str) -> str:
    """A new 34-character SID with Twilio's two-letter ``prefix``.

    New in 0.2.0.
    """
    return prefix + uuid.uuid4().hex


def filter_day(value: str) -> date | None:
    """The day of a date filter (``YYYY-MM-DD``, or a date-time whose day counts); None if not one.

    New in 0.2.0.
    """
    try:
        return date.fromisoformat(value.strip()[:10])
    except ValueError:
        return None


class TwilioStore:
    """The resources Twilio holds, by SID, in the order they were made (not thread-safe).

    New in 0.2.0.
    """

    def __init__(self) -> None:
        self._items: dict[str, dict[str, Any]] = {}

    def __repr__(self) -> str:
        return f"<TwilioStore resources={len(self._items)}>"

    def keep(self, resource: Mapping[str, Any]) -> None:
        """Keep a copy of ``resource`` under its ``sid``."""
        self._items[str(resource["sid"])] = copy.deepcopy(dict(resource))

    def get(self, sid: str) -> dict[str, Any] | None:
        """A copy of the resource ``sid``, or None."""
        found = self._items.get(sid)
        return None if found is None else copy.deepcopy(found)

    def of_kind(self, kind: ResourceKind | None) -> list[dict[str, Any]]:
        """Copies of every resource of ``kind`` (None: all), oldest first."""
        return [
            copy.deepcopy(resource)
            for sid, resource in self._items.items()
            if kind is None or _KINDS.get(sid[:2]) == kind
        ]

    def listed(
        self, kind: ResourceKind, account: str, params: Mapping[str, Any]
    ) -> list[dict[str, Any]]:
        """The account's resources of ``kind`` matching Twilio's list filters, newest first.

        Raises:
            InvalidArgument: a date filter that is not a date.
        """
        tests = []
        for name, field, how in _FILTERS[kind]:
            value = params.get(name)
            if not isinstance(value, str) or not value:
                continue
            day = filter_day(value) if how.startswith("day") else None
            if how.startswith("day") and day is None:
                raise InvalidArgument(f"Invalid {name}: {value}")
            tests.append((field, how, value, day))
        return [
            copy.deepcopy(resource)
            for sid, resource in reversed(self._items.items())
            if _KINDS.get(sid[:2]) == kind
            and resource.get("account_sid") == account
            and all(_passes(resource.get(f), how, value, day) for f, how, value, day in tests)
        ]

    def forget(self, sid: str) -> None:
        """Drop the resource ``sid``.

        Raises:
            InvalidArgument: no resource has that SID.
        """
        if self._items.pop(sid, None) is None:
            raise InvalidArgument(f"FakeTwilio holds no resource {sid!r}")

    def clear(self) -> None:
        """Drop every resource."""
        self._items.clear()

    def set_status(self, sid: str, status: str, now: datetime, changes: Mapping[str, Any]) -> None:
        """Move the message or call ``sid`` to ``status``, with ``changes`` (a None: kept as is).

        A call reaching a final status gets its ``end_time``.

        Raises:
            InvalidArgument: no message or call has that SID, an empty status,
                a field its kind does not have, or a price that is not a decimal.
        """
        resource = self._items.get(sid)
        kind = _KINDS.get(sid[:2])
        if resource is None or kind not in {"message", "call"}:
            raise InvalidArgument(f"FakeTwilio holds no message or call {sid!r}")
        if not isinstance(status, str) or not status:
            raise InvalidArgument("status must be a non-empty string")
        allowed = _MESSAGE_CHANGES if kind == "message" else _CALL_CHANGES
        given = {name: value for name, value in changes.items() if value is not None}
        wrong = sorted(set(given) - allowed)
        if wrong:
            raise InvalidArgument(f"a {kind} has no field {', '.join(wrong)}")
        price = given.get("price")
        if price is not None:
            try:
                Decimal(str(price))
            except InvalidOperation:
                raise InvalidArgument(f"price must be a decimal string, got {price!r}") from None
        for name, value in given.items():
            resource[name] = value if name in {"error_code", "error_message"} else str(value)
        resource["status"] = status
        resource["date_updated"] = rfc2822(now)
        if kind == "call" and status in _FINAL_CALL and resource.get("end_time") is None:
            resource["end_time"] = rfc2822(now)

    def add_recording(self, call_sid: str, duration: int, now: datetime) -> str:
        """Keep a completed recording of the call ``call_sid``; its new ``RE`` SID.

        Raises:
            InvalidArgument: no call has that SID, or ``duration`` is below 0.
        """
        call = self._items.get(call_sid)
        if call is None or _KINDS.get(call_sid[:2]) != "call":
            raise InvalidArgument(f"FakeTwilio holds no call {call_sid!r}")
        if not isinstance(duration, int) or isinstance(duration, bool) or duration < 0:
            raise InvalidArgument(f"duration must be a whole number of seconds >= 0: {duration!r}")
        account = str(call["account_sid"])
        sid = new_sid("RE")
        stamp = rfc2822(now)
        self._items[sid] = {
            "account_sid": account,
            "api_version": "2010-04-01",
            "call_sid": call_sid,
            "channels": 1,
            "conference_sid": None,
            "date_created": stamp,
            "date_updated": stamp,
            "duration": str(duration),
            "encryption_details": None,
            "error_code": None,
            "media_url": f"https://api.twilio.com{API}/{account}/Recordings/{sid}",
            "price": None,
            "price_unit": "USD",
            "sid": sid,
            "source": "OutboundAPI",
            "start_time": call.get("start_time") or stamp,
            "status": "completed",
            "subresource_uris": {
                "add_on_results": f"{API}/{account}/Recordings/{sid}/AddOnResults.json",
                "transcriptions": f"{API}/{account}/Recordings/{sid}/Transcriptions.json",
            },
            "uri": f"{API}/{account}/Recordings/{sid}.json",
        }
        return sid


_MESSAGE_CHANGES = frozenset({"price", "price_unit", "num_segments", "error_code", "error_message"})
_CALL_CHANGES = frozenset({"price", "price_unit", "duration"})


def _passes(field: object, how: str, wanted: str, day: date | None) -> bool:
    if how == "==":
        return field == wanted
    if not isinstance(field, str) or day is None:
        return False
    when = parsedate_to_datetime(field).astimezone(UTC).date()
    if how == "day==":
        return when == day
    return when <= day if how == "day<=" else when >= day


def message_resource(
    account: str, form: Mapping[str, str | list[str]], now: datetime
) -> dict[str, Any]:
    """The message Twilio keeps for a create's ``form`` (checked before), sent at ``now``.

    New in 0.2.0.
    """
    sid = new_sid("SM")
    stamp = rfc2822(now)
    body, sender, service = form.get("Body"), form.get("From"), form.get("MessagingServiceSid")
    media = form.get("MediaUrl")
    return {
        "account_sid": account,
        "api_version": "2010-04-01",
        "body": body if isinstance(body, str) else "",
        "date_created": stamp,
        "date_sent": stamp,
        "date_updated": stamp,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": sender if isinstance(sender, str) else None,
        "messaging_service_sid": service if isinstance(service, str) else None,
        "num_media": str(1 if isinstance(media, str) else len(media or [])),
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": "accepted" if service else "queued",
        "subresource_uris": {"media": f"{API}/{account}/Messages/{sid}/Media.json"},
        "to": form.get("To"),
        "uri": f"{API}/{account}/Messages/{sid}.json",
    }


def call_resource(
    account: str, form: Mapping[str, str | list[str]], now: datetime
) -> dict[str, Any]:
    """The call Twilio keeps for a create's ``form`` (checked before), started at ``now``.

    New in 0.2.0.
    """
    sid = new_sid("CA")
    stamp = rfc2822(now)
    to, sender = form.get("To"), form.get("From")
    return {
        "account_sid": account,
        "annotation": None,
        "answered_by": None,
        "api_version": "2010-04-01",
        "caller_name": None,
        "date_created": stamp,
        "date_updated": stamp,
        "direction": "outbound-api",
        "duration": None,
        "end_time": None,
        "forwarded_from": None,
        "from": sender,
        "from_formatted": sender,
        "group_sid": None,
        "parent_call_sid": None,
        "phone_number_sid": new_sid("PN"),
        "price": None,
        "price_unit": "USD",
        "queue_time": "0",
        "sid": sid,
        "start_time": stamp,
        "status": "queued",
        "subresource_uris": {"recordings": f"{API}/{account}/Calls/{sid}/Recordings.json"},
        "to": to,
        "to_formatted": to,
        "trunk_sid": None,
        "uri": f"{API}/{account}/Calls/{sid}.json",
    }
