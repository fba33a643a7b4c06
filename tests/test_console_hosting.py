"""The operator console where hosts put it: mounted under a prefix, under real servers,
over async and blocking stores, with the Twilio health report."""

from __future__ import annotations

import re
import threading
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from twilio.http.http_client import TwilioHttpClient

from servio_twilio import (
    AsyncInMemoryConsentStore,
    AsyncInMemoryRepository,
    InMemoryConsentStore,
    InMemoryRepository,
    TwilioSettings,
    mount_asgi,
    mount_wsgi,
)
from servio_twilio.console import ConsoleRequest, basic_auth, make_asgi_app, make_wsgi_app
from servio_twilio.testing import FakeTwilio, Fault
from support.console import (
    OPTED_OUT,
    PASSWORD,
    PROSPECT,
    TO,
    USER,
    ConsoleClient,
    Elements,
    credentials,
    filled_repository,
    record_ids,
)
from support.sync_facade import LoopThread

AUTH = {"authorization": credentials()}
SETTINGS = TwilioSettings(
    account_sid="AC" + "c0ffee00" * 4,
    auth_token="console-test-token",
    phone_number="+14155552671",
)


def local_links(html: str) -> list[str]:
    """Every href, form action and stylesheet of a page that stays on this site."""
    return [link for link in Elements(html).hrefs() if not link.startswith("https://")]


def assert_under(html: str, prefix: str) -> None:
    links = local_links(html)
    assert links
    for link in links:
        assert link.startswith(prefix + "/"), link


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


def asgi_get(loop: LoopThread, app: Any, path: str, **headers: str) -> httpx.Response:
    async def call() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
            return await c.get(path, headers={**AUTH, **headers})

    return loop.run(call())


def console_asgi(**options: Any) -> Any:
    options.setdefault("repository", filled_repository())
    return make_asgi_app(authorize=basic_auth(USER, PASSWORD), **options)


def console_wsgi(**options: Any) -> Any:
    options.setdefault("repository", filled_repository())
    return make_wsgi_app(authorize=basic_auth(USER, PASSWORD), **options)


class TestMountedUnderAPrefix:
    @pytest.mark.parametrize("path", ["/", "/communications", f"/prospects/{PROSPECT}"])
    def test_starlette_mount(self, loop: LoopThread, path: str) -> None:
        """In Starlette's Mount("/console"), every link, form and the stylesheet stay under
        /console, and the links lead to pages."""
        from starlette.applications import Starlette
        from starlette.routing import Mount

        host = Starlette(routes=[Mount("/console", app=console_asgi())])
        page = asgi_get(loop, host, "/console" + path)
        assert page.status_code == 200
        assert_under(page.text, "/console")
        assert '<link rel="stylesheet" href="/console/static/console.css">' in page.text
        for link in local_links(page.text)[:12]:
            assert asgi_get(loop, host, link.split("?")[0]).status_code == 200, link

    def test_starlette_record_page_and_form(self, loop: LoopThread) -> None:
        """The filter form posts (GET) to the mounted path; a record link opens its page."""
        from starlette.applications import Starlette
        from starlette.routing import Mount

        host = Starlette(routes=[Mount("/console", app=console_asgi())])
        page = asgi_get(loop, host, "/console/communications")
        assert '<form id="filters" method="get" action="/console/communications">' in page.text
        first = record_ids(page.text)[0]
        record = asgi_get(loop, host, f"/console/communications/{first}")
        assert record.status_code == 200
        assert_under(record.text, "/console")

    def test_fastapi_mount_under_uvicorn(self, asgi_server: Callable[..., str]) -> None:
        """FastAPI's app.mount under a real uvicorn: pages answer, links under the prefix."""
        from fastapi import FastAPI

        host = FastAPI()
        host.mount("/ops/console", console_asgi())
        base = asgi_server(host)
        with httpx.Client(base_url=base, headers=AUTH) as client:
            page = client.get("/ops/console/communications")
            assert page.status_code == 200
            assert_under(page.text, "/ops/console")
            css = client.get("/ops/console/static/console.css")
            assert css.headers["content-type"] == "text/css; charset=utf-8"
            assert client.get("/ops/console/", headers={"authorization": ""}).status_code == 401

    def test_uvicorn_root_path(self, asgi_server: Callable[..., str]) -> None:
        """Behind a proxy that strips /proxy (uvicorn --root-path), links keep /proxy."""
        base = asgi_server(console_asgi(), root_path="/proxy")
        page = httpx.get(base + "/communications", headers=AUTH)
        assert page.status_code == 200
        assert_under(page.text, "/proxy")

    def test_flask_dispatcher_middleware(self) -> None:
        """Flask with werkzeug's DispatcherMiddleware: links follow SCRIPT_NAME."""
        from flask import Flask
        from werkzeug.middleware.dispatcher import DispatcherMiddleware

        flask_app = Flask(__name__)
        flask_app.wsgi_app = DispatcherMiddleware(  # type: ignore[method-assign]
            flask_app.wsgi_app, {"/admin/console": console_wsgi()}
        )
        transport = httpx.WSGITransport(app=flask_app)
        with httpx.Client(transport=transport, base_url="http://testserver", headers=AUTH) as c:
            for path in ["/", "/communications", f"/prospects/{PROSPECT}"]:
                page = c.get("/admin/console" + path)
                assert page.status_code == 200
                assert_under(page.text, "/admin/console")
            first = record_ids(c.get("/admin/console/communications").text)[0]
            assert c.get(f"/admin/console/communications/{first}").status_code == 200

    @pytest.mark.parametrize("server", ["wsgiref", "werkzeug"])
    def test_wsgi_servers(self, wsgi_server: Callable[..., str], server: str) -> None:
        """Under real WSGI servers, mounted with mount_wsgi (as in Django)."""

        def host(environ: dict[str, Any], start_response: Any) -> list[bytes]:
            start_response("200 OK", [("content-type", "text/plain")])
            return [b"host"]

        base = wsgi_server(mount_wsgi(host, "/console", console_wsgi()), server=server)
        page = httpx.get(base + "/console/communications", headers=AUTH)
        assert page.status_code == 200
        assert_under(page.text, "/console")
        assert httpx.get(base + "/elsewhere").text == "host"
        assert httpx.get(base + "/console/", headers={"authorization": ""}).status_code == 401

    def test_mount_asgi(self, loop: LoopThread) -> None:
        """mount_asgi (for Django's ASGI handler) gives the console its prefix."""

        async def host(scope: Any, receive: Any, send: Any) -> None:
            raise AssertionError("the console's requests must not reach the host")

        app = mount_asgi(host, "/console", console_asgi())
        page = asgi_get(loop, app, "/console/communications")
        assert page.status_code == 200
        assert_under(page.text, "/console")

    def test_non_ascii_prefix(self) -> None:
        """A prefix outside ASCII (SCRIPT_NAME holds its UTF-8 bytes as Latin-1) is quoted in
        links, as the browser sent it."""
        script_name = "/cônsole".encode().decode("latin-1")
        transport = httpx.WSGITransport(app=console_wsgi(), script_name=script_name)
        with httpx.Client(transport=transport, base_url="http://testserver", headers=AUTH) as c:
            page = c.get("/communications")
        assert page.status_code == 200
        assert_under(page.text, "/c%C3%B4nsole")


class TestStores:
    def test_async_repository_under_asgi(self, loop: LoopThread) -> None:
        """An AsyncInMemoryRepository is awaited: every page renders from it."""
        repository = AsyncInMemoryRepository(filled_repository())
        app = console_asgi(repository=repository)
        record = repository.sync.communications(limit=1)[0]
        for path in ["/", "/communications", f"/communications/{record.id}", "/prospects/x"]:
            assert asgi_get(loop, app, path).status_code == 200, path

    def test_blocking_repository_runs_in_the_console_threads(self, loop: LoopThread) -> None:
        """A blocking repository's calls run in the app's own threads, not on the loop."""
        threads: set[str] = set()

        class Blocking(InMemoryRepository):
            blocking = True

            def ping(self) -> None:
                threads.add(threading.current_thread().name)

            def communications(self, **kwargs: Any) -> Any:
                threads.add(threading.current_thread().name)
                return super().communications(**kwargs)

        app = console_asgi(repository=Blocking(), max_threads=2)
        assert asgi_get(loop, app, "/").status_code == 200
        assert threads
        assert all(name.startswith("servio-console") for name in threads), threads

    def test_async_consent_store_and_authorize(self, loop: LoopThread) -> None:
        """An async consent store and an async authorize are awaited."""
        store = AsyncInMemoryConsentStore()
        store.sync.opt_out(OPTED_OUT, "sms", source="inbound:STOP")
        seen: list[ConsoleRequest] = []

        async def authorize(request: ConsoleRequest) -> bool:
            seen.append(request)
            return request.headers.get("x-operator") == "yes"

        app = make_asgi_app(
            repository=filled_repository(), authorize=authorize, consent_store=store
        )
        assert asgi_get(loop, app, "/consents").status_code == 401
        page = asgi_get(loop, app, "/consents", **{"x-operator": "yes"})
        assert page.status_code == 200
        assert "+55119*****777" in page.text
        assert seen[0].client == "127.0.0.1"

    def test_sync_consent_store_under_asgi(self, loop: LoopThread) -> None:
        """A sync consent store serves the ASGI console too."""
        store = InMemoryConsentStore()
        store.opt_out(OPTED_OUT, "whatsapp", source="admin")
        page = asgi_get(loop, console_asgi(consent_store=store), "/consents")
        assert "whatsapp" in page.text


@pytest.fixture
def twilio(monkeypatch: pytest.MonkeyPatch) -> FakeTwilio:
    """twilio's real HTTP client answering from a FakeTwilio (no network)."""
    fake = FakeTwilio()

    def request(self: TwilioHttpClient, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        return fake.request(method, url, *args, **kwargs)

    monkeypatch.setattr(TwilioHttpClient, "request", request)
    return fake


class TestHealth:
    @pytest.mark.parametrize("kind", ["asgi", "wsgi"])
    def test_report_shown_and_kept_a_minute(self, twilio: FakeTwilio, kind: str) -> None:
        """With settings, the overview shows the client's health report, asking Twilio once
        for several views (the report is kept 60 s)."""
        client = ConsoleClient(kind, settings=SETTINGS)
        try:
            first = client.get("/")
            asked = len(twilio.requests)
            again = client.get("/")
        finally:
            client.close()
        assert first.status_code == again.status_code == 200
        health = first.text.split('id="health"', 1)[1]
        assert re.search(r'id="health-twilio" class="(ok|failing)"', health)
        assert "account: " in health
        assert "phone_number: " in health
        assert "ACc0ff" in health
        assert SETTINGS.account_sid not in health
        assert asked >= 1
        assert len(twilio.requests) == asked  # the second view used the kept report

    def test_async_repository_uses_the_async_client(
        self, monkeypatch: pytest.MonkeyPatch, loop: LoopThread
    ) -> None:
        """Over an async repository the report comes from the async client, awaited, and is
        kept a minute too."""
        from servio_twilio.sending import async_transport

        fake = FakeTwilio()
        monkeypatch.setattr(async_transport, "AiohttpTwilioClient", lambda **_: fake.aio)
        app = console_asgi(
            repository=AsyncInMemoryRepository(filled_repository()), settings=SETTINGS
        )
        first = asgi_get(loop, app, "/")
        asked = len(fake.requests)
        asgi_get(loop, app, "/")
        assert first.status_code == 200
        assert "account: ok" in first.text
        assert asked >= 1
        assert len(fake.requests) == asked

    def test_twilio_failing_is_reported(self, twilio: FakeTwilio) -> None:
        """Twilio failing makes the report say so; the page still answers 200."""
        twilio.fail_next(50, Fault.server_error())
        client = ConsoleClient("wsgi", settings=SETTINGS)
        try:
            page = client.get("/")
        finally:
            client.close()
        assert page.status_code == 200
        assert 'id="health-twilio" class="failing"' in page.text
        assert TO not in page.text
