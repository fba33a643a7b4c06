"""The webhook apps with async repositories, their own threads, and a consent store."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

import httpx
import pytest

from servio_twilio import (
    AsyncInMemoryConsentStore,
    AsyncInMemoryRepository,
    ConfigurationError,
    InMemoryConsentStore,
    InMemoryRepository,
    InvalidArgument,
    RepositoryError,
)
from servio_twilio.webhooks.asgi import make_asgi_app
from servio_twilio.webhooks.verifier import WebhookVerifier
from servio_twilio.webhooks.wsgi import make_wsgi_app
from support.twilio_callbacks import TOKEN, inbound_params, message_params, sid, signed

pytestmark = pytest.mark.anyio

LOCAL = "http://testserver"
SENDER = "+5511988887777"


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _post(app: Any, path: str, params: dict[str, Any], **extra: str) -> httpx.Response:
    headers, body = signed(LOCAL + path, params)
    headers.update(extra)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=LOCAL) as client:
        return await client.post(path, content=body, headers=headers)


class _Slow(InMemoryRepository):
    """Blocking: every record_event sleeps, counting how many run at once and where."""

    blocking = True

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.lock = threading.Lock()
        self.running = self.peak = 0
        self.threads: set[str] = set()

    def record_event(self, *args: Any, **kwargs: Any) -> Any:
        with self.lock:
            self.running += 1
            self.peak = max(self.peak, self.running)
            self.threads.add(threading.current_thread().name)
        try:
            time.sleep(self.seconds)
            return super().record_event(*args, **kwargs)
        finally:
            with self.lock:
                self.running -= 1


class _AsyncSlow(AsyncInMemoryRepository):
    """Async: every record_event awaits a sleep on the loop, counting overlap."""

    def __init__(self, seconds: float) -> None:
        super().__init__()
        self.seconds = seconds
        self.running = self.peak = 0
        self.loop_threads: set[int] = set()

    async def record_event(self, *args: Any, **kwargs: Any) -> Any:
        self.running += 1
        self.peak = max(self.peak, self.running)
        self.loop_threads.add(threading.get_ident())
        try:
            await asyncio.sleep(self.seconds)
            return await super().record_event(*args, **kwargs)
        finally:
            self.running -= 1


def _app(repository: Any, **options: Any) -> Any:
    return make_asgi_app(verifier=WebhookVerifier(TOKEN), repository=repository, **options)


async def _burst(app: Any, n: int) -> list[int]:
    replies = await asyncio.gather(
        *(_post(app, "/message-status", message_params(sid("SM", k), "sent")) for k in range(n))
    )
    return [reply.status_code for reply in replies]


class TestRepositoryKinds:
    async def test_an_async_repository_is_awaited_on_the_loop(self) -> None:
        """Callbacks into an async repository overlap on the loop's own thread, no pool."""
        repository = _AsyncSlow(0.05)
        statuses = await _burst(_app(repository), 20)
        assert statuses == [204] * 20
        assert repository.peak == 20
        assert repository.loop_threads == {threading.get_ident()}
        assert len(repository) == 20

    @pytest.mark.parametrize(("max_threads", "peak"), [(32, 20), (4, 4)])
    async def test_a_blocking_repository_runs_in_max_threads(
        self, max_threads: int, peak: int
    ) -> None:
        """A blocking repository runs in the app's own pool, ``max_threads`` at most."""
        repository = _Slow(0.05)
        statuses = await _burst(_app(repository, max_threads=max_threads), 20)
        assert statuses == [204] * 20
        assert repository.peak == peak
        assert all(name.startswith("servio-webhook") for name in repository.threads)

    async def test_an_async_repository_past_storage_timeout_answers_503(self) -> None:
        """An awaited repository that outlasts storage_timeout: 503, nothing kept."""
        repository = _AsyncSlow(5.0)
        reply = await _post(
            _app(repository, storage_timeout=0.2),
            "/message-status",
            message_params(sid("SM", 1), "sent"),
        )
        assert reply.status_code == 503
        assert len(repository) == 0

    @pytest.mark.parametrize("max_threads", [0, -1, 1.5, True])
    def test_max_threads_must_be_a_positive_int(self, max_threads: Any) -> None:
        """A pool of no threads, or of a fraction of one, is refused."""
        with pytest.raises(InvalidArgument, match="max_threads"):
            _app(InMemoryRepository(), max_threads=max_threads)

    def test_a_wsgi_app_refuses_an_async_repository(self) -> None:
        """WSGI cannot await: an async repository is a configuration error."""
        with pytest.raises(ConfigurationError, match="WSGI"):
            make_wsgi_app(verifier=WebhookVerifier(TOKEN), repository=AsyncInMemoryRepository())


class _DownConsent(InMemoryConsentStore):
    def opt_out(self, *args: Any, **kwargs: Any) -> None:
        raise RepositoryError("consents unavailable")


KINDS = ["sync", "async"]


def _consent_app(kind: str) -> tuple[Any, Any, Any]:
    """(app, repository, a sync view of the consent store) of each kind."""
    if kind == "sync":
        repository: Any = InMemoryRepository()
        store: Any = InMemoryConsentStore()
        return _app(repository, consent_store=store), repository, store
    async_store = AsyncInMemoryConsentStore()
    repository = AsyncInMemoryRepository()
    app = _app(repository, consent_store=async_store)
    return app, repository.sync, async_store.sync


@pytest.mark.parametrize("kind", KINDS)
class TestConsentOnInbound:
    @pytest.mark.parametrize("body", ["STOP", "stop", " Stop ", "STOPALL", "UNSUBSCRIBE"])
    async def test_opt_out_keywords(self, kind: str, body: str) -> None:
        """An opt-out keyword opts the sender out on SMS; the message is still stored."""
        app, repository, store = _consent_app(kind)
        params = inbound_params(sid("SM", 1), body, From=SENDER)
        reply = await _post(app, "/inbound", params)
        assert reply.status_code == 200
        assert store.is_opted_out(SENDER, "sms")
        assert not store.is_opted_out(SENDER, "whatsapp")
        assert repository.find_by_sid(sid("SM", 1)) is not None

    async def test_opt_out_type_decides(self, kind: str) -> None:
        """OptOutType=STOP on a body 'Pare' opts out; START opts back in; HELP changes nothing."""
        app, _repository, store = _consent_app(kind)
        for n, (body, kind_of) in enumerate([("Pare", "STOP"), ("Ajuda", "HELP")]):
            params = inbound_params(sid("SM", n), body, From=SENDER, OptOutType=kind_of)
            assert (await _post(app, "/inbound", params)).status_code == 200
            assert store.is_opted_out(SENDER, "sms")
        params = inbound_params(sid("SM", 9), "Volta", From=SENDER, OptOutType="START")
        assert (await _post(app, "/inbound", params)).status_code == 200
        assert not store.is_opted_out(SENDER, "sms")

    @pytest.mark.parametrize("body", ["START", "UNSTOP", "yes"])
    async def test_opt_in_keywords(self, kind: str, body: str) -> None:
        """START, UNSTOP and YES opt a number back in."""
        app, _repository, store = _consent_app(kind)
        store.opt_out(SENDER, "sms", source="admin")
        reply = await _post(app, "/inbound", inbound_params(sid("SM", 2), body, From=SENDER))
        assert reply.status_code == 200
        assert not store.is_opted_out(SENDER, "sms")

    async def test_whatsapp_consent_is_its_own(self, kind: str) -> None:
        """STOP over WhatsApp opts out WhatsApp only."""
        app, _repository, store = _consent_app(kind)
        params = inbound_params(
            sid("SM", 3), "STOP", From="whatsapp:" + SENDER, To="whatsapp:+14155238886"
        )
        assert (await _post(app, "/inbound", params)).status_code == 200
        assert store.is_opted_out(SENDER, "whatsapp")
        assert not store.is_opted_out(SENDER, "sms")


async def test_a_consent_store_down_answers_503_and_stores_nothing() -> None:
    """The opt-out cannot be kept: 503 (Twilio retries), and the message is not stored yet."""
    repository = InMemoryRepository()
    app = _app(repository, consent_store=_DownConsent())
    reply = await _post(app, "/inbound", inbound_params(sid("SM", 4), "STOP", From=SENDER))
    assert reply.status_code == 503
    assert len(repository) == 0
