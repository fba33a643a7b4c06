"""Contract tests: the client's requests against Twilio's OpenAPI description, served by Prism.

Prism validates every request against Twilio's schemas (a wrong or missing
field is a 422) and answers with Twilio's own examples, which the client must
parse into its results. It keeps no state and echoes nothing, so these tests
assert on what was accepted and on the shape of what came back. The async
seam (`AsyncRetryingHttpClient` over our aiohttp client, under twilio's REST
client) sends the same requests and gets the same checks.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import date
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from twilio.base.exceptions import TwilioRestException
from twilio.rest import Client

from servio_twilio.domain.errors import RateLimited, TwilioAPIError
from servio_twilio.domain.models import Channel
from servio_twilio.domain.settings import TwilioSettings
from servio_twilio.sending.aiohttp_client import AiohttpTwilioClient
from servio_twilio.sending.async_transport import AsyncRetryingHttpClient
from servio_twilio.sending.client import CommunicationsClient
from servio_twilio.sending.results import HealthReport, SendResult
from servio_twilio.sending.transport import RetryingHttpClient
from servio_twilio.sending.twilio_rest import AsyncTwilioRest, TwilioRest, sent_filters
from servio_twilio.storage.memory import InMemoryRepository
from support.prism import TWILIO_API, PrismHttpClient
from support.sending import PHONE, TO, WHATSAPP, make_settings

pytestmark = pytest.mark.prism

ACCOUNT = "AC" + "7" * 32


def _settings(**overrides: Any) -> TwilioSettings:
    return make_settings(account_sid=ACCOUNT, auth_token="prism-token", **overrides)


def _client(
    url: str, *, prefer: str | None = None, settings: TwilioSettings | None = None, **kwargs: Any
) -> tuple[CommunicationsClient, InMemoryRepository, list[float]]:
    repo = InMemoryRepository()
    sleeps: list[float] = []
    client = CommunicationsClient(
        settings or _settings(),
        repository=repo,
        http_client=PrismHttpClient(url, prefer=prefer),
        sleep=sleeps.append,
        **kwargs,
    )
    return client, repo, sleeps


def _check_result(result: SendResult, repo: InMemoryRepository, prefix: str) -> None:
    assert isinstance(result, SendResult)
    assert result.sid.startswith(prefix)
    assert len(result.sid) == 34
    assert isinstance(result.status, str)
    assert result.status
    assert result.to == TO
    record = repo.get(result.communication_id)
    assert record is not None
    assert record.twilio_sid == result.sid
    assert record.status == result.status


class TestRequestsMatchTwilioSchemas:
    def test_prism_refuses_a_wrong_field(self, prism_url: str) -> None:
        """The mock really validates: a misspelt required field is refused with 422."""
        client = PrismHttpClient(prism_url)
        response = client.request(
            "POST",
            f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Messages.json",
            data={"Too": TO, "From": "+15005550006", "Body": "x"},
            auth=(ACCOUNT, "t"),
        )
        assert response.status_code == 422

    def test_send_sms(self, prism_url: str) -> None:
        """An SMS with From, Body and StatusCallback is accepted; the example parses."""
        client, repo, _ = _client(prism_url)
        result = client.send_sms(TO, "Confirmado para 15h", prospect_id="p1")
        _check_result(result, repo, "SM")
        assert result.channel == Channel.SMS

    def test_send_sms_through_a_messaging_service(self, prism_url: str) -> None:
        """MessagingServiceSid without From is accepted."""
        settings = _settings(phone_number=None, messaging_service_sid="MG" + "8" * 32)
        client, repo, _ = _client(prism_url, settings=settings)
        _check_result(client.send_sms(TO, "hi"), repo, "SM")

    def test_send_whatsapp_with_media(self, prism_url: str) -> None:
        """WhatsApp addresses and a repeated MediaUrl with a caption are accepted."""
        client, repo, _ = _client(prism_url)
        result = client.send_whatsapp(
            TO, "see", media_url=["https://cdn.test/a.png", "https://cdn.test/b.png"]
        )
        _check_result(result, repo, "SM")
        assert result.channel == Channel.WHATSAPP

    def test_send_whatsapp_template(self, prism_url: str) -> None:
        """ContentSid with ContentVariables as JSON is accepted."""
        client, repo, _ = _client(prism_url)
        result = client.send_whatsapp(
            TO, content_sid="HX" + "9" * 32, content_variables={"1": "Ana", "2": "15h"}
        )
        _check_result(result, repo, "SM")

    def test_make_call_with_url_and_recording(self, prism_url: str) -> None:
        """Url, Record, both callbacks and repeated event keys are accepted."""
        client, repo, _ = _client(prism_url)
        result = client.make_call(TO, twiml_url="https://app.test/t.xml", record=True)
        _check_result(result, repo, "CA")
        assert result.channel == Channel.CALL

    def test_make_call_with_twiml(self, prism_url: str) -> None:
        """Inline Twiml is accepted."""
        client, repo, _ = _client(prism_url)
        _check_result(client.make_call(TO, twiml="<Response><Say>Oi</Say></Response>"), repo, "CA")

    def test_health(self, prism_url: str) -> None:
        """The account fetch and the number list are accepted and parse into a HealthReport."""
        client, _, _ = _client(prism_url)
        report = client.health()
        assert isinstance(report, HealthReport)
        checks = {c.name: c for c in report.checks}
        assert set(checks) == {"account", "phone_number", "repository", "whatsapp_number"}
        assert isinstance(report.account_status, str)
        assert checks["account"].ok == (report.account_status == "active")
        assert "could not" not in checks["phone_number"].detail.lower()
        assert not checks["phone_number"].detail.startswith(("TwilioAPIError", "NoAnswer"))
        json.dumps(report.to_dict())


class TestTwilioErrorShapes:
    def test_429_is_retried_then_rate_limited(self, prism_errors_url: str) -> None:
        """Twilio's 429 is retried max_retries times, then RateLimited; the record is failed."""
        client, repo, sleeps = _client(prism_errors_url, prefer="code=429", max_retries=2)
        with pytest.raises(RateLimited) as info:
            client.send_sms(TO, "hi")
        assert info.value.code == 20429
        assert len(sleeps) == 2
        record = repo.get(str(info.value.communication_id))
        assert record is not None
        assert record.status == "failed"

    def test_400_is_a_refusal(self, prism_errors_url: str) -> None:
        """Twilio's 400 error body becomes TwilioAPIError with its code; the record is failed."""
        client, repo, sleeps = _client(prism_errors_url, prefer="code=400")
        with pytest.raises(TwilioAPIError) as info:
            client.make_call(TO, twiml="<Response/>")
        assert (info.value.status, info.value.code) == (400, 21211)
        assert sleeps == []
        record = repo.get(str(info.value.communication_id))
        assert record is not None
        assert (record.status, record.error_code) == ("failed", 21211)

    def test_500_is_not_retried(self, prism_errors_url: str) -> None:
        """Twilio's 500 on create is not retried and the record is failed."""
        client, repo, sleeps = _client(prism_errors_url, prefer="code=500")
        with pytest.raises(TwilioAPIError) as info:
            client.send_whatsapp(TO, "hi")
        assert info.value.status == 500
        assert sleeps == []
        record = repo.get(str(info.value.communication_id))
        assert record is not None
        assert record.status == "failed"

    def test_health_survives_errors(self, prism_errors_url: str) -> None:
        """With every Twilio call answering 401, health() reports and does not raise."""
        client, _, _ = _client(prism_errors_url, prefer="code=401")
        report = client.health()
        assert report.healthy is False
        assert report.account_status is None


class PrismAiohttpClient(AiohttpTwilioClient):
    """Our aiohttp client (the async wrapper's default), sending api.twilio.com requests to Prism.

    ``prefer`` is sent as the ``Prefer`` header, as `PrismHttpClient` does.
    """

    def __init__(self, base_url: str, *, prefer: str | None = None) -> None:
        super().__init__(timeout=30, trust_env=False)
        self.base_url = base_url.rstrip("/")
        self.prefer = prefer

    async def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if url.startswith(TWILIO_API):
            url = self.base_url + url[len(TWILIO_API) :]
        if self.prefer is not None:
            kwargs["headers"] = {**(kwargs.get("headers") or {}), "Prefer": self.prefer}
        return await super().request(method, url, *args, **kwargs)


@asynccontextmanager
async def _async_rest(
    url: str, *, prefer: str | None = None, max_retries: int = 3
) -> AsyncIterator[tuple[Client, list[float]]]:
    """twilio's REST client over AsyncRetryingHttpClient over our aiohttp client, at Prism."""
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    http = AsyncRetryingHttpClient(
        PrismAiohttpClient(url, prefer=prefer), max_retries=max_retries, sleep=sleep
    )
    async with http:
        yield Client(ACCOUNT, "prism-token", http_client=http), sleeps


@pytest.mark.anyio
class TestAsyncSeamMatchesTwilioSchemas:
    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    async def test_prism_refuses_a_wrong_field(self, prism_url: str) -> None:
        """Through the async seam too, a misspelt required field is refused with 422."""
        async with AsyncRetryingHttpClient(PrismAiohttpClient(prism_url)) as http:
            response = await http.request(
                "POST",
                f"{TWILIO_API}/2010-04-01/Accounts/{ACCOUNT}/Messages.json",
                data={"Too": TO, "From": "+15005550006", "Body": "x"},
                auth=(ACCOUNT, "t"),
            )
        assert response.status_code == 422

    async def test_create_message(self, prism_url: str) -> None:
        """A message with From, Body and StatusCallback is accepted; the example parses."""
        async with _async_rest(prism_url) as (client, sleeps):
            message = await client.messages.create_async(
                to=TO,
                from_="+15005550006",
                body="Confirmado para 15h",
                status_callback="https://app.test/message-status?cid=c1",
            )
        assert message.sid.startswith("SM")
        assert len(message.sid) == 34
        assert sleeps == []

    async def test_create_whatsapp_message_with_media(self, prism_url: str) -> None:
        """WhatsApp addresses and a repeated MediaUrl, encoded by our client, are accepted."""
        async with _async_rest(prism_url) as (client, _):
            message = await client.messages.create_async(
                to=f"whatsapp:{TO}",
                from_="whatsapp:+14155238886",
                body="see",
                media_url=["https://cdn.test/a.png", "https://cdn.test/b.png"],
            )
        assert message.sid.startswith("SM")

    async def test_create_call(self, prism_url: str) -> None:
        """A call with Url, Record, callbacks and repeated event keys is accepted."""
        async with _async_rest(prism_url) as (client, _):
            call = await client.calls.create_async(
                to=TO,
                from_="+15005550006",
                url="https://app.test/t.xml",
                record=True,
                status_callback="https://app.test/call-status",
                status_callback_event=["initiated", "ringing", "answered", "completed"],
            )
        assert call.sid.startswith("CA")
        assert len(call.sid) == 34

    async def test_fetch_account(self, prism_url: str) -> None:
        """The account fetch is accepted and its status parses."""
        async with _async_rest(prism_url) as (client, _):
            account = await client.api.v2010.accounts(ACCOUNT).fetch_async()
        assert account.sid.startswith("AC")
        assert isinstance(account.status, str)

    async def test_429_is_retried_then_rate_limited(self, prism_errors_url: str) -> None:
        """Twilio's 429 is retried max_retries times, then RateLimited, as on the sync seam."""
        async with _async_rest(prism_errors_url, prefer="code=429", max_retries=2) as (
            client,
            sleeps,
        ):
            with pytest.raises(RateLimited) as info:
                await client.messages.create_async(to=TO, from_="+15005550006", body="hi")
        assert info.value.code == 20429
        assert len(sleeps) == 2

    async def test_500_is_not_retried(self, prism_errors_url: str) -> None:
        """Twilio's 500 to a create goes back to twilio untouched: no retry."""
        async with _async_rest(prism_errors_url, prefer="code=500") as (client, sleeps):
            with pytest.raises(TwilioRestException) as info:
                await client.calls.create_async(to=TO, from_="+15005550006", twiml="<Response/>")
        assert info.value.status == 500
        assert sleeps == []


# The reconcile reads. Prism's example pages hold 2 messages or calls and a
# next_page_uri; the calls example's next page carries Twilio's own date-only
# StartTime, which Twilio's schema (date-time) refuses, so these lists ask for
# at most 2 (one page). The first page at the default limit is checked apart.
CALL_SID = "CA" + "5" * 32
MESSAGE_SID = "SM" + "6" * 32
DAY = date(2025, 3, 10)


def _seen(url: str, params: Any, status: int) -> tuple[str, dict[str, str], int]:
    parts = urlsplit(url)
    query = dict(parse_qsl(parts.query))
    query.update({k: str(v) for k, v in (params or {}).items()})
    return parts.path, query, status


class RecordingPrism(PrismHttpClient):
    """`PrismHttpClient` keeping (path, query, status) of every answer Prism gave."""

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.seen: list[tuple[str, dict[str, str], int]] = []

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        response = super().request(method, url, *args, **kwargs)
        self.seen.append(_seen(url, kwargs.get("params"), response.status_code))
        return response


def _sync_rest(prism_url: str) -> tuple[TwilioRest, RecordingPrism]:
    http = RecordingPrism(prism_url)
    return TwilioRest(_settings(), RetryingHttpClient(http, max_retries=0)), http


def _accepted(seen: list[tuple[str, dict[str, str], int]], path_end: str) -> dict[str, str]:
    """Every request answered 200 (none refused with 422); the query of the first."""
    assert seen
    assert {status for _, _, status in seen} == {200}, seen
    path, query, _ = seen[0]
    assert path.endswith(path_end)
    return query


class TestReconcileReadsMatchTwilioSchemas:
    def test_prism_refuses_a_date_only_filter(self, prism_url: str) -> None:
        """Twilio's schema takes DateSent as a date-time: a bare YYYY-MM-DD is refused (422).

        This is why list_sent sends the day as twilio writes a date:
        ``YYYY-MM-DDT00:00:00Z``.
        """
        response = PrismHttpClient(prism_url).request(
            "GET",
            f"{TWILIO_API}/2010-04-01/Accounts/{ACCOUNT}/Messages.json",
            params={"DateSent": "2025-03-10"},
            auth=(ACCOUNT, "t"),
        )
        assert response.status_code == 422

    @pytest.mark.parametrize(("kind", "sid"), [("message", MESSAGE_SID), ("call", CALL_SID)])
    def test_fetch(self, prism_url: str, kind: Any, sid: str) -> None:
        """fetch() of a message and of a call is accepted; the example parses into an instance."""
        rest, http = _sync_rest(prism_url)
        instance = rest.fetch(kind, sid)
        _accepted(http.seen, f"/{'Messages' if kind == 'message' else 'Calls'}/{sid}.json")
        assert instance.sid.startswith(sid[:2])
        assert isinstance(instance.status, str)
        assert isinstance(instance.price_unit, str)

    def test_list_sent_messages(self, prism_url: str) -> None:
        """list_sent("message") (To, From, DateSent, PageSize) is accepted; the examples parse."""
        rest, http = _sync_rest(prism_url)
        found = rest.list_sent("message", to=TO, from_=PHONE, day=DAY, limit=2)
        query = _accepted(http.seen, "/Messages.json")
        assert query == {
            "To": TO,
            "From": PHONE,
            "DateSent": "2025-03-10T00:00:00Z",
            "PageSize": "2",
        }
        assert len(found) == 2
        assert all(m.sid.startswith(("SM", "MM")) for m in found)
        assert all(m.date_sent is not None for m in found)

    def test_list_sent_whatsapp_messages_without_from(self, prism_url: str) -> None:
        """whatsapp: addresses in To and From are accepted, and so is a list with no From."""
        rest, http = _sync_rest(prism_url)
        rest.list_sent(
            "message", to=f"whatsapp:{TO}", from_=f"whatsapp:{WHATSAPP}", day=DAY, limit=2
        )
        rest.list_sent("message", to=f"whatsapp:{TO}", from_=None, day=DAY, limit=1)
        _accepted(http.seen, "/Messages.json")
        assert "From" not in http.seen[-1][1]

    def test_list_sent_calls(self, prism_url: str) -> None:
        """list_sent("call") (To, From, StartTime, PageSize) is accepted; the examples parse."""
        rest, http = _sync_rest(prism_url)
        found = rest.list_sent("call", to=TO, from_=PHONE, day=DAY, limit=2)
        query = _accepted(http.seen, "/Calls.json")
        assert query["StartTime"] == "2025-03-10T00:00:00Z"
        assert len(found) == 2
        assert all(c.sid.startswith("CA") for c in found)
        assert all(isinstance(c.status, str) for c in found)

    @pytest.mark.parametrize(
        ("kind", "path"), [("message", "/Messages.json"), ("call", "/Calls.json")]
    )
    def test_list_sent_undated(self, prism_url: str, kind: Any, path: str) -> None:
        """The undated list reconcile makes before failing a record (no DateSent/StartTime)."""
        rest, http = _sync_rest(prism_url)
        rest.list_sent(kind, to=TO, from_=PHONE, day=None, limit=2)
        query = _accepted(http.seen, path)
        assert "DateSent" not in query
        assert "StartTime" not in query

    @pytest.mark.parametrize("kind", ["message", "call"])
    def test_the_first_page_at_the_default_limit(self, prism_url: str, kind: Any) -> None:
        """The first request list_sent makes at its default limit (PageSize=50) is accepted."""
        http = PrismHttpClient(prism_url)
        client = Client(ACCOUNT, "prism-token", http_client=http)
        filters = sent_filters(kind, to=TO, from_=PHONE, day=DAY, limit=50)
        filters.pop("limit")
        resource = client.messages if kind == "message" else client.calls
        page = resource.page(**filters)
        assert len(list(page)) >= 1

    def test_recordings(self, prism_url: str) -> None:
        """recordings() (the account's Recordings by CallSid) is accepted; the example parses."""
        rest, http = _sync_rest(prism_url)
        found = rest.recordings(CALL_SID)
        query = _accepted(http.seen, "/Recordings.json")
        assert query == {"CallSid": CALL_SID, "PageSize": "20"}
        assert found
        assert all(r.sid.startswith("RE") for r in found)
        assert all(isinstance(r.duration, str) for r in found)

    def test_a_refused_read_is_our_error(self, prism_errors_url: str) -> None:
        """Twilio's 404 to a fetch and to a list page both come out as TwilioAPIError with 404."""
        rest = TwilioRest(
            _settings(), RetryingHttpClient(PrismHttpClient(prism_errors_url, prefer="code=404"))
        )
        for read in (
            lambda: rest.fetch("message", MESSAGE_SID),
            lambda: rest.list_sent("call", to=TO, from_=PHONE, day=DAY, limit=2),
            lambda: rest.recordings(CALL_SID),
        ):
            with pytest.raises(TwilioAPIError) as info:
                read()
            assert info.value.status == 404


class RecordingPrismAiohttp(PrismAiohttpClient):
    """`PrismAiohttpClient` keeping (path, query, status) of every answer Prism gave."""

    def __init__(self, base_url: str) -> None:
        super().__init__(base_url)
        self.seen: list[tuple[str, dict[str, str], int]] = []

    async def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        response = await super().request(method, url, *args, **kwargs)
        self.seen.append(_seen(url, kwargs.get("params"), response.status_code))
        return response


@asynccontextmanager
async def _async_reads(url: str) -> AsyncIterator[tuple[AsyncTwilioRest, RecordingPrismAiohttp]]:
    http = RecordingPrismAiohttp(url)
    async with AsyncRetryingHttpClient(http, max_retries=0) as retrying:
        yield AsyncTwilioRest(_settings(), retrying), http


@pytest.mark.anyio
class TestAsyncReconcileReadsMatchTwilioSchemas:
    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    async def test_fetch(self, prism_url: str) -> None:
        """Async fetch() of a message and of a call is accepted and parses."""
        async with _async_reads(prism_url) as (rest, http):
            message = await rest.fetch("message", MESSAGE_SID)
            call = await rest.fetch("call", CALL_SID)
        assert {status for _, _, status in http.seen} == {200}
        assert [path.rsplit("/", 1)[-1] for path, _, _ in http.seen] == [
            f"{MESSAGE_SID}.json",
            f"{CALL_SID}.json",
        ]
        assert message.sid.startswith("SM")
        assert call.sid.startswith("CA")

    async def test_list_sent_and_recordings(self, prism_url: str) -> None:
        """Async list_sent (messages, calls) and recordings send what the schema accepts."""
        async with _async_reads(prism_url) as (rest, http):
            messages = await rest.list_sent("message", to=TO, from_=PHONE, day=DAY, limit=2)
            calls = await rest.list_sent("call", to=f"whatsapp:{TO}", from_=None, day=DAY, limit=2)
            recordings = await rest.recordings(CALL_SID)
        assert {status for _, _, status in http.seen} == {200}
        queries = [query for _, query, _ in http.seen]
        assert queries[0]["DateSent"] == queries[1]["StartTime"] == "2025-03-10T00:00:00Z"
        assert queries[2] == {"CallSid": CALL_SID, "PageSize": "20"}
        assert len(messages) == len(calls) == 2
        assert recordings
        assert all(r.sid.startswith("RE") for r in recordings)
