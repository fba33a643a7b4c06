"""The console for WSGI servers and frameworks: a thin adapter over its core.

It builds a `ConsoleRequest` from the environ (no body is read: the console
only answers GET and HEAD), drives `ConsoleCore.handle` with `run`, in the
server's thread, and answers. Everything it calls must be plain: an async
repository, consent store or ``authorize`` is refused when the app is built.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import TYPE_CHECKING, Any

from servio_twilio.console.auth import Authorize
from servio_twilio.console.config import (
    check_authorize,
    check_consent_listing,
    check_console_repository,
    check_mask_numbers,
)
from servio_twilio.console.core import ConsoleCore
from servio_twilio.console.health import HealthCache
from servio_twilio.console.http import ConsoleRequest
from servio_twilio.console.render import Renderer
from servio_twilio.console.views import Masking
from servio_twilio.domain.settings import TwilioSettings, check_settings
from servio_twilio.domain.steps import run

if TYPE_CHECKING:
    from servio_twilio.storage.consent import ConsentStore
    from servio_twilio.storage.repository import CommunicationRepository

__all__ = ["WSGIApp", "make_wsgi_app"]

log = logging.getLogger("servio_twilio.console")

StartResponse = Callable[..., Any]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]
"""A WSGI application: ``app(environ, start_response) -> iterable of bytes``."""


def make_wsgi_app(
    *,
    repository: CommunicationRepository,
    authorize: Authorize,
    consent_store: ConsentStore | None = None,
    settings: TwilioSettings | None = None,
    mask_numbers: bool = True,
) -> WSGIApp:
    """The operator console as a WSGI app: the pages of `make_asgi_app`, for WSGI hosts.

    Mount it under a prefix (Flask: werkzeug's ``DispatcherMiddleware``;
    Django: `servio_twilio.mount_wsgi`); its links follow the mount point
    (``SCRIPT_NAME``). ``authorize``, ``repository`` and ``consent_store``
    must be plain (sync); they run in the server's thread.

    Raises:
        ConfigurationError: no ``authorize``, an async ``authorize``,
            repository or consent store, one without the methods the pages
            read, or Jinja2 not installed (``pip install "servio-twilio[console]"``).

    New in 0.2.0.
    """
    authorize = check_authorize(authorize, allow_async=False)
    repository = check_console_repository(repository, allow_async=False)
    consent_store = check_consent_listing(consent_store, allow_async=False)
    settings = check_settings(settings)
    masking = Masking(check_mask_numbers(mask_numbers))
    core = ConsoleCore(
        renderer=Renderer(masking), consents=consent_store is not None, health=settings is not None
    )
    health = None
    if settings is not None:
        from servio_twilio.sending.client import CommunicationsClient  # noqa: PLC0415

        health = HealthCache(CommunicationsClient(settings, repository=repository).health)
    targets = {
        "authorize": authorize,
        "repository": repository,
        "consent": consent_store,
        "health": health,
    }

    def console_app(environ: dict[str, Any], start_response: StartResponse) -> list[bytes]:
        request = _request(environ)
        try:
            response = run(core.handle(request), targets)
        except Exception:
            log.exception("the console failed on %s %s", request.method, request.path[:100])
            response = core.failure(request)
        start_response(
            f"{response.status} {HTTPStatus(response.status).phrase}", list(response.headers)
        )
        return [response.body]

    return console_app


def _text(environ: dict[str, Any], key: str) -> str:
    """A path variable as text: PEP 3333 hands over its bytes decoded as Latin-1."""
    raw = str(environ.get(key) or "")
    try:
        return raw.encode("latin-1").decode("utf-8")
    except UnicodeError:
        return raw.encode("latin-1", "replace").decode("utf-8", "replace")


def _request(environ: dict[str, Any]) -> ConsoleRequest:
    headers = {
        key[5:].lower().replace("_", "-"): str(value)
        for key, value in environ.items()
        if key.startswith("HTTP_")
    }
    for key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        if environ.get(key):
            headers[key.lower().replace("_", "-")] = str(environ[key])
    return ConsoleRequest(
        method=str(environ.get("REQUEST_METHOD") or "GET"),
        path=_text(environ, "PATH_INFO") or "/",
        query=str(environ.get("QUERY_STRING") or ""),
        headers=headers,
        client=environ.get("REMOTE_ADDR") or None,
        root_path=_text(environ, "SCRIPT_NAME"),
    )
