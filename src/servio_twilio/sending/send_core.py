"""`SendCore`: the rules of one send, shared by the sync and the async client.

One send is four steps, each a generator of `servio_twilio.domain.steps.Call`
steps (no I/O of its own), kept apart so a batch can run them in phases:

1. `SendCore.prepare_message` / `SendCore.prepare_call`: validate everything
   and build the pending record and Twilio's create parameters; pure
   (`servio_twilio.sending.checks`, `servio_twilio.sending.prepare`).
2. `SendCore.admit`: the client's `SendPolicy`, in this order: consent
   (`RecipientOptedOut`; the ``consent`` target), sending hours
   (`OutsideSendingHours`, on the client's clock); then the send limiter
   (`SendLimitExceeded`, `LimiterUnavailable`; the ``limiter`` target).
3. `write_ahead`: store the ``pending`` record (`RepositoryError`: nothing sent).
4. `dispatch`: ask Twilio, merge the answer into the record with the status
   rules, translate errors; Twilio's error 21610 opts the number out in the
   consent store (`servio_twilio.sending.dispatch`).

`CommunicationsClient` drives `SendCore.send` with `servio_twilio.domain.steps.run`,
`AsyncCommunicationsClient` with `servio_twilio.domain.steps.run_async`. Each
send is observed there, for both clients: a span, counted and timed by its
outcome (`servio_twilio.domain.telemetry`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from servio_twilio.domain.errors import (
    InvalidArgument,
    RecipientOptedOut,
    RepositoryError,
    SendLimitExceeded,
)
from servio_twilio.domain.models import Channel, Communication, parse_channel
from servio_twilio.domain.phone_text import mask_phone_numbers
from servio_twilio.domain.settings import TwilioSettings
from servio_twilio.domain.steps import Call, Steps
from servio_twilio.domain.telemetry import start_send
from servio_twilio.sending.checks import check_prospect_id
from servio_twilio.sending.dispatch import dispatch
from servio_twilio.sending.policy import SendPolicy
from servio_twilio.sending.prepare import PreparedSend, prepare_call, prepare_message
from servio_twilio.sending.results import SendResult

__all__ = [
    "SendCore",
    "check_collaborators",
    "check_consent",
    "read_events",
    "read_history",
    "write_ahead",
]

_log = logging.getLogger("servio_twilio.client")


class SendCore:
    """The settings, clock, policy and limits of one client, and the steps of its sends.

    Internal: each client builds one; its batches run the same steps.
    ``limited`` says whether the client has a send limiter (the ``limiter``
    target); ``policy`` is the client's `SendPolicy`, whose consent store is
    the ``consent`` target.
    """

    def __init__(
        self,
        *,
        settings: TwilioSettings,
        clock: Callable[[], datetime],
        limited: bool,
        policy: SendPolicy | None = None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.limited = limited
        self.policy = policy
        self._warned_no_callbacks = False

    @property
    def consented(self) -> bool:
        """Whether the policy has a consent store (the ``consent`` target)."""
        return self.policy is not None and self.policy.consent is not None

    def send(self, prepared: PreparedSend) -> Steps[SendResult]:
        """Admit, write the pending record, call Twilio: one whole send, with its telemetry."""
        observed = start_send(prepared.record.channel, prepared.communication_id)
        try:
            yield from self.admit(prepared)
            yield from write_ahead(prepared)
            observed.dispatching()
            result = yield from dispatch(prepared, clock=self.clock, consent=self.consented)
        except BaseException as exc:
            observed.raised(exc)
            raise
        observed.sent()
        return result

    def prepare_message(self, channel: Channel, to: str, **options: Any) -> PreparedSend:
        """Validate one SMS or WhatsApp message (options as `prepare_message`); touch nothing."""
        prepared = prepare_message(self.settings, self.clock, channel, to, **options)
        self._warn_once_without_callbacks(prepared)
        return prepared

    def prepare_call(self, to: str, **options: Any) -> PreparedSend:
        """Validate one call (options as `prepare_call`); touch nothing."""
        prepared = prepare_call(self.settings, self.clock, to, **options)
        self._warn_once_without_callbacks(prepared)
        return prepared

    def admit(self, prepared: PreparedSend) -> Steps[None]:
        """Check the policy, then the send limit; nothing is written or sent on a refusal.

        In order: consent (`RecipientOptedOut`; `RepositoryError` when the
        store fails: fail closed), sending hours (`OutsideSendingHours`), the
        limiter (`SendLimitExceeded`, `LimiterUnavailable`), which counts the
        send only once the policy let it through.
        """
        if self.consented:
            yield from check_consent(prepared)
        if self.policy is not None:
            self.policy.check_sending_hours(prepared.record.to, self.clock())
        if not self.limited:
            return
        retry_after = yield Call("limiter", "try_acquire", (prepared.limit_key,))
        if retry_after is not None:
            raise SendLimitExceeded(prepared.limit_name, float(retry_after))

    def _warn_once_without_callbacks(self, prepared: PreparedSend) -> None:
        """The first send that asks Twilio for no status callbacks says so, once per client."""
        if self._warned_no_callbacks or "status_callback" in prepared.params:
            return
        self._warned_no_callbacks = True
        _log.warning(
            "sending without status callbacks: settings.webhook_base_url is not set "
            "(TWILIO_WEBHOOK_BASE_URL or BACKEND_URL), so records stay at Twilio's first "
            "answer; set it to the public URL where the webhook app is mounted"
        )


def check_consent(prepared: PreparedSend) -> Steps[None]:
    """Raise `RecipientOptedOut` when the recipient opted out of the send's channel.

    A store that fails raises `RepositoryError` (its own, or ours naming the
    cause): the send is refused, never made unchecked.
    """
    record = prepared.record
    try:
        opted_out = yield Call("consent", "is_opted_out", (record.to, record.channel))
    except RepositoryError:
        raise
    except Exception as exc:
        detail = mask_phone_numbers(str(exc))
        raise RepositoryError(f"could not check consent: {type(exc).__name__}: {detail}") from exc
    if opted_out:
        raise RecipientOptedOut(record.to, record.channel)


def write_ahead(prepared: PreparedSend) -> Steps[None]:
    """Store the pending record; `RepositoryError` when storage fails (nothing sent)."""
    try:
        yield Call("repository", "add", (prepared.record,))
    except RepositoryError:
        raise
    except Exception as exc:
        raise RepositoryError(
            f"could not store the pending record: {type(exc).__name__}: {exc}"
        ) from exc


def check_collaborators(
    settings: object,
    *,
    send_limiter: object,
    clock: object,
    sleep: object,
    policy: object = None,
    async_consent: bool = False,
) -> None:
    """Raise `TypeError` for a client argument of the wrong kind (both clients' rules).

    ``async_consent`` says whether the client can await an `AsyncConsentStore`
    in its ``policy`` (the async client can; the sync one needs a sync store).
    """
    if not isinstance(settings, TwilioSettings):
        raise TypeError(f"settings must be TwilioSettings, not {type(settings).__name__}")
    if send_limiter is not None and not callable(getattr(send_limiter, "try_acquire", None)):
        raise TypeError(
            f"send_limiter must implement SendLimiter, not {type(send_limiter).__name__}"
        )
    if clock is not None and not callable(clock):
        raise TypeError("clock must be callable")
    if not callable(sleep):
        raise TypeError("sleep must be callable")
    if policy is not None:
        if not isinstance(policy, SendPolicy):
            raise TypeError(f"policy must be a SendPolicy, not {type(policy).__name__}")
        if policy.async_consent and not async_consent:
            raise TypeError(
                "CommunicationsClient needs a sync ConsentStore in its policy, not "
                f"{type(policy.consent).__name__} (an AsyncConsentStore is for "
                "AsyncCommunicationsClient)"
            )


def read_history(
    prospect_id: str,
    *,
    channel: Channel | str | None,
    limit: int,
    before: datetime | None,
) -> Steps[list[Communication]]:
    """A prospect's records, newest first, after checking the arguments (see ``history``)."""
    check_prospect_id(prospect_id, required=True)
    if channel is not None:
        channel = parse_channel(channel)
    options = {"channel": channel, "limit": limit, "before": before}
    records: list[Communication] = yield Call("repository", "history", (prospect_id,), options)
    return records


def read_events(communication_id: str) -> Steps[list[dict[str, Any]]]:
    """A record's kept callbacks, oldest first, after checking the id (see ``events``)."""
    if not isinstance(communication_id, str) or not communication_id:
        raise InvalidArgument("communication_id must be a non-empty string")
    events: list[dict[str, Any]] = yield Call("repository", "events", (communication_id,))
    return events
