"""FastAPI under uvicorn: ``async def`` endpoints sending with the async client.

One `AsyncCommunicationsClient` (over ``FakeTwilio(latency=0.3).aio``),
created and closed in the app's lifespan, serves ``async def`` send
endpoints; a ``/probe`` endpoint and the webhook app (mounted, on the same
`AsyncInMemoryRepository`) answer while twenty sends wait on Twilio. Shown by
counts and order, never by timing: the probe and the callback are handled
while FakeTwilio still has sends in flight, and all twenty sends overlap on
the server's one event loop (``peak_in_flight == 20``). Under uvicorn with
h11 and with httptools (on uvloop). Last, the same with the sync client in
plain ``def`` endpoints, which FastAPI runs in its thread pool.

No ``from __future__ import annotations`` here: FastAPI reads the routes'
annotations as objects.
"""

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

import httpx
import pytest
from fastapi import FastAPI, Request

from servio_twilio import (
    AsyncCommunicationsClient,
    AsyncInMemoryRepository,
    CommunicationsClient,
    InMemoryRepository,
    SendResult,
    make_asgi_app,
)
from servio_twilio.testing import FakeTwilio, signed_webhook
from support.sending import BASE, TO, make_settings
from support.twilio_callbacks import message_params

pytestmark = pytest.mark.server

MOUNT = "/api/twilio/webhook"
SENDS = 20
LATENCY = 0.3
TOKEN = "auth-token-secret"  # make_settings()'s
WAIT_LIMIT = 10.0


def _async_app(
    fake: FakeTwilio, repository: AsyncInMemoryRepository, seen: list[tuple[str, int]]
) -> FastAPI:
    """Send endpoints on one async client, a probe, and the webhook app mounted.

    ``seen`` gets ``("probe", in_flight)`` from the probe handler, and
    ``("callback in", in_flight)`` / ``("callback out", in_flight)`` around
    each webhook request: FakeTwilio's sends in flight at that moment.
    """
    settings = make_settings()
    answered = 0

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncCommunicationsClient(
            settings, repository=repository, http_client=fake.aio
        ) as client:
            app.state.client = client
            yield

    app = FastAPI(lifespan=lifespan)

    @app.post("/prospects/{prospect_id}/sms")
    async def send_sms(prospect_id: str, to: str, body: str, request: Request) -> SendResult:
        nonlocal answered
        result: SendResult = await request.app.state.client.send_sms(
            to, body, prospect_id=prospect_id
        )
        answered += 1
        return result

    @app.get("/probe")
    async def probe_handler() -> dict[str, int]:
        seen.append(("probe", fake.in_flight))
        return {"in_flight": fake.in_flight, "answered": answered}

    webhook = make_asgi_app(settings=settings, repository=repository)

    async def watched(scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            seen.append(("callback in", fake.in_flight))
        await webhook(scope, receive, send)
        if scope["type"] == "http":
            seen.append(("callback out", fake.in_flight))

    app.mount(MOUNT, watched)
    return app


async def _until(condition: Callable[[], bool], what: str) -> None:
    """Wait until ``condition()`` holds; fail saying ``what`` did not happen."""
    deadline = asyncio.get_running_loop().time() + WAIT_LIMIT
    while not condition():
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"{what} did not happen within {WAIT_LIMIT} s")
        await asyncio.sleep(0.005)


def _send(http: httpx.AsyncClient, n: int) -> "asyncio.Task[httpx.Response]":
    return asyncio.ensure_future(
        http.post(f"/prospects/p{n}/sms", params={"to": TO, "body": f"Visita #{n}"})
    )


class TestAsyncEndpoints:
    @pytest.mark.parametrize("http", ["h11", "httptools"])
    def test_probe_answers_while_sends_wait_on_twilio(
        self, asgi_server: Callable[..., str], http: str
    ) -> None:
        """20 async sends overlap on one loop, and the probe is answered while they wait."""
        fake = FakeTwilio(latency=LATENCY)
        repository = AsyncInMemoryRepository()
        seen: list[tuple[str, int]] = []
        base = asgi_server(_async_app(fake, repository, seen), http=http, lifespan="on")

        async def scenario() -> tuple[httpx.Response, list[httpx.Response]]:
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                sends = [_send(client, n) for n in range(SENDS)]
                await _until(lambda: fake.in_flight == SENDS, "20 sends in flight at once")
                probe = await client.get("/probe")
                return probe, list(await asyncio.gather(*sends))

        probe, sent = asyncio.run(scenario())
        assert probe.status_code == 200
        assert probe.json()["in_flight"] > 0
        assert probe.json()["answered"] < SENDS
        assert [response.status_code for response in sent] == [200] * SENDS
        assert len({response.json()["sid"] for response in sent}) == SENDS
        assert fake.peak_in_flight == SENDS
        assert fake.in_flight == 0
        assert len(repository) == SENDS
        assert [what for what, _ in seen] == ["probe"]

    @pytest.mark.parametrize("http", ["h11", "httptools"])
    def test_signed_callback_is_stored_while_sends_wait_on_twilio(
        self, asgi_server: Callable[..., str], http: str
    ) -> None:
        """The mounted webhook app stores a signed callback while 20 sends are in flight."""
        fake = FakeTwilio(latency=LATENCY)
        repository = AsyncInMemoryRepository()
        seen: list[tuple[str, int]] = []
        base = asgi_server(_async_app(fake, repository, seen), http=http, lifespan="on")

        async def scenario() -> tuple[dict[str, Any], httpx.Response, list[httpx.Response]]:
            async with httpx.AsyncClient(base_url=base, timeout=30) as client:
                first = (await _send(client, SENDS)).json()
                sends = [_send(client, n) for n in range(SENDS)]
                await _until(lambda: fake.in_flight == SENDS, "20 sends in flight at once")
                route = f"/message-status?cid={first['communication_id']}"
                headers, body = signed_webhook(
                    BASE + route, message_params(first["sid"], "delivered"), TOKEN
                )
                callback = await client.post(MOUNT + route, content=body, headers=headers)
                return first, callback, list(await asyncio.gather(*sends))

        first, callback, sent = asyncio.run(scenario())
        assert callback.status_code == 204
        assert [what for what, _ in seen] == ["callback in", "callback out"]
        assert all(in_flight > 0 for _, in_flight in seen)
        assert [response.status_code for response in sent] == [200] * SENDS
        assert fake.peak_in_flight == SENDS
        record = repository.sync.get(first["communication_id"])
        assert record is not None
        assert record.status == "delivered"
        assert len(repository.sync.events(first["communication_id"])) == 1


class TestSyncEndpoints:
    def test_def_endpoints_overlap_in_the_thread_pool(
        self, asgi_server: Callable[..., str]
    ) -> None:
        """The sync client in plain def endpoints: FastAPI's threads overlap the 20 sends too."""
        fake = FakeTwilio(latency=LATENCY)
        client = CommunicationsClient(
            make_settings(), repository=InMemoryRepository(), http_client=fake
        )
        app = FastAPI()
        in_flight_at_probe: list[int] = []

        @app.post("/prospects/{prospect_id}/sms")
        def send_sms(prospect_id: str, to: str, body: str) -> SendResult:
            return client.send_sms(to, body, prospect_id=prospect_id)

        @app.get("/probe")
        async def probe_handler() -> dict[str, int]:
            in_flight_at_probe.append(fake.in_flight)
            return {"in_flight": fake.in_flight}

        base = asgi_server(app)

        async def scenario() -> tuple[httpx.Response, list[httpx.Response]]:
            async with httpx.AsyncClient(base_url=base, timeout=30) as http:
                sends = [_send(http, n) for n in range(SENDS)]
                await _until(lambda: fake.in_flight == SENDS, "20 sends in flight at once")
                probe = await http.get("/probe")
                return probe, list(await asyncio.gather(*sends))

        probe, sent = asyncio.run(scenario())
        assert probe.status_code == 200
        assert len(in_flight_at_probe) == 1
        assert in_flight_at_probe[0] > 0
        assert [response.status_code for response in sent] == [200] * SENDS
        assert fake.peak_in_flight == SENDS
