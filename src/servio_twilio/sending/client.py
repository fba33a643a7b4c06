"""`CommunicationsClient`: send SMS, WhatsApp and calls through Twilio, keep every record.

The rules live in `servio_twilio.sending.send_core` (one send; a batch runs its
steps in phases: `servio_twilio.sending.batch`) and `servio_twilio.sending.health`,
as generators of I/O steps; this client drives them with blocking calls
(`servio_twilio.domain.steps.run`), as `AsyncCommunicationsClient` awaits them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from servio_twilio.domain.models import Channel, Communication, utcnow
from servio_twilio.domain.settings import TwilioSettings
from servio_twilio.domain.steps import run
from servio_twilio.sending.batch import send_batch
from servio_twilio.sending.batch_input import BatchMessage, rate_cap
from servio_twilio.sending.costs import read_costs
from servio_twilio.sending.engines import ThreadEngine
from servio_twilio.sending.health import check_health, mask_sid
from servio_twilio.sending.limiter import SendLimiter
from servio_twilio.sending.policy import SendPolicy
from servio_twilio.sending.ratelimit import TokenBucket
from servio_twilio.sending.reconcile import reconcile
from servio_twilio.sending.results import BatchReport, HealthReport, ReconcileReport, SendResult
from servio_twilio.sending.send_core import (
    SendCore,
    check_collaborators,
    read_events,
    read_history,
)
from servio_twilio.sending.transport import RetryingHttpClient
from servio_twilio.sending.twilio_rest import TwilioRest
from servio_twilio.storage.memory import InMemoryRepository
from servio_twilio.storage.repository import CommunicationRepository

if TYPE_CHECKING:
    from twilio.http import HttpClient  # type: ignore[import-untyped]

__all__ = ["CommunicationsClient"]


class CommunicationsClient:
    """Send SMS, WhatsApp messages and calls through Twilio, and keep every one.

    ``repository`` defaults to a new `InMemoryRepository`. ``http_client`` is a
    ``twilio.http.HttpClient`` that does the HTTP (twilio's own by default;
    `servio_twilio.testing.FakeTwilio` in tests), wrapped in a
    `RetryingHttpClient` with ``timeout`` seconds per request and up to
    ``max_retries`` retries of 429s and failed connections, waiting with
    ``sleep``. ``clock`` returns aware UTC datetimes (record times).
    ``send_limiter`` caps sends per prospect (`SendLimiter`). ``policy`` is
    a `SendPolicy` (consent, sending hours) with a sync `ConsentStore`, if any.

    Every send validates its arguments first, then checks the policy (consent,
    then sending hours at ``clock``'s time) and the send limit: nothing is
    written or sent for bad input or a refused send. It then writes a
    ``pending`` record and calls Twilio with the record's id as ``cid`` on
    every callback URL it sets. Twilio's error 21610 (the number replied STOP)
    opts the number out in the policy's consent store.

    The twilio REST client is built on first use (thread-safe); with an API
    key in the settings it authenticates with the key.

    Raises:
        TypeError: an argument of the wrong type (an `AsyncConsentStore` in ``policy`` too).
        InvalidArgument: (a ``ValueError``) ``timeout`` or ``max_retries`` out of range.

    New in 0.1.0. Changed in 0.2.0: ``policy``.
    """

    def __init__(
        self,
        settings: TwilioSettings,
        *,
        repository: CommunicationRepository | None = None,
        http_client: HttpClient | None = None,
        clock: Callable[[], datetime] | None = None,
        timeout: float = 10.0,
        max_retries: int = 3,
        sleep: Callable[[float], object] = time.sleep,
        send_limiter: SendLimiter | None = None,
        policy: SendPolicy | None = None,
    ) -> None:
        check_collaborators(
            settings, send_limiter=send_limiter, clock=clock, sleep=sleep, policy=policy
        )
        if repository is None:
            repository = InMemoryRepository()
        elif not isinstance(repository, CommunicationRepository):
            raise TypeError(
                "repository must implement CommunicationRepository, "
                f"not {type(repository).__name__}"
            )
        http = RetryingHttpClient(
            http_client, timeout=timeout, max_retries=max_retries, sleep=sleep
        )
        self._core = SendCore(
            settings=settings,
            clock=clock or utcnow,
            limited=send_limiter is not None,
            policy=policy,
        )
        self._targets: dict[str, Any] = {
            "repository": repository,
            "twilio": TwilioRest(settings, http),
            "limiter": send_limiter,
            "consent": policy.consent if policy is not None else None,
        }
        self.repository: CommunicationRepository = repository
        """Where this client keeps its records."""
        self.send_limiter: SendLimiter | None = send_limiter
        """The per-prospect send cap, if any."""
        self.policy: SendPolicy | None = policy
        """The consent and sending-hours rules every send must pass, if any."""

    @property
    def settings(self) -> TwilioSettings:
        """The settings this client sends with."""
        return self._core.settings

    def __repr__(self) -> str:
        return (
            f"<CommunicationsClient account={mask_sid(self.settings.account_sid)} "
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
            InvalidArgument: (a ``ValueError``) an empty or too long body, a malformed
                callback URL, an empty ``prospect_id``.
            RecipientOptedOut: the number opted out of the channel (``policy``);
                nothing written or sent.
            OutsideSendingHours: outside the sending hours at the recipient
                (``policy``); nothing written or sent.
            SendLimitExceeded: over the send limit (`LimiterUnavailable`: the
                shared limit could not be checked); nothing written or sent.
            RepositoryError: the consent store could not be read, or the pending
                record could not be written; nothing sent.
            TwilioAPIError: Twilio refused (the record is ``failed``; with code
                21610 the number is opted out in the policy's consent store).
            SendOutcomeUnknown: no answer came (the record is ``unknown``).

        New in 0.1.0.
        """
        prepared = self._core.prepare_message(
            Channel.SMS, to, body=body, prospect_id=prospect_id, status_callback=status_callback
        )
        return run(self._core.send(prepared), self._targets)

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
        prepared = self._core.prepare_message(
            Channel.WHATSAPP,
            to,
            body=body,
            media_url=media_url,
            content_sid=content_sid,
            content_variables=content_variables,
            prospect_id=prospect_id,
            status_callback=status_callback,
        )
        return run(self._core.send(prepared), self._targets)

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
        prepared = self._core.prepare_call(
            to,
            twiml_url=twiml_url,
            twiml=twiml,
            record=record,
            prospect_id=prospect_id,
            status_callback=status_callback,
            recording_status_callback=recording_status_callback,
        )
        return run(self._core.send(prepared), self._targets)

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
        and checked as a single send is: an invalid one, or one the policy
        or the send limiter refuses, fails in the report with the reason, no
        record and no request, and the rest go out. The valid items'
        ``pending`` records are written in one ``repository.add_many``; if
        that fails, nothing is sent and each of them fails in the report. Then
        up to ``max_concurrency`` threads send, each item once (the client's
        retry rules apply per item), at most ``rate_per_second`` creates per
        second (a number, or a shared `TokenBucket`); Twilio's answers are
        merged into the records as they arrive, in groups of at least
        ``max(10, max_concurrency)`` (one ``repository.update_many`` each).
        Items Twilio refused with 21610 are opted out in the policy's
        consent store.

        Returns a `BatchReport` in input order: a failed item carries the
        error text and Twilio's code; an item whose outcome is unknown fails
        saying so, its record ``unknown`` until Twilio's callbacks settle it.

        Raises:
            BatchTooLarge: more than ``max_batch_size`` messages; nothing written or sent.
            InvalidArgument: (a ``ValueError``) ``max_concurrency`` or ``max_batch_size``
                below 1, or ``rate_per_second`` not a positive number.
            TypeError: ``messages`` is not an iterable of messages.

        New in 0.1.0.
        """
        rate = rate_cap(rate_per_second)
        steps = send_batch(
            self._core,
            messages,
            max_concurrency=max_concurrency,
            rated=rate is not None,
            max_batch_size=max_batch_size,
        )
        targets = {**self._targets, "rate": rate}
        targets["engine"] = ThreadEngine(targets)
        return run(steps, targets)

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
            InvalidArgument: (a ``ValueError``) an empty ``prospect_id``, ``limit`` outside
                1..1000, a naive ``before``, an unknown ``channel``.
            RepositoryError: storage failed.

        New in 0.1.0.
        """
        steps = read_history(prospect_id, channel=channel, limit=limit, before=before)
        return run(steps, self._targets)

    def events(self, communication_id: str) -> list[dict[str, Any]]:
        """The Twilio callbacks kept for a record, oldest first (empty when none).

        Raises:
            InvalidArgument: (a ``ValueError``) ``communication_id`` is not a non-empty string.
            RepositoryError: storage failed.

        New in 0.1.0.
        """
        return run(read_events(communication_id), self._targets)

    def health(self) -> HealthReport:
        """Check the Twilio account, the sender number and storage; never raises for their failures.

        Checks: ``account`` (the account is ``active``), ``phone_number`` (it
        is one of the account's IncomingPhoneNumbers), ``repository`` (it
        answers ``ping()``) and ``whatsapp_number`` (reported configured or
        not; it cannot be verified through Twilio's 2010 API and never fails).

        The number stays out of the request URLs (urllib3 logs them at
        DEBUG): the account's numbers are listed unfiltered, up to 3 pages of
        1000, and compared locally. The trade-off: a larger answer than a
        filtered lookup (about 1.3 KB per number, one request per 1000
        numbers); an account with more than 3000 numbers is asked by
        ``PhoneNumber=`` past those pages, which puts the number in the query
        string.

        New in 0.1.0.
        """
        return run(check_health(self.settings), self._targets)

    def reconcile(
        self,
        *,
        older_than: timedelta = timedelta(minutes=10),
        limit: int = 500,
        not_sent_after: timedelta = timedelta(hours=1),
        max_age: timedelta = timedelta(days=7),
        max_concurrency: int = 10,
    ) -> ReconcileReport:
        """Settle the records whose callbacks never came, from Twilio's API; never resends.

        Finds up to ``limit`` open records (a message ``pending``,
        ``unknown``, ``accepted``, ``scheduled``, ``queued``, ``sending`` or
        ``sent``; a call not yet ``completed``, or ``completed`` and owing
        the recording it was made with), newest first, whose ``timestamp``
        is older than ``older_than`` and younger than ``max_age``. Checks
        each with Twilio, up to ``max_concurrency`` at once: a record with a
        SID is fetched (with its recordings, for such a call); one without
        (its create's answer never came) is looked up in Twilio's list of
        messages or calls by ``To``, ``From`` and day, matched by body (a
        call: by start time, within a minute). What Twilio says is merged
        through the status rules, as a callback would be: nothing regresses
        and a callback landing meanwhile is kept, so two runs at once give
        the same records. A record without SID that Twilio does not list
        and older than ``not_sent_after`` becomes ``failed`` (``not sent:
        Twilio has no such message``).

        Returns a `ReconcileReport`; a record Twilio or storage could not
        answer for is in its ``failed`` list (the run goes on).

        Raises:
            InvalidArgument: (a ``ValueError``) ``limit`` outside 1..1000,
                ``max_concurrency`` below 1, a negative duration, or
                ``max_age`` not longer than ``older_than``.
            RepositoryError: the open records could not be read.

        New in 0.2.0.
        """
        steps = reconcile(
            clock=self._core.clock,
            older_than=older_than,
            limit=limit,
            not_sent_after=not_sent_after,
            max_age=max_age,
            max_concurrency=max_concurrency,
        )
        targets = dict(self._targets)
        targets["engine"] = ThreadEngine(targets)
        return run(steps, targets)

    def costs(self, prospect_id: str, *, since: datetime | None = None) -> dict[str, Decimal]:
        """What Twilio charged for a prospect's communications, per currency.

        Sums the ``price`` Twilio reported on each record (as a positive
        ``Decimal``, exactly) by ``price_unit`` (``{"USD": Decimal("0.0150")}``),
        over the records whose ``timestamp`` is at or after ``since`` (all
        when None). Records with no price yet (Twilio prices a message once
        it is sent; `reconcile` fetches it) count nothing.

        Raises:
            InvalidArgument: (a ``ValueError``) an empty ``prospect_id`` or a naive ``since``.
            RepositoryError: storage failed.

        New in 0.2.0.
        """
        return run(read_costs(prospect_id, since=since), self._targets)
