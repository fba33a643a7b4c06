"""The operator console under test: records of every kind, and one sync face per adapter.

`filled_repository()` holds SMS, WhatsApp and call records, outbound and
inbound, in every status group, with kept callbacks, prices, errors and a
recording, all within the last 7 days. `ConsoleClient(kind, **options)`
builds the console as an ASGI app (driven through ``httpx.ASGITransport`` on
a loop of its own) or a WSGI app (through ``httpx.WSGITransport``, wrapped
in ``wsgiref.validate.validator``) and answers plain ``get``/``request``
calls, with the test credentials unless told otherwise.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterator
from datetime import datetime, timedelta
from html import unescape
from html.parser import HTMLParser
from typing import Any
from wsgiref.validate import validator

import httpx
import pytest

from servio_twilio import Communication, InMemoryRepository
from servio_twilio.console import basic_auth, make_asgi_app, make_wsgi_app
from support.sync_facade import LoopThread

USER = "operator"
PASSWORD = "s3cret-pässword"  # non-ASCII: the header carries UTF-8
KINDS = ["asgi", "wsgi"]
PROSPECT = "prospect_123"
TO = "+5511999999999"
SENDER = "+14155552671"
OPTED_OUT = "+5511988887777"


def credentials(user: str = USER, password: str = PASSWORD) -> str:
    """An ``Authorization`` header value for HTTP Basic."""
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode("ascii")


def sample_records(now: datetime) -> list[Communication]:
    """One record of each kind, newest first, an hour apart, within the last 7 days."""
    kinds: list[dict[str, Any]] = [
        {"channel": "sms", "status": "delivered", "price": "-0.00750", "price_unit": "USD"},
        {
            "channel": "sms",
            "status": "failed",
            "error_code": 30003,
            "error": f"Unreachable destination handset {TO}",
            "price": "-0.00750",
            "price_unit": "usd",
        },
        {"channel": "sms", "status": "sent", "num_segments": 2},
        {"channel": "whatsapp", "status": "read", "price": "-0.005", "price_unit": "USD"},
        {
            "channel": "whatsapp",
            "status": "undelivered",
            "error_code": 63016,
            "error": "Outside the allowed window",
        },
        {
            "channel": "whatsapp",
            "status": "received",
            "direction": "inbound",
            "body": "Quero remarcar",
        },
        {
            "channel": "call",
            "status": "completed",
            "duration": 42,
            "recording_sid": "RE" + "1" * 32,
            "recording_url": "https://api.twilio.com/recording",
            "recording_duration": 40,
            "price": "-0.0130",
            "price_unit": "BRL",
            "body": None,
        },
        {"channel": "call", "status": "no-answer", "body": None},
        {"channel": "call", "status": "ringing", "body": None},
        {"channel": "sms", "status": "queued", "prospect_id": None},
    ]
    records = []
    for index, kind in enumerate(kinds):
        fields: dict[str, Any] = {
            "prospect_id": PROSPECT,
            "to": TO,
            "from_": SENDER,
            "body": f"message {index}",
            "twilio_sid": f"SM{index:032d}",
            "timestamp": now - timedelta(hours=index + 1),
            **kind,
        }
        if fields.get("direction") == "inbound":
            fields["to"], fields["from_"] = SENDER, TO
        records.append(Communication(**fields))
    return records


def filled_repository(now: datetime | None = None) -> InMemoryRepository:
    """An `InMemoryRepository` with `sample_records` and a kept callback or two on each."""
    from servio_twilio.domain.models import utcnow

    repository = InMemoryRepository()
    for record in repository.add_many(sample_records(now or utcnow())):
        assert record.id is not None
        repository.append_event(
            record.id,
            {
                "route": "message-status",
                "receivedAt": record.timestamp.isoformat(),
                "params": {"MessageStatus": "sent", "To": record.to, "From": record.from_},
            },
        )
        if record.error_code is not None:
            repository.append_event(
                record.id,
                {
                    "route": "message-status",
                    "receivedAt": record.timestamp.isoformat(),
                    "params": {"MessageStatus": record.status, "ErrorCode": str(record.error_code)},
                },
            )
    return repository


class ConsoleClient:
    """The console as one adapter builds it, answering plain calls (``kind``: asgi or wsgi)."""

    def __init__(self, kind: str, **options: Any) -> None:
        options.setdefault("authorize", basic_auth(USER, PASSWORD))
        if "repository" not in options:
            options["repository"] = filled_repository()
        self.kind = kind
        self._loop: LoopThread | None = None
        if kind == "asgi":
            self.app: Any = make_asgi_app(**options)
            self._loop = LoopThread()
        else:
            self.app = make_wsgi_app(**options)
            self._client = httpx.Client(
                transport=httpx.WSGITransport(app=validator(self.app)), base_url="http://testserver"
            )

    def request(
        self,
        method: str,
        path: str,
        *,
        auth: str | bytes | None = "default",
        headers: dict[str, str | bytes] | None = None,
    ) -> httpx.Response:
        """``method path`` with the test credentials (``auth=None``: none; else that header)."""
        sent: dict[str, str | bytes] = dict(headers or {})
        if auth is not None:
            sent["authorization"] = credentials() if auth == "default" else auth
        if self._loop is None:
            return self._client.request(method, path, headers=sent)

        async def call() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app)
            async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as c:
                return await c.request(method, path, headers=sent)

        return self._loop.run(call())

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        """``GET path``; see `request`."""
        return self.request("GET", path, **kwargs)

    def close(self) -> None:
        """Stop the loop (ASGI) or the client (WSGI)."""
        if self._loop is not None:
            self._loop.close()
        else:
            self._client.close()


_NEXT = re.compile(r'<a id="next-page"[^>]*href="([^"]+)"')
_RECORD_LINK = re.compile(r'class="record-link" href="[^"]*/communications/([^"/?]+)"')


def next_page(html: str) -> str | None:
    """The ``#next-page`` link of a page, unescaped, or None."""
    found = _NEXT.search(html)
    return unescape(found.group(1)) if found else None


def record_ids(html: str) -> list[str]:
    """The ids of the records a page links to, in order."""
    return _RECORD_LINK.findall(html)


class Elements(HTMLParser):
    """Every start tag of a page, with its attributes, and the page's text."""

    def __init__(self, html: str) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)

    def ids(self) -> set[str]:
        """The ``id`` attributes of the page."""
        return {a["id"] for _, a in self.tags if a.get("id")}

    def hrefs(self) -> list[str]:
        """Every ``href`` and ``action`` of the page."""
        return [
            value
            for _, attrs in self.tags
            for name, value in attrs.items()
            if name in ("href", "action", "src") and value is not None
        ]


@pytest.fixture(params=KINDS)
def console_kind(request: pytest.FixtureRequest) -> str:
    """``"asgi"`` and ``"wsgi"``: a test asking for `console` runs on both apps."""
    return str(request.param)


@pytest.fixture
def console(console_kind: str) -> Iterator[Any]:
    """A factory of consoles of this test's kind, closed at the end."""
    made: list[ConsoleClient] = []

    def make(**options: Any) -> ConsoleClient:
        client = ConsoleClient(console_kind, **options)
        made.append(client)
        return client

    yield make
    for client in made:
        client.close()
