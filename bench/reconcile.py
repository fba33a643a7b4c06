"""Reconcile: open records settled from Twilio's API, beside the sequential loop a user would write.

Run: ``python bench/reconcile.py [--records N] [--latency S] [--concurrency 10,50,100]
[--baseline-records N] [--no-firestore]``.

Setup, once: ``--records`` SMS (default 1000) are sent through
`CommunicationsClient` over `FakeTwilio` with no latency (``send_batch``,
100 at a time), each is then moved to ``delivered`` with a price on the
fake's side (what its lost callbacks would have said), the clock moves on an
hour, and the records as the client stored them (``queued``, with their SIDs)
are kept as the snapshot every run starts from: each run gets a fresh
repository (or Firestore collection) holding exactly that snapshot, and the
fake's latency becomes ``--latency`` (default 100 ms) for every request.

Each run is checked: the report must say every record examined and settled,
and every stored record must be ``delivered`` with Twilio's price, with one
message fetch per record; anything else stops the bench.

1. In memory. ``AsyncCommunicationsClient.reconcile`` (tasks) and
   ``CommunicationsClient.reconcile`` (threads) at each ``--concurrency``,
   beside the BASELINE: one query for the open records, then for each,
   twilio's own ``Client(http_client=fake).messages(sid).fetch()`` and
   ``repository.update(id, fn)``, one after another. The baseline runs on the
   first ``--baseline-records`` records of the query (default 200; 0: all)
   and is extrapolated to ``--records``: its query, then its time per record
   after the query times ``--records``. The ratio is baseline / ours; the
   floor is ``ceil(records / concurrency)`` rounds of the latency. Each row
   also shows the query's time and the ``update_many`` merges (how many, of
   how many records, their time, the last one's: written after the last
   fetch).
2. On the Firestore emulator (``node tests/firestore_emulator.js``, started
   here on a free port of 127.0.0.1): the same runs on
   ``AsyncFirestoreRepository`` and ``FirestoreRepository`` with a gRPC
   interceptor counting RPCs (``bench/rpc_counter.py``), and the baseline
   loop on ``FirestoreRepository``: RPCs per record by method (``RunQuery``
   is the query for the open records, each ``update_many`` one transaction of
   Begin + BatchGet + Commit) and wall time.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import math
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from emulator import EmulatorUnavailable, firestore_emulator
from twilio.rest import Client as TwilioClient  # type: ignore[import-untyped]

from servio_twilio import (
    AsyncCommunicationsClient,
    AsyncInMemoryRepository,
    Communication,
    CommunicationsClient,
    InMemoryRepository,
    OutboundMessage,
    ReconcileReport,
    TwilioSettings,
    is_open,
    merge_status,
    replace,
)
from servio_twilio.testing import FakeTwilio

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "demo-servio-bench"

ACCOUNT = "AC" + "1" * 32
TOKEN = "bench-auth-token-0123456789abcdef"
PHONE = "+15005550006"
BASE = "https://api.servio.test/api/twilio/webhook"

SENT_AGO = timedelta(hours=1)
OLDER_THAN = timedelta(minutes=10)
PRICE = "-0.00790"
PRICE_UNIT = "USD"
SEND_CHUNK = 100
MAX_RECORDS = 1000  # reconcile's limit, and one query's


class Clock:
    """A clock that stands still until moved (read from threads: one attribute)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


@dataclass
class World:
    """The fake Twilio, the clock, and the open records every run starts from."""

    fake: FakeTwilio
    clock: Clock
    snapshot: list[Communication]

    @property
    def ids(self) -> set[str]:
        return {record.id or "" for record in self.snapshot}


@dataclass
class Timeline:
    """How long a repository's first ``communications`` query and each ``update_many`` took."""

    query: float | None = None
    merges: list[tuple[int, float]] = field(default_factory=list)  # (records, seconds)

    def queried(self, started: float) -> None:
        if self.query is None:  # later queries are the bench's own checks
            self.query = time.perf_counter() - started

    def merged(self, records: int, started: float) -> None:
        self.merges.append((records, time.perf_counter() - started))


@dataclass
class Row:
    """One measured run."""

    label: str
    seconds: float
    records: int
    concurrency: int = 1
    peak: int = 0
    timeline: Timeline = field(default_factory=Timeline)
    rpcs: dict[str, int] = field(default_factory=dict)
    extrapolated: float | None = None  # seconds for every record, from a prefix

    @property
    def total(self) -> float:
        return self.extrapolated if self.extrapolated is not None else self.seconds


def _settings() -> TwilioSettings:
    return TwilioSettings(
        account_sid=ACCOUNT, auth_token=TOKEN, phone_number=PHONE, webhook_base_url=BASE
    )


def prepare(records: int, latency: float) -> World:
    """Send ``records`` SMS at no latency, deliver them at Twilio, keep the stored records."""
    clock = Clock(datetime.now(UTC).replace(microsecond=0) - SENT_AGO)
    fake = FakeTwilio(clock=clock)
    repository = InMemoryRepository()
    client = CommunicationsClient(_settings(), repository=repository, http_client=fake, clock=clock)
    messages = [
        OutboundMessage(to=f"+5511990{i:06d}", body=f"Visita #{i}", prospect_id=f"p{i % 50}")
        for i in range(records)
    ]
    for start in range(0, records, SEND_CHUNK):
        report = client.send_batch(messages[start : start + SEND_CHUNK], max_concurrency=10)
        if report.succeeded != len(messages[start : start + SEND_CHUNK]):
            raise SystemExit(f"setup: {report.failed} sends failed")
    for resource in fake.resources("message"):
        fake.set_status(resource["sid"], "delivered", price=PRICE, price_unit=PRICE_UNIT)
    clock.now += SENT_AGO
    snapshot = repository.communications(open_only=True, limit=records)
    if len(snapshot) != records or not all(r.twilio_sid for r in snapshot):
        raise SystemExit(f"setup: {len(snapshot)} open records with SIDs, not {records}")
    fake.latency = latency
    return World(fake=fake, clock=clock, snapshot=snapshot)


# --- checks -------------------------------------------------------------------------------------


def _check_report(label: str, report: ReconcileReport, records: int) -> None:
    counts = (report.examined, report.settled, report.still_open, report.not_sent)
    if counts != (records, records, 0, 0) or report.failed:
        raise SystemExit(
            f"{label}: examined/settled/still open/not sent = {counts}, "
            f"{len(report.failed)} failed ({report.failed[:3]}), expected all {records} settled"
        )


def _check_records(label: str, stored: Mapping[str, Communication | None], ids: set[str]) -> None:
    """Every record of ``ids`` delivered with Twilio's price, none open."""
    wrong = [
        cid
        for cid in ids
        if (record := stored.get(cid)) is None
        or is_open(record)
        or record.status != "delivered"
        or record.price != PRICE
        or record.price_unit != PRICE_UNIT
    ]
    if wrong:
        raise SystemExit(
            f"{label}: {len(wrong)} of {len(ids)} records not settled, e.g. {wrong[0]}"
        )


def _fetches(fake: FakeTwilio, before: int) -> int:
    """Message fetches (GET of one SM... resource) since the request log held ``before``."""
    return sum(
        1
        for request in fake.requests[before:]
        if request.method == "GET" and "/Messages/SM" in request.url
    )


def _check_fetches(label: str, fake: FakeTwilio, before: int, records: int) -> None:
    fetched = _fetches(fake, before)
    if fetched != records:
        raise SystemExit(f"{label}: {fetched} message fetches for {records} records")


# --- repositories that time their query and merges ---------------------------------------------


class CountingMemory(InMemoryRepository):
    """An `InMemoryRepository` that times its query and every ``update_many``."""

    def __init__(self) -> None:
        super().__init__()
        self.timeline = Timeline()

    def communications(self, **filters: Any) -> list[Communication]:
        started = time.perf_counter()
        found = super().communications(**filters)
        self.timeline.queried(started)
        return found

    def update_many(
        self, updates: Mapping[str, Callable[[Communication], Communication]]
    ) -> dict[str, Communication]:
        started = time.perf_counter()
        merged = super().update_many(updates)
        self.timeline.merged(len(updates), started)
        return merged


# --- the baseline: what a user writes without reconcile -----------------------------------------


def _apply(message: Any, now: datetime, current: Communication) -> Communication:
    return replace(
        current,
        status=merge_status(current.channel, current.status, message.status),
        price=message.price,
        price_unit=message.price_unit,
        updated_at=now,
    )


def user_loop(repository: Any, twilio: Any, now: datetime, limit: int) -> list[str]:
    """The open records, each fetched with twilio's client and updated, one after another."""
    records = repository.communications(open_only=True, before=now - OLDER_THAN, limit=limit)
    for record in records:
        message = twilio.messages(record.twilio_sid).fetch()
        repository.update(record.id, functools.partial(_apply, message, now))
    return [record.id for record in records]


def _baseline(world: World, repository: Any, limit: int, label: str) -> tuple[Row, list[str]]:
    twilio = TwilioClient(ACCOUNT, TOKEN, http_client=world.fake)
    before = len(world.fake.requests)
    start = time.perf_counter()
    done = user_loop(repository, twilio, world.clock(), limit)
    seconds = time.perf_counter() - start
    _check_fetches(label, world.fake, before, len(done))
    records = len(world.snapshot)
    timeline: Timeline = repository.timeline
    query = timeline.query or 0.0
    extrapolated = None
    if len(done) < records:  # the query once, then the loop's time per record
        extrapolated = query + (seconds - query) / len(done) * records
    row = Row(label, seconds, len(done), extrapolated=extrapolated, timeline=timeline)
    return row, done


# --- 1. in memory -------------------------------------------------------------------------------


def _seeded(world: World) -> CountingMemory:
    repository = CountingMemory()
    repository.add_many(world.snapshot)
    return repository


def _stored(repository: InMemoryRepository, ids: set[str]) -> dict[str, Communication | None]:
    return {cid: repository.get(cid) for cid in ids}


async def _async_run(
    world: World, repository: Any, concurrency: int
) -> tuple[float, ReconcileReport]:
    client = AsyncCommunicationsClient(
        _settings(), repository=repository, http_client=world.fake.aio, clock=world.clock
    )
    async with client:
        start = time.perf_counter()
        report = await client.reconcile(
            older_than=OLDER_THAN, limit=len(world.snapshot), max_concurrency=concurrency
        )
        return time.perf_counter() - start, report


def _run_async(world: World, repository: Any, concurrency: int) -> tuple[float, ReconcileReport]:
    return asyncio.run(_async_run(world, repository, concurrency))


def _sync_run(world: World, repository: Any, concurrency: int) -> tuple[float, ReconcileReport]:
    client = CommunicationsClient(
        _settings(), repository=repository, http_client=world.fake, clock=world.clock
    )
    start = time.perf_counter()
    report = client.reconcile(
        older_than=OLDER_THAN, limit=len(world.snapshot), max_concurrency=concurrency
    )
    return time.perf_counter() - start, report


def _measure(
    world: World,
    label: str,
    concurrency: int,
    run: Callable[[], tuple[float, ReconcileReport]],
) -> Row:
    """One reconcile run, checked: its report, its stored records, one fetch per record."""
    world.fake.peak_in_flight = 0
    before = len(world.fake.requests)
    seconds, report = run()
    records = len(world.snapshot)
    _check_report(label, report, records)
    _check_fetches(label, world.fake, before, records)
    return Row(label, seconds, records, concurrency, peak=world.fake.peak_in_flight)


def run_memory(world: World, concurrencies: list[int], baseline_records: int) -> list[Row]:
    """Part 1: the baseline loop, then both clients' reconcile at each concurrency."""
    ids = world.ids
    repository = _seeded(world)
    row, done = _baseline(world, repository, baseline_records, "baseline: sequential loop")
    _check_records("baseline", _stored(repository, set(done)), set(done))
    rows = [row]
    for concurrency in concurrencies:
        for kind in ("async", "sync"):
            label = f"{kind} client reconcile"
            repository = _seeded(world)
            run: Callable[[], tuple[float, ReconcileReport]]
            if kind == "async":
                view = AsyncInMemoryRepository(repository)
                run = functools.partial(_run_async, world, view, concurrency)
            else:
                run = functools.partial(_sync_run, world, repository, concurrency)
            row = _measure(world, label, concurrency, run)
            _check_records(label, _stored(repository, ids), ids)
            row.timeline = repository.timeline
            rows.append(row)
    return rows


# --- 2. on the Firestore emulator ---------------------------------------------------------------


def _collection() -> str:
    return f"bench-{uuid.uuid4().hex[:12]}"


def run_firestore(world: World, concurrencies: list[int], baseline_records: int) -> list[Row]:
    """Part 2: the same runs on the emulator, RPCs counted."""
    from rpc_counter import counted_async_client, counted_client  # noqa: PLC0415

    from servio_twilio.firestore import (  # noqa: PLC0415 - only with the emulator
        AsyncFirestoreRepository,
        FirestoreRepository,
    )

    class CountingFirestore(FirestoreRepository):
        def __init__(self, client: Any, collection: str) -> None:
            super().__init__(client, collection=collection, timeout=30.0)
            self.timeline = Timeline()

        def communications(self, **filters: Any) -> list[Communication]:
            started = time.perf_counter()
            found = super().communications(**filters)
            self.timeline.queried(started)
            return found

        def update_many(
            self, updates: Mapping[str, Callable[[Communication], Communication]]
        ) -> dict[str, Communication]:
            started = time.perf_counter()
            merged = super().update_many(updates)
            self.timeline.merged(len(updates), started)
            return merged

    class AsyncCountingFirestore(AsyncFirestoreRepository):
        def __init__(self, client: Any, collection: str) -> None:
            super().__init__(client, collection=collection, timeout=30.0)
            self.timeline = Timeline()

        async def communications(self, **filters: Any) -> list[Communication]:
            started = time.perf_counter()
            found = await super().communications(**filters)
            self.timeline.queried(started)
            return found

        async def update_many(
            self, updates: Mapping[str, Callable[[Communication], Communication]]
        ) -> dict[str, Communication]:
            started = time.perf_counter()
            merged = await super().update_many(updates)
            self.timeline.merged(len(updates), started)
            return merged

    ids = world.ids
    records = len(world.snapshot)
    db, counter = counted_client(PROJECT)
    rows: list[Row] = []

    def seeded_sync() -> CountingFirestore:
        repository = CountingFirestore(db, _collection())
        repository.add_many(world.snapshot)
        counter.take()
        return repository

    def all_records(repository: Any) -> dict[str, Communication | None]:
        found = repository.communications(limit=MAX_RECORDS)
        return {record.id: record for record in found}

    # Warm-up, unmeasured: the emulator (V8) and the client's channel.
    warm = seeded_sync()
    all_records(warm)

    repository = seeded_sync()
    row, done = _baseline(world, repository, baseline_records, "baseline: sequential loop")
    row.rpcs = counter.take()
    _check_records("baseline (Firestore)", all_records(repository), set(done))
    rows.append(row)

    for concurrency in concurrencies:
        repository = seeded_sync()
        label = "sync client reconcile"
        run = functools.partial(_sync_run, world, repository, concurrency)
        row = _measure(world, label, concurrency, run)
        row.rpcs = counter.take()
        row.timeline = repository.timeline
        _check_records(f"{label} (Firestore)", all_records(repository), ids)
        rows.append(row)

    async def async_rows() -> list[Row]:
        adb, acounter = counted_async_client(PROJECT)
        found: list[Row] = []
        for concurrency in concurrencies:
            repository = AsyncCountingFirestore(adb, _collection())
            await repository.add_many(world.snapshot)
            acounter.take()
            label = "async client reconcile"
            world.fake.peak_in_flight = 0
            before = len(world.fake.requests)
            seconds, report = await _async_run(world, repository, concurrency)
            rpcs = acounter.take()
            _check_report(label, report, records)
            _check_fetches(label, world.fake, before, records)
            stored = await repository.communications(limit=MAX_RECORDS)
            _check_records(f"{label} (Firestore)", {r.id or "": r for r in stored}, ids)
            acounter.take()
            found.append(
                Row(
                    label,
                    seconds,
                    records,
                    concurrency,
                    peak=world.fake.peak_in_flight,
                    timeline=repository.timeline,
                    rpcs=rpcs,
                )
            )
        adb.close()
        return found

    rows += asyncio.run(async_rows())
    db.close()
    return rows


# --- printing -----------------------------------------------------------------------------------


def _floor(records: int, concurrency: int, latency: float) -> float:
    return math.ceil(records / concurrency) * latency


def _times(seconds: float, floor: float) -> str:
    return f"{seconds / floor:.2f}x" if floor > 0 else "-"


def _merges(timeline: Timeline) -> str:
    """``count x min-max records, seconds in all (last: seconds)``."""
    if not timeline.merges:
        return "-"
    sizes = [records for records, _ in timeline.merges]
    spent = sum(seconds for _, seconds in timeline.merges)
    return (
        f"{len(sizes)} x {min(sizes)}-{max(sizes)}, {spent:.2f} s "
        f"(last {timeline.merges[-1][1]:.2f} s)"
    )


def print_times(title: str, rows: list[Row], latency: float) -> None:
    """Wall time beside the floor and the baseline; the query's and the merges' share of it."""
    baseline = rows[0]
    print(title)
    if baseline.extrapolated is not None:
        print(
            f"   baseline measured on the first {baseline.records} records: "
            f"{baseline.seconds:.2f} s; * = its query, then its time per record after the "
            f"query times {rows[-1].records}"
        )
    else:
        print(f"   baseline measured on all {baseline.records} records")
    print(
        f"  {'way':<26} {'conc':>4}  {'seconds':>8}  {'floor':>6}  {'x floor':>7}  "
        f"{'in flight':>9}  {'baseline/ours':>13}  {'query s':>7}  "
        "merges: update_many calls x records, time (the last one)"
    )
    for row in rows:
        is_base = row is baseline
        # an extrapolated baseline stands for every record
        records = rows[-1].records if row.extrapolated is not None else row.records
        floor = _floor(records, row.concurrency, latency)
        seconds = f"{row.total:.2f}" + ("*" if row.extrapolated is not None else " ")
        ratio = "1.0x" if is_base else f"{baseline.total / row.seconds:.1f}x"
        peak = "1" if is_base else str(row.peak)
        query = row.timeline.query or 0.0
        merges = f"{row.records} x update, in the loop" if is_base else _merges(row.timeline)
        print(
            f"  {row.label:<26} {row.concurrency:>4}  {seconds:>8}  {floor:>6.2f}  "
            f"{_times(row.total, floor):>7}  {peak:>9}  {ratio:>13}  {query:>7.2f}  {merges}"
        )


def print_rpcs(rows: list[Row]) -> None:
    """Firestore RPCs per record: the query, the transactions, anything else."""
    print("   Firestore RPCs, counted on the client's channel")
    print(
        f"  {'way':<26} {'conc':>4}  {'RPCs':>5}  {'per record':>10}  {'query':>5}  "
        f"{'transactions':>12}  {'other':>5}  by method"
    )
    for row in rows:
        total = sum(row.rpcs.values())
        transactions = row.rpcs.get("BeginTransaction", 0)
        # a transaction is Begin + BatchGet + Commit; a retried one shows in "other" as well
        other = total - row.rpcs.get("RunQuery", 0) - 3 * transactions
        print(
            f"  {row.label:<26} {row.concurrency:>4}  {total:>5}  {total / row.records:>10.3f}  "
            f"{row.rpcs.get('RunQuery', 0):>5}  {transactions:>12}  {other:>5}  {_short(row.rpcs)}"
        )


def _short(rpcs: Mapping[str, int]) -> str:
    names = {"BeginTransaction": "Begin", "BatchGetDocuments": "BatchGet"}
    order = ["RunQuery", "BeginTransaction", "BatchGetDocuments", "Commit"]
    ranked = sorted(rpcs, key=lambda n: (order.index(n) if n in order else len(order), n))
    return " + ".join(f"{names.get(name, name)} {rpcs[name]}" for name in ranked)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--records", type=int, default=1000, help=f"open records (<= {MAX_RECORDS})"
    )
    parser.add_argument("--latency", type=float, default=0.1, help="seconds per Twilio request")
    parser.add_argument(
        "--concurrency", default="10,50,100", help="max_concurrency values, comma-separated"
    )
    parser.add_argument(
        "--baseline-records",
        type=int,
        default=200,
        help="records the baseline loop runs on (0: all), extrapolated per record",
    )
    parser.add_argument("--no-firestore", action="store_true", help="skip the emulator part")
    args = parser.parse_args(argv)
    if not 1 <= args.records <= MAX_RECORDS:
        parser.error(f"--records must be 1..{MAX_RECORDS}")
    concurrencies = [int(c) for c in args.concurrency.split(",") if c.strip()]
    baseline_records = min(args.baseline_records or args.records, args.records)
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

    started = time.perf_counter()
    world = prepare(args.records, args.latency)
    print(
        f"reconcile of {args.records} open records (sent, delivered at Twilio, callbacks lost), "
        f"FakeTwilio latency {args.latency * 1000:g} ms per request; "
        f"setup {time.perf_counter() - started:.1f} s"
    )
    print(
        "   floor = ceil(records / concurrency) x latency (the baseline: records x latency); "
        "in flight = FakeTwilio's peak of requests at once; every run checked: all settled, "
        "delivered with the price, one fetch per record"
    )
    rows = run_memory(world, concurrencies, baseline_records)
    print_times(
        "1. in memory (InMemoryRepository; AsyncInMemoryRepository for the async client)",
        rows,
        args.latency,
    )
    if not args.no_firestore:
        with tempfile.TemporaryDirectory(prefix="bench-reconcile-") as tmp:
            try:
                with firestore_emulator(Path(tmp)) as host:
                    os.environ["FIRESTORE_EMULATOR_HOST"] = host
                    rows = run_firestore(world, concurrencies, baseline_records)
            except EmulatorUnavailable as exc:
                print(f"2. Firestore not measured: {exc}")
            else:
                print_times(
                    "2. Firestore emulator (FirestoreRepository; AsyncFirestoreRepository for "
                    "the async client)",
                    rows,
                    args.latency,
                )
                print_rpcs(rows)
    print(f"total {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
