"""Sending a written record to Twilio: create, merge the answer in, translate errors."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from servio_twilio.domain.errors import SendOutcomeUnknown, TwilioAPIError
from servio_twilio.domain.models import Communication, replace
from servio_twilio.domain.phone_text import mask_phone, strip_channel_prefix
from servio_twilio.domain.status import UNKNOWN, advance
from servio_twilio.sending.prepare import PreparedSend
from servio_twilio.sending.results import SendResult
from servio_twilio.sending.transport import NoAnswer
from servio_twilio.sending.twilio_rest import TwilioRest
from servio_twilio.storage.repository import CommunicationRepository

__all__ = ["dispatch"]

# The client's logger: these records are the client's, wherever the code lives.
_log = logging.getLogger("servio_twilio.client")

_FAILED = "failed"


def dispatch(
    prepared: PreparedSend,
    *,
    rest: TwilioRest,
    repository: CommunicationRepository,
    clock: Callable[[], datetime],
) -> SendResult:
    """Call Twilio for a written record, complete the record, translate errors."""
    cid = prepared.communication_id
    record = prepared.record
    try:
        instance = rest.call(lambda client: _create(client, prepared))
        sid = instance.sid
        if not isinstance(sid, str) or not sid:
            raise NoAnswer("Twilio's answer has no SID")
    except NoAnswer as exc:
        _settle(repository, clock, cid, record, status=UNKNOWN)
        _log.warning(
            "outcome unknown for %s %s to %s: %s",
            record.channel, cid, mask_phone(record.to), exc.message,
        )  # fmt: skip
        raise SendOutcomeUnknown(
            f"no answer from Twilio for {record.channel} {cid}; "
            "its status callbacks will settle the record",
            communication_id=cid,
        ) from exc
    except TwilioAPIError as exc:
        _settle(
            repository, clock, cid, record, status=_FAILED, error=exc.message, error_code=exc.code
        )
        _log.info(
            "Twilio refused %s %s to %s (HTTP %s, code %s)",
            record.channel, cid, mask_phone(record.to), exc.status, exc.code,
        )  # fmt: skip
        exc.communication_id = cid
        raise
    status = str(instance.status) if instance.status is not None else UNKNOWN
    answered_from = getattr(instance, "from_", None) or getattr(instance, "_from", None)
    sender = _strip_prefix(answered_from) or record.from_
    final = _settle(repository, clock, cid, record, status=status, twilio_sid=sid, from_=sender)
    return SendResult(
        communication_id=cid,
        sid=sid,
        status=final.status if final is not None else status,
        to=record.to,
        from_=sender,
        channel=record.channel,
    )


def _create(client: Any, prepared: PreparedSend) -> Any:
    if prepared.kind == "call":
        return client.calls.create(**prepared.params)
    return client.messages.create(**prepared.params)


def _settle(
    repository: CommunicationRepository,
    clock: Callable[[], datetime],
    cid: str,
    record: Communication,
    *,
    status: str,
    twilio_sid: str | None = None,
    from_: str | None = None,
    error: str | None = None,
    error_code: int | None = None,
) -> Communication | None:
    """Merge Twilio's answer into the record; a storage failure is logged, not raised."""
    now = clock()

    def apply(current: Communication) -> Communication:
        updated = advance(
            current,
            updated_at=now,
            status=status,
            twilio_sid=twilio_sid,
            error=error,
            error_code=error_code,
        )
        if from_ and not updated.from_:
            updated = replace(updated, from_=from_, updated_at=now)
        return updated

    try:
        return repository.update(cid, apply)
    except Exception as exc:
        _log.error(
            "could not store Twilio's answer (%s, sid %s) for %s %s to %s: %s: %s",
            status, twilio_sid, record.channel, cid, mask_phone(record.to),
            type(exc).__name__, exc,
        )  # fmt: skip
        return None


def _strip_prefix(value: object) -> str | None:
    return strip_channel_prefix(value) if isinstance(value, str) and value else None
