"""`SendPath`: the steps of one send, shared by the client and its batches.

One send is four steps, kept apart so a batch can run them in phases:

1. `SendPath.prepare_message` / `SendPath.prepare_call`: validate everything
   and build the pending record and Twilio's create parameters; touches
   nothing (`servio_twilio.sending.checks`, `servio_twilio.sending.prepare`).
2. `SendPath.check_limit`: the send limiter (`SendLimitExceeded`).
3. `SendPath.write_ahead`: store the ``pending`` record (`RepositoryError`: nothing sent).
4. `SendPath.dispatch`: call Twilio through the retrying HTTP client, merge the
   answer into the record with the status rules, translate errors
   (`servio_twilio.sending.dispatch`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime
from typing import Any

from servio_twilio.domain.errors import RepositoryError, SendLimitExceeded
from servio_twilio.domain.models import Channel
from servio_twilio.domain.settings import TwilioSettings
from servio_twilio.sending.dispatch import TwilioAnswer, ask_twilio, dispatch
from servio_twilio.sending.limiter import SendLimiter
from servio_twilio.sending.prepare import PreparedSend, prepare_call, prepare_message
from servio_twilio.sending.results import SendResult
from servio_twilio.sending.twilio_rest import TwilioRest
from servio_twilio.storage.repository import CommunicationRepository

__all__ = ["SendPath"]

_log = logging.getLogger("servio_twilio.client")


class SendPath:
    """The settings, clock, storage, limiter and Twilio access of one client, and its steps.

    Internal: `CommunicationsClient` builds one; its batches run the same steps.
    """

    def __init__(
        self,
        *,
        settings: TwilioSettings,
        clock: Callable[[], datetime],
        repository: CommunicationRepository,
        rest: TwilioRest,
        send_limiter: SendLimiter | None,
    ) -> None:
        self.settings = settings
        self.clock = clock
        self.repository = repository
        self.rest = rest
        self.send_limiter = send_limiter
        self._warned_no_callbacks = False

    def send(self, prepared: PreparedSend) -> SendResult:
        """Check the limit, write the pending record, call Twilio: one whole send."""
        self.check_limit(prepared)
        self.write_ahead(prepared)
        return self.dispatch(prepared)

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

    def check_limit(self, prepared: PreparedSend) -> None:
        """Raise `SendLimitExceeded` when the limiter refuses; count the send otherwise."""
        if self.send_limiter is None:
            return
        retry_after = self.send_limiter.try_acquire(prepared.limit_key)
        if retry_after is not None:
            raise SendLimitExceeded(prepared.limit_name, float(retry_after))

    def write_ahead(self, prepared: PreparedSend) -> None:
        """Store the pending record; `RepositoryError` when storage fails (nothing sent)."""
        try:
            self.repository.add(prepared.record)
        except RepositoryError:
            raise
        except Exception as exc:
            raise RepositoryError(
                f"could not store the pending record: {type(exc).__name__}: {exc}"
            ) from exc

    def ask(self, prepared: PreparedSend) -> TwilioAnswer:
        """Call Twilio for a written record; its answer, to merge later (a batch groups them)."""
        return ask_twilio(prepared, self.rest)

    def dispatch(self, prepared: PreparedSend) -> SendResult:
        """Call Twilio for a written record, complete the record, translate errors."""
        return dispatch(prepared, rest=self.rest, repository=self.repository, clock=self.clock)

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
