"""Firestore round trips: RPCs and wall time per operation, this library beside 0.1.

Run: ``python bench/firestore.py [--reps N] [--batch-reps N] [--rounds N]``.

Each operation runs on the real ``google.cloud.firestore.Client`` against the
Firestore emulator (``node tests/firestore_emulator.js PORT``, started here on
a free port of 127.0.0.1, a fresh one for every measuring process), with a
gRPC interceptor on the client's channel counting the RPCs the emulator
receives:

- ``send_sms`` through ``CommunicationsClient`` with `FakeTwilio` (no latency);
- a status callback ("delivered") found by SID only (no ``cid``), one
  through ``?cid=`` to a record that has its SID, and one through ``?cid=``
  to a pending record that has none yet (a callback that overtakes the
  merge of Twilio's answer: 0.1 found it only after a SID query missed), and
  an inbound message, each POSTed signed to the WSGI webhook app through
  ``httpx.WSGITransport``;
- ``send_batch`` of 100 at ``max_concurrency=10``;
- ``repository.history`` of a prospect with ``--reps + 2`` records.

The same measuring code (``--worker``, which prints JSON) runs in one
subprocess for this checkout's ``src`` and one for version 0.1 (commit
``243cb70``, extracted with ``git archive`` into a temporary directory), each
first on ``PYTHONPATH``; a round runs the two back to back, which goes first
alternating from round to round. Each process first warms the emulator with
the same plain client calls (0.1 makes far more RPCs, and would otherwise
leave a warmer emulator for its later operations), then runs every operation
twice unmeasured. RPC counts are behaviour (the same in every repetition but
for a batch, whose merges group as Twilio's answers arrive); times are the
median of every repetition, and the ratio now / 0.1 is the figure to
compare, with the range of the rounds' own ratios: the machine is shared.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

from emulator import firestore_emulator
from git_tree import extract_src

ROOT = Path(__file__).resolve().parent.parent
EMULATOR_WARM_ROUNDS = 200
BASELINE = "243cb70"
PROJECT = "demo-servio-bench"

ACCOUNT = "AC" + "1" * 32
TOKEN = "bench-auth-token-0123456789abcdef"
PHONE = "+15005550006"
WHATSAPP = "+14155238886"
BASE = "https://api.servio.test/api/twilio/webhook"
TO = "+5511999999999"

# (key, label, floor): the floors issue 11 sets (DESIGN.md's "Round trips").
OPERATIONS: tuple[tuple[str, str, int], ...] = (
    ("send", "send_sms", 4),
    ("callback_sid", "status callback by SID", 3),
    ("callback_cid", "status callback through cid", 3),
    ("callback_pending", "callback through cid, SID not stored yet", 3),
    ("inbound", "inbound message", 3),
    ("batch", "send_batch of 100 (concurrency 10)", 110),
    ("history", "history", 1),
)


# --- the measuring side: runs in a subprocess, once per version -------------------------------


def _counted_client() -> tuple[Any, Any]:
    """A real Firestore client on the emulator and a counter of the RPCs its channel makes."""
    from rpc_counter import counted_client  # noqa: PLC0415 - only in the measuring process

    return counted_client(PROJECT)


def _status_params(message_sid: str, status: str) -> dict[str, str]:
    return {
        "AccountSid": ACCOUNT,
        "ApiVersion": "2010-04-01",
        "From": PHONE,
        "MessageSid": message_sid,
        "MessageStatus": status,
        "SmsSid": message_sid,
        "SmsStatus": status,
        "To": TO,
    }


def _inbound_params(message_sid: str) -> dict[str, str]:
    return {
        "AccountSid": ACCOUNT,
        "ApiVersion": "2010-04-01",
        "Body": "Oi, confirmo a visita",
        "From": TO,
        "MessageSid": message_sid,
        "NumMedia": "0",
        "SmsMessageSid": message_sid,
        "SmsSid": message_sid,
        "To": PHONE,
    }


def _warm_emulator(db: Any, rounds: int) -> None:
    """Plain client calls on a collection of their own, so the emulator (V8) is warm.

    Without it the version making fewer RPCs leaves the emulator less warmed up
    for the operations measured later, and those run slower for it alone.
    """
    from google.cloud import firestore  # noqa: PLC0415 - only in the measuring process

    collection = db.collection(f"warm-{uuid.uuid4().hex[:12]}")
    for i in range(rounds):
        document = collection.document(f"d{i}")
        document.set({"prospectId": f"w{i % 10}", "timestamp": i, "body": "warm-up"})
        document.get()
        query = collection.where(filter=firestore.FieldFilter("prospectId", "==", f"w{i % 10}"))
        list(query.order_by("timestamp").limit(50).stream())


def measure(reps: int, batch_reps: int, warmups: int = 2) -> dict[str, Any]:
    """Every operation on the emulator: its RPCs by method and seconds, per repetition.

    Uses only names that 0.1 and the current code both export from
    ``servio_twilio``, ``servio_twilio.firestore`` and ``servio_twilio.testing``,
    so the very same code measures both.
    """
    import httpx  # noqa: PLC0415 - only in the measuring process

    import servio_twilio  # noqa: PLC0415
    from servio_twilio import (  # noqa: PLC0415
        Channel,
        Communication,
        CommunicationsClient,
        OutboundMessage,
        TwilioSettings,
        WebhookVerifier,
        make_wsgi_app,
    )
    from servio_twilio.firestore import FirestoreRepository  # noqa: PLC0415
    from servio_twilio.testing import FakeTwilio, signed_webhook  # noqa: PLC0415

    db, counter = _counted_client()
    _warm_emulator(db, EMULATOR_WARM_ROUNDS)
    repository = FirestoreRepository(db, collection=f"bench-{uuid.uuid4().hex[:12]}", timeout=15.0)
    settings = TwilioSettings(
        account_sid=ACCOUNT,
        auth_token=TOKEN,
        phone_number=PHONE,
        whatsapp_number=WHATSAPP,
        webhook_base_url=BASE,
    )
    client = CommunicationsClient(settings, repository=repository, http_client=FakeTwilio())
    app = make_wsgi_app(
        verifier=WebhookVerifier(TOKEN), repository=repository, public_base_url=BASE
    )
    http = httpx.Client(transport=httpx.WSGITransport(app=app), base_url="http://testserver")
    inbound_sids = iter(f"SM{n:032x}" for n in range(1, 1_000_000))

    def sample(run: Callable[[], Any]) -> tuple[dict[str, int], float]:
        counter.take()
        start = time.perf_counter()
        run()
        seconds = time.perf_counter() - start
        return counter.take(), seconds

    def post(route: str, params: dict[str, str], query: str, status: int) -> Callable[[], None]:
        """A prepared, signed delivery: signing stays outside the timing."""
        target = route + ("?" + query if query else "")
        headers, body = signed_webhook(BASE + target, params, TOKEN)

        def deliver() -> None:
            code = http.post(target, content=body, headers=headers).status_code
            if code != status:
                raise SystemExit(f"{target} answered {code}, not {status}")

        return deliver

    def send() -> Callable[[], None]:
        def run() -> None:
            client.send_sms(TO, "Visita confirmada", prospect_id="p-send")

        return run

    def callback(by_cid: bool) -> Callable[[], None]:
        result = client.send_sms(TO, "Visita confirmada", prospect_id="p-callback")
        query = f"cid={result.communication_id}" if by_cid else ""
        return post("/message-status", _status_params(result.sid, "delivered"), query, 204)

    def callback_pending() -> Callable[[], None]:
        record = repository.add(
            Communication(
                id=uuid.uuid4().hex,
                prospect_id="p-callback",
                channel=Channel.SMS,
                to=TO,
                from_=PHONE,
                body="Visita confirmada",
            )
        )
        params = _status_params(f"SM{uuid.uuid4().hex}", "delivered")
        return post("/message-status", params, f"cid={record.id}", 204)

    def inbound() -> Callable[[], None]:
        return post("/inbound", _inbound_params(next(inbound_sids)), "", 200)

    def batch() -> Callable[[], None]:
        messages = [
            OutboundMessage(to=TO, body=f"Visita confirmada #{i}", prospect_id="p-batch")
            for i in range(100)
        ]

        def run() -> None:
            report = client.send_batch(messages, max_concurrency=10)
            if report.succeeded != 100:
                raise SystemExit(f"batch: {report.failed} of 100 items failed")

        return run

    def history() -> Callable[[], None]:
        def run() -> None:
            if not repository.history("p-send"):
                raise SystemExit("history: no record of p-send")

        return run

    prepare: dict[str, Callable[[], Callable[[], None]]] = {
        "send": send,
        "callback_sid": lambda: callback(by_cid=False),
        "callback_cid": lambda: callback(by_cid=True),
        "callback_pending": callback_pending,
        "inbound": inbound,
        "batch": batch,
        "history": history,
    }
    results: dict[str, Any] = {}
    for key, _label, _floor in OPERATIONS:
        count = batch_reps if key == "batch" else reps
        rpcs: list[dict[str, int]] = []
        seconds: list[float] = []
        for rep in range(warmups + count):
            methods, elapsed = sample(prepare[key]())
            if rep >= warmups:
                rpcs.append(methods)
                seconds.append(elapsed)
        results[key] = {"rpcs": rpcs, "seconds": seconds}
    http.close()
    db.close()
    return {"module": servio_twilio.__file__, "operations": results}


# --- the driving side: the emulator, the 0.1 tree, the table ----------------------------------


def _run_worker(src: Path, workdir: Path, reps: int, batch_reps: int) -> dict[str, Any]:
    """``measure`` in a fresh interpreter with ``src`` first on its path, on a fresh emulator."""
    env = dict(os.environ, PYTHONPATH=str(src))
    env.setdefault("GRPC_VERBOSITY", "ERROR")  # no INFO lines about the channel's shutdown
    with firestore_emulator(workdir) as host:
        env["FIRESTORE_EMULATOR_HOST"] = host
        done = subprocess.run(
            [
                sys.executable,
                str(Path(__file__).resolve()),
                "--worker",
                "--reps",
                str(reps),
                "--batch-reps",
                str(batch_reps),
            ],
            env=env,
            cwd=workdir,
            capture_output=True,
            text=True,
            check=False,
        )
    if done.returncode != 0:
        raise SystemExit(f"the measuring process failed:\n{done.stderr[-4000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    if not Path(result["module"]).resolve().is_relative_to(src.resolve()):
        raise SystemExit(f"measured {result['module']}, not the code under {src}")
    return result


def _describe_src() -> str:
    """Which code "now" is: the checkout's commit, and whether ``src`` differs from it."""
    git = ["git", "-C", str(ROOT)]
    head = subprocess.run(
        [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
    ).stdout.strip()
    dirty = subprocess.run(
        [*git, "status", "--porcelain", "--", "src"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return f"src at {head or 'an unknown commit'}" + (" with uncommitted changes" if dirty else "")


def _rpcs(samples: list[dict[str, int]]) -> str:
    totals = sorted({sum(methods.values()) for methods in samples})
    return str(totals[0]) if len(totals) == 1 else f"{totals[0]}-{totals[-1]}"


def _methods(samples: list[dict[str, int]]) -> str:
    """The most common breakdown by method, e.g. ``Begin 1 + BatchGet 1 + Commit 1``."""
    shapes = Counter(json.dumps(methods, sort_keys=True) for methods in samples)
    common: dict[str, int] = json.loads(shapes.most_common(1)[0][0])
    short = {"BeginTransaction": "Begin", "BatchGetDocuments": "BatchGet"}
    return " + ".join(f"{short.get(name, name)} {n}" for name, n in sorted(common.items()))


def main(argv: list[str] | None = None) -> int:
    """Measure both versions and print one table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--reps", type=int, default=20, help="repetitions of each single op")
    parser.add_argument("--batch-reps", type=int, default=3, help="batches of 100 per round")
    parser.add_argument(
        "--rounds", type=int, default=4, help="processes per version, the order alternating"
    )
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(measure(args.reps, args.batch_reps)))
        return 0

    versions = ("0.1", "now")
    pooled: dict[str, dict[str, dict[str, list[Any]]]] = {
        version: {key: {"rpcs": [], "seconds": []} for key, _, _ in OPERATIONS}
        for version in versions
    }
    # One ratio per round and operation: the two processes of a round run back to back.
    round_ratios: dict[str, list[float]] = {key: [] for key, _, _ in OPERATIONS}
    now = _describe_src()
    with tempfile.TemporaryDirectory(prefix="bench-firestore-") as tmp:
        workdir = Path(tmp)
        sources = {"0.1": extract_src(BASELINE, workdir / "baseline"), "now": ROOT / "src"}
        for round_ in range(args.rounds):
            order = versions if round_ % 2 == 0 else versions[::-1]
            medians: dict[str, dict[str, float]] = {}
            for version in order:
                result = _run_worker(sources[version], workdir, args.reps, args.batch_reps)
                medians[version] = {}
                for key, values in result["operations"].items():
                    for field in ("rpcs", "seconds"):
                        pooled[version][key][field].extend(values[field])
                    medians[version][key] = statistics.median(values["seconds"])
            for key, ratios in round_ratios.items():
                ratios.append(medians["now"][key] / medians["0.1"][key])

    print(
        f"Firestore emulator, real client, FakeTwilio (no latency); {args.rounds} rounds of one "
        f"process per version, {args.reps} reps per op ({args.batch_reps} per batch) each"
    )
    print(f"0.1 = commit {BASELINE}; now = {now}")
    print("ms: median of all reps; now/0.1: of the pooled medians, then the rounds' range")
    width = max(len(label) for _, label, _ in OPERATIONS)
    print(
        f"{'operation':<{width}}  {'RPCs 0.1':>8}  {'RPCs now':>8}  {'floor':>5}  "
        f"{'ms 0.1':>8}  {'ms now':>8}  {'now/0.1':>7}  rounds"
    )
    for key, label, floor in OPERATIONS:
        old, new = pooled["0.1"][key], pooled["now"][key]
        old_ms = statistics.median(old["seconds"]) * 1000
        new_ms = statistics.median(new["seconds"]) * 1000
        low, high = min(round_ratios[key]), max(round_ratios[key])
        print(
            f"{label:<{width}}  {_rpcs(old['rpcs']):>8}  {_rpcs(new['rpcs']):>8}  {floor:>5}  "
            f"{old_ms:>8.2f}  {new_ms:>8.2f}  {new_ms / old_ms:>6.2f}x  {low:.2f}-{high:.2f}x"
        )
    print("RPCs by method (the most common breakdown):")
    for key, label, _floor in OPERATIONS:
        old, new = pooled["0.1"][key], pooled["now"][key]
        print(f"  {label:<{width}}  0.1: {_methods(old['rpcs'])}")
        print(f"  {'':<{width}}  now: {_methods(new['rpcs'])}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
