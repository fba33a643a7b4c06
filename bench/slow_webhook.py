"""The server side of ``bench/async.py``'s webhook part: slow storage under uvicorn.

``python bench/slow_webhook.py --repository KIND --delay 0.2 [--max-threads N]``
serves the ASGI webhook app on a free port of 127.0.0.1 (h11, asyncio loop),
prints the port once listening, and serves until terminated. Every call of
its repository first waits ``--delay`` seconds: ``time.sleep`` in a
``blocking`` repository, ``await asyncio.sleep`` in an async one. KIND:

- ``blocking``: an `InMemoryRepository` behind ``time.sleep``, ``blocking = True``;
- ``async``: an `AsyncInMemoryRepository` behind ``asyncio.sleep``;
- ``firestore-async``: ``AsyncFirestoreRepository`` on the emulator
  (``FIRESTORE_EMULATOR_HOST``), behind ``asyncio.sleep``;
- ``firestore-blocking``: ``FirestoreRepository`` on the emulator, behind
  ``time.sleep``.

``--records N`` stored records ``c0`` .. ``c{N-1}`` (SIDs ``SM{n:032x}``,
status ``queued``) exist before the first callback, written without delay,
so each status callback finds its record through ``cid``. ``GET /stats``
answers ``{"calls": ...}``: the repository calls finished so far.

It runs on this checkout's ``src`` and on version 0.1's (``bench/async.py``
puts one or the other first on ``PYTHONPATH``): the top-level imports are
names both versions export, and ``--max-threads`` is only passed to a
``make_asgi_app`` that has it.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import socket
import threading
import time
import uuid
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import uvicorn

from servio_twilio import Channel, Communication, InMemoryRepository, WebhookVerifier, make_asgi_app

TOKEN = "bench-auth-token-0123456789abcdef"
BASE = "https://hooks.servio.test/api/twilio/webhook"
PHONE = "+15005550006"
TO = "+5511999999999"
PROJECT = "demo-servio-bench"
KINDS = ("blocking", "async", "firestore-async", "firestore-blocking")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
App = Callable[[Scope, Receive, Send], Awaitable[None]]


def record_sid(n: int) -> str:
    """The Twilio SID of stored record ``c{n}``."""
    return f"SM{n:032x}"


class _Calls:
    """Repository calls finished, counted across threads."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.count = 0

    def add(self) -> None:
        with self._lock:
            self.count += 1


def _public_methods(repository: object) -> list[str]:
    return [
        name
        for name in dir(repository)
        if not name.startswith("_") and callable(getattr(repository, name))
    ]


class SlowRepository:
    """A blocking repository: every call sleeps ``delay`` seconds, then calls ``inner``'s."""

    blocking = True

    def __init__(self, inner: object, delay: float, calls: _Calls) -> None:
        for name in _public_methods(inner):
            setattr(self, name, self._slowed(getattr(inner, name), delay, calls))

    @staticmethod
    def _slowed(method: Callable[..., Any], delay: float, calls: _Calls) -> Callable[..., Any]:
        @functools.wraps(method)
        def slowed(*args: Any, **kwargs: Any) -> Any:
            time.sleep(delay)
            try:
                return method(*args, **kwargs)
            finally:
                calls.add()

        return slowed


class SlowAsyncRepository:
    """An async repository: every call awaits ``delay`` seconds, then awaits ``inner``'s."""

    def __init__(self, inner: object, delay: float, calls: _Calls) -> None:
        for name in _public_methods(inner):
            setattr(self, name, self._slowed(getattr(inner, name), delay, calls))

    @staticmethod
    def _slowed(method: Callable[..., Any], delay: float, calls: _Calls) -> Callable[..., Any]:
        @functools.wraps(method)
        async def slowed(*args: Any, **kwargs: Any) -> Any:
            await asyncio.sleep(delay)
            try:
                return await method(*args, **kwargs)
            finally:
                calls.add()

        return slowed


def _records(count: int) -> list[Communication]:
    return [
        Communication(
            id=f"c{n}",
            prospect_id=f"p{n}",
            channel=Channel.SMS,
            to=TO,
            from_=PHONE,
            body="Visita confirmada",
            twilio_sid=record_sid(n),
            status="queued",
        )
        for n in range(count)
    ]


def _repository(kind: str, delay: float, records: int, calls: _Calls) -> object:
    """The repository of ``kind``, its records stored, behind the delay."""
    if kind in {"blocking", "async"}:
        memory = InMemoryRepository()
        for record in _records(records):
            memory.add(record)
        if kind == "blocking":
            return SlowRepository(memory, delay, calls)
        from servio_twilio import AsyncInMemoryRepository  # noqa: PLC0415 - 0.2 only

        return SlowAsyncRepository(AsyncInMemoryRepository(memory), delay, calls)
    from google.cloud import firestore  # noqa: PLC0415 - only for the emulator rows

    from servio_twilio.firestore import (  # noqa: PLC0415
        AsyncFirestoreRepository,
        FirestoreRepository,
    )

    collection = f"bench-async-{uuid.uuid4().hex[:12]}"
    db: Any = firestore.Client(project=PROJECT)
    FirestoreRepository(db, collection=collection).add_many(_records(records))
    if kind == "firestore-blocking":
        return SlowRepository(FirestoreRepository(db, collection=collection), delay, calls)
    db.close()
    awaited = AsyncFirestoreRepository(
        firestore.AsyncClient(project=PROJECT), collection=collection
    )
    return SlowAsyncRepository(awaited, delay, calls)


def _with_stats(app: App, calls: _Calls) -> App:
    """``app``, plus ``GET /stats``: the repository calls finished so far, as JSON."""

    async def served(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"] == "/stats":
            body = json.dumps({"calls": calls.count}).encode()
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 200, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        await app(scope, receive, send)

    return served


def main(argv: list[str] | None = None) -> int:
    """Serve until terminated; print the port once listening."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repository", choices=KINDS, required=True)
    parser.add_argument("--delay", type=float, default=0.2)
    parser.add_argument("--records", type=int, default=500)
    parser.add_argument("--max-threads", type=int, help="make_asgi_app's (0.2); omit for 0.1")
    args = parser.parse_args(argv)

    calls = _Calls()
    repository = _repository(args.repository, args.delay, args.records, calls)
    options: dict[str, Any] = {}
    if args.max_threads is not None:
        options["max_threads"] = args.max_threads
    webhook: Any = make_asgi_app(
        verifier=WebhookVerifier(TOKEN),
        repository=repository,  # type: ignore[arg-type]
        public_base_url=BASE,
        **options,
    )
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(256)
    config = uvicorn.Config(
        _with_stats(webhook, calls),
        log_level="warning",
        access_log=False,
        lifespan="on",
        http="h11",
        loop="asyncio",
        timeout_graceful_shutdown=1,
    )
    server = uvicorn.Server(config)

    def announce() -> None:
        deadline = time.monotonic() + 30
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.01)
        print(sock.getsockname()[1], flush=True)

    threading.Thread(target=announce, daemon=True).start()
    server.run(sockets=[sock])
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
