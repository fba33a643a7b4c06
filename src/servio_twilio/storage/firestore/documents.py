"""Firestore documents of communications: the one place that knows the stored field names.

Documents keep the earlier Node.js service's field names (``prospectId``,
``type``, ``twilioSid``, ...). `to_document` writes them; `from_document`
reads them back, including documents the earlier service wrote. Pure: this
module imports nothing of ``google.cloud``.

``open`` is derived, not read: `to_document` writes
`servio_twilio.domain.status.is_open` of the record on every write, so the
query of open records is ``open == true``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import Any, Final

from servio_twilio.domain.errors import RepositoryError
from servio_twilio.domain.models import Channel, Communication, Direction
from servio_twilio.domain.phone_text import has_channel_prefix, strip_channel_prefix
from servio_twilio.domain.status import UNKNOWN, is_open, status_rank

__all__ = [
    "COUNTED_FIELDS",
    "STORED_FIELDS",
    "count_key",
    "from_document",
    "stored_integer",
    "to_document",
]

_EPOCH: Final = datetime(1970, 1, 1, tzinfo=UTC)


def to_document(communication: Communication) -> dict[str, Any]:
    """The Firestore document of ``communication`` (its ``id`` is the document id).

    ``prospectId``, ``type``, ``direction``, ``to``, ``from``, ``status``,
    ``statusRank``, ``open``, ``mediaUrls`` and the three timestamps are
    always written (``prospectId`` may be null); every other field only when
    it has a value, so ``twilioSid`` is absent while the record is pending and
    ``recordingRequested`` and ``reconciled`` are written only when true. ``mediaUrl`` is
    ``media_url``, or the first of ``media_urls`` when that is unset.
    ``open`` is `servio_twilio.domain.status.is_open` of the record (derived:
    `from_document` ignores it); ``price`` is kept as the string given.

    New in 0.1.0. Changed in 0.2.0: ``open``, ``recordingRequested``,
    ``price``, ``priceUnit``, ``numSegments``, ``reconciled``.
    """
    c = communication
    media_url = c.media_url if c.media_url is not None else next(iter(c.media_urls), None)
    document: dict[str, Any] = {
        "prospectId": c.prospect_id,
        "type": c.channel.value,
        "direction": c.direction.value,
        "to": c.to,
        "from": c.from_,
        "status": c.status,
        "statusRank": status_rank(c.channel, c.status),
        "open": is_open(c),
        "mediaUrls": list(c.media_urls),
        "timestamp": c.timestamp,
        "createdAt": c.created_at,
        "updatedAt": c.updated_at,
    }
    optional = {
        "body": c.body,
        "mediaUrl": media_url,
        "twilioSid": c.twilio_sid,
        "duration": c.duration,
        "recordingDuration": c.recording_duration,
        "recordingUrl": c.recording_url,
        "recordingSid": c.recording_sid,
        "error": c.error,
        "errorCode": c.error_code,
        "recordingRequested": True if c.recording_requested else None,
        "price": c.price,
        "priceUnit": c.price_unit,
        "numSegments": c.num_segments,
        "reconciled": True if c.reconciled else None,
    }
    document.update({key: value for key, value in optional.items() if value is not None})
    return document


STORED_FIELDS: Final = frozenset(
    {
        *("prospectId", "type", "direction", "to", "from", "body", "mediaUrl", "mediaUrls"),
        *("twilioSid", "status", "statusRank", "duration", "recordingDuration"),
        *("recordingUrl", "recordingSid", "error", "errorCode"),
        *("timestamp", "createdAt", "updatedAt"),
        *("open", "recordingRequested", "price", "priceUnit", "numSegments", "reconciled"),
    }
)
"""The fields `to_document` owns; a repository keeps any other field a document has."""


def from_document(
    document_id: str, data: Mapping[str, Any], *, fallback_time: datetime | None = None
) -> Communication:
    """The `Communication` stored as ``data`` under ``document_id``.

    Tolerates documents written by the earlier Node.js service: a missing
    ``direction`` reads as outbound, a missing ``type`` as WhatsApp when a
    number has a ``whatsapp:`` prefix (else SMS), ``whatsapp:`` prefixes are
    stripped, a missing ``status`` reads as ``unknown``, a missing
    ``mediaUrls`` as ``[mediaUrl]``, numeric strings as integers, ISO 8601
    strings or JavaScript milliseconds as times. Missing ``createdAt`` and
    ``updatedAt`` take ``timestamp``; a missing ``timestamp`` takes
    ``createdAt``, else ``updatedAt``, else ``fallback_time`` (the document's
    create time), else the Unix epoch. A missing ``recordingRequested`` or
    ``reconciled`` reads as false, missing ``price``, ``priceUnit`` and ``numSegments`` as None;
    ``open`` is not read (it is derived from the rest). A document that still
    cannot be read raises `RepositoryError` naming it.

    New in 0.1.0. Changed in 0.2.0: ``recordingRequested``, ``price``,
    ``priceUnit``, ``numSegments``, ``reconciled``.
    """
    try:
        raw_to = _text(data.get("to")) or ""
        raw_from = _text(data.get("from")) or ""
        channel = _channel(data.get("type"), raw_to, raw_from)
        direction = data.get("direction") or Direction.OUTBOUND
        media_urls = _media_urls(data.get("mediaUrls"), data.get("mediaUrl"))
        media_url = _text(data.get("mediaUrl")) or next(iter(media_urls), None)
        stamp = _time(data.get("timestamp"))
        created = _time(data.get("createdAt"))
        updated = _time(data.get("updatedAt"))
        timestamp = stamp or created or updated or _plain_utc(fallback_time) or _EPOCH
        return Communication(
            id=document_id,
            prospect_id=_text(data.get("prospectId")),
            channel=channel,
            direction=direction,
            to=strip_channel_prefix(raw_to),
            from_=strip_channel_prefix(raw_from),
            body=_text(data.get("body")),
            media_url=media_url,
            media_urls=media_urls,
            twilio_sid=_text(data.get("twilioSid")),
            status=_text(data.get("status")) or UNKNOWN,
            duration=stored_integer(data.get("duration")),
            recording_url=_text(data.get("recordingUrl")),
            recording_sid=_text(data.get("recordingSid")),
            recording_duration=stored_integer(data.get("recordingDuration")),
            error=_text(data.get("error")),
            error_code=stored_integer(data.get("errorCode")),
            timestamp=timestamp,
            created_at=created or timestamp,
            updated_at=updated or created or timestamp,
            recording_requested=data.get("recordingRequested") is True,
            price=_text(data.get("price")),
            price_unit=_text(data.get("priceUnit")),
            num_segments=stored_integer(data.get("numSegments")),
            reconciled=data.get("reconciled") is True,
        )
    except (TypeError, ValueError) as exc:
        raise RepositoryError(
            f"document {document_id!r} cannot be read as a communication: {exc}"
        ) from exc


COUNTED_FIELDS: Final = ("type", "status", "timestamp")
"""The fields `count_key` reads: the projection of the query that counts records by day."""


def count_key(document_id: str, data: Mapping[str, Any]) -> tuple[date, Channel, str] | None:
    """The (UTC day of ``timestamp``, channel, status) a document counts under, as
    `from_document` would read them from its `COUNTED_FIELDS`; None without a timestamp.

    A missing ``type`` counts as SMS (the numbers that could say WhatsApp are
    not read), a missing ``status`` as ``unknown``. An unknown ``type`` raises
    `RepositoryError` naming the document.

    New in 0.2.0.
    """
    try:
        stamp = _time(data.get("timestamp"))
        if stamp is None:
            return None
        channel = _channel(data.get("type"), "", "")
    except (TypeError, ValueError) as exc:
        raise RepositoryError(
            f"document {document_id!r} cannot be read as a communication: {exc}"
        ) from exc
    return stamp.date(), channel, _text(data.get("status")) or UNKNOWN


def _channel(value: object, raw_to: str, raw_from: str) -> Channel:
    if value is None or value == "":
        prefixed = has_channel_prefix(raw_to) or has_channel_prefix(raw_from)
        return Channel.WHATSAPP if prefixed else Channel.SMS
    return Channel(str(value))


def _text(value: object) -> str | None:
    if value is None:
        return None
    return value if isinstance(value, str) else str(value)


def stored_integer(value: object) -> int | None:
    """A stored number as an int (numeric strings and whole floats too), or None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return int(value.strip())
    return None


def _media_urls(urls: object, first: object) -> tuple[str, ...]:
    if isinstance(urls, list | tuple):
        return tuple(str(url) for url in urls if url)
    if isinstance(first, str) and first:
        return (first,)
    return ()


def _plain_utc(value: datetime | None) -> datetime | None:
    """A plain aware-UTC `datetime` (Firestore gives a subclass with nanoseconds)."""
    if value is None:
        return None
    if value.tzinfo is None or value.utcoffset() is None:
        value = value.replace(tzinfo=UTC)
    v = value.astimezone(UTC)
    return datetime(v.year, v.month, v.day, v.hour, v.minute, v.second, v.microsecond, tzinfo=UTC)


def _time(value: object) -> datetime | None:
    if isinstance(value, datetime):
        return _plain_utc(value)
    if isinstance(value, str) and value.strip():
        return _plain_utc(datetime.fromisoformat(value.strip()))
    if isinstance(value, int | float) and not isinstance(value, bool):
        return _plain_utc(datetime.fromtimestamp(value / 1000, UTC))
    return None
