"""Webhook throughput: the ASGI app in process, and under uvicorn on loopback.

1. In process: signed status callbacks driven straight into the ASGI callable
   (in-memory repository), beside a trivial ASGI app driven the same way.
2. Under uvicorn on 127.0.0.1, with h11 and with ``uvicorn[standard]``
   (httptools + uvloop): a bounded keep-alive HTTP/1.1 load generator
   (threads, one connection each) against the webhook app, a hand-written
   "floor" receiver and an empty ASGI app on the same server; the webhook's
   share of each, and its own CPU per callback (the server's CPU per request
   above the empty app's).

Run: ``python bench/webhook.py [--callbacks N] [--requests N] [--connections N]``.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import hmac
import http.client
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote_to_bytes

import uvicorn

from servio_twilio.storage.memory import InMemoryRepository
from servio_twilio.testing import signed_webhook
from servio_twilio.webhooks.asgi import make_asgi_app
from servio_twilio.webhooks.verifier import WebhookVerifier

TOKEN = "bench-auth-token-0123456789abcdef"
BASE = "https://hooks.servio.test/api/twilio/webhook"
STATUSES = ("queued", "sent", "delivered", "read")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
App = Callable[
    [Scope, Callable[[], Awaitable[Message]], Callable[[Message], Awaitable[None]]], Awaitable[None]
]


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
        headers, body = signed_webhook(f"{BASE}/message-status?{query}", params, TOKEN)
        prepared.append((query.encode(), headers["X-Twilio-Signature"].encode(), body))
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


_FLOOR_RANK = {"queued": 3, "sent": 5, "delivered": 7, "read": 8}


def _floor_app() -> App:
    """A lower bound, not a receiver: the least any status-callback receiver must do.

    Decode the form, check the HMAC, move the record's status up, keep the
    callback; written inline on plain dicts, with no validation, no content
    checks, no locking, no error handling and no typed record. It tells what
    share of the empty app is left once the unavoidable work is paid for.
    """
    key_state = hmac.new(TOKEN.encode(), digestmod=hashlib.sha1)
    records: dict[str, dict[str, Any]] = {}
    events: dict[str, list[dict[str, Any]]] = {}
    url_head = BASE + "/message-status?"

    async def floor_app(
        scope: Scope,
        receive: Callable[[], Awaitable[Message]],
        send: Callable[[Message], Awaitable[None]],
    ) -> None:
        if scope["type"] == "lifespan":
            await _empty_app(scope, receive, send)
            return
        signature = b""
        for name, value in scope["headers"]:
            if name == b"x-twilio-signature":
                signature = value
        body = (await receive())["body"]
        pieces = unquote_to_bytes(body.replace(b"+", b" ")).decode().split("&")
        params = {name: value for name, _, value in (p.partition("=") for p in pieces)}
        signed = url_head + scope["query_string"].decode()
        signed += "".join([name + value for name, value in sorted(params.items())])
        digest = key_state.copy()
        digest.update(signed.encode())
        status = 204
        if not hmac.compare_digest(base64.b64encode(digest.digest()), signature):
            status = 403
        else:
            sid, new = params["MessageSid"], params["MessageStatus"]
            now = datetime.now(UTC)
            record = records.get(sid) or {"sid": sid, "status": "unknown"}
            if _FLOOR_RANK.get(new, 1) > _FLOOR_RANK.get(record["status"], 1):
                records[sid] = {**record, "status": new, "updatedAt": now}
            kept = {"receivedAt": now.isoformat(), "params": dict(params)}
            events.setdefault(sid, []).append(kept)
        await send({"type": "http.response.start", "status": status, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    return floor_app


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

    def __init__(self, which: str, http: str) -> None:
        self.which = which
        self.http = http
        self.process: subprocess.Popen[str] | None = None
        self.port = 0

    def __enter__(self) -> _Server:
        self.process = subprocess.Popen(
            [sys.executable, __file__, "--serve", self.which, "--http", self.http],
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


def _serve(which: str, http: str) -> None:
    """Run uvicorn on a free 127.0.0.1 port; print the port once listening."""
    apps: dict[str, Callable[[], App]] = {
        "webhook": lambda: _webhook_app()[0],
        "floor": _floor_app,
        "empty": lambda: _empty_app,
    }
    app = apps[which]()
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    loop = "uvloop" if http == "httptools" else "asyncio"
    config = uvicorn.Config(
        app, log_level="warning", access_log=False, lifespan="on", http=http, loop=loop
    )
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


_APPS = ("empty", "floor", "webhook")


_SERVERS = ("h11", "httptools")


def over_http(
    count: int, connections: int, max_seconds: float, rounds: int, http: str
) -> dict[str, Any]:
    """Rounds that each run every app (the order rotating): req/s and server CPU.

    These machines are shared, so a single run can be off by a quarter: each
    round measures the apps back to back and gives one ratio per app, and the
    median of the rounds' ratios is reported with their range. The throughput
    ratio depends on whether the load generator or the server is the
    bottleneck; the server's CPU per request (from ``/proc``) does not: it is
    the server capacity each app leaves.
    """
    prepared = _callbacks(count)
    rates: dict[str, list[float]] = {name: [] for name in _APPS}
    cpu: dict[str, list[float]] = {name: [] for name in _APPS}
    for round_ in range(rounds):
        shift = round_ % len(_APPS)
        for which in _APPS[shift:] + _APPS[:shift]:
            with _Server(which, http) as server:
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
    result: dict[str, Any] = {}
    for name in _APPS:
        shares = [mine / empty for mine, empty in zip(rates[name], rates["empty"], strict=True)]
        result[name] = {"rate": statistics.median(rates[name]), "shares": sorted(shares)}
        if len(cpu[name]) == len(cpu["empty"]) == rounds:
            capacities = [empty / mine for mine, empty in zip(cpu[name], cpu["empty"], strict=True)]
            result[name]["cpu_us"] = statistics.median(cpu[name])
            result[name]["capacities"] = sorted(capacities)
    return result


def _ratio(values: list[float]) -> str:
    """The median of per-round ratios, with their range."""
    return f"{statistics.median(values):4.0%} ({values[0]:.0%}-{values[-1]:.0%})"


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
    parser.add_argument("--serve", choices=_APPS, help=argparse.SUPPRESS)
    parser.add_argument("--http", choices=_SERVERS, default="h11", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        _serve(args.serve, args.http)
        return 0

    local = in_process(args.callbacks, args.rounds)
    print(f"in process  ({args.callbacks} signed callbacks, median of {args.rounds}):")
    print(f"  webhook app  {local['webhook']:>10,.0f} callbacks/s   (target >= 10,000)")
    print(f"  empty app    {local['empty']:>10,.0f} requests/s")
    for server_kind in _SERVERS:
        remote = over_http(
            args.requests, args.connections, args.max_seconds, args.http_rounds, server_kind
        )
        print(
            f"uvicorn ({server_kind}) on 127.0.0.1 ({args.requests} requests per app x "
            f"{args.http_rounds} rounds, {args.connections} keep-alive connections; medians, "
            "with the rounds' range):"
        )
        print("  app       requests/s   share of empty    server CPU/request   capacity share")
        for name in _APPS:
            row = remote[name]
            cpu = f"{row['cpu_us']:8.0f} us" if "cpu_us" in row else "         n/a"
            capacity = _ratio(row["capacities"]) if "capacities" in row else "n/a"
            print(
                f"  {name:8} {row['rate']:>11,.0f}   {_ratio(row['shares']):15}  {cpu:>17}"
                f"      {capacity}"
            )
        webhook, floor, empty = remote["webhook"], remote["floor"], remote["empty"]
        print(
            f"  servio / empty {webhook['rate'] / empty['rate']:.2f}x req/s; "
            f"servio / hand-written floor {webhook['rate'] / floor['rate']:.2f}x req/s"
        )
        if "cpu_us" in webhook and "cpu_us" in floor and "cpu_us" in empty:
            print(
                f"  servio's own CPU per callback: {webhook['cpu_us'] - empty['cpu_us']:.0f} us "
                f"(floor: {floor['cpu_us'] - empty['cpu_us']:.0f} us); servio costs "
                f"{webhook['cpu_us'] / floor['cpu_us']:.2f}x the floor's server CPU"
            )
    print("  floor = a hand-written receiver: the least any receiver must do")
    return 0


if __name__ == "__main__":
    sys.exit(main())
