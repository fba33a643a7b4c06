"""Webhook throughput: the ASGI app in process, and under uvicorn on loopback.

1. In process: signed status callbacks driven straight into the ASGI callable
   (in-memory repository), beside a trivial ASGI app driven the same way.
2. Under uvicorn on 127.0.0.1: a bounded keep-alive HTTP/1.1 load generator
   (threads, one connection each) against the webhook app, then against an
   empty ASGI app on the same server; the webhook's share of the empty rate.

Run: ``python bench/webhook.py [--callbacks N] [--requests N] [--connections N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any
from urllib.parse import urlencode

import uvicorn
from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from servio_twilio.asgi import make_asgi_app
from servio_twilio.memory import InMemoryRepository
from servio_twilio.verifier import WebhookVerifier

TOKEN = "bench-auth-token-0123456789abcdef"
BASE = "https://hooks.servio.test/api/twilio/webhook"
STATUSES = ("queued", "sent", "delivered", "read")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
App = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


def _sign(url: str, params: dict[str, str]) -> str:
    signature: str = RequestValidator(TOKEN).compute_signature(url, params)
    return signature


def _callbacks(count: int) -> list[tuple[bytes, bytes, bytes]]:
    """``count`` signed status callbacks: (query, signature, body), four per message."""
    prepared = []
    for n in range(count):
        message_sid = f"SM{n // len(STATUSES):032x}"
        params = {
            "AccountSid": "AC" + "a" * 32,
            "ApiVersion": "2010-04-01",
            "From": "+15005550006",
            "MessageSid": message_sid,
            "MessageStatus": STATUSES[n % len(STATUSES)],
            "SmsSid": message_sid,
            "SmsStatus": STATUSES[n % len(STATUSES)],
            "To": "+5511999999999",
        }
        query = f"cid=c{n // len(STATUSES)}"
        signature = _sign(f"{BASE}/message-status?{query}", params)
        prepared.append((query.encode(), signature.encode(), urlencode(params).encode()))
    return prepared


def _scope(query: bytes, signature: bytes) -> Scope:
    return {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/message-status",
        "raw_path": b"/message-status",
        "root_path": "",
        "query_string": query,
        "headers": [
            (b"host", b"internal:8080"),
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"x-twilio-signature", signature),
        ],
        "server": ("internal", 8080),
    }


async def _drive(app: App, prepared: list[tuple[bytes, bytes, bytes]]) -> tuple[float, int]:
    """Seconds to push every prepared request through ``app``, and how many got 2xx."""
    ok = 0

    async def send(message: Message) -> None:
        nonlocal ok
        if message["type"] == "http.response.start" and 200 <= message["status"] < 300:
            ok += 1

    started = time.perf_counter()
    for query, signature, body in prepared:
        message: Message = {"type": "http.request", "body": body, "more_body": False}

        async def receive(message: Message = message) -> Message:
            return message

        await app(_scope(query, signature), receive, send)
    return time.perf_counter() - started, ok


async def _empty_app(
    scope: Scope,
    receive: Callable[[], Awaitable[Message]],
    send: Callable[[Message], Awaitable[None]],
) -> None:
    if scope["type"] == "lifespan":
        while True:
            event = await receive()
            await send({"type": event["type"] + ".complete"})
            if event["type"] == "lifespan.shutdown":
                return
    await receive()
    await send({"type": "http.response.start", "status": 204, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def _webhook_app() -> tuple[App, InMemoryRepository]:
    repository = InMemoryRepository()
    app = make_asgi_app(
        verifier=WebhookVerifier(TOKEN), repository=repository, public_base_url=BASE
    )
    return app, repository


def in_process(count: int, rounds: int) -> dict[str, float]:
    prepared = _callbacks(count)
    webhook_rates, empty_rates = [], []
    for _ in range(rounds):
        app, repository = _webhook_app()
        seconds, ok = asyncio.run(_drive(app, prepared))
        if ok != count:
            raise SystemExit(f"only {ok} of {count} callbacks were stored")
        if len(repository) != count // len(STATUSES):
            raise SystemExit(f"expected {count // len(STATUSES)} records, got {len(repository)}")
        webhook_rates.append(count / seconds)
        seconds, _ = asyncio.run(_drive(_empty_app, prepared))
        empty_rates.append(count / seconds)
    return {"webhook": statistics.median(webhook_rates), "empty": statistics.median(empty_rates)}


class _Server:
    """uvicorn serving one of this file's apps in a child process (its own GIL)."""

    def __init__(self, which: str) -> None:
        self.which = which
        self.process: subprocess.Popen[str] | None = None
        self.port = 0

    def __enter__(self) -> _Server:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", self.which],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if not line.strip().isdigit():
            self.__exit__()
            raise SystemExit(f"the {self.which} server did not start")
        self.port = int(line)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.process is not None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def _serve(which: str) -> None:
    """Run uvicorn on a free 127.0.0.1 port; print the port once listening."""
    app: App = _webhook_app()[0] if which == "webhook" else _empty_app
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    server = uvicorn.Server(config)

    def announce() -> None:
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        print(sock.getsockname()[1], flush=True)

    threading.Thread(target=announce, daemon=True).start()
    server.run(sockets=[sock])


def _load(
    port: int, prepared: list[tuple[bytes, bytes, bytes]], connections: int, max_seconds: float
) -> tuple[float, int]:
    """Requests per second over ``connections`` keep-alive connections; and the 2xx count."""
    shares = [prepared[i::connections] for i in range(connections)]
    done = [0] * connections
    ok = [0] * connections
    deadline = time.monotonic() + max_seconds
    start = threading.Barrier(connections + 1)

    def worker(index: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        start.wait()
        try:
            for query, signature, body in shares[index]:
                if time.monotonic() > deadline:
                    break
                conn.request(
                    "POST",
                    "/message-status?" + query.decode(),
                    body=body,
                    headers={
                        "Content-Type": "application/x-www-form-urlencoded",
                        "X-Twilio-Signature": signature.decode(),
                    },
                )
                response = conn.getresponse()
                response.read()
                done[index] += 1
                if 200 <= response.status < 300:
                    ok[index] += 1
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(connections)]
    for thread in threads:
        thread.start()
    start.wait()
    began = time.perf_counter()
    for thread in threads:
        thread.join()
    return sum(done) / (time.perf_counter() - began), sum(ok)


def _server_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux ``/proc``), or None elsewhere."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            fields = stat.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def over_http(count: int, connections: int, max_seconds: float, rounds: int) -> dict[str, Any]:
    """Paired rounds, each running both apps (the order alternating): req/s and server CPU.

    These machines are shared, so a single run can be off by a quarter: each
    round measures both apps back to back and gives one ratio, and the median
    of the rounds' ratios is reported with their range. The throughput ratio
    depends on whether the load generator or the server is the bottleneck; the
    server's CPU per request (from ``/proc``) does not: it is the server
    capacity each app leaves.
    """
    prepared = _callbacks(count)
    rates: dict[str, list[float]] = {"webhook": [], "empty": []}
    cpu: dict[str, list[float]] = {"webhook": [], "empty": []}
    for round_ in range(rounds):
        order = ("empty", "webhook") if round_ % 2 == 0 else ("webhook", "empty")
        for which in order:
            with _Server(which) as server:
                assert server.process is not None
                _load(server.port, prepared[: min(300, count)], connections, max_seconds)
                before = _server_cpu_seconds(server.process.pid)
                rate, ok = _load(server.port, prepared, connections, max_seconds)
                after = _server_cpu_seconds(server.process.pid)
            if ok == 0:
                raise SystemExit(f"no request was answered 2xx by the {which} app")
            rates[which].append(rate)
            if before is not None and after is not None:
                cpu[which].append((after - before) / count * 1e6)
    shares = [w / e for w, e in zip(rates["webhook"], rates["empty"], strict=True)]
    result: dict[str, Any] = {name: statistics.median(values) for name, values in rates.items()}
    result["share"] = statistics.median(shares)
    result["shares"] = sorted(shares)
    if len(cpu["webhook"]) == len(cpu["empty"]) == rounds:
        capacities = [e / w for w, e in zip(cpu["webhook"], cpu["empty"], strict=True)]
        result["webhook_cpu_us"] = statistics.median(cpu["webhook"])
        result["empty_cpu_us"] = statistics.median(cpu["empty"])
        result["capacity"] = statistics.median(capacities)
        result["capacities"] = sorted(capacities)
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument(
        "--callbacks", type=int, default=20_000, help="in-process callbacks per round"
    )
    parser.add_argument("--rounds", type=int, default=3, help="in-process rounds (median reported)")
    parser.add_argument(
        "--requests", type=int, default=5_000, help="HTTP requests per app and round"
    )
    parser.add_argument("--connections", type=int, default=8, help="keep-alive connections")
    parser.add_argument("--max-seconds", type=float, default=20.0, help="time bound per HTTP run")
    parser.add_argument(
        "--http-rounds", type=int, default=5, help="paired HTTP rounds (median reported)"
    )
    parser.add_argument("--serve", choices=["webhook", "empty"], help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        _serve(args.serve)
        return 0

    local = in_process(args.callbacks, args.rounds)
    print(f"in process  ({args.callbacks} signed callbacks, median of {args.rounds}):")
    print(f"  webhook app  {local['webhook']:>10,.0f} callbacks/s   (target >= 10,000)")
    print(f"  empty app    {local['empty']:>10,.0f} requests/s")
    remote = over_http(args.requests, args.connections, args.max_seconds, args.http_rounds)
    print(
        f"uvicorn on 127.0.0.1 ({args.requests} requests per app x {args.http_rounds} paired "
        f"rounds, {args.connections} keep-alive connections, medians):"
    )
    print(f"  webhook app  {remote['webhook']:>10,.0f} requests/s")
    print(f"  empty app    {remote['empty']:>10,.0f} requests/s")
    low, high = remote["shares"][0], remote["shares"][-1]
    print(
        f"  webhook / empty = {remote['share']:.0%} (rounds {low:.0%} to {high:.0%})   "
        "(target >= 70%)"
    )
    if "capacity" in remote:
        low, high = remote["capacities"][0], remote["capacities"][-1]
        print(
            f"  server CPU per request: webhook {remote['webhook_cpu_us']:.0f} us, "
            f"empty {remote['empty_cpu_us']:.0f} us -> capacity ratio {remote['capacity']:.0%} "
            f"(rounds {low:.0%} to {high:.0%})"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
