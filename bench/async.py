"""Async hosts: the async client and the webhook app on one event loop, beside 0.1's ways.

Run: ``python bench/async.py [--seconds S] [--clients N] [--no-firestore] [--only PART]``.
One run of each figure, each printed beside its baseline measured in the
same run, and the ratio:

1. Sends. 20 concurrent ``send_sms`` from one event loop through
   ``FakeTwilio(latency=0.2)``: `AsyncCommunicationsClient` under
   ``asyncio.gather``, against the 0.2 s floor (one answer's wait); beside
   version 0.1's ways for an ``async def``: the sync client called in it
   (the sends queue on the loop), and ``asyncio.to_thread`` of the sync
   client (asyncio's default executor: ``min(32, cpu + 4)`` threads).
2. Event-loop lag. A task that sleeps 1 ms at a time records how late each
   wake-up is, corrected for coordinated omission (as HdrHistogram's
   ``recordValueWithExpectedInterval``: a wake-up L late also stands for the
   ticks it swallowed, L - 1 ms, L - 2 ms, ...), during: an async
   ``send_batch`` of 100 at 50 ms latency (``max_concurrency=10``); 1000
   signed status callbacks driven straight into ``make_asgi_app`` (the ASGI
   callable, no server) with an `AsyncInMemoryRepository`, each request a
   task as a server makes them, 10 and then 50 in flight (the loop runs the
   ready ones back to back, so the lag grows with how many are ready at
   once, times the loop time of one callback, printed); beside the idle loop
   and the sync client's ``send_batch`` called inside the loop (what 0.1
   forced on async hosts). p50 / p99 / max of the lateness. Each row starts
   after ``gc.collect()``: a full collection of this process's heap takes
   about 20 ms, and would land in whichever row comes after the garbage.
3. The webhook app under uvicorn (h11) on 127.0.0.1, in a child process
   (``bench/slow_webhook.py``), whose repository makes every call wait
   200 ms, ``--clients`` concurrent keep-alive clients (threads, one
   ``http.client`` connection each) posting signed status callbacks to
   stored records: callbacks/s over ``--seconds`` after one second of
   warm-up, and the repository calls of one callback sent alone first.
   Baseline: version 0.1 itself (commit ``243cb70``, extracted with ``git
   archive``; a blocking repository ran through ``asyncio.to_thread``, the
   default executor of 6 threads on a 2-core host), beside this checkout
   with a blocking repository at ``max_threads=6`` and 32, an async one,
   and, on the Firestore emulator (``node tests/firestore_emulator.js``,
   started here), ``AsyncFirestoreRepository`` and the blocking
   ``FirestoreRepository`` with the same 200 ms injected.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import http.client
import json
import math
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, MutableMapping
from contextlib import ExitStack, asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

from emulator import EmulatorUnavailable, firestore_emulator
from git_tree import extract_src
from slow_webhook import BASE, PHONE, TO, TOKEN, record_sid

from servio_twilio import (
    AsyncCommunicationsClient,
    AsyncInMemoryRepository,
    CommunicationsClient,
    InMemoryRepository,
    OutboundMessage,
    TwilioSettings,
    WebhookVerifier,
    make_asgi_app,
)
from servio_twilio.testing import FakeTwilio, signed_webhook

ROOT = Path(__file__).resolve().parent.parent
SERVER_SCRIPT = Path(__file__).resolve().parent / "slow_webhook.py"
BASELINE = "243cb70"

ACCOUNT = "AC" + "1" * 32

SEND_COUNT = 20
SEND_LATENCY = 0.2
SEND_TARGET = 1.3
TICK = 0.001
LAG_TARGET_MS = 5.0
BATCH_SIZE = 100
BATCH_LATENCY = 0.05
CALLBACKS = 1000
CALLBACKS_IN_FLIGHT = (10, 50)
REPOSITORY_DELAY = 0.2
RECORDS = 500
STATUSES = ("sent", "delivered", "read")
WEBHOOK_TARGET = 8.0
V01_PUBLISHED = 9.9

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def _settings() -> TwilioSettings:
    return TwilioSettings(
        account_sid=ACCOUNT,
        auth_token=TOKEN,
        phone_number=PHONE,
        webhook_base_url=BASE,
    )


def _messages(n: int) -> list[OutboundMessage]:
    return [OutboundMessage(to=f"+5511990{i:06d}", body=f"Visita #{i}") for i in range(n)]


def _verdict(met: bool) -> str:
    return "met" if met else "MISSED"


# --- 1. sends -----------------------------------------------------------------------------------


async def _async_sends(count: int) -> tuple[float, int]:
    """Seconds for ``count`` gathered async sends, and FakeTwilio's peak in flight."""
    fake = FakeTwilio(latency=SEND_LATENCY)
    async with AsyncCommunicationsClient(_settings(), http_client=fake.aio) as client:
        await client.send_sms(TO, "warm-up")
        start = time.perf_counter()
        await asyncio.gather(*(client.send_sms(TO, f"#{n}") for n in range(count)))
        return time.perf_counter() - start, fake.peak_in_flight


def _sync_client() -> tuple[CommunicationsClient, FakeTwilio]:
    fake = FakeTwilio(latency=SEND_LATENCY)
    client = CommunicationsClient(_settings(), repository=InMemoryRepository(), http_client=fake)
    client.send_sms(TO, "warm-up")
    return client, fake


async def _sync_in_async_def(count: int) -> tuple[float, int]:
    """The sync client called from a coroutine, as an ``async def`` endpoint would."""
    client, fake = _sync_client()

    async def endpoint(n: int) -> None:
        client.send_sms(TO, f"#{n}")

    start = time.perf_counter()
    await asyncio.gather(*(endpoint(n) for n in range(count)))
    return time.perf_counter() - start, fake.peak_in_flight


async def _to_thread(count: int) -> tuple[float, int]:
    """The sync client through ``asyncio.to_thread`` (asyncio's default executor)."""
    client, fake = _sync_client()
    start = time.perf_counter()
    await asyncio.gather(*(asyncio.to_thread(client.send_sms, TO, f"#{n}") for n in range(count)))
    return time.perf_counter() - start, fake.peak_in_flight


def run_sends() -> None:
    """Part 1: the table of 20 concurrent sends."""
    floor = SEND_LATENCY
    threads = min(32, (os.cpu_count() or 1) + 4)
    rows = [
        ("AsyncCommunicationsClient, asyncio.gather", asyncio.run(_async_sends(SEND_COUNT))),
        ("0.1: sync client called in async def", asyncio.run(_sync_in_async_def(SEND_COUNT))),
        (
            f"0.1: asyncio.to_thread(sync client), {threads} threads",
            asyncio.run(_to_thread(SEND_COUNT)),
        ),
    ]
    print(
        f"1. {SEND_COUNT} concurrent sends from one event loop, FakeTwilio latency "
        f"{SEND_LATENCY * 1000:.0f} ms (floor {floor:.1f} s: one answer's wait)"
    )
    width = max(len(name) for name, _ in rows)
    print(f"  {'way':<{width}}  {'seconds':>7}  {'x floor':>7}  {'in flight':>9}  note")
    new = rows[0][1][0]
    for index, (name, (seconds, peak)) in enumerate(rows):
        if index == 0:
            note = f"target <= {SEND_TARGET}x: {_verdict(seconds / floor <= SEND_TARGET)}"
        else:
            note = f"async client {seconds / new:.1f}x faster"
        print(f"  {name:<{width}}  {seconds:>7.3f}  {seconds / floor:>6.2f}x  {peak:>9}  {note}")


# --- 2. event-loop lag --------------------------------------------------------------------------


@asynccontextmanager
async def _ticking() -> AsyncIterator[list[float]]:
    """A task sleeping ``TICK`` at a time while the block runs; yields its lateness (s)."""
    lags: list[float] = []
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()

    async def tick() -> None:
        while True:
            due = loop.time() + TICK
            await asyncio.sleep(TICK)
            late = max(0.0, loop.time() - due)
            lags.append(late)
            swallowed = late - TICK
            while swallowed > 0:  # the ticks a long wait swallowed, as HdrHistogram counts them
                lags.append(swallowed)
                swallowed -= TICK
            if stop.is_set():
                return

    gc.collect()  # no full collection of earlier rows' garbage in this one
    task = asyncio.create_task(tick())
    await asyncio.sleep(5 * TICK)  # ticking before the work starts
    try:
        yield lags
    finally:
        stop.set()
        await task


def _percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, math.ceil(fraction * len(ordered)) - 1)]


async def _lag_idle(seconds: float) -> tuple[float, list[float]]:
    async with _ticking() as lags:
        start = time.perf_counter()
        await asyncio.sleep(seconds)
    return time.perf_counter() - start, lags


async def _lag_async_batch() -> tuple[float, list[float]]:
    fake = FakeTwilio(latency=BATCH_LATENCY)
    async with AsyncCommunicationsClient(_settings(), http_client=fake.aio) as client:
        await client.send_sms(TO, "warm-up")
        async with _ticking() as lags:
            start = time.perf_counter()
            report = await client.send_batch(_messages(BATCH_SIZE), max_concurrency=10)
            seconds = time.perf_counter() - start
    if report.succeeded != BATCH_SIZE:
        raise SystemExit(f"async batch: {report.failed} of {BATCH_SIZE} items failed")
    return seconds, lags


async def _lag_sync_batch() -> tuple[float, list[float]]:
    fake = FakeTwilio(latency=BATCH_LATENCY)
    client = CommunicationsClient(_settings(), repository=InMemoryRepository(), http_client=fake)
    client.send_sms(TO, "warm-up")
    async with _ticking() as lags:
        start = time.perf_counter()
        report = client.send_batch(_messages(BATCH_SIZE), max_concurrency=10)
        seconds = time.perf_counter() - start
    if report.succeeded != BATCH_SIZE:
        raise SystemExit(f"sync batch: {report.failed} of {BATCH_SIZE} items failed")
    return seconds, lags


def _callback(n: int, status: str) -> tuple[str, dict[str, str], bytes]:
    """A signed status callback for record ``c{n}``: (path and query, headers, body)."""
    target = f"/message-status?cid=c{n}"
    params = {
        "AccountSid": "AC" + "a" * 32,
        "ApiVersion": "2010-04-01",
        "From": PHONE,
        "MessageSid": record_sid(n),
        "MessageStatus": status,
        "SmsSid": record_sid(n),
        "SmsStatus": status,
        "To": TO,
    }
    headers, body = signed_webhook(BASE + target, params, TOKEN)
    return target, headers, body


def _callbacks(records: int, rounds: int) -> list[tuple[str, dict[str, str], bytes]]:
    """``rounds`` callbacks for each of ``records`` records: sent, delivered, read, read..."""
    return [
        _callback(n, STATUSES[min(round_, len(STATUSES) - 1)])
        for round_ in range(rounds)
        for n in range(records)
    ]


def _scope(target: str, headers: dict[str, str]) -> Scope:
    path, _, query = target.partition("?")
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query.encode(),
        "headers": [
            (b"host", b"internal:8080"),
            *((name.lower().encode(), value.encode()) for name, value in headers.items()),
        ],
        "server": ("internal", 8080),
    }


async def _lag_callbacks(in_flight: int) -> tuple[float, list[float]]:
    """``CALLBACKS`` callbacks into the ASGI app, each a task, ``in_flight`` at once."""
    repository = AsyncInMemoryRepository()
    app: App = make_asgi_app(
        verifier=WebhookVerifier(TOKEN), repository=repository, public_base_url=BASE
    )
    prepared = _callbacks(CALLBACKS // 4, 4)
    answered: list[int] = []

    async def request(target: str, headers: dict[str, str], body: bytes) -> None:
        message: Message = {"type": "http.request", "body": body, "more_body": False}

        async def receive() -> Message:
            return message

        async def send(message: Message) -> None:
            if message["type"] == "http.response.start":
                answered.append(message["status"])

        await app(_scope(target, headers), receive, send)

    async def client(share: list[tuple[str, dict[str, str], bytes]]) -> None:
        for target, headers, body in share:
            await asyncio.create_task(request(target, headers, body))

    shares = [prepared[k::in_flight] for k in range(in_flight)]
    await client(prepared[:20])  # warm-up: imports, the first records
    answered.clear()
    async with _ticking() as lags:
        start = time.perf_counter()
        await asyncio.gather(*(client(share) for share in shares))
        seconds = time.perf_counter() - start
    if answered.count(204) != len(prepared):
        raise SystemExit(f"{answered.count(204)} of {len(prepared)} callbacks answered 204")
    return seconds, lags


def run_lag() -> None:
    """Part 2: the event-loop lag table."""
    callback_rows = []
    for in_flight in CALLBACKS_IN_FLIGHT:
        seconds, lags = asyncio.run(_lag_callbacks(in_flight))
        loop_us = seconds / CALLBACKS * 1e6
        callback_rows.append(
            (
                f"{CALLBACKS} callbacks into make_asgi_app, {in_flight} in flight",
                (seconds, lags),
                f"; {loop_us:.0f} us of loop per callback",
            )
        )
    rows = [
        ("idle loop (the ticker alone)", asyncio.run(_lag_idle(0.5)), None),
        (
            f"async send_batch({BATCH_SIZE}), {BATCH_LATENCY * 1000:.0f} ms, 10 at once",
            asyncio.run(_lag_async_batch()),
            "",
        ),
        *callback_rows,
        (f"0.1: sync send_batch({BATCH_SIZE}) called in the loop", asyncio.run(_lag_sync_batch()),
         None),
    ]  # fmt: skip
    print(
        f"2. event-loop lag: lateness of a {TICK * 1000:.0f} ms ticker during the work, in ms "
        "(samples: wake-ups, plus the ticks each long wait swallowed)"
    )
    width = max(len(name) for name, _, _ in rows)
    print(
        f"  {'work':<{width}}  {'seconds':>7}  {'samples':>7}  {'p50':>7}  {'p99':>7}  "
        f"{'max':>7}  note"
    )
    baseline_p99 = _percentile(rows[-1][1][1], 0.99)
    for name, (seconds, lags), extra in rows:
        p50, p99 = _percentile(lags, 0.5) * 1000, _percentile(lags, 0.99) * 1000
        note = ""
        if extra is not None:
            note = (
                f"target p99 <= {LAG_TARGET_MS:g} ms: {_verdict(p99 <= LAG_TARGET_MS)}; "
                f"0.1's p99 is {baseline_p99 * 1000 / p99:,.0f}x{extra}"
            )
        print(
            f"  {name:<{width}}  {seconds:>7.3f}  {len(lags):>7}  {p50:>7.2f}  {p99:>7.2f}  "
            f"{max(lags) * 1000:>7.2f}  {note}".rstrip()
        )


# --- 3. the webhook app under uvicorn, slow storage ---------------------------------------------


@contextmanager
def _server(args: list[str], src: Path, emulator: str | None, workdir: Path) -> Iterator[int]:
    """``slow_webhook.py`` with ``src`` first on its path; yields its port.

    Its stderr goes to a log under ``workdir``, shown when it does not start.
    """
    env = dict(os.environ, PYTHONPATH=str(src))
    env.setdefault("GRPC_VERBOSITY", "ERROR")
    if emulator is not None:
        env["FIRESTORE_EMULATOR_HOST"] = emulator
    log_path = workdir / "server.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, str(SERVER_SCRIPT), "--records", str(RECORDS + 1), *args],
            stdout=subprocess.PIPE,
            stderr=log,
            env=env,
            text=True,
        )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        if not line.strip().isdigit():
            tail = log_path.read_text(errors="replace")[-2000:]
            raise SystemExit(f"the webhook server ({' '.join(args)}) did not start:\n{tail}")
        yield int(line)
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)


def _load(port: int, clients: int, warmup: float, seconds: float) -> dict[str, float]:
    """``clients`` threads, one keep-alive connection each, posting callbacks for ``warmup +
    seconds``: the rate of 2xx answers and the non-2xx answers in the last ``seconds``; and
    the repository calls of one callback, sent alone first."""
    prepared = _callbacks(RECORDS, 4)
    shares = [prepared[k::clients] for k in range(clients)]
    done: list[tuple[float, int]] = []  # list.append is atomic: no lock needed
    stop = threading.Event()

    def client(share: list[tuple[str, dict[str, str], bytes]]) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        n = 0
        try:
            while not stop.is_set():
                target, headers, body = share[n % len(share)]
                n += 1
                conn.request("POST", target, body=body, headers=headers)
                response = conn.getresponse()
                response.read()
                done.append((time.perf_counter(), response.status))
        except OSError:
            if not stop.is_set():
                raise
        finally:
            conn.close()

    def calls() -> int:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            conn.request("GET", "/stats")
            count: int = json.loads(conn.getresponse().read())["calls"]
            return count
        finally:
            conn.close()

    before = calls()  # one callback alone first: its repository calls, exactly
    target, headers, body = _callback(RECORDS, STATUSES[0])
    first = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    first.request("POST", target, body=body, headers=headers)
    if not 200 <= first.getresponse().status < 300:
        raise SystemExit(f"the first callback was not answered 2xx on port {port}")
    first.close()
    per_callback = calls() - before
    threads = [threading.Thread(target=client, args=(share,), daemon=True) for share in shares]
    for thread in threads:
        thread.start()
    time.sleep(warmup)
    begin = time.perf_counter()
    time.sleep(seconds)
    end = time.perf_counter()
    stop.set()  # the threads end with their request in flight, or when the server stops
    window = [status for at, status in done if begin <= at < end]
    ok = sum(1 for status in window if 200 <= status < 300)
    if ok == 0:
        raise SystemExit(f"no callback was answered 2xx on port {port}")
    return {
        "rate": ok / (end - begin),
        "calls": float(per_callback),
        "errors": float(len(window) - ok),
    }


def run_webhook(clients: int, seconds: float, firestore: bool) -> None:
    """Part 3: callbacks/s with slow storage, this checkout beside 0.1."""
    default_threads = min(32, (os.cpu_count() or 1) + 4)
    # (label, slow_webhook.py arguments, on the emulator, workers: the calls that can wait at once)
    rows: list[tuple[str, list[str], bool, int]] = [
        ("now: blocking, max_threads=6", ["--repository", "blocking", "--max-threads", "6"],
         False, 6),
        ("now: blocking, max_threads=32", ["--repository", "blocking", "--max-threads", "32"],
         False, 32),
        ("now: async (AsyncInMemoryRepository)", ["--repository", "async"], False, clients),
    ]  # fmt: skip
    if firestore:
        rows += [
            ("now: AsyncFirestoreRepository, emulator", ["--repository", "firestore-async"],
             True, clients),
            ("now: FirestoreRepository, max_threads=32",
             ["--repository", "firestore-blocking", "--max-threads", "32"], True, 32),
        ]  # fmt: skip
    results: list[tuple[str, dict[str, float], int]] = []
    notes: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-async-") as tmp, ExitStack() as stack:
        workdir = Path(tmp)
        try:
            old_src = extract_src(BASELINE, workdir)
        except (OSError, subprocess.CalledProcessError) as exc:
            notes.append(f"0.1 not measured: git archive {BASELINE} failed ({exc})")
        else:
            args = ["--repository", "blocking", "--delay", str(REPOSITORY_DELAY)]
            with _server(args, old_src, None, workdir) as port:
                measured = _load(port, clients, 1.0, seconds)
            label = f"0.1 ({BASELINE}): blocking, asyncio.to_thread"
            results.append((label, measured, default_threads))
        emulator: str | None = None
        if firestore:
            try:
                emulator = stack.enter_context(firestore_emulator(workdir))
            except EmulatorUnavailable as exc:
                rows = [row for row in rows if not row[2]]
                notes.append(f"Firestore rows not measured: {exc}")
        for label, kind, on_emulator, workers in rows:
            args = [*kind, "--delay", str(REPOSITORY_DELAY)]
            with _server(args, ROOT / "src", emulator if on_emulator else None, workdir) as port:
                measured = _load(port, clients, 1.0, seconds)
            results.append((label, measured, workers))
    _print_webhook(results, clients, seconds, notes)


def _print_webhook(
    results: list[tuple[str, dict[str, float], int]],
    clients: int,
    seconds: float,
    notes: list[str],
) -> None:
    baseline = next((row for label, row, _ in results if label.startswith("0.1")), None)
    print(
        f"3. the webhook app under uvicorn (h11) on 127.0.0.1, every repository call "
        f"{REPOSITORY_DELAY * 1000:.0f} ms, {clients} concurrent keep-alive clients, "
        f"{seconds:g} s measured after 1 s of warm-up"
    )
    print(
        f"   ideal = min(workers, clients) / (calls/cb x {REPOSITORY_DELAY:g} s); calls/cb = "
        "the repository calls of one callback sent alone; "
        f"workers = threads, or the clients for an async repository; "
        f"x 9.9 = over 0.1's published 9.9/s"
    )
    width = max(len(label) for label, _, _ in results)
    print(
        f"  {'server':<{width}}  {'callbacks/s':>11}  {'ideal':>5}  {'calls/cb':>8}  "
        f"{'non-2xx':>7}  {'x 0.1':>6}  {'x 9.9':>6}  note"
    )
    for label, row, workers in results:
        ideal = min(workers, clients) / (REPOSITORY_DELAY * max(row["calls"], 1e-9))
        versus = row["rate"] / baseline["rate"] if baseline else float("nan")
        note = ""
        if label.startswith("now") and "max_threads=6" not in label:
            met = (versus if baseline else row["rate"] / V01_PUBLISHED) >= WEBHOOK_TARGET
            note = f"target >= {WEBHOOK_TARGET:g}x 0.1: {_verdict(met)}"
        print(
            f"  {label:<{width}}  {row['rate']:>11.1f}  {ideal:>5.0f}  {row['calls']:>8.0f}  "
            f"{row['errors']:>7.0f}  {versus:>5.1f}x  {row['rate'] / V01_PUBLISHED:>5.1f}x  "
            f"{note}".rstrip()
        )
    for note in notes:
        print(f"  ({note})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--seconds", type=float, default=4.0, help="measured seconds per server")
    parser.add_argument("--clients", type=int, default=50, help="concurrent webhook clients")
    parser.add_argument("--no-firestore", action="store_true", help="skip the emulator rows")
    parser.add_argument("--only", choices=["sends", "lag", "webhook"])
    args = parser.parse_args(argv)
    if args.only in {None, "sends"}:
        run_sends()
    if args.only in {None, "lag"}:
        run_lag()
    if args.only in {None, "webhook"}:
        run_webhook(args.clients, args.seconds, not args.no_firestore)
    return 0


if __name__ == "__main__":
    sys.exit(main())
