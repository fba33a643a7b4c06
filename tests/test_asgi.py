"""Tests for servio_twilio.webhooks.asgi: the ASGI adapter and mount_asgi."""

from __future__ import annotations

import asyncio
import http.client
import threading
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from servio_twilio.domain.errors import ConfigurationError
from servio_twilio.domain.models import Communication
from servio_twilio.storage.memory import InMemoryRepository
from servio_twilio.webhooks.asgi import make_asgi_app, mount_asgi
from servio_twilio.webhooks.verifier import WebhookVerifier
from support.stalling import MAX_STALL, StallingRepository
from support.twilio_callbacks import (
    TOKEN,
    asgi_request,
    header_list,
    inbound_params,
    message_params,
    sid,
    signed,
)

pytestmark = pytest.mark.anyio

SM = sid("SM", 5)
LOCAL = "http://testserver"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def app_for(repository: InMemoryRepository | None = None, **options: Any) -> Any:
    return make_asgi_app(
        verifier=WebhookVerifier(TOKEN),
        repository=repository if repository is not None else InMemoryRepository(),
        **options,
    )


class _BlockingRepository(InMemoryRepository):
    """In memory, but says it does I/O: the app must call it from a worker thread."""

    blocking = True

    def __init__(self) -> None:
        super().__init__()
        self.threads: set[int] = set()

    def find_by_sid(self, sid: str) -> Communication | None:
        self.threads.add(threading.get_ident())
        return super().find_by_sid(sid)


class TestHttp:
    async def test_stored_over_httpx(self) -> None:
        """A signed callback through httpx's ASGI transport is stored: 204."""
        repository = InMemoryRepository()
        headers, body = signed(LOCAL + "/message-status?cid=x1", message_params(SM, "sent"))
        transport = httpx.ASGITransport(app=app_for(repository))
        async with httpx.AsyncClient(transport=transport, base_url=LOCAL) as client:
            reply = await client.post("/message-status?cid=x1", content=body, headers=headers)
        assert reply.status_code == 204
        assert "content-length" not in reply.headers
        record = repository.find_by_sid(SM)
        assert record is not None
        assert record.status == "sent"

    async def test_body_across_more_body_messages(self) -> None:
        """A body sent in many ASGI messages is read whole."""
        repository = InMemoryRepository()
        headers, body = signed(LOCAL + "/message-status", message_params(SM, "delivered"))
        chunks = [body[i : i + 7] for i in range(0, len(body), 7)]
        status, _, _, read = await asgi_request(
            app_for(repository), headers=header_list(headers), chunks=chunks
        )
        assert status == 204
        assert read == len(chunks)
        assert repository.find_by_sid(SM) is not None

    async def test_body_as_bytearray(self) -> None:
        """A body a server hands over as a bytearray (in one message or many) is read as bytes."""
        for size in (10_000, 7):
            repository = InMemoryRepository()
            headers, body = signed(LOCAL + "/message-status", message_params(SM, "sent"))
            chunks = [bytearray(body[i : i + size]) for i in range(0, len(body), size)]
            status, _, _, _ = await asgi_request(
                app_for(repository), headers=header_list(headers), chunks=chunks
            )
            assert status == 204
            assert repository.find_by_sid(SM) is not None

    async def test_stops_reading_past_the_limit(self) -> None:
        """Past max_body_bytes the app stops reading and answers 413."""
        headers, _ = signed(LOCAL + "/message-status", {})
        chunks = [b"x" * 100] * 50
        status, _, _, read = await asgi_request(
            app_for(max_body_bytes=250), headers=header_list(headers), chunks=chunks
        )
        assert status == 413
        assert read == 3

    async def test_declared_length_over_limit_reads_nothing(self) -> None:
        """A Content-Length over the limit is refused before reading the body."""
        headers = [
            (b"content-type", b"application/x-www-form-urlencoded"),
            (b"content-length", b"9999"),
        ]
        status, _, _, read = await asgi_request(
            app_for(max_body_bytes=100), headers=headers, chunks=[b"x" * 9999]
        )
        assert (status, read) == (413, 0)

    async def test_client_disconnect_sends_nothing(self) -> None:
        """A client gone before the body ends gets no response, and nothing is stored."""
        repository = InMemoryRepository()

        async def app_call() -> None:
            scope = {"type": "http", "method": "POST", "path": "/message-status", "headers": []}

            async def receive() -> dict[str, Any]:
                return {"type": "http.disconnect"}

            async def send(message: dict[str, Any]) -> None:
                raise AssertionError(f"nothing should be sent: {message}")

            await app_for(repository)(scope, receive, send)

        await app_call()
        assert len(repository) == 0

    async def test_get_is_405_without_reading(self) -> None:
        """A GET is answered 405 with Allow: POST and its body is never read."""
        status, headers, _, read = await asgi_request(app_for(), method="GET", chunks=[b"x"])
        assert (status, headers.get("allow"), read) == (405, "POST", 0)

    async def test_route_relative_to_root_path(self) -> None:
        """With root_path (path includes it, as current servers do) the route is the rest."""
        repository = InMemoryRepository()
        url = LOCAL + "/hooks/message-status"
        headers, body = signed(url, message_params(SM, "sent"))
        status, _, _, _ = await asgi_request(
            app_for(repository),
            path="/hooks/message-status",
            scope={"root_path": "/hooks"},
            headers=header_list(headers),
            chunks=[body],
        )
        assert status == 204

    async def test_without_raw_path_uses_quoted_path(self) -> None:
        """No raw_path: the path (quoted) is what the signature is checked against."""
        repository = InMemoryRepository()
        url = LOCAL + "/h%C3%A9/message-status"
        headers, body = signed(url, message_params(SM, "sent"))
        status, _, _, _ = await asgi_request(
            app_for(repository),
            path="/hé/message-status",
            scope={"root_path": "/hé", "raw_path": None},
            headers=header_list(headers),
            chunks=[body],
        )
        assert status == 204

    async def test_host_from_server_when_no_host_header(self) -> None:
        """No Host header: the server address (its port unless default) makes the URL."""
        headers, body = signed("http://10.0.0.5:8080/message-status", message_params(SM, "sent"))
        sent = dict(headers)
        status, _, _, _ = await asgi_request(
            app_for(),
            scope={"server": ("10.0.0.5", 8080)},
            headers=header_list(sent),
            chunks=[body],
        )
        assert status == 204


class TestHooksAndThreads:
    async def test_blocking_repository_runs_in_a_worker_thread(self) -> None:
        """A blocking repository is never called on the event loop's thread."""
        repository = _BlockingRepository()
        loop_thread = threading.get_ident()
        plain_threads: list[int] = []
        headers, body = signed(LOCAL + "/message-status", message_params(SM, "sent"))
        app = app_for(repository, on_event=lambda e: plain_threads.append(threading.get_ident()))
        status, _, _, _ = await asgi_request(app, headers=header_list(headers), chunks=[body])
        assert status == 204
        assert repository.threads
        assert loop_thread not in repository.threads
        assert plain_threads
        assert plain_threads[0] != loop_thread

    async def test_memory_repository_runs_inline(self) -> None:
        """A non-blocking repository and plain hooks run on the loop's thread (no hop)."""
        threads: list[int] = []
        headers, body = signed(LOCAL + "/message-status", message_params(SM, "sent"))
        app = app_for(on_event=lambda e: threads.append(threading.get_ident()))
        await asgi_request(app, headers=header_list(headers), chunks=[body])
        assert threads == [threading.get_ident()]

    async def test_async_hooks_are_awaited(self) -> None:
        """Async on_inbound, prospect_resolver and on_event are awaited on the loop."""
        seen: list[str] = []
        repository = InMemoryRepository()

        async def resolver(number: str) -> str:
            await asyncio.sleep(0)
            seen.append("resolver")
            return "prospect-a"

        async def on_inbound(event: Any) -> str:
            await asyncio.sleep(0)
            seen.append("inbound")
            return "<Response><Message>ok</Message></Response>"

        async def on_event(event: Any) -> None:
            seen.append("event")

        app = app_for(
            repository, prospect_resolver=resolver, on_inbound=on_inbound, on_event=on_event
        )
        headers, body = signed(LOCAL + "/inbound", inbound_params(SM))
        status, reply_headers, reply, _ = await asgi_request(
            app, path="/inbound", headers=header_list(headers), chunks=[body]
        )
        assert status == 200
        assert reply_headers["content-type"] == "text/xml"
        assert reply == b"<Response><Message>ok</Message></Response>"
        assert seen == ["resolver", "inbound", "event"]
        record = repository.find_by_sid(SM)
        assert record is not None
        assert record.prospect_id == "prospect-a"

    async def test_async_hook_failure_still_2xx(self) -> None:
        """An async hook that raises is logged; /inbound answers an empty <Response/>."""

        async def on_inbound(event: Any) -> str:
            raise RuntimeError("nope")

        headers, body = signed(LOCAL + "/inbound", inbound_params(SM))
        status, _, reply, _ = await asgi_request(
            app_for(on_inbound=on_inbound),
            path="/inbound",
            headers=header_list(headers),
            chunks=[body],
        )
        assert (status, reply) == (200, b"<Response/>")


STORAGE_TIMEOUT = 0.5
SLACK = 3.0


class _SlowMemory(InMemoryRepository):
    """In memory (not blocking) but slow to store: it must still run inline, unbounded."""

    def record_event(self, *args: Any, **kwargs: Any) -> Any:
        time.sleep(3 * STORAGE_TIMEOUT)
        return super().record_event(*args, **kwargs)


class TestStorageTimeout:
    @pytest.mark.parametrize(
        ("route", "params"),
        [("/message-status", message_params(SM, "sent")), ("/inbound", inbound_params(SM))],
    )
    async def test_stalled_storage_answers_503_in_time(
        self, route: str, params: dict[str, str]
    ) -> None:
        """Storage that does not answer: 503 with Retry-After within storage_timeout + 3 s."""
        repository = StallingRepository()
        hooked: list[Any] = []
        app = app_for(repository, storage_timeout=STORAGE_TIMEOUT, on_event=hooked.append)
        headers, body = signed(LOCAL + route, params)
        started = time.monotonic()
        status, reply_headers, reply, _ = await asgi_request(
            app, path=route, headers=header_list(headers), chunks=[body]
        )
        elapsed = time.monotonic() - started
        repository.release()
        assert (status, reply_headers["retry-after"]) == (503, "5")
        assert reply == b"storage unavailable, try again\n"
        assert elapsed < STORAGE_TIMEOUT + SLACK
        assert hooked == []

    async def test_the_late_call_finishes_and_later_requests_work(self) -> None:
        """The late call goes on in its thread; once storage answers, requests are 204 again."""
        repository = StallingRepository()
        app = app_for(repository, storage_timeout=STORAGE_TIMEOUT)
        headers, body = signed(LOCAL + "/message-status", message_params(SM, "sent"))
        status, _, _, _ = await asgi_request(app, headers=header_list(headers), chunks=[body])
        assert status == 503
        repository.release()
        assert await asyncio.to_thread(repository.finished.wait, MAX_STALL)
        assert repository.find_by_sid(SM) is not None  # stored late; Twilio's retry is a repeat
        other = sid("SM", 77)
        headers, body = signed(LOCAL + "/message-status", message_params(other, "delivered"))
        status, _, _, _ = await asgi_request(app, headers=header_list(headers), chunks=[body])
        assert status == 204
        record = repository.find_by_sid(other)
        assert record is not None
        assert record.status == "delivered"

    async def test_the_deadline_starts_with_the_storage_work(self) -> None:
        """A slow hook before the store does not count: the deadline starts with storage."""
        repository = StallingRepository()
        repository.release()

        def resolver(number: str) -> str:
            time.sleep(2 * STORAGE_TIMEOUT)
            return "prospect-slow"

        app = app_for(repository, storage_timeout=STORAGE_TIMEOUT, prospect_resolver=resolver)
        headers, body = signed(LOCAL + "/inbound", inbound_params(SM))
        status, _, _, _ = await asgi_request(
            app, path="/inbound", headers=header_list(headers), chunks=[body]
        )
        assert status == 200
        record = repository.find_by_sid(SM)
        assert record is not None
        assert record.prospect_id == "prospect-slow"

    async def test_a_repository_that_is_not_blocking_runs_inline(self) -> None:
        """blocking=False: the store runs on the loop, unbounded by storage_timeout."""
        repository = _SlowMemory()
        app = app_for(repository, storage_timeout=STORAGE_TIMEOUT)
        headers, body = signed(LOCAL + "/message-status", message_params(SM, "sent"))
        status, _, _, _ = await asgi_request(app, headers=header_list(headers), chunks=[body])
        assert status == 204
        assert repository.find_by_sid(SM) is not None


class TestScopes:
    async def test_lifespan(self) -> None:
        """Lifespan startup and shutdown are answered, then the app returns."""
        incoming = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return incoming.pop(0)

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app_for()({"type": "lifespan"}, receive, send)
        assert [m["type"] for m in sent] == [
            "lifespan.startup.complete",
            "lifespan.shutdown.complete",
        ]

    async def test_websocket_is_closed(self) -> None:
        """A websocket connection is closed without being accepted."""
        sent: list[dict[str, Any]] = []

        async def receive() -> dict[str, Any]:
            return {"type": "websocket.connect"}

        async def send(message: dict[str, Any]) -> None:
            sent.append(message)

        await app_for()({"type": "websocket", "path": "/inbound"}, receive, send)
        assert sent == [{"type": "websocket.close", "code": 1008}]

    async def test_unknown_scope_raises_clearly(self) -> None:
        """A scope type the app does not speak raises ConfigurationError naming it."""

        async def receive() -> dict[str, Any]:
            raise AssertionError("not read")

        async def send(message: dict[str, Any]) -> None:
            raise AssertionError("not sent")

        with pytest.raises(ConfigurationError, match="'telepathy'"):
            await app_for()({"type": "telepathy"}, receive, send)


async def _host(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        message = await receive()
        await send({"type": message["type"] + ".complete"})
        return
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"host:" + scope["path"].encode()})


class TestMountAsgi:
    async def test_dispatches_by_prefix(self) -> None:
        """Under the prefix: the webhook app, with root_path set; elsewhere: the host."""
        repository = InMemoryRepository()
        mounted = mount_asgi(_host, "/api/twilio/webhook/", app_for(repository))
        headers, body = signed(
            LOCAL + "/api/twilio/webhook/message-status", message_params(SM, "sent")
        )
        status, _, _, _ = await asgi_request(
            mounted,
            path="/api/twilio/webhook/message-status",
            headers=header_list(headers),
            chunks=[body],
        )
        assert status == 204
        status, _, reply, _ = await asgi_request(mounted, method="GET", path="/api/twilio/webhookx")
        assert (status, reply) == (200, b"host:/api/twilio/webhookx")
        status, _, _, _ = await asgi_request(mounted, method="GET", path="/api/twilio/webhook")
        assert status == 404

    async def test_child_scope(self) -> None:
        """The app sees root_path + prefix and the full path; the caller's scope is untouched."""
        seen: list[dict[str, Any]] = []

        async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
            seen.append(scope)
            await _host(scope, receive, send)

        mounted = mount_asgi(_host, "/hooks", inner)
        scope = {"type": "http", "path": "/base/hooks/x", "root_path": "/base"}
        sent: list[Any] = []

        async def send(message: Any) -> None:
            sent.append(message)

        await mounted(scope, _no_receive, send)
        assert (seen[0]["root_path"], seen[0]["path"]) == ("/base/hooks", "/base/hooks/x")
        assert scope["root_path"] == "/base"

    async def test_older_relative_path_convention(self) -> None:
        """A server whose path excludes root_path gets a relative path below the prefix."""
        seen: list[dict[str, Any]] = []

        async def inner(scope: dict[str, Any], receive: Any, send: Any) -> None:
            seen.append(scope)

        mounted = mount_asgi(_host, "/hooks", inner)
        await mounted(
            {"type": "http", "path": "/hooks/x", "root_path": "/base"}, _no_receive, _no_send
        )
        assert (seen[0]["root_path"], seen[0]["path"]) == ("/base/hooks", "/x")

    async def test_lifespan_goes_to_the_host(self) -> None:
        """Lifespan events reach the host app."""
        sent: list[Any] = []

        async def receive() -> dict[str, Any]:
            return {"type": "lifespan.startup"}

        async def send(message: Any) -> None:
            sent.append(message)

        await mount_asgi(_host, "/hooks", app_for())({"type": "lifespan"}, receive, send)
        assert sent == [{"type": "lifespan.startup.complete"}]

    def test_bad_prefix(self) -> None:
        """A prefix that is not a path below / is refused."""
        with pytest.raises(ConfigurationError):
            mount_asgi(_host, "hooks", app_for())


async def _no_receive() -> dict[str, Any]:
    raise AssertionError("not read")


async def _no_send(message: Any) -> None:
    raise AssertionError("not sent")


@pytest.mark.server
class TestUnderUvicorn:
    def test_callbacks_over_real_http(self, asgi_server: Callable[..., str]) -> None:
        """Under uvicorn: 204 stored, 403 tampered, 405, 404, and a chunked body."""
        repository = InMemoryRepository()
        base = asgi_server(app_for(repository))
        address = urlsplit(base)
        headers, body = signed(base + "/message-status?cid=q", message_params(SM, "sent"))
        with httpx.Client(base_url=base) as client:
            assert (
                client.post("/message-status?cid=q", content=body, headers=headers).status_code
                == 204
            )
            tampered = body.replace(b"sent", b"read")
            assert (
                client.post("/message-status?cid=q", content=tampered, headers=headers).status_code
                == 403
            )
            reply = client.get("/message-status")
            assert (reply.status_code, reply.headers["allow"]) == (405, "POST")
            assert client.post("/elsewhere").status_code == 404
        chunked_headers, chunked_body = signed(
            base + "/message-status", message_params(SM, "delivered")
        )
        connection = http.client.HTTPConnection(address.hostname or "", address.port, timeout=10)
        try:
            connection.request(
                "POST",
                "/message-status",
                body=iter([chunked_body[:10], chunked_body[10:]]),
                headers=chunked_headers,
                encode_chunked=True,
            )
            assert connection.getresponse().status == 204
        finally:
            connection.close()
        record = repository.find_by_sid(SM)
        assert record is not None
        assert record.status == "delivered"
        assert len(repository.events(record.id or "")) == 2

    def test_lifespan_on(self, asgi_server: Callable[..., str]) -> None:
        """uvicorn with lifespan="on" starts: the app answers lifespan."""
        base = asgi_server(app_for(), lifespan="on")
        assert httpx.get(base + "/inbound").status_code == 405

    def test_stalled_storage_503_then_204(self, asgi_server: Callable[..., str]) -> None:
        """Under uvicorn: stalled storage answers 503 in time, then a healthy request 204."""
        repository = StallingRepository()
        base = asgi_server(app_for(repository, storage_timeout=STORAGE_TIMEOUT))
        headers, body = signed(base + "/message-status", message_params(SM, "sent"))
        other = sid("SM", 78)
        later_headers, later_body = signed(
            base + "/message-status", message_params(other, "delivered")
        )
        with httpx.Client(base_url=base, timeout=MAX_STALL) as client:
            started = time.monotonic()
            reply = client.post("/message-status", content=body, headers=headers)
            elapsed = time.monotonic() - started
            repository.release()
            assert (reply.status_code, reply.headers["retry-after"]) == (503, "5")
            assert elapsed < STORAGE_TIMEOUT + SLACK
            later = client.post("/message-status", content=later_body, headers=later_headers)
            assert later.status_code == 204
        assert repository.find_by_sid(other) is not None
