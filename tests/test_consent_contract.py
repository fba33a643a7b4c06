"""The contract every `ConsentStore` meets, run against every backend.

Memory, async memory, Firestore and async Firestore (both on the emulator)
run the same test bodies: the async stores behind `support.sync_facade.SyncFacade`.
To check your own backend, make the ``store`` fixture return a new, empty
instance of it whose clock is ``clock``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
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
ROOT = Path(__file__).resolve().parent.parent


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


def _listed(consents: list[Consent]) -> list[tuple[str, str]]:
    return [(consent.channel.value, consent.number) for consent in consents]


class TestOptedOut:
    def test_an_empty_store_lists_nothing(self, store: ConsentStore) -> None:
        """No consent kept: the listing is empty."""
        assert store.opted_out() == []

    def test_lists_the_opted_out_newest_change_first_without_history(
        self, store: ConsentStore, clock: Clock
    ) -> None:
        """Numbers whose latest change is an opt-out, newest first, as Consents without history."""
        store.opt_out(NUMBER, "sms", source="inbound:STOP")
        clock.tick()
        store.opt_in(OTHER, "sms", source="admin")
        clock.tick()
        store.opt_out(OTHER, "whatsapp", source="inbound:STOP")
        clock.tick()
        store.opt_out("+5511977776666", "call", source="twilio:21610")
        clock.tick()
        store.opt_out("+5511966665555", "sms", source="inbound:STOP")
        clock.tick()
        store.opt_in("+5511966665555", "sms", source="inbound:START")
        listed = store.opted_out()
        assert _listed(listed) == [
            ("call", "+5511977776666"),
            ("whatsapp", OTHER),
            ("sms", NUMBER),
        ]
        assert listed[0] == Consent(
            number="+5511977776666",
            channel=Channel.CALL,
            opted_out=True,
            source="twilio:21610",
            updated_at=T0 + timedelta(seconds=3),
        )
        assert all(consent.history == () for consent in listed)

    def test_a_repeated_opt_out_moves_the_number_up(
        self, store: ConsentStore, clock: Clock
    ) -> None:
        """The listing orders by the latest change, so a second STOP makes a number the newest."""
        store.opt_out(NUMBER, "sms", source="inbound:STOP")
        clock.tick()
        store.opt_out(OTHER, "sms", source="inbound:STOP")
        clock.tick()
        store.opt_out(NUMBER, "sms", source="twilio:21610")
        listed = store.opted_out()
        assert _listed(listed) == [("sms", NUMBER), ("sms", OTHER)]
        assert listed[0].source == "twilio:21610"

    def test_channel_keeps_that_channel_only(self, store: ConsentStore, clock: Clock) -> None:
        """``channel`` (a Channel or its value) lists the opt-outs of that channel alone."""
        store.opt_out(NUMBER, "sms", source="inbound:STOP")
        clock.tick()
        store.opt_out(NUMBER, "whatsapp", source="inbound:STOP")
        clock.tick()
        store.opt_out(OTHER, "sms", source="inbound:STOP")
        assert _listed(store.opted_out(channel=Channel.SMS)) == [("sms", OTHER), ("sms", NUMBER)]
        assert _listed(store.opted_out(channel="whatsapp")) == [("whatsapp", NUMBER)]
        assert store.opted_out(channel=Channel.CALL) == []

    def test_before_pages_through_every_opt_out_once(
        self, store: ConsentStore, clock: Clock
    ) -> None:
        """Pages of 2, each before the last one's updated_at, list all 7 once, newest first."""
        numbers = [f"+55119000000{i:02d}" for i in range(7)]
        for number in numbers:
            clock.tick()
            store.opt_out(number, "sms", source="inbound:STOP")
        seen: list[str] = []
        before = None
        pages = 0
        while True:
            page = store.opted_out(limit=2, before=before)
            if not page:
                break
            pages += 1
            assert len(page) <= 2
            seen.extend(consent.number for consent in page)
            before = page[-1].updated_at
        assert seen == numbers[::-1]
        assert pages == 4

    def test_before_is_strict_and_may_be_in_another_offset(
        self, store: ConsentStore, clock: Clock
    ) -> None:
        """A change made exactly at ``before`` is left out; an instant in UTC-3 is the same."""
        store.opt_out(NUMBER, "sms", source="inbound:STOP")
        at = clock.tick()
        store.opt_out(OTHER, "sms", source="inbound:STOP")
        in_brasilia = at.astimezone(timezone(timedelta(hours=-3)))
        assert _listed(store.opted_out(before=in_brasilia)) == [("sms", NUMBER)]
        assert _listed(store.opted_out(before=at + timedelta(microseconds=1))) == [
            ("sms", OTHER),
            ("sms", NUMBER),
        ]

    def test_limit_caps_the_listing(self, store: ConsentStore, clock: Clock) -> None:
        """At most ``limit`` consents, the newest ones; the default is 50."""
        for i in range(3):
            clock.tick()
            store.opt_out(f"+55119000000{i:02d}", "sms", source="inbound:STOP")
        assert [c.number for c in store.opted_out(limit=1)] == ["+5511900000002"]
        assert len(store.opted_out(limit=1000)) == 3

    @pytest.mark.parametrize(
        ("kwargs", "error", "match"),
        [
            ({"limit": 0}, InvalidArgument, "limit"),
            ({"limit": 1001}, InvalidArgument, "limit"),
            ({"limit": "5"}, TypeError, "limit"),
            ({"limit": True}, TypeError, "limit"),
            ({"before": datetime(2024, 1, 1)}, InvalidArgument, "before"),
            ({"before": "2024-01-01"}, TypeError, "before"),
            ({"channel": "email"}, InvalidArgument, "channel"),
        ],
    )
    def test_bad_arguments(
        self, store: ConsentStore, kwargs: dict[str, Any], error: type[Exception], match: str
    ) -> None:
        """A limit outside 1..1000 or not an int, a naive or non-datetime before, an unknown
        channel: refused the same way by every backend."""
        with pytest.raises(error, match=match):
            store.opted_out(**kwargs)


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
            store.opted_out,
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


class TestListingIndexes:
    @pytest.mark.parametrize("kind", ["sync", "async"])
    def test_every_listing_query_has_its_index(
        self, monkeypatch: pytest.MonkeyPatch, loop: LoopThread, kind: str
    ) -> None:
        """Each opted_out call is one query, whose equalities and order an index serves."""
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import firestore
        from google.cloud.firestore_v1.async_query import AsyncQuery
        from google.cloud.firestore_v1.query import Query

        from servio_twilio.firestore import AsyncFirestoreConsentStore, FirestoreConsentStore

        captured: list[Any] = []

        def capture(self: Query, *args: Any, **kwargs: Any) -> Iterator[Any]:
            captured.append(self)
            return iter([])

        async def capture_async(self: AsyncQuery, *args: Any, **kwargs: Any) -> Any:
            captured.append(self)
            return
            yield

        credentials = AnonymousCredentials()
        store: Any
        if kind == "sync":
            monkeypatch.setattr(Query, "stream", capture)
            store = FirestoreConsentStore(
                firestore.Client(project="demo-offline", credentials=credentials)
            )
        else:
            monkeypatch.setattr(AsyncQuery, "stream", capture_async)
            async_client = firestore.AsyncClient(project="demo-offline", credentials=credentials)
            store = SyncFacade(AsyncFirestoreConsentStore(async_client), loop)
        assert store.opted_out() == []
        assert store.opted_out(channel="sms") == []
        assert store.opted_out(before=T0, limit=10) == []
        assert store.opted_out(channel=Channel.WHATSAPP, before=T0) == []
        assert len(captured) == 4

        data = json.loads((ROOT / "firestore.indexes.json").read_text())
        indexes = [
            [(f["fieldPath"], f["order"]) for f in index["fields"]]
            for index in data["indexes"]
            if index["collectionGroup"] == "consents"
        ]
        for query in captured:
            assert query._parent.id == "consents"
            equalities = {f.field.field_path for f in query._field_filters if f.op.name == "EQUAL"}
            ranges = {f.field.field_path for f in query._field_filters if f.op.name != "EQUAL"}
            orders = [(o.field.field_path, o.direction.name) for o in query._orders]
            assert orders == [("updatedAt", "DESCENDING")]
            assert ranges <= {"updatedAt"}
            assert any(
                {path for path, _ in index[:-1]} == equalities
                and all(order == "ASCENDING" for _, order in index[:-1])
                and index[-1] == orders[0]
                for index in indexes
            ), f"no index for equality {sorted(equalities)} ordered by {orders[0]}"
