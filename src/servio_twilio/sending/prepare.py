"""Building a send: the pending record and Twilio's create parameters, from checked arguments."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import attrs

from servio_twilio.domain.errors import InvalidArgument
from servio_twilio.domain.models import Channel, Communication, parse_channel
from servio_twilio.domain.phone_text import WHATSAPP_PREFIX, mask_phone
from servio_twilio.domain.settings import TwilioSettings
from servio_twilio.sending.checks import (
    check_content,
    check_prospect_id,
    check_twiml,
    check_url,
    normalize_number,
)
from servio_twilio.storage.memory import new_id

__all__ = ["CALL_EVENTS", "RECORDING_EVENTS", "PreparedSend", "prepare_call", "prepare_message"]

CALL_EVENTS = ("initiated", "ringing", "answered", "completed")
RECORDING_EVENTS = ("completed", "absent")


@attrs.frozen(kw_only=True)
class PreparedSend:
    """A validated send: the pending record to write and what to ask Twilio."""

    record: Communication
    kind: Literal["message", "call"]
    params: Mapping[str, Any]

    @property
    def communication_id(self) -> str:
        """The pending record's id (``cid`` on every callback URL)."""
        assert self.record.id is not None
        return self.record.id

    @property
    def limit_key(self) -> str:
        """The send limiter's key: the prospect id, else ``to:`` and the number."""
        prospect_id = self.record.prospect_id
        return prospect_id if prospect_id is not None else f"to:{self.record.to}"

    @property
    def limit_name(self) -> str:
        """`limit_key` with the number masked, for the error when the limiter refuses."""
        prospect_id = self.record.prospect_id
        return prospect_id if prospect_id is not None else f"to:{mask_phone(self.record.to)}"


def prepare_message(
    settings: TwilioSettings,
    clock: Callable[[], datetime],
    channel: Channel,
    to: str,
    *,
    body: str | None = None,
    media_url: str | Sequence[str] | None = None,
    content_sid: str | None = None,
    content_variables: Mapping[str, Any] | None = None,
    prospect_id: str | None = None,
    status_callback: str | None = None,
) -> PreparedSend:
    """Validate one SMS or WhatsApp message; raise on bad input, touch nothing.

    A national ``to`` is read in ``settings.default_region``.
    """
    channel = parse_channel(channel)
    if channel == Channel.CALL:
        raise InvalidArgument("prepare_message is not for calls: use prepare_call")
    check_prospect_id(prospect_id)
    if channel == Channel.SMS:
        number = normalize_number(
            to, allow_whatsapp=False, what="an SMS", default_region=settings.default_region
        )
        settings.require_sms_sender()
    else:
        number = normalize_number(
            to,
            allow_whatsapp=True,
            what="a WhatsApp message",
            default_region=settings.default_region,
        )
        settings.require_whatsapp_sender()
    text, media, template, variables = check_content(
        channel, body, media_url, content_sid, content_variables
    )
    cid = new_id()
    callback = _callback_url(settings, status_callback, "message-status", cid)
    now = clock()
    params: dict[str, Any] = {}
    if channel == Channel.WHATSAPP:
        assert settings.whatsapp_number is not None
        sender = settings.whatsapp_number
        params["to"] = WHATSAPP_PREFIX + number
        params["from_"] = WHATSAPP_PREFIX + sender
    else:
        params["to"] = number
        if settings.messaging_service_sid is not None:
            # The service picks the sender: Twilio's answer or a callback names it.
            sender = ""
            params["messaging_service_sid"] = settings.messaging_service_sid
        else:
            sender = settings.phone_number or ""
            params["from_"] = sender
    if text is not None:
        params["body"] = text
    if media:
        params["media_url"] = list(media)
    if template is not None:
        params["content_sid"] = template
        if variables is not None:
            params["content_variables"] = variables
    if callback is not None:
        params["status_callback"] = callback
    return _pending(
        kind="message",
        params=params,
        cid=cid,
        now=now,
        channel=channel,
        number=number,
        sender=sender,
        prospect_id=prospect_id,
        text=text,
        media=media,
    )


def prepare_call(
    settings: TwilioSettings,
    clock: Callable[[], datetime],
    to: str,
    *,
    twiml_url: str | None = None,
    twiml: str | None = None,
    record: bool = False,
    prospect_id: str | None = None,
    status_callback: str | None = None,
    recording_status_callback: str | None = None,
) -> PreparedSend:
    """Validate one call; raise on bad input, touch nothing.

    A national ``to`` is read in ``settings.default_region``.
    """
    check_prospect_id(prospect_id)
    number = normalize_number(
        to, allow_whatsapp=False, what="a call", default_region=settings.default_region
    )
    settings.require_voice_sender()
    assert settings.phone_number is not None
    check_twiml(twiml_url, twiml)
    if not isinstance(record, bool):
        raise TypeError(f"record must be a bool, not {type(record).__name__}")
    if recording_status_callback is not None and not record:
        raise InvalidArgument("recording_status_callback needs record=True")
    cid = new_id()
    callback = _callback_url(settings, status_callback, "call-status", cid)
    params: dict[str, Any] = {"to": number, "from_": settings.phone_number}
    if twiml_url is not None:
        params["url"] = twiml_url
    else:
        params["twiml"] = twiml
    if callback is not None:
        params["status_callback"] = callback
        params["status_callback_event"] = list(CALL_EVENTS)
    if record:
        params["record"] = True
        recording = _callback_url(settings, recording_status_callback, "recording-status", cid)
        if recording is not None:
            params["recording_status_callback"] = recording
            params["recording_status_callback_event"] = list(RECORDING_EVENTS)
    now = clock()
    return _pending(
        kind="call",
        params=params,
        cid=cid,
        now=now,
        channel=Channel.CALL,
        number=number,
        sender=settings.phone_number,
        prospect_id=prospect_id,
        recording_requested=record,
    )


def _pending(
    *,
    kind: Literal["message", "call"],
    params: Mapping[str, Any],
    cid: str,
    now: datetime,
    channel: Channel,
    number: str,
    sender: str,
    prospect_id: str | None,
    text: str | None = None,
    media: tuple[str, ...] = (),
    recording_requested: bool = False,
) -> PreparedSend:
    """The send with its pending record."""
    record = Communication(
        id=cid,
        prospect_id=prospect_id,
        channel=channel,
        to=number,
        from_=sender,
        body=text,
        media_url=media[0] if media else None,
        media_urls=media,
        recording_requested=recording_requested,
        timestamp=now,
        created_at=now,
        updated_at=now,
    )
    return PreparedSend(record=record, kind=kind, params=params)


def _callback_url(settings: TwilioSettings, given: str | None, route: str, cid: str) -> str | None:
    """``given`` (or the webhook route under ``webhook_base_url``) with ``cid`` in its query."""
    if given is not None:
        check_url(given, route.replace("-", "_") + " callback")
        base = given
    elif settings.webhook_base_url is not None:
        base = f"{settings.webhook_base_url}/{route}"
    else:
        return None
    return _with_query(base, cid=cid)


def _with_query(url: str, **extra: str) -> str:
    if "?" not in url and "#" not in url:
        return f"{url}?{urlencode(extra)}"
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in extra]
    query.extend(extra.items())
    return urlunsplit(parts._replace(query=urlencode(query)))
