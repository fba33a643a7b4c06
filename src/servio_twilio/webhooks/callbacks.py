"""Applying verified callbacks to the repository.

A status callback finds its record by ``cid`` (ignored when that record
already has another SID), else by SID, else creates one from its own fields
with the id ``sid-<SID>``, created with the callback already applied; a
`DuplicateRecord` there means a racing callback created it first, so this one
looks again. The record changes through `servio_twilio.domain.status.advance`
and the callback is kept, as received, in the same atomic
``repository.record_event``: one transaction. An inbound message is one
``repository.add`` carrying its first event. A delivery whose Twilio
idempotency token the record already kept changes nothing (a retry).

`store_status` and `store_inbound_callback` are generators of
`servio_twilio.domain.steps.Call` steps on the ``repository`` target (and
``consent``): the WSGI app drives them with blocking calls, the ASGI app
awaits them (an async repository) or runs them in its threads (a blocking one).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Any, Final, NamedTuple

from servio_twilio.domain.consent import ConsentAction, consent_action, inbound_source
from servio_twilio.domain.errors import DuplicateRecord
from servio_twilio.domain.models import Channel, Communication, Direction, replace
from servio_twilio.domain.status import RECEIVED, UNKNOWN, advance
from servio_twilio.domain.steps import Call, Steps
from servio_twilio.webhooks.events import (
    CallStatusEvent,
    InboundMessageEvent,
    MessageStatusEvent,
    RecordingStatusEvent,
    WebhookEvent,
    copy_params,
)

__all__ = [
    "Callback",
    "event_record",
    "sid_record_id",
    "store_inbound_callback",
    "store_status",
    "valid_cid",
]

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


class Callback(NamedTuple):
    """One verified callback as the webhook core stores it, before any event is built.

    ``kind`` is the event class it stands for; ``fields`` that class's typed
    fields as `servio_twilio.webhooks.events` parses them (all but ``cid`` and ``raw``);
    ``params`` the form fields as received, kept as they are (the repository
    copies what it keeps).
    """

    route: str
    kind: type[WebhookEvent]
    fields: dict[str, Any]
    cid: str | None
    params: dict[str, str | list[str]]
    token: str | None = None
    """Twilio's ``I-Twilio-Idempotency-Token``: the same on every retry of one delivery."""

    @property
    def sid(self) -> str:
        """The SID of the record it stores or updates (the message's or the call's)."""
        sid: str = self.fields[_SID_FIELD[self.kind]]
        return sid

    def event(self) -> WebhookEvent:
        """The typed event, for a hook (its ``raw`` a copy of ``params``)."""
        return self.kind(**self.fields, cid=self.cid, raw=copy_params(self.params))


_SID_FIELD: Final[dict[type, str]] = {
    MessageStatusEvent: "message_sid",
    CallStatusEvent: "call_sid",
    RecordingStatusEvent: "call_sid",
    InboundMessageEvent: "message_sid",
}


def _new_record(callback: Callback, now: datetime) -> Communication:
    """A record made from the callback's own fields, for a SID nothing else knows."""
    fields = callback.fields
    return Communication(
        id=sid_record_id(callback.sid),
        channel=fields["channel"] if callback.kind is MessageStatusEvent else Channel.CALL,
        direction=Direction.OUTBOUND,
        to=fields.get("to") or "",
        from_=fields.get("from_") or "",
        twilio_sid=callback.sid,
        status=UNKNOWN,
        timestamp=now,
        created_at=now,
        updated_at=now,
    )


def _observe(callback: Callback, now: datetime) -> Callable[[Communication], Communication]:
    """The pure update ``fn`` one status callback applies to its record."""
    fields = callback.fields
    if callback.kind is RecordingStatusEvent:
        completed = fields["status"] == "completed"
        observation: dict[str, Any] = {
            "recording_sid": fields["recording_sid"],
            "recording_url": fields["recording_url"] if completed else None,
            "recording_duration": fields["duration"] if completed else None,
        }
        to = from_ = None
    else:
        error, error_code = fields["error_message"], fields["error_code"]
        if error is None and error_code is not None:
            error = f"Twilio error {error_code}"
        observation = {"status": fields["status"], "error": error, "error_code": error_code}
        if callback.kind is CallStatusEvent:
            observation["duration"] = fields["duration"]
        to, from_ = fields["to"], fields["from_"]
    sid = callback.sid

    def apply(record: Communication) -> Communication:
        updated = advance(record, updated_at=now, twilio_sid=sid, **observation)
        # A record created from a recording callback learns its numbers later.
        fill: dict[str, Any] = {}
        if not updated.to and to:
            fill["to"] = to
        if not updated.from_ and from_:
            fill["from_"] = from_
        if fill:
            updated = replace(updated, updated_at=now, **fill)
        return updated

    return apply


def store_status(callback: Callback, *, received_at: datetime) -> Steps[Communication | None]:
    """Apply one verified status callback to its record and keep it, atomically.

    Returns the record, or None for a retried delivery already kept (by its
    idempotency token). Raises `RepositoryError` when storage fails.
    """
    observe = _observe(callback, received_at)

    def apply(record: Communication | None) -> Communication:
        # A new record is created already observed: the same as an add, then this update.
        return observe(record if record is not None else _new_record(callback, received_at))

    event = event_record(callback.route, callback.params, received_at)
    lookup = {"sid": callback.sid, "token": callback.token}
    first = {"communication_id": valid_cid(callback.cid), **lookup}
    try:
        stored: Communication | None = yield Call(
            "repository", "record_event", (event, apply), first
        )
    except DuplicateRecord:  # a racing callback created it: find it by SID now
        stored = yield Call("repository", "record_event", (event, apply), lookup)
    return stored


def store_inbound_callback(
    callback: Callback,
    *,
    received_at: datetime,
    prospect_id: str | None,
    resolve: bool,
    consent: bool = False,
) -> Steps[Communication | None]:
    """Store an incoming message as an inbound record, and keep the callback.

    With ``resolve``, the record goes to the prospect of the newest outbound
    record to the sender, if any; else to ``prospect_id``. The record's id is
    ``sid-<MessageSid>``: a repeated delivery keeps the first record and adds
    only the callback, and a retry of a delivery already kept (the same
    idempotency token) adds nothing and returns None. With ``consent``, an
    opt-out or opt-in keyword (or Twilio's ``OptOutType``) is applied to the
    sender's consent on the message's channel first (the ``consent`` target),
    so a failure there stores nothing and Twilio's retry applies both. Raises
    `RepositoryError` when storage fails.
    """
    fields = callback.fields
    if consent:
        yield from apply_consent(callback)
    if resolve:
        latest = yield Call("repository", "latest_outbound_to", (fields["from_"],))
        prospect_id = latest.prospect_id if latest is not None else None
    media_urls = fields["media_urls"]
    record_id = sid_record_id(callback.sid)
    record = Communication(
        id=record_id,
        prospect_id=prospect_id,
        channel=fields["channel"],
        direction=Direction.INBOUND,
        to=fields["to"],
        from_=fields["from_"],
        body=fields["body"],
        media_url=media_urls[0] if media_urls else None,
        media_urls=media_urls,
        twilio_sid=callback.sid,
        status=RECEIVED,
        timestamp=received_at,
        created_at=received_at,
        updated_at=received_at,
    )
    event = event_record(callback.route, callback.params, received_at)
    stored: Communication | None
    try:
        stored = yield Call(
            "repository", "add", (record,), {"event": event, "token": callback.token}
        )
    except DuplicateRecord:  # delivered before: keep the first record, add this callback
        stored = yield Call(
            "repository",
            "record_event",
            (event, lambda existing: existing if existing is not None else record),
            {"communication_id": record_id, "token": callback.token},
        )
    return stored


def apply_consent(callback: Callback) -> Steps[ConsentAction | None]:
    """Opt the sender of an inbound message out (or back in) on its channel, as its body says.

    Twilio's ``OptOutType`` parameter, when present, decides instead of the
    body; ``HELP`` and any other body change nothing. Returns what was done.
    """
    fields = callback.fields
    opt_out_type = callback.params.get("OptOutType")
    if not isinstance(opt_out_type, str):
        opt_out_type = None
    action = consent_action(fields["body"], opt_out_type)
    if action is None:
        return None
    method = "opt_out" if action is ConsentAction.OPT_OUT else "opt_in"
    source = inbound_source(fields["body"], opt_out_type)
    yield Call("consent", method, (fields["from_"], fields["channel"]), {"source": source})
    return action
