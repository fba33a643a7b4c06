"""The offline demo behind ``python -m servio_twilio demo``.

Everything runs on embedded defaults, with no credentials and no network: an
`InMemoryRepository`, `FakeTwilio` as Twilio, and the WSGI webhook app served
by the standard library's server on a free 127.0.0.1 port. The demo sends an
SMS, a WhatsApp message with media, a recorded call and a batch of ten with
one bad number; delivers the status callbacks the way Twilio does (signed,
some out of order, one duplicate, one with a bad signature that must get 403)
over HTTP; then prints the prospect's history and the batch report.

Part of the kit: nothing in the product imports it.
"""

from __future__ import annotations

import json
import logging
import secrets
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from socketserver import ThreadingMixIn
from typing import Any, TextIO
from urllib.parse import parse_qs, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import attrs

from servio_twilio.domain.models import Channel, Communication
from servio_twilio.domain.phone_text import mask_phone
from servio_twilio.domain.settings import TwilioSettings
from servio_twilio.sending.client import CommunicationsClient
from servio_twilio.sending.results import BatchReport, OutboundMessage, SendResult
from servio_twilio.storage.memory import InMemoryRepository
from servio_twilio.testing import FakeTwilio, signed_webhook
from servio_twilio.webhooks.events import InboundMessageEvent
from servio_twilio.webhooks.wsgi import make_wsgi_app, mount_wsgi

__all__ = ["DemoFailed", "run_demo"]

log = logging.getLogger("servio_twilio.demo")

PROSPECT = "prospect_123"
PROSPECT_NUMBER = "+5511999999999"
MOUNT = "/api/twilio/webhook"
_ACCOUNT_SID = "AC" + "d3e0" * 8
_SENDER = "+14155552671"
_WHATSAPP_SENDER = "+14155238886"
_BATCH_NUMBERS = [f"+55119876543{i:02d}" for i in range(9)]
_BAD_NUMBER = "+55 11 1234"


class DemoFailed(Exception):
    """A demo step did not do what it should; the message says which and why."""


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("webhook server: " + format, *args)


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


@contextmanager
def _serve(app: Callable[..., Iterable[bytes]]) -> Iterator[str]:
    """Serve ``app`` on a free 127.0.0.1 port; yields the base URL."""
    server = make_server(
        "127.0.0.1", 0, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
    )
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05})
    thread.daemon = True
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def _not_found(environ: Mapping[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found\n"]


@attrs.frozen(kw_only=True)
class _Delivery:
    """One callback as delivered, and what it should have got."""

    route: str
    what: str
    expected: int
    status_code: int

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)


def _post(url: str, headers: Mapping[str, str], body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")  # noqa: S310 - our own loopback server
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class _Twilio:
    """Plays Twilio's side of the callbacks: signed POSTs to the URLs the client set."""

    def __init__(self, fake: FakeTwilio, auth_token: str) -> None:
        self._fake = fake
        self._auth_token = auth_token
        self.deliveries: list[_Delivery] = []

    def callback_url(self, result: SendResult, field: str = "StatusCallback") -> str:
        """The callback URL the client gave Twilio for ``result``'s create request."""
        for request in self._fake.requests:
            url = request.data.get(field)
            if isinstance(url, str) and parse_qs(urlsplit(url).query).get("cid") == [
                result.communication_id
            ]:
                return url
        raise DemoFailed(f"the create request for {result.sid} had no {field} URL")

    def deliver(
        self,
        url: str,
        params: Mapping[str, str],
        *,
        what: str,
        expected: int = 204,
        tamper: bool = False,
    ) -> _Delivery:
        """POST one signed callback; ``tamper`` changes the body after signing."""
        headers, body = signed_webhook(url, params, self._auth_token)
        if tamper:
            body = body.replace(b"delivered", b"read")
        status, _ = _post(url, headers, body)
        route = urlsplit(url).path.rsplit("/", 1)[-1]
        delivery = _Delivery(route=route, what=what, expected=expected, status_code=status)
        self.deliveries.append(delivery)
        log.info("callback %-16s %-34s -> %d", route, what, status)
        if status != expected:
            raise DemoFailed(f"callback {what!r} to /{route} answered {status}, not {expected}")
        return delivery


def _message_params(result: SendResult, status: str, **extra: str) -> dict[str, str]:
    prefix = "whatsapp:" if result.channel == Channel.WHATSAPP else ""
    return {
        "AccountSid": _ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "From": prefix + result.from_,
        "MessageSid": result.sid,
        "MessageStatus": status,
        "SmsSid": result.sid,
        "SmsStatus": status,
        "To": prefix + result.to,
        **extra,
    }


def _call_params(result: SendResult, status: str, sequence: int, **extra: str) -> dict[str, str]:
    return {
        "AccountSid": _ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "CallSid": result.sid,
        "CallStatus": status,
        "CallbackSource": "call-progress-events",
        "Direction": "outbound-api",
        "From": result.from_,
        "SequenceNumber": str(sequence),
        "To": result.to,
        **extra,
    }


def _settings(base_url: str) -> TwilioSettings:
    return TwilioSettings(
        account_sid=_ACCOUNT_SID,
        auth_token=secrets.token_hex(16),
        phone_number=_SENDER,
        whatsapp_number=_WHATSAPP_SENDER,
        webhook_base_url=base_url + MOUNT,
    )


def _run(fake: FakeTwilio) -> dict[str, Any]:
    repository = InMemoryRepository()
    replies: list[str] = []

    def on_inbound(event: InboundMessageEvent) -> str:
        replies.append(event.body or "")
        return "<Response><Message>Obrigado! Até às 15h.</Message></Response>"

    # The server must be listening before the settings can name its URL, so
    # the mounted app is looked up per request.
    holder: dict[str, Callable[..., Iterable[bytes]]] = {}

    def host(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        return holder["app"](environ, start_response)

    with _serve(host) as base_url:
        settings = _settings(base_url)
        webhook_app = make_wsgi_app(settings=settings, repository=repository, on_inbound=on_inbound)
        holder["app"] = mount_wsgi(_not_found, MOUNT, webhook_app)
        log.info("webhook app served at %s%s", base_url, MOUNT)

        client = CommunicationsClient(
            settings, repository=repository, http_client=fake, sleep=lambda _: None
        )
        sms = client.send_sms(PROSPECT_NUMBER, "Confirmado para 15h", prospect_id=PROSPECT)
        log.info("sent SMS %s to %s", sms.sid, mask_phone(sms.to))
        whatsapp = client.send_whatsapp(
            PROSPECT_NUMBER,
            "Seu orçamento em anexo",
            media_url=["https://demo.servio.ai/orcamento.pdf", "https://demo.servio.ai/mapa.png"],
            prospect_id=PROSPECT,
        )
        log.info("sent WhatsApp %s with 2 media", whatsapp.sid)
        call = client.make_call(
            PROSPECT_NUMBER,
            twiml="<Response><Say language='pt-BR'>Olá! Aqui é a Servio.</Say></Response>",
            record=True,
            prospect_id=PROSPECT,
        )
        log.info("placed call %s with recording", call.sid)
        batch_messages = [
            OutboundMessage(to=number, body=f"Promoção de inverno #{i}", prospect_id=f"lead_{i}")
            for i, number in enumerate(_BATCH_NUMBERS)
        ]
        batch_messages.insert(4, OutboundMessage(to=_BAD_NUMBER, body="never sent"))
        report = client.send_batch(batch_messages, max_concurrency=5)
        log.info("batch: %d sent, %d failed", report.succeeded, report.failed)

        twilio = _Twilio(fake, settings.auth_token)
        _deliver_callbacks(twilio, sms=sms, whatsapp=whatsapp, call=call, report=report)

        history = client.history(PROSPECT)
        events = {c.id: client.events(c.id) for c in history if c.id is not None}

    _check(history, report, replies)
    return {
        "webhook_url": base_url + MOUNT,
        "prospect_id": PROSPECT,
        "sent": [r.to_dict() for r in (sms, whatsapp, call)],
        "callbacks": [d.to_dict() for d in twilio.deliveries],
        "history": [c.to_dict() for c in history],
        "events_kept": {cid: len(kept) for cid, kept in events.items()},
        "batch": report.to_dict(),
    }


def _deliver_callbacks(
    twilio: _Twilio,
    *,
    sms: SendResult,
    whatsapp: SendResult,
    call: SendResult,
    report: BatchReport,
) -> None:
    sms_url = twilio.callback_url(sms)
    # Out of order: delivered overtakes sent and queued; then a duplicate.
    for status in ("delivered", "sent", "queued", "delivered"):
        twilio.deliver(sms_url, _message_params(sms, status), what=f"SMS {status}")
    twilio.deliver(
        sms_url,
        _message_params(sms, "delivered"),
        what="SMS delivered, body tampered",
        expected=403,
        tamper=True,
    )

    whatsapp_url = twilio.callback_url(whatsapp)
    for status in ("sent", "read", "delivered"):
        twilio.deliver(whatsapp_url, _message_params(whatsapp, status), what=f"WhatsApp {status}")

    call_url = twilio.callback_url(call)
    progress = [("initiated", {}), ("completed", {"CallDuration": "42"}), ("ringing", {})]
    progress.append(("in-progress", {}))
    for sequence, (status, extra) in enumerate(progress):
        twilio.deliver(
            call_url, _call_params(call, status, sequence, **extra), what=f"call {status}"
        )
    recording_url = twilio.callback_url(call, "RecordingStatusCallback")
    twilio.deliver(
        recording_url,
        {
            "AccountSid": _ACCOUNT_SID,
            "CallSid": call.sid,
            "RecordingSid": "RE" + call.sid[2:],
            "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{_ACCOUNT_SID}"
            f"/Recordings/RE{call.sid[2:]}",
            "RecordingStatus": "completed",
            "RecordingDuration": "38",
            "RecordingChannels": "1",
            "RecordingSource": "OutboundAPI",
        },
        what="recording completed",
    )

    for item in report.items:
        if item.result is not None:
            url = twilio.callback_url(item.result)
            twilio.deliver(
                url, _message_params(item.result, "delivered"), what=f"batch #{item.index}"
            )

    inbound_url = sms_url.split("/message-status", 1)[0] + "/inbound"
    reply_sid = "SM" + secrets.token_hex(16)
    twilio.deliver(
        inbound_url,
        {
            "AccountSid": _ACCOUNT_SID,
            "ApiVersion": "2010-04-01",
            "Body": "Perfeito, até lá!",
            "From": sms.to,
            "MessageSid": reply_sid,
            "NumMedia": "0",
            "SmsSid": reply_sid,
            "To": sms.from_,
        },
        what="inbound reply",
        expected=200,
    )


def _check(history: list[Communication], report: BatchReport, replies: list[str]) -> None:
    """Raise `DemoFailed` unless every record settled where the callbacks say."""
    by_channel: dict[tuple[str, str], Communication] = {
        (c.channel.value, c.direction.value): c for c in history
    }
    expected = {
        ("sms", "outbound"): "delivered",
        ("whatsapp", "outbound"): "read",
        ("call", "outbound"): "completed",
        ("sms", "inbound"): "received",
    }
    for key, status in expected.items():
        record = by_channel.get(key)
        if record is None:
            raise DemoFailed(f"no {key[1]} {key[0]} record in the prospect's history")
        if record.status != status:
            raise DemoFailed(f"{key[1]} {key[0]} settled as {record.status!r}, not {status!r}")
    call = by_channel[("call", "outbound")]
    if call.duration != 42 or call.recording_duration != 38 or not call.recording_url:
        raise DemoFailed("the call record lacks its duration or recording")
    if len(history) != len(expected):
        raise DemoFailed(f"the prospect's history has {len(history)} records, not 4")
    if (report.total, report.succeeded, report.failed) != (10, 9, 1):
        raise DemoFailed(f"batch report {report.succeeded}/{report.total} is not 9/10")
    if report.items[4].ok:
        raise DemoFailed("the bad number in the batch was not reported failed")
    if replies != ["Perfeito, até lá!"]:
        raise DemoFailed("the inbound hook did not see the prospect's reply")


def _table(rows: list[list[str]], headers: list[str]) -> str:
    widths = [max([len(h), *(len(r[i]) for r in rows)]) for i, h in enumerate(headers)]

    def line(cells: list[str]) -> str:
        return "  ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()

    return "\n".join([line(headers), line(["-" * w for w in widths]), *map(line, rows)])


def _render(result: dict[str, Any], elapsed: float) -> str:
    history_rows = []
    for c in result["history"]:
        details = []
        if c["duration"] is not None:
            details.append(f"{c['duration']}s")
        if c["recording_duration"] is not None:
            details.append(f"recording {c['recording_duration']}s")
        if c["media_urls"]:
            details.append(f"{len(c['media_urls'])} media")
        if c["body"]:
            details.append(repr(c["body"]))
        history_rows.append(
            [
                c["timestamp"][11:23],
                c["channel"],
                c["direction"],
                mask_phone(c["to"]),
                c["status"],
                str(result["events_kept"].get(c["id"], 0)),
                ", ".join(details),
            ]
        )
    batch = result["batch"]
    batch_rows = [
        [
            str(item["index"]),
            mask_phone(item["to"]),
            "sent" if item["ok"] else "FAILED",
            item["result"]["sid"] if item["result"] else (item["error"] or ""),
        ]
        for item in batch["items"]
    ]
    callbacks = result["callbacks"]
    refused = sum(1 for d in callbacks if d["status_code"] == 403)
    return "\n".join(
        [
            f"servio-twilio demo: webhook app at {result['webhook_url']}",
            f"{len(callbacks)} signed callbacks delivered over HTTP "
            f"({refused} with a bad signature refused with 403)",
            "",
            f"History of {result['prospect_id']} (newest first)",
            _table(
                history_rows,
                ["time (UTC)", "channel", "direction", "to", "status", "events", "details"],
            ),
            "",
            f"Batch report: {batch['succeeded']} of {batch['total']} sent, "
            f"{batch['failed']} failed",
            _table(batch_rows, ["#", "to", "outcome", "sid / error"]),
            "",
            f"done in {elapsed:.2f}s",
        ]
    )


def run_demo(*, json_output: bool, stdout: TextIO, stderr: TextIO) -> int:
    """Run the demo; print a report (or one JSON document) and return the exit status."""
    handler = logging.StreamHandler(stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    package_log = logging.getLogger("servio_twilio")
    package_log.addHandler(handler)
    previous_level = package_log.level
    package_log.setLevel(logging.INFO if not json_output else logging.WARNING)
    started = time.perf_counter()
    try:
        result = _run(FakeTwilio())
    except Exception as exc:  # any failure is the demo's answer, with its reason
        log.error("demo failed: %s: %s", type(exc).__name__, exc)
        print(f"demo failed: {exc}", file=stderr)
        return 1
    finally:
        package_log.removeHandler(handler)
        package_log.setLevel(previous_level)
    elapsed = time.perf_counter() - started
    if json_output:
        result["elapsed_seconds"] = round(elapsed, 3)
        json.dump(result, stdout, ensure_ascii=False, indent=2)
        stdout.write("\n")
    else:
        stdout.write(_render(result, elapsed) + "\n")
    return 0
