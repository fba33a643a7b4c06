"""Consent: who opted out of which channel, and what an inbound message asks for.

`Consent` is what a consent store keeps for one number on one channel, with
its `ConsentChange` history. `consent_action` reads an inbound message the way
Twilio's default opt-out handling does: the body alone is a keyword (any case,
surrounding blanks ignored), unless Twilio's ``OptOutType`` parameter says
what it matched (a Messaging Service's own keywords, ``Pare`` in Portuguese),
which then decides. Pure: no I/O, nothing of ``phonenumbers``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from datetime import datetime
from typing import Any, Final

import attrs

from servio_twilio.domain.errors import InvalidArgument, InvalidPhoneNumber
from servio_twilio.domain.models import (
    Channel,
    parse_channel,
    pydantic_output_schema,
    to_json_dict,
)
from servio_twilio.domain.phone import E164_PATTERN
from servio_twilio.domain.phone_text import MAX_NUMBER_CHARS, strip_channel_prefix

__all__ = [
    "HELP_KEYWORDS",
    "MAX_CONSENT_HISTORY",
    "MAX_SOURCE_CHARS",
    "OPTED_OUT_ERROR_CODE",
    "OPT_IN_KEYWORDS",
    "OPT_OUT_KEYWORDS",
    "Consent",
    "ConsentAction",
    "ConsentChange",
    "check_source",
    "consent_action",
    "consent_number",
    "inbound_source",
]

OPT_OUT_KEYWORDS: Final = frozenset(
    {"STOP", "STOPALL", "UNSUBSCRIBE", "CANCEL", "END", "QUIT", "REVOKE", "OPTOUT"}
)
"""Twilio's default opt-out keywords: a body that is one of them opts its sender out."""
OPT_IN_KEYWORDS: Final = frozenset({"START", "YES", "UNSTOP"})
"""Twilio's default opt-in keywords: a body that is one of them opts its sender back in."""
HELP_KEYWORDS: Final = frozenset({"HELP", "INFO"})
"""Twilio's default help keywords: they change nothing."""
OPTED_OUT_ERROR_CODE: Final = 21610
"""Twilio's error for a send to a number that opted out (it replied STOP to this sender)."""
MAX_CONSENT_HISTORY: Final = 100
"""The most changes `Consent.history` holds (the most recent ones)."""
MAX_SOURCE_CHARS: Final = 200
"""The longest ``source`` a consent store accepts."""


class ConsentAction(enum.StrEnum):
    """What an inbound message asks for (`consent_action`); no change is None.

    New in 0.2.0.
    """

    OPT_OUT = "opt_out"
    OPT_IN = "opt_in"


_OPT_OUT_TYPES: Final = {"STOP": ConsentAction.OPT_OUT, "START": ConsentAction.OPT_IN, "HELP": None}


def consent_action(body: str | None, opt_out_type: str | None = None) -> ConsentAction | None:
    """What an inbound message asks for: opt out, opt in, or nothing (None).

    ``opt_out_type`` is Twilio's ``OptOutType`` parameter: when it is
    ``STOP``, ``START`` or ``HELP`` (any case) it decides (``HELP``: no
    change), whatever the body says. Otherwise the body decides when it is,
    once surrounding blanks are stripped and in any case, exactly one of
    `OPT_OUT_KEYWORDS` or `OPT_IN_KEYWORDS`; anything else (``HELP``, a
    sentence that contains STOP) changes nothing.

    New in 0.2.0.
    """
    if isinstance(opt_out_type, str) and opt_out_type.strip().upper() in _OPT_OUT_TYPES:
        return _OPT_OUT_TYPES[opt_out_type.strip().upper()]
    if not isinstance(body, str):
        return None
    word = body.strip().upper()
    if word in OPT_OUT_KEYWORDS:
        return ConsentAction.OPT_OUT
    if word in OPT_IN_KEYWORDS:
        return ConsentAction.OPT_IN
    return None


def inbound_source(body: str | None, opt_out_type: str | None = None) -> str:
    """The ``source`` to store for a change an inbound message made.

    ``"inbound:OptOutType=STOP"`` when Twilio's parameter decided, else
    ``"inbound:STOP"`` (the keyword as matched).

    New in 0.2.0.
    """
    if isinstance(opt_out_type, str) and opt_out_type.strip().upper() in _OPT_OUT_TYPES:
        return f"inbound:OptOutType={opt_out_type.strip().upper()}"
    word = body.strip().upper() if isinstance(body, str) else ""
    return f"inbound:{word[:32]}"


def consent_number(number: object) -> str:
    """``number`` as a consent store keys it: E.164, without a ``whatsapp:`` prefix.

    Raises:
        InvalidPhoneNumber: (a ``ValueError``) anything that is not an E.164
            number once a ``whatsapp:`` prefix and surrounding blanks are gone.

    New in 0.2.0.
    """
    if not isinstance(number, str):
        raise InvalidPhoneNumber(number, f"expected a string, got {type(number).__name__}")
    if len(number) > MAX_NUMBER_CHARS:
        raise InvalidPhoneNumber(number, f"longer than {MAX_NUMBER_CHARS} characters")
    text = strip_channel_prefix(number)
    if not E164_PATTERN.fullmatch(text):
        raise InvalidPhoneNumber(number, "not an E.164 number (+ and 7 to 15 digits)")
    return text


def check_source(source: object) -> str:
    """``source`` when it is a non-empty str of at most `MAX_SOURCE_CHARS` characters.

    Raises:
        TypeError: not a str.
        InvalidArgument: (a ``ValueError``) empty, blank or too long.

    New in 0.2.0.
    """
    if not isinstance(source, str):
        raise TypeError(f"source must be a str, not {type(source).__name__}")
    if not source.strip() or len(source) > MAX_SOURCE_CHARS:
        raise InvalidArgument(f"source must be 1 to {MAX_SOURCE_CHARS} characters, not blank")
    return source


def _aware(value: datetime) -> datetime:
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgument("naive datetime: pass an aware one (UTC)")
    return value


def _channel(value: Channel | str) -> Channel:
    return parse_channel(value)


def _history(value: Iterable[ConsentChange]) -> tuple[ConsentChange, ...]:
    return tuple(value)


@attrs.frozen(kw_only=True)
class ConsentChange:
    """One opt-out or opt-in, as a consent store recorded it.

    ``source`` says what made it (``"inbound:STOP"``, ``"twilio:21610"``,
    ``"admin"``...); ``at`` when (aware).

    New in 0.2.0.
    """

    opted_out: bool
    source: str
    at: datetime = attrs.field(converter=_aware)

    __get_pydantic_core_schema__ = pydantic_output_schema

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (``at`` as an ISO 8601 string)."""
        return to_json_dict(self)


@attrs.frozen(kw_only=True)
class Consent:
    """What a consent store keeps for one number on one channel.

    ``opted_out`` and ``source`` come from the latest change, made at
    ``updated_at``; ``history`` holds the most recent changes (at most
    `MAX_CONSENT_HISTORY`), oldest first, the latest last. Every opt-out and
    opt-in a store is told of is a change, even one that repeats the state.
    Consent is per channel: an SMS opt-out leaves WhatsApp as it was.

    New in 0.2.0.
    """

    number: str
    channel: Channel = attrs.field(converter=_channel)
    opted_out: bool
    source: str
    updated_at: datetime = attrs.field(converter=_aware)
    history: tuple[ConsentChange, ...] = attrs.field(default=(), converter=_history)

    __get_pydantic_core_schema__ = pydantic_output_schema

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data: times as ISO 8601 strings, ``history`` as a list of dicts."""
        data = to_json_dict(self)
        data["history"] = [change.to_dict() for change in self.history]
        return data
