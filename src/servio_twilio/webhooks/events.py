"""Twilio's webhook callbacks as typed events.

Each event is parsed from the form fields Twilio posts (``params``: a field's
value is a string, or a list of strings when the field repeats) and keeps them
as received in ``raw``. ``cid`` is the record id the client put on the
callback URL (the ``cid`` query parameter), when present.

Parsing checks only what the library relies on: the SIDs and status a route
needs are present and well formed. Anything missing or malformed raises
`MalformedCallback` (the webhook apps answer it with 400). Unknown statuses
are kept as given: the status rules rank them like ``unknown``.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Final, TypeAlias

import attrs

from servio_twilio.domain.errors import MalformedCallback
from servio_twilio.domain.models import Channel, to_json_dict
from servio_twilio.domain.phone_text import has_channel_prefix, strip_channel_prefix

__all__ = [
    "AsyncInboundHook",
    "AsyncProspectResolver",
    "CallStatusEvent",
    "EventHook",
    "InboundHook",
    "InboundMessageEvent",
    "MessageStatusEvent",
    "Params",
    "ProspectResolver",
    "RecordingStatusEvent",
    "WebhookEvent",
    "call_status_fields",
    "copy_params",
    "inbound_message_fields",
    "message_status_fields",
    "recording_status_fields",
]

Params = Mapping[str, str | Sequence[str]]
"""Form fields as received: a string, or a list of strings for a repeated field."""

_STATUS: Final = re.compile(r"[A-Za-z0-9_-]{1,40}")
_MAX_MEDIA: Final = 100


def _value(params: Params, key: str) -> str | None:
    """The field's value (its first, when repeated), or None when absent."""
    value = params.get(key)
    if value is None or isinstance(value, str):
        return value
    return value[0] if len(value) else None


def _text(params: Params, key: str) -> str | None:
    """The field's value (its first, when repeated) stripped, or None when absent or blank."""
    value = params.get(key)
    if type(value) is str:
        return value.strip() or None
    if value is None:
        return None
    if not isinstance(value, str):
        if not len(value):
            return None
        value = value[0]
    return value.strip() or None


def _is_sid(value: str) -> bool:
    """True for 2 to 64 ASCII letters and digits (what a Twilio SID is made of)."""
    return 2 <= len(value) <= 64 and value.isascii() and value.isalnum()


def _checked(
    params: Params, keys: tuple[str, ...], valid: Callable[[str], object], problems: list[str]
) -> str:
    """A required field (the first of ``keys`` present and not blank), or a problem noted.

    ``valid`` tells a well-formed value (a truthy answer).
    """
    for key in keys:
        value = _text(params, key)
        if value is not None:
            if valid(value):
                return value
            problems.append(f"{keys[0]} is malformed")
            return ""
    problems.append(f"{keys[0]} is missing")
    return ""


def _optional_sid(params: Params, key: str, problems: list[str]) -> str | None:
    value = _text(params, key)
    if value is not None and not _is_sid(value):
        problems.append(f"{key} is malformed")
        return None
    return value


def _int(params: Params, key: str) -> int | None:
    """A non-negative integer field; None when absent or not a plain integer."""
    value = _text(params, key)
    if value is not None and len(value) <= 9 and value.isascii() and value.isdigit():
        return int(value)
    return None


def _number(value: str | None) -> str | None:
    """A phone number (or sender id) field's text without its ``whatsapp:`` prefix."""
    return None if value is None else strip_channel_prefix(value)


def _channel(to: str | None, from_: str | None) -> Channel:
    """WhatsApp when the ``To`` or ``From`` text has the ``whatsapp:`` prefix, else SMS."""
    for value in (to, from_):
        if value is not None and has_channel_prefix(value):
            return Channel.WHATSAPP
    return Channel.SMS


def copy_params(params: Params) -> dict[str, str | list[str]]:
    """A copy of ``params`` as an event's ``raw`` holds it (a repeated field's values as a list)."""
    return {k: v if isinstance(v, str) else list(v) for k, v in params.items()}


def _fail(kind: str, problems: list[str]) -> MalformedCallback:
    fields = tuple(problem.split(" ", 1)[0] for problem in problems)
    return MalformedCallback(f"{kind} callback: " + "; ".join(problems), fields=fields)


@attrs.frozen(kw_only=True)
class MessageStatusEvent:
    """An SMS or WhatsApp status callback (``/message-status``).

    ``status`` is ``MessageStatus`` (or the legacy ``SmsStatus``); ``to`` and
    ``from_`` lose their ``whatsapp:`` prefix (``channel`` says which it was);
    ``error_code`` is ``ErrorCode`` as an int.

    New in 0.1.0.
    """

    message_sid: str
    status: str
    channel: Channel
    to: str | None = None
    from_: str | None = None
    account_sid: str | None = None
    messaging_service_sid: str | None = None
    error_code: int | None = None
    error_message: str | None = None
    cid: str | None = None
    raw: dict[str, str | list[str]] = attrs.field(factory=dict)

    @classmethod
    def from_params(cls, params: Params, *, cid: str | None = None) -> MessageStatusEvent:
        """Parse Twilio's form fields; raise `MalformedCallback` when a needed one is wrong."""
        return cls(**message_status_fields(params), cid=cid, raw=copy_params(params))

    @property
    def sid(self) -> str:
        """The SID of the record this callback updates (the message's)."""
        return self.message_sid

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (``from`` for ``from_``)."""
        return to_json_dict(self)


@attrs.frozen(kw_only=True)
class CallStatusEvent:
    """A voice call status callback (``/call-status``).

    ``status`` is ``CallStatus``; ``duration`` is ``CallDuration`` in seconds
    (sent with ``completed``); ``direction`` is Twilio's (``outbound-api``,
    ``inbound``, ...); ``sequence_number`` orders a call's callbacks.

    New in 0.1.0.
    """

    call_sid: str
    status: str
    to: str | None = None
    from_: str | None = None
    account_sid: str | None = None
    direction: str | None = None
    duration: int | None = None
    sequence_number: int | None = None
    error_code: int | None = None
    error_message: str | None = None
    cid: str | None = None
    raw: dict[str, str | list[str]] = attrs.field(factory=dict)

    @classmethod
    def from_params(cls, params: Params, *, cid: str | None = None) -> CallStatusEvent:
        """Parse Twilio's form fields; raise `MalformedCallback` when a needed one is wrong."""
        return cls(**call_status_fields(params), cid=cid, raw=copy_params(params))

    @property
    def sid(self) -> str:
        """The SID of the record this callback updates (the call's)."""
        return self.call_sid

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (``from`` for ``from_``)."""
        return to_json_dict(self)


@attrs.frozen(kw_only=True)
class RecordingStatusEvent:
    """A call recording status callback (``/recording-status``).

    ``status`` is ``RecordingStatus`` (``completed`` when Twilio omits it, as
    older callbacks do; also ``absent`` or ``failed``); ``duration`` is
    ``RecordingDuration`` in seconds. The record it updates is the call's
    (``call_sid``).

    New in 0.1.0.
    """

    recording_sid: str
    call_sid: str
    status: str = "completed"
    recording_url: str | None = None
    duration: int | None = None
    account_sid: str | None = None
    cid: str | None = None
    raw: dict[str, str | list[str]] = attrs.field(factory=dict)

    @classmethod
    def from_params(cls, params: Params, *, cid: str | None = None) -> RecordingStatusEvent:
        """Parse Twilio's form fields; raise `MalformedCallback` when a needed one is wrong."""
        return cls(**recording_status_fields(params), cid=cid, raw=copy_params(params))

    @property
    def sid(self) -> str:
        """The SID of the record this callback updates (the call's)."""
        return self.call_sid

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return to_json_dict(self)


@attrs.frozen(kw_only=True)
class InboundMessageEvent:
    """An incoming SMS or WhatsApp message (``/inbound``).

    ``from_`` and ``to`` lose their ``whatsapp:`` prefix (``channel`` says
    which it was); ``media_urls`` and ``media_content_types`` hold
    ``MediaUrl0``... and ``MediaContentType0``... up to ``NumMedia``;
    ``profile_name`` is WhatsApp's ``ProfileName``.

    New in 0.1.0.
    """

    message_sid: str
    from_: str
    to: str
    channel: Channel
    body: str = ""
    media_urls: tuple[str, ...] = ()
    media_content_types: tuple[str, ...] = ()
    account_sid: str | None = None
    messaging_service_sid: str | None = None
    profile_name: str | None = None
    cid: str | None = None
    raw: dict[str, str | list[str]] = attrs.field(factory=dict)

    @classmethod
    def from_params(cls, params: Params, *, cid: str | None = None) -> InboundMessageEvent:
        """Parse Twilio's form fields; raise `MalformedCallback` when a needed one is wrong."""
        return cls(**inbound_message_fields(params), cid=cid, raw=copy_params(params))

    @property
    def sid(self) -> str:
        """The message's SID."""
        return self.message_sid

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (``from`` for ``from_``)."""
        return to_json_dict(self)


WebhookEvent = MessageStatusEvent | CallStatusEvent | RecordingStatusEvent | InboundMessageEvent
"""Any event the webhook apps pass to ``on_event``."""

EventHook: TypeAlias = Callable[[WebhookEvent], object]
"""``on_event(event)``, after each callback is stored; what it returns is ignored."""
InboundHook: TypeAlias = Callable[[InboundMessageEvent], str | None]
"""``on_inbound(event)``: the TwiML to answer an incoming message with, or None."""
ProspectResolver: TypeAlias = Callable[[str], str | None]
"""``prospect_resolver(from_number)``: the prospect id an incoming message belongs to, or None."""
AsyncInboundHook: TypeAlias = Callable[[InboundMessageEvent], str | Awaitable[str | None] | None]
"""`InboundHook`, or a coroutine function answering the same (ASGI only)."""
AsyncProspectResolver: TypeAlias = Callable[[str], str | Awaitable[str | None] | None]
"""`ProspectResolver`, or a coroutine function answering the same (ASGI only)."""


# Each event's typed fields (the keyword arguments of its class, but ``cid`` and
# ``raw``), parsed from Twilio's form fields: the one place each route's fields
# are checked. The webhook core applies them as they are and builds the event
# only for a hook.


def message_status_fields(params: Params) -> dict[str, Any]:
    """`MessageStatusEvent`'s fields from ``params``; `MalformedCallback` when one is wrong."""
    problems: list[str] = []
    sid = _checked(params, ("MessageSid", "SmsSid"), _is_sid, problems)
    status = _checked(params, ("MessageStatus", "SmsStatus"), _STATUS.fullmatch, problems)
    account_sid = _optional_sid(params, "AccountSid", problems)
    if problems:
        raise _fail("message status", problems)
    to, from_ = _text(params, "To"), _text(params, "From")
    return {
        "message_sid": sid,
        "status": status.lower(),
        "channel": _channel(to, from_),
        "to": _number(to),
        "from_": _number(from_),
        "account_sid": account_sid,
        "messaging_service_sid": _text(params, "MessagingServiceSid"),
        "error_code": _int(params, "ErrorCode"),
        "error_message": _text(params, "ErrorMessage"),
    }


def call_status_fields(params: Params) -> dict[str, Any]:
    """`CallStatusEvent`'s fields from ``params``; `MalformedCallback` when one is wrong."""
    problems: list[str] = []
    sid = _checked(params, ("CallSid",), _is_sid, problems)
    status = _checked(params, ("CallStatus",), _STATUS.fullmatch, problems)
    account_sid = _optional_sid(params, "AccountSid", problems)
    if problems:
        raise _fail("call status", problems)
    return {
        "call_sid": sid,
        "status": status.lower(),
        "to": _number(_text(params, "To")),
        "from_": _number(_text(params, "From")),
        "account_sid": account_sid,
        "direction": _text(params, "Direction"),
        "duration": _int(params, "CallDuration"),
        "sequence_number": _int(params, "SequenceNumber"),
        "error_code": _int(params, "ErrorCode"),
        "error_message": _text(params, "ErrorMessage"),
    }


def recording_status_fields(params: Params) -> dict[str, Any]:
    """`RecordingStatusEvent`'s fields from ``params``; `MalformedCallback` when one is wrong."""
    problems: list[str] = []
    recording_sid = _checked(params, ("RecordingSid",), _is_sid, problems)
    call_sid = _checked(params, ("CallSid",), _is_sid, problems)
    status = _text(params, "RecordingStatus") or "completed"
    if not _STATUS.fullmatch(status):
        problems.append("RecordingStatus is malformed")
    account_sid = _optional_sid(params, "AccountSid", problems)
    if problems:
        raise _fail("recording status", problems)
    return {
        "recording_sid": recording_sid,
        "call_sid": call_sid,
        "status": status.lower(),
        "recording_url": _text(params, "RecordingUrl"),
        "duration": _int(params, "RecordingDuration"),
        "account_sid": account_sid,
    }


def inbound_message_fields(params: Params) -> dict[str, Any]:
    """`InboundMessageEvent`'s fields from ``params``; `MalformedCallback` when one is wrong."""
    problems: list[str] = []
    sid = _checked(params, ("MessageSid", "SmsMessageSid", "SmsSid"), _is_sid, problems)
    to_text, from_text = _text(params, "To"), _text(params, "From")
    from_ = _number(from_text)
    to = _number(to_text)
    if not from_:
        problems.append("From is missing")
    if not to:
        problems.append("To is missing")
    account_sid = _optional_sid(params, "AccountSid", problems)
    num_media = _text(params, "NumMedia")
    count = 0
    if num_media is not None:
        if num_media.isascii() and num_media.isdigit() and int(num_media) <= _MAX_MEDIA:
            count = int(num_media)
        else:
            problems.append("NumMedia is malformed")
    if problems:
        raise _fail("inbound message", problems)
    urls: list[str] = []
    types: list[str] = []
    for index in range(count):
        url = _text(params, f"MediaUrl{index}")
        if url is not None:
            urls.append(url)
            types.append(_text(params, f"MediaContentType{index}") or "")
    return {
        "message_sid": sid,
        "from_": from_ or "",
        "to": to or "",
        "channel": _channel(to_text, from_text),
        "body": _value(params, "Body") or "",
        "media_urls": tuple(urls),
        "media_content_types": tuple(types),
        "account_sid": account_sid,
        "messaging_service_sid": _text(params, "MessagingServiceSid"),
        "profile_name": _text(params, "ProfileName"),
    }
