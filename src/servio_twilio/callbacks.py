"""Applying verified callbacks to the repository.

A status callback finds its record by SID, else by ``cid`` (ignored when that
record already has another SID), else creates one from its own fields with
the id ``sid-<SID>``, added with the callback already applied; a
`DuplicateRecord` on that add means a racing callback created it first, so this
one updates instead. A found record changes in one atomic ``repository.update``
through `servio_twilio.status.advance`; either way the callback is kept, as
received, with ``append_event``.

Every function here is synchronous and does only repository calls: the ASGI
app runs each one in a worker thread when the repository is ``blocking``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final

import attrs

from servio_twilio.errors import DuplicateRecord
from servio_twilio.events import (
    CallStatusEvent,
    InboundMessageEvent,
    MessageStatusEvent,
    RecordingStatusEvent,
)
from servio_twilio.models import Channel, Communication, Direction
from servio_twilio.repository import CommunicationRepository
from servio_twilio.status import RECEIVED, UNKNOWN, advance

__all__ = [
    "StatusEvent",
    "apply_status",
    "event_record",
    "sid_record_id",
    "store_inbound",
    "valid_cid",
]

StatusEvent = MessageStatusEvent | CallStatusEvent | RecordingStatusEvent

_CID: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,127}")


def sid_record_id(sid: str) -> str:
    """The id of a record created from a callback: ``sid-<SID>``."""
    return "sid-" + sid


def valid_cid(cid: str | None) -> str | None:
    """``cid`` when it can be a record id (letters, digits, ``_`` and ``-``), else None."""
    return cid if cid is not None and _CID.fullmatch(cid) else None


def event_record(route: str, params: dict[str, Any], received_at: datetime) -> dict[str, Any]:
    """The shape one callback is kept in: ``{"route", "receivedAt", "params"}``.

    ``params`` are the form fields as received (a string, or a list of strings
    for a repeated field).
    """
    return {"route": route, "receivedAt": received_at.isoformat(), "params": params}


def _channel(event: StatusEvent) -> Channel:
    if isinstance(event, MessageStatusEvent):
        return event.channel
    return Channel.CALL


def _new_record(event: StatusEvent, now: datetime) -> Communication:
    """A record made from the callback's own fields, for a SID nothing else knows."""
    to = from_ = ""
    if not isinstance(event, RecordingStatusEvent):
        to, from_ = event.to or "", event.from_ or ""
    return Communication(
        id=sid_record_id(event.sid),
        channel=_channel(event),
        direction=Direction.OUTBOUND,
        to=to,
        from_=from_,
        twilio_sid=event.sid,
        status=UNKNOWN,
        timestamp=now,
        created_at=now,
        updated_at=now,
    )


def _observe(event: StatusEvent, now: datetime) -> Callable[[Communication], Communication]:
    """The pure update ``fn`` one callback applies to its record."""
    if isinstance(event, RecordingStatusEvent):
        completed = event.status == "completed"
        observation: dict[str, Any] = {
            "recording_sid": event.recording_sid,
            "recording_url": event.recording_url if completed else None,
            "recording_duration": event.duration if completed else None,
        }
        to = from_ = None
    else:
        error = event.error_message
        if error is None and event.error_code is not None:
            error = f"Twilio error {event.error_code}"
        observation = {"status": event.status, "error": error, "error_code": event.error_code}
        if isinstance(event, CallStatusEvent):
            observation["duration"] = event.duration
        to, from_ = event.to, event.from_

    def apply(record: Communication) -> Communication:
        updated = advance(record, updated_at=now, twilio_sid=event.sid, **observation)
        # A record created from a recording callback learns its numbers later.
        fill: dict[str, Any] = {}
        if not updated.to and to:
            fill["to"] = to
        if not updated.from_ and from_:
            fill["from_"] = from_
        if fill:
            updated = attrs.evolve(updated, updated_at=now, **fill)
        return updated

    return apply


def _find(repository: CommunicationRepository, event: StatusEvent) -> str | None:
    """The id of the record a status callback belongs to, or None."""
    found = repository.find_by_sid(event.sid)
    if found is not None:
        return found.id
    cid = valid_cid(event.cid)
    if cid is not None:
        pending = repository.get(cid)
        if pending is not None and pending.twilio_sid in (None, event.sid):
            return pending.id
    return None


def apply_status(
    repository: CommunicationRepository,
    event: StatusEvent,
    *,
    route: str,
    received_at: datetime,
) -> Communication:
    """Apply one verified status callback to its record, and keep it.

    Raises `RepositoryError` when storage fails.
    """
    observe = _observe(event, received_at)
    record_id = _find(repository, event)
    if record_id is None:
        record_id = sid_record_id(event.sid)
        try:
            # Created already observed: the same record as an add, then this update.
            record = repository.add(observe(_new_record(event, received_at)))
        except DuplicateRecord:  # a racing callback created it: update it like any other
            record = repository.update(record_id, observe)
    else:
        record = repository.update(record_id, observe)
    repository.append_event(record_id, event_record(route, event.raw, received_at))
    return record


def store_inbound(
    repository: CommunicationRepository,
    event: InboundMessageEvent,
    *,
    route: str,
    received_at: datetime,
    prospect_id: str | None,
    resolve: bool,
) -> Communication:
    """Store an incoming message as an inbound record, and keep the callback.

    With ``resolve``, the record goes to the prospect of the newest outbound
    record to the sender, if any; else to ``prospect_id``. The record's id is
    ``sid-<MessageSid>``: a repeated delivery keeps the first record and adds
    only the callback. Raises `RepositoryError` when storage fails.
    """
    if resolve:
        latest = repository.latest_outbound_to(event.from_)
        prospect_id = latest.prospect_id if latest is not None else None
    record = Communication(
        id=sid_record_id(event.message_sid),
        prospect_id=prospect_id,
        channel=event.channel,
        direction=Direction.INBOUND,
        to=event.to,
        from_=event.from_,
        body=event.body,
        media_url=event.media_urls[0] if event.media_urls else None,
        media_urls=event.media_urls,
        twilio_sid=event.message_sid,
        status=RECEIVED,
        timestamp=received_at,
        created_at=received_at,
        updated_at=received_at,
    )
    record_id = sid_record_id(event.message_sid)
    try:
        stored = repository.add(record)
    except DuplicateRecord:
        stored = repository.get(record_id) or record
    repository.append_event(record_id, event_record(route, event.raw, received_at))
    return stored
