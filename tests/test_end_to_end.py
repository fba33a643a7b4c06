"""End to end: the client and the ASGI webhook app on one Firestore repository.

The client sends through `FakeTwilio` and logs to a `FirestoreRepository` on the
emulator; the webhook app runs under uvicorn on 127.0.0.1 and receives signed
callbacks over real HTTP, at the URLs the client gave Twilio; the stored
documents are then read raw and checked field by field against DESIGN.md's
schema of the ``communications`` collection.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from servio_twilio import (
    CommunicationsClient,
    OutboundMessage,
    SendResult,
    TwilioSettings,
    make_asgi_app,
    mount_asgi,
)
from servio_twilio.firestore import FirestoreRepository
from servio_twilio.testing import FakeTwilio, signed_webhook
from support.firestore_emulator import unique_collection

pytestmark = [pytest.mark.firestore, pytest.mark.server]

ACCOUNT_SID = "AC" + "e2e0" * 8
TOKEN = "end-to-end-token-0123456789abcdef"
SENDER = "+14155552671"
WHATSAPP_SENDER = "+14155238886"
PROSPECT = "prospect_e2e"
NUMBER = "+5511999999999"
MOUNT = "/api/twilio/webhook"

# DESIGN.md, "The `communications` collection": field -> allowed Python types as read back.
SCHEMA: dict[str, tuple[type, ...]] = {
    "prospectId": (str, type(None)),
    "type": (str,),
    "direction": (str,),
    "to": (str,),
    "from": (str,),
    "body": (str,),
    "mediaUrl": (str,),
    "mediaUrls": (list,),
    "twilioSid": (str,),
    "status": (str,),
    "duration": (int,),
    "recordingDuration": (int,),
    "recordingUrl": (str,),
    "recordingSid": (str,),
    "error": (str,),
    "errorCode": (int,),
    "timestamp": (datetime,),
    "createdAt": (datetime,),
    "updatedAt": (datetime,),
}


async def _not_found(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] == "lifespan":
        while (await receive())["type"] != "lifespan.shutdown":
            await send({"type": "lifespan.startup.complete"})
        await send({"type": "lifespan.shutdown.complete"})
        return
    await send({"type": "http.response.start", "status": 404, "headers": []})
    await send({"type": "http.response.body", "body": b""})


class _Twilio:
    """Twilio's side: signed form POSTs to the callback URLs the client set."""

    def __init__(self, fake: FakeTwilio, http: httpx.Client) -> None:
        self.fake = fake
        self.http = http

    def url(self, result: SendResult, field: str = "StatusCallback") -> str:
        for request in self.fake.requests:
            url = request.data.get(field)
            cid = parse_qs(urlsplit(url).query).get("cid") if isinstance(url, str) else None
            if isinstance(url, str) and cid == [result.communication_id]:
                return url
        raise AssertionError(f"no {field} was sent for {result.sid}")

    def post(self, url: str, params: Mapping[str, str]) -> httpx.Response:
        headers, body = signed_webhook(url, params, TOKEN)
        return self.http.post(url, content=body, headers=headers)


def _message(result: SendResult, status: str, **extra: str) -> dict[str, str]:
    prefix = "whatsapp:" if result.channel == "whatsapp" else ""
    return {
        "AccountSid": ACCOUNT_SID,
        "MessageSid": result.sid,
        "MessageStatus": status,
        "From": prefix + result.from_,
        "To": prefix + result.to,
        **extra,
    }


def _call(result: SendResult, status: str, **extra: str) -> dict[str, str]:
    return {
        "AccountSid": ACCOUNT_SID,
        "CallSid": result.sid,
        "CallStatus": status,
        "From": result.from_,
        "To": result.to,
        **extra,
    }


@pytest.fixture
def stack(
    firestore_client: Any, asgi_server: Callable[..., str]
) -> tuple[CommunicationsClient, FirestoreRepository, _Twilio, Any]:
    """Client, repository and Twilio's side, with the webhook app under uvicorn."""
    collection = unique_collection()
    repository = FirestoreRepository(firestore_client, collection=collection, timeout=15.0)
    holder: dict[str, Any] = {}

    async def host(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await holder.get("app", _not_found)(scope, receive, send)

    base_url = asgi_server(host)
    settings = TwilioSettings(
        account_sid=ACCOUNT_SID,
        auth_token=TOKEN,
        phone_number=SENDER,
        whatsapp_number=WHATSAPP_SENDER,
        webhook_base_url=base_url + MOUNT,
    )
    webhook_app = make_asgi_app(
        settings=settings,
        repository=repository,
        on_inbound=lambda event: "<Response><Message>Obrigado!</Message></Response>",
    )
    holder["app"] = mount_asgi(_not_found, MOUNT, webhook_app)
    fake = FakeTwilio()
    client = CommunicationsClient(
        settings, repository=repository, http_client=fake, sleep=lambda _: None
    )
    with httpx.Client(timeout=15.0) as http:
        yield client, repository, _Twilio(fake, http), firestore_client.collection(collection)


class TestEndToEnd:
    def test_sends_callbacks_and_history_on_firestore(self, stack: Any) -> None:
        """Sends, out-of-order and repeated signed callbacks over HTTP, then history and raw
        documents: every record settles where its callbacks say, with DESIGN's field names."""
        client, repository, twilio, collection = stack

        sms = client.send_sms(NUMBER, "Confirmado para 15h", prospect_id=PROSPECT)
        whatsapp = client.send_whatsapp(
            NUMBER,
            "Seu orçamento",
            media_url=["https://cdn.servio.test/a.pdf", "https://cdn.servio.test/b.png"],
            prospect_id=PROSPECT,
        )
        call = client.make_call(
            NUMBER, twiml="<Response><Say>Olá</Say></Response>", record=True, prospect_id=PROSPECT
        )
        report = client.send_batch(
            [
                OutboundMessage(to="+5511988887777", body="oi", prospect_id="lead_1"),
                OutboundMessage(to="not a number", body="never sent", prospect_id="lead_2"),
            ]
        )
        assert (report.total, report.succeeded, report.failed) == (2, 1, 1)

        sms_url = twilio.url(sms)
        for status in ("delivered", "sent", "queued", "delivered"):
            assert twilio.post(sms_url, _message(sms, status)).status_code == 204
        tampered_headers, body = signed_webhook(sms_url, _message(sms, "read"), TOKEN)
        refused = twilio.http.post(
            sms_url, content=body.replace(b"read", b"failed"), headers=tampered_headers
        )
        assert refused.status_code == 403

        whatsapp_url = twilio.url(whatsapp)
        for status in ("read", "sent", "delivered"):
            assert twilio.post(whatsapp_url, _message(whatsapp, status)).status_code == 204

        call_url = twilio.url(call)
        for status, extra in [
            ("completed", {"CallDuration": "42"}),
            ("ringing", {}),
            ("initiated", {}),
            ("in-progress", {}),
            ("completed", {"CallDuration": "42"}),
        ]:
            assert twilio.post(call_url, _call(call, status, **extra)).status_code == 204
        recording = {
            "AccountSid": ACCOUNT_SID,
            "CallSid": call.sid,
            "RecordingSid": "RE" + "1" * 32,
            "RecordingUrl": "https://api.twilio.com/recordings/RE" + "1" * 32,
            "RecordingStatus": "completed",
            "RecordingDuration": "38",
        }
        recording_url = twilio.url(call, "RecordingStatusCallback")
        assert twilio.post(recording_url, recording).status_code == 204

        inbound_url = sms_url.split("/message-status", 1)[0] + "/inbound"
        reply = twilio.post(
            inbound_url,
            {
                "AccountSid": ACCOUNT_SID,
                "MessageSid": "SM" + "2" * 32,
                "From": NUMBER,
                "To": SENDER,
                "Body": "Perfeito!",
                "NumMedia": "0",
            },
        )
        assert reply.status_code == 200
        assert reply.headers["content-type"].startswith("text/xml")
        assert "Obrigado!" in reply.text

        history = client.history(PROSPECT)
        settled = {(c.channel.value, c.direction.value): c for c in history}
        assert len(history) == 4
        assert settled[("sms", "outbound")].status == "delivered"
        assert settled[("whatsapp", "outbound")].status == "read"
        assert settled[("call", "outbound")].status == "completed"
        assert settled[("sms", "inbound")].status == "received"
        assert [c.timestamp for c in history] == sorted(
            (c.timestamp for c in history), reverse=True
        )
        assert len(client.events(sms.communication_id)) == 4  # the 403 was not kept
        assert len(client.events(call.communication_id)) == 6

        documents = {snapshot.id: snapshot.to_dict() for snapshot in collection.stream()}
        assert len(documents) == 5  # 4 for the prospect, 1 for the batch's valid item
        for document in documents.values():
            for field, value in document.items():
                if field in SCHEMA and value is not None:
                    assert isinstance(value, SCHEMA[field]), (field, value)
            assert document["type"] in {"sms", "whatsapp", "call"}
            assert document["direction"] in {"inbound", "outbound"}
            for number_field in ("to", "from"):
                assert document[number_field].startswith("+"), document[number_field]

        sms_doc = documents[sms.communication_id]
        assert sms_doc["prospectId"] == PROSPECT
        assert (sms_doc["type"], sms_doc["direction"]) == ("sms", "outbound")
        assert (sms_doc["to"], sms_doc["from"]) == (NUMBER, SENDER)
        assert sms_doc["body"] == "Confirmado para 15h"
        assert sms_doc["twilioSid"] == sms.sid
        assert sms_doc["status"] == "delivered"
        assert sms_doc["createdAt"] <= sms_doc["updatedAt"]

        whatsapp_doc = documents[whatsapp.communication_id]
        assert whatsapp_doc["type"] == "whatsapp"
        assert (whatsapp_doc["to"], whatsapp_doc["from"]) == (NUMBER, WHATSAPP_SENDER)
        assert whatsapp_doc["mediaUrl"] == "https://cdn.servio.test/a.pdf"
        assert whatsapp_doc["mediaUrls"] == [
            "https://cdn.servio.test/a.pdf",
            "https://cdn.servio.test/b.png",
        ]
        assert whatsapp_doc["status"] == "read"

        call_doc = documents[call.communication_id]
        assert call_doc["type"] == "call"
        assert call_doc["status"] == "completed"
        assert call_doc["duration"] == 42
        assert call_doc["recordingDuration"] == 38
        assert call_doc["recordingSid"] == "RE" + "1" * 32
        assert call_doc["recordingUrl"] == recording["RecordingUrl"]

        inbound = settled[("sms", "inbound")]
        inbound_doc = documents[inbound.id]
        assert inbound_doc["prospectId"] == PROSPECT  # attributed by the latest outbound
        assert (inbound_doc["from"], inbound_doc["to"]) == (NUMBER, SENDER)
        assert inbound_doc["body"] == "Perfeito!"
        assert inbound_doc["twilioSid"] == "SM" + "2" * 32

        assert repository.find_by_sid(call.sid) == settled[("call", "outbound")]
