"""The send policy wired into both clients: consent, sending hours and the send limit.

Every rule is tested once, on both clients (the ``client_kind`` fixture and
`support.clients.make_client`): what a refused send leaves (no record, no
request), the order of the checks, batch items, Twilio's error 21610, a
consent store that is down. The async client's own collaborators (an async
consent store, a blocking sync one in threads, a limiter's async method) are
tested at the end.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from datetime import UTC, datetime, time
from typing import Any

import attrs
import pytest

from servio_twilio import (
    AsyncCommunicationsClient,
    AsyncInMemoryConsentStore,
    CommunicationsClient,
    InMemoryConsentStore,
    InMemorySendLimiter,
    LimiterUnavailable,
    OutboundMessage,
    OutsideSendingHours,
    RecipientOptedOut,
    RepositoryError,
    SendLimitExceeded,
    SendPolicy,
    SharedSendLimiter,
    TwilioAPIError,
)
from servio_twilio.domain.errors import InvalidPhoneNumber
from servio_twilio.domain.models import Channel
from servio_twilio.storage.consent import AsyncConsentStoreView
from servio_twilio.storage.memory import InMemoryRepository
from servio_twilio.testing import FakeTwilio
from servio_twilio.testing.fake_twilio import Fault
from support.clients import make_client
from support.sending import T0, TO, make_settings

both = pytest.mark.usefixtures("client_kind")

OTHER = "+5511988887777"  # São Paulo, as TO
NEW_YORK = "+12125550123"  # 07:00 in New York at T0 (12:00 UTC): outside 08:00-21:00
DAY = (time(8), time(21))
NIGHT = datetime(2025, 1, 1, 2, 0, tzinfo=UTC)  # 23:00 in São Paulo
SAO_PAULO_OPENS = datetime(2025, 1, 1, 11, 0, tzinfo=UTC)  # 08:00 in São Paulo
TWIML = "<Response><Say>hi</Say></Response>"


class Clock:
    """A settable clock (aware UTC): the client's record times and sending-hours checks."""

    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class SpyStore(InMemoryConsentStore):
    """An in-memory consent store that counts its calls and can be made to fail.

    ``down`` is raised by every call; ``fail_opt_out`` only by ``opt_out``.
    ``threads`` names the thread of each call.
    """

    def __init__(self, *, blocking: bool = False) -> None:
        super().__init__()
        self.blocking = blocking
        self.calls: list[str] = []
        self.threads: list[str] = []
        self.down: Exception | None = None
        self.fail_opt_out: Exception | None = None

    def _seen(self, method: str) -> None:
        self.calls.append(method)
        self.threads.append(threading.current_thread().name)
        if self.down is not None:
            raise self.down

    def is_opted_out(self, number: str, channel: Channel | str) -> bool:
        self._seen("is_opted_out")
        return super().is_opted_out(number, channel)

    def opt_out(self, number: str, channel: Channel | str, *, source: str) -> None:
        self._seen("opt_out")
        if self.fail_opt_out is not None:
            raise self.fail_opt_out
        super().opt_out(number, channel, source=source)


@attrs.define
class Kit:
    client: Any
    fake: FakeTwilio
    repo: InMemoryRepository
    store: SpyStore
    clock: Clock


def _kit(*, sending_hours: tuple[time, time] | None = None, **kwargs: Any) -> Kit:
    """A client of the running kind with a consent store (and hours when given)."""
    fake, repo, store, clock = FakeTwilio(), InMemoryRepository(), SpyStore(), Clock()
    policy = SendPolicy(consent=store, sending_hours=sending_hours)
    client = make_client(
        make_settings(), repository=repo, http_client=fake, clock=clock, policy=policy, **kwargs
    )
    return Kit(client=client, fake=fake, repo=repo, store=store, clock=clock)


@pytest.fixture
def kit() -> Kit:
    return _kit()


def _batch(*numbers: str) -> list[OutboundMessage]:
    return [
        OutboundMessage(to=n, body=f"to {n}", prospect_id=f"p{i}") for i, n in enumerate(numbers)
    ]


@both
class TestArguments:
    def test_policy_is_an_attribute(self) -> None:
        """The client keeps the policy it was given as ``policy`` (None without one)."""
        policy = SendPolicy(sending_hours=DAY)
        client = make_client(make_settings(), http_client=FakeTwilio(), policy=policy)
        assert client.policy is policy
        assert make_client(make_settings(), http_client=FakeTwilio()).policy is None

    @pytest.mark.parametrize("policy", [object(), {"consent": None}, InMemoryConsentStore()])
    def test_a_policy_of_the_wrong_type(self, policy: object) -> None:
        """Anything but a SendPolicy is refused with TypeError when the client is built."""
        with pytest.raises(TypeError, match="policy must be a SendPolicy"):
            make_client(make_settings(), http_client=FakeTwilio(), policy=policy)


class TestSyncClientArguments:
    def test_the_sync_client_refuses_an_async_consent_store(self) -> None:
        """A sync client cannot await an AsyncConsentStore: TypeError, naming the async client."""
        policy = SendPolicy(consent=AsyncInMemoryConsentStore())
        with pytest.raises(TypeError, match="AsyncCommunicationsClient"):
            CommunicationsClient(make_settings(), http_client=FakeTwilio(), policy=policy)


@both
class TestConsent:
    def test_an_opted_out_number_is_refused_before_anything(self, kit: Kit) -> None:
        """RecipientOptedOut with the number and channel; no record written, no request made."""
        kit.store.opt_out(TO, "sms", source="admin")
        with pytest.raises(RecipientOptedOut) as caught:
            kit.client.send_sms(TO, "hello")
        assert (caught.value.number, caught.value.channel) == (TO, "sms")
        assert len(kit.repo) == 0
        assert kit.fake.requests == []

    def test_whatsapp_and_sms_are_separate(self, kit: Kit) -> None:
        """A WhatsApp opt-out refuses WhatsApp sends only; SMS to the number still goes."""
        kit.store.opt_out(f"whatsapp:{TO}", "whatsapp", source="inbound:STOP")
        with pytest.raises(RecipientOptedOut) as caught:
            kit.client.send_whatsapp(f"whatsapp:{TO}", "hello")
        assert caught.value.channel == "whatsapp"
        assert kit.fake.requests == []
        kit.client.send_sms(TO, "hello")
        assert len(kit.fake.requests) == 1
        assert len(kit.repo) == 1

    def test_an_sms_opt_out_leaves_whatsapp(self, kit: Kit) -> None:
        """An SMS opt-out refuses SMS and lets WhatsApp go."""
        kit.store.opt_out(TO, "sms", source="inbound:STOP")
        kit.client.send_whatsapp(TO, "hello")
        with pytest.raises(RecipientOptedOut):
            kit.client.send_sms(TO, "hello")
        assert len(kit.fake.requests) == 1

    def test_calls_are_checked_on_the_call_channel(self, kit: Kit) -> None:
        """A number opted out of calls gets no call, and its messages still go."""
        kit.store.opt_out(TO, "call", source="admin")
        with pytest.raises(RecipientOptedOut) as caught:
            kit.client.make_call(TO, twiml=TWIML)
        assert caught.value.channel == "call"
        kit.client.send_sms(TO, "hello")
        assert [r.path.rsplit("/", 1)[-1] for r in kit.fake.requests] == ["Messages.json"]

    def test_opting_back_in_lets_the_send_go(self, kit: Kit) -> None:
        """After opt_in, the same send is made and recorded."""
        kit.store.opt_out(TO, "sms", source="inbound:STOP")
        with pytest.raises(RecipientOptedOut):
            kit.client.send_sms(TO, "hello")
        kit.store.opt_in(TO, "sms", source="inbound:START")
        result = kit.client.send_sms(TO, "hello")
        assert result.sid.startswith("SM")
        assert len(kit.fake.requests) == 1
        assert len(kit.repo) == 1

    def test_one_read_per_send(self, kit: Kit) -> None:
        """A send that goes asks the store once and writes nothing to it."""
        kit.client.send_sms(TO, "hello")
        assert kit.store.calls == ["is_opted_out"]


@both
class TestSendingHours:
    def test_outside_the_hours_nothing_is_written_or_sent(self) -> None:
        """OutsideSendingHours with next_allowed_at (08:00 in São Paulo, as aware UTC)."""
        kit = _kit(sending_hours=DAY)
        kit.clock.now = NIGHT
        with pytest.raises(OutsideSendingHours) as caught:
            kit.client.send_sms(TO, "hello")
        assert caught.value.next_allowed_at == SAO_PAULO_OPENS
        assert caught.value.time_zones == ("America/Sao_Paulo",)
        assert len(kit.repo) == 0
        assert kit.fake.requests == []

    def test_calls_included(self) -> None:
        """A call outside the hours is refused as a message is."""
        kit = _kit(sending_hours=DAY)
        kit.clock.now = NIGHT
        with pytest.raises(OutsideSendingHours):
            kit.client.make_call(TO, twiml=TWIML)
        assert len(kit.repo) == 0
        assert kit.fake.requests == []

    def test_the_clients_clock_decides(self) -> None:
        """The same send goes once the client's clock reaches next_allowed_at."""
        kit = _kit(sending_hours=DAY)
        kit.clock.now = NIGHT
        with pytest.raises(OutsideSendingHours) as caught:
            kit.client.send_whatsapp(TO, "hello")
        assert caught.value.next_allowed_at is not None
        kit.clock.now = caught.value.next_allowed_at
        kit.client.send_whatsapp(TO, "hello")
        assert len(kit.fake.requests) == 1

    def test_the_recipients_zone_decides(self) -> None:
        """At 12:00 UTC São Paulo (09:00) is inside and New York (07:00) outside."""
        kit = _kit(sending_hours=DAY)
        kit.client.send_sms(TO, "hello")
        with pytest.raises(OutsideSendingHours) as caught:
            kit.client.send_sms(NEW_YORK, "hello")
        assert caught.value.next_allowed_at == datetime(2025, 1, 1, 13, 0, tzinfo=UTC)
        assert len(kit.fake.requests) == 1


@both
class TestOrder:
    def test_validation_comes_first(self, kit: Kit) -> None:
        """A malformed number is refused as such, before the consent store is asked."""
        with pytest.raises(InvalidPhoneNumber):
            kit.client.send_sms("not a number", "hello")
        assert kit.store.calls == []

    def test_consent_before_sending_hours(self) -> None:
        """An opted-out number outside the hours raises RecipientOptedOut."""
        kit = _kit(sending_hours=DAY)
        kit.clock.now = NIGHT
        kit.store.opt_out(TO, "sms", source="admin")
        with pytest.raises(RecipientOptedOut):
            kit.client.send_sms(TO, "hello")

    def test_the_limiter_is_not_charged_for_a_refused_send(self) -> None:
        """Sends refused by consent or by the hours leave the prospect's send count untouched."""
        limiter = InMemorySendLimiter(max_sends=1, per_seconds=60)
        kit = _kit(sending_hours=DAY, send_limiter=limiter)
        kit.store.opt_out(OTHER, "sms", source="admin")
        with pytest.raises(RecipientOptedOut):
            kit.client.send_sms(OTHER, "hello", prospect_id="p1")
        with pytest.raises(OutsideSendingHours):
            kit.client.send_sms(NEW_YORK, "hello", prospect_id="p1")
        assert limiter.remaining("p1") == 1
        kit.client.send_sms(TO, "hello", prospect_id="p1")
        with pytest.raises(SendLimitExceeded):
            kit.client.send_sms(TO, "again", prospect_id="p1")
        assert len(kit.fake.requests) == 1

    def test_the_limit_comes_after_the_policy(self) -> None:
        """A prospect over its limit whose number is opted out hears RecipientOptedOut."""
        limiter = InMemorySendLimiter(max_sends=1, per_seconds=60)
        kit = _kit(send_limiter=limiter)
        kit.client.send_sms(TO, "hello", prospect_id="p1")
        kit.store.opt_out(TO, "sms", source="admin")
        with pytest.raises(RecipientOptedOut):
            kit.client.send_sms(TO, "again", prospect_id="p1")


@both
class TestBatch:
    def test_refused_items_fail_with_their_reason(self) -> None:
        """An opted-out item and one outside the hours fail with no record; the other goes."""
        kit = _kit(sending_hours=DAY)
        kit.store.opt_out(OTHER, "sms", source="admin")
        report = kit.client.send_batch(_batch(TO, OTHER, NEW_YORK))
        ok, opted_out, night = report.items
        assert ok.ok
        assert not opted_out.ok
        assert "opted out of" in (opted_out.error or "")
        assert not night.ok
        assert "outside sending hours" in (night.error or "")
        assert "next allowed at 2025-01-01T13:00:00+00:00" in (night.error or "")
        assert opted_out.communication_id is None
        assert night.communication_id is None
        assert len(kit.repo) == 1
        assert [r.data["To"] for r in kit.fake.requests] == [TO]

    def test_the_limiter_is_not_charged_for_refused_items(self) -> None:
        """Batch items refused by the policy take nothing from the prospect's limit."""
        limiter = InMemorySendLimiter(max_sends=1, per_seconds=60)
        kit = _kit(sending_hours=DAY, send_limiter=limiter)
        kit.store.opt_out(OTHER, "sms", source="admin")
        messages = [
            OutboundMessage(to=n, body="hi", prospect_id="p1") for n in (OTHER, NEW_YORK, TO)
        ]
        report = kit.client.send_batch(messages)
        assert [item.ok for item in report.items] == [False, False, True]

    def test_a_whole_batch_refused_writes_nothing(self, kit: Kit) -> None:
        """When every item is refused, nothing is written and nothing is sent."""
        kit.store.opt_out(TO, "sms", source="admin")
        kit.store.opt_out(OTHER, "sms", source="admin")
        report = kit.client.send_batch(_batch(TO, OTHER))
        assert report.failed == 2
        assert len(kit.repo) == 0
        assert kit.fake.requests == []


@both
class TestTwilioOptOut:
    def test_21610_opts_the_number_out_and_the_next_send_is_refused(self, kit: Kit) -> None:
        """Twilio's 21610 raises as Twilio's error, fails the record and opts the number out."""
        kit.fake.fail_number(TO, Fault.error(21610, 400))
        with pytest.raises(TwilioAPIError) as caught:
            kit.client.send_sms(TO, "hello")
        assert caught.value.code == 21610
        record = kit.repo.get(caught.value.communication_id or "")
        assert record is not None
        assert record.status == "failed"
        consent = kit.store.get(TO, "sms")
        assert consent is not None
        assert (consent.opted_out, consent.source) == (True, "twilio:21610")
        assert not kit.store.is_opted_out(TO, "whatsapp")
        with pytest.raises(RecipientOptedOut):
            kit.client.send_sms(TO, "again")
        assert len(kit.fake.requests) == 1

    def test_21610_on_whatsapp_opts_out_of_whatsapp(self, kit: Kit) -> None:
        """A WhatsApp 21610 opts the number out of WhatsApp; SMS still goes."""
        kit.fake.fail_number(TO, Fault.error(21610, 400), times=1)
        with pytest.raises(TwilioAPIError):
            kit.client.send_whatsapp(TO, "hello")
        assert kit.store.is_opted_out(TO, "whatsapp")
        assert not kit.store.is_opted_out(TO, "sms")
        kit.client.send_sms(TO, "hello")

    def test_other_refusals_change_no_consent(self, kit: Kit) -> None:
        """A refusal with another code (21211) leaves the consent store alone."""
        kit.fake.fail_number(TO, Fault.error(21211, 400))
        with pytest.raises(TwilioAPIError):
            kit.client.send_sms(TO, "hello")
        assert kit.store.get(TO, "sms") is None
        assert "opt_out" not in kit.store.calls

    def test_a_failing_store_never_hides_twilios_error(
        self, kit: Kit, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The store failing on opt_out is logged (number masked); Twilio's error is raised."""
        kit.fake.fail_number(TO, Fault.error(21610, 400))
        kit.store.fail_opt_out = RepositoryError(f"store down while writing {TO}")
        with (
            caplog.at_level(logging.ERROR, logger="servio_twilio"),
            pytest.raises(TwilioAPIError) as caught,
        ):
            kit.client.send_sms(TO, "hello")
        assert caught.value.code == 21610
        assert "could not opt +55119*****999 out of sms" in caplog.text
        assert TO not in caplog.text
        record = kit.repo.get(caught.value.communication_id or "")
        assert record is not None
        assert record.status == "failed"

    def test_without_a_consent_store_21610_is_only_an_error(self) -> None:
        """With no consent store (hours only), 21610 raises Twilio's error and nothing else."""
        fake = FakeTwilio()
        fake.fail_number(TO, Fault.error(21610, 400))
        client = make_client(
            make_settings(),
            http_client=fake,
            clock=Clock(),
            policy=SendPolicy(sending_hours=DAY),
        )
        with pytest.raises(TwilioAPIError):
            client.send_sms(TO, "hello")

    def test_a_batch_opts_out_each_21610_item(self, kit: Kit) -> None:
        """Each batch item refused with 21610 fails with its code and its number is opted out."""
        kit.fake.fail_number(OTHER, Fault.error(21610, 400))
        report = kit.client.send_batch(_batch(TO, OTHER))
        ok, refused = report.items
        assert ok.ok
        assert (refused.ok, refused.error_code) == (False, 21610)
        record = kit.repo.get(refused.communication_id or "")
        assert record is not None
        assert record.status == "failed"
        assert kit.store.is_opted_out(OTHER, "sms")
        assert not kit.store.is_opted_out(TO, "sms")
        requests = len(kit.fake.requests)
        report = kit.client.send_batch(_batch(OTHER))
        assert "opted out" in (report.items[0].error or "")
        assert len(kit.fake.requests) == requests


@both
class TestConsentStoreDown:
    def test_the_send_fails_closed(self, kit: Kit) -> None:
        """A store raising RepositoryError refuses the send: nothing written, nothing sent."""
        kit.store.down = RepositoryError("consents unavailable")
        with pytest.raises(RepositoryError, match="consents unavailable"):
            kit.client.send_sms(TO, "hello")
        assert len(kit.repo) == 0
        assert kit.fake.requests == []

    def test_a_foreign_exception_becomes_repository_error(self, kit: Kit) -> None:
        """A store breaking the contract (ConnectionError) fails closed too, as RepositoryError."""
        kit.store.down = ConnectionError(f"refused while reading {TO}")
        with pytest.raises(RepositoryError, match="could not check consent") as caught:
            kit.client.send_sms(TO, "hello")
        assert isinstance(caught.value.__cause__, ConnectionError)
        assert TO not in str(caught.value)
        assert kit.fake.requests == []

    def test_batch_items_fail_with_the_reason(self, kit: Kit) -> None:
        """In a batch, every item the store could not check fails; nothing is written or sent."""
        kit.store.down = RepositoryError("consents unavailable")
        report = kit.client.send_batch(_batch(TO, OTHER))
        assert [item.error for item in report.items] == ["consents unavailable"] * 2
        assert len(kit.repo) == 0
        assert kit.fake.requests == []


@both
class TestSharedSendLimiter:
    def test_a_shared_limiter_caps_sends(self) -> None:
        """SharedSendLimiter(memory://) caps the prospect on either client."""
        limiter = SharedSendLimiter("memory://", max_sends=2, per_seconds=60)
        kit = _kit(send_limiter=limiter)
        kit.client.send_sms(TO, "one", prospect_id="shared")
        kit.client.send_sms(TO, "two", prospect_id="shared")
        with pytest.raises(SendLimitExceeded):
            kit.client.send_sms(TO, "three", prospect_id="shared")
        assert len(kit.fake.requests) == 2

    def test_a_refused_send_is_not_counted(self) -> None:
        """A send refused by consent takes nothing from the shared count."""
        limiter = SharedSendLimiter("memory://", max_sends=1, per_seconds=60)
        kit = _kit(send_limiter=limiter)
        kit.store.opt_out(OTHER, "sms", source="admin")
        with pytest.raises(RecipientOptedOut):
            kit.client.send_sms(OTHER, "hello", prospect_id="shared")
        assert limiter.remaining("shared") == 1
        kit.client.send_sms(TO, "hello", prospect_id="shared")
        assert limiter.remaining("shared") == 0

    def test_an_unavailable_limiter_comes_last(self) -> None:
        """LimiterUnavailable refuses a send that passed the policy; nothing written or sent."""

        class Down:
            def try_acquire(self, key: str) -> float | None:
                raise LimiterUnavailable(key, "ConnectionError: redis is down")

            async def try_acquire_async(self, key: str) -> float | None:
                raise LimiterUnavailable(key, "ConnectionError: redis is down")

        kit = _kit(send_limiter=Down())
        with pytest.raises(LimiterUnavailable):
            kit.client.send_sms(TO, "hello")
        kit.store.opt_out(TO, "sms", source="admin")
        with pytest.raises(RecipientOptedOut):
            kit.client.send_sms(TO, "hello")
        assert len(kit.repo) == 0
        assert kit.fake.requests == []


# -- the async client's own collaborators --------------------------------------------------


def _async_client(**kwargs: Any) -> Any:
    return make_client(make_settings(), kind="async", clock=Clock(), **kwargs)


class TestAsyncCollaborators:
    def test_an_async_consent_store_is_awaited(self) -> None:
        """An AsyncConsentStore refuses opted-out numbers and takes 21610 opt-outs."""
        fake, store = FakeTwilio(), AsyncInMemoryConsentStore()
        client = _async_client(http_client=fake, policy=SendPolicy(consent=store))
        store.sync.opt_out(TO, "sms", source="admin")
        with pytest.raises(RecipientOptedOut):
            client.send_sms(TO, "hello")
        fake.fail_number(OTHER, Fault.error(21610, 400))
        with pytest.raises(TwilioAPIError):
            client.send_sms(OTHER, "hello")
        assert store.sync.is_opted_out(OTHER, "sms")
        assert len(fake.requests) == 1

    def test_a_blocking_sync_store_runs_in_the_clients_threads(self) -> None:
        """A blocking store's reads and 21610 opt-outs run in the client's consent threads."""
        fake, store = FakeTwilio(), SpyStore(blocking=True)
        client = _async_client(http_client=fake, policy=SendPolicy(consent=store), max_threads=2)
        fake.fail_number(OTHER, Fault.error(21610, 400))
        report = client.send_batch(_batch(TO, OTHER))
        assert [item.ok for item in report.items] == [True, False]
        assert store.calls == ["is_opted_out", "is_opted_out", "opt_out"]
        assert all(name.startswith("servio-consent") for name in store.threads)
        assert store.is_opted_out(OTHER, "sms")

    def test_a_non_blocking_sync_store_runs_on_the_loop(self) -> None:
        """An InMemoryConsentStore (not blocking) is called inline, on the loop's thread."""
        store = SpyStore(blocking=False)
        client = _async_client(http_client=FakeTwilio(), policy=SendPolicy(consent=store))
        client.send_sms(TO, "hello")

        async def loop_thread() -> str:
            return threading.current_thread().name

        assert store.threads == [client.run(loop_thread())]

    def test_the_limiters_async_method_is_awaited(self) -> None:
        """A limiter with try_acquire_async is awaited; its blocking try_acquire is never called."""

        class Limiter:
            def __init__(self) -> None:
                self.keys: list[str] = []
                self.closed = 0

            def try_acquire(self, key: str) -> float | None:
                raise AssertionError("the async client called the blocking method")

            async def try_acquire_async(self, key: str) -> float | None:
                await asyncio.sleep(0)
                self.keys.append(key)
                return None if len(self.keys) == 1 else 30.0

            async def aclose(self) -> None:
                self.closed += 1

        limiter = Limiter()
        client = _async_client(http_client=FakeTwilio(), send_limiter=limiter)
        client.send_sms(TO, "hello", prospect_id="p1")
        with pytest.raises(SendLimitExceeded) as caught:
            client.send_sms(TO, "again", prospect_id="p1")
        assert caught.value.retry_after == 30.0
        assert limiter.keys == ["p1", "p1"]
        client.close()
        assert limiter.closed == 1

    def test_a_plain_limiter_is_still_called(self) -> None:
        """A limiter with only try_acquire (the 0.1 Protocol) keeps working on the async client."""

        class Plain:
            def try_acquire(self, key: str) -> float | None:
                return 5.0

        client = _async_client(http_client=FakeTwilio(), send_limiter=Plain())
        with pytest.raises(SendLimitExceeded):
            client.send_sms(TO, "hello")

    @pytest.mark.firestore
    def test_a_firestore_consent_store_on_the_async_client(self, firestore_emulator: str) -> None:
        """FirestoreConsentStore (blocking) on the async client: refusals and 21610 opt-outs."""
        from google.cloud import firestore

        from servio_twilio.firestore import FirestoreConsentStore
        from support.firestore_emulator import PROJECT, unique_collection

        store = FirestoreConsentStore(
            firestore.Client(project=PROJECT), collection=unique_collection("consents")
        )
        fake = FakeTwilio()
        client = _async_client(http_client=fake, policy=SendPolicy(consent=store))
        store.opt_out(TO, "whatsapp", source="admin")
        with pytest.raises(RecipientOptedOut):
            client.send_whatsapp(TO, "hello")
        fake.fail_number(TO, Fault.error(21610, 400))
        with pytest.raises(TwilioAPIError):
            client.send_sms(TO, "hello")
        consent = store.get(TO, "sms")
        assert consent is not None
        assert consent.source == "twilio:21610"


class TestAsyncConsentStoreView:
    def test_a_blocking_store_runs_in_the_views_threads(self) -> None:
        """Every method of a blocking store runs in the view's pool; the data is the store's."""
        store = SpyStore(blocking=True)
        view = AsyncConsentStoreView(store, max_threads=1)

        async def use() -> bool:
            await view.opt_out(TO, "sms", source="admin")
            await view.opt_in(TO, "sms", source="admin")
            consent = await view.get(TO, "sms")
            assert consent is not None
            return await view.is_opted_out(TO, "sms")

        assert asyncio.run(use()) is False
        assert store.calls == ["opt_out", "is_opted_out"]
        assert all(name.startswith("servio-consent") for name in store.threads)
        view.close()

    def test_a_store_without_blocking_is_taken_as_blocking(self) -> None:
        """A store that does not say is run in threads (it may wait on I/O)."""

        class Unsaid:
            def opt_out(self, number: str, channel: Any, *, source: str) -> None: ...
            def opt_in(self, number: str, channel: Any, *, source: str) -> None: ...
            def is_opted_out(self, number: str, channel: Any) -> bool:
                return False

            def get(self, number: str, channel: Any) -> None:
                return None

            def opted_out(self, **kwargs: Any) -> list[Any]:
                return []

        assert AsyncConsentStoreView(Unsaid()).blocking
        assert not AsyncConsentStoreView(InMemoryConsentStore()).blocking

    def test_arguments(self) -> None:
        """An async store or a non-store is a TypeError; max_threads below 1 a ValueError."""
        with pytest.raises(TypeError, match="sync ConsentStore"):
            AsyncConsentStoreView(AsyncInMemoryConsentStore())  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="sync ConsentStore"):
            AsyncConsentStoreView(object())  # type: ignore[arg-type]
        with pytest.raises(ValueError, match="max_threads"):
            AsyncConsentStoreView(InMemoryConsentStore(), max_threads=0)


def test_the_async_client_takes_the_policy_directly() -> None:
    """AsyncCommunicationsClient exposes the policy it was given, async store included."""
    policy = SendPolicy(consent=AsyncInMemoryConsentStore(), sending_hours=DAY)
    client = AsyncCommunicationsClient(make_settings(), http_client=FakeTwilio().aio, policy=policy)
    assert client.policy is policy
    asyncio.run(client.aclose())
