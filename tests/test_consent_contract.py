"""The contract every `ConsentStore` meets, run against every backend.

Memory, async memory, Firestore and async Firestore (both on the emulator)
run the same test bodies: the async stores behind `support.sync_facade.SyncFacade`.
To check your own backend, make the ``store`` fixture return a new, empty
instance of it whose clock is ``clock``.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest

from servio_twilio.domain.consent import MAX_CONSENT_HISTORY, Consent, ConsentChange
from servio_twilio.domain.errors import InvalidArgument, InvalidPhoneNumber, RepositoryError
from servio_twilio.domain.models import Channel
from servio_twilio.storage.consent import (
    AsyncConsentStore,
    AsyncInMemoryConsentStore,
    ConsentStore,
    InMemoryConsentStore,
    is_async_consent_store,
)
from support.firestore_emulator import PROJECT, unique_collection
from support.processes import free_port
from support.sync_facade import LoopThread, SyncFacade

BACKENDS = [
    "memory",
    "async-memory",
    pytest.param("firestore", marks=pytest.mark.firestore),
    pytest.param("async-firestore", marks=pytest.mark.firestore),
]

T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)
NUMBER = "+5511999999999"
OTHER = "+5511988887777"


class Clock:
    """A settable clock; each change a store records takes ``now``."""

    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> datetime:
        return self.now

    def tick(self, seconds: float = 1.0) -> datetime:
        self.now += timedelta(seconds=seconds)
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    try:
        yield thread
    finally:
        thread.close()


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest, clock: Clock, loop: LoopThread) -> Any:
    """A new, empty store of each backend, as built (async stores still async)."""
    if request.param == "memory":
        return InMemoryConsentStore(clock=clock)
    if request.param == "async-memory":
        return AsyncInMemoryConsentStore(InMemoryConsentStore(clock=clock))
    request.getfixturevalue("firestore_emulator")
    from google.cloud import firestore

    from servio_twilio.firestore import AsyncFirestoreConsentStore, FirestoreConsentStore

    collection = unique_collection("consents")
    if request.param == "firestore":
        client = firestore.Client(project=PROJECT)
        return FirestoreConsentStore(client, collection=collection, timeout=15.0, clock=clock)
    async_client = firestore.AsyncClient(project=PROJECT)
    return AsyncFirestoreConsentStore(
        async_client, collection=collection, timeout=15.0, clock=clock
    )


@pytest.fixture
def store(backend: Any, loop: LoopThread) -> ConsentStore:
    """The backend behind the sync Protocol (async ones through a `SyncFacade`)."""
    if is_async_consent_store(backend):
        facade: ConsentStore = SyncFacade(backend, loop)  # type: ignore[assignment]
        return facade
    assert isinstance(backend, ConsentStore)
    return backend


class TestProtocol:
    def test_each_backend_is_a_consent_store_of_its_kind(self, backend: Any) -> None:
        """Sync stores are ConsentStores, async ones AsyncConsentStores; the helper tells which."""
        if is_async_consent_store(backend):
            assert isinstance(backend, AsyncConsentStore)
        else:
            assert isinstance(backend, ConsentStore)
        assert isinstance(backend.blocking, bool)

    def test_a_plain_object_is_not_a_store(self) -> None:
        """Something without the four methods is neither kind."""
        assert not isinstance(object(), ConsentStore)
        assert not is_async_consent_store(object())


class TestUnknownNumbers:
    def test_nothing_kept_means_not_opted_out(self, store: ConsentStore) -> None:
        """A number never seen is not opted out, and get() says nothing is kept."""
        assert store.is_opted_out(NUMBER, Channel.SMS) is False
        assert store.get(NUMBER, "sms") is None


class TestOptOut:
    def test_opt_out_is_kept_with_its_source_and_time(
        self, store: ConsentStore, clock: Clock
    ) -> None:
        """After opt_out the number is opted out; get() returns the whole Consent."""
        store.opt_out(NUMBER, Channel.SMS, source="inbound:STOP")
        assert store.is_opted_out(NUMBER, Channel.SMS) is True
        change = ConsentChange(opted_out=True, source="inbound:STOP", at=T0)
        assert store.get(NUMBER, Channel.SMS) == Consent(
            number=NUMBER,
            channel=Channel.SMS,
            opted_out=True,
            source="inbound:STOP",
            updated_at=T0,
            history=(change,),
        )

    def test_opt_in_after_opt_out_wins_and_history_keeps_both(
        self, store: ConsentStore, clock: Clock
    ) -> None:
        """The latest change decides; the history lists every change, oldest first."""
        store.opt_out(NUMBER, "sms", source="inbound:STOP")
        later = clock.tick(60)
        store.opt_in(NUMBER, "sms", source="inbound:START")
        assert store.is_opted_out(NUMBER, "sms") is False
        consent = store.get(NUMBER, "sms")
        assert consent is not None
        assert (consent.opted_out, consent.source, consent.updated_at) == (
            False,
            "inbound:START",
            later,
        )
        assert [(c.opted_out, c.source, c.at) for c in consent.history] == [
            (True, "inbound:STOP", T0),
            (False, "inbound:START", later),
        ]

    def test_repeated_opt_out_is_recorded_and_stays_out(
        self, store: ConsentStore, clock: Clock
    ) -> None:
        """A second STOP is a change too: still opted out, two entries, the latest source."""
        store.opt_out(NUMBER, "sms", source="inbound:STOP")
        clock.tick()
        store.opt_out(NUMBER, "sms", source="twilio:21610")
        consent = store.get(NUMBER, "sms")
        assert consent is not None
        assert consent.opted_out is True
        assert consent.source == "twilio:21610"
        assert len(consent.history) == 2

    def test_opt_in_without_an_opt_out(self, store: ConsentStore) -> None:
        """An opt-in for an unknown number is kept as not opted out."""
        store.opt_in(NUMBER, "whatsapp", source="admin")
        consent = store.get(NUMBER, "whatsapp")
        assert consent is not None
        assert consent.opted_out is False
        assert store.is_opted_out(NUMBER, "whatsapp") is False


class TestSeparation:
    def test_channels_are_separate(self, store: ConsentStore) -> None:
        """An SMS opt-out leaves WhatsApp (and calls) as they were, and the reverse."""
        store.opt_out(NUMBER, Channel.SMS, source="inbound:STOP")
        assert store.is_opted_out(NUMBER, Channel.WHATSAPP) is False
        assert store.is_opted_out(NUMBER, Channel.CALL) is False
        assert store.get(NUMBER, Channel.WHATSAPP) is None
        store.opt_out(OTHER, Channel.WHATSAPP, source="inbound:STOP")
        assert store.is_opted_out(OTHER, Channel.SMS) is False
        assert store.is_opted_out(OTHER, Channel.WHATSAPP) is True

    def test_numbers_are_separate(self, store: ConsentStore) -> None:
        """One number's opt-out does not touch another's."""
        store.opt_out(NUMBER, "sms", source="inbound:STOP")
        assert store.is_opted_out(OTHER, "sms") is False

    def test_a_whatsapp_prefix_names_the_same_number(self, store: ConsentStore) -> None:
        """``whatsapp:+55...`` (as Twilio sends it) and ``+55...`` are one key."""
        store.opt_out(f"whatsapp:{NUMBER}", "whatsapp", source="inbound:STOP")
        assert store.is_opted_out(NUMBER, "whatsapp") is True
        consent = store.get(f" WhatsApp:{NUMBER} ", "whatsapp")
        assert consent is not None
        assert consent.number == NUMBER


class TestHistory:
    def test_history_keeps_the_latest_changes_only(self, store: ConsentStore, clock: Clock) -> None:
        """Past MAX_CONSENT_HISTORY changes, get() returns the latest ones, oldest first."""
        extra = 3
        for i in range(MAX_CONSENT_HISTORY + extra):
            clock.tick()
            store.opt_out(NUMBER, "sms", source=f"change-{i}")
        consent = store.get(NUMBER, "sms")
        assert consent is not None
        assert len(consent.history) == MAX_CONSENT_HISTORY
        assert consent.history[0].source == f"change-{extra}"
        assert consent.history[-1].source == f"change-{MAX_CONSENT_HISTORY + extra - 1}"
        assert [c.at for c in consent.history] == sorted(c.at for c in consent.history)

    def test_times_in_another_offset_are_kept_as_utc(
        self, store: ConsentStore, clock: Clock
    ) -> None:
        """A clock in UTC-3 gives the same instant back, in UTC."""
        clock.now = datetime(2024, 5, 1, 9, 30, tzinfo=timezone(timedelta(hours=-3)))
        store.opt_out(NUMBER, "sms", source="inbound:STOP")
        consent = store.get(NUMBER, "sms")
        assert consent is not None
        assert consent.updated_at == datetime(2024, 5, 1, 12, 30, tzinfo=UTC)
        assert consent.updated_at.utcoffset() == timedelta(0)


class TestBadArguments:
    @pytest.mark.parametrize("number", ["5511999999999", "+55 11 99999-9999", "", "+1", 42, None])
    def test_number_that_is_not_e164(self, store: ConsentStore, number: Any) -> None:
        """Anything but an E.164 number raises InvalidPhoneNumber (a ValueError); nothing kept."""
        with pytest.raises(InvalidPhoneNumber):
            store.opt_out(number, "sms", source="admin")
        with pytest.raises(ValueError, match=r"E\.164|expected a string"):
            store.is_opted_out(number, "sms")

    def test_unknown_channel(self, store: ConsentStore) -> None:
        """A channel that is not sms, whatsapp or call raises InvalidArgument."""
        with pytest.raises(InvalidArgument, match="channel"):
            store.opt_out(NUMBER, "email", source="admin")
        with pytest.raises(InvalidArgument, match="channel"):
            store.get(NUMBER, "email")

    @pytest.mark.parametrize("source", ["", "   ", "x" * 201])
    def test_bad_source(self, store: ConsentStore, source: str) -> None:
        """An empty, blank or over-long source raises InvalidArgument; nothing kept."""
        with pytest.raises(InvalidArgument, match="source"):
            store.opt_out(NUMBER, "sms", source=source)
        assert store.get(NUMBER, "sms") is None

    def test_source_of_another_type(self, store: ConsentStore) -> None:
        """A source that is not a str raises TypeError."""
        with pytest.raises(TypeError, match="source"):
            store.opt_out(NUMBER, "sms", source=None)  # type: ignore[arg-type]


class TestConsentValues:
    def test_to_dict_is_json_ready(self, store: ConsentStore) -> None:
        """Consent.to_dict() gives strings for the channel and times, and the history as dicts."""
        store.opt_out(NUMBER, "sms", source="inbound:STOP")
        consent = store.get(NUMBER, "sms")
        assert consent is not None
        assert consent.to_dict() == {
            "number": NUMBER,
            "channel": "sms",
            "opted_out": True,
            "source": "inbound:STOP",
            "updated_at": T0.isoformat(),
            "history": [{"opted_out": True, "source": "inbound:STOP", "at": T0.isoformat()}],
        }


class TestInMemoryViews:
    def test_async_view_shares_the_data(self) -> None:
        """A change made through the sync store is what the async view reads, and the reverse."""
        import asyncio

        sync = InMemoryConsentStore()
        view = AsyncInMemoryConsentStore(sync)
        sync.opt_out(NUMBER, "sms", source="inbound:STOP")
        assert asyncio.run(view.is_opted_out(NUMBER, "sms")) is True
        asyncio.run(view.opt_in(NUMBER, "sms", source="inbound:START"))
        assert sync.is_opted_out(NUMBER, "sms") is False
        assert len(sync) == 1

    def test_async_view_takes_only_an_in_memory_store(self) -> None:
        """Anything else is a TypeError."""
        with pytest.raises(TypeError, match="InMemoryConsentStore"):
            AsyncInMemoryConsentStore(object())  # type: ignore[arg-type]

    def test_threads_racing_lose_no_change(self) -> None:
        """Eight threads x 10 changes on one number: all 80 counted, the history capped."""
        import threading

        store = InMemoryConsentStore()
        barrier = threading.Barrier(8)
        others = [f"+55119888800{i:02d}" for i in range(8)]

        def worker(i: int) -> None:
            barrier.wait()
            for j in range(10):
                store.opt_out(NUMBER, "sms", source=f"t{i}-{j}")
                store.opt_in(others[i], "sms", source=f"t{i}-{j}")

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        consent = store.get(NUMBER, "sms")
        assert consent is not None
        assert len(consent.history) == min(80, MAX_CONSENT_HISTORY)
        assert len(store) == 9
        assert all(len(store.get(n, "sms").history) == 10 for n in others)  # type: ignore[union-attr]

    def test_naive_clock_is_refused(self) -> None:
        """A clock giving naive datetimes raises InvalidArgument at the first change."""
        store = InMemoryConsentStore(clock=lambda: datetime(2024, 1, 1))
        with pytest.raises(InvalidArgument, match="aware"):
            store.opt_out(NUMBER, "sms", source="admin")


@pytest.mark.firestore
class TestFirestoreDocuments:
    def test_one_document_per_channel_and_number_with_a_history(
        self, firestore_client: Any, clock: Clock
    ) -> None:
        """The consent is ``consents/sms:+55...``, with the stored fields; each change a doc."""
        from servio_twilio.firestore import FirestoreConsentStore

        collection = unique_collection("consents")
        store = FirestoreConsentStore(firestore_client, collection=collection, clock=clock)
        store.opt_out(NUMBER, "sms", source="inbound:STOP")
        clock.tick()
        store.opt_in(NUMBER, "sms", source="inbound:START")
        reference = firestore_client.collection(collection).document(f"sms:{NUMBER}")
        data = reference.get().to_dict()
        assert data["number"] == NUMBER
        assert data["channel"] == "sms"
        assert data["optedOut"] is False
        assert data["source"] == "inbound:START"
        assert data["updatedAt"] == clock.now
        changes = [d.to_dict() for d in reference.collection("history").stream()]
        assert sorted((c["optedOut"], c["source"]) for c in changes) == [
            (False, "inbound:START"),
            (True, "inbound:STOP"),
        ]
        assert (
            not firestore_client.collection(collection).document(f"whatsapp:{NUMBER}").get().exists
        )

    @pytest.mark.parametrize("kind", ["sync", "async"])
    def test_a_dead_host_is_a_repository_error(
        self, monkeypatch: pytest.MonkeyPatch, loop: LoopThread, kind: str
    ) -> None:
        """Nobody listening: every call raises RepositoryError, never a google or grpc error."""
        from google.cloud import firestore

        from servio_twilio.firestore import AsyncFirestoreConsentStore, FirestoreConsentStore

        monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
        store: Any
        if kind == "sync":
            store = FirestoreConsentStore(firestore.Client(project="demo-x"), timeout=1.0)
        else:
            async_store = AsyncFirestoreConsentStore(
                firestore.AsyncClient(project="demo-x"), timeout=1.0
            )
            store = SyncFacade(async_store, loop)
        for call in (
            lambda: store.opt_out(NUMBER, "sms", source="inbound:STOP"),
            lambda: store.is_opted_out(NUMBER, "sms"),
            lambda: store.get(NUMBER, "sms"),
        ):
            with pytest.raises(RepositoryError, match=r"^Firestore consent .* failed: "):
                call()

    def test_bad_arguments(self, firestore_client: Any) -> None:
        """A malformed collection name or timeout raises InvalidArgument."""
        from servio_twilio.firestore import FirestoreConsentStore

        with pytest.raises(InvalidArgument, match="collection"):
            FirestoreConsentStore(firestore_client, collection="a/b")
        with pytest.raises(InvalidArgument, match="timeout"):
            FirestoreConsentStore(firestore_client, timeout=0)
