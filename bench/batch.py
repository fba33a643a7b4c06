"""Batch sending: the HTTP pool, send_batch beside the earlier service's loop, the bulk write.

Run: ``python bench/batch.py`` (``--only https``, ``fake`` or ``firestore``
for one part). First, through twilio's real HTTP client:

- a batch of 100 at ``max_concurrency`` 20, 50 and 100 against a local
  HTTPS server (``bench/tls_twilio.py``: TLS on 127.0.0.1, keep-alive, 200 ms
  before each answer), as wall time over the floor
  200 ms x ceil(100 / concurrency), beside version 0.1's behaviour measured
  in the same run: a ``TwilioHttpClient`` as twilio builds it, whose pool
  keeps ``min(32, cpu + 4)`` connections, so each batch past that discards
  connections ("Connection pool is full") and reconnects. Each client sends
  one warm-up batch, then the median of ``--rounds`` batches is kept, with
  the TCP connections the server accepted and the connections urllib3
  discarded per batch. Target: at most 1.2x the floor at every concurrency.

Then through `FakeTwilio` with 200 ms of latency per request (Twilio's usual
answer time):

- 100 messages sent the way the earlier Node service did (one
  ``client.send_sms`` after another, each waiting for Twilio's answer)
  beside one ``client.send_batch(..., max_concurrency=20)``; the floor for
  20 workers is 100 / 20 x 0.2 s = 1.0 s;
- 1000 messages at ``rate_per_second=50``: ten batches of 100 back to back,
  sharing one `TokenBucket(50)` (``max_concurrency=20``, so the rate is the
  limit, not the workers), and the rate achieved over the whole run;
- writing 100 pending records to the Firestore emulator: one ``add_many``
  (one batched commit) beside 100 single ``add`` calls. The bench starts
  ``node tests/firestore_emulator.js PORT`` itself on a free port and stops
  it at the end; without ``node`` or ``tests/node_modules`` it skips that
  row and says why.
"""

from __future__ import annotations

import argparse
import logging
import math
import multiprocessing
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.sharedctypes import Synchronized
from multiprocessing.synchronize import Event
from pathlib import Path
from typing import Any

from emulator import EmulatorUnavailable, firestore_emulator
from tls_twilio import TlsTwilio, redirected_twilio
from twilio.http.http_client import TwilioHttpClient  # type: ignore[import-untyped]

from servio_twilio import (
    Channel,
    Communication,
    CommunicationsClient,
    InMemoryRepository,
    OutboundMessage,
    TwilioSettings,
)
from servio_twilio.sending.ratelimit import TokenBucket
from servio_twilio.testing import FakeTwilio

ACCOUNT = "AC" + "1" * 32
LATENCY = 0.2
HTTPS_CONCURRENCY = (20, 50, 100)
HTTPS_BATCH = 100
HTTPS_TARGET = 1.2


def _settings() -> TwilioSettings:
    return TwilioSettings(
        account_sid=ACCOUNT,
        auth_token="0123456789abcdef0123456789abcdef",
        phone_number="+15005550006",
        whatsapp_number="+14155238886",
        webhook_base_url="https://api.servio.test/api/twilio/webhook",
    )


def _client(latency: float = LATENCY) -> CommunicationsClient:
    return CommunicationsClient(
        _settings(), repository=InMemoryRepository(), http_client=FakeTwilio(latency=latency)
    )


class _SharedCounts(TlsTwilio):
    """`TlsTwilio` counting its connections in memory shared with the parent process."""

    def __init__(self, directory: Path, counter: Synchronized[int], **options: Any) -> None:
        super().__init__(directory, **options)
        self.counter = counter

    def count_connection(self) -> None:
        with self.counter.get_lock():
            self.counter.value += 1


def _serve(
    directory: str,
    latency: float,
    counter: Synchronized[int],
    ready: multiprocessing.SimpleQueue[tuple[str, str]],
    stop: Event,
) -> None:
    """The child process: serve until ``stop`` is set."""
    with _SharedCounts(Path(directory), counter, latency=latency) as server:
        ready.put((server.url, str(server.cert)))
        stop.wait()


class _ServerProcess:
    """`TlsTwilio` in a child process, so that its CPU does not share this one's GIL.

    Real Twilio is not in the client's process; a server in it would slow the
    client down. ``url``, ``cert`` and ``connections`` as `TlsTwilio`'s.
    """

    def __init__(self, directory: Path, latency: float) -> None:
        context = multiprocessing.get_context("spawn")
        self._counter: Synchronized[int] = context.Value("i", 0)
        self._stop = context.Event()
        ready: multiprocessing.SimpleQueue[tuple[str, str]] = context.SimpleQueue()
        self._process = context.Process(
            target=_serve,
            args=(str(directory), latency, self._counter, ready, self._stop),
            daemon=True,
        )
        self._process.start()
        url, cert = ready.get()
        self.url, self.cert = url, Path(cert)

    @property
    def connections(self) -> int:
        """TCP connections the server accepted so far."""
        with self._counter.get_lock():
            return int(self._counter.value)

    def close(self) -> None:
        """Stop the child process."""
        self._stop.set()
        self._process.join(10)
        if self._process.is_alive():
            self._process.kill()


@contextmanager
def _https_server(latency: float) -> Iterator[_ServerProcess]:
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as tmp:
        server = _ServerProcess(Path(tmp), latency)
        try:
            yield server
        finally:
            server.close()


class _Discards(logging.Handler):
    """Counts urllib3's "Connection pool is full, discarding connection" warnings."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        if "Connection pool is full" in record.getMessage():
            self.count += 1


def bench_https(
    server: _ServerProcess, discards: _Discards, concurrency: int, *, baseline: bool, rounds: int
) -> tuple[float, float, float, float]:
    """Median seconds of a batch of 100 after a warm-up one; per batch: connections opened,
    connections discarded, and this process's CPU seconds (median).

    ``baseline``: twilio's own ``TwilioHttpClient`` (version 0.1's pool), else
    the client's default HTTP client.
    """
    http_client = TwilioHttpClient(timeout=30) if baseline else None
    client = CommunicationsClient(
        _settings(), repository=InMemoryRepository(), http_client=http_client
    )

    def batch() -> tuple[float, float]:
        start, cpu = time.perf_counter(), time.process_time()
        report = client.send_batch(_messages(HTTPS_BATCH), max_concurrency=concurrency)
        elapsed, cpu = time.perf_counter() - start, time.process_time() - cpu
        if report.succeeded != HTTPS_BATCH:
            errors = {item.error for item in report.items if not item.ok}
            raise SystemExit(f"HTTPS batch failed: {report.failed} items: {errors}")
        return elapsed, cpu

    batch()  # warm-up: imports, the REST client, the first connections
    connections, discarded = server.connections, discards.count
    times = [batch() for _ in range(rounds)]
    return (
        statistics.median(wall for wall, _ in times),
        (server.connections - connections) / rounds,
        (discards.count - discarded) / rounds,
        statistics.median(cpu for _, cpu in times),
    )


def run_https(rounds: int) -> None:
    """The HTTP pool table: each concurrency, 0.1's pool beside the default client's."""
    pool_log = logging.getLogger("urllib3.connectionpool")
    discards = _Discards()
    pool_log.addHandler(discards)
    pool_log.propagate = False  # counted, not printed
    twilio_pool = min(32, (os.cpu_count() or 1) + 4)
    header = (
        f"{'concurrency':>11}  {'floor s':>7}  {'v0.1 s':>6}  {'x floor':>7}  {'conns':>5}  "
        f"{'discards':>8}  {'v0.2 s':>6}  {'x floor':>7}  {'conns':>5}  {'discards':>8}  "
        f"{'cpu s':>5}  target"
    )
    with _https_server(LATENCY) as server, redirected_twilio(server):
        print(
            f"HTTPS: batch of {HTTPS_BATCH} through twilio's TwilioHttpClient to a local TLS "
            f"server, {LATENCY * 1000:.0f} ms per answer; median of {rounds} batches after "
            f"a warm-up; conns = TCP connections opened per batch, discards = urllib3 "
            f"'Connection pool is full' per batch; cpu = this process's CPU seconds per "
            f"v0.2 batch; v0.1 = twilio's pool of {twilio_pool} "
            f"(min(32, cpu + 4), {os.cpu_count()} CPUs)"
        )
        print(header)
        for concurrency in HTTPS_CONCURRENCY:
            floor = LATENCY * math.ceil(HTTPS_BATCH / concurrency)
            old, old_conns, old_discards, _ = bench_https(
                server, discards, concurrency, baseline=True, rounds=rounds
            )
            new, new_conns, new_discards, cpu = bench_https(
                server, discards, concurrency, baseline=False, rounds=rounds
            )
            verdict = "met" if new / floor <= HTTPS_TARGET else "MISSED"
            print(
                f"{concurrency:>11}  {floor:>7.1f}  {old:>6.3f}  {old / floor:>6.2f}x  "
                f"{old_conns:>5.0f}  {old_discards:>8.0f}  {new:>6.3f}  {new / floor:>6.2f}x  "
                f"{new_conns:>5.0f}  {new_discards:>8.0f}  {cpu:>5.2f}  "
                f"<= {HTTPS_TARGET}x {verdict}"
            )
    pool_log.removeHandler(discards)
    pool_log.propagate = True


def _messages(n: int, start: int = 0) -> list[OutboundMessage]:
    return [
        OutboundMessage(to=f"+5511990{i:06d}", body=f"Visita confirmada #{i}", prospect_id=f"p{i}")
        for i in range(start, start + n)
    ]


def _warm(client: CommunicationsClient) -> None:
    """Build the client's REST client and warm imports outside the timings (one send)."""
    client.send_sms("+5511990999999", "warm-up")


def bench_sequential(n: int) -> float:
    """The earlier service's loop: one ``send_sms`` after another."""
    client = _client()
    _warm(client)
    start = time.perf_counter()
    for message in _messages(n):
        assert message.body is not None
        client.send_sms(message.to, message.body, prospect_id=message.prospect_id)
    return time.perf_counter() - start


def bench_batch(n: int, concurrency: int) -> float:
    """One ``send_batch`` of ``n`` with ``concurrency`` workers; every item must succeed."""
    client = _client()
    _warm(client)
    start = time.perf_counter()
    report = client.send_batch(_messages(n), max_concurrency=concurrency)
    elapsed = time.perf_counter() - start
    if report.succeeded != n:
        raise SystemExit(f"batch failed: {report.failed} of {n} items failed")
    return elapsed


def bench_rate(total: int, per_batch: int, rate: float, concurrency: int) -> float:
    """``total`` messages in batches of ``per_batch`` sharing one bucket; seconds taken."""
    client = _client()
    _warm(client)
    bucket = TokenBucket(rate)
    start = time.perf_counter()
    sent = 0
    for first in range(0, total, per_batch):
        report = client.send_batch(
            _messages(per_batch, first), max_concurrency=concurrency, rate_per_second=bucket
        )
        sent += report.succeeded
    elapsed = time.perf_counter() - start
    if sent != total:
        raise SystemExit(f"rate run failed: {total - sent} of {total} items failed")
    return elapsed


def _pending(n: int) -> list[Communication]:
    return [
        Communication(
            id=uuid.uuid4().hex,
            prospect_id=f"p{i}",
            channel=Channel.SMS,
            to=f"+5511990{i:06d}",
            from_="+15005550006",
            body=f"Visita confirmada #{i}",
        )
        for i in range(n)
    ]


def bench_firestore(n: int, rounds: int) -> tuple[float, float]:
    """Best of ``rounds``: seconds for ``n`` single ``add`` calls, and for one ``add_many``."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-firestore-") as tmp,
        firestore_emulator(Path(tmp)) as host,
    ):
        os.environ["FIRESTORE_EMULATOR_HOST"] = host
        os.environ.setdefault("GRPC_VERBOSITY", "ERROR")  # no INFO lines about the shutdown
        from google.cloud import firestore  # noqa: PLC0415 - only when the emulator runs

        from servio_twilio.storage.firestore.repository import FirestoreRepository  # noqa: PLC0415

        db: Any = firestore.Client(project="demo-servio-bench")
        best_single = best_bulk = float("inf")
        for r in range(rounds + 1):
            repo = FirestoreRepository(db, collection=f"bench-{uuid.uuid4().hex[:12]}")
            records = _pending(n)
            start = time.perf_counter()
            for record in records:
                repo.add(record)
            single = time.perf_counter() - start
            repo = FirestoreRepository(db, collection=f"bench-{uuid.uuid4().hex[:12]}")
            records = _pending(n)
            start = time.perf_counter()
            repo.add_many(records)
            bulk = time.perf_counter() - start
            if r:  # the first round warms the channel and caches
                best_single, best_bulk = min(best_single, single), min(best_bulk, bulk)
        db.close()
        return best_single, best_bulk


def run_fake(rows: list[tuple[str, int, float, str]]) -> None:
    """The FakeTwilio rows: the earlier service's loop, one batch, the shared rate cap."""
    sequential = bench_sequential(100)
    rows.append(("sequential send_sms loop (earlier service)", 100, sequential, ""))
    batch = bench_batch(100, 20)
    floor = 100 / 20 * LATENCY
    rows.append(
        (
            "send_batch, max_concurrency=20",
            100,
            batch,
            f"{sequential / batch:.1f}x faster; {batch / floor:.2f}x the {floor:.1f} s floor",
        )
    )
    rated = bench_rate(1000, 100, 50.0, 20)
    achieved = 1000 / rated
    rows.append(
        (
            "10 x send_batch(100), one TokenBucket(50)",
            1000,
            rated,
            f"{achieved:.1f}/s achieved ({(achieved - 50) / 50:+.1%} from 50/s)",
        )
    )


def run_firestore(rows: list[tuple[str, int, float, str]], rounds: int) -> None:
    """The Firestore emulator rows: 100 single adds beside one add_many."""
    try:
        single, bulk = bench_firestore(100, rounds)
    except EmulatorUnavailable as exc:
        rows.append((f"Firestore emulator: skipped ({exc})", 100, float("nan"), ""))
    else:
        rows.append(("Firestore emulator: 100 x add", 100, single, ""))
        rows.append(
            (
                "Firestore emulator: 1 x add_many",
                100,
                bulk,
                f"{single / bulk:.1f}x faster than adds",
            )
        )


def _print(rows: list[tuple[str, int, float, str]]) -> None:
    print(f"FakeTwilio latency {LATENCY * 1000:.0f} ms per request")
    width = max(len(row[0]) for row in rows)
    print(f"{'scenario':<{width}}  {'msgs':>5}  {'seconds':>8}  {'msgs/s':>7}  note")
    for name, count, seconds, note in rows:
        rate = count / seconds if seconds == seconds and seconds > 0 else float("nan")
        print(f"{name:<{width}}  {count:>5}  {seconds:>8.3f}  {rate:>7.1f}  {note}")


def main() -> None:
    """Run the scenarios asked for (all by default) and print their tables."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--firestore-rounds", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=3, help="HTTPS batches measured per row")
    parser.add_argument("--only", choices=["https", "fake", "firestore"])
    args = parser.parse_args()

    if args.only in {None, "https"}:
        run_https(args.rounds)
    if args.only == "https":
        return
    if args.only is None:
        print()
    rows: list[tuple[str, int, float, str]] = []
    if args.only in {None, "fake"}:
        run_fake(rows)
    if args.only in {None, "firestore"}:
        run_firestore(rows, args.firestore_rounds)
    _print(rows)


if __name__ == "__main__":
    main()
