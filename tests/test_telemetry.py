"""Tests for servio_twilio.domain.telemetry: the spans and metrics of sends, batches, callbacks.

Each test points the module at its own SDK providers (`configure_telemetry`)
with an `InMemorySpanExporter` and an `InMemoryMetricReader`, and goes back
to OpenTelemetry's globals afterwards: nothing global is set.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import attrs
import httpx
import pytest
from opentelemetry import trace
from opentelemetry.sdk.metrics import MeterProvider
from opentelemetry.sdk.metrics.export import Gauge, Histogram, InMemoryMetricReader, Sum
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from servio_twilio import (
    AsyncCommunicationsClient,
    InMemoryConsentStore,
    InMemoryRepository,
    InMemorySendLimiter,
    OutboundMessage,
    RecipientOptedOut,
    RepositoryError,
    SendLimitExceeded,
    SendOutcomeUnknown,
    SendPolicy,
    TwilioAPIError,
    configure_telemetry,
)
from servio_twilio.domain.telemetry import OUTCOMES, reconcile_span
from servio_twilio.testing import FakeTwilio
from servio_twilio.testing.fake_twilio import Fault
from servio_twilio.webhooks.asgi import make_asgi_app
from servio_twilio.webhooks.verifier import WebhookVerifier
from servio_twilio.webhooks.wsgi import make_wsgi_app
from support.clients import make_client
from support.processes import run_python
from support.sending import PHONE, WHATSAPP, TickingClock, make_settings
from support.twilio_callbacks import (
    OTHER_TOKEN,
    PROSPECT_NUMBER,
    SENDER,
    TOKEN,
    inbound_params,
    message_params,
    sid,
    signed,
)

TO = "+5511988887777"
OTHER = "+5511977776666"
BODY = "Confirmado para 15h, Dona Maria"
PROSPECT = "prospect-maria-souza"
SECRET = "auth-token-secret"  # make_settings' auth token
INBOUND_BODY = "Pode ligar amanha? Rua das Flores 12"
BASE = "https://hooks.servio.test/api/twilio/webhook"
OPTED_OUT = "+5511966665555"
NUMBER = re.compile(r"\+\d{5,}")  # a phone number, even masked (+55119*****777)
# Every number the tests use, without its + (our ids are hex: digits alone could be one).
DIGITS = [n.lstrip("+") for n in (TO, OTHER, OPTED_OUT, PROSPECT_NUMBER, SENDER, PHONE, WHATSAPP)]


@attrs.define
class Telemetry:
    """What one test's providers collected."""

    spans_exporter: InMemorySpanExporter
    reader: InMemoryMetricReader

    def spans(self, name: str | None = None) -> list[ReadableSpan]:
        found = self.spans_exporter.get_finished_spans()
        return [span for span in found if name is None or span.name == name]

    def points(self, metric: str) -> list[tuple[dict[str, Any], Any]]:
        """(attributes, point) of every data point of ``metric``."""
        found = []
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for item in scope.metrics:
                    if item.name == metric:
                        found += [(dict(p.attributes or {}), p) for p in item.data.data_points]
        return found

    def counts(self, metric: str) -> dict[tuple[tuple[str, Any], ...], int]:
        """A counter's values, by its sorted attributes."""
        return {tuple(sorted(attrs.items())): p.value for attrs, p in self.points(metric)}

    def every_value(self) -> list[str]:
        """Every span name, attribute key and value, status text and event, and every metric
        data point's attributes, as text."""
        values: list[str] = []
        for span in self.spans():
            values.append(span.name)
            values += [f"{key}={value}" for key, value in (span.attributes or {}).items()]
            values.append(span.status.description or "")
            values += [event.name for event in span.events]
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                for item in scope.metrics:
                    for point in item.data.data_points:
                        values += [f"{k}={v}" for k, v in (point.attributes or {}).items()]
        return values

    def assert_private(self, *secrets: str) -> None:
        """No phone number and none of ``secrets`` in anything emitted; no exception events."""
        values = self.every_value()
        assert values, "nothing was emitted"
        for value in values:
            assert not NUMBER.search(value), value
            for secret in (SECRET, TOKEN, OTHER_TOKEN, *DIGITS, *secrets):
                assert secret not in value, (secret, value)
        assert all(not span.events for span in self.spans())


@pytest.fixture
def otel() -> Iterator[Telemetry]:
    exporter = InMemorySpanExporter()
    tracer_provider = TracerProvider()
    tracer_provider.add_span_processor(SimpleSpanProcessor(exporter))
    reader = InMemoryMetricReader()
    meter_provider = MeterProvider(metric_readers=[reader])
    configure_telemetry(tracer_provider=tracer_provider, meter_provider=meter_provider)
    try:
        yield Telemetry(exporter, reader)
    finally:
        configure_telemetry()
        tracer_provider.shutdown()
        meter_provider.shutdown()


def _client(**kwargs: Any) -> Any:
    kwargs.setdefault("http_client", FakeTwilio())
    return make_client(make_settings(), clock=TickingClock(), sleep=lambda _: None, **kwargs)


class _FailingRepository(InMemoryRepository):
    def add(self, record: Any) -> None:
        raise RepositoryError("storage is down")


@pytest.mark.usefixtures("client_kind")
class TestSend:
    def test_a_sent_message(self, otel: Telemetry) -> None:
        """One send: a ``servio_twilio.send`` span (channel, outcome, our id), counted, timed."""
        result = _client().send_sms(TO, BODY, prospect_id=PROSPECT)
        (span,) = otel.spans("servio_twilio.send")
        assert span.attributes == {
            "servio_twilio.channel": "sms",
            "servio_twilio.communication_id": result.communication_id,
            "servio_twilio.outcome": "sent",
        }
        assert span.status.status_code is StatusCode.UNSET
        key = (("channel", "sms"), ("outcome", "sent"))
        assert otel.counts("servio_twilio.sends") == {key: 1}
        ((labels, histogram),) = otel.points("servio_twilio.send.duration")
        assert labels == dict(key)
        assert histogram.count == 1
        otel.assert_private(BODY, PROSPECT)

    def test_twilio_refuses(self, otel: Telemetry) -> None:
        """Twilio's error: outcome ``refused``, its code, the error type, status ERROR."""
        fake = FakeTwilio()
        fake.fail_next(1, Fault.error(21211))
        with pytest.raises(TwilioAPIError):
            _client(http_client=fake).send_whatsapp(TO, BODY, prospect_id=PROSPECT)
        (span,) = otel.spans("servio_twilio.send")
        attributes = dict(span.attributes or {})
        assert attributes["servio_twilio.channel"] == "whatsapp"
        assert attributes["servio_twilio.outcome"] == "refused"
        assert attributes["servio_twilio.error_code"] == 21211
        assert attributes["error.type"] == "TwilioAPIError"
        assert span.status.status_code is StatusCode.ERROR
        assert otel.counts("servio_twilio.sends") == {
            (("channel", "whatsapp"), ("outcome", "refused")): 1
        }
        otel.assert_private(BODY, PROSPECT)

    def test_no_answer_is_unknown(self, otel: Telemetry) -> None:
        """A lost answer: outcome ``unknown`` (the callbacks will tell)."""
        fake = FakeTwilio()
        fake.fail_next(1, Fault.read_timeout())
        with pytest.raises(SendOutcomeUnknown):
            _client(http_client=fake).send_sms(TO, BODY)
        (span,) = otel.spans("servio_twilio.send")
        assert span.attributes is not None
        assert span.attributes["servio_twilio.outcome"] == "unknown"
        assert span.attributes["error.type"] == "SendOutcomeUnknown"
        assert otel.counts("servio_twilio.sends") == {
            (("channel", "sms"), ("outcome", "unknown")): 1
        }
        otel.assert_private(BODY)

    def test_the_policy_refuses(self, otel: Telemetry) -> None:
        """An opted-out recipient: outcome ``rejected``, nothing sent."""
        store = InMemoryConsentStore()
        store.opt_out(TO, "sms", source="admin")
        client = _client(policy=SendPolicy(consent=store))
        with pytest.raises(RecipientOptedOut):
            client.send_sms(TO, BODY, prospect_id=PROSPECT)
        (span,) = otel.spans("servio_twilio.send")
        assert span.attributes is not None
        assert span.attributes["servio_twilio.outcome"] == "rejected"
        assert span.attributes["error.type"] == "RecipientOptedOut"
        assert span.status.status_code is StatusCode.ERROR
        otel.assert_private(BODY, PROSPECT)

    def test_the_limiter_refuses(self, otel: Telemetry) -> None:
        """Past the send limit: outcome ``limited``."""
        client = _client(send_limiter=InMemorySendLimiter(max_sends=1))
        client.send_sms(TO, BODY, prospect_id=PROSPECT)
        with pytest.raises(SendLimitExceeded):
            client.send_sms(TO, BODY, prospect_id=PROSPECT)
        assert otel.counts("servio_twilio.sends") == {
            (("channel", "sms"), ("outcome", "sent")): 1,
            (("channel", "sms"), ("outcome", "limited")): 1,
        }
        otel.assert_private(BODY, PROSPECT)

    def test_storage_fails(self, otel: Telemetry) -> None:
        """The pending record cannot be written: outcome ``failed``, nothing sent."""
        with pytest.raises(RepositoryError):
            _client(repository=_FailingRepository()).make_call(TO, twiml="<Response/>")
        (span,) = otel.spans("servio_twilio.send")
        assert span.attributes is not None
        assert span.attributes["servio_twilio.channel"] == "call"
        assert span.attributes["servio_twilio.outcome"] == "failed"
        assert span.attributes["error.type"] == "RepositoryError"
        otel.assert_private()


class TestSpanContext:
    def test_the_send_span_is_a_child_and_never_left_current(self, otel: Telemetry) -> None:
        """The send's span is a child of the caller's; the caller's stays current after."""
        tracer = trace.get_tracer("test", tracer_provider=otel_provider(otel))
        with tracer.start_as_current_span("caller") as caller:
            _client().send_sms(TO, BODY)
            assert trace.get_current_span() is caller
        (span,) = otel.spans("servio_twilio.send")
        assert span.parent is not None
        assert span.parent.span_id == caller.get_span_context().span_id

    def test_the_async_client_too(self, otel: Telemetry) -> None:
        """The async client's send span is a child of the awaiting task's current span."""
        tracer = trace.get_tracer("test", tracer_provider=otel_provider(otel))

        async def main() -> int:
            settings = make_settings()
            async with AsyncCommunicationsClient(
                settings, http_client=FakeTwilio().aio, clock=TickingClock()
            ) as client:
                with tracer.start_as_current_span("caller") as caller:
                    await client.send_sms(TO, BODY)
                    assert trace.get_current_span() is caller
                    return caller.get_span_context().span_id

        caller_id = asyncio.run(main())
        (span,) = otel.spans("servio_twilio.send")
        assert span.parent is not None
        assert span.parent.span_id == caller_id


def otel_provider(otel: Telemetry) -> TracerProvider:
    """A provider exporting to the same exporter as the module's (for a caller's span)."""
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(otel.spans_exporter))
    return provider


@pytest.mark.usefixtures("client_kind")
class TestBatch:
    def test_every_item_gets_a_span_under_the_batch(self, otel: Telemetry) -> None:
        """A batch: one batch span; each admitted item a send span under it, with its outcome."""
        fake = FakeTwilio()
        fake.fail_number(OTHER, Fault.error(21610, status=400))
        store = InMemoryConsentStore()
        opted_out = OPTED_OUT
        store.opt_out(opted_out, "sms", source="admin")
        client = _client(http_client=fake, policy=SendPolicy(consent=store))
        report = client.send_batch(
            [
                OutboundMessage(to=TO, body=BODY, prospect_id=PROSPECT),
                OutboundMessage(to=OTHER, body=BODY, prospect_id=PROSPECT),
                OutboundMessage(to=opted_out, body=BODY, prospect_id=PROSPECT),
                {"to": "not a number", "body": BODY},  # invalid: no send, no span
            ]
        )
        assert (report.succeeded, report.failed) == (1, 3)
        (batch,) = otel.spans("servio_twilio.batch")
        assert batch.attributes == {
            "servio_twilio.batch.size": 4,
            "servio_twilio.batch.succeeded": 1,
            "servio_twilio.batch.failed": 3,
        }
        items = otel.spans("servio_twilio.send")
        assert all(
            item.parent is not None and item.parent.span_id == batch.context.span_id
            for item in items
        )
        outcomes = sorted(str((item.attributes or {})["servio_twilio.outcome"]) for item in items)
        assert outcomes == ["refused", "rejected", "sent"]
        assert otel.counts("servio_twilio.sends") == {
            (("channel", "sms"), ("outcome", "sent")): 1,
            (("channel", "sms"), ("outcome", "refused")): 1,
            (("channel", "sms"), ("outcome", "rejected")): 1,
        }
        ids = {(item.attributes or {})["servio_twilio.communication_id"] for item in items}
        assert {item.communication_id for item in report.items[:3]} - {None} <= ids
        otel.assert_private(BODY, PROSPECT, opted_out)

    def test_storage_failure_fails_every_item(self, otel: Telemetry) -> None:
        """The pending records cannot be stored: every item ``failed``, the batch span ends."""

        class Down(InMemoryRepository):
            def add_many(self, records: Any) -> None:
                raise RepositoryError("storage is down")

        report = _client(repository=Down()).send_batch(
            [OutboundMessage(to=TO, body=BODY), OutboundMessage(to=OTHER, body=BODY)]
        )
        assert report.failed == 2
        assert len(otel.spans("servio_twilio.batch")) == 1
        assert otel.counts("servio_twilio.sends") == {
            (("channel", "sms"), ("outcome", "failed")): 2
        }


class TestInterruptedBatch:
    def test_the_items_not_sent_are_failed(self, otel: Telemetry) -> None:
        """A batch interrupted during admission (Ctrl-C): its admitted items end ``failed``,
        the batch span ends with status ERROR."""

        class Interrupting(InMemoryConsentStore):
            def is_opted_out(self, number: str, channel: Any) -> bool:
                if number == OTHER:
                    raise KeyboardInterrupt
                return super().is_opted_out(number, channel)

        client = _client(kind="sync", policy=SendPolicy(consent=Interrupting()))
        with pytest.raises(KeyboardInterrupt):
            client.send_batch(
                [OutboundMessage(to=TO, body=BODY), OutboundMessage(to=OTHER, body=BODY)]
            )
        (batch,) = otel.spans("servio_twilio.batch")
        assert batch.status.status_code is StatusCode.ERROR
        assert (batch.attributes or {})["error.type"] == "KeyboardInterrupt"
        failed = (("channel", "sms"), ("outcome", "failed"))
        assert otel.counts("servio_twilio.sends") == {failed: 2}
        otel.assert_private(BODY)


def _wsgi_post(app: Any, path: str, headers: dict[str, str], body: bytes) -> int:
    transport = httpx.WSGITransport(app=app)
    with httpx.Client(transport=transport, base_url="http://testserver") as client:
        return client.post(path, content=body, headers=headers).status_code


def _asgi_post(app: Any, path: str, headers: dict[str, str], body: bytes) -> int:
    async def post() -> int:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            reply = await client.post(path, content=body, headers=headers)
            return reply.status_code

    return asyncio.run(post())


APPS = {
    "asgi": (make_asgi_app, _asgi_post),
    "wsgi": (make_wsgi_app, _wsgi_post),
}


@pytest.fixture(params=sorted(APPS))
def post(request: pytest.FixtureRequest) -> Any:
    """``post(path, headers, body) -> status`` through the ASGI or the WSGI app."""
    factory, send = APPS[request.param]
    app = factory(
        verifier=WebhookVerifier(TOKEN), repository=InMemoryRepository(), public_base_url=BASE
    )
    return lambda path, headers, body: send(app, path, headers, body)


class TestCallbacks:
    def test_an_accepted_status_callback(self, otel: Telemetry, post: Any) -> None:
        """A stored callback: a ``servio_twilio.callback`` span (route, 204), counted."""
        message = sid("SM", 1)
        headers, body = signed(BASE + "/message-status", message_params(message, "sent"))
        assert post("/message-status", headers, body) == 204
        (span,) = otel.spans("servio_twilio.callback")
        assert span.attributes == {
            "servio_twilio.route": "message-status",
            "http.status_code": 204,
        }
        assert span.status.status_code is StatusCode.UNSET
        assert otel.counts("servio_twilio.callbacks") == {
            (("http.status_code", 204), ("route", "message-status")): 1
        }
        assert otel.points("servio_twilio.signature_failures") == []
        otel.assert_private(PROSPECT_NUMBER)

    def test_a_bad_signature(self, otel: Telemetry, post: Any) -> None:
        """A forged callback: 403, counted in ``servio_twilio.signature_failures`` by route."""
        headers, body = signed(BASE + "/inbound", inbound_params(sid("SM", 2)), OTHER_TOKEN)
        assert post("/inbound", headers, body) == 403
        assert otel.counts("servio_twilio.signature_failures") == {(("route", "inbound"),): 1}
        assert otel.counts("servio_twilio.callbacks") == {
            (("http.status_code", 403), ("route", "inbound")): 1
        }
        otel.assert_private(PROSPECT_NUMBER)

    def test_an_inbound_message(self, otel: Telemetry, post: Any) -> None:
        """An inbound message: its body and sender appear nowhere."""
        params = inbound_params(sid("SM", 3), body=INBOUND_BODY)
        headers, body = signed(BASE + "/inbound", params)
        assert post("/inbound", headers, body) == 200
        (span,) = otel.spans("servio_twilio.callback")
        assert span.attributes == {"servio_twilio.route": "inbound", "http.status_code": 200}
        otel.assert_private(PROSPECT_NUMBER, INBOUND_BODY)

    @pytest.mark.parametrize("kind", sorted(APPS))
    def test_an_app_that_raises(self, otel: Telemetry, kind: str) -> None:
        """Storage raising an error no rule expects: the request's span ends ERROR, counted 500."""

        class Broken(InMemoryRepository):
            def record_event(self, *args: Any, **kwargs: Any) -> Any:
                raise RuntimeError(f"broken for {PROSPECT_NUMBER}")

        factory, send = APPS[kind]
        app = factory(verifier=WebhookVerifier(TOKEN), repository=Broken(), public_base_url=BASE)
        headers, body = signed(BASE + "/message-status", message_params(sid("SM", 5), "sent"))
        with pytest.raises(RuntimeError):
            send(app, "/message-status", headers, body)
        (span,) = otel.spans("servio_twilio.callback")
        assert span.status.status_code is StatusCode.ERROR
        assert span.attributes == {
            "servio_twilio.route": "message-status",
            "http.status_code": 500,
            "error.type": "RuntimeError",
        }
        assert otel.counts("servio_twilio.callbacks") == {
            (("http.status_code", 500), ("route", "message-status")): 1
        }
        otel.assert_private()

    def test_an_unknown_path_is_other(self, otel: Telemetry, post: Any) -> None:
        """A path the app does not serve is the route ``other``: never the path itself."""
        assert post("/+5511999999999?token=x", {}, b"") == 404
        (span,) = otel.spans("servio_twilio.callback")
        assert span.attributes == {"servio_twilio.route": "other", "http.status_code": 404}
        otel.assert_private("token=x")


class TestReconcile:
    def test_the_span_and_the_open_records_gauge(self, otel: Telemetry) -> None:
        """``reconcile_span`` records the run's counts; records.open is what it left open."""
        with reconcile_span() as span:
            span.record(examined=9, settled=5, still_open=2, not_sent=1, failed=1)
        (found,) = otel.spans("servio_twilio.reconcile")
        assert found.attributes == {
            "servio_twilio.reconcile.examined": 9,
            "servio_twilio.reconcile.settled": 5,
            "servio_twilio.reconcile.still_open": 2,
            "servio_twilio.reconcile.not_sent": 1,
            "servio_twilio.reconcile.failed": 1,
        }
        ((labels, point),) = otel.points("servio_twilio.records.open")
        assert (labels, point.value) == ({}, 3)

    @pytest.mark.usefixtures("client_kind")
    def test_a_client_s_reconcile_emits_the_span(self, otel: Telemetry) -> None:
        """Both clients' reconcile: one ``servio_twilio.reconcile`` span with the report's
        counts, and records.open at what it left open; no number, body or id of a prospect."""
        fake = FakeTwilio()
        client = _client(http_client=fake)
        sent = client.send_sms(TO, "a private body", prospect_id=PROSPECT)
        fake.set_status(sent.sid, "delivered", price="-0.0075", price_unit="USD")
        still = client.send_sms(TO, "another private body", prospect_id=PROSPECT)
        fake.set_status(still.sid, "sent")
        report = client.reconcile(older_than=timedelta(0))
        assert (report.examined, report.settled, report.still_open) == (2, 1, 1)
        (found,) = otel.spans("servio_twilio.reconcile")
        assert found.attributes is not None
        assert found.attributes["servio_twilio.reconcile.examined"] == 2
        assert found.attributes["servio_twilio.reconcile.settled"] == 1
        ((_, point),) = otel.points("servio_twilio.records.open")
        assert point.value == 1
        otel.assert_private("a private body", PROSPECT)

    def test_a_failed_run(self, otel: Telemetry) -> None:
        """A run that raised ends its span with status ERROR and the error's type only."""
        with pytest.raises(RepositoryError), reconcile_span():
            raise RepositoryError(f"query failed for {TO}")
        (found,) = otel.spans("servio_twilio.reconcile")
        assert found.status.status_code is StatusCode.ERROR
        assert found.attributes == {"error.type": "RepositoryError"}
        assert otel.points("servio_twilio.records.open") == []
        otel.assert_private()


class TestConfiguration:
    def test_outcomes_are_a_small_fixed_set(self) -> None:
        """The ``outcome`` values, as the docs list them."""
        assert sorted(OUTCOMES) == ["failed", "limited", "refused", "rejected", "sent", "unknown"]

    def test_the_global_providers_without_an_sdk(self) -> None:
        """With the API's own providers (no SDK: OpenTelemetry's no-ops), a send works."""
        configure_telemetry()
        assert _client(kind="sync").send_sms(TO, BODY).status == "queued"


DOCS = Path(__file__).resolve().parent.parent / "docs" / "telemetry.md"


def _prometheus_names(otel: Telemetry) -> set[str]:
    """The Prometheus names of every metric emitted (OpenTelemetry's conversion rules)."""
    names: set[str] = set()
    data = otel.reader.get_metrics_data()
    for resource in data.resource_metrics if data else ():
        for scope in resource.scope_metrics:
            for item in scope.metrics:
                name = item.name.replace(".", "_") + ("_seconds" if item.unit == "s" else "")
                if isinstance(item.data, Sum):
                    names.add(name + "_total")
                elif isinstance(item.data, Histogram):
                    names |= {name + suffix for suffix in ("", "_bucket", "_sum", "_count")}
                else:
                    assert isinstance(item.data, Gauge)
                    names.add(name)
    return names


class TestDocs:
    def test_the_alerts_name_what_is_emitted(self, otel: Telemetry, post: Any) -> None:
        """The docs' Cloud Monitoring policy is JSON, and every metric its alerts and rules
        name is one we emit, by its Prometheus name."""
        fake = FakeTwilio()
        fake.fail_next(1, Fault.error(21211))
        with pytest.raises(TwilioAPIError):
            _client(kind="sync", http_client=fake).send_sms(TO, BODY)
        headers, body = signed(BASE + "/inbound", inbound_params(sid("SM", 4)), OTHER_TOKEN)
        post("/inbound", headers, body)
        with reconcile_span() as span:
            span.record(examined=1, settled=0, still_open=1, not_sent=0, failed=0)
        emitted = _prometheus_names(otel)
        text = DOCS.read_text(encoding="utf-8")
        (policy,) = re.findall(r"```json\n(.*?)```", text, re.S)
        (condition,) = json.loads(policy)["conditions"]
        query = condition["conditionPrometheusQueryLanguage"]["query"]
        (rules,) = re.findall(r"```yaml\n(.*?)```", text, re.S)
        named = set(re.findall(r"servio_twilio_[a-z_]+", query + rules))
        assert named, "the alerts name no metric"
        assert named <= emitted, named - emitted
        assert 'outcome=~"failed|refused|unknown"' in query


_BLOCKER = """
import sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name == "opentelemetry" or name.startswith("opentelemetry."):
            raise ImportError("blocked: " + name)
        return None

sys.meta_path.insert(0, Block())
"""

_WORKLOAD = """
import asyncio, io, json, sys, types
from wsgiref.util import setup_testing_defaults

import servio_twilio
from servio_twilio import (
    AsyncCommunicationsClient, CommunicationsClient, ConfigurationError, InMemoryRepository,
    OutboundMessage, TwilioSettings, WebhookVerifier, configure_telemetry, make_asgi_app,
    make_wsgi_app,
)
from servio_twilio.domain.telemetry import reconcile_span
from servio_twilio.testing import FakeTwilio, signed_webhook

loaded = {"after import": sorted(m for m in sys.modules if m.startswith("opentelemetry"))}
settings = TwilioSettings(
    account_sid="AC" + "1" * 32, auth_token="t0ken", phone_number="+15005550006"
)
client = CommunicationsClient(settings, http_client=FakeTwilio())
assert client.send_sms("+5511988887777", "Oi").status == "queued"
loaded["after a send"] = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
report = client.send_batch([OutboundMessage(to="+5511988887777", body="Oi")] * 2)
assert report.succeeded == 2

async def async_send():
    async with AsyncCommunicationsClient(settings, http_client=FakeTwilio().aio) as aclient:
        return await aclient.send_sms("+5511988887777", "Oi")

assert asyncio.run(async_send()).status == "queued"

base = "https://hooks.test/wh"
params = {"MessageSid": "SM" + "0" * 32, "MessageStatus": "sent", "AccountSid": "AC" + "1" * 32}
headers, body = signed_webhook(base + "/message-status", params, "t0ken")
verifier = WebhookVerifier("t0ken")
environ = {
    "REQUEST_METHOD": "POST", "PATH_INFO": "/message-status", "wsgi.input": io.BytesIO(body),
    "CONTENT_LENGTH": str(len(body)), "CONTENT_TYPE": headers["Content-Type"],
    "HTTP_X_TWILIO_SIGNATURE": headers["X-Twilio-Signature"],
}
setup_testing_defaults(environ)
statuses = []
wsgi = make_wsgi_app(verifier=verifier, repository=InMemoryRepository(), public_base_url=base)
wsgi(environ, lambda status, headers: statuses.append(status))

async def asgi_call():
    app = make_asgi_app(verifier=verifier, repository=InMemoryRepository(), public_base_url=base)
    scope = {
        "type": "http", "method": "POST", "path": "/message-status", "query_string": b"",
        "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
    }
    sent = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)

    await app(scope, receive, send)
    return sent[0]["status"]

statuses.append(asyncio.run(asgi_call()))
with reconcile_span() as span:
    span.record(examined=1, settled=1, still_open=0, not_sent=0, failed=0)
configure_telemetry()
"""

_REFUSED = """
provider = types.SimpleNamespace(get_tracer=lambda *args: None)
try:
    configure_telemetry(tracer_provider=provider)
except ConfigurationError as exc:
    statuses.append(str(exc))
"""

_REPORT = """
loaded["at the end"] = sorted(m for m in sys.modules if m.startswith("opentelemetry"))
print(json.dumps({"loaded": loaded, "statuses": statuses}))
"""


def _run(code: str) -> dict[str, Any]:
    result: dict[str, Any] = run_python(code, drop_env=("PYTHON", "OTEL"))
    return result


class TestWithoutOpenTelemetry:
    def test_everything_works_and_nothing_is_imported(self) -> None:
        """With opentelemetry unimportable, sends, a batch and callbacks work; none is loaded,
        and a provider given to configure_telemetry is refused."""
        result = _run(_BLOCKER + _WORKLOAD + _REFUSED + _REPORT)
        assert result["statuses"] == [
            "204 No Content",
            204,
            "telemetry needs opentelemetry-api: pip install 'servio-twilio[otel]'",
        ]
        assert result["loaded"] == {"after import": [], "after a send": [], "at the end": []}

    def test_imported_at_the_first_operation_only(self) -> None:
        """Installed, opentelemetry is imported by the first send, not by ``import servio_twilio``
        nor by building a client."""
        result = _run(_WORKLOAD + _REPORT)
        loaded = result["loaded"]
        assert loaded["after import"] == []
        assert "opentelemetry.trace" in loaded["after a send"]
        assert result["statuses"] == ["204 No Content", 204]
