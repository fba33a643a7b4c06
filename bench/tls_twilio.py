"""A local HTTPS server answering like Twilio's Messages API, for twilio's real HTTP client.

`FakeTwilio` replaces twilio's HTTP client, so urllib3's connection pool
never runs under it. `TlsTwilio` is a real server instead: a
``ThreadingHTTPServer`` on 127.0.0.1 behind TLS (a self-signed certificate
made by `self_signed_cert`), HTTP/1.1 with keep-alive, that counts the TCP
connections it accepts and answers

- ``POST .../Messages.json``: 201 with Twilio's message JSON (a new ``SM`` SID);
- ``GET .../Accounts/AC....json``: 200, an active account;
- anything else: 404, Twilio-shaped.

``latency`` seconds pass before each answer; ``last_request`` is the last
request received, as read (method, path and query, headers, body). With ``gather=n`` each answer
also waits until ``n`` requests are in (a reusable barrier, ``gather_timeout``
at most), so a batch at concurrency ``n`` holds ``n`` connections at once,
whatever the scheduling.

`redirected_twilio(server)` points every ``TwilioHttpClient`` and every
``AiohttpTwilioClient`` (the async wrapper's default) at it, the library's
default clients included: ``https://api.twilio.com`` becomes the server's
URL, and the client trusts its certificate (`client_context`) and ignores
the environment's proxies and CA bundle. An aiohttp session of your own can
be pointed at it with ``url`` and ``ssl=client_context(server.cert)``.

Each connection's TLS socket is closed when its handler ends, and `close`
shuts down the ones still open (idle keep-alive connections), so that the
server leaves no "unclosed socket" ``ResourceWarning`` behind: tests that
turn warnings into errors see only the client's.

``tests/test_http_pool.py`` uses it too (pytest puts ``bench/`` on its
path); benches never import ``tests/``.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import re
import ssl
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from socket import IPPROTO_TCP, SHUT_RDWR, TCP_NODELAY, socket
from types import TracebackType
from typing import Any, NamedTuple, Protocol
from unittest import mock
from urllib.parse import parse_qs

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from twilio.http.http_client import TwilioHttpClient  # type: ignore[import-untyped]

from servio_twilio.sending.aiohttp_client import AiohttpTwilioClient

TWILIO_API = "https://api.twilio.com"
_MESSAGES = re.compile(r"/2010-04-01/Accounts/(?P<account>AC[0-9a-fA-F]{32})/Messages\.json")
_ACCOUNT = re.compile(r"/2010-04-01/Accounts/(?P<account>AC[0-9a-fA-F]{32})\.json")


def self_signed_cert(directory: Path) -> tuple[Path, Path]:
    """Write a self-signed certificate for 127.0.0.1 and its key; return their paths."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "twilio-cert.pem", directory / "twilio-key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def client_context(cert: Path) -> ssl.SSLContext:
    """A client TLS context that trusts ``cert`` (and verifies host names as usual)."""
    return ssl.create_default_context(cafile=str(cert))


class Received(NamedTuple):
    """One request as the server read it: the path keeps its query."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256

    def __init__(self, owner: TlsTwilio, context: ssl.SSLContext) -> None:
        self.owner = owner
        self.context = context
        super().__init__(("127.0.0.1", 0), _Handler)

    def get_request(self) -> tuple[socket, Any]:
        sock, address = self.socket.accept()
        # The answer leaves in two writes (head, body): without this, Nagle's wait for
        # the client's delayed ACK adds about 40 ms to every answer.
        sock.setsockopt(IPPROTO_TCP, TCP_NODELAY, 1)
        self.owner.count_connection()
        return sock, address


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive
    timeout = 60  # an idle keep-alive connection is closed after this long
    server: _Server

    def setup(self) -> None:
        # The TLS handshake runs here, in the connection's own thread.
        self.request = self.server.context.wrap_socket(self.request, server_side=True)
        self.server.owner.track(self.request)
        super().setup()

    def finish(self) -> None:
        # socketserver closes the raw socket it accepted, not the TLS one wrapping it.
        try:
            super().finish()
        finally:
            self.server.owner.untrack(self.request)
            self.request.close()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        """Answer the account fetch; 404 for anything else."""
        self._answer("GET", b"")

    def do_POST(self) -> None:
        """Answer a message create; 404 for anything else."""
        length = int(self.headers.get("Content-Length") or 0)
        self._answer("POST", self.rfile.read(length))

    def _answer(self, method: str, body: bytes) -> None:
        owner = self.server.owner
        owner.count_request(Received(method, self.path, dict(self.headers.items()), body))
        owner.wait_turn()
        path = self.path.split("?", 1)[0]
        if method == "POST" and (match := _MESSAGES.fullmatch(path)):
            status, payload = 201, _message(match["account"], parse_qs(body.decode()))
        elif method == "GET" and (match := _ACCOUNT.fullmatch(path)):
            status, payload = 200, {"sid": match["account"], "status": "active"}
        else:
            status = 404
            payload = {"code": 20404, "message": "not found", "status": 404, "more_info": ""}
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def _message(account: str, form: dict[str, list[str]]) -> dict[str, Any]:
    sid = "SM" + uuid.uuid4().hex
    now = format_datetime(dt.datetime.now(dt.UTC), usegmt=True)
    return {
        "account_sid": account,
        "body": form.get("Body", [""])[0],
        "date_created": now,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": form.get("From", [None])[0],
        "messaging_service_sid": form.get("MessagingServiceSid", [None])[0],
        "num_segments": "1",
        "price": None,
        "sid": sid,
        "status": "queued",
        "to": form.get("To", [""])[0],
        "uri": f"/2010-04-01/Accounts/{account}/Messages/{sid}.json",
    }


class TlsTwilio:
    """The server; a context manager that starts it and stops it.

    ``connections`` counts accepted TCP connections, ``requests`` answered
    requests; ``url`` is ``https://127.0.0.1:PORT`` and ``cert`` the
    certificate to trust.
    """

    def __init__(
        self,
        directory: Path,
        *,
        latency: float = 0.0,
        gather: int | None = None,
        gather_timeout: float = 10.0,
    ) -> None:
        self.cert, key = self_signed_cert(directory)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, key)
        self.latency = latency
        self.gather_timeout = gather_timeout
        self._barrier = threading.Barrier(gather) if gather else None
        self._lock = threading.Lock()
        self._connections = 0
        self._requests = 0
        self._open: set[ssl.SSLSocket] = set()
        self._last: Received | None = None
        self._server = _Server(self, context)
        self.url = f"https://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="tls-twilio", daemon=True
        )

    def __enter__(self) -> TlsTwilio:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        """Stop serving and close the listening socket."""
        if self._barrier is not None:
            self._barrier.abort()  # release any request still waiting
        if self._thread.is_alive():
            self._server.shutdown()
        self._server.server_close()
        with self._lock:
            still_open = list(self._open)
        for sock in still_open:  # wakes the handler blocked reading it: it ends and closes it
            with suppress(OSError):
                sock.shutdown(SHUT_RDWR)

    @property
    def connections(self) -> int:
        """TCP connections accepted so far."""
        with self._lock:
            return self._connections

    @property
    def requests(self) -> int:
        """Requests received so far."""
        with self._lock:
            return self._requests

    def count_connection(self) -> None:
        """Called by the server for each accepted connection."""
        with self._lock:
            self._connections += 1

    def track(self, sock: ssl.SSLSocket) -> None:
        """Called by the handler for each connection, once TLS is up."""
        with self._lock:
            self._open.add(sock)

    def untrack(self, sock: ssl.SSLSocket) -> None:
        """Called by the handler when its connection ends."""
        with self._lock:
            self._open.discard(sock)

    def count_request(self, received: Received | None = None) -> None:
        """Called by the handler for each request."""
        with self._lock:
            self._requests += 1
            self._last = received

    @property
    def last_request(self) -> Received | None:
        """The last request received (the one before it is forgotten)."""
        with self._lock:
            return self._last

    def wait_turn(self) -> None:
        """Wait for the gathered requests (when ``gather``), then ``latency`` seconds."""
        if self._barrier is not None:
            # Past the timeout (or after close) it answers anyway; the counts will show it.
            with suppress(threading.BrokenBarrierError):
                self._barrier.wait(self.gather_timeout)
        if self.latency:
            time.sleep(self.latency)


class Target(Protocol):
    """Where `redirected_twilio` sends twilio's requests: a `TlsTwilio`, or one in a process."""

    @property
    def url(self) -> str:
        """``https://127.0.0.1:PORT``."""

    @property
    def cert(self) -> Path:
        """The certificate to trust."""


@contextmanager
def redirected_twilio(server: Target) -> Iterator[None]:
    """Send every twilio HTTP client's ``https://api.twilio.com`` requests to ``server``.

    Both ``TwilioHttpClient`` (sync) and ``AiohttpTwilioClient`` (async) are
    patched. The client's own session and pool do the HTTP (only the URL is
    rewritten, and the client told to trust the server's certificate and to
    ignore the environment's proxies and CA bundle).
    """
    original = TwilioHttpClient.request
    original_async = AiohttpTwilioClient.request
    context = client_context(server.cert)

    def request(self: TwilioHttpClient, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if url.startswith(TWILIO_API):
            url = server.url + url[len(TWILIO_API) :]
        if self.session is not None:
            self.session.trust_env = False  # or REQUESTS_CA_BUNDLE would override verify
            self.session.verify = str(server.cert)
        return original(self, method, url, *args, **kwargs)

    async def request_async(
        self: AiohttpTwilioClient, method: str, url: str, *args: Any, **kwargs: Any
    ) -> Any:
        if url.startswith(TWILIO_API):
            url = server.url + url[len(TWILIO_API) :]
        self.ssl = context
        self.trust_env = False  # read when its session opens, on the first request
        return await original_async(self, method, url, *args, **kwargs)

    with (
        mock.patch.object(TwilioHttpClient, "request", request),
        mock.patch.object(AiohttpTwilioClient, "request", request_async),
    ):
        yield
