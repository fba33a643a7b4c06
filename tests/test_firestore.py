"""What the Firestore repositories add to the contract: stored schema, legacy documents,
batches, indexes, error translation and time bounds.

The tests of error translation, transaction deadlines and dead hosts run on
both kinds (``kind``): `FirestoreRepository`, and `AsyncFirestoreRepository`
behind a `SyncFacade` (the same fake APIs, given their async face).
"""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import attrs
import grpc
import pytest
from google.api_core import exceptions as api_exceptions
from google.api_core.retry import AsyncRetry, Retry
from google.auth import exceptions as auth_exceptions
from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore
from google.cloud.firestore_v1.async_query import AsyncQuery
from google.cloud.firestore_v1.query import Query

from servio_twilio.domain.errors import DuplicateRecord, RecordNotFound, RepositoryError
from servio_twilio.domain.models import Channel, Communication, Direction
from servio_twilio.storage.firestore import transaction as transaction_module
from servio_twilio.storage.firestore.documents import COUNTED_FIELDS
from servio_twilio.storage.firestore.repository import (
    EVENTS_SUBCOLLECTION,
    MAX_BATCH_WRITES,
    FirestoreRepository,
    from_document,
    to_document,
)
from support.firestore_emulator import PROJECT, unique_collection
from support.firestore_fakes import KINDS, client_of, repository_of, with_api
from support.grpc_fakes import RpcCall as _FakeRpcError
from support.processes import free_port
from support.sync_facade import LoopThread

ROOT = Path(__file__).resolve().parent.parent
T0 = datetime(2024, 5, 1, 12, 0, 0, 123456, tzinfo=UTC)

DESIGN_FIELDS = {
    "prospectId",
    "type",
    "direction",
    "to",
    "from",
    "body",
    "mediaUrl",
    "mediaUrls",
    "twilioSid",
    "status",
    "statusRank",
    "duration",
    "recordingDuration",
    "recordingUrl",
    "recordingSid",
    "error",
    "errorCode",
    "timestamp",
    "createdAt",
    "updatedAt",
    "open",  # derived: is_open(record), for the query of open records (new in 0.2)
}


def make(**changes: Any) -> Communication:
    fields: dict[str, Any] = {
        "prospect_id": "prospect-1",
        "channel": Channel.WHATSAPP,
        "to": "+5511999999999",
        "from_": "+14155238886",
        "body": "Olá",
        "timestamp": T0,
        "created_at": T0,
        "updated_at": T0,
    }
    fields.update(changes)
    return Communication(**fields)


def offline_client() -> Any:
    """A Firestore client that never connects (its API is replaced before any call)."""
    return firestore.Client(project="demo-offline", credentials=AnonymousCredentials())


@pytest.fixture(params=KINDS)
def kind(request: pytest.FixtureRequest) -> str:
    """``sync``: `FirestoreRepository`; ``async``: `AsyncFirestoreRepository` behind a facade."""
    param: str = request.param
    return param


@pytest.fixture
def loop() -> Iterator[Callable[[], LoopThread]]:
    """The event loop of the test's async facades, started on first use, closed after."""
    started: list[LoopThread] = []

    def get() -> LoopThread:
        if not started:
            started.append(LoopThread())
        return started[0]

    yield get
    for thread in started:
        thread.close()


@pytest.fixture
def offline(kind: str, loop: Callable[[], LoopThread]) -> Callable[..., Any]:
    """Builds a repository of ``kind`` whose client never connects; on the fake ``api`` if given."""

    def build(api: Any = None, **kwargs: Any) -> Any:
        client = client_of(kind, project="demo-offline", offline=True)
        if api is not None:
            with_api(kind, client, api)
        return repository_of(kind, client, loop, **kwargs)

    return build


@pytest.fixture
def connect(kind: str, loop: Callable[[], LoopThread]) -> Callable[..., Any]:
    """Builds a repository of ``kind`` on the host ``FIRESTORE_EMULATOR_HOST`` names."""

    def build(project: str = PROJECT, **kwargs: Any) -> Any:
        return repository_of(kind, client_of(kind, project=project), loop, **kwargs)

    return build


class TestToDocument:
    def test_field_names_and_types(self) -> None:
        """Every field of a full record maps to DESIGN's name and a Firestore-native type."""
        record = make(
            media_url="https://m/1.jpg",
            media_urls=["https://m/1.jpg", "https://m/2.jpg"],
            twilio_sid="MM1",
            status="delivered",
            duration=3,
            recording_url="https://r/RE1",
            recording_sid="RE1",
            recording_duration=2,
            error="oops",
            error_code=30008,
        )
        document = to_document(record)
        assert set(document) == DESIGN_FIELDS
        assert document["type"] == "whatsapp"
        assert document["direction"] == "outbound"
        assert document["mediaUrl"] == "https://m/1.jpg"
        assert document["mediaUrls"] == ["https://m/1.jpg", "https://m/2.jpg"]
        assert document["statusRank"] == 7
        assert document["timestamp"] == T0

    def test_pending_record_has_no_sid_and_null_prospect(self) -> None:
        """A pending record omits twilioSid and unset optionals, but keeps prospectId: null."""
        document = to_document(make(prospect_id=None, body=None))
        assert "twilioSid" not in document
        assert "body" not in document
        assert "mediaUrl" not in document
        assert document["prospectId"] is None
        assert document["mediaUrls"] == []
        assert document["status"] == "pending"
        assert document["statusRank"] == 0

    def test_media_url_defaults_to_the_first_url(self) -> None:
        """With media_urls but no media_url, mediaUrl is the first URL, as DESIGN says."""
        document = to_document(make(media_urls=["https://a", "https://b"]))
        assert document["mediaUrl"] == "https://a"


class TestFromDocument:
    def test_round_trip(self) -> None:
        """from_document(to_document(c)) is c."""
        record = make(id="x", twilio_sid="SM1", media_url="https://a", media_urls=["https://a"])
        assert from_document("x", to_document(record)) == record

    def test_legacy_whatsapp_message(self) -> None:
        """A Node-service message: prefixed numbers, no direction, no mediaUrls, one time field."""
        legacy = {
            "prospectId": "p1",
            "type": "whatsapp",
            "to": "whatsapp:+5511999999999",
            "from": "whatsapp:+14155238886",
            "body": "Oi",
            "mediaUrl": "https://x/1.jpg",
            "twilioSid": "SM1",
            "status": "sent",
            "timestamp": T0,
        }
        record = from_document("legacy", legacy)
        assert record == Communication(
            id="legacy",
            prospect_id="p1",
            channel=Channel.WHATSAPP,
            direction=Direction.OUTBOUND,
            to="+5511999999999",
            from_="+14155238886",
            body="Oi",
            media_url="https://x/1.jpg",
            media_urls=("https://x/1.jpg",),
            twilio_sid="SM1",
            status="sent",
            timestamp=T0,
            created_at=T0,
            updated_at=T0,
        )

    def test_legacy_call_with_strings_and_missing_status(self) -> None:
        """Numeric strings become ints, ISO strings times; a missing status reads as unknown."""
        legacy = {
            "type": "call",
            "to": "+5511999999999",
            "from": "+15005550006",
            "duration": "37",
            "recordingDuration": 35.0,
            "errorCode": "30003",
            "createdAt": "2024-05-01T12:00:00.123456Z",
        }
        record = from_document("call", legacy)
        assert record.channel == Channel.CALL
        assert (record.duration, record.recording_duration, record.error_code) == (37, 35, 30003)
        assert record.status == "unknown"
        assert record.prospect_id is None
        assert record.timestamp == record.created_at == record.updated_at == T0

    def test_missing_type_is_inferred_from_prefix(self) -> None:
        """Without type, a whatsapp: number means WhatsApp, else SMS."""
        assert from_document("a", {"to": "whatsapp:+1", "from": "+2"}).channel == Channel.WHATSAPP
        assert from_document("b", {"to": "+1", "from": "+2"}).channel == Channel.SMS

    def test_times_fall_back(self) -> None:
        """Missing times fall back to updatedAt, then the document create time, then the epoch."""
        only_updated = from_document("u", {"type": "sms", "updatedAt": T0})
        assert only_updated.timestamp == only_updated.created_at == T0
        created = datetime(2023, 1, 1, tzinfo=UTC)
        assert from_document("c", {"type": "sms"}, fallback_time=created).timestamp == created
        assert from_document("e", {"type": "sms"}).timestamp == datetime(1970, 1, 1, tzinfo=UTC)
        millis = from_document("m", {"type": "sms", "timestamp": 1714564800123})
        assert millis.timestamp == datetime(2024, 5, 1, 12, 0, 0, 123000, tzinfo=UTC)

    @pytest.mark.parametrize(
        "data",
        [{"type": "fax"}, {"type": "sms", "direction": "sideways"}, {"timestamp": "yesterday"}],
    )
    def test_unreadable_document(self, data: dict[str, Any]) -> None:
        """A document that cannot be a Communication raises RepositoryError naming it."""
        with pytest.raises(RepositoryError, match="'bad-doc'"):
            from_document("bad-doc", data)


class TestRepositoryObject:
    def test_repr_shows_the_collection_only(self) -> None:
        """repr names the collection and nothing of the client or project."""
        repo = FirestoreRepository(offline_client(), collection="comms-x")
        assert repr(repo) == "<FirestoreRepository collection='comms-x'>"
        assert repo.collection == "comms-x"
        assert repo.blocking is True

    @pytest.mark.parametrize("name", ["", "a/b", "__x__"])
    def test_bad_collection_name(self, name: str) -> None:
        """A collection name Firestore cannot use is refused at construction."""
        with pytest.raises(ValueError, match="collection"):
            FirestoreRepository(offline_client(), collection=name)

    def test_bad_timeout(self) -> None:
        """A zero or negative timeout is refused at construction."""
        with pytest.raises(ValueError, match="timeout"):
            FirestoreRepository(offline_client(), timeout=0)


DESIGN_INDEXES = [
    [("prospectId", "ASCENDING"), ("timestamp", "DESCENDING")],
    [("type", "ASCENDING"), ("prospectId", "ASCENDING"), ("timestamp", "DESCENDING")],
    [("to", "ASCENDING"), ("direction", "ASCENDING"), ("timestamp", "DESCENDING")],
]
EQUALITY_OPS = {"EQUAL", "IN"}  # an ``in`` is served like an equality (one scan per value)


def _covered(equalities: set[str], order: tuple[str, str], indexes: list[Any]) -> bool:
    """Whether the shipped indexes serve equality filters on ``equalities`` ordered by ``order``.

    Either one index is exactly (those fields ASC..., order), or Firestore merges
    several: indexes (some of those fields ASC..., order) that together name all of them.
    """
    usable = [
        {path for path, _ in index[:-1]}
        for index in indexes
        if index[-1] == order and all(direction == "ASCENDING" for _, direction in index[:-1])
    ]
    if equalities in usable:
        return True
    merged: set[str] = set()
    for fields in usable:
        if fields <= equalities:
            merged |= fields
    return merged == equalities


class TestIndexes:
    def load(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((ROOT / "firestore.indexes.json").read_text())
        return data

    def communications_indexes(self) -> list[list[tuple[str, str]]]:
        return [
            [(f["fieldPath"], f["order"]) for f in index["fields"]]
            for index in self.load()["indexes"]
            if index["collectionGroup"] == "communications"
        ]

    def test_file_has_the_firebase_format(self) -> None:
        """The file has the shape `firebase deploy --only firestore:indexes` reads."""
        data = self.load()
        assert set(data) == {"indexes", "fieldOverrides"}
        assert data["fieldOverrides"] == []
        for index in data["indexes"]:
            assert set(index) == {"collectionGroup", "queryScope", "fields"}
            assert index["collectionGroup"] in {"communications", "consents"}
            assert index["queryScope"] == "COLLECTION"
            for field in index["fields"]:
                assert set(field) == {"fieldPath", "order"}
                assert field["order"] in {"ASCENDING", "DESCENDING"}

    def test_has_designs_three_indexes_first(self) -> None:
        """DESIGN's three composite indexes are shipped, first and unchanged."""
        assert self.communications_indexes()[:3] == DESIGN_INDEXES

    def test_each_filter_of_communications_has_its_own_index(self) -> None:
        """open (reconcile), status, type and prospectId each have (field ASC, timestamp DESC):
        a query on one of them needs nothing else, and Firestore merges them for combinations."""
        indexes = self.communications_indexes()
        for field in ("open", "status", "type", "prospectId"):
            assert [(field, "ASCENDING"), ("timestamp", "DESCENDING")] in indexes, field
        assert len(indexes) == len({tuple(index) for index in indexes}), "an index twice"

    def test_every_query_the_repository_makes_is_covered(
        self, monkeypatch: pytest.MonkeyPatch, kind: str, offline: Callable[..., Any]
    ) -> None:
        """Each query of the repository needs no composite index, has one in the file, or is
        served by merging indexes of the file that share its order (Firestore's index merging)."""
        captured: list[Any] = []

        def capture(self: Query, *args: Any, **kwargs: Any) -> Iterator[Any]:
            captured.append(self)
            return iter([])

        async def capture_async(self: AsyncQuery, *args: Any, **kwargs: Any) -> Any:
            captured.append(self)
            return
            yield

        if kind == "sync":
            monkeypatch.setattr(Query, "stream", capture)
        else:
            monkeypatch.setattr(AsyncQuery, "stream", capture_async)
        repo = offline()
        repo.history("p")
        repo.history("p", channel=Channel.SMS)
        repo.history("p", before=T0)
        repo.history("p", channel=Channel.CALL, before=T0, limit=5)
        repo.latest_outbound_to("+5511999999999")
        repo.find_by_sid("SM1")
        repo.events("some-id")
        repo.ping()
        repo.communications()
        repo.communications(since=T0, before=T0)
        repo.communications(open_only=True, before=T0, limit=500)
        repo.communications(status=["failed", "undelivered"], since=T0)
        repo.communications(status="failed", channel=Channel.SMS)
        repo.communications(channel=Channel.CALL, before=T0)
        repo.communications(prospect_id="p", open_only=True)
        repo.communications(
            channel=Channel.SMS,
            status=["sent", "queued"],
            prospect_id="p",
            open_only=True,
            since=T0,
            before=T0,
        )
        repo.count_by_day(since=T0, until=T0.replace(day=2))
        assert len(captured) == 17

        indexes = self.communications_indexes()
        composite_needed = 0
        for query in captured:
            filters = query._field_filters
            equalities = {f.field.field_path for f in filters if f.op.name in EQUALITY_OPS}
            ranges = {f.field.field_path for f in filters if f.op.name not in EQUALITY_OPS}
            orders = [(o.field.field_path, o.direction.name) for o in query._orders]
            assert len(orders) <= 1
            if not equalities:
                # one field, filtered and/or ordered: its automatic single-field index
                assert len(ranges | {path for path, _ in orders}) <= 1
                continue
            assert ranges <= {path for path, _ in orders}, "a range filter needs its order_by"
            if not orders:
                continue  # equalities alone: single-field indexes (automatic) serve it
            composite_needed += 1
            assert query._parent.id == "communications"
            assert _covered(equalities, orders[0], indexes), (
                f"no index for equality {sorted(equalities)} ordered by {orders[0]}"
            )
        assert composite_needed == 11

    def test_the_merge_rule_is_strict(self) -> None:
        """_covered refuses what Firestore would: a field no index names, another order."""
        indexes = self.communications_indexes()
        desc = ("timestamp", "DESCENDING")
        assert _covered({"type", "status", "open", "prospectId"}, desc, indexes)
        assert not _covered({"type", "body"}, desc, indexes)
        assert not _covered({"status"}, ("timestamp", "ASCENDING"), indexes)

    def test_count_by_day_reads_only_the_counted_fields(
        self, monkeypatch: pytest.MonkeyPatch, kind: str, offline: Callable[..., Any]
    ) -> None:
        """count_by_day's query asks for type, status and timestamp only (a projection)."""
        captured: list[Any] = []

        def capture(self: Query, *args: Any, **kwargs: Any) -> Iterator[Any]:
            captured.append(self)
            return iter([])

        async def capture_async(self: AsyncQuery, *args: Any, **kwargs: Any) -> Any:
            captured.append(self)
            return
            yield

        if kind == "sync":
            monkeypatch.setattr(Query, "stream", capture)
        else:
            monkeypatch.setattr(AsyncQuery, "stream", capture_async)
        assert offline().count_by_day(since=T0, until=T0.replace(day=2)) == []
        [query] = captured
        assert [f.field_path for f in query._projection.fields] == list(COUNTED_FIELDS)
        assert {(f.field.field_path, f.op.name) for f in query._field_filters} == {
            ("timestamp", "GREATER_THAN_OR_EQUAL"),
            ("timestamp", "LESS_THAN"),
        }


class _FailingApi:
    """Stands in for the generated Firestore API client: every RPC raises ``error``."""

    def __init__(self, error: BaseException) -> None:
        self.error = error
        self.calls: list[str] = []

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def rpc(*args: Any, **kwargs: Any) -> Any:
            self.calls.append(name)
            raise self.error

        return rpc


ERRORS = {
    "unavailable": api_exceptions.ServiceUnavailable("backend down"),
    "permission": api_exceptions.PermissionDenied("Missing or insufficient permissions."),
    "deadline": api_exceptions.DeadlineExceeded("too slow"),
    "not-found": api_exceptions.NotFound("database (default) does not exist"),
    "grpc": _FakeRpcError(),
    "auth": auth_exceptions.RefreshError("token=abc.secret.value expired"),
}

OPERATIONS: dict[str, Callable[[Any], Any]] = {
    "add": lambda repo: repo.add(make()),
    "add-given-id": lambda repo: repo.add(make(id="given")),
    "add_many": lambda repo: repo.add_many([make(), make()]),
    "add_many-given-ids": lambda repo: repo.add_many([make(id="a"), make(id="b")]),
    "get": lambda repo: repo.get("x"),
    "find_by_sid": lambda repo: repo.find_by_sid("SM1"),
    "update": lambda repo: repo.update("x", lambda c: c),
    "append_event": lambda repo: repo.append_event("x", {"a": "b"}),
    "events": lambda repo: repo.events("x"),
    "history": lambda repo: repo.history("p"),
    "latest_outbound_to": lambda repo: repo.latest_outbound_to("+5511999999999"),
    "ping": lambda repo: repo.ping(),
}


class TestErrorTranslation:
    @pytest.mark.parametrize("error_name", ERRORS)
    @pytest.mark.parametrize("operation", OPERATIONS)
    def test_driver_errors_become_repository_errors(
        self, operation: str, error_name: str, offline: Callable[..., Any]
    ) -> None:
        """Every method turns each API, gRPC and auth error into RepositoryError from it."""
        api = _FailingApi(ERRORS[error_name])
        repo = offline(api, collection="comms")
        with pytest.raises(RepositoryError) as caught:
            OPERATIONS[operation](repo)
        assert type(caught.value) is RepositoryError
        assert api.calls, "the fake API was never reached"
        cause = caught.value.__cause__
        while cause is not None and cause is not ERRORS[error_name]:
            cause = cause.__cause__ or cause.__context__
        assert cause is ERRORS[error_name]
        assert "secret" not in str(caught.value)

    @pytest.mark.parametrize("operation", ["add", "add_many"])
    def test_already_exists_becomes_duplicate_record(
        self, operation: str, offline: Callable[..., Any]
    ) -> None:
        """Firestore's AlreadyExists on a commit is DuplicateRecord."""
        repo = offline(_FailingApi(api_exceptions.AlreadyExists("exists")))
        with pytest.raises(DuplicateRecord):
            OPERATIONS[operation](repo)

    def test_transaction_contention_becomes_repository_error(
        self, offline: Callable[..., Any]
    ) -> None:
        """When every commit aborts, the transaction gives up after 5 with RepositoryError."""

        class AbortingCommit(_FailingApi):
            def __getattr__(self, name: str) -> Callable[..., Any]:
                if name == "begin_transaction":
                    return lambda *a, **k: type("R", (), {"transaction": b"tx"})()
                if name == "batch_get_documents":
                    return lambda *a, **k: iter([])
                return super().__getattr__(name)

        repo = offline(AbortingCommit(api_exceptions.Aborted("contention")))
        with pytest.raises(RepositoryError, match=r"Aborted: contention \(aborted 5 times\)$"):
            repo.update_many({"x": lambda c: c})  # no record: nothing to write, it commits

    def test_a_failed_rollback_does_not_hide_the_error(self, offline: Callable[..., Any]) -> None:
        """A body's own error is raised even when the rollback after it fails."""

        class FailingRollback(_FailingApi):
            def __getattr__(self, name: str) -> Callable[..., Any]:
                if name == "begin_transaction":
                    return lambda *a, **k: type("R", (), {"transaction": b"tx"})()
                if name == "batch_get_documents":
                    return lambda *a, **k: iter([])
                return super().__getattr__(name)

        api = FailingRollback(api_exceptions.ServiceUnavailable("rollback lost"))
        with pytest.raises(RecordNotFound):
            offline(api).update("x", lambda c: c)
        assert api.calls == ["rollback"]

    def test_closed_port_ping_fails_cleanly(
        self, monkeypatch: pytest.MonkeyPatch, connect: Callable[..., Any]
    ) -> None:
        """A repository on a port nobody listens on raises RepositoryError from ping."""
        monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", f"127.0.0.1:{free_port()}")
        repo = connect(timeout=1.0)
        with pytest.raises(RepositoryError, match="ping failed") as caught:
            repo.ping()
        assert isinstance(caught.value.__cause__, api_exceptions.GoogleAPIError | grpc.RpcError)

    def test_invalid_ids_never_reach_firestore(self, offline: Callable[..., Any]) -> None:
        """Ids Firestore cannot hold are answered without a call: None, [], RecordNotFound."""
        api = _FailingApi(AssertionError("no call expected"))
        repo = offline(api)
        for bad in ["", "a/b", "..", "__id__", "x" * 1501]:
            assert repo.get(bad) is None
            assert repo.events(bad) == []
            with pytest.raises(RecordNotFound):
                repo.update(bad, lambda c: c)
            with pytest.raises(RecordNotFound):
                repo.append_event(bad, {})
            with pytest.raises(RepositoryError, match="cannot store"):
                repo.add(make(id=bad))
        assert api.calls == []


class _Clock:
    """A monotonic clock that moves only when told to."""

    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class _TimedApi:
    """A Firestore API that answers every RPC after ``cost`` seconds of ``clock``.

    Each call's name and keyword arguments are recorded; no document exists;
    ``commit`` raises each error of ``commit_errors`` in turn, then answers.
    """

    def __init__(self, clock: _Clock, cost: float, commit_errors: list[Exception]) -> None:
        self.clock = clock
        self.cost = cost
        self.commit_errors = commit_errors
        self.calls: list[tuple[str, dict[str, Any]]] = []

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def rpc(*args: Any, **kwargs: Any) -> Any:
            self.calls.append((name, kwargs))
            self.clock.now += self.cost
            if name == "begin_transaction":
                return type("Begun", (), {"transaction": b"tx"})()
            if name == "batch_get_documents":
                return iter([])
            if name == "commit" and self.commit_errors:
                raise self.commit_errors.pop(0)
            return type("Answer", (), {"write_results": [], "commit_time": None})()

        return rpc

    def timeouts(self) -> list[tuple[str, float]]:
        """Each call's name and the timeout it was given (every call must have one)."""
        return [(name, kwargs["timeout"]) for name, kwargs in self.calls]


class TestTransactionDeadline:
    @pytest.fixture
    def clock(self, monkeypatch: pytest.MonkeyPatch) -> _Clock:
        clock = _Clock()
        monkeypatch.setattr(transaction_module, "time", clock)
        return clock

    @pytest.fixture
    def repo(self, offline: Callable[..., Any]) -> Callable[..., Any]:
        def build(api: _TimedApi, timeout: float | None = 2.0) -> Any:
            return offline(api, collection="comms", timeout=timeout)

        return build

    def test_begin_reads_and_commit_share_one_timeout(
        self, clock: _Clock, repo: Callable[..., Any], kind: str
    ) -> None:
        """Begin, the body's read and the commit each get what is left of one timeout."""
        api = _TimedApi(clock, cost=0.5, commit_errors=[])
        assert repo(api).update_many({"x": lambda c: c}) == {}
        assert api.timeouts() == [
            ("begin_transaction", 2.0),
            ("batch_get_documents", 1.5),
            ("commit", 1.0),
        ]
        policy = Retry if kind == "sync" else AsyncRetry
        assert all(type(kwargs["retry"]) is policy for _, kwargs in api.calls)

    def test_rollback_gets_the_time_left(self, clock: _Clock, repo: Callable[..., Any]) -> None:
        """A body that fails rolls back with what is left, and its own error is raised."""
        api = _TimedApi(clock, cost=0.5, commit_errors=[])
        with pytest.raises(RecordNotFound):
            repo(api).update("x", lambda c: c)
        assert api.timeouts() == [
            ("begin_transaction", 2.0),
            ("batch_get_documents", 1.5),
            ("rollback", 1.0),
        ]

    def test_contention_retries_stop_when_time_runs_out(
        self, clock: _Clock, repo: Callable[..., Any]
    ) -> None:
        """Aborted commits begin again only while time is left: the error names Aborted."""
        aborts: list[Exception] = [api_exceptions.Aborted("contention") for _ in range(5)]
        api = _TimedApi(clock, cost=0.4, commit_errors=aborts)
        with pytest.raises(RepositoryError) as caught:
            repo(api).update_many({"x": lambda c: c})
        names = [name for name, _ in api.calls]
        assert names == ["begin_transaction", "batch_get_documents", "commit"] * 2
        assert str(caught.value) == (
            "Firestore update_many failed: Aborted: contention (aborted 2 times)"
        )
        assert isinstance(caught.value.__cause__, api_exceptions.Aborted)

    def test_a_body_out_of_time_fails_naming_the_timeout(
        self, clock: _Clock, repo: Callable[..., Any]
    ) -> None:
        """A read that would start after the deadline is not made: RepositoryError says why."""
        api = _TimedApi(clock, cost=2.5, commit_errors=[])
        with pytest.raises(RepositoryError) as caught:
            repo(api).update("x", lambda c: c)
        assert str(caught.value) == "Firestore update failed: the timeout of 2 s ran out"
        assert [name for name, _ in api.calls] == ["begin_transaction"]

    def test_without_a_timeout_the_client_defaults_stay(
        self, clock: _Clock, repo: Callable[..., Any]
    ) -> None:
        """timeout=None passes no retry or timeout: the client library's own policy."""
        api = _TimedApi(clock, cost=100.0, commit_errors=[])
        assert repo(api, timeout=None).update_many({"x": lambda c: c}) == {}
        assert [kwargs.keys() & {"retry", "timeout"} for _, kwargs in api.calls] == [set()] * 3

    def test_calls_outside_a_transaction_keep_the_whole_timeout(
        self, clock: _Clock, repo: Callable[..., Any]
    ) -> None:
        """After a transaction, a plain read gets the full timeout again."""
        api = _TimedApi(clock, cost=0.5, commit_errors=[])
        repository = repo(api)
        repository.update_many({"x": lambda c: c})
        assert repository.get("x") is None
        assert api.timeouts()[-1] == ("batch_get_documents", 2.0)


@pytest.fixture
def silent_listener() -> Iterator[str]:
    """A ``host:port`` whose socket listens but never answers (connections hang)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(64)
        yield f"127.0.0.1:{sock.getsockname()[1]}"


DEAD_TIMEOUT = 2.0
DEAD_SLACK = 3.0
DEAD_OPERATIONS: dict[str, Callable[[Any], Any]] = {
    "get": lambda repo: repo.get("x"),
    "add": lambda repo: repo.add(make()),
    "update": lambda repo: repo.update("x", lambda c: c),
    "append_event": lambda repo: repo.append_event("x", {"a": "b"}),
    "record_event": lambda repo: repo.record_event(
        {"a": "b"}, lambda c: c or make(), communication_id="x", sid="SM1"
    ),
    "update_many": lambda repo: repo.update_many({"x": lambda c: c}),
    "history": lambda repo: repo.history("p"),
    "communications": lambda repo: repo.communications(open_only=True),
    "count_by_day": lambda repo: repo.count_by_day(since=T0, until=T0.replace(day=2)),
    "ping": lambda repo: repo.ping(),
}


@pytest.fixture
def dead_repo(monkeypatch: pytest.MonkeyPatch, connect: Callable[..., Any]) -> Callable[[str], Any]:
    """Builds a repository of each kind on ``host``, with a timeout of `DEAD_TIMEOUT`."""

    def build(host: str) -> Any:
        monkeypatch.setenv("FIRESTORE_EMULATOR_HOST", host)
        return connect(project="demo-x", timeout=DEAD_TIMEOUT)

    return build


def _fails_in_time(repo: Any, operation: str) -> RepositoryError:
    started = time.monotonic()
    with pytest.raises(RepositoryError) as caught:
        DEAD_OPERATIONS[operation](repo)
    elapsed = time.monotonic() - started
    assert elapsed < DEAD_TIMEOUT + DEAD_SLACK, f"{operation} took {elapsed:.1f} s"
    assert str(caught.value).startswith(f"Firestore {operation} failed: ")
    assert "RetryError" not in str(caught.value)
    return caught.value


class TestDeadHost:
    @pytest.mark.parametrize("operation", DEAD_OPERATIONS)
    def test_closed_port(self, dead_repo: Callable[[str], Any], operation: str) -> None:
        """Nobody listening: every call fails within timeout + 3 s, naming ServiceUnavailable."""
        repo = dead_repo(f"127.0.0.1:{free_port()}")
        error = _fails_in_time(repo, operation)
        assert f"{operation} failed: ServiceUnavailable: " in str(error)
        assert "Connection refused" in str(error)

    @pytest.mark.parametrize("operation", DEAD_OPERATIONS)
    def test_unresolvable_name(self, dead_repo: Callable[[str], Any], operation: str) -> None:
        """A host name that does not resolve: ServiceUnavailable naming the lookup, in time."""
        repo = dead_repo("nonexistent.invalid:8080")
        error = _fails_in_time(repo, operation)
        assert f"{operation} failed: ServiceUnavailable: " in str(error)
        assert "nonexistent.invalid" in str(error)

    @pytest.mark.parametrize("operation", ["get", "update", "append_event", "record_event"])
    def test_silent_server(
        self, dead_repo: Callable[[str], Any], silent_listener: str, operation: str
    ) -> None:
        """A server that accepts and never answers: DeadlineExceeded, transactions included."""
        error = _fails_in_time(dead_repo(silent_listener), operation)
        assert f"{operation} failed: DeadlineExceeded: " in str(error)


@pytest.mark.firestore
class TestOnTheEmulator:
    @pytest.fixture
    def repo(self, firestore_client: Any, kind: str, loop: Callable[[], LoopThread]) -> Any:
        """A repository of each kind on a fresh collection (read back with the sync client)."""
        client = firestore_client if kind == "sync" else client_of(kind, project=PROJECT)
        return repository_of(kind, client, loop, collection=unique_collection())

    def raw(self, client: Any, repo: Any, doc_id: str) -> dict[str, Any]:
        snapshot = client.collection(repo.collection).document(doc_id).get()
        assert snapshot.exists
        data: dict[str, Any] = snapshot.to_dict()
        return data

    def test_stored_document_has_designs_fields_and_types(
        self, firestore_client: Any, repo: FirestoreRepository
    ) -> None:
        """The raw document, read with the plain client, has DESIGN's names and types."""
        repo.add(
            make(
                id="full",
                media_url="https://m/1",
                media_urls=["https://m/1", "https://m/2"],
                twilio_sid="MM1",
                status="read",
                duration=5,
                recording_url="https://r/1",
                recording_sid="RE1",
                recording_duration=4,
                error="e",
                error_code=63016,
            )
        )
        data = self.raw(firestore_client, repo, "full")
        assert set(data) == DESIGN_FIELDS
        strings = ["prospectId", "type", "direction", "to", "from", "body", "mediaUrl"]
        strings += ["twilioSid", "status", "recordingUrl", "recordingSid", "error"]
        for name in strings:
            assert isinstance(data[name], str), name
        for name in ["duration", "recordingDuration", "errorCode", "statusRank"]:
            assert type(data[name]) is int, name
        for name in ["timestamp", "createdAt", "updatedAt"]:
            assert isinstance(data[name], datetime), name
            assert data[name].utcoffset().total_seconds() == 0
        assert data["timestamp"] == T0
        assert data["mediaUrls"] == ["https://m/1", "https://m/2"]
        assert (data["type"], data["direction"], data["to"]) == (
            "whatsapp",
            "outbound",
            "+5511999999999",
        )

    def test_pending_document_has_no_twilio_sid(
        self, firestore_client: Any, repo: FirestoreRepository
    ) -> None:
        """A pending record's document has no twilioSid until an update gives it one."""
        stored = repo.add(make(prospect_id=None))
        assert stored.id is not None
        data = self.raw(firestore_client, repo, stored.id)
        assert "twilioSid" not in data
        assert data["prospectId"] is None
        repo.update(stored.id, lambda c: attrs.evolve(c, twilio_sid="SM5"))
        assert self.raw(firestore_client, repo, stored.id)["twilioSid"] == "SM5"

    def test_legacy_documents_read_and_update(
        self, firestore_client: Any, repo: FirestoreRepository
    ) -> None:
        """Node-service documents are found by id, SID and history, and update keeps extras."""
        collection = firestore_client.collection(repo.collection)
        collection.document("legacy-wa").set(
            {
                "prospectId": "p-legacy",
                "type": "whatsapp",
                "to": "whatsapp:+5511999999999",
                "from": "whatsapp:+14155238886",
                "body": "Oi",
                "mediaUrl": "https://x/1.jpg",
                "twilioSid": "SMlegacy",
                "status": "sent",
                "timestamp": T0,
                "templateName": "confirmacao",
            }
        )
        collection.document("legacy-call").set(
            {"prospectId": "p-legacy", "type": "call", "to": "+5511999999999",
             "from": "+15005550006", "twilioSid": "CAlegacy", "status": "completed",
             "duration": "42", "createdAt": datetime(2024, 4, 1, tzinfo=UTC)}
        )  # fmt: skip
        record = repo.get("legacy-wa")
        assert record is not None
        assert (record.to, record.from_, record.direction) == (
            "+5511999999999",
            "+14155238886",
            Direction.OUTBOUND,
        )
        assert record.media_urls == ("https://x/1.jpg",)
        assert record.created_at == record.updated_at == T0
        assert repo.find_by_sid("CAlegacy") is not None
        # Firestore leaves documents without `timestamp` out of ordered queries (the
        # emulator does not), so only the first place is certain here.
        assert repo.history("p-legacy")[0].id == "legacy-wa"
        updated = repo.update("legacy-wa", lambda c: attrs.evolve(c, status="read"))
        data = self.raw(firestore_client, repo, "legacy-wa")
        assert data["templateName"] == "confirmacao"
        assert data["to"] == "+5511999999999"
        assert data["direction"] == "outbound"
        assert repo.get("legacy-wa") == updated
        call = repo.get("legacy-call")
        assert call is not None
        assert call.duration == 42
        assert call.timestamp == datetime(2024, 4, 1, tzinfo=UTC)

    def test_cost_recording_and_open_fields_are_stored_with_their_types(
        self, firestore_client: Any, repo: FirestoreRepository
    ) -> None:
        """recordingRequested (bool), price (the exact string), priceUnit, numSegments (int) and
        the derived open (bool) are in the raw document."""
        repo.add(
            make(
                id="call",
                channel=Channel.CALL,
                body=None,
                status="completed",
                recording_requested=True,
                price="-0.01300",
                price_unit="USD",
            )
        )
        repo.add(make(id="sms", status="delivered", price="-0.00750", num_segments=2))
        call = self.raw(firestore_client, repo, "call")
        assert (call["recordingRequested"], call["open"]) == (True, True)
        assert (call["price"], call["priceUnit"]) == ("-0.01300", "USD")
        assert "numSegments" not in call
        sms = self.raw(firestore_client, repo, "sms")
        assert sms["open"] is False
        assert "recordingRequested" not in sms
        assert sms["price"] == "-0.00750"
        assert type(sms["numSegments"]) is int

    def test_open_is_rewritten_by_every_write(
        self, firestore_client: Any, repo: FirestoreRepository
    ) -> None:
        """add, add_many, update, update_many and record_event each store open = is_open."""

        def stored_open(doc_id: str) -> Any:
            return self.raw(firestore_client, repo, doc_id)["open"]

        repo.add(make(id="a", status="sent"))
        repo.add(make(id="in", direction=Direction.INBOUND, status="received"), event={"n": 1})
        repo.add_many([make(id="b", status="queued"), make(id="c", status="delivered")])
        assert [stored_open(i) for i in ("a", "in", "b", "c")] == [True, False, True, False]
        repo.update("a", lambda c: attrs.evolve(c, status="delivered"))
        repo.update_many({"b": lambda c: attrs.evolve(c, status="undelivered")})
        repo.record_event(
            {"MessageStatus": "failed"},
            lambda c: attrs.evolve(c, status="failed") if c else make(),
            communication_id="c",
        )
        assert [stored_open(i) for i in ("a", "b", "c")] == [False, False, False]
        repo.record_event(
            {"MessageStatus": "sent"},
            lambda c: c or make(id="sid-SMnew", twilio_sid="SMnew", status="sent"),
            sid="SMnew",
        )
        assert stored_open("sid-SMnew") is True
        assert [c.id for c in repo.communications(open_only=True)] == ["sid-SMnew"]

    def test_a_document_without_open_is_found_after_its_next_update(
        self, firestore_client: Any, repo: FirestoreRepository
    ) -> None:
        """A record written by 0.1 (no open field) is left out of open_only until an update
        that changes it writes the field; every other query finds it."""
        legacy = to_document(make(id="old", status="sent", twilio_sid="SMold"))
        del legacy["open"]
        firestore_client.collection(repo.collection).document("old").set(legacy)
        assert repo.communications(open_only=True) == []
        assert [c.id for c in repo.communications(status="sent")] == ["old"]
        repo.update("old", lambda c: attrs.evolve(c, updated_at=T0.replace(day=2)))
        assert [c.id for c in repo.communications(open_only=True)] == ["old"]

    def test_count_by_day_of_documents_written_elsewhere(
        self, firestore_client: Any, repo: FirestoreRepository
    ) -> None:
        """Documents without type or status count as sms / unknown; one whose timestamp is
        no Firestore timestamp (a legacy string) is outside every range."""
        collection = firestore_client.collection(repo.collection)
        collection.document("untyped").set({"timestamp": T0, "to": "+5511999999999"})
        collection.document("string-time").set({"type": "sms", "timestamp": T0.isoformat()})
        repo.add(make(id="ours", status="read"))
        counted = repo.count_by_day(since=T0.replace(hour=0), until=T0.replace(day=2, hour=0))
        assert [(row.channel, row.status, row.count) for row in counted] == [
            (Channel.SMS, "unknown", 1),
            (Channel.WHATSAPP, "read", 1),
        ]

    def test_add_many_commits_in_chunks_of_500(
        self, firestore_emulator: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """1201 records go in three commits (500, 500, 201 writes), none over the limit."""
        client = firestore.Client(project=PROJECT)
        repo = FirestoreRepository(client, collection=unique_collection())
        api = client._firestore_api
        real_commit = api.commit
        writes_per_commit: list[int] = []

        def counting_commit(*args: Any, **kwargs: Any) -> Any:
            writes_per_commit.append(len(kwargs["request"]["writes"]))
            return real_commit(*args, **kwargs)

        monkeypatch.setattr(api, "commit", counting_commit)
        stored = repo.add_many(make() for _ in range(1201))
        assert writes_per_commit == [MAX_BATCH_WRITES, MAX_BATCH_WRITES, 201]
        assert len({c.id for c in stored}) == 1201
        assert len(repo.history("prospect-1", limit=1000)) == 1000

    def test_add_many_refuses_an_existing_id_without_reading_first(
        self, firestore_client: Any, repo: FirestoreRepository
    ) -> None:
        """An existing id fails its commit's create (DuplicateRecord), the record untouched.

        No read precedes the commits: each commit creates its documents, so
        real Firestore refuses the whole commit (the emulator applies its
        other writes; atomicity is proven on the in-memory backend).
        """
        taken = repo.add(make(id="taken"))
        batch = [make(id=f"n{i}") for i in range(599)] + [make(id="taken", body="new")]
        with pytest.raises(DuplicateRecord):
            repo.add_many(batch)
        assert repo.get("taken") == taken
        assert repo.get("n0") is not None  # the first commit of 500 stays

    def test_events_are_stored_with_a_sequence(
        self, firestore_client: Any, repo: FirestoreRepository
    ) -> None:
        """Each event is a document {seq, storedAt, payload}; the record counts them."""
        stored = repo.add(make())
        assert stored.id is not None
        repo.append_event(stored.id, {"MessageStatus": "sent"})
        repo.append_event(stored.id, {"MessageStatus": "delivered"})
        ref = firestore_client.collection(repo.collection).document(stored.id)
        docs = [d.to_dict() for d in ref.collection(EVENTS_SUBCOLLECTION).stream()]
        assert sorted(d["seq"] for d in docs) == [0, 1]
        assert all(isinstance(d["storedAt"], datetime) for d in docs)
        assert {d["payload"]["MessageStatus"] for d in docs} == {"sent", "delivered"}
        assert self.raw(firestore_client, repo, stored.id)["eventCount"] == 2
        assert repo.get(stored.id) == stored

    def test_unstorable_event_is_a_repository_error(self, repo: FirestoreRepository) -> None:
        """An event value Firestore cannot encode raises RepositoryError and keeps nothing."""
        stored = repo.add(make())
        assert stored.id is not None
        with pytest.raises(RepositoryError, match="cannot be stored"):
            repo.append_event(stored.id, {"bad": object()})
        assert repo.events(stored.id) == []

    def test_both_repositories_store_the_same_documents(
        self, firestore_client: Any, loop: Callable[[], LoopThread]
    ) -> None:
        """The same calls through FirestoreRepository and AsyncFirestoreRepository leave the
        same documents: ids, fields, events (ids from tokens), eventCount."""

        def play(repo: Any) -> None:
            inbound = make(id="in-1", direction=Direction.INBOUND, status="received")
            repo.add(inbound, event={"Body": "Oi"}, token="tok-in")
            repo.add_many([make(id="a", twilio_sid="SMa"), make(id="b")])
            repo.update("b", lambda c: attrs.evolve(c, twilio_sid="SMb", error="x"))
            repo.update("b", lambda c: attrs.evolve(c, status="queued", error=None))
            repo.append_event("a", {"MessageStatus": "sent"})
            repo.record_event(
                {"MessageStatus": "delivered"},
                lambda c: attrs.evolve(c, status="delivered"),
                communication_id="a",
                sid="SMa",
                token="tok-a",
            )
            repo.record_event(
                {"MessageStatus": "sent"},
                lambda c: c or make(id="sid-SMz", twilio_sid="SMz", status="sent"),
                sid="SMz",
                token="tok-z",
            )
            repo.update_many({"a": lambda c: attrs.evolve(c, duration=3), "gone": lambda c: c})

        def stored(collection: str) -> list[Any]:
            found = []
            for snapshot in firestore_client.collection(collection).stream():
                events = []
                for event in snapshot.reference.collection(EVENTS_SUBCOLLECTION).stream():
                    data = event.to_dict()
                    assert isinstance(data.pop("storedAt"), datetime)
                    events.append(
                        (event.id.split("-")[0] if event.id[0] != "t" else event.id, data)
                    )
                found.append((snapshot.id, snapshot.to_dict(), sorted(events, key=repr)))
            return sorted(found, key=lambda item: item[0])

        sync_repo = FirestoreRepository(firestore_client, collection=unique_collection())
        client = client_of("async", project=PROJECT)
        async_repo = repository_of("async", client, loop, collection=unique_collection())
        play(sync_repo)
        play(async_repo)
        documents = stored(sync_repo.collection)
        assert [doc_id for doc_id, _, _ in documents] == ["a", "b", "in-1", "sid-SMz"]
        assert documents[0][1]["eventCount"] == 2
        assert stored(async_repo.collection) == documents
