"""Batch sending: send_batch beside the earlier service's loop, the rate cap, the bulk write.

Run: ``python bench/batch.py``. Everything goes through `FakeTwilio` with
200 ms of latency per request (Twilio's usual answer time), in one run:

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
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

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
TESTS_DIR = Path(__file__).resolve().parent.parent / "tests"
EMULATOR_SCRIPT = TESTS_DIR / "firestore_emulator.js"
EMULATOR_PACKAGE = TESTS_DIR / "node_modules" / "@firestore-emulator" / "server"
EMULATOR_READY_TIMEOUT = 30.0


def _client(latency: float = LATENCY) -> CommunicationsClient:
    settings = TwilioSettings(
        account_sid=ACCOUNT,
        auth_token="0123456789abcdef0123456789abcdef",
        phone_number="+15005550006",
        whatsapp_number="+14155238886",
        webhook_base_url="https://api.servio.test/api/twilio/webhook",
    )
    return CommunicationsClient(
        settings, repository=InMemoryRepository(), http_client=FakeTwilio(latency=latency)
    )


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


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def _emulator() -> Iterator[str]:
    """Start the Firestore emulator on a free port; yield ``host:port``; stop it."""
    node = shutil.which("node")
    if node is None:
        raise RuntimeError("`node` is not on PATH")
    if not EMULATOR_PACKAGE.is_dir():
        raise RuntimeError(f"{EMULATOR_PACKAGE} is missing (run `npm ci` in tests/)")
    with tempfile.TemporaryDirectory(prefix="bench-firestore-") as tmp:
        log_path = Path(tmp) / "emulator.log"
        port = _free_port()
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [node, str(EMULATOR_SCRIPT), str(port)],
                cwd=TESTS_DIR,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            deadline = time.monotonic() + EMULATOR_READY_TIMEOUT
            while f"ready {port}" not in log_path.read_text(errors="replace"):
                if process.poll() is not None or time.monotonic() > deadline:
                    tail = log_path.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"the emulator did not start: {tail}")
                time.sleep(0.05)
            yield f"127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)


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
    with _emulator() as host:
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


def main() -> None:
    """Run every scenario and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--firestore-rounds", type=int, default=3)
    args = parser.parse_args()

    rows: list[tuple[str, int, float, str]] = []
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
    try:
        single, bulk = bench_firestore(100, args.firestore_rounds)
    except RuntimeError as exc:
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

    print(f"FakeTwilio latency {LATENCY * 1000:.0f} ms per request")
    width = max(len(row[0]) for row in rows)
    print(f"{'scenario':<{width}}  {'msgs':>5}  {'seconds':>8}  {'msgs/s':>7}  note")
    for name, count, seconds, note in rows:
        rate = count / seconds if seconds == seconds and seconds > 0 else float("nan")
        print(f"{name:<{width}}  {count:>5}  {seconds:>8.3f}  {rate:>7.1f}  {note}")


if __name__ == "__main__":
    main()
