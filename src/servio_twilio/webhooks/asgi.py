"""The webhook app for ASGI servers and frameworks, and a path-prefix dispatcher.

A thin adapter over `servio_twilio.webhooks.core`: it reads the request (body across
``more_body`` messages, never past ``max_body_bytes``), lets the core judge it,
and sends the answer. Work the core asks for runs inline, except that async
hooks are awaited; an async repository (or consent store) is awaited on the
loop; and when the repository is ``blocking``, the repository and plain
hooks run in the app's own pool of ``max_threads`` threads (never asyncio's
default executor, 6 threads on a 2-core host). A request's repository steps
get ``storage_timeout`` seconds in all, after which the app answers 503 (a
late blocking call is left to its thread; an awaited one is cancelled). With
no hooks and a repository that is neither ``blocking`` nor async, the core
answers directly (`WebhookCore.respond`).
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from servio_twilio.domain.errors import ConfigurationError
from servio_twilio.domain.settings import TwilioSettings
from servio_twilio.domain.steps import run_async
from servio_twilio.domain.telemetry import callback_span
from servio_twilio.storage.consent import AsyncConsentStore, ConsentStore
from servio_twilio.storage.repository import AsyncCommunicationRepository, CommunicationRepository
from servio_twilio.storage.threads import Threads
from servio_twilio.webhooks.core import (
    ROUTES,
    WebhookCore,
    WebhookRequest,
    WebhookResponse,
    build_core,
    check_prefix,
    outcome,
)
from servio_twilio.webhooks.events import AsyncInboundHook, AsyncProspectResolver, EventHook
from servio_twilio.webhooks.http import HEADERS, declared_length

if TYPE_CHECKING:
    from servio_twilio.webhooks.verifier import WebhookVerifier

__all__ = ["ASGIApp", "make_asgi_app", "mount_asgi"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
"""An ASGI 3 application: ``await app(scope, receive, send)``."""

_PATH_SAFE = "/!$&'()*+,;=:@-._~%"
_WANTED = {name.encode("latin-1"): name for name in HEADERS}
_DEFAULT_PORTS = {"http": 80, "https": 443}


def make_asgi_app(
    *,
    settings: TwilioSettings | None = None,
    verifier: WebhookVerifier | None = None,
    repository: CommunicationRepository | AsyncCommunicationRepository,
    public_base_url: str | None = None,
    trust_forwarded_headers: bool = False,
    on_event: EventHook | None = None,
    on_inbound: AsyncInboundHook | None = None,
    prospect_resolver: AsyncProspectResolver | None = None,
    max_body_bytes: int = 65536,
    storage_timeout: float = 10.0,
    max_threads: int = 32,
    consent_store: ConsentStore | AsyncConsentStore | None = None,
) -> ASGIApp:
    """An ASGI app receiving Twilio's callbacks into ``repository``.

    Routes, relative to where it is mounted (``POST``, form-encoded):
    ``/message-status``, ``/call-status``, ``/recording-status`` and
    ``/inbound``. ``settings`` gives the verifier (its auth tokens) and, unless
    ``public_base_url`` is given, the public URL of the mount point
    (``settings.webhook_base_url``); ``verifier`` replaces the one from
    ``settings``. Hooks may be plain or async: ``on_event(event)`` after each
    callback is stored, ``on_inbound(event)`` returning the TwiML to answer an
    incoming message with (or None), ``prospect_resolver(from_number)``
    returning the prospect id an incoming message belongs to.

    The app answers ``lifespan`` startup and shutdown, closes websocket
    connections, and raises `ConfigurationError` for any other scope type.

    ``repository`` is a `CommunicationRepository` or an
    `AsyncCommunicationRepository` (such as
    `servio_twilio.firestore.AsyncFirestoreRepository`), awaited on the loop.
    A ``blocking`` repository runs in the app's own pool of ``max_threads``
    threads (started on first use). When a request's repository calls have
    not finished ``storage_timeout`` seconds after the first began, the app
    answers 503 with ``Retry-After`` (Twilio waits 15 s for an answer, then
    retries): a late blocking call is left to finish in its thread, an
    awaited one is cancelled. A repository neither ``blocking`` nor async
    (`InMemoryRepository`) runs inline, unbounded.

    With ``consent_store`` (a `ConsentStore`, or an `AsyncConsentStore`
    beside an async repository), ``/inbound`` applies opt-out and opt-in
    keywords and Twilio's ``OptOutType`` to the sender's consent on the
    message's channel before storing the message (see the Compliance page).

    Raises:
        ConfigurationError: for settings that cannot work (no settings and no
            verifier, a bad ``public_base_url``, a hook that is not callable,
            a ``storage_timeout`` that is not a positive number...).
        InvalidArgument: (a ``ValueError``) ``max_threads`` is not an int >= 1.

    New in 0.1.0. Changed in 0.2.0: async repositories, ``max_threads``, ``consent_store``.
    """
    threads = Threads(max_threads, name="servio-webhook")  # started on first use
    core = build_core(
        settings=settings,
        verifier=verifier,
        repository=repository,
        public_base_url=public_base_url,
        trust_forwarded_headers=trust_forwarded_headers,
        on_event=on_event,
        on_inbound=on_inbound,
        prospect_resolver=prospect_resolver,
        max_body_bytes=max_body_bytes,
        allow_async_hooks=True,
        storage_timeout=storage_timeout,
        consent_store=consent_store,
    )
    limit = core.max_body_bytes

    async def twilio_webhook_app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") != "http":
            await _other_scope(scope, receive, send)
            return
        path, root = scope.get("path") or "/", scope.get("root_path") or ""
        route = path[len(root) :] if root and path.startswith(root) else path
        method = scope.get("method", "GET")
        headers: dict[str, str] = {}
        for name, value in scope.get("headers") or ():
            key = _WANTED.get(name.lower())
            if key is not None and key not in headers:
                headers[key] = value.decode("latin-1")
        body, complete = b"", True
        if method == "POST" and route in ROUTES:
            declared = headers.get("content-length")
            if declared is not None and (declared_length(declared) or 0) > limit:
                complete = False
            else:
                message = await receive()
                body = bytes(message.get("body") or b"")  # no copy when it is bytes already
                if message.get("more_body", False) or message.get("type") != "http.request":
                    read = await _read_rest(receive, limit, message)
                    if read is None:
                        return  # the client went away
                    body, complete = read
                elif len(body) > limit:
                    body, complete = b"", False
        scheme = scope.get("scheme") or "http"
        request = WebhookRequest(
            method=method,
            route=route,
            raw_path=_raw_path(scope, path, root),
            query=(scope.get("query_string") or b"").decode("latin-1"),
            scheme=scheme,
            host=headers.get("host") or _server_host(scope, scheme),
            headers=headers,
            body=body,
            body_complete=complete,
        )
        with callback_span(ROUTES.get(route)) as observed:
            if core.inline:
                response = core.respond(request)
            else:
                response = await _drive(core, request, threads)
            observed.answered(response.status)
        await send(_start_message(response))
        await send({"type": "http.response.body", "body": response.body})

    return twilio_webhook_app


def _raw_path(scope: Scope, path: str, root: str) -> str:
    raw = scope.get("raw_path")
    if raw:
        return bytes(raw).decode("latin-1").split("?", 1)[0]
    # ``path`` already includes ``root_path`` in current servers and Starlette's Mount.
    full = path if not root or path.startswith(root) else root + path
    return quote(full, safe=_PATH_SAFE)


def _server_host(scope: Scope, scheme: str) -> str:
    server = scope.get("server")
    if not server:
        return "localhost"
    host, port = server[0], server[1]
    if port is None or _DEFAULT_PORTS.get(scheme) == port:
        return str(host)
    return f"{host}:{port}"


async def _read_rest(receive: Receive, limit: int, first: Message) -> tuple[bytes, bool] | None:
    """The body that begins with message ``first`` and whether it is complete.

    None when the client disconnected; stops reading past ``limit``.
    """
    chunks: list[bytes] = []
    size = 0
    message = first
    while True:
        if message.get("type") == "http.disconnect":
            return None
        chunk = bytes(message.get("body") or b"")
        size += len(chunk)
        if size > limit:
            return b"", False
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks), True
        message = await receive()


async def _drive(core: WebhookCore, request: WebhookRequest, threads: Threads) -> WebhookResponse:
    """Run ``core.handle(request)``: async work awaited, blocking work in the app's threads.

    The repository steps share one deadline, ``core.storage_timeout`` seconds
    from the start of the first, when they are blocking or awaited: past it
    the answer is `WebhookCore.storage_timed_out`'s 503.
    """
    steps = core.handle(request)
    blocking, asynchronous = core.blocking, core.asynchronous
    loop = asyncio.get_running_loop()
    deadline: float | None = None
    value: Any = None
    error: Exception | None = None
    while True:
        try:
            step = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as stop:
            response: WebhookResponse = stop.value
            return response
        value, error = None, None
        if (blocking or asynchronous) and not step.is_hook:
            if deadline is None:
                deadline = loop.time() + core.storage_timeout
            if asynchronous and step.steps is not None:
                work: Awaitable[Any] = _outcome_async(step.steps, core)
            else:
                work = threads.run(outcome, step.call)
            try:
                value, error = await asyncio.wait_for(work, deadline - loop.time())
            except TimeoutError:
                return core.storage_timed_out(steps, request)
            continue
        try:
            if step.is_async:
                value = await step.call()
            elif blocking:
                value = await threads.run(step.call)
            else:
                value = step.call()
            if step.is_hook and inspect.isawaitable(value):  # a plain hook may return one
                value = await value
        except Exception as exc:
            error = exc


async def _outcome_async(
    steps: Callable[[], Any], core: WebhookCore
) -> tuple[Any, Exception | None]:
    """`outcome` of awaiting a storage step's calls on the loop."""
    try:
        return await run_async(steps(), core.targets), None
    except Exception as exc:
        return None, exc


def _start_message(response: WebhookResponse) -> Message:
    """The ``http.response.start`` message of ``response``."""
    headers = [(name.encode("latin-1"), text.encode("latin-1")) for name, text in response.headers]
    if response.status != 204:
        headers.append((b"content-length", b"%d" % len(response.body)))
    return {"type": "http.response.start", "status": response.status, "headers": headers}


async def _other_scope(scope: Scope, receive: Receive, send: Send) -> None:
    """Lifespan and websocket scopes; anything else is a configuration error."""
    kind = scope.get("type")
    if kind == "lifespan":
        await _lifespan(receive, send)
    elif kind == "websocket":
        if (await receive()).get("type") == "websocket.connect":
            await send({"type": "websocket.close", "code": 1008})
    else:
        raise ConfigurationError(f"the Twilio webhook app serves HTTP, not {kind!r} scopes")


async def _lifespan(receive: Receive, send: Send) -> None:
    while True:
        message = await receive()
        if message.get("type") == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message.get("type") == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def mount_asgi(host_app: ASGIApp, prefix: str, app: ASGIApp) -> ASGIApp:
    """An ASGI app sending requests under ``prefix`` to ``app``, all others to ``host_app``.

    ``prefix`` is a path such as ``/api/twilio/webhook``; a request for it or
    anything below it goes to ``app`` with ``prefix`` added to ``root_path``
    (``path`` stays the full path, as Starlette's ``Mount`` does). Lifespan
    events go to ``host_app``. For hosts that cannot mount apps (Django).

    Raises:
        ConfigurationError: ``prefix`` is not a path below ``/``.

    New in 0.1.0.
    """
    prefix = check_prefix(prefix)

    async def dispatcher(scope: Scope, receive: Receive, send: Send) -> None:
        if scope.get("type") in ("http", "websocket"):
            path, root = scope.get("path") or "/", scope.get("root_path") or ""
            included = not root or path.startswith(root)
            relative = path[len(root) :] if root and included else path
            if relative == prefix or relative.startswith(prefix + "/"):
                child = dict(scope)
                child["root_path"] = root + prefix
                if not included:  # an older server: ``path`` was relative to ``root_path``
                    child["path"] = relative[len(prefix) :] or "/"
                await app(child, receive, send)
                return
        await host_app(scope, receive, send)

    return dispatcher
