"""The operator console over 10,000 records: ms and Firestore RPCs per page, and import cost.

Run: ``python bench/console.py [--records N] [--requests N] [--firestore-requests N]
[--import-runs N] [--no-firestore] [--only pages|imports]`` (5 to 6 minutes,
most of it on the emulator).

1. **Pages.** ``--records`` records (10,000) spread over the chart's 7 UTC
   days up to now: SMS, WhatsApp and calls, outbound and inbound, every
   status group, 50 prospects of which one (``p-heavy``) holds a fifth of
   them, prices on the settled ones, errors on the failed ones and kept
   callbacks on 200. They are written once into an `InMemoryRepository` and
   once into a `FirestoreRepository` on the Firestore emulator (``node
   tests/firestore_emulator.js``, started here on a free port of 127.0.0.1;
   the records with ``add_many``, the callbacks with ``append_event``),
   whose RPCs a gRPC interceptor counts (`rpc_counter`). The pages: the
   overview, ``/communications`` (first page, and filtered on SMS and
   ``failed``), ``/prospects/p-heavy``, ``/prospects/prospect-07`` (a
   typical prospect) and a record with its callbacks. Each is asked of the
   console's ASGI app in process, through ``httpx.ASGITransport`` (no server
   and no socket: the console's own cost and its storage's), signed in with
   `basic_auth`. Its baseline is the same data without the console: the
   repository calls an operator's script would make, then ``json.dumps`` of
   the result (no HTTP, no auth, no HTML); each page request is followed by
   one baseline run, so both see the same load. The ratio is page /
   baseline of the medians. Both read through `CountedReads`, which counts
   the repository calls and the documents they return.
2. **count_by_day** alone, over windows holding an eighth, a quarter, half
   and all of the records: its time and the documents it reads (Firestore
   bills one read per document a query returns, projection or not).
3. **Import cost.** Fresh interpreters running ``import servio_twilio`` for
   this checkout's ``src`` and for commit ``1042346`` (before the console and
   telemetry, extracted with ``git archive``), interleaved: wall time and
   ``-X importtime``'s cumulative time of the package; then which of
   ``servio_twilio.console``, ``jinja2`` and ``opentelemetry`` are loaded
   after the import, after touching every public name, and after building a
   console and sending one message.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, time as day_start, timedelta
from pathlib import Path
from typing import Any

import httpx
from emulator import firestore_emulator
from git_tree import extract_src

from servio_twilio import Channel, Communication, DayCount, Direction, InMemoryRepository
from servio_twilio.console import basic_auth, make_asgi_app
from servio_twilio.domain.status import FAILURE_STATUSES

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "demo-servio-bench"
OLD_COMMIT = "1042346"

USER, PASSWORD = "operator", "bench-console-password"
AUTH = {"authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()}
SENDER = "+14155552671"
ACCOUNT = "AC" + "1" * 32
HEAVY = "p-heavy"
TYPICAL = "prospect-07"
PROSPECTS = 50
HEAVY_SHARE = 0.2
WITH_EVENTS = 200
FAILURES = tuple(sorted(FAILURE_STATUSES))
WARMUPS = 3

# Outbound statuses and their weights, per channel; inbound messages are "received".
_STATUSES: dict[Channel, tuple[tuple[str, ...], tuple[int, ...]]] = {
    Channel.SMS: (("delivered", "sent", "queued", "undelivered", "failed"), (70, 10, 4, 8, 8)),
    Channel.WHATSAPP: (("read", "delivered", "sent", "undelivered", "failed"), (45, 30, 9, 8, 8)),
    Channel.CALL: (
        ("completed", "no-answer", "busy", "failed", "in-progress"),
        (60, 16, 10, 10, 4),
    ),
}
_PRICES = {Channel.SMS: "-0.00790", Channel.WHATSAPP: "-0.00500", Channel.CALL: "-0.01400"}
_ERRORS = {
    Channel.SMS: (30003, "Unreachable destination handset"),
    Channel.WHATSAPP: (63016, "Outside the allowed window"),
    Channel.CALL: (13224, "Invalid phone number"),
}
_PRICED = frozenset({"delivered", "read", "completed", "undelivered"})


# --- the data ---------------------------------------------------------------------------------


@dataclass(slots=True)
class Dataset:
    """The records, the callbacks kept for some of them, and what the pages look at."""

    records: list[Communication]
    events: dict[str, list[dict[str, Any]]]
    since: datetime
    until: datetime
    record_id: str


def chart_window(now: datetime) -> tuple[datetime, datetime]:
    """The overview's range: midnight UTC six days ago to midnight tomorrow."""
    today = now.astimezone(UTC).date()
    since = datetime.combine(today - timedelta(days=6), day_start(), UTC)
    return since, since + timedelta(days=7)


def build_dataset(count: int, now: datetime, seed: int = 15) -> Dataset:
    """``count`` records over the chart's window up to ``now``, newest last; deterministic."""
    rng = random.Random(seed)
    since, until = chart_window(now)
    span_us = int((now - since).total_seconds() * 1_000_000) - 1
    numbers = {
        f"prospect-{n:02d}": f"+55119{n:02d}{rng.randrange(10**6):06d}"
        for n in range(PROSPECTS - 1)
    }
    numbers[HEAVY] = "+5511987654321"
    others = sorted(numbers.keys() - {HEAVY})
    records: list[Communication] = []
    for offset in sorted(rng.sample(range(span_us), count)):
        at = since + timedelta(microseconds=offset)
        prospect = HEAVY if rng.random() < HEAVY_SHARE else rng.choice(others)
        channel = rng.choices(list(_STATUSES), weights=(50, 30, 20))[0]
        inbound = rng.random() < 0.15
        if inbound:
            status = "completed" if channel is Channel.CALL else "received"
        else:
            names, weights = _STATUSES[channel]
            status = rng.choices(names, weights=weights)[0]
        fields: dict[str, Any] = {}
        if status in ("failed", "undelivered"):
            code, text = _ERRORS[channel]
            fields.update(error_code=code, error=f"{text} {numbers[prospect]}")
        if not inbound and status in _PRICED and rng.random() < 0.9:
            fields.update(price=_PRICES[channel], price_unit="USD")
            if channel is Channel.SMS:
                fields["num_segments"] = rng.choice((1, 1, 1, 2))
        if channel is Channel.CALL:
            fields["duration"] = rng.randrange(5, 600) if status == "completed" else 0
        else:
            fields["body"] = f"Olá! Sua visita #{len(records)} está confirmada para amanhã às 15h."
        prefix = "CA" if channel is Channel.CALL else "SM"
        to, from_ = numbers[prospect], SENDER
        records.append(
            Communication(
                id=f"{rng.getrandbits(128):032x}",
                prospect_id=prospect,
                channel=channel,
                direction=Direction.INBOUND if inbound else Direction.OUTBOUND,
                to=from_ if inbound else to,
                from_=to if inbound else from_,
                twilio_sid=f"{prefix}{rng.getrandbits(128):032x}",
                status=status,
                timestamp=at,
                created_at=at,
                updated_at=at + timedelta(seconds=rng.randrange(1, 90)),
                **fields,
            )
        )
    outbound = [r for r in records if r.direction is Direction.OUTBOUND]
    chosen = rng.sample(outbound, min(WITH_EVENTS, len(outbound)))
    events = {r.id: _callbacks(r, rng) for r in chosen if r.id is not None}
    heavy_kept = [r for r in chosen if r.prospect_id == HEAVY]
    target = max(heavy_kept or chosen, key=lambda r: len(events[r.id or ""]))
    assert target.id is not None
    return Dataset(records=records, events=events, since=since, until=until, record_id=target.id)


def _callbacks(record: Communication, rng: random.Random) -> list[dict[str, Any]]:
    """Two to five status callbacks as the webhook app keeps them."""
    call = record.channel is Channel.CALL
    steps = ["queued", "initiated", "ringing", "in-progress"] if call else ["queued", "sent"]
    steps = [*steps[: rng.randrange(1, len(steps) + 1)], record.status]
    kept = []
    for n, status in enumerate(steps):
        params = {
            "AccountSid": ACCOUNT,
            "ApiVersion": "2010-04-01",
            "From": record.from_,
            "To": record.to,
            ("CallSid" if call else "MessageSid"): record.twilio_sid,
            ("CallStatus" if call else "MessageStatus"): status,
        }
        if status in ("failed", "undelivered") and record.error_code is not None:
            params["ErrorCode"] = str(record.error_code)
        at = record.timestamp + timedelta(seconds=2 * n + 1)
        route = "/call-status" if call else "/message-status"
        kept.append({"route": route, "receivedAt": at.isoformat(), "params": params})
    return kept


def fill(repository: Any, data: Dataset, counter: Any) -> str:
    """Write every record with ``add_many``, then every callback with ``append_event``."""
    counter.take()
    start = time.perf_counter()
    repository.add_many(data.records)
    records_s, records_rpcs = time.perf_counter() - start, counter.take()
    start = time.perf_counter()
    for communication_id, kept in data.events.items():
        for event in kept:
            repository.append_event(communication_id, event)
    events_s, events_rpcs = time.perf_counter() - start, counter.take()
    return (
        f"add_many {records_s:.1f} s ({_by_name(records_rpcs) or 'no RPC'}), "
        f"append_event x{sum(len(v) for v in data.events.values())} {events_s:.1f} s "
        f"({_by_name(events_rpcs) or 'no RPC'})"
    )


# --- the pages and their baselines --------------------------------------------------------------


@dataclass(slots=True)
class Reads:
    """What went through `CountedReads` between two takes."""

    calls: Counter[str] = field(default_factory=Counter)
    documents: int = 0
    ms: dict[str, float] = field(default_factory=dict)  # milliseconds, by method


class CountedReads:
    """The console's read methods of ``repository``, counting calls, documents and time.

    A document returned is what Firestore bills as one read (a query that
    returns none bills one); `count_by_day` returns counts, and read every
    record it counted. Both the console and the baselines read through it.
    """

    def __init__(self, repository: Any) -> None:
        self._repository = repository
        self.blocking: bool = repository.blocking
        self._lock = threading.Lock()
        self._reads = Reads()

    def take(self) -> Reads:
        """What was read since the last take."""
        with self._lock:
            taken, self._reads = self._reads, Reads()
        return taken

    def _read(self, method: str, documents: Callable[[Any], int], *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        result = getattr(self._repository, method)(*args, **kwargs)
        elapsed = time.perf_counter() - start
        with self._lock:
            self._reads.calls[method] += 1
            self._reads.documents += max(documents(result), 1)
            self._reads.ms[method] = self._reads.ms.get(method, 0.0) + elapsed * 1000
        return result

    def ping(self) -> None:
        self._read("ping", lambda _: 1)

    def count_by_day(self, **kwargs: Any) -> list[DayCount]:
        counts: list[DayCount] = self._read(
            "count_by_day", lambda found: sum(c.count for c in found), **kwargs
        )
        return counts

    def communications(self, **kwargs: Any) -> list[Communication]:
        found: list[Communication] = self._read("communications", len, **kwargs)
        return found

    def history(self, prospect_id: str, **kwargs: Any) -> list[Communication]:
        found: list[Communication] = self._read("history", len, prospect_id, **kwargs)
        return found

    def get(self, communication_id: str) -> Communication | None:
        found: Communication | None = self._read("get", lambda _: 1, communication_id)
        return found

    def events(self, communication_id: str) -> list[dict[str, Any]]:
        kept: list[dict[str, Any]] = self._read("events", len, communication_id)
        return kept


def _dump(records: list[Communication]) -> str:
    return json.dumps([c.to_dict() for c in records])


def overview_baseline(repository: Any, since: datetime) -> str:
    """Counts per (day, channel, status) by paging through every record since ``since``, in
    pages of 1000, and the 10 newest failures, as JSON."""
    counts: Counter[tuple[str, str, str]] = Counter()
    before: datetime | None = None
    while True:
        page = repository.communications(since=since, before=before, limit=1000)
        for c in page:
            counts[(c.timestamp.date().isoformat(), c.channel.value, c.status)] += 1
        if len(page) < 1000:
            break
        before = page[-1].timestamp
    failures = repository.communications(status=FAILURES, limit=10)
    rows = [[*key, n] for key, n in sorted(counts.items())]
    return json.dumps({"counts": rows, "failures": [f.to_dict() for f in failures]})


@dataclass(slots=True)
class Side:
    """One side of a row (the page or its baseline): its samples."""

    ms: list[float] = field(default_factory=list)
    storage_ms: list[float] = field(default_factory=list)  # in the repository's methods
    rpcs: list[dict[str, int]] = field(default_factory=list)
    reads: Reads = field(default_factory=Reads)  # of the last request
    size: int = 0


@dataclass(slots=True)
class Page:
    """One page and its baseline."""

    label: str
    path: str
    baseline: Callable[[], str]
    page: Side = field(default_factory=Side)
    base: Side = field(default_factory=Side)


def pages(repository: CountedReads, data: Dataset) -> list[Page]:
    """The measured pages, each with the baseline that fetches the same data."""

    def listing(**filters: Any) -> Callable[[], str]:
        return lambda: _dump(repository.communications(limit=50, **filters))

    def history(prospect_id: str) -> Callable[[], str]:
        return lambda: _dump(repository.history(prospect_id, limit=50))

    def record() -> str:
        found = repository.get(data.record_id)
        assert found is not None
        return json.dumps({"record": found.to_dict(), "events": repository.events(data.record_id)})

    heavy = sum(1 for r in data.records if r.prospect_id == HEAVY)
    other = sum(1 for r in data.records if r.prospect_id == TYPICAL)
    failed = "/communications?channel=sms&status=failed"
    return [
        Page("/ (overview)", "/", lambda: overview_baseline(repository, data.since)),
        Page("/communications", "/communications", listing()),
        Page(failed, failed, listing(channel=Channel.SMS, status="failed")),
        Page(f"/prospects/{HEAVY} ({heavy:,})", f"/prospects/{HEAVY}", history(HEAVY)),
        Page(f"/prospects/{TYPICAL} ({other})", f"/prospects/{TYPICAL}", history(TYPICAL)),
        Page(
            f"/communications/{{id}} ({len(data.events[data.record_id])} callbacks)",
            f"/communications/{data.record_id}",
            record,
        ),
    ]


class _NoCounter:
    def take(self) -> dict[str, int]:
        return {}


async def measure_pages(
    repository: CountedReads, counter: Any, measured: list[Page], requests: int
) -> None:
    """Each page through the ASGI app, each followed by its baseline, ``requests`` times."""
    # CountedReads has every method the console reads, not the whole Protocol.
    console: Any = repository
    app = make_asgi_app(repository=console, authorize=basic_auth(USER, PASSWORD))
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://console") as http:
        for row in measured:
            for rep in range(WARMUPS + requests):
                counter.take()
                repository.take()
                start = time.perf_counter()
                response = await http.get(row.path, headers=AUTH)
                elapsed = time.perf_counter() - start
                rpcs, reads = counter.take(), repository.take()
                if response.status_code != 200:
                    raise SystemExit(f"{row.path} answered {response.status_code}")
                start = time.perf_counter()
                payload = row.baseline()
                base_elapsed = time.perf_counter() - start
                base_rpcs, base_reads = counter.take(), repository.take()
                if rep < WARMUPS:
                    continue
                for side, ms, rpc, read in (
                    (row.page, elapsed, rpcs, reads),
                    (row.base, base_elapsed, base_rpcs, base_reads),
                ):
                    side.ms.append(ms * 1000)
                    side.storage_ms.append(sum(read.ms.values()))
                    side.rpcs.append(rpc)
                    side.reads = read
            row.page.size, row.base.size = len(response.content), len(payload)


def check_counts(repository: Any, data: Dataset) -> int:
    """count_by_day and the baseline's paging count the same; the records in the window."""
    counted = repository.count_by_day(since=data.since, until=data.until)
    paged = {
        (day, channel, status): n
        for day, channel, status, n in json.loads(overview_baseline(repository, data.since))[
            "counts"
        ]
    }
    mine = {(c.day.isoformat(), c.channel.value, c.status): c.count for c in counted}
    if mine != paged:
        raise SystemExit("count_by_day and the paging baseline disagree")
    return sum(mine.values())


def count_scaling(
    repository: Any, counter: Any, now: datetime, reps: int, firestore: bool
) -> list[str]:
    """count_by_day over windows ending now and holding 1/8 .. all of the records: rows."""
    since, _ = chart_window(now)
    until = now + timedelta(seconds=1)
    rows = []
    for share in (8, 4, 2, 1):
        start_at = now - (now - since) / share
        times, cpu, read, rpcs = [], [], 0, 0
        for _ in range(reps + 1):
            counter.take()
            start, start_cpu = time.perf_counter(), time.process_time()
            counts = repository.count_by_day(since=start_at, until=until)
            times.append((time.perf_counter() - start) * 1000)
            cpu.append((time.process_time() - start_cpu) * 1000)
            rpcs = sum(counter.take().values())
            read = sum(c.count for c in counts)
        ms, cpu_ms = statistics.median(times[1:]), statistics.median(cpu[1:])
        days = (until - start_at).total_seconds() / 86400
        rows.append(
            f"{days:>6.2f}  {read:>7,}  {ms:>8.2f}  {cpu_ms:>9.2f}  "
            f"{ms * 1000 / max(read, 1):>9.1f}  {rpcs if firestore else '-':>4}"
        )
    return rows


def _p95(values: list[float]) -> float:
    return statistics.quantiles(values, n=20, method="inclusive")[18]


def _rpc_text(samples: list[dict[str, int]]) -> str:
    if not any(samples):
        return "-"
    totals = sorted({sum(s.values()) for s in samples})
    shape = Counter(json.dumps(s, sort_keys=True) for s in samples).most_common(1)[0][0]
    total = str(totals[0]) if len(totals) == 1 else f"{totals[0]}-{totals[-1]}"
    return f"{total} ({_by_name(json.loads(shape))})"


def _by_name(counts: dict[str, int]) -> str:
    return ", ".join(f"{name} {n}" for name, n in sorted(counts.items()))


def print_pages(title: str, measured: list[Page], firestore: bool) -> None:
    """One table: page and baseline, ms median and p95, size, the ratio; then what each read."""
    print(f"  {title}")
    width = max(len(p.label) for p in measured)
    print(
        f"    {'page':<{width}}  {'ms med':>7}  {'ms p95':>7}  {'storage':>7}  {'KiB':>5}  "
        f"{'base med':>8}  {'base p95':>8}  {'KiB':>5}  {'page/base':>9}"
    )
    for row in measured:
        med, base = statistics.median(row.page.ms), statistics.median(row.base.ms)
        print(
            f"    {row.label:<{width}}  {med:>7.2f}  {_p95(row.page.ms):>7.2f}  "
            f"{statistics.median(row.page.storage_ms):>7.2f}  {row.page.size / 1024:>5.1f}  "
            f"{base:>8.2f}  {_p95(row.base.ms):>8.2f}  {row.base.size / 1024:>5.1f}  "
            f"{med / base:>8.2f}x"
        )
    print(
        "    per request (the last one), page | baseline: repository calls (ms in them); "
        "documents read" + ("; Firestore RPCs" if firestore else "")
    )
    for row in measured:
        sides = []
        for side in (row.page, row.base):
            calls = ", ".join(
                f"{name} {n} ({side.reads.ms[name]:,.1f})"
                for name, n in sorted(side.reads.calls.items())
            )
            text = f"{calls}; {side.reads.documents:,}"
            sides.append(text + (f"; {_rpc_text(side.rpcs)}" if firestore else ""))
        print(f"      {row.label:<{width}}  {sides[0]} | {sides[1]}")


# --- 3. import cost -----------------------------------------------------------------------------

_CHECK = """
import json, sys
import servio_twilio
WATCH = ("servio_twilio.console", "jinja2", "opentelemetry")
def loaded():
    return sorted({m.split(".")[0] if not m.startswith("servio_") else "servio_twilio.console"
                   for m in sys.modules if m.startswith(WATCH)})
seen = {"file": servio_twilio.__file__, "import": [len(sys.modules), loaded()]}
for name in servio_twilio.__all__:
    getattr(servio_twilio, name)
seen["names"] = [len(sys.modules), loaded()]
try:
    from servio_twilio.console import basic_auth, make_asgi_app
except ImportError:
    seen["used"] = None
else:
    from servio_twilio.testing import FakeTwilio
    repo = servio_twilio.InMemoryRepository()
    make_asgi_app(repository=repo, authorize=basic_auth("u", "p"))
    settings = servio_twilio.TwilioSettings(account_sid="AC" + "1" * 32, auth_token="t" * 32,
        phone_number="+15005550006", webhook_base_url="https://example.test/hooks")
    client = servio_twilio.CommunicationsClient(settings, repository=repo, http_client=FakeTwilio())
    client.send_sms("+5511999999999", "oi")
    seen["used"] = [len(sys.modules), loaded()]
print(json.dumps(seen))
"""


def _python(src: Path, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``python *args`` with ``src`` first on the path and bytecode cached under ``cwd``.

    Both trees get the same cache, written by the warm-up runs: with
    ``PYTHONDONTWRITEBYTECODE`` set (as in this project's shells), the old
    tree, fresh from ``git archive``, would be compiled from source on every
    run while this checkout's ``src`` has its ``__pycache__``.
    """
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env.update(PYTHONPATH=str(src), PYTHONPYCACHEPREFIX=str(cwd / "pycache"))
    return subprocess.run(
        [sys.executable, *args], env=env, cwd=cwd, capture_output=True, text=True, check=True
    )


def _cumulative_us(stderr: str) -> int:
    """``-X importtime``'s cumulative microseconds of the top-level ``servio_twilio``."""
    for line in stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[2].strip() == "servio_twilio" and parts[2][1:2] != " ":
            return int(parts[1])
    raise SystemExit(f"no servio_twilio line in -X importtime's output:\n{stderr[-2000:]}")


def import_cost(runs: int, workdir: Path) -> None:
    """Print wall and importtime figures, now beside the old commit, and the modules loaded."""
    trees = {"now": ROOT / "src", OLD_COMMIT: extract_src(OLD_COMMIT, workdir / "old")}
    snippets = [
        ("interpreter start (`pass`)", "now", "pass"),
        ("import servio_twilio, now", "now", "import servio_twilio"),
        (f"import servio_twilio, {OLD_COMMIT}", OLD_COMMIT, "import servio_twilio"),
    ]
    for _ in range(2):  # write the .pyc files, warm the file cache
        for _, tree, code in snippets:
            _python(trees[tree], "-c", code, cwd=workdir)
    wall: dict[str, list[float]] = {label: [] for label, _, _ in snippets}
    cumulative: dict[str, list[int]] = {tree: [] for tree in trees}
    for _ in range(runs):
        for label, tree, code in snippets:
            start = time.perf_counter()
            _python(trees[tree], "-c", code, cwd=workdir)
            wall[label].append((time.perf_counter() - start) * 1000)
        for tree, src in trees.items():
            done = _python(src, "-X", "importtime", "-c", "import servio_twilio", cwd=workdir)
            cumulative[tree].append(_cumulative_us(done.stderr))
    print(f"3. import cost: {runs} fresh interpreters each, interleaved; now = this checkout's src")
    start_ms = statistics.median(wall[snippets[0][0]])
    print(
        f"  {'snippet':<36}  {'median ms':>9}  {'min ms':>7}  {'- start':>7}  "
        "importtime µs: median  min"
    )
    for label, tree, code in snippets:
        med = statistics.median(wall[label])
        imported = ""
        if code != "pass":
            times = cumulative[tree]
            imported = f"{statistics.median(times):>21,.0f}  {min(times):>5,}"
        print(
            f"  {label:<36}  {med:>9.1f}  {min(wall[label]):>7.1f}  {med - start_ms:>7.1f}  "
            f"{imported}".rstrip()
        )
    now_us, old_us = (statistics.median(cumulative[t]) for t in ("now", OLD_COMMIT))
    print(
        f"  importtime now / {OLD_COMMIT}: {now_us / old_us:.2f}x, {now_us - old_us:+,.0f} µs "
        "(median cumulative µs of the servio_twilio package)"
    )
    print(
        "  which of servio_twilio.console, jinja2, opentelemetry are in sys.modules "
        "(and how many modules):"
    )
    for tree, src in trees.items():
        seen = json.loads(_python(src, "-c", _CHECK, cwd=workdir).stdout)
        if not Path(seen["file"]).resolve().is_relative_to(src.resolve()):
            raise SystemExit(f"imported {seen['file']}, not the code under {src}")
        stages = [("after import", seen["import"]), ("after every public name", seen["names"])]
        if seen["used"] is not None:
            stages.append(("after a console is built and one SMS sent", seen["used"]))
        for stage, (modules, loaded) in stages:
            print(f"    {tree:<8} {stage:<44} {', '.join(loaded) or 'none':<48} ({modules})")


# --- main -------------------------------------------------------------------------------------


def run_pages(args: argparse.Namespace, workdir: Path) -> None:
    """Sections 1 and 2: both repositories, filled with the same records."""
    now = datetime.now(UTC)
    data = build_dataset(args.records, now)
    kept = sum(len(v) for v in data.events.values())
    print(
        f"1. pages: {len(data.records):,} records from {data.since:%Y-%m-%d} 00:00 UTC to now "
        f"(the chart's 7 days), {PROSPECTS} prospects, {len(data.events)} records with {kept} "
        "callbacks. Each page is asked of make_asgi_app in process through "
        "httpx.ASGITransport (no server, no socket), with basic_auth; every request is "
        "followed by its baseline. ms: median and p95 of the requests after "
        f"{WARMUPS} warm-ups; page/base: of the medians."
    )
    print(
        "   baseline = the same data without the console, as json.dumps of to_dict() "
        "(no HTTP, no auth, no HTML):\n"
        "     /                   page through every record since the chart's start with "
        "communications(since=, before=, limit=1000)\n"
        "                         and count (day, channel, status) in a Counter; "
        "+ communications(status=<failures>, limit=10)\n"
        "     /communications     communications(limit=50) [channel=sms, status=failed]\n"
        "     /prospects/ID       history(ID, limit=50)\n"
        "     /communications/ID  get(ID) + events(ID)"
    )
    in_memory = InMemoryRepository()
    fill(in_memory, data, _NoCounter())
    memory = CountedReads(in_memory)
    window = check_counts(memory, data)
    measured = pages(memory, data)
    asyncio.run(measure_pages(memory, _NoCounter(), measured, args.requests))
    title = (
        f"InMemoryRepository, {args.requests} requests per page ({window:,} records in the window)"
    )
    print_pages(title, measured, firestore=False)
    scaling = {"InMemoryRepository": count_scaling(memory, _NoCounter(), now, args.requests, False)}
    if not args.no_firestore:
        from rpc_counter import counted_client  # noqa: PLC0415 - only with the emulator

        from servio_twilio.firestore import FirestoreRepository  # noqa: PLC0415

        with firestore_emulator(workdir) as host:
            os.environ["FIRESTORE_EMULATOR_HOST"] = host
            db, counter = counted_client(PROJECT)
            collection = f"bench-console-{uuid.uuid4().hex[:8]}"
            plain = FirestoreRepository(db, collection=collection, timeout=120.0)
            written = fill(plain, data, counter)
            store = CountedReads(plain)
            check_counts(store, data)
            measured = pages(store, data)
            asyncio.run(measure_pages(store, counter, measured, args.firestore_requests))
            title = (
                f"FirestoreRepository on the emulator, {args.firestore_requests} requests per "
                f"page; filled with {written}"
            )
            print_pages(title, measured, firestore=True)
            scaling["FirestoreRepository on the emulator"] = count_scaling(
                plain, counter, now, args.firestore_requests, True
            )
            db.close()
    print(
        "2. count_by_day(since, until) alone, called directly: windows ending now; 'read' = "
        "records in the window = documents the query returns\n"
        "   (Firestore bills each as one document read, projection or not); cpu = this "
        "process's CPU time in the call (the client's decoding and counting)"
    )
    for name, rows in scaling.items():
        print(f"  {name}")
        print(f"    {'days':>6}  {'read':>7}  {'ms med':>8}  {'cpu ms':>9}  {'µs/record':>9}  RPCs")
        for row in rows:
            print(f"    {row}")


def main(argv: list[str] | None = None) -> int:
    """Measure and print the three sections."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--records", type=int, default=10_000, help="records in the repository")
    parser.add_argument("--requests", type=int, default=25, help="requests per page, memory")
    parser.add_argument(
        "--firestore-requests", type=int, default=10, help="requests per page, emulator"
    )
    parser.add_argument("--import-runs", type=int, default=15, help="fresh processes per snippet")
    parser.add_argument("--no-firestore", action="store_true", help="skip the emulator")
    parser.add_argument("--only", choices=("pages", "imports"), help="run one part")
    args = parser.parse_args(argv)
    if args.records < 1000 or min(args.requests, args.firestore_requests) < 2:
        parser.error("--records must be >= 1000 and the requests >= 2")
    if args.import_runs < 1:
        parser.error("--import-runs must be >= 1")
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} cores")
    with tempfile.TemporaryDirectory(prefix="bench-console-") as tmp:
        if args.only != "imports":
            run_pages(args, Path(tmp))
        if args.only != "pages":
            import_cost(args.import_runs, Path(tmp))
    return 0


if __name__ == "__main__":
    sys.exit(main())
