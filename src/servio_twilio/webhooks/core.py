"""The webhook core: one request in, one response out, shared by the ASGI and WSGI apps.

`WebhookCore.handle` takes a `WebhookRequest` (method, route, the parts of the
URL Twilio requested, headers, body) and judges it, in this order, the first
failure answering: unknown route 404; method 405 (``Allow: POST``); body over
``max_body_bytes`` 413; content type other than form-encoded 415; undecodable
form 400; signature 403; missing callback fields 400; storage down 503. A
stored status callback answers 204; ``/inbound`` answers 200 ``text/xml``.

It is written sans-I/O: ``handle`` is a generator that yields each piece of
work it needs done (a repository call, a user hook) as a `Step` and receives
its result. The WSGI app runs hooks inline and, when the repository is
``blocking``, the repository steps in a thread pool of its own; the ASGI app
awaits async hooks and runs the rest in a worker thread when the repository
is ``blocking``. Either app waits at most ``storage_timeout`` seconds for a
request's repository steps, from the start of the first, and then answers
503 (`WebhookCore.storage_timed_out`), leaving the late call to finish in its
thread. With no hooks and a repository that is not ``blocking``, the only
work is the store itself: ``respond`` then calls it directly
(`WebhookCore.inline`). Judging is pure: nothing is written before the
signature verifies, and the typed event is built only for a hook.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Generator, Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import attrs

from servio_twilio.domain.errors import MalformedCallback, RepositoryError
from servio_twilio.domain.models import utcnow
from servio_twilio.domain.phone_text import mask_phone, mask_phone_numbers
from servio_twilio.domain.settings import TwilioSettings, check_settings
from servio_twilio.domain.steps import Steps, is_async_callable, run
from servio_twilio.domain.telemetry import signature_failed
from servio_twilio.storage.consent import is_async_consent_store
from servio_twilio.storage.repository import (
    AsyncCommunicationRepository,
    CommunicationRepository,
    is_async_repository,
)
from servio_twilio.webhooks.callbacks import Callback, store_inbound_callback, store_status
from servio_twilio.webhooks.config import (
    check_body_limit,
    check_consent_store,
    check_hooks,
    check_prefix,
    check_public_base_url,
    check_repository,
    check_storage_timeout,
    check_trust_forwarded,
    check_verifier,
)
from servio_twilio.webhooks.events import (
    AsyncInboundHook,
    AsyncProspectResolver,
    CallStatusEvent,
    EventHook,
    InboundMessageEvent,
    MessageStatusEvent,
    Params,
    RecordingStatusEvent,
    WebhookEvent,
    call_status_fields,
    inbound_message_fields,
    message_status_fields,
    recording_status_fields,
)
from servio_twilio.webhooks.http import (
    EMPTY_TWIML,
    FORM,
    WebhookRequest,
    WebhookResponse,
    content_type_ok,
    decode_form as _decode_form,
    plain,
    query_cid as _cid,
    twiml,
)

if TYPE_CHECKING:
    from servio_twilio.webhooks.verifier import WebhookVerifier

__all__ = [
    "ROUTES",
    "Step",
    "WebhookCore",
    "WebhookRequest",
    "WebhookResponse",
    "build_core",
    "call_inline",
    "check_prefix",
    "outcome",
    "run_sync",
]

log = logging.getLogger("servio_twilio.webhook")

_INBOUND: Final = "inbound"
# Route name -> (the parser of its event's fields, the event class).
_PARSERS: Final[dict[str, tuple[Callable[[Params], dict[str, Any]], type[WebhookEvent]]]] = {
    "message-status": (message_status_fields, MessageStatusEvent),
    "call-status": (call_status_fields, CallStatusEvent),
    "recording-status": (recording_status_fields, RecordingStatusEvent),
    _INBOUND: (inbound_message_fields, InboundMessageEvent),
}
ROUTES: Final[Mapping[str, str]] = {"/" + name: name for name in _PARSERS}
"""Route path (relative to the mount point) -> route name."""


@attrs.frozen
class Step:
    """One piece of work the core needs done: call ``call()`` and send back its result.

    ``is_async`` is True for an async user hook (``call()`` returns a
    coroutine); ``is_hook`` tells a user hook from repository work. Storage
    work also carries ``steps``, the generator of repository calls that
    ``call()`` runs blocking: an ASGI app with an async repository awaits it
    instead (`run_async` on `WebhookCore.targets`).
    """

    call: Callable[[], Any]
    is_hook: bool = False
    is_async: bool = False
    steps: Callable[[], Steps[Any]] | None = None


NOT_FOUND: Final = plain(404, "not found\n")
_NOT_ALLOWED: Final = plain(405, "method not allowed: use POST\n", ("allow", "POST"))
_TOO_LARGE: Final = plain(413, "request body too large\n")
_UNSUPPORTED: Final = plain(415, f"unsupported content type: use {FORM}\n")
_UNDECODABLE: Final = plain(400, "undecodable form body\n")
_FORBIDDEN: Final = plain(403, "invalid Twilio signature\n")
_UNAVAILABLE: Final = plain(503, "storage unavailable, try again\n", ("retry-after", "5"))
_STORED: Final = WebhookResponse(204, (), b"")
_ALREADY_KEPT: Final = WebhookResponse(204, (), b"")  # a retried delivery: hooks already ran
_EMPTY_REPLY: Final = twiml(EMPTY_TWIML)
_EMPTY_REPLY_AGAIN: Final = twiml(EMPTY_TWIML)  # a retried delivery: hooks already ran


def _first(value: str | None) -> str | None:
    """The first of a comma-separated header's values (the client-facing hop)."""
    if not value:
        return None
    return value.split(",", 1)[0].strip() or None


class WebhookCore:
    """The configured webhook logic; build it with `build_core`."""

    def __init__(
        self,
        *,
        verifier: WebhookVerifier,
        repository: CommunicationRepository,
        public_base_url: str | None,
        trust_forwarded_headers: bool,
        on_event: EventHook | None,
        on_inbound: AsyncInboundHook | None,
        prospect_resolver: AsyncProspectResolver | None,
        max_body_bytes: int,
        storage_timeout: float = 10.0,
        consent_store: Any = None,
    ) -> None:
        self._verify: Callable[..., None] = verifier.verify
        self.repository = repository
        self.consent_store = consent_store
        self.targets: dict[str, Any] = {"repository": repository, "consent": consent_store}
        """What the storage steps call: the repository and the consent store."""
        self.asynchronous = is_async_repository(repository) or is_async_consent_store(consent_store)
        """True when a storage step must be awaited (an async repository or consent store)."""
        self.blocking = not self.asynchronous and any(
            bool(getattr(target, "blocking", True))
            for target in (repository, consent_store)
            if target is not None
        )
        self._base_url = public_base_url
        self._trust_forwarded = trust_forwarded_headers
        self._on_event = on_event
        self._on_inbound = on_inbound
        self._resolver = prospect_resolver
        self._on_event_async = is_async_callable(on_event)
        self._on_inbound_async = is_async_callable(on_inbound)
        self._resolver_async = is_async_callable(prospect_resolver)
        self.max_body_bytes = max_body_bytes
        self.storage_timeout = storage_timeout
        """The seconds a request's repository steps may take in all, when ``blocking``."""
        self._hookless = on_event is None and on_inbound is None and prospect_resolver is None
        self.inline = self._hookless and not self.blocking and not self.asynchronous
        """True when `respond` may run in an event loop: no hooks, nothing blocking or async."""

    def __repr__(self) -> str:
        return f"<WebhookCore base_url={self._base_url!r} repository={self.repository!r}>"

    def verified_url(self, request: WebhookRequest) -> str:
        """The URL the signature is checked against (see the module docs)."""
        query = "?" + request.query if request.query else ""
        if self._base_url is not None:
            return self._base_url + request.route + query
        scheme, host = request.scheme, request.host
        if self._trust_forwarded:
            proto = _first(request.headers.get("x-forwarded-proto"))
            if proto is not None and proto.lower() in ("http", "https"):
                scheme = proto.lower()
            host = _first(request.headers.get("x-forwarded-host")) or host
        return f"{scheme}://{host}{request.raw_path}{query}"

    def handle(self, request: WebhookRequest) -> Generator[Step, Any, WebhookResponse]:
        """Judge ``request`` and, once verified, store it; yields the work to do."""
        verdict = self.judge(request)
        if isinstance(verdict, WebhookResponse):
            return verdict
        if verdict.route == _INBOUND:
            return (yield from self._inbound(verdict))
        return (yield from self._status(verdict))

    def respond(self, request: WebhookRequest) -> WebhookResponse:
        """The answer to ``request``, every step done inline (`run_sync` of `handle`).

        With no hooks the store is called directly, without the steps.
        """
        if not self._hookless:
            return run_sync(self.handle(request))
        verdict = self.judge(request)
        if isinstance(verdict, WebhookResponse):
            return verdict
        if verdict.route == _INBOUND:
            return run(self._store_inbound(verdict, utcnow(), None, resolve=True), self.targets)
        return run(self._store_status(verdict, utcnow()), self.targets)

    def judge(  # noqa: PLR0911 - one answer per rule, in the documented order
        self, request: WebhookRequest
    ) -> WebhookResponse | Callback:
        """The answer to a request refused, or the verified callback's fields (pure)."""
        route = ROUTES.get(request.route)
        if route is None:
            return NOT_FOUND
        if request.method != "POST":
            return _NOT_ALLOWED
        if not request.body_complete or len(request.body) > self.max_body_bytes:
            return _TOO_LARGE
        if not content_type_ok(request.headers.get("content-type")):
            return _UNSUPPORTED
        params = _decode_form(request.body)
        if params is None:
            return _UNDECODABLE
        if not self._verified(request, params):
            signature_failed(route)
            return _FORBIDDEN
        parse, kind = _PARSERS[route]
        try:
            fields = parse(params)
        except MalformedCallback as exc:
            log.warning("refused a %s callback: %s", route, exc)
            return plain(400, f"{exc}\n")
        token = request.headers.get("i-twilio-idempotency-token") or None
        return Callback(route, kind, fields, _cid(request.query), params, token)

    def storage_timed_out(
        self, steps: Generator[Step, Any, WebhookResponse], request: WebhookRequest
    ) -> WebhookResponse:
        """The answer when ``request``'s repository steps outlast ``storage_timeout``: 503.

        Closes ``steps`` (no hook runs); the late call is left to finish in its
        thread, and Twilio retries the callback.
        """
        steps.close()
        log.error(
            "storage did not answer a %s callback within storage_timeout=%g s; answering 503",
            request.route,
            self.storage_timeout,
        )
        return _UNAVAILABLE

    def _verified(self, request: WebhookRequest, params: Params) -> bool:
        url = self.verified_url(request)
        headers = request.headers
        try:
            self._verify(
                url,
                params,
                headers.get("x-twilio-signature"),
                signature_settings=headers.get("x-twilio-webhooks-signature-settings"),
            )
        except Exception as exc:  # the verifier raises ours; anything else is a refusal too
            hint = ""
            if (
                self._base_url is None
                and not self._trust_forwarded
                and ("x-forwarded-proto" in headers or "x-forwarded-host" in headers)
            ):
                hint = " (behind a proxy? pass public_base_url or trust_forwarded_headers=True)"
            log.warning(
                "refused a webhook request to %s: %s: %s; URL tried: %s, with and without "
                "its port%s",
                request.route,
                type(exc).__name__,
                exc,
                mask_phone_numbers(url),
                hint,
            )
            return False
        return True

    def _status(self, callback: Callback) -> Generator[Step, Any, WebhookResponse]:
        received_at = utcnow()
        response: WebhookResponse = yield self._storage(
            lambda: self._store_status(callback, received_at)
        )
        if response is _STORED and self._on_event is not None:
            yield from self._notify(callback.event())
        return response

    def _storage(self, steps: Callable[[], Steps[WebhookResponse]]) -> Step:
        return Step(lambda: run(steps(), self.targets), steps=steps)

    def _store_status(self, callback: Callback, received_at: datetime) -> Steps[WebhookResponse]:
        try:
            stored = yield from store_status(callback, received_at=received_at)
        except RepositoryError as exc:
            log.error("could not store a %s callback for %s: %s", callback.route, callback.sid, exc)
            return _UNAVAILABLE
        if stored is None:
            log.info("a retried %s callback for %s was kept already", callback.route, callback.sid)
            return _ALREADY_KEPT
        if log.isEnabledFor(logging.DEBUG):
            status = callback.fields["status"]
            log.debug("stored a %s callback for %s (%s)", callback.route, callback.sid, status)
        return _STORED

    def _inbound(self, callback: Callback) -> Generator[Step, Any, WebhookResponse]:
        received_at = utcnow()
        hooked = self._on_inbound is not None or self._on_event is not None
        event = callback.event() if hooked else None
        prospect_id: str | None = None
        resolve = True
        resolver = self._resolver
        if resolver is not None:
            sender = callback.fields["from_"]
            try:
                answer = yield self._hook(resolver, sender, self._resolver_async)
            except Exception:
                log.exception(
                    "prospect_resolver failed for %s; attributing by the latest outbound "
                    "message instead",
                    mask_phone(sender),
                )
            else:
                resolve = False
                if answer is None or isinstance(answer, str):
                    prospect_id = answer
                else:
                    log.error(
                        "prospect_resolver returned %s, not str or None; inbound message "
                        "left unattributed",
                        type(answer).__name__,
                    )
        reply: WebhookResponse = yield self._storage(
            lambda: self._store_inbound(callback, received_at, prospect_id, resolve=resolve)
        )
        if reply is _UNAVAILABLE or reply is _EMPTY_REPLY_AGAIN or event is None:
            return reply
        if self._on_inbound is not None:
            try:
                answer = yield self._hook(self._on_inbound, event, self._on_inbound_async)
            except Exception:
                log.exception("on_inbound failed; answering an empty <Response/>")
            else:
                if isinstance(answer, str):
                    reply = twiml(answer)
                elif answer is not None:
                    log.error(
                        "on_inbound returned %s, not str or None; answering an empty <Response/>",
                        type(answer).__name__,
                    )
        yield from self._notify(event)
        return reply

    def _store_inbound(
        self,
        callback: Callback,
        received_at: datetime,
        prospect_id: str | None,
        *,
        resolve: bool,
    ) -> Steps[WebhookResponse]:
        try:
            stored = yield from store_inbound_callback(
                callback,
                received_at=received_at,
                prospect_id=prospect_id,
                resolve=resolve,
                consent=self.consent_store is not None,
            )
        except RepositoryError as exc:
            log.error("could not store an inbound message %s: %s", callback.sid, exc)
            return _UNAVAILABLE
        if stored is None:
            log.info("a retried inbound message %s was kept already", callback.sid)
            return _EMPTY_REPLY_AGAIN
        if log.isEnabledFor(logging.DEBUG):
            sender = mask_phone(callback.fields["from_"])
            log.debug("stored an inbound message %s from %s", callback.sid, sender)
        return _EMPTY_REPLY

    def _notify(self, event: WebhookEvent) -> Generator[Step, Any, None]:
        if self._on_event is None:
            return
        try:
            yield self._hook(self._on_event, event, self._on_event_async)
        except Exception:
            log.exception("on_event failed for a %s", type(event).__name__)

    @staticmethod
    def _hook(fn: Callable[..., Any], argument: object, asynchronous: bool) -> Step:
        return Step(lambda: fn(argument), is_hook=True, is_async=asynchronous)


def run_sync(steps: Generator[Step, Any, WebhookResponse]) -> WebhookResponse:
    """Run the core's generator to its response, doing each step inline."""
    value: Any = None
    error: Exception | None = None
    while True:
        try:
            step = steps.send(value) if error is None else steps.throw(error)
        except StopIteration as stop:
            response: WebhookResponse = stop.value
            return response
        value, error = outcome(call_inline, step)


def call_inline(step: Step) -> Any:
    """``step.call()`` in this thread; an awaitable a hook returns is closed and refused.

    Raises:
        TypeError: the step returned an awaitable (a WSGI app's hooks are plain).
    """
    value = step.call()
    if inspect.isawaitable(value):
        close = getattr(value, "close", None)
        if close is not None:
            close()
        raise TypeError("a hook of a WSGI app returned an awaitable: make it a plain function")
    return value


def outcome(call: Callable[..., Any], *args: Any) -> tuple[Any, Exception | None]:
    """``(call(*args), None)``, or ``(None, error)`` when ``call`` raised ``error``.

    What a step gave, to send back into the core, kept apart from the
    timeouts of whoever waited for it.
    """
    try:
        return call(*args), None
    except Exception as exc:
        return None, exc


def build_core(
    *,
    settings: TwilioSettings | None,
    verifier: WebhookVerifier | None,
    repository: CommunicationRepository | AsyncCommunicationRepository,
    public_base_url: str | None,
    trust_forwarded_headers: bool,
    on_event: EventHook | None,
    on_inbound: AsyncInboundHook | None,
    prospect_resolver: AsyncProspectResolver | None,
    max_body_bytes: int,
    allow_async_hooks: bool,
    storage_timeout: float = 10.0,
    consent_store: Any = None,
) -> WebhookCore:
    """Check the apps' keywords and build the core.

    Raises:
        ConfigurationError: for anything that cannot work, naming it.
    """
    settings = check_settings(settings)
    verifier = check_verifier(verifier, settings)
    repository = check_repository(repository, allow_async=allow_async_hooks)
    consent_store = check_consent_store(
        consent_store, allow_async=allow_async_hooks, repository=repository
    )
    base_url = check_public_base_url(public_base_url, settings)
    trust_forwarded_headers = check_trust_forwarded(trust_forwarded_headers)
    check_hooks(
        allow_async_hooks,
        on_event=on_event,
        on_inbound=on_inbound,
        prospect_resolver=prospect_resolver,
    )
    return WebhookCore(
        verifier=verifier,
        repository=repository,
        public_base_url=base_url,
        trust_forwarded_headers=trust_forwarded_headers,
        on_event=on_event,
        on_inbound=on_inbound,
        prospect_resolver=prospect_resolver,
        max_body_bytes=check_body_limit(max_body_bytes),
        storage_timeout=check_storage_timeout(storage_timeout),
        consent_store=consent_store,
    )
