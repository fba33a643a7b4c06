"""Contract test: a batch's requests against Twilio's OpenAPI description, served by Prism.

Prism validates each create against Twilio's Messages schema (a wrong or
missing field is a 422, which would fail the item) and answers with
Twilio's example, which each item must parse into its result. Several
workers hit Prism at once, through twilio's real HTTP client.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from servio_twilio.domain.models import Channel
from servio_twilio.sending.client import CommunicationsClient
from servio_twilio.sending.results import OutboundMessage
from servio_twilio.storage.memory import InMemoryRepository
from support.prism import PrismHttpClient
from support.sending import make_settings

pytestmark = pytest.mark.prism

ACCOUNT = "AC" + "6" * 32
TEMPLATE = "HX" + "9" * 32


def _client(
    url: str, *, prefer: str | None = None
) -> tuple[CommunicationsClient, InMemoryRepository]:
    repo = InMemoryRepository()
    client = CommunicationsClient(
        make_settings(account_sid=ACCOUNT, auth_token="prism-token"),
        repository=repo,
        http_client=PrismHttpClient(url, prefer=prefer),
        sleep=lambda _s: None,
    )
    return client, repo


def _messages() -> list[Any]:
    return [
        OutboundMessage(to="+5511999990001", body="Confirmado para 15h", prospect_id="p1"),
        OutboundMessage(
            to="+5511999990002",
            body="Veja o imóvel",
            channel=Channel.WHATSAPP,
            media_url=("https://cdn.servio.test/a.jpg", "https://cdn.servio.test/b.jpg"),
            prospect_id="p2",
        ),
        OutboundMessage(
            to="whatsapp:+5511999990003",
            channel=Channel.WHATSAPP,
            content_sid=TEMPLATE,
            content_variables={"1": "Ana", "2": "15h"},
        ),
        {
            "to": "+5511999990004",
            "body": "oi",
            "channel": "whatsapp",
            "mediaUrl": "https://cdn.servio.test/c.pdf",
        },
        {"to": "+5511999990005", "body": "Sua visita", "prospectId": "p5"},
        OutboundMessage(to="+5511999990006", body="segunda", prospect_id="p1"),
    ]


class TestBatchAgainstTwilioSchemas:
    def test_sms_and_whatsapp_with_media_accepted(self, prism_url: str) -> None:
        """SMS, WhatsApp with media, a template and earlier-shape dicts all pass Twilio's schema."""
        client, repo = _client(prism_url)
        report = client.send_batch(_messages(), max_concurrency=3)
        assert (report.total, report.succeeded, report.failed) == (6, 6, 0), report.to_dict()
        for item, channel in zip(
            report.items,
            [
                Channel.SMS,
                Channel.WHATSAPP,
                Channel.WHATSAPP,
                Channel.WHATSAPP,
                Channel.SMS,
                Channel.SMS,
            ],
            strict=True,
        ):
            assert item.result is not None
            assert item.result.sid.startswith("SM")
            assert len(item.result.sid) == 34
            assert item.result.channel == channel
            assert item.to == item.result.to
            record = repo.get(item.result.communication_id)
            assert record is not None
            assert record.twilio_sid == item.result.sid
            assert record.status == item.result.status
        json.dumps(report.to_dict())

    def test_twilio_refusals_become_failed_items(self, prism_errors_url: str) -> None:
        """Twilio-shaped 400 answers fail every item with Twilio's code; records failed."""
        client, repo = _client(prism_errors_url, prefer="code=400")
        report = client.send_batch(_messages()[:3], max_concurrency=3)
        assert (report.succeeded, report.failed) == (0, 3)
        for item in report.items:
            assert item.error_code == 21211
            assert item.error is not None
            assert "HTTP 400" in item.error
            record = repo.get(item.communication_id or "")
            assert record is not None
            assert (record.status, record.error_code) == ("failed", 21211)
