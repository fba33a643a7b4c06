"""`AsyncCommunicationsClient`: `CommunicationsClient` for event loops.

The same rules as the sync client, shared, not copied: every method drives
the generators of `servio_twilio.sending.send_core`, `.batch` and `.health`
with `servio_twilio.domain.steps.run_async`, on async targets: twilio's
async REST seam through `AsyncRetryingHttpClient`, an async repository, the
async methods of the send limiter and the consent store (a blocking sync
store in threads of the client's own), and a batch's items as tasks
(`TaskEngine`).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from types import SimpleNamespace, TracebackType
from typing import TYPE_CHECKING, Any

from servio_twilio.domain.models import Channel, Communication, utcnow
from servio_twilio.domain.settings import TwilioSettings
from servio_twilio.domain.steps import run_async
from servio_twilio.sending.async_transport import AsyncRetryingHttpClient
from servio_twilio.sending.batch import send_batch
from servio_twilio.sending.batch_input import BatchMessage, rate_cap
from servio_twilio.sending.costs import read_costs
from servio_twilio.sending.engines import TaskEngine
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
from servio_twilio.sending.twilio_rest import AsyncTwilioRest
from servio_twilio.storage.async_view import AsyncInMemoryRepository, AsyncRepositoryView
from servio_twilio.storage.consent import AsyncConsentStoreView
from servio_twilio.storage.repository import (
    AsyncCommunicationRepository,
    CommunicationRepository,
    is_async_repository,
)

if TYPE_CHECKING:
    from twilio.http import AsyncHttpClient  # type: ignore[import-untyped]

__all__ = ["AsyncCommunicationsClient"]


class AsyncCommunicationsClient:
    """Send SMS, WhatsApp messages and calls from an event loop, and keep every one.

    Every method of `CommunicationsClient`, as a coroutine, with the same
    arguments, results, errors, records and retry rules. ``repository`` is an
    `AsyncCommunicationRepository` (awaited on the loop; a new
    `AsyncInMemoryRepository` by default) or a sync `CommunicationRepository`
    (a ``blocking`` one runs in a pool of ``max_threads`` threads of this
    client's own, never asyncio's default executor). ``http_client`` is a
    ``twilio.http.AsyncHttpClient`` (``FakeTwilio().aio`` in tests; by
    default an aiohttp client of this library's, whose ``timeout`` holds on
    every request), wrapped in `AsyncRetryingHttpClient`: 429s and failures
    to connect are retried (``max_retries``, waiting with the async
    ``sleep``), nothing that may have reached Twilio is. ``send_limiter``
    is a `SendLimiter`: its ``try_acquire_async`` is awaited when it has one
    (`AsyncSendLimiter`: `InMemorySendLimiter`, `SharedSendLimiter`), else its
    ``try_acquire`` is called (awaited if it is a coroutine). ``policy`` is a
    `SendPolicy` whose consent store is an `AsyncConsentStore` (awaited) or a
    sync `ConsentStore` (a ``blocking`` one, such as
    `servio_twilio.firestore.FirestoreConsentStore`, runs in a pool of
    ``max_threads`` threads of its own; others inline). The checks and their
    order are `CommunicationsClient`'s.

    Use it as ``async with AsyncCommunicationsClient(...) as client:``, or
    call `aclose` when done: it closes the HTTP session, the threads, and the
    send limiter's connections on this loop (its ``aclose()``, if it has one).

    Raises:
        TypeError: an argument of the wrong type.
        InvalidArgument: (a ``ValueError``) ``timeout``, ``max_retries`` or
            ``max_threads`` out of range.

    New in 0.2.0.
    """

    def __init__(
        self,
        settings: TwilioSettings,
        *,
        repository: AsyncCommunicationRepository | CommunicationRepository | None = None,
        http_client: AsyncHttpClient | None = None,
        clock: Callable[[], datetime] | None = None,
        timeout: float = 10.0,
        max_retries: int = 3,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        send_limiter: SendLimiter | None = None,
        policy: SendPolicy | None = None,
        max_threads: int = 32,
    ) -> None:
        check_collaborators(
            settings,
            send_limiter=send_limiter,
            clock=clock,
            sleep=sleep,
            policy=policy,
            async_consent=True,
        )
        self._view: AsyncRepositoryView | None = None
        self._consent_view: AsyncConsentStoreView | None = None
        if repository is None:
            repository = AsyncInMemoryRepository()
        elif not is_async_repository(repository):
            if not isinstance(repository, CommunicationRepository):
                raise TypeError(
                    "repository must implement AsyncCommunicationRepository or "
                    f"CommunicationRepository, not {type(repository).__name__}"
                )
            repository = self._view = AsyncRepositoryView(repository, max_threads=max_threads)
        http = AsyncRetryingHttpClient(
            http_client, timeout=timeout, max_retries=max_retries, sleep=sleep
        )
        self._rest = AsyncTwilioRest(settings, http)
        consent: Any = None
        if policy is not None and policy.consent is not None:
            consent = policy.consent
            if not policy.async_consent:
                consent = self._consent_view = AsyncConsentStoreView(
                    policy.consent,  # type: ignore[arg-type]  # sync: async_consent is False
                    max_threads=max_threads,
                )
        self._core = SendCore(
            settings=settings,
            clock=clock or utcnow,
            limited=send_limiter is not None,
            policy=policy,
        )
        self._targets: dict[str, Any] = {
            "repository": repository,
            "twilio": self._rest,
            "limiter": _awaiting_limiter(send_limiter),
            "consent": consent,
        }
        self.repository: AsyncCommunicationRepository = repository  # type: ignore[assignment]
        """Where this client keeps its records (an async view of a sync repository given)."""
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
            f"<AsyncCommunicationsClient account={mask_sid(self.settings.account_sid)} "
            f"repository={type(self.repository).__name__}>"
        )

    async def __aenter__(self) -> AsyncCommunicationsClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the HTTP session, the threads this client started, and the limiter's
        connections on this loop (the send limiter's ``aclose()``, when it has one)."""
        await self._rest.aclose()
        if self._view is not None:
            self._view.close()
        if self._consent_view is not None:
            self._consent_view.close()
        close = getattr(self.send_limiter, "aclose", None)
        if inspect.iscoroutinefunction(close):
            await close()

    async def send_sms(
        self,
        to: str,
        body: str,
        *,
        prospect_id: str | None = None,
        status_callback: str | None = None,
    ) -> SendResult:
        """Send an SMS; see `CommunicationsClient.send_sms` (same errors, same record)."""
        prepared = self._core.prepare_message(
            Channel.SMS, to, body=body, prospect_id=prospect_id, status_callback=status_callback
        )
        return await run_async(self._core.send(prepared), self._targets)

    async def send_whatsapp(
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
        """Send a WhatsApp message; see `CommunicationsClient.send_whatsapp`."""
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
        return await run_async(self._core.send(prepared), self._targets)

    async def make_call(
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
        """Place a call; see `CommunicationsClient.make_call`."""
        prepared = self._core.prepare_call(
            to,
            twiml_url=twiml_url,
            twiml=twiml,
            record=record,
            prospect_id=prospect_id,
            status_callback=status_callback,
            recording_status_callback=recording_status_callback,
        )
        return await run_async(self._core.send(prepared), self._targets)

    async def send_batch(
        self,
        messages: Iterable[BatchMessage],
        *,
        max_concurrency: int = 10,
        rate_per_second: float | TokenBucket | None = None,
        max_batch_size: int = 100,
    ) -> BatchReport:
        """Send a batch; see `CommunicationsClient.send_batch`.

        The items are tasks on the running loop, at most ``max_concurrency``
        at once; a rate cap is taken with its ``acquire_async()``, so a
        `TokenBucket` shared with sync senders paces them all together.
        """
        rate = rate_cap(rate_per_second)
        steps = send_batch(
            self._core,
            messages,
            max_concurrency=max_concurrency,
            rated=rate is not None,
            max_batch_size=max_batch_size,
        )
        targets = dict(self._targets)
        if rate is not None:
            targets["rate"] = SimpleNamespace(acquire=rate.acquire_async)
        targets["engine"] = TaskEngine(targets)
        return await run_async(steps, targets)

    async def history(
        self,
        prospect_id: str,
        *,
        channel: Channel | None = None,
        limit: int = 50,
        before: datetime | None = None,
    ) -> list[Communication]:
        """A prospect's communications, newest first; see `CommunicationsClient.history`."""
        steps = read_history(prospect_id, channel=channel, limit=limit, before=before)
        return await run_async(steps, self._targets)

    async def events(self, communication_id: str) -> list[dict[str, Any]]:
        """A record's kept callbacks, oldest first; see `CommunicationsClient.events`."""
        return await run_async(read_events(communication_id), self._targets)

    async def health(self) -> HealthReport:
        """Check the account, the sender and storage; see `CommunicationsClient.health`."""
        return await run_async(check_health(self.settings), self._targets)

    async def reconcile(
        self,
        *,
        older_than: timedelta = timedelta(minutes=10),
        limit: int = 500,
        not_sent_after: timedelta = timedelta(hours=1),
        max_age: timedelta = timedelta(days=7),
        max_concurrency: int = 10,
    ) -> ReconcileReport:
        """Settle the records whose callbacks never came; see `CommunicationsClient.reconcile`.

        The records are checked as tasks, up to ``max_concurrency`` at once.

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
        targets["engine"] = TaskEngine(targets)
        return await run_async(steps, targets)

    async def costs(self, prospect_id: str, *, since: datetime | None = None) -> dict[str, Decimal]:
        """What Twilio charged for a prospect, per currency; see `CommunicationsClient.costs`.

        New in 0.2.0.
        """
        return await run_async(read_costs(prospect_id, since=since), self._targets)


def _awaiting_limiter(limiter: SendLimiter | None) -> Any:
    """The ``limiter`` target: ``try_acquire`` is the limiter's ``try_acquire_async`` if any."""
    if limiter is None:
        return None
    acquire = getattr(limiter, "try_acquire_async", None)
    return SimpleNamespace(try_acquire=acquire if callable(acquire) else limiter.try_acquire)
