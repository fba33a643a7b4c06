"""What `InMemoryRepository` adds to the contract: thread safety, all-or-nothing bulk adds."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import attrs
import pytest

from servio_twilio.domain.errors import DuplicateRecord, RepositoryError
from servio_twilio.domain.models import Channel, Communication
from servio_twilio.domain.status import advance
from servio_twilio.storage.memory import InMemoryRepository, new_id

T0 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
THREADS = 16


def make(**changes: Any) -> Communication:
    fields: dict[str, Any] = {
        "channel": Channel.CALL,
        "to": "+5511999999999",
        "from_": "+15005550006",
        "prospect_id": "p",
        "timestamp": T0,
        "created_at": T0,
        "updated_at": T0,
    }
    fields.update(changes)
    return Communication(**fields)


def run_threads(target: Callable[[int], None], count: int = THREADS) -> None:
    """Run ``target(i)`` in ``count`` threads released together; re-raise the first error."""
    barrier = threading.Barrier(count)
    errors: list[BaseException] = []

    def body(index: int) -> None:
        try:
            barrier.wait()
            target(index)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=body, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]


# One call's callbacks; each thread applies all of them, shuffled, through advance.
CALLBACKS: list[dict[str, Any]] = [
    {"status": "queued", "twilio_sid": "CA1"},
    {"status": "initiated"},
    {"status": "ringing"},
    {"status": "in-progress"},
    {"status": "completed", "duration": 37},
    {"recording_url": "https://api.twilio.com/rec/RE1", "recording_sid": "RE1"},
    {"recording_duration": 35},
]
UPDATED = T0 + timedelta(minutes=1)


def observe(callback: dict[str, Any]) -> Callable[[Communication], Communication]:
    def fn(record: Communication) -> Communication:
        time.sleep(0)  # give other threads the chance to interleave inside the update
        return advance(record, updated_at=UPDATED, **callback)

    return fn


class TestInMemoryRepository:
    def test_does_not_block(self) -> None:
        """It does no I/O: the ASGI app may call it on the event loop."""
        assert InMemoryRepository.blocking is False

    def test_repr_and_len(self) -> None:
        """repr counts records without showing them; len is the record count."""
        repo = InMemoryRepository()
        repo.add(make(body="secret body"))
        assert repr(repo) == "<InMemoryRepository records=1>"
        assert len(repo) == 1

    def test_new_ids_look_like_firestore_ids(self) -> None:
        """new_id gives distinct 20-character ids."""
        ids = {new_id() for _ in range(1000)}
        assert len(ids) == 1000
        assert {len(i) for i in ids} == {20}


class TestConcurrentUpdate:
    def test_concurrent_callbacks_equal_the_single_threaded_result(self) -> None:
        """16 threads applying one call's callbacks at once give the sequential record.

        Each callback is applied by several threads, each thread applying its
        two in a random order: a lost update would drop a field or leave
        a lower status.
        """
        expected = make(id="call")
        for callback in CALLBACKS:
            expected = advance(expected, updated_at=UPDATED, **callback)

        repo = InMemoryRepository()
        repo.add(make(id="call"))

        def worker(index: int) -> None:
            size = len(CALLBACKS)
            share = [CALLBACKS[index % size], CALLBACKS[(index * 3) % size]]
            random.Random(index).shuffle(share)
            for callback in share:
                repo.update("call", observe(callback))

        run_threads(worker)
        assert repo.get("call") == expected
        assert expected.status == "completed"
        assert expected.recording_sid == "RE1"

    def test_no_update_is_lost(self) -> None:
        """All 16 x 50 concurrent increments are kept: update reads and writes atomically."""
        repo = InMemoryRepository()
        repo.add(make(id="counter", duration=0))

        def increment(record: Communication) -> Communication:
            value = record.duration or 0
            time.sleep(0)
            return attrs.evolve(record, duration=value + 1)

        def worker(index: int) -> None:
            for _ in range(50):
                repo.update("counter", increment)

        run_threads(worker)
        stored = repo.get("counter")
        assert stored is not None
        assert stored.duration == THREADS * 50

    def test_concurrent_events_keep_each_writers_order(self) -> None:
        """Events appended from many threads are all kept, each thread's in its own order."""
        repo = InMemoryRepository()
        repo.add(make(id="r"))

        def worker(index: int) -> None:
            for n in range(25):
                repo.append_event("r", {"thread": index, "n": n})

        run_threads(worker)
        events = repo.events("r")
        assert len(events) == THREADS * 25
        for index in range(THREADS):
            assert [e["n"] for e in events if e["thread"] == index] == list(range(25))


class TestUpdate:
    def test_non_record_result_is_refused(self) -> None:
        """fn returning something other than a Communication raises RepositoryError."""
        repo = InMemoryRepository()
        record = repo.add(make())
        assert record.id is not None
        with pytest.raises(RepositoryError, match="not Communication"):
            repo.update(record.id, lambda c: {"status": "sent"})  # type: ignore[arg-type,return-value]
        assert repo.get(record.id) == record

    def test_sid_change_moves_the_sid_index(self) -> None:
        """A record whose SID changes is found by the new SID, not the old one."""
        repo = InMemoryRepository()
        record = repo.add(make(twilio_sid="CA-old"))
        assert record.id is not None
        repo.update(record.id, lambda c: attrs.evolve(c, twilio_sid="CA-new"))
        assert repo.find_by_sid("CA-old") is None
        found = repo.find_by_sid("CA-new")
        assert found is not None
        assert found.id == record.id


class TestAddMany:
    def test_duplicate_in_the_batch_stores_nothing(self) -> None:
        """One duplicate id anywhere in the input leaves the repository empty."""
        repo = InMemoryRepository()
        batch = [make(id=f"m{i}") for i in range(10)] + [make(id="m3")]
        with pytest.raises(DuplicateRecord, match="m3"):
            repo.add_many(batch)
        assert len(repo) == 0

    def test_racing_bulk_adds_are_all_or_nothing(self) -> None:
        """Two threads adding overlapping id sets: exactly one batch is stored, whole."""
        repo = InMemoryRepository()
        outcomes: dict[int, str] = {}

        def worker(index: int) -> None:
            batch = [make(id=f"shared-{n}", body=f"t{index}") for n in range(100)]
            try:
                repo.add_many(batch)
                outcomes[index] = "stored"
            except DuplicateRecord:
                outcomes[index] = "refused"

        run_threads(worker, count=2)
        assert sorted(outcomes.values()) == ["refused", "stored"]
        winner = next(i for i, outcome in outcomes.items() if outcome == "stored")
        assert len(repo) == 100
        for n in range(100):
            stored = repo.get(f"shared-{n}")
            assert stored is not None
            assert stored.body == f"t{winner}"


class TestQueriesUnderWrites:
    def test_pages_and_counts_while_others_write(self) -> None:
        """communications and count_by_day read a consistent set while 8 threads add and settle
        records: no error, each page sorted, and every count agrees with the final state."""
        repo = InMemoryRepository()
        per_thread = 50
        day = timedelta(days=1)

        def worker(index: int) -> None:
            if index % 2:
                for _ in range(20):
                    page = repo.communications(open_only=True, limit=1000)
                    assert [c.timestamp for c in page] == sorted(
                        (c.timestamp for c in page), reverse=True
                    )
                    repo.count_by_day(since=T0 - day, until=T0 + day)
                return
            for n in range(per_thread):
                stamp = T0 + timedelta(seconds=index * per_thread + n)
                stored = repo.add(make(id=f"t{index}-{n}", status="ringing", timestamp=stamp))
                if n % 2:
                    assert stored.id is not None
                    repo.update(stored.id, lambda c: attrs.evolve(c, status="busy"))

        run_threads(worker, count=8)
        writers = 4
        assert len(repo.communications(limit=1000)) == writers * per_thread
        assert len(repo.communications(open_only=True, limit=1000)) == writers * per_thread // 2
        counted = repo.count_by_day(since=T0 - day, until=T0 + day)
        assert [(row.status, row.count) for row in counted] == [
            ("busy", writers * per_thread // 2),
            ("ringing", writers * per_thread // 2),
        ]
