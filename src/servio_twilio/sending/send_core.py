"""`SendCore`: the rules of one send, shared by the sync and the async client.

One send is four steps, each a generator of `servio_twilio.sending.steps.Call`
steps (no I/O of its own), kept apart so a batch can run them in phases:

1. `SendCore.prepare_message` / `SendCore.prepare_call`: validate everything
   and build the pending record and Twilio's create parameters; pure
   (`servio_twilio.sending.checks`, `servio_twilio.sending.prepare`).
2. `SendCore.admit`: the send limiter (`SendLimitExceeded`).
3. `write_ahead`: store the ``pending`` record (`RepositoryError`: nothing sent).
4. `dispatch`: ask Twilio, merge the answer into the record with the status
   rules, translate errors (`servio_twilio.sending.dispatch`).

`CommunicationsClient` drives `SendCore.send` with `servio_twilio.sending.steps.run`,
`AsyncCommunicationsClient` with `servio_twilio.sending.steps.run_async`.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from servio_twilio.domain.errors import InvalidArgument, RepositoryError, SendLimitExceeded
from servio_twilio.domain.models import Channel, Communication, parse_channel
from servio_twilio.domain.settings import TwilioSettings
from servio_twilio.sending.checks import check_prospect_id
from servio_twilio.sending.dispatch import dispatch
from servio_twilio.sending.prepare import PreparedSend, prepare_call, prepare_message
from servio_twilio.sending.results import SendResult
from servio_twilio.sending.steps import Call, Steps

__all__ = ["SendCore", "check_collaborators", "read_events", "read_history", "write_ahead"]

_log = logging.getLogger("servio_twilio.client")


class SendCore:
    """The settings, clock and limits of one client, and the steps of its sends.

    Internal: each client builds one; its batches run the same steps.
    ``limited`` says whether the client has a send limiter (the ``limiter``
    target).
    """

    def __init__(
        self,
        *,
        settings: TwilioSettings,
        clock: Callable[[], datetime],
        limited: bool,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.limited = limited
        self._warned_no_callbacks = False

    def send(self, prepared: PreparedSend) -> Steps[SendResult]:
        """Admit, write the pending record, call Twilio: one whole send."""
        yield from self.admit(prepared)
        yield from write_ahead(prepared)
        return (yield from dispatch(prepared, clock=self.clock))

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
        """Raise `SendLimitExceeded` when the limiter refuses; count the send otherwise."""
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
    settings: object, *, send_limiter: object, clock: object, sleep: object
) -> None:
    """Raise `TypeError` for a client argument of the wrong kind (both clients' rules)."""
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
