"""What the console's pages show, computed from records: event timelines, masking.

Pure helpers the core and the templates share. `timeline` reads kept
callbacks (any shape) for the record page; `Masking` decides how numbers and
error texts are shown. Costs are `servio_twilio.sending.costs`'.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Final

import attrs

from servio_twilio.domain.phone_text import mask_phone, mask_phone_numbers

__all__ = ["Masking", "TimelineItem", "format_time", "timeline"]

# Event params holding message text: shown as received, never masked (escaped like all text).
_BODY_PARAMS: Final = frozenset({"Body"})
_STATUS_PARAMS: Final = ("MessageStatus", "SmsStatus", "CallStatus", "RecordingStatus")
_TIME_KEYS: Final = ("receivedAt", "at", "timestamp")
_KIND_KEYS: Final = ("route", "source", "kind")


def format_time(moment: object) -> str:
    """``2024-05-01 14:03:07 UTC`` for an aware datetime (or its ISO text); else as text."""
    if moment is None:
        return ""
    if isinstance(moment, str):
        text = moment
        try:
            moment = datetime.fromisoformat(text)
        except ValueError:
            return text
    if isinstance(moment, datetime):
        if moment.tzinfo is not None:
            moment = moment.astimezone(UTC)
        return moment.strftime("%Y-%m-%d %H:%M:%S") + (" UTC" if moment.tzinfo else "")
    return str(moment)


@attrs.frozen
class Masking:
    """How numbers show on the pages: masked (``mask_phone``) unless ``enabled`` is False."""

    enabled: bool = True

    def number(self, value: object) -> str:
        """A phone number as the page shows it (empty for None)."""
        if value is None:
            return ""
        return mask_phone(value) if self.enabled else str(value)

    def text(self, value: object) -> str:
        """A text that may hold phone numbers (an error message), with them masked."""
        if value is None:
            return ""
        text = value if isinstance(value, str) else str(value)
        return mask_phone_numbers(text) if self.enabled else text


@attrs.frozen(kw_only=True)
class TimelineItem:
    """One kept callback as the record page lists it."""

    at: str
    kind: str
    status: str
    error_code: str
    params: tuple[tuple[str, str], ...]


def _shown(value: object) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(_shown(item) for item in value)
    return "" if value is None else str(value)


def _first(mapping: Mapping[str, Any], keys: Sequence[str]) -> str:
    for key in keys:
        value = mapping.get(key)
        if value not in (None, ""):
            return _shown(value)
    return ""


def timeline(events: Iterable[object], masking: Masking) -> list[TimelineItem]:
    """The record page's timeline of ``events`` (oldest first), whatever their shape.

    A webhook's event is ``{"route", "receivedAt", "params"}``; other writers
    may keep other keys. Numbers in the values are masked as ``masking``
    says; a message body is shown as received.
    """
    items = []
    for event in events:
        if not isinstance(event, Mapping):
            continue
        params = event.get("params")
        if not isinstance(params, Mapping):
            params = {
                key: value
                for key, value in event.items()
                if key not in _TIME_KEYS and key not in _KIND_KEYS
            }
        shown = tuple(
            (str(name), _shown(value) if name in _BODY_PARAMS else masking.text(_shown(value)))
            for name, value in sorted(params.items(), key=lambda item: str(item[0]))
        )
        items.append(
            TimelineItem(
                at=format_time(_first(event, _TIME_KEYS) or None),
                kind=_first(event, _KIND_KEYS) or "event",
                status=_first(params, _STATUS_PARAMS) or _shown(event.get("status")),
                error_code=_first(params, ("ErrorCode",)),
                params=shown,
            )
        )
    return items
