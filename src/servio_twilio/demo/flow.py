"""The demo's story: sends, callbacks over HTTP (some lost on purpose), reconcile, checks.

`run_flow` sends an SMS, a WhatsApp message with media, a recorded call
and a batch of ten with one bad number through `FakeTwilio`; delivers the
status callbacks the way Twilio does (signed, some out of order, one
duplicate, one with a bad signature that must get 403) to the webhook app
over HTTP, except three of the batch's, which get lost; makes two sends
whose answers never come (Twilio took one; the other never reached it);
then runs `reconcile` twice, 15 minutes and 75 minutes later, and checks
where every record settled.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Iterable
from datetime import datetime, timedelta
from typing import Any

from servio_twilio.demo.twilio_side import (
    ACCOUNT_SID,
    DemoFailed,
    TwilioPlayer,
    call_params,
    message_params,
    not_found,
    serve,
)
from servio_twilio.domain.errors import SendOutcomeUnknown
from servio_twilio.domain.models import Communication, utcnow
from servio_twilio.domain.phone_text import mask_phone
from servio_twilio.domain.settings import TwilioSettings
from servio_twilio.sending.client import CommunicationsClient
from servio_twilio.sending.results import BatchReport, OutboundMessage, ReconcileReport, SendResult
from servio_twilio.storage.memory import InMemoryRepository
from servio_twilio.testing import FakeTwilio
from servio_twilio.testing.fake_twilio import Fault
from servio_twilio.webhooks.events import InboundMessageEvent
from servio_twilio.webhooks.wsgi import make_wsgi_app, mount_wsgi

__all__ = [
    "LOST_BATCH_ITEMS",
    "MOUNT",
    "PROSPECT",
    "PROSPECT_NUMBER",
    "DemoClock",
    "check",
    "run_flow",
]

log = logging.getLogger("servio_twilio.demo")

PROSPECT = "prospect_123"
PROSPECT_NUMBER = "+5511999999999"
MOUNT = "/api/twilio/webhook"
LOST_BATCH_ITEMS = (1, 6, 8)
"""The batch items whose callbacks the demo loses (reconcile settles them)."""

_SENDER = "+14155552671"
_WHATSAPP_SENDER = "+14155238886"
_BATCH_NUMBERS = [f"+55119876543{i:02d}" for i in range(9)]
_BAD_NUMBER = "+55 11 1234"
_SMS_PRICE = "-0.00790"
_FOUND_TEXT = "Podemos confirmar amanhã às 15h?"
_NEVER_SENT_TEXT = "Última chamada para o orçamento"


class DemoClock:
    """The demo's time: now, until `move` jumps it forward (thread-safe)."""

    def __init__(self) -> None:
        self._offset = timedelta(0)
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return utcnow() + self._offset

    def move(self, by: timedelta) -> None:
        """Jump ``by`` forward."""
        with self._lock:
            self._offset += by


def _settings(base_url: str) -> TwilioSettings:
    return TwilioSettings(
        account_sid=ACCOUNT_SID,
        auth_token=secrets.token_hex(16),
        phone_number=_SENDER,
        whatsapp_number=_WHATSAPP_SENDER,
        webhook_base_url=base_url + MOUNT,
    )


ServeMore = Callable[[str, Callable[[str, Any], None], dict[str, Any]], None]
"""What ``--serve`` does once the story is checked: given the base URL, a way to
mount another WSGI app beside the webhook app, and the results; returns when done."""


def run_flow(
    clock: DemoClock,
    repository: InMemoryRepository,
    *,
    serve_more: ServeMore | None = None,
    port: int = 0,
) -> dict[str, Any]:
    """Run the whole story on a new `FakeTwilio` and ``repository``; the results, checked.

    With ``serve_more``, the webhook server (on ``port``, else a free one)
    stays up while it runs, after the checks.
    """
    fake = FakeTwilio(clock=clock)
    replies: list[str] = []

    def on_inbound(event: InboundMessageEvent) -> str:
        replies.append(event.body or "")
        return "<Response><Message>Obrigado! Até às 15h.</Message></Response>"

    # The server must be listening before the settings can name its URL, so
    # the mounted app is looked up per request.
    holder: dict[str, Callable[..., Iterable[bytes]]] = {}

    def host(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        return holder["app"](environ, start_response)

    with serve(host, port) as base_url:
        settings = _settings(base_url)
        webhook_app = make_wsgi_app(settings=settings, repository=repository, on_inbound=on_inbound)
        holder["app"] = mount_wsgi(not_found, MOUNT, webhook_app)
        log.info("webhook app served at %s%s", base_url, MOUNT)

        client = CommunicationsClient(
            settings, repository=repository, http_client=fake, clock=clock, sleep=lambda _: None
        )
        sms, whatsapp, call, report = _send(client)
        twilio = TwilioPlayer(fake, settings.auth_token)
        _deliver_callbacks(twilio, sms=sms, whatsapp=whatsapp, call=call, report=report)
        _twilio_settles(fake, sms=sms, whatsapp=whatsapp, call=call, report=report)
        unknown = _unknown_outcomes(client, fake)
        reconciled = _reconcile(client, clock)

        history = client.history(PROSPECT)
        events = {c.id: client.events(c.id) for c in history if c.id is not None}
        costs = client.costs(PROSPECT)
        check(history, report, replies)
        check_reconciled(reconciled, report, repository, unknown)
        result = {
            "webhook_url": base_url + MOUNT,
            "prospect_id": PROSPECT,
            "sent": [r.to_dict() for r in (sms, whatsapp, call)],
            "callbacks": [d.to_dict() for d in twilio.deliveries],
            "history": [c.to_dict() for c in history],
            "events_kept": {cid: len(kept) for cid, kept in events.items()},
            "batch": report.to_dict(),
            "reconcile": [r.to_dict() for r in reconciled],
            "costs": {currency: str(amount) for currency, amount in costs.items()},
        }
        if serve_more is not None:

            def mount(prefix: str, app: Any) -> None:
                holder["app"] = mount_wsgi(holder["app"], prefix, app)

            serve_more(base_url, mount, result)
    return result


def _send(client: CommunicationsClient) -> tuple[SendResult, SendResult, SendResult, BatchReport]:
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
    return sms, whatsapp, call, report


def _deliver_callbacks(
    twilio: TwilioPlayer,
    *,
    sms: SendResult,
    whatsapp: SendResult,
    call: SendResult,
    report: BatchReport,
) -> None:
    sms_url = twilio.callback_url(sms)
    # Out of order: delivered overtakes sent and queued; then a duplicate.
    for status in ("delivered", "sent", "queued", "delivered"):
        twilio.deliver(sms_url, message_params(sms, status), what=f"SMS {status}")
    twilio.deliver(
        sms_url,
        message_params(sms, "delivered"),
        what="SMS delivered, body tampered",
        expected=403,
        tamper=True,
    )

    whatsapp_url = twilio.callback_url(whatsapp)
    for status in ("sent", "read", "delivered"):
        twilio.deliver(whatsapp_url, message_params(whatsapp, status), what=f"WhatsApp {status}")

    call_url = twilio.callback_url(call)
    progress = [("initiated", {}), ("completed", {"CallDuration": "42"}), ("ringing", {})]
    progress.append(("in-progress", {}))
    for sequence, (status, extra) in enumerate(progress):
        twilio.deliver(
            call_url, call_params(call, status, sequence, **extra), what=f"call {status}"
        )
    recording_url = twilio.callback_url(call, "RecordingStatusCallback")
    twilio.deliver(
        recording_url,
        {
            "AccountSid": ACCOUNT_SID,
            "CallSid": call.sid,
            "RecordingSid": "RE" + call.sid[2:],
            "RecordingUrl": f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT_SID}"
            f"/Recordings/RE{call.sid[2:]}",
            "RecordingStatus": "completed",
            "RecordingDuration": "38",
            "RecordingChannels": "1",
            "RecordingSource": "OutboundAPI",
        },
        what="recording completed",
    )

    for item in report.items:
        if item.result is not None and item.index not in LOST_BATCH_ITEMS:
            url = twilio.callback_url(item.result)
            twilio.deliver(
                url, message_params(item.result, "delivered"), what=f"batch #{item.index}"
            )
    log.info("lost the callbacks of batch items %s on purpose", list(LOST_BATCH_ITEMS))

    inbound_url = sms_url.split("/message-status", 1)[0] + "/inbound"
    reply_sid = "SM" + secrets.token_hex(16)
    twilio.deliver(
        inbound_url,
        {
            "AccountSid": ACCOUNT_SID,
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


def _twilio_settles(
    fake: FakeTwilio,
    *,
    sms: SendResult,
    whatsapp: SendResult,
    call: SendResult,
    report: BatchReport,
) -> None:
    """Twilio's side ends where the callbacks said, with the prices Twilio charges."""
    fake.set_status(sms.sid, "delivered", price=_SMS_PRICE, price_unit="USD", num_segments=1)
    fake.set_status(whatsapp.sid, "read", price="-0.00500", price_unit="USD", num_segments=1)
    fake.set_status(call.sid, "completed", duration=42, price="-0.01300", price_unit="USD")
    for item in report.items:
        if item.result is not None:
            fake.set_status(item.result.sid, "delivered", price=_SMS_PRICE, price_unit="USD")


def _unknown_outcomes(client: CommunicationsClient, fake: FakeTwilio) -> dict[str, str]:
    """Two sends whose answers never come: Twilio took one; the other never reached it."""
    ids: dict[str, str] = {}
    for name, text in (("found", _FOUND_TEXT), ("never_sent", _NEVER_SENT_TEXT)):
        fake.fail_next(1, Fault.read_timeout())
        try:
            client.send_sms(PROSPECT_NUMBER, text, prospect_id=PROSPECT)
        except SendOutcomeUnknown as exc:
            if exc.communication_id is None:
                raise DemoFailed("an unknown outcome came without its record id") from exc
            ids[name] = exc.communication_id
        else:
            raise DemoFailed("a send whose answer was lost did not say its outcome is unknown")
        [taken] = [m for m in fake.resources("message") if m["body"] == text]
        if name == "found":
            fake.set_status(taken["sid"], "delivered", price=_SMS_PRICE, price_unit="USD")
        else:
            fake.forget(taken["sid"])  # the request died on its way: Twilio has no trace of it
    log.info("two sends with unknown outcomes: one Twilio took, one it never saw")
    return ids


def _reconcile(client: CommunicationsClient, clock: DemoClock) -> list[ReconcileReport]:
    reports = []
    for later in (timedelta(minutes=15), timedelta(hours=1)):
        clock.move(later)
        report = client.reconcile()
        log.info(
            "reconcile: %d examined, %d settled, %d still open, %d not sent",
            report.examined, report.settled, report.still_open, report.not_sent,
        )  # fmt: skip
        reports.append(report)
    return reports


def check(history: list[Communication], report: BatchReport, replies: list[str]) -> None:
    """Raise `DemoFailed` unless every record settled where Twilio and the callbacks say."""
    by_body = {(c.channel.value, c.direction.value, c.body or ""): c for c in history}
    expected = {
        ("sms", "outbound", "Confirmado para 15h"): "delivered",
        ("whatsapp", "outbound", "Seu orçamento em anexo"): "read",
        ("call", "outbound", ""): "completed",
        ("sms", "inbound", "Perfeito, até lá!"): "received",
        ("sms", "outbound", _FOUND_TEXT): "delivered",
        ("sms", "outbound", _NEVER_SENT_TEXT): "failed",
    }
    for key, status in expected.items():
        record = by_body.get(key)
        if record is None:
            raise DemoFailed(f"no {key[1]} {key[0]} record {key[2]!r} in the prospect's history")
        if record.status != status:
            raise DemoFailed(
                f"{key[1]} {key[0]} {key[2]!r} settled as {record.status!r}, not {status!r}"
            )
    call = by_body[("call", "outbound", "")]
    if call.duration != 42 or call.recording_duration != 38 or not call.recording_url:
        raise DemoFailed("the call record lacks its duration or recording")
    if call.price is None or by_body[("sms", "outbound", "Confirmado para 15h")].price is None:
        raise DemoFailed("reconcile did not keep the price of what the callbacks settled")
    if len(history) != len(expected):
        raise DemoFailed(f"the prospect's history has {len(history)} records, not {len(expected)}")
    if (report.total, report.succeeded, report.failed) != (10, 9, 1):
        raise DemoFailed(f"batch report {report.succeeded}/{report.total} is not 9/10")
    if report.items[4].ok:
        raise DemoFailed("the bad number in the batch was not reported failed")
    if replies != ["Perfeito, até lá!"]:
        raise DemoFailed("the inbound hook did not see the prospect's reply")


def check_reconciled(
    reconciled: list[ReconcileReport],
    report: BatchReport,
    repository: InMemoryRepository,
    unknown: dict[str, str],
) -> None:
    """Raise `DemoFailed` unless both reconcile runs settled what they should."""
    counts = [(r.examined, r.settled, r.still_open, r.not_sent, len(r.failed)) for r in reconciled]
    # First run: every sent record's price (callbacks carry none), the 3 lost batch
    # callbacks, the message Twilio took; the one Twilio never saw waits for
    # not_sent_after. Second run: it is failed.
    wanted = [(14, 13, 1, 0, 0), (1, 0, 0, 1, 0)]
    if counts != wanted:
        raise DemoFailed(f"reconcile reported {counts}, not {wanted}")
    for item in report.items:
        if item.result is not None:
            stored = repository.find_by_sid(item.result.sid)
            if stored is None or stored.status != "delivered" or stored.price != _SMS_PRICE:
                raise DemoFailed(
                    f"batch item #{item.index} did not settle delivered with its price"
                )
    found = repository.get(unknown["found"])
    if found is None or found.twilio_sid is None:
        raise DemoFailed("reconcile did not give the message Twilio took its SID")
