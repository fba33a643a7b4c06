"""The demo's stand-ins for the world: a loopback web server, and Twilio's side of callbacks.

`serve` runs a WSGI app on a free 127.0.0.1 port; `TwilioPlayer` posts the
signed callbacks Twilio would, to the URLs the client gave it, and checks
each answer.
"""

from __future__ import annotations

import logging
import threading
import urllib.error
import urllib.request
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import parse_qs, urlsplit
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

import attrs

from servio_twilio.domain.models import Channel
from servio_twilio.sending.results import SendResult
from servio_twilio.testing import FakeTwilio, signed_webhook

__all__ = [
    "ACCOUNT_SID",
    "Delivery",
    "DemoFailed",
    "TwilioPlayer",
    "call_params",
    "message_params",
    "not_found",
    "serve",
]

log = logging.getLogger("servio_twilio.demo")

ACCOUNT_SID = "AC" + "d3e0" * 8


class DemoFailed(Exception):
    """A demo step did not do what it should; the message says which and why."""


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("webhook server: " + format, *args)


class _ThreadingWSGIServer(ThreadingMixIn, WSGIServer):
    daemon_threads = True


@contextmanager
def serve(app: Callable[..., Iterable[bytes]], port: int = 0) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port unless ``port``); yields the base URL."""
    server = make_server(
        "127.0.0.1", port, app, server_class=_ThreadingWSGIServer, handler_class=_QuietHandler
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


def not_found(environ: Mapping[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    """A WSGI app answering 404 to everything (what the host serves beside the mounts)."""
    start_response("404 Not Found", [("Content-Type", "text/plain")])
    return [b"not found\n"]


@attrs.frozen(kw_only=True)
class Delivery:
    """One callback as delivered, and what it should have got."""

    route: str
    what: str
    expected: int
    status_code: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return attrs.asdict(self)


def _post(url: str, headers: Mapping[str, str], body: bytes) -> tuple[int, bytes]:
    request = urllib.request.Request(url, data=body, headers=dict(headers), method="POST")  # noqa: S310 - our own loopback server
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return int(response.status), response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


class TwilioPlayer:
    """Plays Twilio's side of the callbacks: signed POSTs to the URLs the client set."""

    def __init__(self, fake: FakeTwilio, auth_token: str) -> None:
        self._fake = fake
        self._auth_token = auth_token
        self.deliveries: list[Delivery] = []

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
    ) -> Delivery:
        """POST one signed callback; ``tamper`` changes the body after signing."""
        headers, body = signed_webhook(url, params, self._auth_token)
        if tamper:
            body = body.replace(b"delivered", b"read")
        status, _ = _post(url, headers, body)
        route = urlsplit(url).path.rsplit("/", 1)[-1]
        delivery = Delivery(route=route, what=what, expected=expected, status_code=status)
        self.deliveries.append(delivery)
        log.info("callback %-16s %-34s -> %d", route, what, status)
        if status != expected:
            raise DemoFailed(f"callback {what!r} to /{route} answered {status}, not {expected}")
        return delivery


def message_params(result: SendResult, status: str, **extra: str) -> dict[str, str]:
    """A message status callback's parameters, as Twilio sends them."""
    prefix = "whatsapp:" if result.channel == Channel.WHATSAPP else ""
    return {
        "AccountSid": ACCOUNT_SID,
        "ApiVersion": "2010-04-01",
        "From": prefix + result.from_,
        "MessageSid": result.sid,
        "MessageStatus": status,
        "SmsSid": result.sid,
        "SmsStatus": status,
        "To": prefix + result.to,
        **extra,
    }


def call_params(result: SendResult, status: str, sequence: int, **extra: str) -> dict[str, str]:
    """A call status callback's parameters, as Twilio sends them."""
    return {
        "AccountSid": ACCOUNT_SID,
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
