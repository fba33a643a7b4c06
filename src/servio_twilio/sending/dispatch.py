"""Sending a written record to Twilio: create, merge the answer in, translate errors.

Three steps, kept apart so a batch can merge many answers in one write:
`ask_twilio` (the request, its outcome as a `TwilioAnswer`, logged),
`merge_answer` (the pure update of the record) and `result_of` (the
`SendResult`, or the error to raise). `dispatch` runs the three for one send.
`opt_out_refused` opts the number out in the consent store when Twilio
refused with 21610 (the number replied STOP to Twilio), after the record is
settled; the single send and the batch both run it.
`ask_twilio` and `dispatch` are generators of `servio_twilio.domain.steps.Call`
steps: the sync and the async client drive them.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import attrs

from servio_twilio.domain.consent import OPTED_OUT_ERROR_CODE
from servio_twilio.domain.errors import SendOutcomeUnknown, TwilioAPIError
from servio_twilio.domain.models import Communication, replace
from servio_twilio.domain.phone_text import mask_phone, mask_phone_numbers, strip_channel_prefix
from servio_twilio.domain.status import UNKNOWN, advance
from servio_twilio.domain.steps import Call, Steps
from servio_twilio.sending.prepare import PreparedSend
from servio_twilio.sending.results import SendResult
from servio_twilio.sending.transport import NoAnswer

__all__ = [
    "OPTED_OUT_SOURCE",
    "TwilioAnswer",
    "ask_twilio",
    "charge_of",
    "dispatch",
    "log_unstored",
    "merge_answer",
    "opt_out_refused",
    "result_of",
]

# The client's logger: these records are the client's, wherever the code lives.
_log = logging.getLogger("servio_twilio.client")

_FAILED = "failed"

OPTED_OUT_SOURCE = f"twilio:{OPTED_OUT_ERROR_CODE}"
"""The consent change's ``source`` when Twilio refused a send with 21610."""


@attrs.frozen(kw_only=True)
class TwilioAnswer:
    """What came of one create: what to merge into the record, and the error to raise.

    ``failure`` is the `TwilioAPIError` (Twilio refused) or `SendOutcomeUnknown`
    (no answer) the send raises once the record is settled; None when
    Twilio accepted.
    """

    status: str
    sid: str | None = None
    from_: str | None = None
    error: str | None = None
    error_code: int | None = None
    price: str | None = None
    price_unit: str | None = None
    num_segments: int | None = None
    failure: TwilioAPIError | SendOutcomeUnknown | None = None


def ask_twilio(prepared: PreparedSend) -> Steps[TwilioAnswer]:
    """Create the message or call for a written record; Twilio's refusal or silence logged.

    Errors the rules expect become the answer's ``failure``; anything else
    (a bug, an unexpected exception) is raised.
    """
    cid = prepared.communication_id
    record = prepared.record
    try:
        instance = yield Call("twilio", "create", (prepared.kind, prepared.params))
        sid = instance.sid
        if not isinstance(sid, str) or not sid:
            raise NoAnswer("Twilio's answer has no SID")
    except NoAnswer as exc:
        _log.warning(
            "outcome unknown for %s %s to %s: %s",
            record.channel, cid, mask_phone(record.to), exc.message,
        )  # fmt: skip
        unknown = SendOutcomeUnknown(
            f"no answer from Twilio for {record.channel} {cid}; "
            "its status callbacks will settle the record",
            communication_id=cid,
        )
        unknown.__cause__ = exc
        return TwilioAnswer(status=UNKNOWN, failure=unknown)
    except TwilioAPIError as exc:
        _log.info(
            "Twilio refused %s %s to %s (HTTP %s, code %s)",
            record.channel, cid, mask_phone(record.to), exc.status, exc.code,
        )  # fmt: skip
        exc.communication_id = cid
        return TwilioAnswer(status=_FAILED, error=exc.message, error_code=exc.code, failure=exc)
    status = str(instance.status) if instance.status is not None else UNKNOWN
    answered_from = getattr(instance, "from_", None) or getattr(instance, "_from", None)
    sender = _strip_prefix(answered_from) or record.from_
    return TwilioAnswer(status=status, sid=sid, from_=sender, **charge_of(instance))


def merge_answer(answer: TwilioAnswer, now: datetime) -> Callable[[Communication], Communication]:
    """The pure update that merges ``answer`` into its record, by the status rules."""

    def apply(current: Communication) -> Communication:
        updated = advance(
            current,
            updated_at=now,
            status=answer.status,
            twilio_sid=answer.sid,
            error=answer.error,
            error_code=answer.error_code,
            price=answer.price,
            price_unit=answer.price_unit,
            num_segments=answer.num_segments,
        )
        if answer.from_ and not updated.from_:
            updated = replace(updated, from_=answer.from_, updated_at=now)
        return updated

    return apply


def result_of(
    prepared: PreparedSend, answer: TwilioAnswer, merged: Communication | None
) -> SendResult:
    """The send's result, or its ``failure`` raised; ``merged`` is the stored record, if any."""
    if answer.failure is not None:
        raise answer.failure
    record = prepared.record
    assert answer.sid is not None
    return SendResult(
        communication_id=prepared.communication_id,
        sid=answer.sid,
        status=merged.status if merged is not None else answer.status,
        to=record.to,
        from_=answer.from_ or record.from_,
        channel=record.channel,
    )


def log_unstored(prepared: PreparedSend, answer: TwilioAnswer, exc: BaseException) -> None:
    """Say that Twilio's answer could not be stored: the callbacks complete the record."""
    record = prepared.record
    _log.error(
        "could not store Twilio's answer (%s, sid %s) for %s %s to %s: %s: %s",
        answer.status, answer.sid, record.channel, prepared.communication_id,
        mask_phone(record.to), type(exc).__name__, exc,
    )  # fmt: skip


def opt_out_refused(prepared: PreparedSend, answer: TwilioAnswer) -> Steps[None]:
    """When Twilio refused with 21610, opt the number out of the channel (the ``consent`` target).

    Twilio's error stays the send's outcome: a consent store that fails here
    is logged, never raised.
    """
    if answer.error_code != OPTED_OUT_ERROR_CODE:
        return
    record = prepared.record
    try:
        yield Call("consent", "opt_out", (record.to, record.channel), {"source": OPTED_OUT_SOURCE})
    except Exception as exc:
        _log.error(
            "could not opt %s out of %s after Twilio's error %d (%s): %s: %s",
            mask_phone(record.to), record.channel, OPTED_OUT_ERROR_CODE,
            prepared.communication_id, type(exc).__name__, mask_phone_numbers(str(exc)),
        )  # fmt: skip
    else:
        _log.info(
            "opted %s out of %s: Twilio refused %s with error %d",
            mask_phone(record.to), record.channel, prepared.communication_id,
            OPTED_OUT_ERROR_CODE,
        )  # fmt: skip


def dispatch(
    prepared: PreparedSend, *, clock: Callable[[], datetime], consent: bool = False
) -> Steps[SendResult]:
    """Call Twilio for a written record, complete the record, translate errors.

    A storage failure after Twilio answered is logged, never raised. With
    ``consent`` (the client's policy has a consent store), a 21610 refusal
    opts the number out once the record is settled (`opt_out_refused`).
    """
    answer = yield from ask_twilio(prepared)
    merged = None
    try:
        merge = merge_answer(answer, clock())
        merged = yield Call("repository", "update", (prepared.communication_id, merge))
    except Exception as exc:
        log_unstored(prepared, answer, exc)
    if consent:
        yield from opt_out_refused(prepared, answer)
    return result_of(prepared, answer, merged)


def charge_of(instance: object) -> dict[str, Any]:
    """``price``, ``price_unit`` and ``num_segments`` of a Twilio instance, those it has.

    The price stays the decimal string Twilio wrote (``"-0.00750"``); a
    value that is not one (absent, None, unreadable) is left out.
    """
    charge: dict[str, Any] = {}
    price = getattr(instance, "price", None)
    if isinstance(price, str | int | float) and not isinstance(price, bool):
        text = str(price).strip()
        if _is_decimal(text):
            charge["price"] = text
    unit = getattr(instance, "price_unit", None)
    if isinstance(unit, str) and unit.strip():
        charge["price_unit"] = unit.strip().upper()
    segments = getattr(instance, "num_segments", None)
    if isinstance(segments, str | int) and not isinstance(segments, bool):
        try:
            count = int(segments)
        except ValueError:
            count = -1
        if count >= 0:
            charge["num_segments"] = count
    return charge


def _is_decimal(text: str) -> bool:
    try:
        value = Decimal(text)
    except InvalidOperation:
        return False
    return value.is_finite()


def _strip_prefix(value: object) -> str | None:
    return strip_channel_prefix(value) if isinstance(value, str) and value else None
