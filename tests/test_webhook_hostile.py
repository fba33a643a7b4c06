"""Hostile requests against both apps: never a 500, never a write without a valid signature.

A corpus of hand-made attacks and mistakes (run through the ASGI app driven
directly and the WSGI app under ``wsgiref.validate.validator``), then
hypothesis-generated bodies, headers, methods and paths.
"""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator, Mapping
from typing import Any
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import attrs
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from servio_twilio.domain.models import Communication
from servio_twilio.storage.memory import InMemoryRepository
from servio_twilio.webhooks.asgi import make_asgi_app
from servio_twilio.webhooks.verifier import WebhookVerifier
from servio_twilio.webhooks.wsgi import make_wsgi_app
from support.twilio_callbacks import (
    FORM,
    OTHER_TOKEN,
    TOKEN,
    asgi_request,
    call_params,
    inbound_params,
    message_params,
    recording_params,
    sid,
    signed,
)

pytestmark = [
    pytest.mark.filterwarnings("error::wsgiref.validate.WSGIWarning"),
    # BREW and lower-case post are sent on purpose.
    pytest.mark.filterwarnings("ignore:Unknown REQUEST_METHOD:wsgiref.validate.WSGIWarning"),
]

HOST = "hooks.servio.test"
BASE = f"http://{HOST}"
LIMIT = 4096


class SpyRepository(InMemoryRepository):
    """Counts every write, so a test can prove nothing was written."""

    def __init__(self) -> None:
        super().__init__()
        self.writes = 0

    def add_many(self, communications: Any) -> list[Communication]:
        self.writes += 1
        return super().add_many(communications)

    def update(self, communication_id: str, fn: Any) -> Communication:
        self.writes += 1
        return super().update(communication_id, fn)

    def append_event(self, communication_id: str, event: Mapping[str, Any]) -> None:
        self.writes += 1
        super().append_event(communication_id, event)


@attrs.frozen(kw_only=True)
class Case:
    name: str
    method: str = "POST"
    path: str = "/message-status"
    query: str = ""
    headers: tuple[tuple[bytes, bytes], ...] = ()
    chunks: tuple[bytes, ...] = (b"",)
    expected: frozenset[int]

    @property
    def may_write(self) -> bool:
        return any(200 <= status < 300 for status in self.expected)


def _headers(mapping: Mapping[str, str]) -> tuple[tuple[bytes, bytes], ...]:
    return tuple((k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in mapping.items())


def _with(headers: Mapping[str, str], **changes: str | None) -> dict[str, str]:
    result = {k.lower(): v for k, v in headers.items()}
    for key, value in changes.items():
        name = key.replace("_", "-")
        if value is None:
            result.pop(name, None)
        else:
            result[name] = value
    return result


ROUTE_PARAMS: dict[str, dict[str, str]] = {
    "/message-status": message_params(sid("SM", 1), "delivered"),
    "/call-status": call_params(sid("CA", 1), "completed", CallDuration="3"),
    "/recording-status": recording_params(sid("CA", 1), sid("RE", 1)),
    "/inbound": inbound_params(sid("SM", 2), "Olá"),
}
REQUIRED: dict[str, tuple[str, ...]] = {
    "/message-status": ("MessageStatus", "SmsStatus"),
    "/call-status": ("CallSid",),
    "/recording-status": ("RecordingSid",),
    "/inbound": ("From",),
}
UNKNOWN_STATUSES: tuple[tuple[str, bool], ...] = (
    ("teleported", True),
    ("DELIVERED", True),
    ("in progress", False),
    ("x" * 50, False),
    ("<script>", False),
)


def _route_cases(route: str, params: dict[str, str]) -> Iterator[Case]:
    query = "cid=pending1"
    url = BASE + route + "?" + query
    headers, body = signed(url, params)
    ok = 200 if route == "/inbound" else 204

    def case(name: str, *, expected: int, **fields: Any) -> Case:
        options: dict[str, Any] = {
            "path": route,
            "query": query,
            "headers": _headers(headers),
            "chunks": (body,),
        }
        options.update(fields)
        return Case(name=f"{route}:{name}", expected=frozenset({expected}), **options)

    yield case("valid", expected=ok)
    yield case(
        "valid-chunked", expected=ok, chunks=tuple(body[i : i + 5] for i in range(0, len(body), 5))
    )
    # Signatures
    yield case(
        "no-signature", expected=403, headers=_headers(_with(headers, x_twilio_signature=None))
    )
    yield case(
        "empty-signature", expected=403, headers=_headers(_with(headers, x_twilio_signature=""))
    )
    for bad in ("AAAA", "not base64 at all!", "=" * 28, "x" * 5000, "\xe9\xff\x00sig"):
        yield case(
            f"wrong-signature-{bad[:8]!r}",
            expected=403,
            headers=_headers(_with(headers, x_twilio_signature=bad)),
        )
    other_headers, _ = signed(url, params, OTHER_TOKEN)
    yield case("other-token", expected=403, headers=_headers(other_headers))
    yield case(
        "signed-for-other-url",
        expected=403,
        headers=_headers(signed(BASE + "/other" + route, params)[0]),
    )
    yield case(
        "signed-for-https",
        expected=403,
        headers=_headers(signed(url.replace("http:", "https:"), params)[0]),
    )
    yield case("query-changed", expected=403, query="cid=someone-else")
    yield case("query-dropped", expected=403, query="")
    yield case("query-added", expected=403, query=query + "&x=1")
    yield case(
        "signature-settings-unknown-key",
        expected=403,
        headers=_headers(
            _with(headers, x_twilio_webhooks_signature_settings="key=nope,algorithm=HMAC_SHA256")
        ),
    )
    yield case(
        "signature-settings-garbage",
        expected=403,
        headers=_headers(_with(headers, x_twilio_webhooks_signature_settings=",,==;;\xff")),
    )
    # Replays on a changed body
    first_key = next(iter(params))
    yield case("replay-extra-field", expected=403, chunks=(body + b"&Extra=1",))
    yield case(
        "replay-changed-value",
        expected=403,
        chunks=(body.replace(b"2010-04-01", b"2010-04-02") if b"2010" in body else body + b"x",),
    )
    yield case("replay-dropped-field", expected=403, chunks=(body.split(b"&", 1)[1],))
    yield case(
        "replay-duplicated-field", expected=403, chunks=(body + b"&" + body.split(b"&", 1)[0],)
    )
    yield case("replay-empty-body", expected=403, chunks=(b"",))
    yield case(
        "replay-truncated", expected=403, chunks=(body[: len(body) // 2].rsplit(b"&", 1)[0],)
    )
    yield case(
        f"replay-renamed-{first_key}",
        expected=403,
        chunks=(body.replace(first_key.encode(), b"X" + first_key.encode(), 1),),
    )
    # Methods
    for method in ("GET", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE", "post", "BREW"):
        yield case(f"method-{method}", expected=405, method=method)
    # Size
    yield case("too-big", expected=413, chunks=(body + b"&Pad=" + b"x" * LIMIT,))
    yield case("too-big-chunked", expected=413, chunks=tuple([b"x" * 1000] * 10))
    # Content types
    for content_type in (
        None,
        "",
        "application/json",
        "text/plain",
        "text/xml",
        "multipart/form-data; boundary=zz",
        f"{FORM}; charset=latin-1",
        f"{FORM}x",
        "application/x-www-form",
        "\xff\xfe",
    ):
        yield case(
            f"content-type-{content_type!r}",
            expected=415,
            headers=_headers(_with(headers, content_type=content_type)),
        )
    yield case(
        "json-body",
        expected=415,
        headers=_headers(_with(headers, content_type="application/json")),
        chunks=(json.dumps(params).encode(),),
    )
    # Malformed form encoding
    for bad_body in (b"a=\xff\xfe", b"Body=%ff", b"%C3%28=1", b"\x80\x81\x82", b"Body=ol\xe1"):
        yield case(f"undecodable-{bad_body[:6]!r}", expected=400, chunks=(bad_body,))
    yield case("many-fields", expected=403, chunks=(b"&".join(b"f=%d" % i for i in range(300)),))
    for odd in (b"a", b"&&&", b"=", b"==&==", b"a=1&&b=2&", b"%zz=%zz", b"a=%", b";;;"):
        yield case(f"odd-form-{odd!r}", expected=403, chunks=(odd,))
    # Headers
    yield case(
        "latin1-header",
        expected=ok,
        headers=(*_headers(headers), (b"x-note", "café".encode("latin-1"))),
    )
    yield case("binary-host", expected=403, headers=_headers(_with(headers, host="\xff\x00bad")))
    yield case(
        "host-with-path", expected=403, headers=_headers(_with(headers, host="evil.test/x?"))
    )
    yield case("ipv6-bracket-host", expected=403, headers=_headers(_with(headers, host="[::1")))
    yield case(
        "bad-port-host", expected=403, headers=_headers(_with(headers, host=HOST + ":99999"))
    )
    yield case(
        "forwarded-untrusted",
        expected=403,
        headers=_headers(_with(headers, host="internal:8080", x_forwarded_host=HOST)),
    )
    yield case(
        "duplicate-signature-header-first-wins",
        expected=ok,
        headers=(*_headers(headers), (b"x-twilio-signature", b"bogus")),
    )
    # Signed, but missing what the route needs
    missing = {k: v for k, v in params.items() if k not in REQUIRED[route]}
    m_headers, m_body = signed(url, missing)
    yield case("signed-missing-field", expected=400, headers=_headers(m_headers), chunks=(m_body,))
    s_headers, s_body = signed(url, {})
    yield case("signed-empty-form", expected=400, headers=_headers(s_headers), chunks=(s_body,))
    bad_sid = {**params, ("MessageSid" if "MessageSid" in params else "CallSid"): "../../etc"}
    bad_sid.pop("SmsSid", None)
    bad_sid.pop("SmsMessageSid", None)
    b_headers, b_body = signed(url, bad_sid)
    yield case(
        "signed-path-traversal-sid", expected=400, headers=_headers(b_headers), chunks=(b_body,)
    )
    if route != "/inbound" and route != "/recording-status":
        status_key = "MessageStatus" if route == "/message-status" else "CallStatus"
        for status, stored in UNKNOWN_STATUSES:
            unknown = {k: v for k, v in params.items() if k != "SmsStatus"}
            unknown[status_key] = status
            u_headers, u_body = signed(url, unknown)
            yield case(
                f"signed-status-{status[:12]}",
                expected=ok if stored else 400,
                headers=_headers(u_headers),
                chunks=(u_body,),
            )


def _corpus() -> list[Case]:
    cases: list[Case] = []
    for route, params in ROUTE_PARAMS.items():
        cases.extend(_route_cases(route, params))
    headers, body = signed(BASE + "/message-status", ROUTE_PARAMS["/message-status"])
    for path in (
        "/",
        "",
        "/message-status/",
        "/MESSAGE-STATUS",
        "//message-status",
        "/../message-status",
        "/message-status%00",
        "/inbound/../message-status",
        "/message_status",
        "/status",
        "/" + "a" * 5000,
        "/inbound\x00",
        "/caf\xe9",
    ):
        cases.append(
            Case(
                name=f"unknown-route-{path[:20]!r}",
                path=path,
                headers=_headers(headers),
                chunks=(body,),
                expected=frozenset({404}),
            )
        )
    for length in ("\xb2", "\u0661", "-1", "1e3", "0x10", "abc", "99999999999999999999", " "):
        # latin-1 can carry only some of these; others go as UTF-8 bytes read as latin-1.
        raw = length.encode("utf-8").decode("latin-1") if ord(max(length)) > 255 else length
        cases.append(
            Case(
                name=f"content-length-{length!r}",
                headers=_headers({**headers, "content-length": raw}),
                chunks=(body,),
                expected=frozenset({204, 400, 403, 413}),
            )
        )
    return cases


CORPUS = _corpus()


def test_corpus_is_large() -> None:
    """The corpus holds at least 100 cases, each run through both apps (200+ runs)."""
    assert len(CORPUS) >= 100
    assert len({case.name for case in CORPUS}) == len(CORPUS)


def _asgi(case: Case, repository: SpyRepository) -> int | None:
    app = make_asgi_app(
        verifier=WebhookVerifier(TOKEN), repository=repository, max_body_bytes=LIMIT
    )
    status, _, _, _ = asyncio.run(
        asgi_request(
            app,
            method=case.method,
            path=case.path,
            query=case.query.encode("latin-1"),
            headers=case.headers,
            chunks=case.chunks,
            scope={"server": (HOST, 80), "raw_path": case.path.encode("utf-8")},
        )
    )
    return status


def wsgi_environ(case: Case) -> dict[str, Any]:
    body = b"".join(case.chunks)
    environ: dict[str, Any] = {
        "REQUEST_METHOD": case.method,
        "SCRIPT_NAME": "",
        "PATH_INFO": case.path.encode("utf-8").decode("latin-1"),
        "QUERY_STRING": case.query,
        "SERVER_NAME": HOST,
        "SERVER_PORT": "80",
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)),
    }
    for name, value in case.headers:
        key = name.decode("latin-1").upper().replace("-", "_")
        text = value.decode("latin-1")
        if key in ("CONTENT_TYPE", "CONTENT_LENGTH"):
            environ[key] = text
        else:
            environ.setdefault("HTTP_" + key, text)
    setup_testing_defaults(environ)
    return environ


def _wsgi(case: Case, repository: SpyRepository) -> int:
    app = make_wsgi_app(
        verifier=WebhookVerifier(TOKEN), repository=repository, max_body_bytes=LIMIT
    )
    environ = wsgi_environ(case)
    length = environ.get("CONTENT_LENGTH", "")
    if not length or (length.isascii() and length.isdigit()):
        # wsgiref's validator refuses a malformed CONTENT_LENGTH itself; the app is
        # still given one unchecked, as a lax server would pass it through.
        app = validator(app)
    seen: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        seen.append(status)
        return lambda data: None

    result = app(environ, start_response)
    try:
        b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return int(seen[0].split()[0])


@pytest.mark.parametrize("case", CORPUS, ids=lambda case: case.name)
@pytest.mark.parametrize("adapter", ["asgi", "wsgi"])
def test_hostile_corpus(case: Case, adapter: str) -> None:
    """Each hostile request gets its 4xx (2xx when genuine): no 500, no unsigned write."""
    repository = SpyRepository()
    status = _asgi(case, repository) if adapter == "asgi" else _wsgi(case, repository)
    assert status in case.expected, f"{case.name}: {status}"
    if not case.may_write:
        assert repository.writes == 0
        assert len(repository) == 0


class TestScopes:
    def test_lifespan_and_websocket(self) -> None:
        """Lifespan is answered; a websocket is closed; neither touches storage."""
        repository = SpyRepository()
        app = make_asgi_app(verifier=WebhookVerifier(TOKEN), repository=repository)
        sent: list[dict[str, Any]] = []

        async def run() -> None:
            lifespan = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]

            async def receive_lifespan() -> dict[str, Any]:
                return lifespan.pop(0)

            async def receive_ws() -> dict[str, Any]:
                return {"type": "websocket.connect"}

            async def send(message: dict[str, Any]) -> None:
                sent.append(message)

            await app({"type": "lifespan"}, receive_lifespan, send)
            await app({"type": "websocket", "path": "/inbound"}, receive_ws, send)

        asyncio.run(run())
        assert [m["type"] for m in sent] == [
            "lifespan.startup.complete",
            "lifespan.shutdown.complete",
            "websocket.close",
        ]
        assert repository.writes == 0


_text = st.text(alphabet=st.characters(min_codepoint=0, max_codepoint=255), max_size=40)
_header_names = st.sampled_from(
    [
        "content-type",
        "x-twilio-signature",
        "host",
        "x-forwarded-proto",
        "x-forwarded-host",
        "content-length",
        "x-other",
    ]
)


@st.composite
def _random_case(draw: st.DrawFn) -> Case:
    route = draw(st.sampled_from([*ROUTE_PARAMS, "/", "/x", "/inbound/"]))
    method = draw(st.sampled_from(["POST", "POST", "POST", "GET", "PUT"]))
    headers = draw(st.dictionaries(_header_names, _text, max_size=5))
    if draw(st.booleans()):
        headers["content-type"] = FORM
    headers.pop("content-length", None)
    body = draw(st.binary(max_size=LIMIT + 200))
    if draw(st.booleans()):
        params = draw(st.dictionaries(_text, _text, max_size=6))
        body = "&".join(f"{k}={v}" for k, v in params.items()).encode("utf-8", "surrogatepass")
    split = draw(st.integers(min_value=1, max_value=max(1, len(body))))
    chunks = tuple(body[i : i + split] for i in range(0, len(body), split)) or (b"",)
    query = draw(st.text(alphabet=st.characters(min_codepoint=33, max_codepoint=126), max_size=20))
    return Case(
        name="random",
        method=method,
        path=route,
        query=query,
        headers=_headers(headers),
        chunks=chunks,
        expected=frozenset({400, 403, 404, 405, 413, 415}),
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=_random_case())
def test_fuzz_asgi(case: Case) -> None:
    """Random unsigned requests to the ASGI app: always a 4xx, never a write."""
    repository = SpyRepository()
    assert _asgi(case, repository) in case.expected
    assert repository.writes == 0


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(case=_random_case())
def test_fuzz_wsgi(case: Case) -> None:
    """Random unsigned requests to the WSGI app (validated): always a 4xx, never a write."""
    repository = SpyRepository()
    assert _wsgi(case, repository) in case.expected
    assert repository.writes == 0


@settings(max_examples=100, deadline=None)
@given(
    route=st.sampled_from(list(ROUTE_PARAMS)),
    params=st.dictionaries(
        st.sampled_from(
            [
                "MessageSid",
                "MessageStatus",
                "CallSid",
                "CallStatus",
                "RecordingSid",
                "From",
                "To",
                "Body",
                "NumMedia",
                "ErrorCode",
                "CallDuration",
                "MediaUrl0",
            ]
        ),
        st.text(max_size=30),
        max_size=8,
    ),
)
def test_fuzz_signed_fields(route: str, params: dict[str, str]) -> None:
    """Signed random fields: stored (2xx) or refused 400 with no write; never a 500."""
    repository = SpyRepository()
    url = BASE + route
    headers, body = signed(url, params)
    case = Case(
        name="signed", path=route, headers=_headers(headers), chunks=(body,), expected=frozenset()
    )
    status = _asgi(case, repository)
    assert status in {200, 204, 400}
    if status == 400:
        assert repository.writes == 0
