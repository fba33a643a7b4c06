"""Tests for servio_twilio.webhooks.wsgi: the WSGI adapter and mount_wsgi."""

from __future__ import annotations

import io
import threading
import time
from collections.abc import Callable
from typing import Any
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import httpx
import pytest

from servio_twilio.domain.errors import ConfigurationError
from servio_twilio.storage.memory import InMemoryRepository
from servio_twilio.webhooks.verifier import WebhookVerifier
from servio_twilio.webhooks.wsgi import make_wsgi_app, mount_wsgi
from support.stalling import MAX_STALL, StallingRepository
from support.twilio_callbacks import TOKEN, inbound_params, message_params, sid, signed

pytestmark = pytest.mark.filterwarnings("error::wsgiref.validate.WSGIWarning")

SM = sid("SM", 6)


def app_for(repository: InMemoryRepository | None = None, **options: Any) -> Any:
    return make_wsgi_app(
        verifier=WebhookVerifier(TOKEN),
        repository=repository if repository is not None else InMemoryRepository(),
        **options,
    )


def call(
    app: Any,
    *,
    method: str = "POST",
    path: str = "/message-status",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    validate: bool = True,
    **environ: Any,
) -> tuple[str, dict[str, str], bytes]:
    """Call a WSGI app (through wsgiref's validator by default); status, headers, body."""
    env: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "PATH_INFO": path,
        "wsgi.input": io.BytesIO(body),
        "CONTENT_LENGTH": str(len(body)),
        "HTTP_HOST": "testserver",
        "SCRIPT_NAME": "",
        "QUERY_STRING": "",
    }
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        env[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key] = value
    env.update(environ)
    setup_testing_defaults(env)
    captured: dict[str, Any] = {}

    def start_response(
        status: str, reply_headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Any:
        captured["status"] = status
        captured["headers"] = {k.lower(): v for k, v in reply_headers}
        return lambda data: None

    wrapped = validator(app) if validate else app
    result = wrapped(env, start_response)
    try:
        data = b"".join(result)
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return captured["status"], captured["headers"], data


class TestWsgiApp:
    def test_stored_and_conformant(self) -> None:
        """A signed callback is stored: 204, checked by wsgiref.validate.validator."""
        repository = InMemoryRepository()
        headers, body = signed("http://testserver/message-status?cid=c", message_params(SM, "sent"))
        status, _, data = call(
            app_for(repository), body=body, headers=headers, QUERY_STRING="cid=c"
        )
        assert (status, data) == ("204 No Content", b"")
        record = repository.find_by_sid(SM)
        assert record is not None
        assert record.status == "sent"

    @pytest.mark.parametrize(
        ("method", "path", "expected"),
        [("GET", "/inbound", "405 Method Not Allowed"), ("POST", "/x", "404 Not Found")],
    )
    def test_refusals_are_conformant(self, method: str, path: str, expected: str) -> None:
        """405 and 404 answers pass the validator, with a content length."""
        status, headers, data = call(app_for(), method=method, path=path)
        assert status == expected
        assert headers["content-length"] == str(len(data))

    def test_inbound_twiml(self) -> None:
        """/inbound answers 200 text/xml."""
        headers, body = signed("http://testserver/inbound", inbound_params(SM))
        status, reply_headers, data = call(
            app_for(on_inbound=lambda e: "<Response><Message>Oi</Message></Response>"),
            path="/inbound",
            body=body,
            headers=headers,
        )
        assert (status, reply_headers["content-type"]) == ("200 OK", "text/xml")
        assert data == b"<Response><Message>Oi</Message></Response>"

    def test_declared_length_over_limit_is_not_read(self) -> None:
        """A CONTENT_LENGTH over the limit is 413 without reading wsgi.input."""
        stream = io.BytesIO(b"x" * 500)
        status, _, _ = call(
            app_for(max_body_bytes=100),
            headers={"content-type": "application/x-www-form-urlencoded"},
            validate=False,
            **{"wsgi.input": stream, "CONTENT_LENGTH": "500"},
        )
        assert status.startswith("413")
        assert stream.tell() == 0

    def test_reads_only_content_length(self) -> None:
        """The body is CONTENT_LENGTH bytes, never more (the rest belongs to the next request)."""
        repository = InMemoryRepository()
        headers, body = signed("http://testserver/message-status", message_params(SM, "sent"))
        stream = io.BytesIO(body + b"NEXT REQUEST")
        status, _, _ = call(
            app_for(repository),
            headers=headers,
            validate=False,
            **{"wsgi.input": stream, "CONTENT_LENGTH": str(len(body))},
        )
        assert status.startswith("204")
        assert stream.read() == b"NEXT REQUEST"

    def test_terminated_input_without_length(self) -> None:
        """No CONTENT_LENGTH but wsgi.input_terminated (chunked): read to the end, bounded."""
        headers, body = signed("http://testserver/message-status", message_params(SM, "sent"))
        env = {"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": "", "wsgi.input_terminated": True}
        assert call(app_for(), headers=headers, validate=False, **env)[0].startswith("204")
        big = {
            "wsgi.input": io.BytesIO(b"x" * 5000),
            "CONTENT_LENGTH": "",
            "wsgi.input_terminated": True,
        }
        assert call(app_for(max_body_bytes=1000), headers=headers, validate=False, **big)[
            0
        ].startswith("413")

    def test_no_length_no_terminated_input_is_empty(self) -> None:
        """Without a length nor wsgi.input_terminated, the body is empty (PEP 3333)."""
        headers, body = signed("http://testserver/message-status", message_params(SM, "sent"))
        env = {"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": ""}
        status, _, _ = call(app_for(), headers=headers, validate=False, **env)
        assert status.startswith("403")

    def test_garbage_content_length(self) -> None:
        """A CONTENT_LENGTH that is not a number reads nothing; the request fails verification."""
        headers, body = signed("http://testserver/message-status", message_params(SM, "sent"))
        env = {"wsgi.input": io.BytesIO(body), "CONTENT_LENGTH": "12abc"}
        assert call(app_for(), headers=headers, validate=False, **env)[0].startswith("403")

    @pytest.mark.parametrize("key", ["RAW_URI", "REQUEST_URI"])
    def test_raw_uri_is_the_verified_path(self, key: str) -> None:
        """RAW_URI / REQUEST_URI keep the original encoding the signature covers."""
        url = "http://testserver/h%C3%A9/%7Ehooks/message-status?cid=1"
        headers, body = signed(url, message_params(SM, "sent"))
        env = {
            key: "/h%C3%A9/%7Ehooks/message-status?cid=1",
            "SCRIPT_NAME": "/h\xc3\xa9/~hooks",
            "QUERY_STRING": "cid=1",
        }
        assert call(app_for(), body=body, headers=headers, **env)[0].startswith("204")

    def test_absolute_form_request_uri(self) -> None:
        """A REQUEST_URI in absolute form contributes only its path."""
        headers, body = signed("http://testserver/message-status", message_params(SM, "sent"))
        env = {"REQUEST_URI": "http://proxy.example/message-status"}
        assert call(app_for(), body=body, headers=headers, **env)[0].startswith("204")

    def test_script_name_and_path_info_quoted(self) -> None:
        """No RAW_URI: SCRIPT_NAME + PATH_INFO re-quoted (UTF-8 bytes carried as Latin-1)."""
        url = "http://testserver/h%C3%A9/message-status"
        headers, body = signed(url, message_params(SM, "sent"))
        env = {"SCRIPT_NAME": "/h\xc3\xa9"}
        assert call(app_for(), body=body, headers=headers, **env)[0].startswith("204")

    def test_server_name_when_no_host(self) -> None:
        """No Host header: SERVER_NAME and a non-default SERVER_PORT."""
        headers, body = signed("http://10.1.2.3:8000/message-status", message_params(SM, "sent"))
        env = {"SERVER_NAME": "10.1.2.3", "SERVER_PORT": "8000"}
        status, _, _ = call(app_for(), body=body, headers=headers, validate=False, **env)
        assert status.startswith("403")  # HTTP_HOST "testserver" wins when present
        del_host = {**env, "HTTP_HOST": ""}
        assert call(app_for(), body=body, headers=headers, validate=False, **del_host)[
            0
        ].startswith("204")

    def test_async_hook_refused(self) -> None:
        """A WSGI app refuses an async hook at construction."""

        async def on_inbound(event: Any) -> str:
            return ""

        with pytest.raises(ConfigurationError, match="async"):
            app_for(on_inbound=on_inbound)


def _host(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [("host:" + environ["SCRIPT_NAME"] + "|" + environ["PATH_INFO"]).encode("latin-1")]


STORAGE_TIMEOUT = 0.5
SLACK = 3.0
LOCAL = "http://testserver"


class _ThreadRecording(InMemoryRepository):
    """In memory, ``blocking`` as told, noting the thread of each store."""

    def __init__(self, *, blocking: bool, delay: float = 0.0) -> None:
        super().__init__()
        self.blocking = blocking  # type: ignore[misc]
        self.delay = delay
        self.threads: list[str] = []

    def record_event(self, *args: Any, **kwargs: Any) -> Any:
        self.threads.append(threading.current_thread().name)
        time.sleep(self.delay)
        return super().record_event(*args, **kwargs)


class TestStorageTimeout:
    @pytest.mark.parametrize(
        ("route", "params"),
        [("/message-status", message_params(SM, "sent")), ("/inbound", inbound_params(SM))],
    )
    def test_stalled_storage_answers_503_in_time(self, route: str, params: dict[str, str]) -> None:
        """Storage that does not answer: 503 with Retry-After within storage_timeout + 3 s."""
        repository = StallingRepository()
        hooked: list[Any] = []
        app = app_for(repository, storage_timeout=STORAGE_TIMEOUT, on_event=hooked.append)
        headers, body = signed(LOCAL + route, params)
        started = time.monotonic()
        status, reply_headers, data = call(app, path=route, body=body, headers=headers)
        elapsed = time.monotonic() - started
        repository.release()
        assert (status, reply_headers["retry-after"]) == ("503 Service Unavailable", "5")
        assert data == b"storage unavailable, try again\n"
        assert elapsed < STORAGE_TIMEOUT + SLACK
        assert hooked == []

    def test_the_late_call_finishes_and_later_requests_work(self) -> None:
        """The late call goes on in the app's pool; once storage answers, requests are 204."""
        repository = StallingRepository()
        app = app_for(repository, storage_timeout=STORAGE_TIMEOUT)
        headers, body = signed(LOCAL + "/message-status", message_params(SM, "sent"))
        assert call(app, body=body, headers=headers)[0].startswith("503")
        repository.release()
        assert repository.finished.wait(MAX_STALL)
        assert repository.find_by_sid(SM) is not None  # stored late; Twilio's retry is a repeat
        other = sid("SM", 77)
        headers, body = signed(LOCAL + "/message-status", message_params(other, "delivered"))
        assert call(app, body=body, headers=headers)[0] == "204 No Content"
        record = repository.find_by_sid(other)
        assert record is not None
        assert record.status == "delivered"

    def test_the_deadline_starts_with_the_storage_work(self) -> None:
        """A slow hook before the store does not count: the deadline starts with storage."""
        repository = StallingRepository()
        repository.release()

        def resolver(number: str) -> str:
            time.sleep(2 * STORAGE_TIMEOUT)
            return "prospect-slow"

        app = app_for(repository, storage_timeout=STORAGE_TIMEOUT, prospect_resolver=resolver)
        headers, body = signed(LOCAL + "/inbound", inbound_params(SM))
        assert call(app, path="/inbound", body=body, headers=headers)[0] == "200 OK"
        record = repository.find_by_sid(SM)
        assert record is not None
        assert record.prospect_id == "prospect-slow"

    def test_a_blocking_repository_runs_in_the_apps_pool(self) -> None:
        """The store runs in the app's storage pool; hooks in the server's own thread."""
        repository = _ThreadRecording(blocking=True)
        hook_threads: list[str] = []
        app = app_for(
            repository, on_event=lambda e: hook_threads.append(threading.current_thread().name)
        )
        for n in range(3):
            headers, body = signed(LOCAL + "/message-status", message_params(sid("SM", n), "sent"))
            assert call(app, body=body, headers=headers)[0] == "204 No Content"
        assert len(repository.threads) == 3
        assert all(name.startswith("servio-webhook-storage") for name in repository.threads)
        assert hook_threads == [threading.current_thread().name] * 3

    def test_a_repository_that_is_not_blocking_runs_inline(self) -> None:
        """blocking=False: the store runs in the server's thread, unbounded by storage_timeout."""
        repository = _ThreadRecording(blocking=False, delay=3 * STORAGE_TIMEOUT)
        app = app_for(repository, storage_timeout=STORAGE_TIMEOUT)
        headers, body = signed(LOCAL + "/message-status", message_params(SM, "sent"))
        assert call(app, body=body, headers=headers)[0] == "204 No Content"
        assert repository.threads == [threading.current_thread().name]


class TestMountWsgi:
    def test_dispatches_by_prefix(self) -> None:
        """Under the prefix the webhook app answers; elsewhere the host does."""
        repository = InMemoryRepository()
        mounted = mount_wsgi(_host, "/api/twilio/webhook", app_for(repository))
        url = "http://testserver/api/twilio/webhook/message-status"
        headers, body = signed(url, message_params(SM, "sent"))
        status, _, _ = call(
            mounted, path="/api/twilio/webhook/message-status", body=body, headers=headers
        )
        assert status.startswith("204")
        status, _, data = call(mounted, method="GET", path="/api/twilio/webhooks")
        assert data == b"host:|/api/twilio/webhooks"

    def test_moves_prefix_to_script_name(self) -> None:
        """The app sees SCRIPT_NAME + prefix and the rest in PATH_INFO."""
        mounted = mount_wsgi(_host, "/hooks", _host)
        _, _, data = call(mounted, method="GET", path="/hooks/inbound", SCRIPT_NAME="/base")
        assert data == b"host:/base/hooks|/inbound"

    def test_non_ascii_prefix(self) -> None:
        """A non-ASCII prefix matches PATH_INFO's Latin-1-carried UTF-8 bytes."""
        mounted = mount_wsgi(lambda e, s: [b"host"], "/ganchos-é", _host)
        _, _, data = call(mounted, method="GET", path="/ganchos-\xc3\xa9/x")
        assert data == "host:/ganchos-\xc3\xa9|/x".encode("latin-1")

    def test_bad_prefix(self) -> None:
        """A prefix that is not a path below / is refused."""
        with pytest.raises(ConfigurationError):
            mount_wsgi(_host, "/", app_for())


@pytest.mark.server
class TestUnderRealServers:
    @pytest.mark.parametrize("server", ["wsgiref", "werkzeug"])
    def test_callbacks_over_real_http(self, wsgi_server: Callable[..., str], server: str) -> None:
        """Under wsgiref and werkzeug: 204 stored, 403 tampered, 405, 404, 413."""
        repository = InMemoryRepository()
        base = wsgi_server(app_for(repository, max_body_bytes=4096), server=server)
        headers, body = signed(base + "/message-status?cid=w", message_params(SM, "delivered"))
        with httpx.Client(base_url=base) as client:
            assert (
                client.post("/message-status?cid=w", content=body, headers=headers).status_code
                == 204
            )
            tampered = body.replace(b"delivered", b"read")
            assert (
                client.post("/message-status?cid=w", content=tampered, headers=headers).status_code
                == 403
            )
            assert client.get("/message-status").status_code == 405
            assert client.post("/nowhere", content=b"").status_code == 404
            big = client.post("/message-status", content=b"x" * 10_000, headers=headers)
            assert big.status_code == 413
        record = repository.find_by_sid(SM)
        assert record is not None
        assert record.status == "delivered"

    @pytest.mark.parametrize("server", ["wsgiref", "werkzeug"])
    def test_stalled_storage_503_then_204(
        self, wsgi_server: Callable[..., str], server: str
    ) -> None:
        """Under wsgiref and werkzeug: stalled storage answers 503 in time, then 204."""
        repository = StallingRepository()
        base = wsgi_server(app_for(repository, storage_timeout=STORAGE_TIMEOUT), server=server)
        headers, body = signed(base + "/message-status", message_params(SM, "sent"))
        other = sid("SM", 78)
        later_headers, later_body = signed(
            base + "/message-status", message_params(other, "delivered")
        )
        with httpx.Client(base_url=base, timeout=MAX_STALL) as client:
            started = time.monotonic()
            reply = client.post("/message-status", content=body, headers=headers)
            elapsed = time.monotonic() - started
            repository.release()
            assert (reply.status_code, reply.headers["retry-after"]) == (503, "5")
            assert elapsed < STORAGE_TIMEOUT + SLACK
            later = client.post("/message-status", content=later_body, headers=later_headers)
            assert later.status_code == 204
        assert repository.find_by_sid(other) is not None
