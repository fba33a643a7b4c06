"""Helpers for webhook tests: Twilio's callback fields, signed requests, a raw ASGI driver."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping
from typing import Any

from servio_twilio.testing import signed_webhook

TOKEN = "test-auth-token-0123456789abcdef"
OTHER_TOKEN = "another-token-fedcba9876543210"
ACCOUNT_SID = "AC" + "a" * 32
PROSPECT_NUMBER = "+5511999999999"
SENDER = "+15005550006"
FORM = "application/x-www-form-urlencoded"


def sid(prefix: str, n: int) -> str:
    """A Twilio-shaped SID: two letters and 32 hex digits."""
    return f"{prefix}{n:032x}"


def message_params(message_sid: str, status: str, **extra: str) -> dict[str, str]:
    """The fields of an SMS status callback."""
    return {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "From": SENDER,
        "MessageSid": message_sid,
        "MessageStatus": status,
        "SmsSid": message_sid,
        "SmsStatus": status,
        "To": PROSPECT_NUMBER,
        **extra,
    }


def call_params(call_sid: str, status: str, **extra: str) -> dict[str, str]:
    """The fields of a voice call status callback."""
    return {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "CallSid": call_sid,
        "CallStatus": status,
        "Direction": "outbound-api",
        "From": SENDER,
        "To": PROSPECT_NUMBER,
        **extra,
    }


def recording_params(call_sid: str, recording_sid: str, **extra: str) -> dict[str, str]:
    """The fields of a recording status callback (completed)."""
    return {
        "AccountSid": ACCOUNT_SID,
        "CallSid": call_sid,
        "RecordingSid": recording_sid,
        "RecordingStatus": "completed",
        "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}/Recordings/{recording_sid}",
        "RecordingDuration": "42",
        **extra,
    }


def inbound_params(message_sid: str, body: str = "Oi", **extra: str) -> dict[str, str]:
    """The fields of an incoming SMS."""
    return {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "Body": body,
        "From": PROSPECT_NUMBER,
        "MessageSid": message_sid,
        "NumMedia": "0",
        "SmsMessageSid": message_sid,
        "SmsSid": message_sid,
        "To": SENDER,
        **extra,
    }


def signed(
    url: str, params: Mapping[str, str | list[str]], token: str = TOKEN
) -> tuple[dict[str, str], bytes]:
    """Headers and body of a callback signed for ``url``."""
    return signed_webhook(url, params, token)


async def asgi_request(
    app: Any,
    *,
    method: str = "POST",
    path: str = "/message-status",
    query: bytes = b"",
    headers: Iterable[tuple[bytes, bytes]] = (),
    chunks: Iterable[bytes] = (b"",),
    scope: Mapping[str, Any] | None = None,
) -> tuple[int | None, dict[str, str], bytes, int]:
    """Drive an ASGI app by hand: status (None if none sent), headers, body, messages read."""
    pending = list(chunks)
    read = 0
    full_scope: dict[str, Any] = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": path,
        "raw_path": path.encode(),
        "root_path": "",
        "query_string": query,
        "headers": list(headers),
        "server": ("testserver", 80),
        "client": ("127.0.0.1", 5000),
        **(scope or {}),
    }

    async def receive() -> dict[str, Any]:
        nonlocal read
        if not pending:
            await asyncio.sleep(0)
            return {"type": "http.disconnect"}
        read += 1
        chunk = pending.pop(0)
        return {"type": "http.request", "body": chunk, "more_body": bool(pending)}

    sent: list[dict[str, Any]] = []

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    await app(full_scope, receive, send)
    status = None
    reply_headers: dict[str, str] = {}
    body = b""
    for message in sent:
        if message["type"] == "http.response.start":
            status = message["status"]
            reply_headers = {k.decode(): v.decode() for k, v in message["headers"]}
        elif message["type"] == "http.response.body":
            body += message.get("body", b"")
    return status, reply_headers, body, read


def header_list(headers: Mapping[str, str]) -> list[tuple[bytes, bytes]]:
    """ASGI headers from a str mapping."""
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
