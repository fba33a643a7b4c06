"""The webhook apps mounted as users mount them, under real servers.

Starlette ``Mount`` and FastAPI ``app.mount`` under uvicorn; Flask through
werkzeug's ``DispatcherMiddleware``; Django (which cannot mount apps) through
`mount_asgi` under uvicorn and `mount_wsgi` under a WSGI server; and behind a
TLS-terminating proxy: signed for the public https URL, received over http.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import httpx
import pytest

from servio_twilio.domain.settings import TwilioSettings
from servio_twilio.storage.memory import InMemoryRepository
from servio_twilio.webhooks.asgi import make_asgi_app, mount_asgi
from servio_twilio.webhooks.verifier import WebhookVerifier
from servio_twilio.webhooks.wsgi import make_wsgi_app, mount_wsgi
from support.twilio_callbacks import TOKEN, inbound_params, message_params, sid, signed

pytestmark = pytest.mark.server

MOUNT = "/api/twilio/webhook"
PUBLIC = "https://api.servio.test" + MOUNT
SM = sid("SM", 90)


def check_mounted(
    base: str, repository: InMemoryRepository, *, host_path: str, host_text: str
) -> None:
    """Callbacks under the mount reach the webhook app; the host's own route still works."""
    url = base + MOUNT + "/message-status?cid=abc"
    headers, body = signed(url, message_params(SM, "delivered"))
    with httpx.Client() as client:
        assert client.post(url, content=body, headers=headers).status_code == 204
        bad = client.post(url, content=body.replace(b"delivered", b"read"), headers=headers)
        assert bad.status_code == 403
        inbound_url = base + MOUNT + "/inbound"
        inbound_headers, inbound_body = signed(inbound_url, inbound_params(sid("SM", 91), "sim"))
        reply = client.post(inbound_url, content=inbound_body, headers=inbound_headers)
        assert (reply.status_code, reply.headers["content-type"]) == (200, "text/xml")
        assert reply.text == "<Response><Message>ok: sim</Message></Response>"
        host = client.get(base + host_path)
        assert (host.status_code, host.text) == (200, host_text)
    record = repository.find_by_sid(SM)
    assert record is not None
    assert record.status == "delivered"


def reply_ok(event: Any) -> str:
    return f"<Response><Message>ok: {event.body}</Message></Response>"


def asgi_webhook(repository: InMemoryRepository, **options: Any) -> Any:
    return make_asgi_app(
        verifier=WebhookVerifier(TOKEN), repository=repository, on_inbound=reply_ok, **options
    )


def wsgi_webhook(repository: InMemoryRepository, **options: Any) -> Any:
    return make_wsgi_app(
        verifier=WebhookVerifier(TOKEN), repository=repository, on_inbound=reply_ok, **options
    )


class TestStarlette:
    def test_mount(self, asgi_server: Callable[..., str]) -> None:
        """Starlette(routes=[Mount(prefix, app=webhook)]) under uvicorn."""
        from starlette.applications import Starlette
        from starlette.responses import PlainTextResponse
        from starlette.routing import Mount, Route

        repository = InMemoryRepository()

        async def health(request: Any) -> PlainTextResponse:
            return PlainTextResponse("starlette ok")

        app = Starlette(
            routes=[Route("/health", health), Mount(MOUNT, app=asgi_webhook(repository))]
        )
        base = asgi_server(app)
        check_mounted(base, repository, host_path="/health", host_text="starlette ok")

    def test_mount_under_a_root_path(self, asgi_server: Callable[..., str]) -> None:
        """A proxy strips /svc (uvicorn --root-path /svc) and the app is Mounted: route found."""
        from starlette.applications import Starlette
        from starlette.routing import Mount

        repository = InMemoryRepository()
        public = "https://api.servio.test/svc" + MOUNT
        webhook = asgi_webhook(repository, public_base_url=public)
        base = asgi_server(Starlette(routes=[Mount(MOUNT, app=webhook)]), root_path="/svc")
        headers, body = signed(public + "/message-status", message_params(SM, "sent"))
        url = base + MOUNT + "/message-status"
        assert httpx.post(url, content=body, headers=headers).status_code == 204
        assert repository.find_by_sid(SM) is not None


class TestFastAPI:
    def test_app_mount(self, asgi_server: Callable[..., str]) -> None:
        """FastAPI's app.mount(prefix, webhook) under uvicorn."""
        from fastapi import FastAPI
        from fastapi.responses import PlainTextResponse

        repository = InMemoryRepository()
        app = FastAPI()

        @app.get("/health", response_class=PlainTextResponse)
        async def health() -> str:
            return "fastapi ok"

        app.mount(MOUNT, asgi_webhook(repository))
        base = asgi_server(app)
        check_mounted(base, repository, host_path="/health", host_text="fastapi ok")


class TestFlask:
    @pytest.mark.parametrize("server", ["werkzeug", "wsgiref"])
    def test_dispatcher_middleware(self, wsgi_server: Callable[..., str], server: str) -> None:
        """Flask with werkzeug's DispatcherMiddleware, under werkzeug and wsgiref servers."""
        from flask import Flask
        from werkzeug.middleware.dispatcher import DispatcherMiddleware

        repository = InMemoryRepository()
        flask_app = Flask("servio_test")

        @flask_app.get("/health")
        def health() -> str:
            return "flask ok"

        flask_app.wsgi_app = DispatcherMiddleware(  # type: ignore[method-assign]
            flask_app.wsgi_app, {MOUNT: wsgi_webhook(repository)}
        )
        base = wsgi_server(flask_app, server=server)
        check_mounted(base, repository, host_path="/health", host_text="flask ok")


@pytest.fixture(scope="module")
def django_configured() -> None:
    from support.django_project import configure

    configure()


class TestDjango:
    def test_asgi_with_mount_asgi(
        self, asgi_server: Callable[..., str], django_configured: None
    ) -> None:
        """Django's ASGI handler with the webhook app mounted by mount_asgi, under uvicorn."""
        from django.core.handlers.asgi import ASGIHandler

        repository = InMemoryRepository()
        app = mount_asgi(ASGIHandler(), MOUNT, asgi_webhook(repository))
        base = asgi_server(app)
        check_mounted(base, repository, host_path="/health", host_text="django ok")

    @pytest.mark.parametrize("server", ["werkzeug", "wsgiref"])
    def test_wsgi_with_mount_wsgi(
        self, wsgi_server: Callable[..., str], django_configured: None, server: str
    ) -> None:
        """Django's WSGI handler with the webhook app mounted by mount_wsgi."""
        from django.core.handlers.wsgi import WSGIHandler

        repository = InMemoryRepository()
        app = mount_wsgi(WSGIHandler(), MOUNT, wsgi_webhook(repository))
        base = wsgi_server(app, server=server)
        check_mounted(base, repository, host_path="/health", host_text="django ok")


def post_via_proxy(base: str, *, public_url: str, forwarded: bool) -> int:
    """What a TLS-terminating proxy forwards: signed for https://public, sent over http."""
    headers, body = signed(public_url + "/message-status?cid=p", message_params(SM, "sent"))
    if forwarded:
        headers["X-Forwarded-Proto"] = "https"
        headers["X-Forwarded-Host"] = "api.servio.test"
    url = base + MOUNT + "/message-status?cid=p"
    return httpx.post(url, content=body, headers=headers).status_code


class TestBehindProxy:
    def test_asgi_public_base_url(self, asgi_server: Callable[..., str]) -> None:
        """public_base_url: the https public URL verifies though the hop is http."""
        from starlette.applications import Starlette
        from starlette.routing import Mount

        repository = InMemoryRepository()
        webhook = asgi_webhook(repository, public_base_url=PUBLIC)
        base = asgi_server(Starlette(routes=[Mount(MOUNT, app=webhook)]))
        assert post_via_proxy(base, public_url=PUBLIC, forwarded=False) == 204

    def test_asgi_settings_webhook_base_url(self, asgi_server: Callable[..., str]) -> None:
        """settings.webhook_base_url serves as the public URL, settings giving the token."""
        settings = TwilioSettings(
            account_sid="AC" + "2" * 32, auth_token=TOKEN, webhook_base_url=PUBLIC
        )
        repository = InMemoryRepository()
        webhook = make_asgi_app(settings=settings, repository=repository)
        base = asgi_server(mount_asgi(_not_found_asgi, MOUNT, webhook))
        assert post_via_proxy(base, public_url=PUBLIC, forwarded=False) == 204

    @pytest.mark.parametrize("trust", [True, False])
    def test_asgi_forwarded_headers(self, asgi_server: Callable[..., str], trust: bool) -> None:
        """Forwarded headers verify only when trusted; untrusted, the same request is 403."""
        repository = InMemoryRepository()
        webhook = asgi_webhook(repository, trust_forwarded_headers=trust)
        base = asgi_server(mount_asgi(_not_found_asgi, MOUNT, webhook))
        status = post_via_proxy(base, public_url=PUBLIC, forwarded=True)
        assert status == (204 if trust else 403)
        assert (repository.find_by_sid(SM) is not None) is trust

    @pytest.mark.parametrize("trust", [True, False])
    def test_wsgi_forwarded_headers(self, wsgi_server: Callable[..., str], trust: bool) -> None:
        """The WSGI app behind the proxy: forwarded headers count only when trusted."""
        repository = InMemoryRepository()
        webhook = wsgi_webhook(repository, trust_forwarded_headers=trust)
        base = wsgi_server(mount_wsgi(_not_found_wsgi, MOUNT, webhook), server="werkzeug")
        assert post_via_proxy(base, public_url=PUBLIC, forwarded=True) == (204 if trust else 403)

    def test_wsgi_public_base_url(self, wsgi_server: Callable[..., str]) -> None:
        """The WSGI app with public_base_url under wsgiref (no REQUEST_URI)."""
        repository = InMemoryRepository()
        webhook = wsgi_webhook(repository, public_base_url=PUBLIC + "/")
        base = wsgi_server(mount_wsgi(_not_found_wsgi, MOUNT, webhook))
        assert post_via_proxy(base, public_url=PUBLIC, forwarded=False) == 204


async def _not_found_asgi(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})


def _not_found_wsgi(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found"]
