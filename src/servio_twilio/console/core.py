"""The console core: one request in, one page out, shared by the ASGI and WSGI apps.

`ConsoleCore.handle` takes a `ConsoleRequest` and answers it, in this order:
``authorize`` (anything but True: 401 with ``WWW-Authenticate``); a method
other than GET or HEAD: 405; the route (unknown, or an id of a bad shape:
404); the query parameters (400); the page's reads (storage down: 503). Every
answer carries `SECURITY_HEADERS`; a HEAD answer has no body.

It is written sans-I/O: ``handle`` is a generator yielding a
`servio_twilio.domain.steps.Call` for each read (targets ``authorize``,
``repository``, ``consent``, ``health``); the ASGI app drives it with
`run_async`, the WSGI app with `run`.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, date, datetime, time, timedelta
from http import HTTPStatus
from typing import Any, Final

from servio_twilio.console.chart import GROUP_COLOURS, GROUP_LABELS, GROUPS, build_chart, last_days
from servio_twilio.console.http import (
    CSS,
    HTML,
    SECURITY_HEADERS,
    UNAUTHORIZED_HEADERS,
    ConsoleRequest,
    ConsoleResponse,
    link,
)
from servio_twilio.console.params import (
    BadParameter,
    parse_before,
    parse_channel_filter,
    parse_prospect_filter,
    parse_query,
    parse_status_filter,
    valid_id,
)
from servio_twilio.console.render import Renderer
from servio_twilio.console.views import Masking, timeline
from servio_twilio.domain.errors import RepositoryError
from servio_twilio.domain.models import Channel, utcnow
from servio_twilio.domain.phone_text import mask_phone_numbers
from servio_twilio.domain.status import CALL_STATUS_RANKS, FAILURE_STATUSES, MESSAGE_STATUS_RANKS
from servio_twilio.domain.steps import Call, Steps
from servio_twilio.sending.costs import read_costs

__all__ = ["FAILURES_SHOWN", "PAGE_SIZE", "ConsoleCore", "describe"]

log = logging.getLogger("servio_twilio.console")

PAGE_SIZE: Final = 50
"""Records per page of the communications, prospect and consents pages."""
FAILURES_SHOWN: Final = 10
"""Recent failures on the overview."""
_FAILURES: Final = tuple(sorted(FAILURE_STATUSES))
_CHANNELS: Final = tuple(channel.value for channel in Channel)
_KNOWN_STATUSES: Final = tuple(
    sorted({*MESSAGE_STATUS_RANKS, *CALL_STATUS_RANKS, "received"} - {"pending", "unknown"})
)
_LIST_PARAMS: Final = frozenset({"channel", "status", "prospect", "before"})
_BEFORE: Final = frozenset({"before"})
_CONSENT_PARAMS: Final = frozenset({"channel", "before"})
_NONE: Final[frozenset[str]] = frozenset()
_STYLESHEET: Final = "/static/console.css"
_MAX_PROBLEM_CHARS: Final = 300


def describe(exc: BaseException) -> str:
    """A storage failure for a page: its type and message, numbers masked, cut short."""
    text = mask_phone_numbers(f"{type(exc).__name__}: {exc}")
    return text if len(text) <= _MAX_PROBLEM_CHARS else text[: _MAX_PROBLEM_CHARS - 1] + "…"


class _Page:
    """A page's status, content type, body and extra headers, before the final touches."""

    __slots__ = ("body", "content_type", "extra", "status")

    def __init__(
        self,
        status: int,
        body: bytes,
        content_type: str = HTML,
        extra: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.status = status
        self.body = body
        self.content_type = content_type
        self.extra = extra


class ConsoleCore:
    """The configured console logic: routes, checks and pages; no I/O of its own."""

    def __init__(
        self,
        *,
        renderer: Renderer,
        consents: bool,
        health: bool,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._renderer = renderer
        self.consents = consents
        """Whether a consent store is configured (the Consents page exists)."""
        self.health = health
        """Whether the overview shows Twilio's health report (``settings`` were given)."""
        self._clock = clock

    def __repr__(self) -> str:
        return f"<ConsoleCore consents={self.consents} health={self.health}>"

    def handle(self, request: ConsoleRequest) -> Steps[ConsoleResponse]:
        """Answer ``request``: yields each read as a `Call`, returns the response."""
        try:
            allowed = yield Call("authorize", "__call__", (request,))
        except Exception:
            log.exception("authorize raised: the request is refused")
            allowed = False
        if inspect.isawaitable(allowed):  # a plain authorize returned a coroutine under WSGI
            close = getattr(allowed, "close", None)
            if close is not None:
                close()
            log.error("authorize returned an awaitable in a WSGI app: the request is refused")
            allowed = False
        if allowed is not True:
            page = self._error(request, 401, "the console needs you to sign in")
            page.extra = UNAUTHORIZED_HEADERS
            return self._finish(request, page)
        if request.method not in ("GET", "HEAD"):
            page = self._error(request, 405, "the console only reads: use GET or HEAD")
            page.extra = (("allow", "GET, HEAD"),)
            return self._finish(request, page)
        try:
            page = yield from self._route(request)
        except BadParameter as exc:
            page = self._error(request, 400, str(exc))
        except RepositoryError as exc:
            log.error("console page %s: storage failed: %s", request.path[:100], describe(exc))
            page = self._error(request, 503, f"storage is not answering: {describe(exc)}")
            page.extra = (("retry-after", "5"),)
        except ValueError as exc:  # a backend refusing an argument the checks let through
            log.warning("console page %s: refused: %s", request.path[:100], describe(exc))
            page = self._error(request, 400, "the storage refused this request's parameters")
        return self._finish(request, page)

    def failure(self, request: ConsoleRequest) -> ConsoleResponse:
        """The 500 page an adapter answers when the core itself failed (logged by the adapter)."""
        return self._finish(request, self._error(request, 500, "the console failed; see the logs"))

    # -- routing -------------------------------------------------------------------------------

    def _route(  # noqa: PLR0911 - one answer per route
        self, request: ConsoleRequest
    ) -> Steps[_Page]:
        path = request.path or "/"
        if path == "/":
            parse_query(request.query, _NONE)
            return (yield from self._overview(request))
        if path == "/communications":
            return (yield from self._communications(request))
        if path == "/consents" and self.consents:
            return (yield from self._consents(request))
        if path == _STYLESHEET:
            return _Page(200, self._renderer.stylesheet, CSS)
        for prefix, page in (
            ("/communications/", self._record),
            ("/prospects/", self._prospect),
        ):
            if path.startswith(prefix):
                identifier = path[len(prefix) :]
                if not valid_id(identifier):
                    return self._error(request, 404, "there is no page at this address")
                return (yield from page(request, identifier))
        return self._error(request, 404, "there is no page at this address")

    # -- pages ---------------------------------------------------------------------------------

    def _overview(self, request: ConsoleRequest) -> Steps[_Page]:
        days = last_days(self._clock().astimezone(UTC).date())
        since = _midnight(days[0])
        until = _midnight(days[-1] + timedelta(days=1))
        storage_problem: str | None = None
        counts: Any = None
        failures: Any = None
        try:  # the page's own reads tell whether storage answers: no separate ping
            counts = yield Call("repository", "count_by_day", (), {"since": since, "until": until})
            failures = yield Call(
                "repository", "communications", (), {"status": _FAILURES, "limit": FAILURES_SHOWN}
            )
        except RepositoryError as exc:
            counts = failures = None
            storage_problem = describe(exc)
            log.error("console overview: storage failed: %s", storage_problem)
        health: Any = None
        health_problem: str | None = None
        if self.health:
            try:
                health = yield Call("health", "report")
            except Exception as exc:
                log.warning("console overview: the health report failed: %s", describe(exc))
                health_problem = describe(exc)
        context = {
            "chart": build_chart(counts or [], days),
            "counts": counts,
            "failures": failures,
            "legend": [
                {"label": GROUP_LABELS[group], "colour": GROUP_COLOURS[group]} for group in GROUPS
            ],
            "storage_problem": storage_problem,
            "health": health,
            "health_problem": health_problem,
        }
        body = self._render(request, "overview.html", "Overview", "overview", context)
        return _Page(503 if storage_problem is not None else 200, body)

    def _communications(self, request: ConsoleRequest) -> Steps[_Page]:
        params = parse_query(request.query, _LIST_PARAMS)
        channel = parse_channel_filter(params.get("channel"))
        status = parse_status_filter(params.get("status"))
        prospect = parse_prospect_filter(params.get("prospect"))
        before = parse_before(params.get("before"))
        records = yield Call(
            "repository",
            "communications",
            (),
            {
                "channel": channel,
                "status": status,
                "prospect_id": prospect,
                "before": before,
                "limit": PAGE_SIZE,
            },
        )
        filters = {
            "channel": channel.value if channel is not None else "",
            "status": status or "",
            "prospect": prospect or "",
        }
        root = request.root_path
        context = {
            "records": records,
            "filters": {**filters, "before": before},
            "channels": _CHANNELS,
            "known_statuses": _KNOWN_STATUSES,
            "first_page": link(root, "/communications", filters),
            "next_page": _next(root, "/communications", filters, records, "timestamp"),
        }
        body = self._render(
            request, "communications.html", "Communications", "communications", context
        )
        return _Page(200, body)

    def _record(self, request: ConsoleRequest, identifier: str) -> Steps[_Page]:
        parse_query(request.query, _NONE)
        record = yield Call("repository", "get", (identifier,))
        if record is None:
            return self._error(request, 404, "there is no communication with this id")
        events = yield Call("repository", "events", (identifier,))
        context = {"record": record, "events": timeline(events, self._masking)}
        title = f"Communication {identifier}"
        return _Page(200, self._render(request, "record.html", title, "communications", context))

    def _prospect(self, request: ConsoleRequest, prospect_id: str) -> Steps[_Page]:
        before = parse_before(parse_query(request.query, _BEFORE).get("before"))
        records = yield Call(
            "repository", "history", (prospect_id,), {"limit": PAGE_SIZE, "before": before}
        )
        costs = None
        if before is None:  # the whole history's total, on the first page only
            costs = yield from read_costs(prospect_id, since=None)
        path = f"/prospects/{prospect_id}"
        root = request.root_path
        context = {
            "prospect_id": prospect_id,
            "records": records,
            "costs": costs,
            "before": before,
            "first_page": link(root, path),
            "next_page": _next(root, path, {}, records, "timestamp"),
        }
        title = f"Prospect {prospect_id}"
        return _Page(200, self._render(request, "prospect.html", title, "communications", context))

    def _consents(self, request: ConsoleRequest) -> Steps[_Page]:
        params = parse_query(request.query, _CONSENT_PARAMS)
        channel = parse_channel_filter(params.get("channel"))
        before = parse_before(params.get("before"))
        consents = yield Call(
            "consent", "opted_out", (), {"channel": channel, "limit": PAGE_SIZE, "before": before}
        )
        filters = {"channel": channel.value if channel is not None else ""}
        root = request.root_path
        context = {
            "consents": consents,
            "channels": _CHANNELS,
            "channel_filter": filters["channel"],
            "before": before,
            "first_page": link(root, "/consents", filters),
            "next_page": _next(root, "/consents", filters, consents, "updated_at"),
        }
        body = self._render(request, "consents.html", "Consents", "consents", context)
        return _Page(200, body)

    # -- helpers -------------------------------------------------------------------------------

    @property
    def _masking(self) -> Masking:
        return self._renderer.masking

    def _error(self, request: ConsoleRequest, status: int, message: str) -> _Page:
        heading = HTTPStatus(status).phrase
        context = {"status": status, "heading": heading, "message": message}
        return _Page(status, self._render(request, "error.html", heading, "", context))

    def _render(
        self,
        request: ConsoleRequest,
        template: str,
        title: str,
        section: str,
        context: Mapping[str, Any],
    ) -> bytes:
        root = request.root_path

        def url(path: str, query: Mapping[str, str | None] | None = None) -> str:
            return link(root, path, query)

        nav: list[dict[str, Any]] = [
            {"name": "overview", "label": "Overview", "href": url("/")},
            {"name": "communications", "label": "Communications", "href": url("/communications")},
        ]
        if self.consents:
            nav.append({"name": "consents", "label": "Consents", "href": url("/consents")})
        for item in nav:
            item["current"] = item["name"] == section
        return self._renderer.page(template, {**context, "title": title, "nav": nav, "url": url})

    @staticmethod
    def _finish(request: ConsoleRequest, page: _Page) -> ConsoleResponse:
        headers = (
            ("content-type", page.content_type),
            ("content-length", str(len(page.body))),
            *SECURITY_HEADERS,
            *page.extra,
        )
        body = b"" if request.method == "HEAD" else page.body
        return ConsoleResponse(status=page.status, headers=headers, body=body)


def _midnight(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def _next(
    root: str, path: str, filters: Mapping[str, str], items: list[Any], field: str
) -> str | None:
    """The link to the page after a full one: ``before`` the last item's ``field``."""
    if len(items) < PAGE_SIZE:
        return None
    last: datetime = getattr(items[-1], field)
    return link(root, path, {**filters, "before": last.astimezone(UTC).isoformat()})
