"""`CommunicationsClient`: send SMS, WhatsApp and calls through Twilio, keep every record.

One send is four steps, kept apart so a batch can reuse them:

1. ``_prepare_message`` / ``_prepare_call``: validate everything and build
   the pending record and Twilio's create parameters; touches nothing.
2. ``_check_limit``: the send limiter (`SendLimitExceeded`).
3. ``_write_ahead``: store the ``pending`` record (`RepositoryError`: nothing sent).
4. ``_dispatch``: call Twilio through `RetryingHttpClient`, merge the answer
   into the record with the status rules, translate errors.
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

import attrs

from servio_twilio.batch import BatchMessage
from servio_twilio.batch import send_batch as _send_batch
from servio_twilio.errors import (
    InvalidPhoneNumber,
    RepositoryError,
    SendLimitExceeded,
    SendOutcomeUnknown,
    ServioTwilioError,
    TwilioAPIError,
)
from servio_twilio.limiter import SendLimiter
from servio_twilio.memory import InMemoryRepository, new_id
from servio_twilio.models import Channel, Communication, utcnow
from servio_twilio.phone import mask_phone, normalize_e164, strip_channel_prefix
from servio_twilio.ratelimit import TokenBucket
from servio_twilio.repository import CommunicationRepository
from servio_twilio.results import BatchReport, HealthCheck, HealthReport, SendResult
from servio_twilio.settings import TwilioSettings
from servio_twilio.status import UNKNOWN, advance
from servio_twilio.transport import NoAnswer, RetryingHttpClient, translate_twilio_error

__all__ = ["CommunicationsClient"]

_log = logging.getLogger("servio_twilio.client")

MAX_BODY_CHARS = 1600
MAX_MEDIA = 10
MAX_TWIML_CHARS = 4000
CALL_EVENTS = ("initiated", "ringing", "answered", "completed")
RECORDING_EVENTS = ("completed", "absent")
_CONTENT_SID = re.compile(r"HX[0-9a-fA-F]{32}")
_WHATSAPP = "whatsapp:"
_FAILED = "failed"


@attrs.frozen(kw_only=True)
class _PreparedSend:
    """A validated send: the pending record to write and what to ask Twilio."""

    record: Communication
    kind: Literal["message", "call"]
    params: Mapping[str, Any]
    limit_key: str
    limit_name: str

    @property
    def communication_id(self) -> str:
        assert self.record.id is not None
        return self.record.id


class CommunicationsClient:
    """Send SMS, WhatsApp messages and calls through Twilio, and keep every one.

    ``repository`` defaults to a new `InMemoryRepository`. ``http_client`` is a
    ``twilio.http.HttpClient`` that does the HTTP (twilio's own by default;
    `servio_twilio.testing.FakeTwilio` in tests), wrapped in a
    `RetryingHttpClient` with ``timeout`` seconds per request and up to
    ``max_retries`` retries of 429s and failed connections, waiting with
    ``sleep``. ``clock`` returns aware UTC datetimes (record times).
    ``send_limiter`` caps sends per prospect (`SendLimiter`).

    Every send validates its arguments first (nothing is written or sent for
    bad input), writes a ``pending`` record, then calls Twilio with the
    record's id as ``cid`` on every callback URL it sets.

    The twilio REST client is built on first use (thread-safe); with an API
    key in the settings it authenticates with the key.

    Raises:
        TypeError: an argument of the wrong type.
        ValueError: ``timeout`` or ``max_retries`` out of range.

    New in 0.1.0.
    """

    def __init__(
        self,
        settings: TwilioSettings,
        *,
        repository: CommunicationRepository | None = None,
        http_client: Any = None,
        clock: Callable[[], datetime] | None = None,
        timeout: float = 10.0,
        max_retries: int = 3,
        sleep: Callable[[float], object] = time.sleep,
        send_limiter: SendLimiter | None = None,
    ) -> None:
        if not isinstance(settings, TwilioSettings):
            raise TypeError(f"settings must be TwilioSettings, not {type(settings).__name__}")
        if repository is None:
            repository = InMemoryRepository()
        elif not isinstance(repository, CommunicationRepository):
            raise TypeError(
                "repository must implement CommunicationRepository, "
                f"not {type(repository).__name__}"
            )
        if send_limiter is not None and not isinstance(send_limiter, SendLimiter):
            raise TypeError(
                f"send_limiter must implement SendLimiter, not {type(send_limiter).__name__}"
            )
        if clock is not None and not callable(clock):
            raise TypeError("clock must be callable")
        if not callable(sleep):
            raise TypeError("sleep must be callable")
        self.settings = settings
        self.repository: CommunicationRepository = repository
        self.send_limiter = send_limiter
        self._clock = clock or utcnow
        self._http = RetryingHttpClient(
            http_client, timeout=timeout, max_retries=max_retries, sleep=sleep
        )
        self._rest_client: Any = None
        self._rest_lock = threading.Lock()

    def __repr__(self) -> str:
        return (
            f"<CommunicationsClient account={_mask_sid(self.settings.account_sid)} "
            f"repository={type(self.repository).__name__}>"
        )

    # -- public API -------------------------------------------------------------------------

    def send_sms(
        self,
        to: str,
        body: str,
        *,
        prospect_id: str | None = None,
        status_callback: str | None = None,
    ) -> SendResult:
        """Send an SMS from ``settings.phone_number`` (or the messaging service).

        With ``messaging_service_sid`` set, Twilio picks the sender from the
        service (``MessagingServiceSid`` is sent instead of ``From``).

        Raises:
            InvalidPhoneNumber: ``to`` is not a valid number.
            ConfigurationError: no SMS sender in the settings.
            ValueError: an empty or too long body, a malformed callback URL.
            SendLimitExceeded: over the send limit; nothing written or sent.
            RepositoryError: the pending record could not be written; nothing sent.
            TwilioAPIError: Twilio refused (the record is ``failed``).
            SendOutcomeUnknown: no answer came (the record is ``unknown``).

        New in 0.1.0.
        """
        prepared = self._prepare_message(
            Channel.SMS, to, body=body, prospect_id=prospect_id, status_callback=status_callback
        )
        return self._send(prepared)

    def send_whatsapp(
        self,
        to: str,
        body: str | None = None,
        *,
        media_url: str | Sequence[str] | None = None,
        content_sid: str | None = None,
        content_variables: Mapping[str, Any] | None = None,
        prospect_id: str | None = None,
        status_callback: str | None = None,
    ) -> SendResult:
        """Send a WhatsApp message: a body, media, or both; or an approved template.

        ``whatsapp:`` prefixes are added (a given one is accepted). ``media_url``
        is one URL or a list (at most 10). ``content_sid`` (``HX...``) with
        ``content_variables`` (a JSON-serializable mapping, sent as JSON) sends
        a template, which WhatsApp requires outside the 24-hour window; it
        cannot be combined with ``body`` or ``media_url``.

        Raises the same errors as `send_sms`.

        New in 0.1.0.
        """
        prepared = self._prepare_message(
            Channel.WHATSAPP,
            to,
            body=body,
            media_url=media_url,
            content_sid=content_sid,
            content_variables=content_variables,
            prospect_id=prospect_id,
            status_callback=status_callback,
        )
        return self._send(prepared)

    def make_call(
        self,
        to: str,
        *,
        twiml_url: str | None = None,
        twiml: str | None = None,
        record: bool = False,
        prospect_id: str | None = None,
        status_callback: str | None = None,
        recording_status_callback: str | None = None,
    ) -> SendResult:
        """Call ``to`` from ``settings.phone_number``, running ``twiml_url`` or ``twiml``.

        Exactly one of ``twiml_url`` and ``twiml``. Twilio is asked for the call
        events ``initiated ringing answered completed``; with ``record=True``
        the call is recorded and the recording events ``completed absent`` go
        to ``recording_status_callback`` (default
        ``{webhook_base_url}/recording-status``).

        Raises the same errors as `send_sms`.

        New in 0.1.0.
        """
        prepared = self._prepare_call(
            to,
            twiml_url=twiml_url,
            twiml=twiml,
            record=record,
            prospect_id=prospect_id,
            status_callback=status_callback,
            recording_status_callback=recording_status_callback,
        )
        return self._send(prepared)

    def send_batch(
        self,
        messages: Iterable[BatchMessage],
        *,
        max_concurrency: int = 10,
        rate_per_second: float | TokenBucket | None = None,
        max_batch_size: int = 100,
    ) -> BatchReport:
        """Send up to ``max_batch_size`` SMS and WhatsApp messages at once; report each.

        ``messages`` are `OutboundMessage`s or mappings in the earlier
        service's shape (`OutboundMessage.from_dict`). Every item is validated
        as a single send is: an invalid one (or one over the send limiter)
        fails in the report with no record and no request, and the rest go
        out. The valid items' ``pending`` records are written in one
        ``repository.add_many``; if that fails, nothing is sent and each of
        them fails in the report. Then up to ``max_concurrency`` threads send,
        each item once (the client's retry rules apply per item), at most
        ``rate_per_second`` creates per second (a number, or a shared
        `servio_twilio.ratelimit.TokenBucket`), completing each record as its
        send returns.

        Returns a `BatchReport` in input order: a failed item carries the
        error text and Twilio's code; an item whose outcome is unknown fails
        saying so, its record ``unknown`` until Twilio's callbacks settle it.

        Raises:
            BatchTooLarge: more than ``max_batch_size`` messages; nothing written or sent.
            ValueError: ``max_concurrency`` or ``max_batch_size`` below 1, or
                ``rate_per_second`` not a positive number.
            TypeError: ``messages`` is not an iterable of messages.

        New in 0.1.0.
        """
        return _send_batch(
            self,
            messages,
            max_concurrency=max_concurrency,
            rate_per_second=rate_per_second,
            max_batch_size=max_batch_size,
        )

    def history(
        self,
        prospect_id: str,
        *,
        channel: Channel | None = None,
        limit: int = 50,
        before: datetime | None = None,
    ) -> list[Communication]:
        """A prospect's communications, newest first.

        ``before`` (an aware datetime) keeps records strictly older: pass the
        last record's ``timestamp`` to read the next page.

        Raises:
            ValueError: an empty ``prospect_id``, ``limit`` outside 1..1000, a naive ``before``.
            RepositoryError: storage failed.

        New in 0.1.0.
        """
        _check_prospect_id(prospect_id, required=True)
        if channel is not None:
            channel = Channel(channel)
        return self.repository.history(prospect_id, channel=channel, limit=limit, before=before)

    def events(self, communication_id: str) -> list[dict[str, Any]]:
        """The Twilio callbacks kept for a record, oldest first (empty when none).

        Raises:
            RepositoryError: storage failed.

        New in 0.1.0.
        """
        if not isinstance(communication_id, str) or not communication_id:
            raise ValueError("communication_id must be a non-empty string")
        return self.repository.events(communication_id)

    def health(self) -> HealthReport:
        """Check the Twilio account, the sender number and storage; never raises for their failures.

        Checks: ``account`` (the account is ``active``), ``phone_number`` (it
        is one of the account's IncomingPhoneNumbers), ``repository`` (it
        answers ``ping()``) and ``whatsapp_number`` (reported configured or
        not; it cannot be verified through Twilio's 2010 API and never fails).

        New in 0.1.0.
        """
        settings = self.settings
        checks: list[HealthCheck] = []
        account_status: str | None = None
        try:
            account = self._twilio(
                lambda rest: rest.api.v2010.accounts(settings.account_sid).fetch()
            )
            account_status = str(account.status) if account.status is not None else None
            checks.append(
                HealthCheck(
                    name="account",
                    ok=account_status == "active",
                    detail=f"account status is {account_status!r}",
                )
            )
        except Exception as exc:
            _log.warning("health: could not fetch the Twilio account: %s", exc)
            checks.append(HealthCheck(name="account", ok=False, detail=_describe(exc)))
        checks.append(self._check_phone_number())
        checks.append(self._check_repository())
        checks.append(
            HealthCheck(
                name="whatsapp_number",
                ok=True,
                detail="configured (not verifiable through Twilio's API)"
                if settings.whatsapp_number
                else "not configured",
            )
        )
        return HealthReport(
            healthy=all(check.ok for check in checks),
            account_sid=_mask_sid(settings.account_sid),
            account_status=account_status,
            phone_number=settings.phone_number,
            whatsapp_number=settings.whatsapp_number,
            checks=checks,
        )

    # -- the steps of a send ---------------------------------------------------------------

    def _send(self, prepared: _PreparedSend) -> SendResult:
        self._check_limit(prepared)
        self._write_ahead(prepared)
        return self._dispatch(prepared)

    def _prepare_message(
        self,
        channel: Channel,
        to: str,
        *,
        body: str | None = None,
        media_url: str | Sequence[str] | None = None,
        content_sid: str | None = None,
        content_variables: Mapping[str, Any] | None = None,
        prospect_id: str | None = None,
        status_callback: str | None = None,
    ) -> _PreparedSend:
        """Validate one SMS or WhatsApp message; raise on bad input, touch nothing."""
        channel = Channel(channel)
        if channel == Channel.CALL:
            raise ValueError("use _prepare_call for calls")
        settings = self.settings
        _check_prospect_id(prospect_id)
        if channel == Channel.SMS:
            number = _normalize_number(to, allow_whatsapp=False, what="an SMS")
            settings.require_sms_sender()
        else:
            number = _normalize_number(to, allow_whatsapp=True, what="a WhatsApp message")
            settings.require_whatsapp_sender()
        text, media, template, variables = _check_content(
            channel, body, media_url, content_sid, content_variables
        )
        cid = new_id()
        callback = self._callback_url(status_callback, "message-status", cid)
        now = self._clock()
        params: dict[str, Any] = {}
        if channel == Channel.WHATSAPP:
            assert settings.whatsapp_number is not None
            sender = settings.whatsapp_number
            params["to"] = _WHATSAPP + number
            params["from_"] = _WHATSAPP + sender
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
        record = Communication(
            id=cid,
            prospect_id=prospect_id,
            channel=channel,
            to=number,
            from_=sender,
            body=text,
            media_url=media[0] if media else None,
            media_urls=media,
            timestamp=now,
            created_at=now,
            updated_at=now,
        )
        return _PreparedSend(
            record=record,
            kind="message",
            params=params,
            limit_key=prospect_id if prospect_id is not None else f"to:{number}",
            limit_name=prospect_id if prospect_id is not None else f"to:{mask_phone(number)}",
        )

    def _prepare_call(
        self,
        to: str,
        *,
        twiml_url: str | None = None,
        twiml: str | None = None,
        record: bool = False,
        prospect_id: str | None = None,
        status_callback: str | None = None,
        recording_status_callback: str | None = None,
    ) -> _PreparedSend:
        """Validate one call; raise on bad input, touch nothing."""
        settings = self.settings
        _check_prospect_id(prospect_id)
        number = _normalize_number(to, allow_whatsapp=False, what="a call")
        settings.require_voice_sender()
        assert settings.phone_number is not None
        if (twiml_url is None) == (twiml is None):
            raise ValueError("give exactly one of twiml_url and twiml")
        if twiml_url is not None:
            _check_url(twiml_url, "twiml_url")
        if twiml is not None:
            if not isinstance(twiml, str):
                raise TypeError(f"twiml must be a string, not {type(twiml).__name__}")
            if not twiml.strip() or len(twiml) > MAX_TWIML_CHARS:
                raise ValueError(f"twiml must be 1 to {MAX_TWIML_CHARS} characters")
        if not isinstance(record, bool):
            raise TypeError(f"record must be a bool, not {type(record).__name__}")
        if recording_status_callback is not None and not record:
            raise ValueError("recording_status_callback needs record=True")
        cid = new_id()
        callback = self._callback_url(status_callback, "call-status", cid)
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
            recording = self._callback_url(recording_status_callback, "recording-status", cid)
            if recording is not None:
                params["recording_status_callback"] = recording
                params["recording_status_callback_event"] = list(RECORDING_EVENTS)
        now = self._clock()
        communication = Communication(
            id=cid,
            prospect_id=prospect_id,
            channel=Channel.CALL,
            to=number,
            from_=settings.phone_number,
            timestamp=now,
            created_at=now,
            updated_at=now,
        )
        return _PreparedSend(
            record=communication,
            kind="call",
            params=params,
            limit_key=prospect_id if prospect_id is not None else f"to:{number}",
            limit_name=prospect_id if prospect_id is not None else f"to:{mask_phone(number)}",
        )

    def _check_limit(self, prepared: _PreparedSend) -> None:
        """Raise `SendLimitExceeded` when the limiter refuses; count the send otherwise."""
        if self.send_limiter is None:
            return
        retry_after = self.send_limiter.try_acquire(prepared.limit_key)
        if retry_after is not None:
            raise SendLimitExceeded(prepared.limit_name, float(retry_after))

    def _write_ahead(self, prepared: _PreparedSend) -> None:
        """Store the pending record; `RepositoryError` when storage fails (nothing sent)."""
        try:
            self.repository.add(prepared.record)
        except RepositoryError:
            raise
        except Exception as exc:
            raise RepositoryError(
                f"could not store the pending record: {type(exc).__name__}: {exc}"
            ) from exc

    def _dispatch(self, prepared: _PreparedSend) -> SendResult:
        """Call Twilio for a written record, complete the record, translate errors."""
        cid = prepared.communication_id
        record = prepared.record
        try:
            instance = self._twilio(lambda rest: self._create(rest, prepared))
            sid = instance.sid
            if not isinstance(sid, str) or not sid:
                raise NoAnswer("Twilio's answer has no SID")
        except NoAnswer as exc:
            self._settle(cid, record, status=UNKNOWN)
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
            self._settle(cid, record, status=_FAILED, error=exc.message, error_code=exc.code)
            _log.info(
                "Twilio refused %s %s to %s (HTTP %s, code %s)",
                record.channel, cid, mask_phone(record.to), exc.status, exc.code,
            )  # fmt: skip
            exc.communication_id = cid
            raise
        status = str(instance.status) if instance.status is not None else UNKNOWN
        answered_from = getattr(instance, "from_", None) or getattr(instance, "_from", None)
        sender = _strip_prefix(answered_from) or record.from_
        final = self._settle(cid, record, status=status, twilio_sid=sid, from_=sender)
        return SendResult(
            communication_id=cid,
            sid=sid,
            status=final.status if final is not None else status,
            to=record.to,
            from_=sender,
            channel=record.channel,
        )

    # -- helpers ---------------------------------------------------------------------------

    def _rest(self) -> Any:
        """The twilio REST client, built once on first use."""
        rest = self._rest_client
        if rest is not None:
            return rest
        with self._rest_lock:
            if self._rest_client is None:
                from twilio.rest import Client  # type: ignore[import-untyped]  # noqa: PLC0415

                s = self.settings
                if s.api_key_sid is not None and s.api_key_secret is not None:
                    username, password = s.api_key_sid, s.api_key_secret
                else:
                    username, password = s.account_sid, s.auth_token
                self._rest_client = Client(
                    username, password, s.account_sid, http_client=self._http
                )
            return self._rest_client

    def _twilio(self, call: Callable[[Any], Any]) -> Any:
        """Run one twilio REST call; every failure comes out as our error."""
        from twilio.base.exceptions import TwilioException  # type: ignore[import-untyped]  # noqa: PLC0415

        try:
            return call(self._rest())
        except ServioTwilioError:
            raise
        except TwilioException as exc:
            raise translate_twilio_error(exc) from exc
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            # a 2xx answer that is not JSON, or JSON that is not an object
            raise NoAnswer(f"unreadable answer from Twilio ({type(exc).__name__})") from exc

    @staticmethod
    def _create(rest: Any, prepared: _PreparedSend) -> Any:
        if prepared.kind == "call":
            return rest.calls.create(**prepared.params)
        return rest.messages.create(**prepared.params)

    def _settle(
        self,
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
        now = self._clock()

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
                updated = attrs.evolve(updated, from_=from_, updated_at=now)
            return updated

        try:
            return self.repository.update(cid, apply)
        except Exception as exc:
            _log.error(
                "could not store Twilio's answer (%s, sid %s) for %s %s to %s: %s: %s",
                status, twilio_sid, record.channel, cid, mask_phone(record.to),
                type(exc).__name__, exc,
            )  # fmt: skip
            return None

    def _callback_url(self, given: str | None, route: str, cid: str) -> str | None:
        """``given`` (or the webhook route under ``webhook_base_url``) with ``cid`` in its query."""
        if given is not None:
            _check_url(given, route.replace("-", "_") + " callback")
            base = given
        elif self.settings.webhook_base_url is not None:
            base = f"{self.settings.webhook_base_url}/{route}"
        else:
            return None
        return _with_query(base, cid=cid)

    def _check_phone_number(self) -> HealthCheck:
        settings = self.settings
        number = settings.phone_number
        if number is None:
            if settings.messaging_service_sid or settings.whatsapp_number:
                return HealthCheck(name="phone_number", ok=True, detail="not configured")
            return HealthCheck(name="phone_number", ok=False, detail="no sender configured")
        try:
            owned = self._twilio(
                lambda rest: rest.incoming_phone_numbers.list(phone_number=number, limit=50)
            )
        except Exception as exc:
            _log.warning("health: could not list the account's numbers: %s", exc)
            return HealthCheck(name="phone_number", ok=False, detail=_describe(exc))
        if any(getattr(item, "phone_number", None) == number for item in owned):
            return HealthCheck(
                name="phone_number", ok=True, detail="one of the account's incoming numbers"
            )
        return HealthCheck(
            name="phone_number", ok=False, detail="not among the account's incoming numbers"
        )

    def _check_repository(self) -> HealthCheck:
        try:
            self.repository.ping()
        except Exception as exc:
            _log.warning("health: the repository did not answer: %s", exc)
            return HealthCheck(name="repository", ok=False, detail=_describe(exc))
        return HealthCheck(name="repository", ok=True, detail="answered ping()")


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"


def _mask_sid(sid: str) -> str:
    if len(sid) <= 10:
        return "*" * len(sid)
    return sid[:6] + "*" * (len(sid) - 10) + sid[-4:]


def _strip_prefix(value: object) -> str | None:
    return strip_channel_prefix(value) if isinstance(value, str) and value else None


def _check_prospect_id(prospect_id: object, *, required: bool = False) -> None:
    if prospect_id is None and not required:
        return
    if not isinstance(prospect_id, str):
        raise TypeError(f"prospect_id must be a string, not {type(prospect_id).__name__}")
    if not prospect_id.strip():
        raise ValueError("prospect_id must not be empty")


def _normalize_number(to: object, *, allow_whatsapp: bool, what: str) -> str:
    if (
        not allow_whatsapp
        and isinstance(to, str)
        and to.strip()[: len(_WHATSAPP)].lower() == _WHATSAPP
    ):
        raise InvalidPhoneNumber(to, f"a whatsapp: address cannot receive {what}")
    return normalize_e164(to)


def _check_content(
    channel: Channel,
    body: object,
    media_url: object,
    content_sid: object,
    content_variables: object,
) -> tuple[str | None, tuple[str, ...], str | None, str | None]:
    """The body, media URLs, template SID and JSON variables of a valid message."""
    if channel == Channel.SMS:
        if media_url is not None or content_sid is not None or content_variables is not None:
            raise ValueError("media and templates are sent with send_whatsapp, not as SMS")
        return _check_body(body, required=True), (), None, None
    text = _check_body(body, required=False)
    media = _check_media(media_url)
    template, variables = _check_template(content_sid, content_variables)
    if template is not None and (text is not None or media):
        raise ValueError("a template (content_sid) cannot be combined with body or media_url")
    if text is None and not media and template is None:
        raise ValueError("a WhatsApp message needs a body, media_url or content_sid")
    return text, media, template, variables


def _check_body(body: object, *, required: bool) -> str | None:
    if body is None:
        if required:
            raise ValueError("body is required")
        return None
    if not isinstance(body, str):
        raise TypeError(f"body must be a string, not {type(body).__name__}")
    if not body.strip():
        if required:
            raise ValueError("body must not be empty")
        return None
    if len(body) > MAX_BODY_CHARS:
        raise ValueError(f"body is {len(body)} characters; Twilio's limit is {MAX_BODY_CHARS}")
    return body


def _check_url(url: object, name: str) -> None:
    if not isinstance(url, str):
        raise TypeError(f"{name} must be a string, not {type(url).__name__}")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise ValueError(f"{name} is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        raise ValueError(f"{name} must be an absolute http(s) URL, got {url[:80]!r}")


def _check_media(media_url: object) -> tuple[str, ...]:
    if media_url is None:
        return ()
    urls: Sequence[object]
    if isinstance(media_url, str):
        urls = (media_url,)
    elif isinstance(media_url, list | tuple):
        urls = media_url
    else:
        raise TypeError(
            f"media_url must be a URL or a list of URLs, not {type(media_url).__name__}"
        )
    if not urls:
        raise ValueError("media_url must not be an empty list")
    if len(urls) > MAX_MEDIA:
        raise ValueError(f"{len(urls)} media URLs; Twilio's limit is {MAX_MEDIA}")
    for url in urls:
        _check_url(url, "media_url")
    return tuple(str(url) for url in urls)


def _check_template(content_sid: object, variables: object) -> tuple[str | None, str | None]:
    if content_sid is None:
        if variables is not None:
            raise ValueError("content_variables needs a content_sid")
        return None, None
    if not isinstance(content_sid, str) or not _CONTENT_SID.fullmatch(content_sid):
        raise ValueError("content_sid must be HX followed by 32 hex digits")
    if variables is None:
        return content_sid, None
    if not isinstance(variables, Mapping):
        raise TypeError(f"content_variables must be a mapping, not {type(variables).__name__}")
    if not all(isinstance(key, str) for key in variables):
        raise TypeError("content_variables keys must be strings")
    try:
        encoded = json.dumps(dict(variables), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"content_variables must be JSON-serializable: {exc}") from None
    return content_sid, encoded


def _with_query(url: str, **extra: str) -> str:
    if "?" not in url and "#" not in url:
        return f"{url}?{urlencode(extra)}"
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k not in extra]
    query.extend(extra.items())
    return urlunsplit(parts._replace(query=urlencode(query)))
