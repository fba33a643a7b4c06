"""The webhook app for WSGI servers and frameworks, and a path-prefix dispatcher.

A thin adapter over `servio_twilio.webhooks.core`: it reads the request (never more
than ``CONTENT_LENGTH`` nor past ``max_body_bytes``), lets the core judge it
and answers. Hooks run inline, in the server's thread; so does a repository
that is not ``blocking``. A ``blocking`` one runs in a small thread pool the
app owns, so that the server's thread waits for a request's repository steps
at most ``storage_timeout`` seconds in all, then answers 503 and leaves the
late call to finish in the pool.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor, wait
from http import HTTPStatus
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlsplit

from servio_twilio.domain.settings import TwilioSettings
from servio_twilio.domain.telemetry import callback_span
from servio_twilio.storage.consent import ConsentStore
from servio_twilio.storage.repository import CommunicationRepository
from servio_twilio.webhooks.core import (
    ROUTES,
    WebhookCore,
    WebhookRequest,
    WebhookResponse,
    build_core,
    call_inline,
    check_prefix,
    outcome,
)
from servio_twilio.webhooks.events import EventHook, InboundHook, ProspectResolver
from servio_twilio.webhooks.http import HEADERS, declared_length

if TYPE_CHECKING:
    from servio_twilio.webhooks.verifier import WebhookVerifier

__all__ = ["WSGIApp", "make_wsgi_app", "mount_wsgi"]

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
"""A WSGI application: ``app(environ, start_response) -> iterable of bytes``."""

_PATH_SAFE = "/!$&'()*+,;=:@-._~"
_DEFAULT_PORTS = {"http": "80", "https": "443"}
_CHUNK = 65536
_STORAGE_WORKERS = 8  # threads of the app's pool for a blocking repository, started as needed
# The environ keys of the headers the core reads (``Content-Type`` has its own key).
_ENVIRON_HEADERS = tuple(
    ("HTTP_" + name.upper().replace("-", "_"), name)
    for name in sorted(HEADERS)
    if name not in ("content-type", "content-length")
)


def make_wsgi_app(
    *,
    settings: TwilioSettings | None = None,
    verifier: WebhookVerifier | None = None,
    repository: CommunicationRepository,
    public_base_url: str | None = None,
    trust_forwarded_headers: bool = False,
    on_event: EventHook | None = None,
    on_inbound: InboundHook | None = None,
    prospect_resolver: ProspectResolver | None = None,
    max_body_bytes: int = 65536,
    storage_timeout: float = 10.0,
    consent_store: ConsentStore | None = None,
) -> WSGIApp:
    """A WSGI app receiving Twilio's callbacks into ``repository``.

    The same routes, keywords and answers as `make_asgi_app`; hooks must be
    plain functions. The URL checked against the signature is built from
    ``public_base_url`` when given (recommended); else from ``RAW_URI`` or
    ``REQUEST_URI`` when the server sets them (gunicorn, werkzeug), else from
    ``SCRIPT_NAME`` + ``PATH_INFO`` re-quoted, which loses the original
    percent-encoding (``wsgiref``).

    A ``blocking`` repository runs in a small thread pool the app owns (at
    most 8 threads, started as needed): when a request's repository calls
    have not finished ``storage_timeout`` seconds after the first began, the
    server's thread answers 503 with ``Retry-After`` and the late call is left
    to finish in the pool. A repository that is not ``blocking`` runs inline.
    ``consent_store`` (a `ConsentStore`) is driven as the repository is: see
    `make_asgi_app`.

    Raises:
        ConfigurationError: for settings that cannot work, an async hook, an
            async repository or consent store, or a ``storage_timeout`` that is
            not a positive number.

    New in 0.1.0. Changed in 0.2.0: ``consent_store``.
    """
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
        allow_async_hooks=False,
        storage_timeout=storage_timeout,
        consent_store=consent_store,
    )
    limit = core.max_body_bytes
    pool = None
    if core.blocking:
        pool = ThreadPoolExecutor(_STORAGE_WORKERS, thread_name_prefix="servio-webhook-storage")

    def twilio_webhook_app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        route = environ.get("PATH_INFO") or ""
        method = environ.get("REQUEST_METHOD") or "GET"
        headers = {name: environ[key] for key, name in _ENVIRON_HEADERS if key in environ}
        if environ.get("CONTENT_TYPE"):
            headers["content-type"] = environ["CONTENT_TYPE"]
        body, complete = b"", True
        if method == "POST" and route in ROUTES:
            body, complete = _read_body(environ, limit)
        scheme = environ.get("wsgi.url_scheme") or "http"
        request = WebhookRequest(
            method=method,
            route=route,
            raw_path=_raw_path(environ),
            query=environ.get("QUERY_STRING") or "",
            scheme=scheme,
            host=headers.get("host") or _server_host(environ, scheme),
            headers=headers,
            body=body,
            body_complete=complete,
        )
        with callback_span(ROUTES.get(route)) as observed:
            response = core.respond(request) if pool is None else _drive(core, request, pool)
            observed.answered(response.status)
        reply_headers = list(response.headers)
        if response.status != 204:
            reply_headers.append(("content-length", str(len(response.body))))
        start_response(f"{response.status} {HTTPStatus(response.status).phrase}", reply_headers)
        return [response.body]

    return twilio_webhook_app


def _drive(core: WebhookCore, request: WebhookRequest, pool: ThreadPoolExecutor) -> WebhookResponse:
    """Run ``core.handle(request)``: hooks inline, the repository steps in ``pool``.

    The repository steps share one deadline, ``core.storage_timeout`` seconds
    from the start of the first: past it the answer is
    `WebhookCore.storage_timed_out`'s 503, and a step still queued never starts.
    """
    steps = core.handle(request)
    deadline: float | None = None
    value: Any = None
    error: Exception | None = None
    while True:
        try:
            step = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as stop:
            response: WebhookResponse = stop.value
            return response
        if step.is_hook:
            value, error = outcome(call_inline, step)
            continue
        if deadline is None:
            deadline = time.monotonic() + core.storage_timeout
        future = pool.submit(outcome, step.call)
        done, _ = wait([future], timeout=max(deadline - time.monotonic(), 0.0))
        if not done:
            future.cancel()
            return core.storage_timed_out(steps, request)
        value, error = future.result()


def _read_body(environ: dict[str, Any], limit: int) -> tuple[bytes, bool]:
    """The body (at most ``limit`` bytes) and whether it is complete."""
    stream = environ.get("wsgi.input")
    if stream is None:
        return b"", True
    declared = (environ.get("CONTENT_LENGTH") or "").strip()
    if declared:
        length = declared_length(declared) or 0
        if length > limit:
            return b"", False
        return stream.read(length) if length else b"", True
    if not environ.get("wsgi.input_terminated"):
        return b"", True  # PEP 3333: without a length, the body is empty
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = stream.read(min(_CHUNK, limit + 1 - size))
        if not chunk:
            return b"".join(chunks), True
        size += len(chunk)
        if size > limit:
            return b"", False
        chunks.append(chunk)


def _raw_path(environ: dict[str, Any]) -> str:
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        if "://" in raw.split("?", 1)[0]:  # absolute form, as sent to a proxy
            return urlsplit(raw).path or "/"
        return str(raw).split("?", 1)[0]
    # Lossy: the original percent-encoding is gone; public_base_url avoids this.
    full = (environ.get("SCRIPT_NAME") or "") + (environ.get("PATH_INFO") or "")
    return quote(full.encode("latin-1", "replace"), safe=_PATH_SAFE)


def _server_host(environ: dict[str, Any], scheme: str) -> str:
    name = environ.get("SERVER_NAME") or "localhost"
    port = str(environ.get("SERVER_PORT") or "")
    return name if not port or _DEFAULT_PORTS.get(scheme) == port else f"{name}:{port}"


def mount_wsgi(host_app: WSGIApp, prefix: str, app: WSGIApp) -> WSGIApp:
    """A WSGI app sending requests under ``prefix`` to ``app``, all others to ``host_app``.

    ``prefix`` is a path such as ``/api/twilio/webhook``; a request for it or
    anything below it goes to ``app`` with ``prefix`` moved from ``PATH_INFO``
    to the end of ``SCRIPT_NAME``. For hosts that cannot mount apps (Django).

    Raises:
        ConfigurationError: ``prefix`` is not a path below ``/``.

    New in 0.1.0.
    """
    # PATH_INFO holds the path's bytes decoded as Latin-1 (PEP 3333).
    prefix = check_prefix(prefix).encode("utf-8").decode("latin-1")

    def dispatcher(environ: dict[str, Any], start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO") or ""
        if path == prefix or path.startswith(prefix + "/"):
            child = dict(environ)
            child["SCRIPT_NAME"] = (environ.get("SCRIPT_NAME") or "") + prefix
            child["PATH_INFO"] = path[len(prefix) :]
            return app(child, start_response)
        return host_app(environ, start_response)

    return dispatcher
