"""The console's path and query parameters, checked: each bad value a `BadParameter`.

Every value a page reads from its URL goes through here first; the pages
see only checked values. Ids are held to a conservative shape (letters,
digits and ``_.:@+=-``, at most 128 characters, not ``.`` or ``..``): a
record or prospect id outside it has no page (404). Query strings longer
than `MAX_QUERY_BYTES`, undecodable ones, a parameter given twice and
values that do not parse are a `BadParameter` (400). Parameters a page does
not read are ignored. Pure.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Final
from urllib.parse import parse_qsl

from servio_twilio.domain.models import Channel

__all__ = [
    "MAX_ID_CHARS",
    "MAX_QUERY_BYTES",
    "BadParameter",
    "parse_before",
    "parse_channel_filter",
    "parse_prospect_filter",
    "parse_query",
    "parse_status_filter",
    "valid_id",
]

MAX_QUERY_BYTES: Final = 4096
"""The longest query string the console reads; a longer one is a 400."""
MAX_ID_CHARS: Final = 128
"""The longest record or prospect id the console links to and looks up."""

_ID: Final = re.compile(rf"[A-Za-z0-9_.:@+=-]{{1,{MAX_ID_CHARS}}}")
_STATUS: Final = re.compile(r"[a-z][a-z_-]{0,31}")
_MAX_FIELDS: Final = 20
_MAX_BEFORE_CHARS: Final = 64
# "+00:00" typed into a URL arrives as " 00:00" (a "+" in a query is a space).
_SPACED_OFFSET: Final = re.compile(r" (\d{2}(?::?\d{2})?)$")


class BadParameter(ValueError):
    """A query parameter the console cannot use; the message says which and why (no value)."""


def valid_id(value: str) -> bool:
    """Whether ``value`` has the shape of an id the console looks up (see the module docs)."""
    return bool(_ID.fullmatch(value)) and value not in (".", "..")


def parse_query(query: str, names: frozenset[str]) -> dict[str, str]:
    """The parameters of ``query`` that a page reads (``names``), decoded, blanks stripped.

    Raises:
        BadParameter: the query is too long, undecodable or has too many
            fields, or one of ``names`` is given twice.
    """
    if len(query) > MAX_QUERY_BYTES:
        raise BadParameter(f"the query string is longer than {MAX_QUERY_BYTES} bytes")
    try:
        pairs = parse_qsl(
            query, keep_blank_values=True, max_num_fields=_MAX_FIELDS, errors="strict"
        )
    except (ValueError, UnicodeError):
        raise BadParameter(
            "the query string cannot be read (not UTF-8, or too many fields)"
        ) from None
    found: dict[str, str] = {}
    for name, value in pairs:
        if name not in names:
            continue
        if name in found:
            raise BadParameter(f"{name} is given more than once")
        found[name] = value.strip()
    return found


def parse_channel_filter(value: str | None) -> Channel | None:
    """The ``channel`` filter: empty for any, else ``sms``, ``whatsapp`` or ``call``."""
    if not value:
        return None
    try:
        return Channel(value)
    except ValueError:
        raise BadParameter("channel must be sms, whatsapp or call") from None


def parse_status_filter(value: str | None) -> str | None:
    """The ``status`` filter: empty for any, else one status name (``delivered``, ``no-answer``)."""
    if not value:
        return None
    if not _STATUS.fullmatch(value):
        raise BadParameter("status must be one status name, such as delivered or no-answer")
    return value


def parse_prospect_filter(value: str | None) -> str | None:
    """The ``prospect`` filter: empty for any, else a prospect id (see `valid_id`)."""
    if not value:
        return None
    if not valid_id(value):
        raise BadParameter(
            f"prospect must be a prospect id: up to {MAX_ID_CHARS} letters, digits and _.:@+=-"
        )
    return value


def parse_before(value: str | None) -> datetime | None:
    """The ``before`` of a page: an ISO 8601 date and time (UTC when it names no offset)."""
    if not value:
        return None
    if len(value) > _MAX_BEFORE_CHARS:
        raise BadParameter("before must be an ISO 8601 date and time")
    try:
        if "T" in value:
            value = _SPACED_OFFSET.sub(r"+\1", value)
        moment = datetime.fromisoformat(value)
        if moment.tzinfo is None:
            return moment.replace(tzinfo=UTC)
        return moment.astimezone(UTC)
    except (ValueError, OverflowError):
        raise BadParameter("before must be an ISO 8601 date and time") from None
