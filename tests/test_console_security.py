"""The operator console fails closed: auth first, GET/HEAD only, strict headers, never a 500.

Every response, refusals and errors included, carries the security headers;
bad ids and traversal are 404 pages, bad query values 400 pages, storage
down a 503 page; hostile data (inbound bodies, prospect ids) renders as text.
"""

from __future__ import annotations

import hmac
from datetime import timedelta
from typing import Any

import pytest

from servio_twilio import (
    Communication,
    ConfigurationError,
    InMemoryConsentStore,
    InMemoryRepository,
    RepositoryError,
)
from servio_twilio.console import ConsoleRequest, basic_auth
from servio_twilio.domain.models import utcnow
from support.console import (
    KINDS,
    PASSWORD,
    PROSPECT,
    USER,
    ConsoleClient,
    Elements,
    credentials,
    filled_repository,
)

CSP = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
SECURITY = {
    "content-security-policy": CSP,
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "cache-control": "no-store",
}
CHALLENGE = 'Basic realm="servio-twilio console", charset="UTF-8"'


def assert_secure(response: Any) -> None:
    for name, value in SECURITY.items():
        assert response.headers.get(name) == value, name


class _DownRepository(InMemoryRepository):
    """Every read fails as a storage outage does."""

    def _down(self, *args: Any, **kwargs: Any) -> Any:
        raise RepositoryError("firestore unavailable: deadline exceeded calling +5511999999999")

    ping = get = events = history = communications = count_by_day = _down


class _DownAfterPing(InMemoryRepository):
    """Answers ping but fails the overview's count."""

    def count_by_day(self, **kwargs: Any) -> Any:
        raise RepositoryError("query failed")


class _DownConsents(InMemoryConsentStore):
    def opted_out(self, **kwargs: Any) -> Any:
        raise RepositoryError("consent store unavailable")


class TestAuthorization:
    def test_no_credentials(self, console: Any) -> None:
        """Without credentials: 401, the Basic challenge, the security headers, no data."""
        page = console().get("/communications", auth=None)
        assert page.status_code == 401
        assert page.headers["www-authenticate"] == CHALLENGE
        assert_secure(page)
        assert "prospect_123" not in page.text
        assert "record-link" not in page.text

    @pytest.mark.parametrize(
        "header",
        [
            credentials(USER, "wrong"),
            credentials("intruder", PASSWORD),
            credentials(USER, PASSWORD + "x"),
            credentials(USER.upper(), PASSWORD),
            "Basic",
            "Basic !!!not base64!!!",
            "Bearer " + credentials().split(" ", 1)[1],
            credentials().split(" ", 1)[1],
            "Basic " + "A" * 10_000,
        ],
    )
    def test_wrong_credentials(self, console: Any, header: str | bytes) -> None:
        """Anything but the right user and password is a 401, never a 500."""
        page = console().get("/", auth=header)
        assert page.status_code == 401
        assert page.headers["www-authenticate"] == CHALLENGE
        assert_secure(page)

    @pytest.mark.parametrize("scheme", ["Basic", "basic", "BASIC"])
    def test_right_credentials(self, console: Any, scheme: str) -> None:
        """The right credentials let the request in (the scheme in any case)."""
        header = scheme + " " + credentials().split(" ", 1)[1]
        assert console().get("/", auth=header).status_code == 200

    def test_the_stylesheet_needs_credentials_too(self, console: Any) -> None:
        """authorize runs first on every request, the stylesheet's too."""
        page = console().get("/static/console.css", auth=None)
        assert page.status_code == 401
        assert b"#chart" not in page.content

    def test_authorize_sees_every_request_first(self, console: Any) -> None:
        """authorize gets a ConsoleRequest for each request, before the method is judged."""
        seen: list[ConsoleRequest] = []

        def authorize(request: ConsoleRequest) -> bool:
            seen.append(request)
            return False

        app = console(authorize=authorize)
        for method in ("GET", "POST", "DELETE"):
            assert app.request(method, "/communications?channel=sms").status_code == 401
        assert app.get("/static/console.css").status_code == 401
        assert [r.method for r in seen] == ["GET", "POST", "DELETE", "GET"]
        first = seen[0]
        assert first.path == "/communications"
        assert first.query == "channel=sms"
        assert first.root_path == ""
        assert first.headers["authorization"] == credentials()
        assert first.headers["host"] == "testserver"

    @pytest.mark.parametrize("answer", [1, "yes", None, [True]])
    def test_only_true_lets_in(self, console: Any, answer: object) -> None:
        """An authorize answering anything but True (even truthy) refuses."""
        assert console(authorize=lambda request: answer).get("/").status_code == 401

    def test_authorize_raising_refuses(
        self, console: Any, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An authorize that raises refuses the request (fail closed) and is logged."""

        def broken(request: ConsoleRequest) -> bool:
            raise RuntimeError("session store down")

        page = console(authorize=broken).get("/")
        assert page.status_code == 401
        assert_secure(page)
        assert "authorize raised" in caplog.text

    def test_basic_auth_compares_the_whole_credential_in_constant_time(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """basic_auth calls hmac.compare_digest once, on the whole encoded credential, for a
        wrong user as for a wrong password: no early answer on the user."""
        calls: list[tuple[bytes, bytes]] = []
        real = hmac.compare_digest

        def spy(a: bytes, b: bytes) -> bool:
            calls.append((a, b))
            return real(a, b)

        monkeypatch.setattr(hmac, "compare_digest", spy)
        authorize = basic_auth(USER, PASSWORD)
        for header in (credentials("nobody", PASSWORD), credentials(USER, "nope"), credentials()):
            authorize(ConsoleRequest(method="GET", path="/", headers={"authorization": header}))
        assert len(calls) == 3
        expected = b"basic " + credentials().split(" ", 1)[1].encode()
        assert all(b == expected for _, b in calls)
        assert [a == b for a, b in calls] == [False, False, True]

    @pytest.mark.parametrize("header", ["Basic ünïcode", "Basic \udcff", "Básic x", ""])
    def test_basic_auth_reads_any_header(self, header: str) -> None:
        """Headers outside Latin-1, lone surrogates, no header: refused, no exception."""
        request = ConsoleRequest(method="GET", path="/", headers={"authorization": header})
        assert basic_auth(USER, PASSWORD)(request) is False

    def test_basic_auth_accepts_a_utf8_password(self) -> None:
        """The credential is UTF-8, as browsers send it with charset="UTF-8"."""
        request = ConsoleRequest(method="GET", path="/", headers={"authorization": credentials()})
        assert basic_auth(USER, PASSWORD)(request) is True

    def test_basic_auth_hides_the_password(self) -> None:
        """basic_auth's repr names the user, never the password."""
        assert PASSWORD not in repr(basic_auth(USER, PASSWORD))
        assert USER in repr(basic_auth(USER, PASSWORD))

    @pytest.mark.parametrize(
        ("user", "password"), [("", "x"), ("u", ""), ("a:b", "x"), (None, "x")]
    )
    def test_basic_auth_refuses_unusable_credentials(self, user: Any, password: Any) -> None:
        """An empty user or password, or a user with ':', is a ConfigurationError."""
        with pytest.raises(ConfigurationError):
            basic_auth(user, password)


class TestMethods:
    @pytest.mark.parametrize("method", ["POST", "PUT", "DELETE", "PATCH", "OPTIONS", "TRACE"])
    def test_only_get_and_head(self, console: Any, method: str) -> None:
        """Other methods are a 405 with Allow: GET, HEAD."""
        page = console().request(method, "/communications")
        assert page.status_code == 405
        assert page.headers["allow"] == "GET, HEAD"
        assert_secure(page)

    @pytest.mark.parametrize("path", ["/", "/communications", "/static/console.css", "/nope"])
    def test_head_has_no_body(self, console: Any, path: str) -> None:
        """HEAD answers as GET would, with its length, and no body."""
        app = console()
        got, head = app.get(path), app.request("HEAD", path)
        assert head.status_code == got.status_code
        assert head.content == b""
        assert head.headers["content-length"] == str(len(got.content))
        assert_secure(head)


class TestBadRequests:
    @pytest.mark.parametrize(
        "path",
        [
            "/nope",
            "/communications/",
            "/communications/a/b",
            "/communications/" + "a" * 129,
            "/communications/.%2E",
            "/communications/%2e%2e",
            "/communications/<script>",
            "/communications/a%20b",
            "/communications/%00",
            "/prospects/",
            "/prospects/javascript:alert(1)",
            "/prospects/" + "p" * 10_000,
            "/static/",
            "/static/console.css/..",
            "/static/../pyproject.toml",
            "/static/%2e%2e/%2e%2e/pyproject.toml",
            "/static/..%2f..%2fpyproject.toml",
            "/static/templates/base.html",
            "/templates/base.html",
            "/console.css",
        ],
    )
    def test_not_found(self, console: Any, path: str) -> None:
        """Unknown paths, ids of a bad shape and traversal are 404 pages."""
        page = console().get(path)
        assert page.status_code == 404
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        assert_secure(page)
        assert "[tool" not in page.text
        assert "{% " not in page.text

    @pytest.mark.parametrize(
        "query",
        [
            "channel=fax",
            "channel=SMS",
            "status=%3Cscript%3E",
            "status=" + "x" * 40,
            "prospect=%22%3E%3Cimg%3E",
            "prospect=" + "p" * 200,
            "before=yesterday",
            "before=2024-13-01",
            "before=0001-01-01T00:00:00%2B14:00",
            "before=" + "9" * 100,
            "channel=sms&channel=call",
            "x=" + "y" * 5000,
            "channel=%ff",
            "&".join(f"k{i}=v" for i in range(50)),
        ],
    )
    def test_bad_query_values(self, console: Any, query: str) -> None:
        """Unusable query values are a 400 page saying what is wrong, never a 500."""
        page = console().get(f"/communications?{query}")
        assert page.status_code == 400
        assert_secure(page)
        assert 'id="problem"' in page.text
        assert "<script>" not in page.text
        assert "<img" not in page.text

    @pytest.mark.parametrize(
        "query",
        [
            "before=2024-05-01T10:00:00%2B00:00",
            "before=2024-05-01T10:00:00+00:00",
            "before=2024-05-01",
            "before=2024-05-01T10:00:00Z",
            "unknown=1&channel=call",
        ],
    )
    def test_usable_query_values(self, console: Any, query: str) -> None:
        """ISO dates (an offset typed as "+" too) and unknown parameters are fine."""
        assert console().get(f"/communications?{query}").status_code == 200

    @pytest.mark.parametrize("path", [f"/prospects/{PROSPECT}?before=nope", "/consents?channel=x"])
    def test_bad_query_on_other_pages(self, console: Any, path: str) -> None:
        """The prospect and consents pages check their parameters too."""
        page = console(consent_store=InMemoryConsentStore()).get(path)
        assert page.status_code == 400


class TestStorageDown:
    @pytest.mark.parametrize(
        "path", ["/communications", "/communications/abc", f"/prospects/{PROSPECT}"]
    )
    def test_pages_answer_503(self, console: Any, path: str) -> None:
        """Storage down: a 503 page naming the problem (numbers masked), with Retry-After."""
        page = console(repository=_DownRepository()).get(path)
        assert page.status_code == 503
        assert page.headers["retry-after"] == "5"
        assert_secure(page)
        assert "RepositoryError: firestore unavailable" in page.text
        assert "+5511999999999" not in page.text

    def test_overview_answers_503_with_its_health_section(self, console: Any) -> None:
        """The overview still renders when storage fails: 503, health says what failed."""
        page = console(repository=_DownRepository()).get("/")
        assert page.status_code == 503
        health = page.text.split('id="health"', 1)[1]
        assert "failing: RepositoryError: firestore unavailable" in health
        assert 'id="chart"' not in page.text

    def test_a_query_failing_after_ping(self, console: Any) -> None:
        """A query failing while ping would answer is a 503 page too (ping is not asked)."""
        page = console(repository=_DownAfterPing()).get("/")
        assert page.status_code == 503
        assert "RepositoryError: query failed" in page.text

    def test_consent_store_down(self, console: Any) -> None:
        """A consent store failing makes /consents a 503 page."""
        page = console(consent_store=_DownConsents()).get("/consents")
        assert page.status_code == 503
        assert "consent store unavailable" in page.text


class TestHeadersEverywhere:
    @pytest.mark.parametrize(
        ("method", "path", "authorized", "status"),
        [
            ("GET", "/", True, 200),
            ("GET", "/static/console.css", True, 200),
            ("GET", "/", False, 401),
            ("POST", "/", False, 401),
            ("POST", "/", True, 405),
            ("GET", "/nope", True, 404),
            ("GET", "/communications?channel=fax", True, 400),
            ("HEAD", "/communications", True, 200),
        ],
    )
    def test_security_headers(
        self, console: Any, method: str, path: str, authorized: bool, status: int
    ) -> None:
        """Every answer carries the CSP, frame, sniffing, referrer and cache headers."""
        page = console().request(method, path, auth="default" if authorized else None)
        assert page.status_code == status
        assert_secure(page)

    def test_pages_load_nothing_from_outside(self, console: Any) -> None:
        """No script, no external stylesheet, image or frame: only same-origin links."""
        app = console(consent_store=InMemoryConsentStore())
        repository_page = app.get("/")
        for path in ["/", "/communications", f"/prospects/{PROSPECT}", "/consents", "/nope"]:
            elements = Elements(app.get(path).text)
            tags = {tag for tag, _ in elements.tags}
            assert not tags & {"script", "iframe", "img", "object", "embed", "base"}
            for tag, attrs in elements.tags:
                if tag == "link":
                    assert attrs["href"] == "/static/console.css"
        assert repository_page.status_code == 200


HOSTILE_BODY = '"><img src=x onerror=alert(1)><script>alert("body")</script>'
HOSTILE_PROSPECTS = [
    "javascript:alert(1)",
    '"><img src=x onerror=alert(2)>',
    "<script>alert(3)</script>",
    "p" * 10_000,
]


def hostile_repository() -> InMemoryRepository:
    repository = InMemoryRepository()
    now = utcnow()
    for index, prospect in enumerate(HOSTILE_PROSPECTS):
        (record,) = repository.add_many(
            [
                Communication(
                    channel="whatsapp",
                    direction="inbound",
                    to="+14155552671",
                    from_="+5511999999999",
                    body=HOSTILE_BODY + "x" * 10_000,
                    prospect_id=prospect,
                    status="failed",
                    error='<script>alert("error")</script>',
                    error_code=30003,
                    price="<b>-1</b>",
                    price_unit="<i>",
                    media_urls=["javascript:alert(4)"],
                    timestamp=now - timedelta(minutes=index + 1),
                )
            ]
        )
        assert record.id is not None
        repository.append_event(
            record.id,
            {
                "route": "<script>alert(5)</script>",
                "receivedAt": "<img src=x onerror=alert(6)>",
                "params": {"Body": HOSTILE_BODY, "<b>": "javascript:alert(7)"},
            },
        )
    return repository


class TestHostileData:
    def pages(self, app: Any, repository: InMemoryRepository) -> list[str]:
        ids = [r.id for r in repository.communications(limit=50)]
        paths = ["/", "/communications", *[f"/communications/{i}" for i in ids]]
        paths.append("/communications?status=failed")
        return [app.get(path).text for path in paths]

    def test_rendered_as_text(self, console: Any) -> None:
        """Hostile bodies, prospect ids, errors, prices and events are escaped text: no
        element, event handler or javascript: link gets into any page."""
        repository = hostile_repository()
        app = console(repository=repository)
        for html in self.pages(app, repository):
            elements = Elements(html)
            tags = {tag for tag, _ in elements.tags}
            assert not tags & {"script", "img", "b", "i"}
            for _, attrs in elements.tags:
                assert not [name for name in attrs if name.startswith("on")]
            for href in elements.hrefs():
                assert not href.lower().startswith("javascript:"), href
                assert href.startswith(("/", "https://www.twilio.com/docs/errors/")), href

    def test_hostile_text_is_shown(self, console: Any) -> None:
        """The hostile text is there for the operator to read, escaped."""
        repository = hostile_repository()
        record = repository.communications(limit=1)[0]
        page = console(repository=repository).get(f"/communications/{record.id}")
        assert "&lt;script&gt;alert(&#34;body&#34;)&lt;/script&gt;" in page.text
        assert "x" * 10_000 in page.text
        text = "".join(Elements(page.text).text)
        assert HOSTILE_BODY in text

    def test_hostile_prospect_ids_are_not_linked(self, console: Any) -> None:
        """A prospect id outside the id shape is shown as text, not linked."""
        page = console(repository=hostile_repository()).get("/communications")
        assert page.text.count('class="prospect-link"') == 0
        assert page.text.count('class="unlinked"') == len(HOSTILE_PROSPECTS)

    def test_list_truncates_long_bodies(self, console: Any) -> None:
        """The list shows the start of a long body; the record page shows all of it."""
        page = console(repository=hostile_repository()).get("/communications")
        assert "x" * 1000 not in page.text


class TestConfiguration:
    @pytest.mark.parametrize("kind_", KINDS)
    def test_authorize_is_required(self, kind_: str) -> None:
        """No authorize (or None): ConfigurationError, the console never serves unguarded."""
        with pytest.raises(ConfigurationError, match="authorize"):
            ConsoleClient(kind_, authorize=None)

    @pytest.mark.parametrize("kind_", KINDS)
    def test_authorize_must_be_callable(self, kind_: str) -> None:
        """A non-callable authorize is refused."""
        with pytest.raises(ConfigurationError, match="callable"):
            ConsoleClient(kind_, authorize="admin:admin")

    def test_wsgi_refuses_async_authorize(self) -> None:
        """A WSGI console cannot await authorize."""

        async def authorize(request: ConsoleRequest) -> bool:
            return True

        with pytest.raises(ConfigurationError, match="async"):
            ConsoleClient("wsgi", authorize=authorize)

    def test_wsgi_refuses_async_repository_and_consent_store(self) -> None:
        """A WSGI console cannot await an async repository or consent store."""
        from servio_twilio import AsyncInMemoryConsentStore, AsyncInMemoryRepository

        with pytest.raises(ConfigurationError, match="async repository"):
            ConsoleClient("wsgi", repository=AsyncInMemoryRepository())
        with pytest.raises(ConfigurationError, match="async consent store"):
            ConsoleClient("wsgi", consent_store=AsyncInMemoryConsentStore())

    @pytest.mark.parametrize("kind_", KINDS)
    def test_repository_without_the_pages_methods(self, kind_: str) -> None:
        """A repository without the methods the pages read is refused, naming them."""

        class Old:
            def get(self, communication_id: str) -> None:
                return None

        with pytest.raises(ConfigurationError, match="count_by_day"):
            ConsoleClient(kind_, repository=Old())

    @pytest.mark.parametrize("kind_", KINDS)
    def test_consent_store_without_a_listing(self, kind_: str) -> None:
        """A consent store without opted_out() is refused."""

        class Old:
            def is_opted_out(self, number: str, channel: str) -> bool:
                return False

        with pytest.raises(ConfigurationError, match="opted_out"):
            ConsoleClient(kind_, consent_store=Old())

    @pytest.mark.parametrize(
        "options", [{"settings": "AC123"}, {"mask_numbers": "no"}, {"mask_numbers": None}]
    )
    @pytest.mark.parametrize("kind_", KINDS)
    def test_bad_keywords(self, kind_: str, options: dict[str, Any]) -> None:
        """Settings that are not TwilioSettings and a non-bool mask_numbers are refused."""
        with pytest.raises(ConfigurationError):
            ConsoleClient(kind_, **options)

    @pytest.mark.parametrize("kind_", KINDS)
    def test_without_jinja2(self, kind_: str, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without Jinja2 installed, building a console names the extra to install."""
        monkeypatch.setitem(__import__("sys").modules, "jinja2", None)
        with pytest.raises(ConfigurationError, match=r'pip install "servio-twilio\[console\]"'):
            ConsoleClient(kind_)

    def test_max_threads_is_checked(self) -> None:
        """max_threads below 1 is an InvalidArgument (a ValueError)."""
        with pytest.raises(ValueError, match="max_threads"):
            ConsoleClient("asgi", max_threads=0)

    def test_request_holds_the_documented_fields(self) -> None:
        """ConsoleRequest is a frozen value with method, path, query, headers, client, root."""
        request = ConsoleRequest(method="GET", path="/", headers={"a": "b"}, client="127.0.0.1")
        assert (request.query, request.root_path) == ("", "")
        with pytest.raises(AttributeError):
            request.method = "POST"  # type: ignore[misc]
        assert filled_repository is not None
