"""The console for ASGI servers and frameworks: a thin adapter over its core.

It builds a `ConsoleRequest` from the scope (no body is read: the console
only answers GET and HEAD), drives `ConsoleCore.handle` with `run_async` and
sends the page. An async repository, consent store or ``authorize`` is
awaited on the loop; a ``blocking`` repository or consent store runs in the
app's own pool of ``max_threads`` threads, as does the sync health check;
anything else (`InMemoryRepository`, a plain ``authorize``) runs inline.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

from servio_twilio.console.auth import Authorize
from servio_twilio.console.config import (
    check_authorize,
    check_consent_listing,
    check_console_repository,
    check_mask_numbers,
)
from servio_twilio.console.core import ConsoleCore
from servio_twilio.console.health import AsyncHealthCache
from servio_twilio.console.http import ConsoleRequest, ConsoleResponse
from servio_twilio.console.render import Renderer
from servio_twilio.console.views import Masking
from servio_twilio.domain.errors import ConfigurationError
from servio_twilio.domain.settings import TwilioSettings, check_settings
from servio_twilio.domain.steps import is_async_callable, run_async
from servio_twilio.storage.repository import is_async_repository
from servio_twilio.storage.threads import Threads

if TYPE_CHECKING:
    from servio_twilio.storage.consent import AsyncConsentStore, ConsentStore
    from servio_twilio.storage.repository import (
        AsyncCommunicationRepository,
        CommunicationRepository,
    )

__all__ = ["ASGIApp", "make_asgi_app"]

log = logging.getLogger("servio_twilio.console")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
"""An ASGI 3 application: ``await app(scope, receive, send)``."""


class _InThreads:
    """Any object's methods as coroutines that run them in ``threads``."""

    def __init__(self, target: object, threads: Threads) -> None:
        self._target = target
        self._threads = threads

    def __repr__(self) -> str:
        return f"<in threads: {self._target!r}>"

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        method = getattr(self._target, name)
        return functools.partial(self._threads.run, method)


def _on_loop(target: object, threads: Threads, *, asynchronous: bool) -> object:
    """``target`` as the loop may call it: itself unless it blocks, then in ``threads``."""
    if target is None or asynchronous or not getattr(target, "blocking", True):
        return target
    return _InThreads(target, threads)


def make_asgi_app(
    *,
    repository: CommunicationRepository | AsyncCommunicationRepository,
    authorize: Authorize,
    consent_store: ConsentStore | AsyncConsentStore | None = None,
    settings: TwilioSettings | None = None,
    mask_numbers: bool = True,
    max_threads: int = 32,
) -> ASGIApp:
    """The operator console as an ASGI app: read-only pages over ``repository``.

    Mount it where operators reach it (``app.mount("/console", console)``);
    its links follow the mount point (ASGI ``root_path``). Pages: ``/`` (the
    last 7 days by status and channel, recent failures, health),
    ``/communications`` (filters, paging), ``/communications/{id}``,
    ``/prospects/{id}`` and, with ``consent_store``, ``/consents``; see the
    Console docs page.

    ``authorize(request)`` (plain or async) sees every request first, the
    stylesheet's too, as a `ConsoleRequest`: anything but ``True`` is refused
    with 401 and ``WWW-Authenticate: Basic``. `basic_auth` is a ready one. A
    plain ``authorize`` runs on the event loop: keep it quick, or make it
    async. ``repository`` and ``consent_store`` may be sync or async; a
    ``blocking`` one runs in the app's own pool of ``max_threads`` threads.
    With ``settings``, the overview shows `CommunicationsClient.health`'s
    report, checked at most once a minute. Phone numbers are masked unless
    ``mask_numbers=False``; message bodies are shown as received, escaped.

    Raises:
        ConfigurationError: no ``authorize``, a repository or consent store
            without the methods the pages read, Jinja2 not installed
            (``pip install "servio-twilio[console]"``).
        InvalidArgument: (a ``ValueError``) ``max_threads`` is not an int >= 1.

    New in 0.2.0.
    """
    authorize = check_authorize(authorize, allow_async=True)
    repository = check_console_repository(repository, allow_async=True)
    consent_store = check_consent_listing(consent_store, allow_async=True)
    settings = check_settings(settings)
    masking = Masking(check_mask_numbers(mask_numbers))
    threads = Threads(max_threads, name="servio-console")  # started on first use
    core = ConsoleCore(
        renderer=Renderer(masking), consents=consent_store is not None, health=settings is not None
    )
    repository_async = is_async_repository(repository)
    targets: dict[str, Any] = {
        "authorize": authorize,
        "repository": _on_loop(repository, threads, asynchronous=repository_async),
        "consent": _on_loop(
            consent_store,
            threads,
            asynchronous=is_async_callable(getattr(consent_store, "opted_out", None)),
        ),
        "health": None
        if settings is None
        else _health(settings, repository, threads, asynchronous=repository_async),
    }

    async def console_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await _other_scope(scope, receive, send)
            return
        request = _request(scope)
        try:
            response = await run_async(core.handle(request), targets)
        except Exception:
            log.exception("the console failed on %s %s", request.method, request.path[:100])
            response = core.failure(request)
        await send(_start_message(response))
        await send({"type": "http.response.body", "body": response.body})

    return console_app


def _health(
    settings: TwilioSettings, repository: Any, threads: Threads, *, asynchronous: bool
) -> AsyncHealthCache:
    """The health report's cache: the async client's over an async repository, else the sync
    client's in ``threads``."""
    if asynchronous:
        from servio_twilio.sending.async_client import (  # noqa: PLC0415 - only with settings
            AsyncCommunicationsClient,
        )

        client = AsyncCommunicationsClient(settings, repository=repository)
        return AsyncHealthCache(client.health)
    from servio_twilio.sending.client import CommunicationsClient  # noqa: PLC0415

    sync_client = CommunicationsClient(settings, repository=repository)
    return AsyncHealthCache(lambda: threads.run(sync_client.health))


def _request(scope: Scope) -> ConsoleRequest:
    path, root = scope.get("path") or "/", scope.get("root_path") or ""
    # ``path`` includes ``root_path`` in current servers and Starlette's Mount.
    relative = path[len(root) :] if root and path.startswith(root) else path
    headers: dict[str, str] = {}
    for name, value in scope.get("headers") or ():
        key = bytes(name).decode("latin-1").lower()
        text = bytes(value).decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text
    client = scope.get("client")
    return ConsoleRequest(
        method=str(scope.get("method") or "GET"),
        path=relative or "/",
        query=bytes(scope.get("query_string") or b"").decode("latin-1"),
        headers=headers,
        client=str(client[0]) if client else None,
        root_path=root,
    )


def _start_message(response: ConsoleResponse) -> Message:
    headers = [(name.encode("latin-1"), text.encode("latin-1")) for name, text in response.headers]
    return {"type": "http.response.start", "status": response.status, "headers": headers}


async def _other_scope(scope: Scope, receive: Receive, send: Send) -> None:
    """Lifespan and websocket scopes; anything else is a configuration error."""
    kind = scope.get("type")
    if kind == "lifespan":
        while True:
            message = await receive()
            if message.get("type") == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message.get("type") == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    elif kind == "websocket":
        if (await receive()).get("type") == "websocket.connect":
            await send({"type": "websocket.close", "code": 1008})
    else:
        raise ConfigurationError(f"the console serves HTTP, not {kind!r} scopes")
