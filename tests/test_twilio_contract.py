"""Contract tests: the client's requests against Twilio's OpenAPI description, served by Prism.

Prism validates every request against Twilio's schemas (a wrong or missing
field is a 422) and answers with Twilio's own examples, which the client must
parse into its results. It keeps no state and echoes nothing, so these tests
assert on what was accepted and on the shape of what came back.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from servio_twilio.domain.errors import RateLimited, TwilioAPIError
from servio_twilio.domain.models import Channel
from servio_twilio.domain.settings import TwilioSettings
from servio_twilio.sending.client import CommunicationsClient
from servio_twilio.sending.results import HealthReport, SendResult
from servio_twilio.storage.memory import InMemoryRepository
from support.prism import PrismHttpClient
from support.sending import TO, make_settings

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
