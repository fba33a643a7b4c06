"""The contract every `CommunicationRepository` meets, run against every backend.

To check your own backend, copy this file into your tests and make the
``repository`` fixture return a new, empty instance of it: every test here
uses only the public Protocol and pytest. An `AsyncCommunicationRepository`
runs the same tests behind `support.sync_facade.SyncFacade`, which awaits
each of its calls on one event loop, so no test is written twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta, timezone
from typing import Any

import attrs
import pytest

from servio_twilio.domain.errors import (
    DuplicateRecord,
    InvalidArgument,
    RecordNotFound,
    RepositoryError,
)
from servio_twilio.domain.models import Channel, Communication, DayCount, Direction
from servio_twilio.domain.status import is_open
from servio_twilio.storage.async_view import AsyncInMemoryRepository, AsyncRepositoryView
from servio_twilio.storage.memory import InMemoryRepository
from servio_twilio.storage.repository import (
    AsyncCommunicationRepository,
    CommunicationRepository,
    is_async_repository,
)
from support.sync_facade import LoopThread, SyncFacade

SYNC_BACKENDS = ["memory", pytest.param("firestore", marks=pytest.mark.firestore)]
ASYNC_BACKENDS = [
    "async-memory",
    pytest.param("async-firestore", marks=pytest.mark.firestore),
    # FirestoreRepository awaited through the view: its blocking calls run in the view's threads.
    pytest.param("async-view-firestore", marks=pytest.mark.firestore),
]
BACKENDS = [*SYNC_BACKENDS, *ASYNC_BACKENDS]

T0 = datetime(2024, 5, 1, 12, 0, 0, tzinfo=UTC)


@pytest.fixture
def isolated(request: pytest.FixtureRequest) -> bool:
    """Whether this backend's commits are atomic here.

    The Firestore emulator applies the other writes of a commit whose create
    fails (real Firestore does not): atomicity is proven on memory (sync and
    async), and the Firestore code keeps to single commits and transactions.
    """
    return "firestore" not in request.node.callspec.params.get("repository", "")


def _backend(
    request: pytest.FixtureRequest, name: str
) -> CommunicationRepository | AsyncCommunicationRepository:
    """A new, empty repository of the backend ``name``, as it is (sync or async)."""
    if name == "memory":
        return InMemoryRepository()
    if name == "async-memory":
        return AsyncInMemoryRepository()
    if name == "async-view-firestore":
        view = AsyncRepositoryView(request.getfixturevalue("firestore_repository"))
        request.addfinalizer(view.close)
        return view
    backend: CommunicationRepository | AsyncCommunicationRepository = request.getfixturevalue(
        name.replace("-", "_") + "_repository"
    )
    return backend


@pytest.fixture(params=BACKENDS)
def repository(request: pytest.FixtureRequest) -> Iterator[CommunicationRepository]:
    """A new, empty repository of each backend; an async one behind a `SyncFacade`."""
    backend = _backend(request, request.param)
    if not is_async_repository(backend):
        assert isinstance(backend, CommunicationRepository)
        yield backend
        return
    loop = LoopThread()
    facade: Any = SyncFacade(backend, loop)  # a CommunicationRepository by its methods
    yield facade
    loop.close()


@pytest.fixture(params=ASYNC_BACKENDS)
def async_repository(request: pytest.FixtureRequest) -> Any:
    """A new, empty repository of each async backend, as it is."""
    return _backend(request, request.param)


def make(**changes: Any) -> Communication:
    """An outbound SMS at T0 with ``changes`` applied."""
    fields: dict[str, Any] = {
        "prospect_id": "prospect-1",
        "channel": Channel.SMS,
        "to": "+5511999999999",
        "from_": "+15005550006",
        "body": "Olá",
        "timestamp": T0,
        "created_at": T0,
        "updated_at": T0,
    }
    fields.update(changes)
    return Communication(**fields)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


class TestProtocol:
    def test_is_a_communication_repository(self, repository: CommunicationRepository) -> None:
        """Every backend satisfies the runtime-checkable Protocol and says whether it blocks."""
        assert isinstance(repository, CommunicationRepository)
        assert isinstance(repository.blocking, bool)

    def test_async_backends_are_async_repositories(self, async_repository: Any) -> None:
        """Each async backend satisfies AsyncCommunicationRepository and is told apart as async."""
        assert isinstance(async_repository, AsyncCommunicationRepository)
        assert is_async_repository(async_repository)


class TestAdd:
    def test_assigns_an_id_when_none(self, repository: CommunicationRepository) -> None:
        """A record without id gets a new one, and can be read back by it."""
        stored = repository.add(make())
        assert isinstance(stored.id, str)
        assert stored.id
        assert repository.get(stored.id) == stored

    def test_assigned_ids_differ(self, repository: CommunicationRepository) -> None:
        """Two records added without ids get different ids."""
        first = repository.add(make())
        second = repository.add(make())
        assert first.id != second.id

    def test_keeps_a_given_id(self, repository: CommunicationRepository) -> None:
        """A record with an id is stored under that id, unchanged."""
        record = make(id="sid-SM123")
        assert repository.add(record) == record
        assert repository.get("sid-SM123") == record

    def test_duplicate_id_is_refused(self, repository: CommunicationRepository) -> None:
        """Adding an id that exists raises DuplicateRecord and leaves the first record as it was."""
        first = repository.add(make(id="same", body="first"))
        with pytest.raises(DuplicateRecord):
            repository.add(make(id="same", body="second"))
        assert repository.get("same") == first


class TestAddMany:
    def test_stores_all_in_order(self, repository: CommunicationRepository) -> None:
        """add_many returns the records in input order, each with an id, all readable."""
        records = [make(body=f"m{i}", id="given" if i == 1 else None) for i in range(3)]
        stored = repository.add_many(records)
        assert [c.body for c in stored] == ["m0", "m1", "m2"]
        assert stored[1].id == "given"
        assert len({c.id for c in stored}) == 3
        for c in stored:
            assert c.id is not None
            assert repository.get(c.id) == c

    def test_accepts_any_iterable_and_empty(self, repository: CommunicationRepository) -> None:
        """A generator works, and an empty input stores nothing and returns []."""
        assert repository.add_many(iter([])) == []
        stored = repository.add_many(make(body=str(i)) for i in range(2))
        assert len(stored) == 2

    def test_duplicate_within_the_input_stores_nothing(
        self, repository: CommunicationRepository
    ) -> None:
        """The same id twice in one call raises DuplicateRecord before anything is stored."""
        with pytest.raises(DuplicateRecord):
            repository.add_many([make(id="a"), make(id="b"), make(id="a")])
        assert repository.get("a") is None
        assert repository.get("b") is None

    def test_id_already_stored_stores_nothing(
        self, repository: CommunicationRepository, isolated: bool
    ) -> None:
        """An input id that exists raises DuplicateRecord; the others are not stored."""
        existing = repository.add(make(id="old", body="kept"))
        with pytest.raises(DuplicateRecord):
            repository.add_many([make(id="new1"), make(id="old", body="x"), make(id="new2")])
        assert repository.get("old") == existing
        if isolated:
            assert repository.get("new1") is None
            assert repository.get("new2") is None

    def test_more_than_500_records(self, repository: CommunicationRepository) -> None:
        """Over 500 records (Firestore's commit limit) are all stored, in order."""
        records = [make(id=f"bulk-{i:04d}", timestamp=at(i / 1000)) for i in range(1203)]
        stored = repository.add_many(records)
        assert stored == records
        for index in (0, 499, 500, 999, 1000, 1202):
            assert repository.get(f"bulk-{index:04d}") == records[index]
        newest = repository.history("prospect-1", limit=3)
        assert [c.id for c in newest] == ["bulk-1202", "bulk-1201", "bulk-1200"]


class TestGet:
    def test_missing_is_none(self, repository: CommunicationRepository) -> None:
        """An id never stored reads as None."""
        assert repository.get("nope") is None


class TestFindBySid:
    def test_finds_the_record_with_the_sid(self, repository: CommunicationRepository) -> None:
        """The record carrying a Twilio SID is found by it; other SIDs find nothing."""
        repository.add(make(twilio_sid="SM1"))
        wanted = repository.add(make(twilio_sid="SM2"))
        assert repository.find_by_sid("SM2") == wanted
        assert repository.find_by_sid("SM3") is None

    def test_finds_a_sid_set_by_update(self, repository: CommunicationRepository) -> None:
        """A SID given later by update is found too."""
        record = repository.add(make())
        assert record.id is not None
        repository.update(record.id, lambda c: attrs.evolve(c, twilio_sid="SM9", status="queued"))
        found = repository.find_by_sid("SM9")
        assert found is not None
        assert found.id == record.id
        assert found.status == "queued"


class TestUpdate:
    def test_applies_fn_and_stores_the_result(self, repository: CommunicationRepository) -> None:
        """update writes fn(record), returns it, and get then reads it."""
        record = repository.add(make())
        assert record.id is not None
        result = repository.update(
            record.id, lambda c: attrs.evolve(c, status="delivered", updated_at=at(5))
        )
        assert result == attrs.evolve(record, status="delivered", updated_at=at(5))
        assert repository.get(record.id) == result

    def test_fn_sees_the_stored_record(self, repository: CommunicationRepository) -> None:
        """fn receives the current stored record, so updates build on each other."""
        record = repository.add(make(duration=1))
        assert record.id is not None
        for _ in range(3):
            repository.update(record.id, lambda c: attrs.evolve(c, duration=(c.duration or 0) + 1))
        stored = repository.get(record.id)
        assert stored is not None
        assert stored.duration == 4

    def test_can_clear_a_field(self, repository: CommunicationRepository) -> None:
        """fn may set an optional field back to None, and that is what is stored."""
        record = repository.add(make(error="boom", error_code=30003))
        assert record.id is not None
        repository.update(record.id, lambda c: attrs.evolve(c, error=None, error_code=None))
        stored = repository.get(record.id)
        assert stored is not None
        assert (stored.error, stored.error_code) == (None, None)

    def test_missing_id_raises_record_not_found(self, repository: CommunicationRepository) -> None:
        """Updating an unknown id raises RecordNotFound (also a KeyError) and calls no fn."""
        calls: list[Communication] = []
        with pytest.raises(RecordNotFound):
            repository.update("nope", lambda c: calls.append(c) or c)  # type: ignore[func-returns-value]
        with pytest.raises(KeyError):
            repository.update("nope", lambda c: c)
        assert calls == []

    def test_changing_the_id_is_refused(self, repository: CommunicationRepository) -> None:
        """fn returning another id raises RepositoryError and the record stays as it was."""
        record = repository.add(make())
        assert record.id is not None
        with pytest.raises(RepositoryError):
            repository.update(record.id, lambda c: attrs.evolve(c, id="other", status="sent"))
        assert repository.get(record.id) == record
        assert repository.get("other") is None

    def test_fn_error_propagates_and_changes_nothing(
        self, repository: CommunicationRepository
    ) -> None:
        """An exception from fn reaches the caller unchanged and nothing is written."""
        record = repository.add(make())
        assert record.id is not None

        def explode(c: Communication) -> Communication:
            raise LookupError("from fn")

        with pytest.raises(LookupError, match="from fn"):
            repository.update(record.id, explode)
        assert repository.get(record.id) == record


class TestAddWithEvent:
    def test_the_first_event_is_kept_with_the_record(
        self, repository: CommunicationRepository
    ) -> None:
        """``add(record, event=...)`` stores the record and its first callback together."""
        stored = repository.add(make(id="in-1"), event={"route": "inbound", "n": 1}, token="t1")
        assert repository.get("in-1") == stored
        assert repository.events("in-1") == [{"route": "inbound", "n": 1}]

    def test_an_existing_id_keeps_no_event(self, repository: CommunicationRepository) -> None:
        """A duplicate add with an event raises DuplicateRecord and keeps nothing."""
        first = repository.add(make(id="in-1"), event={"n": 1})
        with pytest.raises(DuplicateRecord):
            repository.add(make(id="in-1", body="again"), event={"n": 2})
        assert repository.get("in-1") == first
        assert repository.events("in-1") == [{"n": 1}]


def _body(text: str) -> Any:
    return lambda record: attrs.evolve(record, body=text)


class TestUpdateMany:
    def test_each_function_applies_to_its_record(self, repository: CommunicationRepository) -> None:
        """Every record gets its own function's result, returned by id; others are untouched."""
        repository.add_many([make(id=f"r{i}") for i in range(4)])
        done = repository.update_many({"r0": _body("zero"), "r2": _body("two")})
        assert {i: r.body for i, r in done.items()} == {"r0": "zero", "r2": "two"}
        assert [repository.get(f"r{i}").body for i in range(4)] == ["zero", "Olá", "two", "Olá"]  # type: ignore[union-attr]

    def test_missing_ids_are_left_out(self, repository: CommunicationRepository) -> None:
        """An id with no record is not in the result and creates nothing."""
        repository.add(make(id="here"))
        done = repository.update_many({"here": _body("x"), "gone": _body("y")})
        assert set(done) == {"here"}
        assert repository.get("gone") is None

    def test_an_exception_writes_nothing(self, repository: CommunicationRepository) -> None:
        """A function that raises: the error reaches the caller, no record changes."""
        repository.add_many([make(id="a"), make(id="b")])

        def boom(record: Communication) -> Communication:
            raise RuntimeError("no")

        with pytest.raises(RuntimeError, match="no"):
            repository.update_many({"a": _body("changed"), "b": boom})
        assert repository.get("a").body == "Olá"  # type: ignore[union-attr]

    def test_a_changed_id_is_refused(self, repository: CommunicationRepository) -> None:
        """A function changing the id raises RepositoryError."""
        repository.add(make(id="a"))
        with pytest.raises(RepositoryError):
            repository.update_many({"a": lambda r: attrs.evolve(r, id="other")})

    def test_nothing_to_do(self, repository: CommunicationRepository) -> None:
        """An empty mapping returns an empty dict."""
        assert repository.update_many({}) == {}


def _seen(status: str) -> Any:
    """An ``apply`` for record_event: a new record for SM1 when none, else the status set."""

    def apply(record: Communication | None) -> Communication:
        if record is None:
            return make(id="sid-SM1", twilio_sid="SM1", status=status)
        return attrs.evolve(record, status=status, twilio_sid="SM1")

    return apply


class TestRecordEvent:
    def test_found_by_id(self, repository: CommunicationRepository) -> None:
        """The record of ``communication_id`` is updated and the event kept after earlier ones."""
        repository.add(make(id="c1"))
        repository.append_event("c1", {"n": 0})
        record = repository.record_event({"n": 1}, _seen("sent"), communication_id="c1", sid="SM1")
        assert record is not None
        assert record.id == "c1"
        assert record.status == "sent"
        assert repository.get("c1") == record
        assert repository.events("c1") == [{"n": 0}, {"n": 1}]
        assert repository.find_by_sid("SM1") == record

    def test_an_id_of_another_sid_is_passed_over_for_the_sid(
        self, repository: CommunicationRepository
    ) -> None:
        """``communication_id`` naming a record of another SID: the SID's record is used."""
        repository.add(make(id="c1", twilio_sid="SMother"))
        repository.add(make(id="c2", twilio_sid="SM1"))
        record = repository.record_event({"n": 1}, _seen("sent"), communication_id="c1", sid="SM1")
        assert record is not None
        assert record.id == "c2"
        assert repository.get("c1").status == "pending"  # type: ignore[union-attr]
        assert repository.events("c1") == []
        assert repository.events("c2") == [{"n": 1}]

    def test_found_by_sid_alone(self, repository: CommunicationRepository) -> None:
        """Without an id (or with one that does not exist) the SID finds the record."""
        repository.add(make(id="c2", twilio_sid="SM1"))
        for cid in (None, "missing"):
            record = repository.record_event(
                {"cid": cid}, _seen("sent"), communication_id=cid, sid="SM1"
            )
            assert record is not None
            assert record.id == "c2"
        assert len(repository.events("c2")) == 2

    def test_nothing_found_creates(self, repository: CommunicationRepository) -> None:
        """No record: ``apply(None)`` is created with the event as its first."""
        record = repository.record_event(
            {"n": 1}, _seen("delivered"), communication_id="nope", sid="SM1"
        )
        assert record is not None
        assert record.id == "sid-SM1"
        assert repository.get("sid-SM1") == record
        assert repository.events("sid-SM1") == [{"n": 1}]

    def test_creating_an_existing_id_is_a_duplicate(
        self, repository: CommunicationRepository
    ) -> None:
        """``apply(None)`` giving an id that exists (found by no key): DuplicateRecord."""
        existing = repository.add(make(id="sid-SM1", twilio_sid="SMother"))
        with pytest.raises(DuplicateRecord):
            repository.record_event({"n": 1}, _seen("sent"), sid="SM1")
        assert repository.get("sid-SM1") == existing
        assert repository.events("sid-SM1") == []

    def test_a_kept_token_changes_nothing(self, repository: CommunicationRepository) -> None:
        """A retried delivery (same token) returns None: no update, no second event."""
        repository.add(make(id="c1"))
        first = repository.record_event(
            {"n": 1}, _seen("sent"), communication_id="c1", sid="SM1", token="tok-1"
        )
        again = repository.record_event(
            {"n": 1}, _seen("failed"), communication_id="c1", sid="SM1", token="tok-1"
        )
        assert again is None
        assert repository.get("c1") == first
        assert repository.events("c1") == [{"n": 1}]
        by_sid = repository.record_event({"n": 1}, _seen("failed"), sid="SM1", token="tok-1")
        assert by_sid is None
        other = repository.record_event(
            {"n": 2}, _seen("delivered"), communication_id="c1", sid="SM1", token="tok-2"
        )
        assert other is not None
        assert other.status == "delivered"
        assert repository.events("c1") == [{"n": 1}, {"n": 2}]

    def test_a_token_kept_by_add_counts(self, repository: CommunicationRepository) -> None:
        """The token of an ``add`` with its first event is known to record_event."""
        repository.add(make(id="in-1"), event={"n": 1}, token="tok-1")
        assert (
            repository.record_event(
                {"n": 1}, lambda r: r or make(), communication_id="in-1", token="tok-1"
            )
            is None
        )
        assert repository.events("in-1") == [{"n": 1}]

    def test_an_exception_from_apply_writes_nothing(
        self, repository: CommunicationRepository
    ) -> None:
        """``apply`` raising: the error reaches the caller; no record, no event."""
        repository.add(make(id="c1"))

        def boom(record: Communication | None) -> Communication:
            raise RuntimeError("no")

        with pytest.raises(RuntimeError, match="no"):
            repository.record_event({"n": 1}, boom, communication_id="c1")
        assert repository.get("c1").status == "pending"  # type: ignore[union-attr]
        assert repository.events("c1") == []

    def test_a_changed_id_is_refused(self, repository: CommunicationRepository) -> None:
        """``apply`` changing a found record's id raises RepositoryError."""
        repository.add(make(id="c1"))
        with pytest.raises(RepositoryError):
            repository.record_event({"n": 1}, lambda r: make(id="other"), communication_id="c1")


class TestEvents:
    def test_events_come_back_oldest_first_as_given(
        self, repository: CommunicationRepository
    ) -> None:
        """Events appended quickly, one after another, come back in order and unchanged."""
        record = repository.add(make())
        assert record.id is not None
        sent = [
            {"MessageSid": "SM1", "MessageStatus": status, "n": str(i)}
            for i, status in enumerate(["queued", "sent", "delivered", "read", "sent", "queued"])
        ]
        sent.append({"Body": "Olá 👋", "MediaUrl": ["https://a/1", "https://a/2"]})
        for event in sent:
            repository.append_event(record.id, event)
        assert repository.events(record.id) == sent

    def test_events_are_kept_per_record(self, repository: CommunicationRepository) -> None:
        """Each record has its own events."""
        a = repository.add(make())
        b = repository.add(make())
        assert a.id is not None
        assert b.id is not None
        repository.append_event(a.id, {"x": "a"})
        repository.append_event(b.id, {"x": "b"})
        assert repository.events(a.id) == [{"x": "a"}]
        assert repository.events(b.id) == [{"x": "b"}]

    def test_stored_event_is_a_copy(self, repository: CommunicationRepository) -> None:
        """Changing the dict after append_event, or the returned list, changes nothing kept."""
        record = repository.add(make())
        assert record.id is not None
        event: dict[str, Any] = {"MessageStatus": "sent", "list": ["a"]}
        repository.append_event(record.id, event)
        event["MessageStatus"] = "changed"
        event["list"].append("b")
        repository.events(record.id)[0]["MessageStatus"] = "mutated"
        assert repository.events(record.id) == [{"MessageStatus": "sent", "list": ["a"]}]

    def test_append_to_missing_record_raises(self, repository: CommunicationRepository) -> None:
        """append_event on an unknown id raises RecordNotFound and keeps nothing."""
        with pytest.raises(RecordNotFound):
            repository.append_event("nope", {"MessageStatus": "sent"})
        assert repository.events("nope") == []

    def test_events_of_unknown_or_quiet_record_are_empty(
        self, repository: CommunicationRepository
    ) -> None:
        """events() is [] for an unknown id and for a record without callbacks."""
        record = repository.add(make())
        assert record.id is not None
        assert repository.events("unknown") == []
        assert repository.events(record.id) == []

    def test_update_keeps_events(self, repository: CommunicationRepository) -> None:
        """Updating a record does not lose its events, and later events still append."""
        record = repository.add(make())
        assert record.id is not None
        repository.append_event(record.id, {"n": 1})
        repository.update(record.id, lambda c: attrs.evolve(c, status="sent"))
        repository.append_event(record.id, {"n": 2})
        assert repository.events(record.id) == [{"n": 1}, {"n": 2}]


class TestHistory:
    def test_newest_first_for_one_prospect(self, repository: CommunicationRepository) -> None:
        """Only the prospect's records, newest timestamp first, whatever the insertion order."""
        for minute in (2, 0, 3, 1):
            repository.add(make(id=f"p1-{minute}", timestamp=at(minute)))
        repository.add(make(id="other", prospect_id="prospect-2", timestamp=at(9)))
        repository.add(make(id="none", prospect_id=None, timestamp=at(9)))
        found = repository.history("prospect-1")
        assert [c.id for c in found] == ["p1-3", "p1-2", "p1-1", "p1-0"]
        assert repository.history("prospect-3") == []

    def test_channel_filter(self, repository: CommunicationRepository) -> None:
        """channel= keeps only that channel's records, still newest first."""
        repository.add(make(id="sms", timestamp=at(0)))
        repository.add(make(id="wa-old", channel=Channel.WHATSAPP, timestamp=at(1)))
        repository.add(make(id="call", channel=Channel.CALL, body=None, timestamp=at(2)))
        repository.add(make(id="wa-new", channel=Channel.WHATSAPP, timestamp=at(3)))
        whatsapp = repository.history("prospect-1", channel=Channel.WHATSAPP)
        assert [c.id for c in whatsapp] == ["wa-new", "wa-old"]
        assert [c.id for c in repository.history("prospect-1", channel=Channel.CALL)] == ["call"]

    def test_limit(self, repository: CommunicationRepository) -> None:
        """limit caps the result to the newest records."""
        for minute in range(5):
            repository.add(make(id=f"m{minute}", timestamp=at(minute)))
        assert [c.id for c in repository.history("prospect-1", limit=2)] == ["m4", "m3"]
        assert len(repository.history("prospect-1", limit=1000)) == 5

    @pytest.mark.parametrize("limit", [0, -1, 1001])
    def test_limit_out_of_range(self, repository: CommunicationRepository, limit: int) -> None:
        """A limit outside 1..1000 raises ValueError."""
        with pytest.raises(ValueError, match="limit"):
            repository.history("prospect-1", limit=limit)

    def test_naive_before_is_refused(self, repository: CommunicationRepository) -> None:
        """A naive before raises ValueError rather than guessing a zone."""
        with pytest.raises(ValueError, match="aware"):
            repository.history("prospect-1", before=datetime(2024, 1, 1))

    def test_before_is_exclusive(self, repository: CommunicationRepository) -> None:
        """before keeps only records strictly older than it."""
        for minute in range(4):
            repository.add(make(id=f"m{minute}", timestamp=at(minute)))
        assert [c.id for c in repository.history("prospect-1", before=at(2))] == ["m1", "m0"]
        assert repository.history("prospect-1", before=at(0)) == []

    def test_before_in_another_zone(self, repository: CommunicationRepository) -> None:
        """An aware before in a non-UTC zone means the same instant."""
        for minute in range(3):
            repository.add(make(id=f"m{minute}", timestamp=at(minute)))
        sao_paulo = timezone(timedelta(hours=-3))
        found = repository.history("prospect-1", before=at(2).astimezone(sao_paulo))
        assert [c.id for c in found] == ["m1", "m0"]

    def test_paging_with_before(self, repository: CommunicationRepository) -> None:
        """Paging by the last timestamp walks every record once, newest first."""
        for minute in range(7):
            repository.add(make(id=f"m{minute}", timestamp=at(minute)))
        seen: list[str | None] = []
        before = None
        while page := repository.history("prospect-1", limit=3, before=before):
            seen.extend(c.id for c in page)
            before = page[-1].timestamp
        assert seen == [f"m{m}" for m in range(6, -1, -1)]

    def test_paging_with_equal_timestamps(self, repository: CommunicationRepository) -> None:
        """Records sharing a page's last timestamp are not repeated; the next page is older.

        ``before`` is a filter, not a cursor: a page that ends inside a group of
        equal timestamps skips the rest of that group (documented), never
        returns a record twice and never returns one out of order.
        """
        repository.add(make(id="old", timestamp=at(0)))
        for name in ("t1", "t2", "t3"):
            repository.add(make(id=name, timestamp=at(1)))
        repository.add(make(id="new", timestamp=at(2)))
        first = repository.history("prospect-1", limit=2)
        assert first[0].id == "new"
        assert first[1].id in {"t1", "t2", "t3"}
        second = repository.history("prospect-1", limit=2, before=first[-1].timestamp)
        assert [c.id for c in second] == ["old"]
        everything = repository.history("prospect-1")
        assert [c.timestamp for c in everything] == sorted(
            (c.timestamp for c in everything), reverse=True
        )
        assert {c.id for c in everything} == {"old", "t1", "t2", "t3", "new"}

    @pytest.mark.parametrize("channel", ["fax", "SMS", ""])
    def test_unknown_channel_is_refused(
        self, repository: CommunicationRepository, channel: str
    ) -> None:
        """An unknown channel is a ValueError on every backend, not an empty page."""
        with pytest.raises(ValueError, match="channel"):
            repository.history("prospect-1", channel=channel)  # type: ignore[arg-type]


class TestLatestOutboundTo:
    def test_newest_outbound_to_the_number(self, repository: CommunicationRepository) -> None:
        """The newest outbound record to the number wins; inbound and other numbers are ignored."""
        number = "+5511988887777"
        repository.add(make(id="old", to=number, timestamp=at(0)))
        repository.add(make(id="new", to=number, prospect_id="prospect-9", timestamp=at(1)))
        repository.add(
            make(
                id="inbound",
                to=number,
                from_="+15005550006",
                direction=Direction.INBOUND,
                status="received",
                timestamp=at(5),
            )
        )
        repository.add(make(id="elsewhere", to="+5511000000000", timestamp=at(9)))
        found = repository.latest_outbound_to(number)
        assert found is not None
        assert found.id == "new"
        assert found.prospect_id == "prospect-9"

    def test_none_when_only_inbound(self, repository: CommunicationRepository) -> None:
        """A number that only ever wrote to us has no outbound record."""
        repository.add(make(to="+5511977776666", direction=Direction.INBOUND, status="received"))
        assert repository.latest_outbound_to("+5511977776666") is None
        assert repository.latest_outbound_to("+5511900000000") is None


def _ids(records: list[Communication]) -> list[str | None]:
    return [c.id for c in records]


def _outbound(kind: str, status: str, minute: float, **changes: Any) -> Communication:
    """An outbound ``kind`` ("sms" or "call") record named ``<kind>-<status>``."""
    fields: dict[str, Any] = {"id": f"{kind}-{status}", "status": status, "timestamp": at(minute)}
    if kind == "call":
        fields.update(channel=Channel.CALL, body=None)
    fields.update(changes)
    return make(**fields)


OPEN_KINDS = [
    _outbound("sms", "pending", 0),
    _outbound("sms", "unknown", 1, twilio_sid="SMu"),
    _outbound("sms", "accepted", 2),
    _outbound("sms", "scheduled", 3),
    _outbound("sms", "queued", 4),
    _outbound("sms", "sending", 5),
    _outbound("sms", "sent", 6),
    _outbound("sms", "brand-new-status", 7),
    _outbound("call", "pending", 8),
    _outbound("call", "queued", 9),
    _outbound("call", "initiated", 10),
    _outbound("call", "ringing", 11),
    _outbound("call", "in-progress", 12),
    _outbound("call", "completed", 13, id="call-awaiting-recording", recording_requested=True),
]
CLOSED_KINDS = [
    _outbound("sms", "partially_delivered", 20),
    _outbound("sms", "delivered", 21),
    _outbound("sms", "read", 22),
    _outbound("sms", "undelivered", 23),
    _outbound("sms", "failed", 24),
    _outbound("sms", "canceled", 25),
    _outbound("call", "completed", 26),
    _outbound(
        "call",
        "completed",
        27,
        id="call-recorded",
        recording_requested=True,
        recording_sid="RE1",
        recording_url="https://api.twilio.com/rec/RE1",
    ),
    _outbound("call", "busy", 28),
    _outbound("call", "no-answer", 29),
    _outbound("call", "failed", 30),
    _outbound("call", "canceled", 31),
    make(id="inbound", direction=Direction.INBOUND, status="received", timestamp=at(32)),
    make(id="inbound-odd", direction=Direction.INBOUND, status="queued", timestamp=at(33)),
]


def _grid(repository: CommunicationRepository) -> None:
    """Twelve records, a minute apart: prospects p1, p2 x sms, whatsapp, call x sent, failed."""
    records = []
    for prospect in ("p1", "p2"):
        for channel in (Channel.SMS, Channel.WHATSAPP, Channel.CALL):
            for status in ("sent", "failed"):
                name = f"{prospect}-{channel.value}-{status}"
                records.append(
                    make(id=name, prospect_id=prospect, channel=channel, status=status,
                         timestamp=at(len(records)))
                )  # fmt: skip
    repository.add_many(records)


class TestCommunications:
    def test_everything_newest_first(self, repository: CommunicationRepository) -> None:
        """Without filters: every record, of every prospect (or none), newest timestamp first."""
        for minute in (2, 0, 3, 1):
            repository.add(make(id=f"m{minute}", prospect_id=f"p{minute}", timestamp=at(minute)))
        repository.add(make(id="nobody", prospect_id=None, timestamp=at(1.5)))
        assert _ids(repository.communications()) == ["m3", "m2", "nobody", "m1", "m0"]

    def test_empty(self, repository: CommunicationRepository) -> None:
        """An empty repository, or filters nothing matches: an empty list."""
        assert repository.communications() == []
        repository.add(make())
        assert repository.communications(status="read") == []
        assert repository.communications(prospect_id="nobody") == []

    def test_channel(self, repository: CommunicationRepository) -> None:
        """channel= keeps that channel's records, across prospects."""
        _grid(repository)
        found = repository.communications(channel=Channel.WHATSAPP)
        assert _ids(found) == [
            "p2-whatsapp-failed",
            "p2-whatsapp-sent",
            "p1-whatsapp-failed",
            "p1-whatsapp-sent",
        ]

    def test_one_status(self, repository: CommunicationRepository) -> None:
        """status="failed" keeps the failed records only."""
        _grid(repository)
        found = repository.communications(status="failed")
        assert {c.status for c in found} == {"failed"}
        assert len(found) == 6

    @pytest.mark.parametrize(
        "statuses", [["sent", "failed"], ("failed", "sent"), {"sent", "failed"}, ["sent", "sent"]]
    )
    def test_several_statuses(self, repository: CommunicationRepository, statuses: Any) -> None:
        """A list, tuple or set of statuses keeps records of any of them (repeats are harmless)."""
        _grid(repository)
        repository.add(make(id="read", status="read", timestamp=at(60)))
        found = repository.communications(status=statuses)
        assert {c.status for c in found} == set(statuses)
        assert "read" not in _ids(found)
        assert [c.timestamp for c in found] == sorted((c.timestamp for c in found), reverse=True)

    def test_prospect(self, repository: CommunicationRepository) -> None:
        """prospect_id= keeps that prospect's records, newest first."""
        _grid(repository)
        found = repository.communications(prospect_id="p2")
        assert _ids(found) == [
            "p2-call-failed",
            "p2-call-sent",
            "p2-whatsapp-failed",
            "p2-whatsapp-sent",
            "p2-sms-failed",
            "p2-sms-sent",
        ]

    def test_filters_combine(self, repository: CommunicationRepository) -> None:
        """Every filter given must hold: channel, status, prospect, open, since and before."""
        _grid(repository)
        assert _ids(
            repository.communications(channel=Channel.CALL, status="sent", prospect_id="p1")
        ) == ["p1-call-sent"]
        assert _ids(
            repository.communications(
                channel=Channel.SMS, status=["sent", "failed"], open_only=True
            )
        ) == ["p2-sms-sent", "p1-sms-sent"]
        assert _ids(
            repository.communications(prospect_id="p2", open_only=True, since=at(7), before=at(11))
        ) == ["p2-call-sent", "p2-whatsapp-sent"]
        assert repository.communications(channel=Channel.CALL, prospect_id="p3") == []

    def test_open_only_finds_every_open_kind(self, repository: CommunicationRepository) -> None:
        """open_only keeps records not yet final: messages below partially_delivered, calls
        below completed, a completed call whose asked-for recording is missing; never inbound."""
        repository.add_many([*OPEN_KINDS, *CLOSED_KINDS])
        found = repository.communications(open_only=True)
        assert _ids(found) == [c.id for c in reversed(OPEN_KINDS)]
        assert all(is_open(c) for c in found)
        assert not any(is_open(c) for c in CLOSED_KINDS)
        assert len(repository.communications(limit=100)) == len(OPEN_KINDS) + len(CLOSED_KINDS)

    def test_a_final_record_without_price_is_open_until_reconciled(
        self, repository: CommunicationRepository
    ) -> None:
        """A final record with a SID and no price stays open until reconcile has fetched it
        (callbacks carry no price); a price or ``reconciled`` closes it."""
        repository.add_many(
            [
                _outbound("sms", "delivered", 0, twilio_sid="SM1"),
                _outbound("sms", "read", 1, twilio_sid="SM2", price="-0.0075", price_unit="USD"),
                _outbound("call", "completed", 2, twilio_sid="CA1", reconciled=True),
                _outbound("call", "busy", 3, twilio_sid="CA2"),
            ]
        )
        assert _ids(repository.communications(open_only=True)) == ["call-busy", "sms-delivered"]
        repository.update("sms-delivered", lambda c: attrs.evolve(c, reconciled=True))
        repository.update("call-busy", lambda c: attrs.evolve(c, price="0.00000"))
        assert repository.communications(open_only=True) == []
        stored = repository.get("sms-delivered")
        assert stored is not None
        assert stored.reconciled

    def test_open_only_with_other_filters(self, repository: CommunicationRepository) -> None:
        """open_only combines with channel and before, as reconcile asks for the older ones."""
        repository.add_many([*OPEN_KINDS, *CLOSED_KINDS])
        calls = repository.communications(channel=Channel.CALL, open_only=True, before=at(10))
        assert _ids(calls) == ["call-queued", "call-pending"]
        assert _ids(repository.communications(status="completed", open_only=True)) == [
            "call-awaiting-recording"
        ]

    def test_an_update_that_settles_a_record_takes_it_out(
        self, repository: CommunicationRepository
    ) -> None:
        """After update, update_many or record_event makes a record final, open_only skips it;
        an update that reopens one (a recording asked for) brings it back."""
        repository.add_many(
            [
                _outbound("sms", "sent", 0),
                _outbound("sms", "queued", 1),
                _outbound("call", "completed", 2, recording_requested=True),
                _outbound("sms", "unknown", 3),
                _outbound("call", "in-progress", 4),
            ]
        )
        assert len(repository.communications(open_only=True)) == 5
        repository.update("sms-sent", lambda c: attrs.evolve(c, status="delivered"))
        repository.update_many({"sms-queued": lambda c: attrs.evolve(c, status="failed")})
        repository.record_event(
            {"RecordingSid": "RE1"},
            lambda c: attrs.evolve(c, recording_sid="RE1") if c else make(),
            communication_id="call-completed",
        )
        assert _ids(repository.communications(open_only=True)) == [
            "call-in-progress",
            "sms-unknown",
        ]
        repository.update(
            "call-in-progress",
            lambda c: attrs.evolve(c, status="completed", recording_requested=True),
        )
        assert _ids(repository.communications(open_only=True)) == [
            "call-in-progress",
            "sms-unknown",
        ]
        repository.update("sms-unknown", lambda c: attrs.evolve(c, status="read"))
        assert _ids(repository.communications(open_only=True)) == ["call-in-progress"]

    def test_since_is_inclusive_and_before_exclusive(
        self, repository: CommunicationRepository
    ) -> None:
        """since keeps records at or after it, before those strictly older."""
        for minute in range(5):
            repository.add(make(id=f"m{minute}", timestamp=at(minute)))
        assert _ids(repository.communications(since=at(3))) == ["m4", "m3"]
        assert _ids(repository.communications(before=at(1))) == ["m0"]
        assert _ids(repository.communications(since=at(1), before=at(3))) == ["m2", "m1"]
        assert repository.communications(since=at(3), before=at(3)) == []
        assert repository.communications(since=at(4), before=at(1)) == []

    def test_bounds_in_another_zone(self, repository: CommunicationRepository) -> None:
        """Aware bounds in a non-UTC zone mean the same instants."""
        for minute in range(4):
            repository.add(make(id=f"m{minute}", timestamp=at(minute)))
        zone = timezone(timedelta(hours=-3))
        found = repository.communications(
            since=at(1).astimezone(zone), before=at(3).astimezone(zone)
        )
        assert _ids(found) == ["m2", "m1"]

    def test_limit(self, repository: CommunicationRepository) -> None:
        """limit caps the page to the newest records; 1000 is allowed."""
        for minute in range(5):
            repository.add(make(id=f"m{minute}", timestamp=at(minute)))
        assert _ids(repository.communications(limit=2)) == ["m4", "m3"]
        assert _ids(repository.communications(limit=1, status="pending")) == ["m4"]
        assert len(repository.communications(limit=1000)) == 5

    def test_paging_with_before(self, repository: CommunicationRepository) -> None:
        """Paging by the last timestamp, with filters, walks every match once, newest first."""
        records = [
            make(id=f"m{m}", timestamp=at(m), status="failed" if m % 2 else "sent")
            for m in range(11)
        ]
        repository.add_many(records)
        seen: list[str | None] = []
        before = None
        while page := repository.communications(status="failed", limit=2, before=before):
            seen.extend(_ids(page))
            before = page[-1].timestamp
        assert seen == ["m9", "m7", "m5", "m3", "m1"]

    def test_ties_come_in_id_order(self, repository: CommunicationRepository) -> None:
        """Records of one timestamp come back by id, greatest first, as history sorts them."""
        repository.add_many([make(id=name, timestamp=at(1)) for name in ("b", "c", "a")])
        repository.add(make(id="z-older", timestamp=at(0)))
        assert _ids(repository.communications()) == ["c", "b", "a", "z-older"]

    @pytest.mark.parametrize(
        ("arguments", "error", "match"),
        [
            ({"limit": 0}, ValueError, "limit"),
            ({"limit": 1001}, ValueError, "limit"),
            ({"limit": "5"}, TypeError, "limit"),
            ({"limit": True}, TypeError, "limit"),
            ({"channel": "fax"}, ValueError, "channel"),
            ({"since": datetime(2024, 1, 1)}, ValueError, "aware"),
            ({"before": datetime(2024, 1, 1)}, ValueError, "aware"),
            ({"since": "2024-01-01"}, TypeError, "since"),
            ({"status": []}, ValueError, "status"),
            ({"status": [f"s{i}" for i in range(11)]}, ValueError, "status"),
            ({"status": ""}, ValueError, "status"),
            ({"status": ["sent", 3]}, ValueError, "status"),
            ({"prospect_id": ""}, ValueError, "prospect_id"),
        ],
    )
    def test_bad_arguments(
        self,
        repository: CommunicationRepository,
        arguments: dict[str, Any],
        error: type[Exception],
        match: str,
    ) -> None:
        """Bad filters raise InvalidArgument (a ValueError) or TypeError on every backend."""
        repository.add(make())
        with pytest.raises(error, match=match) as caught:
            repository.communications(**arguments)
        if error is ValueError:
            assert isinstance(caught.value, InvalidArgument)


def _day(day: int, hour: int = 12, minute: int = 0) -> datetime:
    return datetime(2024, 5, day, hour, minute, tzinfo=UTC)


class TestCountByDay:
    def test_counts_per_day_channel_and_status(self, repository: CommunicationRepository) -> None:
        """Each (UTC day, channel, status) with records gets its count, ordered by those three."""
        records = [
            make(id="a", timestamp=_day(1), status="delivered"),
            make(id="b", timestamp=_day(1, 13), status="delivered"),
            make(id="c", timestamp=_day(1, 14), status="failed"),
            make(id="d", timestamp=_day(1, 15), channel=Channel.WHATSAPP, status="read"),
            make(id="e", timestamp=_day(1, 16), channel=Channel.CALL, body=None,
                 status="completed"),
            make(id="f", timestamp=_day(3), status="delivered", prospect_id=None),
            make(id="g", timestamp=_day(3, 1), direction=Direction.INBOUND, status="received"),
        ]  # fmt: skip
        repository.add_many(records)
        counted = repository.count_by_day(since=_day(1, 0), until=_day(4, 0))
        assert counted == [
            DayCount(day=date(2024, 5, 1), channel=Channel.CALL, status="completed", count=1),
            DayCount(day=date(2024, 5, 1), channel=Channel.SMS, status="delivered", count=2),
            DayCount(day=date(2024, 5, 1), channel=Channel.SMS, status="failed", count=1),
            DayCount(day=date(2024, 5, 1), channel=Channel.WHATSAPP, status="read", count=1),
            DayCount(day=date(2024, 5, 3), channel=Channel.SMS, status="delivered", count=1),
            DayCount(day=date(2024, 5, 3), channel=Channel.SMS, status="received", count=1),
        ]
        assert all(isinstance(row.channel, Channel) for row in counted)

    def test_bounds_are_half_open(self, repository: CommunicationRepository) -> None:
        """A record at since counts; one at until does not; nor one just before since."""
        repository.add_many(
            [
                make(id="before", timestamp=_day(1) - timedelta(microseconds=1)),
                make(id="at-since", timestamp=_day(1)),
                make(id="inside", timestamp=_day(1, 23, 59)),
                make(id="at-until", timestamp=_day(2)),
            ]
        )
        counted = repository.count_by_day(since=_day(1), until=_day(2))
        assert counted == [
            DayCount(day=date(2024, 5, 1), channel=Channel.SMS, status="pending", count=2)
        ]

    def test_days_are_utc_days(self, repository: CommunicationRepository) -> None:
        """A record is counted on the UTC date of its timestamp, whatever the bounds' zone."""
        repository.add_many(
            [
                make(id="late", timestamp=datetime(2024, 5, 1, 23, 59, 59, 999999, tzinfo=UTC)),
                make(id="midnight", timestamp=datetime(2024, 5, 2, tzinfo=UTC)),
            ]
        )
        zone = timezone(timedelta(hours=-3))
        counted = repository.count_by_day(
            since=datetime(2024, 5, 1, tzinfo=zone), until=datetime(2024, 5, 3, tzinfo=zone)
        )
        assert [(row.day, row.count) for row in counted] == [
            (date(2024, 5, 1), 1),
            (date(2024, 5, 2), 1),
        ]

    def test_empty(self, repository: CommunicationRepository) -> None:
        """No records in the range (or none at all): an empty list, no zero rows."""
        assert repository.count_by_day(since=_day(1), until=_day(8)) == []
        repository.add(make(timestamp=_day(9)))
        assert repository.count_by_day(since=_day(1), until=_day(8)) == []

    def test_counts_follow_updates(self, repository: CommunicationRepository) -> None:
        """A record whose status changes is counted under its new status only."""
        repository.add_many([make(id="a", timestamp=_day(1)), make(id="b", timestamp=_day(1))])
        repository.update("a", lambda c: attrs.evolve(c, status="delivered"))
        counted = repository.count_by_day(since=_day(1, 0), until=_day(2, 0))
        assert [(row.status, row.count) for row in counted] == [("delivered", 1), ("pending", 1)]

    @pytest.mark.parametrize(
        ("since", "until", "error"),
        [
            (datetime(2024, 5, 1), _day(2), ValueError),
            (_day(1), datetime(2024, 5, 2), ValueError),
            (_day(2), _day(2), ValueError),
            (_day(2), _day(1), ValueError),
            ("2024-05-01", _day(2), TypeError),
            (_day(1), None, TypeError),
        ],
    )
    def test_bad_bounds(
        self, repository: CommunicationRepository, since: Any, until: Any, error: type[Exception]
    ) -> None:
        """Naive bounds, until not after since: InvalidArgument; a non-datetime: TypeError."""
        with pytest.raises(error):
            repository.count_by_day(since=since, until=until)


class TestCostAndRecordingFields:
    def test_they_round_trip(self, repository: CommunicationRepository) -> None:
        """price (a string, exactly as given), price_unit, num_segments and
        recording_requested are stored and read back, by id, SID and query."""
        message = make(
            id="m", twilio_sid="SMm", status="delivered", price="-0.00750", price_unit="USD",
            num_segments=2,
        )  # fmt: skip
        call = make(
            id="c", channel=Channel.CALL, body=None, status="completed", price="-0.0130",
            price_unit="BRL", recording_requested=True, timestamp=at(1),
        )  # fmt: skip
        repository.add_many([message, call])
        assert repository.get("m") == message
        assert repository.get("c") == call
        assert repository.find_by_sid("SMm") == message
        assert repository.communications() == [call, message]
        stored = repository.get("m")
        assert stored is not None
        assert stored.price == "-0.00750"
        assert type(stored.num_segments) is int

    def test_defaults_round_trip(self, repository: CommunicationRepository) -> None:
        """A record without them reads back with None and recording_requested False."""
        repository.add(make(id="plain"))
        stored = repository.get("plain")
        assert stored is not None
        assert (stored.price, stored.price_unit, stored.num_segments) == (None, None, None)
        assert stored.recording_requested is False

    def test_set_and_cleared_by_update(self, repository: CommunicationRepository) -> None:
        """An update can set them later (Twilio's price arrives late) and clear them again."""
        repository.add(make(id="m", status="sent"))
        priced = repository.update(
            "m",
            lambda c: attrs.evolve(
                c, status="delivered", price="0.00", price_unit="EUR", num_segments=0,
                recording_requested=True,
            ),
        )  # fmt: skip
        assert repository.get("m") == priced
        assert repository.get("m").price == "0.00"  # type: ignore[union-attr]
        cleared = repository.update(
            "m",
            lambda c: attrs.evolve(
                c, price=None, price_unit=None, num_segments=None, recording_requested=False
            ),
        )
        assert repository.get("m") == cleared
        assert cleared == make(id="m", status="delivered")


class TestRoundTrip:
    def test_every_field_survives(self, repository: CommunicationRepository) -> None:
        """A record with every field set reads back equal: media lists, unicode, microseconds."""
        record = Communication(
            id="full",
            prospect_id="prospect-ü",
            channel=Channel.WHATSAPP,
            direction=Direction.INBOUND,
            to="+5511999999999",
            from_="+14155238886",
            body="Olá, tudo bem? 🎉 \n «ok» 中文",
            media_url="https://example.com/a.jpg",
            media_urls=("https://example.com/a.jpg", "https://example.com/b.pdf"),
            twilio_sid="MM0123456789abcdef0123456789abcdef",
            status="received",
            duration=0,
            recording_url="https://api.twilio.com/rec/RE1",
            recording_sid="RE1",
            recording_duration=42,
            error="Message blocked",
            error_code=30007,
            timestamp=datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC),
            created_at=datetime(2024, 5, 1, 12, 0, 0, 654321, tzinfo=UTC),
            updated_at=datetime(2024, 5, 2, 0, 0, 0, 1, tzinfo=UTC),
            recording_requested=True,
            price="-0.00750",
            price_unit="USD",
            num_segments=3,
        )
        repository.add(record)
        assert repository.get("full") == record
        found = repository.find_by_sid("MM0123456789abcdef0123456789abcdef")
        assert found == record

    def test_none_values_survive(self, repository: CommunicationRepository) -> None:
        """A call record with every optional field None reads back with None, not '' or 0."""
        record = Communication(
            id="bare",
            prospect_id=None,
            channel=Channel.CALL,
            to="+5511999999999",
            from_="+15005550006",
            timestamp=T0,
            created_at=T0,
            updated_at=T0,
        )
        repository.add(record)
        stored = repository.get("bare")
        assert stored == record
        assert stored is not None
        assert stored.body is None
        assert stored.media_urls == ()
        assert stored.twilio_sid is None

    def test_non_utc_times_come_back_as_utc(self, repository: CommunicationRepository) -> None:
        """Aware times in another zone are stored as the same instant and read back in UTC."""
        zone = timezone(timedelta(hours=-3))
        local = datetime(2024, 5, 1, 9, 30, 15, 250000, tzinfo=zone)
        repository.add(make(id="tz", timestamp=local, created_at=local, updated_at=local))
        stored = repository.get("tz")
        assert stored is not None
        for value in (stored.timestamp, stored.created_at, stored.updated_at):
            assert value == local
            assert value.utcoffset() == timedelta(0)
            assert value.hour == 12


class TestPing:
    def test_answers_when_up(self, repository: CommunicationRepository) -> None:
        """ping returns None on a working backend, empty or not."""
        assert repository.ping() is None
        repository.add(make())
        assert repository.ping() is None
