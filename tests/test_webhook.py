"""Tests for servio_twilio.webhooks.core: the pure core both apps share."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from servio_twilio.domain.errors import ConfigurationError, RepositoryError
from servio_twilio.domain.models import Channel, Communication, Direction
from servio_twilio.domain.settings import TwilioSettings
from servio_twilio.storage.memory import InMemoryRepository
from servio_twilio.webhooks.core import (
    ROUTES,
    Step,
    WebhookCore,
    WebhookRequest,
    WebhookResponse,
    build_core,
    check_prefix,
    run_sync,
)
from servio_twilio.webhooks.events import InboundMessageEvent, MessageStatusEvent
from servio_twilio.webhooks.verifier import WebhookVerifier
from support.twilio_callbacks import (
    FORM,
    OTHER_TOKEN,
    PROSPECT_NUMBER,
    SENDER,
    TOKEN,
    call_params,
    inbound_params,
    message_params,
    recording_params,
    sid,
    signed,
)

BASE = "https://api.servio.test/api/twilio/webhook"
SM = sid("SM", 10)
CA = sid("CA", 11)


def core(**overrides: Any) -> WebhookCore:
    options: dict[str, Any] = {
        "settings": None,
        "verifier": WebhookVerifier(TOKEN),
        "repository": InMemoryRepository(),
        "public_base_url": BASE,
        "trust_forwarded_headers": False,
        "on_event": None,
        "on_inbound": None,
        "prospect_resolver": None,
        "max_body_bytes": 65536,
        "allow_async_hooks": False,
    }
    options.update(overrides)
    return build_core(**options)


def request(
    route: str,
    params: dict[str, Any] | None = None,
    *,
    query: str = "",
    method: str = "POST",
    token: str = TOKEN,
    url: str | None = None,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    **fields: Any,
) -> WebhookRequest:
    """A request to ``route`` signed for the public URL (or ``url``)."""
    signed_url = url or BASE + route + ("?" + query if query else "")
    sent_headers, sent_body = signed(signed_url, params or {}, token)
    sent_headers = {k.lower(): v for k, v in sent_headers.items()}
    sent_headers.update(headers or {})
    options: dict[str, Any] = {
        "method": method,
        "route": route,
        "raw_path": "/api/twilio/webhook" + route,
        "query": query,
        "scheme": "http",
        "host": "internal:8080",
        "headers": sent_headers,
        "body": sent_body if body is None else body,
    }
    options.update(fields)
    return WebhookRequest(**options)


def answer(webhook: WebhookCore, req: WebhookRequest) -> WebhookResponse:
    return run_sync(webhook.handle(req))


class TestJudging:
    def test_routes(self) -> None:
        """The four routes, relative to the mount point."""
        assert set(ROUTES) == {"/message-status", "/call-status", "/recording-status", "/inbound"}

    def test_stored_status_callback_answers_204(self) -> None:
        """A signed, complete status callback is stored and answered 204 with no body."""
        webhook = core()
        reply = answer(webhook, request("/message-status", message_params(SM, "sent")))
        assert (reply.status, reply.body) == (204, b"")
        stored = webhook.repository.find_by_sid(SM)
        assert stored is not None
        assert stored.status == "sent"

    def test_unknown_route_404_comes_first(self) -> None:
        """An unknown route is 404 even with a wrong method and a huge body."""
        reply = answer(core(), request("/nope", method="GET", body=b"x" * 100_000))
        assert reply.status == 404

    def test_method_405_with_allow(self) -> None:
        """A GET to a route is 405 with ``Allow: POST``, before any body check."""
        reply = answer(core(), request("/call-status", method="GET", body=b"x" * 100_000))
        assert reply.status == 405
        assert ("allow", "POST") in reply.headers

    def test_body_over_limit_413(self) -> None:
        """A body over max_body_bytes is 413, before its content type is looked at."""
        webhook = core(max_body_bytes=100)
        req = request(
            "/message-status",
            message_params(SM, "sent", Body="x" * 200),
            headers={"content-type": "application/json"},
        )
        assert answer(webhook, req).status == 413

    def test_incomplete_body_413(self) -> None:
        """An adapter that stopped reading (body_complete=False) gets 413."""
        req = request("/message-status", message_params(SM, "sent"), body_complete=False)
        assert answer(core(), req).status == 413

    @pytest.mark.parametrize(
        "content_type",
        [
            None,
            "application/json",
            "text/plain",
            "multipart/form-data; boundary=x",
            "application/x-www-form-urlencoded; charset=latin-1",
        ],
    )
    def test_content_type_415(self, content_type: str | None) -> None:
        """Anything but form encoding (in UTF-8) is 415, before the signature is checked."""
        headers = {} if content_type is None else {"content-type": content_type}
        req = request("/message-status", message_params(SM, "sent"), headers=headers)
        if content_type is None:
            req = request(
                "/message-status",
                message_params(SM, "sent"),
                headers={"content-type": ""},
            )
        assert answer(core(), req).status == 415

    @pytest.mark.parametrize(
        "content_type",
        [
            FORM,
            "Application/X-WWW-Form-Urlencoded",
            f"{FORM}; charset=UTF-8",
            f'{FORM};charset="utf-8"',
        ],
    )
    def test_content_type_variants_accepted(self, content_type: str) -> None:
        """Case and a UTF-8 charset parameter do not matter."""
        req = request(
            "/message-status", message_params(SM, "sent"), headers={"content-type": content_type}
        )
        assert answer(core(), req).status == 204

    @pytest.mark.parametrize("body", [b"a=\xff", b"a=%ff", b"MessageSid=%C3"])
    def test_undecodable_form_400(self, body: bytes) -> None:
        """Bytes that are not UTF-8 (raw or percent-encoded) are 400, before the signature."""
        reply = answer(core(), request("/message-status", {}, body=body))
        assert reply.status == 400
        assert b"undecodable" in reply.body

    def test_too_many_fields_400(self) -> None:
        """More than 1000 fields cannot be a Twilio callback: 400."""
        body = "&".join(f"f{i}=1" for i in range(1001)).encode()
        assert answer(core(), request("/message-status", {}, body=body)).status == 400

    def test_bad_signature_403_and_nothing_written(self) -> None:
        """A body changed after signing is 403 and nothing is stored."""
        webhook = core()
        req = request("/message-status", message_params(SM, "sent"))
        tampered = WebhookRequest(**{**_fields(req), "body": req.body.replace(b"sent", b"read")})
        assert answer(webhook, tampered).status == 403
        assert len(webhook.repository) == 0  # type: ignore[arg-type]

    def test_missing_signature_403(self) -> None:
        """No X-Twilio-Signature is 403."""
        req = request("/message-status", message_params(SM, "sent"))
        headers = {k: v for k, v in req.headers.items() if k != "x-twilio-signature"}
        assert answer(core(), WebhookRequest(**{**_fields(req), "headers": headers})).status == 403

    def test_other_token_403(self) -> None:
        """A request signed with another account's token is 403."""
        req = request("/message-status", message_params(SM, "sent"), token=OTHER_TOKEN)
        assert answer(core(), req).status == 403

    def test_secondary_token_from_settings(self) -> None:
        """settings gives the verifier: its secondary token counts too."""
        settings = TwilioSettings(
            account_sid="AC" + "1" * 32, auth_token=TOKEN, secondary_auth_token=OTHER_TOKEN
        )
        webhook = core(settings=settings, verifier=None)
        req = request("/message-status", message_params(SM, "sent"), token=OTHER_TOKEN)
        assert answer(webhook, req).status == 204

    def test_missing_fields_400_after_signature(self) -> None:
        """A signed callback without its SID is 400 naming the field; nothing stored."""
        webhook = core()
        reply = answer(webhook, request("/call-status", {"CallStatus": "ringing"}))
        assert reply.status == 400
        assert b"CallSid is missing" in reply.body
        assert len(webhook.repository) == 0  # type: ignore[arg-type]

    def test_unsigned_missing_fields_is_403_not_400(self) -> None:
        """The signature is judged before the fields: an unsigned empty form is 403."""
        req = request("/call-status", {}, headers={"x-twilio-signature": "nope"})
        assert answer(core(), req).status == 403

    def test_storage_down_503(self) -> None:
        """A RepositoryError while storing answers 503 with Retry-After."""
        webhook = core(repository=_DownRepository())
        reply = answer(webhook, request("/message-status", message_params(SM, "sent")))
        assert reply.status == 503
        assert ("retry-after", "5") in reply.headers

    def test_failed_verification_keeps_the_record_id(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """The logged URL keeps ``cid`` whole (it names the record), masking only numbers."""
        req = request(
            "/message-status",
            message_params(SM, "sent"),
            query="cid=2b1ce620894171948c97&To=%2B5511999999999",
            headers={"x-twilio-signature": "bad"},
        )
        with caplog.at_level(logging.WARNING, logger="servio_twilio.webhook"):
            assert answer(core(), req).status == 403
        assert "cid=2b1ce620894171948c97&To=%2B55119*****999" in caplog.text

    def test_failed_verification_logs_masked_url(self, caplog: pytest.LogCaptureFixture) -> None:
        """The URL tried is logged, phone numbers masked, no token."""
        req = request(
            "/message-status",
            message_params(SM, "sent"),
            query="n=5511999999999",
            headers={"x-twilio-signature": "bad"},
        )
        with caplog.at_level(logging.WARNING, logger="servio_twilio.webhook"):
            assert answer(core(), req).status == 403
        text = caplog.text
        assert BASE + "/message-status?n=" in text
        assert "5511999999999" not in text
        assert TOKEN not in text


def _fields(req: WebhookRequest) -> dict[str, Any]:
    return {
        name: getattr(req, name)
        for name in ("method", "route", "raw_path", "query", "scheme", "host", "headers", "body")
    }


class _DownRepository(InMemoryRepository):
    def find_by_sid(self, sid: str) -> Communication | None:
        raise RepositoryError("storage is down")

    def latest_outbound_to(self, number: str) -> Communication | None:
        raise RepositoryError("storage is down")


class TestVerifiedUrl:
    def test_public_base_url_plus_route_and_raw_query(self) -> None:
        """public_base_url wins over what the request says."""
        req = request("/message-status", query="cid=a%2Fb&x=1")
        assert core().verified_url(req) == BASE + "/message-status?cid=a%2Fb&x=1"

    def test_settings_webhook_base_url(self) -> None:
        """Without public_base_url, settings.webhook_base_url is the public URL."""
        settings = TwilioSettings(
            account_sid="AC" + "1" * 32, auth_token=TOKEN, webhook_base_url=BASE + "/"
        )
        webhook = core(settings=settings, verifier=None, public_base_url=None)
        assert webhook.verified_url(request("/inbound")) == BASE + "/inbound"

    def test_request_own_url(self) -> None:
        """Without a base URL: the request's scheme, Host and raw path."""
        webhook = core(public_base_url=None)
        req = request("/inbound", headers={"x-forwarded-proto": "https"})
        assert webhook.verified_url(req) == "http://internal:8080/api/twilio/webhook/inbound"

    def test_forwarded_headers_when_trusted(self) -> None:
        """With trust_forwarded_headers: the first X-Forwarded-Proto and -Host."""
        webhook = core(public_base_url=None, trust_forwarded_headers=True)
        req = request(
            "/inbound",
            query="cid=1",
            headers={"x-forwarded-proto": "https, http", "x-forwarded-host": "api.servio.test"},
        )
        assert (
            webhook.verified_url(req) == "https://api.servio.test/api/twilio/webhook/inbound?cid=1"
        )

    def test_forwarded_proto_garbage_ignored(self) -> None:
        """A forwarded proto other than http/https is ignored; a missing host falls back."""
        webhook = core(public_base_url=None, trust_forwarded_headers=True)
        req = request("/inbound", headers={"x-forwarded-proto": "gopher"})
        assert webhook.verified_url(req) == "http://internal:8080/api/twilio/webhook/inbound"

    def test_signed_for_the_public_url_received_internally(self) -> None:
        """Behind a proxy: signed for https://public, received on http://internal, verifies."""
        webhook = core(public_base_url=None, trust_forwarded_headers=True)
        req = request(
            "/message-status",
            message_params(SM, "sent"),
            url="https://api.servio.test/api/twilio/webhook/message-status",
            headers={"x-forwarded-proto": "https", "x-forwarded-host": "api.servio.test"},
        )
        assert answer(webhook, req).status == 204


class TestStatusCallbacks:
    def test_event_kept_as_received(self) -> None:
        """The callback is kept with route, receivedAt and the params as received."""
        webhook = core()
        params = message_params(SM, "delivered")
        answer(webhook, request("/message-status", params))
        record = webhook.repository.find_by_sid(SM)
        assert record is not None
        assert record.id is not None
        (kept,) = webhook.repository.events(record.id)
        assert kept["route"] == "message-status"
        assert kept["params"] == params
        assert kept["receivedAt"].endswith("+00:00")

    def test_call_duration_and_recording(self) -> None:
        """Call status sets duration; recording status sets the recording fields."""
        webhook = core()
        answer(webhook, request("/call-status", call_params(CA, "completed", CallDuration="61")))
        answer(webhook, request("/recording-status", recording_params(CA, sid("RE", 1))))
        record = webhook.repository.find_by_sid(CA)
        assert record is not None
        assert (record.channel, record.status, record.duration) == (Channel.CALL, "completed", 61)
        assert (record.recording_sid, record.recording_duration) == (sid("RE", 1), 42)
        assert record.recording_url is not None

    def test_failed_message_keeps_error(self) -> None:
        """A failed callback's ErrorCode and message are stored."""
        webhook = core()
        params = message_params(SM, "failed", ErrorCode="30008", ErrorMessage="Unknown error")
        answer(webhook, request("/message-status", params))
        record = webhook.repository.find_by_sid(SM)
        assert record is not None
        assert (record.status, record.error_code, record.error) == (
            "failed",
            30008,
            "Unknown error",
        )

    def test_cid_finds_the_pending_record(self) -> None:
        """A callback with ?cid= lands on the pending record and gives it the SID."""
        repository = InMemoryRepository()
        pending = repository.add(
            Communication(channel=Channel.SMS, to=PROSPECT_NUMBER, from_=SENDER, prospect_id="p1")
        )
        assert pending.id is not None
        webhook = core(repository=repository)
        reply = answer(
            webhook,
            request("/message-status", message_params(SM, "queued"), query=f"cid={pending.id}"),
        )
        assert reply.status == 204
        assert len(repository) == 1
        record = repository.get(pending.id)
        assert record is not None
        assert (record.twilio_sid, record.status, record.prospect_id) == (SM, "queued", "p1")


class TestHooks:
    def test_on_event_gets_the_event_after_storing(self) -> None:
        """on_event receives the typed event once the record is stored."""
        seen: list[tuple[Any, Any]] = []
        repository = InMemoryRepository()

        def on_event(event: Any) -> None:
            seen.append((event, repository.find_by_sid(SM)))

        webhook = core(repository=repository, on_event=on_event)
        answer(webhook, request("/message-status", message_params(SM, "sent"), query="cid=zz"))
        ((event, stored),) = seen
        assert isinstance(event, MessageStatusEvent)
        assert event.cid == "zz"
        assert stored is not None

    def test_on_event_failure_is_logged_and_still_204(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A hook that raises is logged; the reply stays 204."""

        def on_event(event: Any) -> None:
            raise RuntimeError("hook broke")

        with caplog.at_level(logging.ERROR, logger="servio_twilio.webhook"):
            reply = answer(
                core(on_event=on_event), request("/message-status", message_params(SM, "sent"))
            )
        assert reply.status == 204
        assert "hook broke" in caplog.text

    def test_inbound_twiml_reply(self) -> None:
        """/inbound answers 200 text/xml with on_inbound's TwiML; on_event follows."""
        order: list[str] = []

        def on_inbound(event: InboundMessageEvent) -> str:
            order.append("inbound")
            return f"<Response><Message>Recebido: {event.body}</Message></Response>"

        webhook = core(on_inbound=on_inbound, on_event=lambda e: order.append("event"))
        reply = answer(webhook, request("/inbound", inbound_params(SM, "sim")))
        assert reply.status == 200
        assert ("content-type", "text/xml") in reply.headers
        assert reply.body == b"<Response><Message>Recebido: sim</Message></Response>"
        assert order == ["inbound", "event"]

    @pytest.mark.parametrize("outcome", ["raise", "none", "bytes"])
    def test_inbound_empty_response(self, outcome: str) -> None:
        """No hook, a hook that raises, returns None or a non-str: an empty <Response/>."""

        def on_inbound(event: InboundMessageEvent) -> Any:
            if outcome == "raise":
                raise RuntimeError("boom")
            return None if outcome == "none" else b"<Response/>"

        webhook = core(on_inbound=on_inbound)
        reply = answer(webhook, request("/inbound", inbound_params(SM)))
        assert (reply.status, reply.body) == (200, b"<Response/>")
        assert webhook.repository.find_by_sid(SM) is not None

    def test_inbound_without_hook(self) -> None:
        """Without on_inbound, /inbound answers an empty <Response/>."""
        reply = answer(core(), request("/inbound", inbound_params(SM)))
        assert (reply.status, reply.body) == (200, b"<Response/>")


class TestInbound:
    def _outbound(self, repository: InMemoryRepository, prospect: str) -> None:
        repository.add(
            Communication(
                channel=Channel.SMS, to=PROSPECT_NUMBER, from_=SENDER, prospect_id=prospect
            )
        )

    def test_stored_as_received_inbound(self) -> None:
        """The record: inbound, status received, body, numbers without prefix, media."""
        webhook = core()
        params = inbound_params(
            SM,
            "foto",
            From="whatsapp:" + PROSPECT_NUMBER,
            To="whatsapp:" + SENDER,
            NumMedia="1",
            MediaUrl0="https://m/0",
        )
        answer(webhook, request("/inbound", params))
        record = webhook.repository.find_by_sid(SM)
        assert record is not None
        assert record.id == "sid-" + SM
        assert (record.direction, record.status, record.channel) == (
            Direction.INBOUND,
            "received",
            Channel.WHATSAPP,
        )
        assert (record.from_, record.to, record.body) == (PROSPECT_NUMBER, SENDER, "foto")
        assert (record.media_url, record.media_urls) == ("https://m/0", ("https://m/0",))

    def test_attributed_to_latest_outbound(self) -> None:
        """Without a resolver, the prospect of the newest outbound record to the sender."""
        repository = InMemoryRepository()
        self._outbound(repository, "prospect-1")
        webhook = core(repository=repository)
        answer(webhook, request("/inbound", inbound_params(SM)))
        record = repository.find_by_sid(SM)
        assert record is not None
        assert record.prospect_id == "prospect-1"

    def test_unattributed_without_outbound(self) -> None:
        """No outbound record to the sender: no prospect."""
        webhook = core()
        answer(webhook, request("/inbound", inbound_params(SM)))
        record = webhook.repository.find_by_sid(SM)
        assert record is not None
        assert record.prospect_id is None

    def test_resolver_wins(self) -> None:
        """prospect_resolver(from_number) decides, even against an outbound record."""
        repository = InMemoryRepository()
        self._outbound(repository, "prospect-1")
        asked: list[str] = []

        def resolver(number: str) -> str:
            asked.append(number)
            return "prospect-9"

        answer(
            core(repository=repository, prospect_resolver=resolver),
            request("/inbound", inbound_params(SM)),
        )
        record = repository.find_by_sid(SM)
        assert record is not None
        assert (record.prospect_id, asked) == ("prospect-9", [PROSPECT_NUMBER])

    def test_resolver_none_means_unattributed(self) -> None:
        """A resolver answering None leaves the message unattributed."""
        repository = InMemoryRepository()
        self._outbound(repository, "prospect-1")
        answer(
            core(repository=repository, prospect_resolver=lambda n: None),
            request("/inbound", inbound_params(SM)),
        )
        record = repository.find_by_sid(SM)
        assert record is not None
        assert record.prospect_id is None

    def test_resolver_failure_falls_back(self) -> None:
        """A resolver that raises is logged; the latest outbound record attributes instead."""
        repository = InMemoryRepository()
        self._outbound(repository, "prospect-1")

        def resolver(number: str) -> str:
            raise RuntimeError("crm down")

        reply = answer(
            core(repository=repository, prospect_resolver=resolver),
            request("/inbound", inbound_params(SM)),
        )
        record = repository.find_by_sid(SM)
        assert reply.status == 200
        assert record is not None
        assert record.prospect_id == "prospect-1"

    def test_repeated_delivery_keeps_one_record(self) -> None:
        """The same inbound message twice: one record, two kept callbacks."""
        webhook = core()
        req = request("/inbound", inbound_params(SM))
        assert answer(webhook, req).status == 200
        assert answer(webhook, req).status == 200
        assert len(webhook.repository) == 1  # type: ignore[arg-type]
        assert len(webhook.repository.events("sid-" + SM)) == 2

    def test_storage_down_503(self) -> None:
        """Storage down while storing an inbound message: 503."""
        reply = answer(core(repository=_DownRepository()), request("/inbound", inbound_params(SM)))
        assert reply.status == 503


class TestRespond:
    @pytest.mark.parametrize(
        ("route", "params"),
        [
            ("/message-status", message_params(SM, "delivered", ErrorCode="30003")),
            ("/call-status", call_params(CA, "completed", CallDuration="12")),
            ("/recording-status", recording_params(CA, sid("RE", 12), RecordingDuration="7")),
            ("/inbound", inbound_params(SM, NumMedia="1", MediaUrl0="https://m.test/0")),
            ("/inbound", {"From": PROSPECT_NUMBER}),
            ("/nope", message_params(SM, "sent")),
        ],
    )
    def test_direct_answers_as_the_steps_do(self, route: str, params: dict[str, str]) -> None:
        """Without hooks, respond stores and answers exactly as run_sync(handle) does."""
        direct, stepped = core(), core()
        for webhook in (direct, stepped):
            webhook.repository.add(
                Communication(id="c1", channel=Channel.CALL, to="+1", from_="+2")
            )
        found_by_cid = request(route, params, query="cid=c1")
        assert direct.respond(found_by_cid) == answer(stepped, found_by_cid)
        created = request(route, {**params, "CallSid": CA + "0", "MessageSid": SM + "0"})
        assert direct.respond(created) == answer(stepped, created)
        assert direct.respond(created) == answer(stepped, created)  # again: an update

        def stored(webhook: WebhookCore) -> list[Any]:
            repository: Any = webhook.repository
            records = sorted(repository._records.values(), key=lambda c: c.id or "")
            times = ("timestamp", "created_at", "updated_at")
            return [
                (
                    {k: v for k, v in c.to_dict().items() if k not in times},
                    [e["params"] for e in repository.events(c.id)],
                )
                for c in records
            ]

        assert stored(direct) == stored(stepped)

    @pytest.mark.parametrize(
        ("route", "params"),
        [("/message-status", message_params(SM, "sent")), ("/inbound", inbound_params(SM))],
    )
    def test_storage_down_503(self, route: str, params: dict[str, str]) -> None:
        """The direct path answers a RepositoryError with 503 and Retry-After too."""
        reply = core(repository=_DownRepository()).respond(request(route, params))
        assert reply.status == 503
        assert ("retry-after", "5") in reply.headers

    def test_hooks_still_run(self) -> None:
        """With hooks, respond runs every step inline: on_inbound's TwiML, then on_event."""
        seen: list[Any] = []
        webhook = core(on_inbound=lambda event: "<Response>hi</Response>", on_event=seen.append)
        reply = webhook.respond(request("/inbound", inbound_params(SM)))
        assert reply.body == b"<Response>hi</Response>"
        ((event,),) = [seen]
        assert isinstance(event, InboundMessageEvent)
        assert event.raw == inbound_params(SM)

    def test_inline_only_without_hooks_and_blocking(self) -> None:
        """inline: no hooks and a repository that is not blocking."""

        class Blocking(InMemoryRepository):
            blocking = True

        assert core().inline
        assert not core(on_event=print).inline
        assert not core(prospect_resolver=lambda number: None).inline
        assert not core(repository=Blocking()).inline


class TestRunSync:
    def test_hook_returning_awaitable_is_an_error_not_a_hang(self) -> None:
        """A WSGI hook that returns a coroutine is closed and treated as failed."""

        async def coroutine() -> str:
            return "<Response/>"

        webhook = core(on_inbound=lambda event: coroutine())
        reply = answer(webhook, request("/inbound", inbound_params(SM)))
        assert (reply.status, reply.body) == (200, b"<Response/>")

    def test_steps_run_in_order(self) -> None:
        """run_sync sends each step's result back and returns the final response."""

        def steps() -> Any:
            first = yield Step(lambda: 1)
            second = yield Step(lambda: first + 1)
            return WebhookResponse(200 + second, (), b"")

        assert run_sync(steps()).status == 202

    def test_errors_are_thrown_back(self) -> None:
        """A step that raises has its error thrown into the generator."""

        def steps() -> Any:
            try:
                yield Step(lambda: 1 / 0)
            except ZeroDivisionError:
                return WebhookResponse(299, (), b"")
            return WebhookResponse(200, (), b"")

        assert run_sync(steps()).status == 299


class TestBuildCore:
    def test_needs_settings_or_verifier(self) -> None:
        """Neither settings nor verifier: ConfigurationError."""
        with pytest.raises(ConfigurationError, match="settings"):
            core(verifier=None)

    @pytest.mark.parametrize(
        ("overrides", "match"),
        [
            ({"settings": "token"}, "TwilioSettings"),
            ({"verifier": object()}, "verify"),
            ({"repository": object()}, "CommunicationRepository"),
            ({"public_base_url": "ftp://x"}, "http"),
            ({"public_base_url": "https://x/a?b=1"}, "query"),
            ({"public_base_url": 3}, "str"),
            ({"trust_forwarded_headers": "yes"}, "bool"),
            ({"on_event": "print"}, "callable"),
            ({"max_body_bytes": 0}, "positive"),
            ({"max_body_bytes": True}, "int"),
        ],
    )
    def test_misconfiguration(self, overrides: dict[str, Any], match: str) -> None:
        """Each setting that cannot work is refused at construction, named."""
        with pytest.raises(ConfigurationError, match=match):
            core(**overrides)

    def test_async_hook_refused_for_wsgi(self) -> None:
        """An async hook cannot serve a WSGI app."""

        async def on_event(event: Any) -> None:
            return None

        with pytest.raises(ConfigurationError, match="async"):
            core(on_event=on_event)
        assert core(on_event=on_event, allow_async_hooks=True) is not None

    def test_trailing_slash_dropped(self) -> None:
        """public_base_url loses its trailing slash."""
        assert (
            core(public_base_url=BASE + "/").verified_url(request("/inbound")) == BASE + "/inbound"
        )

    @pytest.mark.parametrize(("prefix", "expected"), [("/a", "/a"), ("/a/b/", "/a/b")])
    def test_check_prefix(self, prefix: str, expected: str) -> None:
        """A mount prefix loses its trailing slash."""
        assert check_prefix(prefix) == expected

    @pytest.mark.parametrize("prefix", ["", "/", "a", "/a?b", None])
    def test_check_prefix_refuses(self, prefix: Any) -> None:
        """A prefix must be a path below /."""
        with pytest.raises(ConfigurationError):
            check_prefix(prefix)

    def test_repr_has_no_token(self) -> None:
        """The core's repr names no secret."""
        assert TOKEN not in repr(core())


class TestRetriedDeliveries:
    """Twilio retries a delivery it thinks failed with the same ``I-Twilio-Idempotency-Token``."""

    @pytest.mark.parametrize("route", ["/message-status", "/inbound"])
    def test_a_retry_is_acknowledged_and_kept_once(self, route: str) -> None:
        """The retry answers 2xx, keeps no second event and runs no hook again."""
        seen: list[object] = []
        webhook = core(on_event=seen.append)
        params = message_params(SM, "sent") if route == "/message-status" else inbound_params(SM)
        retry = {"i-twilio-idempotency-token": "idem-1"}
        first = answer(webhook, request(route, params, headers=retry))
        again = answer(webhook, request(route, params, headers=retry))
        assert first.status == again.status
        assert again.status in (200, 204)
        stored = webhook.repository.find_by_sid(SM)
        assert stored is not None
        assert stored.id is not None
        assert len(webhook.repository.events(stored.id)) == 1
        assert len(seen) == 1

    def test_another_token_is_another_delivery(self) -> None:
        """A different token (or none) is a new delivery: kept, hooks run."""
        seen: list[object] = []
        webhook = core(on_event=seen.append)
        for headers in (
            {"i-twilio-idempotency-token": "a"},
            {"i-twilio-idempotency-token": "b"},
            {},
        ):
            answer(webhook, request("/message-status", message_params(SM, "sent"), headers=headers))
        assert len(webhook.repository.events("sid-" + SM)) == 3
        assert len(seen) == 3
