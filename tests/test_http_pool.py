"""The sync client's HTTP pool, over twilio's real HTTP client and a local HTTPS server.

`FakeTwilio` bypasses urllib3, so these tests run twilio's ``TwilioHttpClient``
(the one the client builds by default) against `support.tls_twilio.TlsTwilio`,
which counts the TCP connections it accepts. The server answers only once
every request of a round is in (``gather``), so a batch at concurrency ``n``
holds ``n`` connections at once: the counts below do not depend on timing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from tls_twilio import TWILIO_API, TlsTwilio, redirected_twilio
from twilio.http.http_client import TwilioHttpClient

from servio_twilio.sending.client import CommunicationsClient
from servio_twilio.sending.results import OutboundMessage
from servio_twilio.sending.transport import DEFAULT_POOL_SIZE, RetryingHttpClient
from support.sending import ACCOUNT, make_settings

pytestmark = pytest.mark.server

POOL_FULL = "Connection pool is full"
LATENCY = 0.02
MESSAGES = f"{TWILIO_API}/2010-04-01/Accounts/{ACCOUNT}/Messages.json"


def _server(tmp_path: Path, gather: int) -> Iterator[TlsTwilio]:
    with TlsTwilio(tmp_path, latency=LATENCY, gather=gather) as server, redirected_twilio(server):
        yield server


@pytest.fixture
def server_100(tmp_path: Path) -> Iterator[TlsTwilio]:
    """The HTTPS server, answering in rounds of 100 requests; twilio's client sent to it."""
    yield from _server(tmp_path, 100)


@pytest.fixture
def server_150(tmp_path: Path) -> Iterator[TlsTwilio]:
    """The HTTPS server, answering in rounds of 150 requests; twilio's client sent to it."""
    yield from _server(tmp_path, 150)


def _messages(n: int) -> list[OutboundMessage]:
    return [OutboundMessage(to=f"+5511990{i:06d}", body=f"Visita #{i}") for i in range(n)]


def _batch(client: CommunicationsClient) -> None:
    report = client.send_batch(_messages(100), max_concurrency=100)
    assert report.succeeded == 100, [item.error for item in report.items if not item.ok]


class TestBatchPool:
    def test_batch_at_100_keeps_every_connection(
        self, server_100: TlsTwilio, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A batch at concurrency 100 discards no connection; the second one opens none."""
        client = CommunicationsClient(make_settings())  # the default HTTP client
        with caplog.at_level(logging.WARNING, logger="urllib3"):
            _batch(client)
            assert server_100.connections == 100
            _batch(client)
        assert server_100.requests == 200
        assert server_100.connections == 100  # keep-alive: the first batch's connections
        assert POOL_FULL not in caplog.text

    def test_a_given_twilio_client_keeps_its_own_pool(
        self, server_100: TlsTwilio, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A TwilioHttpClient passed in is left alone: its small pool discards and reconnects.

        This is version 0.1's behaviour, and shows the server and the log catch it.
        """
        twilio_pool = min(32, (os.cpu_count() or 1) + 4)  # twilio 9's own pool_maxsize
        assert twilio_pool < 100
        client = CommunicationsClient(make_settings(), http_client=TwilioHttpClient(timeout=30))
        with caplog.at_level(logging.WARNING, logger="urllib3"):
            _batch(client)
            _batch(client)
        assert server_100.connections == 100 + (100 - twilio_pool)
        assert POOL_FULL in caplog.text


class TestEnsurePool:
    @pytest.mark.parametrize("grown", [True, False], ids=["ensure_pool-150", "default-pool"])
    def test_150_at_once(
        self, grown: bool, server_150: TlsTwilio, caplog: pytest.LogCaptureFixture
    ) -> None:
        """ensure_pool(150) keeps 150 concurrent connections; the default 100 would not."""
        http = RetryingHttpClient(timeout=30)
        if grown:
            assert http.ensure_pool(150) == 150

        def send(i: int) -> int:
            response = http.request(
                "POST",
                MESSAGES,
                data={"To": f"+5511990{i:06d}", "From": "+15005550006", "Body": "oi"},
                auth=(ACCOUNT, "token"),
            )
            return int(response.status_code)

        with caplog.at_level(logging.WARNING, logger="urllib3"):
            for _round in range(2):
                with ThreadPoolExecutor(max_workers=150) as pool:
                    assert set(pool.map(send, range(150))) == {201}
        assert server_150.requests == 300
        if grown:
            assert server_150.connections == 150
            assert POOL_FULL not in caplog.text
        else:
            assert server_150.connections == 150 + (150 - DEFAULT_POOL_SIZE)
            assert POOL_FULL in caplog.text
