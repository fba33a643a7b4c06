"""The result types returned from FastAPI routes, and what pydantic makes of them.

Every value is built by the real client over `FakeTwilio`. A route annotated
``-> SendResult`` (or declared with ``response_model=``) answers exactly
``to_dict()``; the OpenAPI document describes those keys; an unannotated
route goes through ``jsonable_encoder``, whose behaviour is pinned here as it
is. Last, the synchronous client from async endpoints: ``async def`` calling
it serializes the sends, ``def`` or ``run_in_threadpool`` does not.

No ``from __future__ import annotations`` here, deliberately: the routes are
annotated with types held in variables, which FastAPI reads as objects.
"""

import asyncio
import json
from collections.abc import Callable
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.encoders import jsonable_encoder
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool

from servio_twilio.domain.models import Communication
from servio_twilio.sending.client import CommunicationsClient
from servio_twilio.sending.results import (
    BatchItemResult,
    BatchReport,
    HealthCheck,
    HealthReport,
    OutboundMessage,
    SendResult,
)
from servio_twilio.storage.memory import InMemoryRepository
from servio_twilio.testing import FakeTwilio
from support.sending import TO, make_settings

PROSPECT = "prospect_fastapi"


@pytest.fixture(scope="module")
def values() -> dict[type, Any]:
    """One value of each result type, from real sends, a batch, health and history."""
    client = CommunicationsClient(
        make_settings(), repository=InMemoryRepository(), http_client=FakeTwilio()
    )
    sent = client.send_sms(TO, "Confirmado para 15h", prospect_id=PROSPECT)
    client.send_whatsapp(
        TO, "Fotos", media_url=["https://cdn.servio.test/a.jpg"], prospect_id=PROSPECT
    )
    report = client.send_batch(
        [OutboundMessage(to=TO, body="Oi"), OutboundMessage(to="11 9999", body="no country")]
    )
    health = client.health()
    history = client.history(PROSPECT)
    assert [item.ok for item in report.items] == [True, False]
    assert len(history) == 2
    return {
        SendResult: sent,
        BatchReport: report,
        BatchItemResult: report.items[0],
        HealthReport: health,
        HealthCheck: health.checks[0],
        Communication: history[0],
        list[Communication]: history,
    }


SINGLE_TYPES = [SendResult, BatchReport, BatchItemResult, HealthReport, HealthCheck, Communication]
ALL_TYPES = [*SINGLE_TYPES, list[Communication]]


def _expected(value: Any) -> Any:
    """What the route must answer: ``to_dict()``, item by item for a list."""
    if isinstance(value, list):
        return [item.to_dict() for item in value]
    return value.to_dict()


def _get(app: FastAPI, path: str) -> httpx.Response:
    """GET ``path`` from ``app`` in process; an exception in the app becomes a 500."""

    async def go() -> httpx.Response:
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            return await client.get(path)

    return asyncio.run(go())


def _returning(value: Any) -> Callable[[], Any]:
    def route():
        return value

    return route


def _annotated_app(kind: Any, value: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/result")
    def route() -> kind:  # the return annotation is the response model
        return value

    return app


def _response_model_app(kind: Any, value: Any) -> FastAPI:
    app = FastAPI()

    @app.get("/result", response_model=kind)
    def route():  # unannotated: the response_model alone says what it returns
        return value

    return app


def _unannotated_app(value: Any) -> FastAPI:
    app = FastAPI()
    app.add_api_route("/result", _returning(value))
    return app


def _name(kind: Any) -> str:
    return getattr(kind, "__name__", str(kind))


class TestRoutesAnswerToDict:
    @pytest.mark.parametrize("kind", ALL_TYPES, ids=_name)
    @pytest.mark.parametrize(
        "build", [_annotated_app, _response_model_app], ids=["annotation", "response_model"]
    )
    def test_route_answers_to_dict(
        self, kind: Any, build: Callable[[Any, Any], FastAPI], values: dict[Any, Any]
    ) -> None:
        """A route declared to return the type answers 200 with exactly its ``to_dict()``."""
        value = values[kind]
        response = _get(build(kind, value), "/result")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"] == "application/json"
        assert response.json() == _expected(value)

    def test_nested_values_are_to_dict_too(self, values: dict[Any, Any]) -> None:
        """A report's items and their results, and a health report's checks, are dicts too."""
        report = _get(_annotated_app(BatchReport, values[BatchReport]), "/result").json()
        assert report["items"][0]["result"]["from"] == values[SendResult].from_
        assert report["items"][1]["result"] is None
        assert report["items"][1]["error"].startswith("invalid: ")
        health = _get(_annotated_app(HealthReport, values[HealthReport]), "/result").json()
        assert {check["name"] for check in health["checks"]} >= {"account", "repository"}

    def test_history_keeps_from_times_and_media(self, values: dict[Any, Any]) -> None:
        """Communications answer ``from`` (not ``from_``), ISO 8601 times and media as a list."""
        body = _get(_annotated_app(list[Communication], values[list[Communication]]), "/result")
        newest = body.json()[0]
        assert "from_" not in newest
        assert newest["from"] == values[Communication].from_
        assert newest["timestamp"] == values[Communication].timestamp.isoformat()
        assert newest["media_urls"] == ["https://cdn.servio.test/a.jpg"]
        assert newest["channel"] == "whatsapp"


class TestOpenAPI:
    def test_openapi_describes_every_type_by_its_to_dict_keys(self, values: dict[Any, Any]) -> None:
        """openapi.json answers 200; each type is a component whose keys are ``to_dict()``'s."""
        app = FastAPI()
        for kind in ALL_TYPES:
            path = "/history" if kind == list[Communication] else f"/{kind.__name__}"
            app.add_api_route(path, _returning(values[kind]), response_model=kind)
        response = _get(app, "/openapi.json")
        assert response.status_code == 200, response.text
        schemas = response.json()["components"]["schemas"]
        for kind in SINGLE_TYPES:
            schema = schemas[kind.__name__]
            keys = set(values[kind].to_dict())
            assert schema["type"] == "object"
            assert set(schema["properties"]) == keys, kind
            assert set(schema["required"]) == keys, kind
        communication = schemas["Communication"]["properties"]
        assert communication["timestamp"] == {
            "type": "string",
            "format": "date-time",
            "title": "Timestamp",
        }
        assert communication["media_urls"]["items"] == {"type": "string"}
        assert schemas["Channel"]["enum"] == ["sms", "whatsapp", "call"]
        item_result = schemas["BatchItemResult"]["properties"]["result"]
        assert item_result["anyOf"] == [
            {"$ref": "#/components/schemas/SendResult"},
            {"type": "null"},
        ]
        history = response.json()["paths"]["/history"]["get"]["responses"]["200"]
        assert history["content"]["application/json"]["schema"]["items"] == {
            "$ref": "#/components/schemas/Communication"
        }


class TestPydanticValidation:
    @pytest.mark.parametrize("kind", SINGLE_TYPES, ids=_name)
    def test_an_instance_validates_as_itself(self, kind: Any, values: dict[Any, Any]) -> None:
        """From Python, validation is ``isinstance``: the very instance comes back."""
        value = values[kind]
        assert TypeAdapter(kind).validate_python(value) is value

    @pytest.mark.parametrize("kind", SINGLE_TYPES, ids=_name)
    def test_serializing_gives_to_dict(self, kind: Any, values: dict[Any, Any]) -> None:
        """``dump_python`` (either mode) and ``dump_json`` give ``to_dict()``."""
        value, adapter = values[kind], TypeAdapter(kind)
        assert adapter.dump_python(value) == value.to_dict()
        assert adapter.dump_python(value, mode="json") == value.to_dict()
        assert json.loads(adapter.dump_json(value)) == value.to_dict()

    @pytest.mark.parametrize("kind", SINGLE_TYPES, ids=_name)
    def test_json_input_is_refused_clearly(self, kind: Any, values: dict[Any, Any]) -> None:
        """JSON, even the type's own ``to_dict()``, is refused with a validation error."""
        with pytest.raises(ValidationError) as caught:
            TypeAdapter(kind).validate_json(json.dumps(values[kind].to_dict()))
        [error] = caught.value.errors()
        assert error["type"] == "output_type"
        assert error["msg"].startswith(f"{kind.__name__} is an output type: it is returned")

    @pytest.mark.parametrize("kind", SINGLE_TYPES, ids=_name)
    def test_other_python_values_are_refused(self, kind: Any, values: dict[Any, Any]) -> None:
        """A dict (its own ``to_dict()`` included) is not an instance: a validation error."""
        with pytest.raises(ValidationError) as caught:
            TypeAdapter(kind).validate_python(values[kind].to_dict())
        assert caught.value.errors()[0]["type"] == "is_instance_of"


SLOTTED = [SendResult, BatchReport, BatchItemResult, HealthReport, HealthCheck]


class TestUnannotatedRoutes:
    """No annotation, no response_model: FastAPI falls back to ``jsonable_encoder``.

    It knows nothing of pydantic's schema hook: it tries ``dict(obj)``, then
    ``vars(obj)``. The types are deliberately neither iterable nor mappings,
    so the docs say: annotate the route, or return ``to_dict()``.
    """

    @pytest.mark.parametrize("kind", SLOTTED, ids=_name)
    def test_jsonable_encoder_refuses_the_slotted_types(
        self, kind: Any, values: dict[Any, Any]
    ) -> None:
        """The slotted result types are neither iterable nor have ``vars()``: ValueError."""
        with pytest.raises(ValueError, match="is not iterable") as caught:
            jsonable_encoder(values[kind])
        assert "vars() argument must have __dict__ attribute" in str(caught.value)

    @pytest.mark.parametrize("kind", SLOTTED, ids=_name)
    def test_an_unannotated_route_fails(self, kind: Any, values: dict[Any, Any]) -> None:
        """Returning one from an unannotated route is a 500 (the user's report)."""
        assert _get(_unannotated_app(values[kind]), "/result").status_code == 500

    def test_jsonable_encoder_reads_a_communications_attributes(
        self, values: dict[Any, Any]
    ) -> None:
        """A `Communication` has ``vars()``: a 200, but with ``from_``, not ``to_dict()``.

        It is the one result type that keeps a ``__dict__`` (``slots=False``),
        so an unannotated history route answers its attributes: annotate it too.
        """
        communication = values[Communication]
        encoded = jsonable_encoder(communication)
        assert encoded != communication.to_dict()
        assert encoded == {
            (key if key != "from" else "from_"): value
            for key, value in communication.to_dict().items()
        }
        response = _get(_unannotated_app(values[list[Communication]]), "/result")
        assert response.status_code == 200
        assert response.json()[0] == encoded

    @pytest.mark.parametrize("kind", ALL_TYPES, ids=_name)
    def test_returning_to_dict_works_unannotated(self, kind: Any, values: dict[Any, Any]) -> None:
        """The other documented way: ``return result.to_dict()`` from any route."""
        value = values[kind]
        response = _get(_unannotated_app(_expected(value)), "/result")
        assert (response.status_code, response.json()) == (200, _expected(value))


LATENCY = 0.05  # seconds per Twilio request
CONCURRENT = 20


def _sending_app(style: str) -> tuple[FastAPI, FakeTwilio]:
    """One send endpoint, written in ``style``, over a `FakeTwilio` with `LATENCY`."""
    fake = FakeTwilio(latency=LATENCY)
    client = CommunicationsClient(
        make_settings(), repository=InMemoryRepository(), http_client=fake
    )
    app = FastAPI()
    if style == "async def, blocking":

        @app.post("/sms")
        async def blocking() -> SendResult:
            return client.send_sms(TO, "Oi")

    elif style == "def":

        @app.post("/sms")
        def threaded() -> SendResult:
            return client.send_sms(TO, "Oi")

    else:

        @app.post("/sms")
        async def handed_off() -> SendResult:
            return await run_in_threadpool(client.send_sms, TO, "Oi")

    return app, fake


def _peak_of_concurrent_sends(style: str) -> int:
    """How many Twilio requests were in flight at once during `CONCURRENT` simultaneous POSTs."""
    app, fake = _sending_app(style)

    async def go() -> None:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as client:
            responses = await asyncio.gather(*(client.post("/sms") for _ in range(CONCURRENT)))
        assert [r.status_code for r in responses] == [200] * CONCURRENT

    asyncio.run(go())
    assert len(fake.requests) == CONCURRENT
    return fake.peak_in_flight


class TestSendingFromEndpoints:
    """What docs/receiving/frameworks.md says of the synchronous client in async apps.

    Counted, not timed: `FakeTwilio.peak_in_flight` is how many of its
    requests overlapped.
    """

    def test_async_def_calling_the_client_serializes_every_send(self) -> None:
        """Called from ``async def``, each send holds the event loop: never two at once."""
        assert _peak_of_concurrent_sends("async def, blocking") == 1

    @pytest.mark.parametrize("style", ["def", "run_in_threadpool"])
    def test_def_or_a_thread_sends_concurrently(self, style: str) -> None:
        """A plain ``def`` endpoint, or ``run_in_threadpool``, lets the sends overlap."""
        assert _peak_of_concurrent_sends(style) > 1
