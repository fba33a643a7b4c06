"""Tests for the async HTTP seam: AsyncRetryingHttpClient, AiohttpTwilioClient, the shared rules.

The fault matrix runs over both seams (the sync `RetryingHttpClient` over
`FakeTwilio`, the async `AsyncRetryingHttpClient` over ``FakeTwilio().aio``):
one set of rules, so one set of answers. The rest drives the async client's
own aiohttp session against a real local HTTPS server (`tls_twilio.TlsTwilio`)
and a closed port, and twilio's REST client through it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import ssl
import sys
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import requests
from aiohttp.client_reqrep import ConnectionKey
from tls_twilio import TWILIO_API, TlsTwilio, client_context, redirected_twilio
from twilio.base.exceptions import TwilioRestException
from twilio.http import AsyncHttpClient
from twilio.http.async_http_client import AsyncTwilioHttpClient
from twilio.http.response import Response
from twilio.rest import Client
from yarl import URL

from servio_twilio.domain.errors import RateLimited, TwilioAPIError
from servio_twilio.sending.aiohttp_client import AiohttpTwilioClient
from servio_twilio.sending.async_transport import AsyncRetryingHttpClient
from servio_twilio.sending.http_rules import DEFAULT_POOL_SIZE, RetryPolicy
from servio_twilio.sending.transport import NoAnswer, RetryingHttpClient
from servio_twilio.testing import FakeTwilio, Fault
from support.processes import free_port
from support.sending import ACCOUNT

MESSAGES_PATH = f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
URL_MESSAGES = TWILIO_API + MESSAGES_PATH
FORM = {"To": "+5511999999999", "From": "+15005550006", "Body": "oi"}
AUTH = (ACCOUNT, "token")


# --- the two seams ------------------------------------------------------------------------


class Seam:
    """One of the two wrappers over FakeTwilio, driven the same way from a sync test."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.sleeps: list[float] = []

    def __repr__(self) -> str:
        return self.name

    def wrap(self, fake: FakeTwilio, **options: Any) -> Any:
        options.setdefault("jitter", lambda: 1.0)
        if self.name == "sync":
            return RetryingHttpClient(fake, sleep=self.sleeps.append, **options)

        async def sleep(seconds: float) -> None:
            self.sleeps.append(seconds)

        return AsyncRetryingHttpClient(fake.aio, sleep=sleep, **options)

    def send(self, client: Any, method: str = "POST", **kwargs: Any) -> Any:
        kwargs.setdefault("data", FORM)
        kwargs.setdefault("auth", AUTH)
        if self.name == "sync":
            return client.request(method, URL_MESSAGES, **kwargs)
        return asyncio.run(client.request(method, URL_MESSAGES, **kwargs))


@pytest.fixture(params=["sync", "async"])
def seam(request: pytest.FixtureRequest) -> Seam:
    """Each test runs over the sync seam and over the async one."""
    return Seam(request.param)


class TestFaultMatrixOverBothSeams:
    def test_429_is_retried_then_answered(self, seam: Seam) -> None:
        """429s are retried with the backoff; the answer after them is returned."""
        fake = FakeTwilio()
        fake.fail_next(2, Fault.rate_limited(retry_after=None))
        response = seam.send(seam.wrap(fake))
        assert response.status_code == 201
        assert len(fake.requests) == 3
        assert seam.sleeps == [0.5, 1.0]

    def test_429_past_the_retries_is_rate_limited(self, seam: Seam) -> None:
        """After max_retries retries the last 429 raises RateLimited with Twilio's details."""
        fake = FakeTwilio()
        fake.fail_next(5, Fault.rate_limited(retry_after=2))
        with pytest.raises(RateLimited) as info:
            seam.send(seam.wrap(fake, max_retries=2))
        assert (info.value.status, info.value.code, info.value.retry_after) == (429, 20429, 2.0)
        assert len(fake.requests) == 3
        assert seam.sleeps == [2.0, 2.0]

    def test_retry_after_is_honoured(self, seam: Seam) -> None:
        """A Retry-After longer than the backoff is waited for."""
        fake = FakeTwilio()
        fake.fail_next(1, Fault.rate_limited(retry_after=7))
        assert seam.send(seam.wrap(fake, jitter=lambda: 0.0)).status_code == 201
        assert seam.sleeps == [7.0]

    def test_retry_after_over_the_cap_raises_at_once(self, seam: Seam) -> None:
        """A Retry-After over max_retry_after is not waited for: RateLimited, no retry."""
        fake = FakeTwilio()
        fake.fail_next(1, Fault.rate_limited(retry_after=3600))
        with pytest.raises(RateLimited) as info:
            seam.send(seam.wrap(fake))
        assert info.value.retry_after == 3600.0
        assert len(fake.requests) == 1
        assert seam.sleeps == []

    def test_body_code_20429_is_rate_limiting(self, seam: Seam) -> None:
        """An error answer whose body has code 20429 is retried like a 429."""
        fake = FakeTwilio()
        fake.fail_next(1, Fault.error(code=20429, status=400))
        assert seam.send(seam.wrap(fake)).status_code == 201
        assert len(fake.requests) == 2
        assert len(seam.sleeps) == 1

    def test_connect_failure_is_retried(self, seam: Seam) -> None:
        """A refused connection sent nothing: retried, then the answer is returned."""
        fake = FakeTwilio()
        fake.fail_next(2, Fault.connect_error())
        assert seam.send(seam.wrap(fake)).status_code == 201
        assert fake.connect_failures == 2
        assert len(fake.requests) == 1
        assert seam.sleeps == [0.5, 1.0]

    def test_connect_failures_past_the_retries(self, seam: Seam) -> None:
        """Refused past the budget: a retryable TwilioAPIError (status 0), not NoAnswer."""
        fake = FakeTwilio()
        fake.fail_next(3, Fault.connect_error())
        with pytest.raises(TwilioAPIError) as info:
            seam.send(seam.wrap(fake, max_retries=2))
        assert type(info.value) is TwilioAPIError
        assert (info.value.status, info.value.retryable) == (0, True)
        assert "after 3 attempts" in str(info.value)
        assert fake.connect_failures == 3

    def test_read_timeout_is_no_answer_never_retried(self, seam: Seam) -> None:
        """A read timeout may have reached Twilio: NoAnswer at once, one request."""
        fake = FakeTwilio()
        fake.fail_next(1, Fault.read_timeout())
        with pytest.raises(NoAnswer) as info:
            seam.send(seam.wrap(fake))
        assert info.value.status == 0
        assert len(fake.requests) == 1
        assert seam.sleeps == []

    @pytest.mark.parametrize("status", [500, 502, 503])
    def test_5xx_on_post_is_never_retried(self, seam: Seam, status: int) -> None:
        """A 5xx answer to a POST goes back as it is: Twilio may have sent the message."""
        fake = FakeTwilio()
        fake.fail_next(1, Fault.server_error(status=status))
        assert seam.send(seam.wrap(fake)).status_code == status
        assert len(fake.requests) == 1
        assert seam.sleeps == []

    def test_the_timeout_reaches_the_inner_client(self, seam: Seam) -> None:
        """The wrapper's timeout is passed on every request; a request's own is kept."""
        fake = FakeTwilio()
        client = seam.wrap(fake, timeout=4.5)
        seam.send(client)
        seam.send(client, timeout=1.0)
        assert [r.timeout for r in fake.requests] == [4.5, 1.0]
        assert {r.is_async for r in fake.requests} == {seam.name == "async"}


# --- the async wrapper alone --------------------------------------------------------------


class _Scripted(AsyncHttpClient):  # type: ignore[misc]
    """An async inner client answering from a script: responses, or exceptions to raise."""

    def __init__(self, *steps: Response | BaseException) -> None:
        super().__init__(logging.getLogger("test"), True, None)
        self.steps = list(steps)
        self.calls: list[dict[str, Any]] = []
        self.closed = 0

    async def request(self, method: str, url: str, **kwargs: Any) -> Response:
        self.calls.append({"method": method, "url": url, **kwargs})
        step = self.steps.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step

    async def aclose(self) -> None:
        self.closed += 1


def _ok() -> Response:
    return Response(201, json.dumps({"sid": "SM" + "1" * 32}), {})


def _key() -> ConnectionKey:
    return ConnectionKey(
        host="api.twilio.com",
        port=443,
        is_ssl=True,
        ssl=True,
        proxy=None,
        proxy_auth=None,
        proxy_headers_hash=None,
    )


def _request_info() -> aiohttp.RequestInfo:
    url = URL("https://api.twilio.com/")
    return aiohttp.RequestInfo(url, "POST", {}, url)  # type: ignore[arg-type]


def _wrapper(inner: AsyncHttpClient, **options: Any) -> tuple[AsyncRetryingHttpClient, list[float]]:
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    options.setdefault("jitter", lambda: 1.0)
    return AsyncRetryingHttpClient(inner, sleep=sleep, **options), sleeps


CONNECT_FAILURES: dict[str, Callable[[], BaseException]] = {
    "refused": lambda: aiohttp.ClientConnectorError(_key(), ConnectionRefusedError(111, "no")),
    "dns": lambda: aiohttp.ClientConnectorDNSError(_key(), OSError(-2, "Name not known")),
    "proxy": lambda: aiohttp.ClientProxyConnectionError(_key(), OSError(111, "proxy down")),
    "proxy-refused": lambda: aiohttp.ClientHttpProxyError(_request_info(), (), status=407),
    "connect-timeout": lambda: aiohttp.ConnectionTimeoutError("Connection timeout to host"),
    "custom-refused": lambda: RuntimeError("wrapped", ConnectionRefusedError(111, "refused")),
}
NEVER_SENT: dict[str, Callable[[], BaseException]] = {
    "certificate": lambda: aiohttp.ClientConnectorCertificateError(
        _key(), ssl.SSLCertVerificationError("certificate verify failed")
    ),
    "tls": lambda: aiohttp.ClientConnectorSSLError(_key(), ssl.SSLError("handshake failed")),
    "fingerprint": lambda: aiohttp.ServerFingerprintMismatch(b"a", b"b", "api.twilio.com", 443),
    "invalid-url": lambda: aiohttp.InvalidURL("ht!tp://nope"),
}
NO_ANSWER: dict[str, Callable[[], BaseException]] = {
    "socket-timeout": lambda: aiohttp.SocketTimeoutError("Timeout on reading data from socket"),
    "server-timeout": lambda: aiohttp.ServerTimeoutError("timed out"),
    "total-timeout": asyncio.TimeoutError,
    "disconnected": aiohttp.ServerDisconnectedError,
    "payload": lambda: aiohttp.ClientPayloadError("Response payload is not completed"),
    "reset": lambda: aiohttp.ClientOSError(104, "Connection reset by peer"),
    "custom": lambda: RuntimeError("a custom client's own failure"),
}


def _ids(table: dict[str, Callable[[], BaseException]]) -> Any:
    return pytest.mark.parametrize("failure", list(table.values()), ids=list(table))


@pytest.mark.anyio
class TestAsyncRetryingHttpClient:
    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @_ids(CONNECT_FAILURES)
    async def test_connect_failures_are_retried(self, failure: Callable[[], BaseException]) -> None:
        """aiohttp's failures to connect sent nothing: retried with the backoff."""
        inner = _Scripted(failure(), failure(), _ok())
        client, sleeps = _wrapper(inner)
        assert (await client.request("POST", URL_MESSAGES)).status_code == 201
        assert sleeps == [0.5, 1.0]
        assert len(inner.calls) == 3

    @_ids(NEVER_SENT)
    async def test_never_sent_failures_are_not_retried(
        self, failure: Callable[[], BaseException]
    ) -> None:
        """TLS and URL failures happen before sending: TwilioAPIError, not NoAnswer, once."""
        inner = _Scripted(failure(), _ok())
        client, sleeps = _wrapper(inner)
        with pytest.raises(TwilioAPIError) as info:
            await client.request("POST", URL_MESSAGES)
        assert not isinstance(info.value, NoAnswer)
        assert info.value.retryable is False
        assert sleeps == []
        assert len(inner.calls) == 1

    @_ids(NO_ANSWER)
    async def test_may_have_reached_twilio_is_never_retried(
        self, failure: Callable[[], BaseException]
    ) -> None:
        """Timeouts after sending, a dropped connection, a cut answer: NoAnswer, no retry."""
        exc = failure()
        inner = _Scripted(exc, _ok())
        client, sleeps = _wrapper(inner)
        with pytest.raises(NoAnswer) as info:
            await client.request("POST", URL_MESSAGES)
        assert info.value.__cause__ is exc
        assert sleeps == []
        assert len(inner.calls) == 1

    async def test_our_own_errors_pass_through(self) -> None:
        """An error of ours raised by the inner client is not re-wrapped."""
        inner = _Scripted(RateLimited("inner", retry_after=1.0))
        client, _ = _wrapper(inner)
        with pytest.raises(RateLimited, match="inner"):
            await client.request("GET", URL_MESSAGES)

    async def test_arguments_reach_the_inner_client(self) -> None:
        """method, URL, params, data, headers, auth and allow_redirects go through unchanged."""
        inner = _Scripted(_ok())
        client, _ = _wrapper(inner, timeout=3.0)
        await client.request(
            "GET", URL_MESSAGES, params={"PageSize": 2}, headers={"X": "1"}, auth=AUTH
        )
        assert inner.calls == [
            {
                "method": "GET",
                "url": URL_MESSAGES,
                "params": {"PageSize": 2},
                "data": None,
                "headers": {"X": "1"},
                "auth": AUTH,
                "timeout": 3.0,
                "allow_redirects": False,
            }
        ]

    async def test_aclose_closes_the_inner_client(self) -> None:
        """aclose() and ``async with`` close the inner client, a given one included."""
        inner = _Scripted(_ok())
        async with AsyncRetryingHttpClient(inner) as client:
            await client.request("GET", URL_MESSAGES)
        assert inner.closed == 1
        await AsyncRetryingHttpClient(FakeTwilio().aio).aclose()  # a no-op there

    async def test_closes_an_inner_client_that_has_close(self) -> None:
        """An inner client with only twilio's ``close()`` coroutine is closed with it."""
        inner = AsyncTwilioHttpClient()
        await AsyncRetryingHttpClient(inner).aclose()
        assert inner.session.closed


class TestAsyncRetryingHttpClientSettings:
    @pytest.mark.parametrize(
        "kwargs",
        [
            {"timeout": 0},
            {"timeout": float("nan")},
            {"max_retries": -1},
            {"max_retries": 1.5},
            {"max_retries": True},
            {"backoff_base": 0},
            {"backoff_cap": -1},
            {"max_retry_after": float("inf")},
        ],
    )
    def test_bad_settings_raise_value_error(self, kwargs: dict[str, Any]) -> None:
        """Nonsense timeouts and retry budgets are refused, as by the sync client."""
        with pytest.raises(ValueError, match="must be"):
            AsyncRetryingHttpClient(FakeTwilio().aio, **kwargs)
        with pytest.raises(ValueError, match="must be"):
            RetryingHttpClient(FakeTwilio(), **kwargs)

    def test_inner_must_be_an_async_twilio_client(self) -> None:
        """A sync client or anything but a twilio HttpClient is refused with TypeError."""
        with pytest.raises(TypeError, match="asynchronous"):
            AsyncRetryingHttpClient(FakeTwilio())
        with pytest.raises(TypeError, match=r"twilio\.http\.AsyncHttpClient"):
            AsyncRetryingHttpClient(aiohttp.ClientTimeout())
        with pytest.raises(TypeError, match="synchronous"):
            RetryingHttpClient(FakeTwilio().aio)

    def test_defaults_to_our_aiohttp_client(self) -> None:
        """Without an inner client it builds an AiohttpTwilioClient with its timeout, no session."""
        client = AsyncRetryingHttpClient(timeout=3.0)
        assert isinstance(client.inner, AiohttpTwilioClient)
        assert not isinstance(client.inner, AsyncTwilioHttpClient)
        assert client.inner.timeout == 3.0
        assert client.inner.pool_size == DEFAULT_POOL_SIZE == 100
        assert "idle" in repr(client.inner)
        assert client.is_async is True
        assert client.max_retries == 3

    def test_ensure_pool_grows_the_default_client_only(self) -> None:
        """ensure_pool grows the default pool (never shrinks it); a given client is left alone."""
        client = AsyncRetryingHttpClient()
        assert client.ensure_pool(10) == DEFAULT_POOL_SIZE
        assert client.ensure_pool(250) == 250
        assert client.ensure_pool(120) == 250
        assert AsyncRetryingHttpClient(FakeTwilio().aio).ensure_pool(500) is None
        with pytest.raises(ValueError, match="size must be"):
            client.ensure_pool(0)

    def test_both_clients_share_one_policy_type(self) -> None:
        """The sync and async wrappers decide through the same RetryPolicy."""
        sync = RetryingHttpClient(FakeTwilio(), max_retries=5, backoff_cap=2.0)
        aio = AsyncRetryingHttpClient(FakeTwilio().aio, max_retries=5, backoff_cap=2.0)
        assert isinstance(sync.policy, RetryPolicy)
        assert sync.policy == aio.policy


# --- a real HTTPS server ------------------------------------------------------------------


@contextmanager
def unclosed_resources() -> Iterator[list[str]]:
    """Warnings as errors; collects what is reported unclosed (warnings in __del__, asyncio)."""
    found: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            found.append(record.getMessage())

    def hook(unraisable: Any) -> None:
        found.append(f"{type(unraisable.exc_value).__name__}: {unraisable.exc_value}")

    handler, previous = Collect(logging.DEBUG), sys.unraisablehook
    asyncio_log = logging.getLogger("asyncio")
    asyncio_log.addHandler(handler)
    sys.unraisablehook = hook
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            yield found
            gc.collect()
    finally:
        sys.unraisablehook = previous
        asyncio_log.removeHandler(handler)


@pytest.fixture
def server(tmp_path: Path) -> Iterator[TlsTwilio]:
    """The HTTPS server answering at once, twilio's clients sent to it."""
    with TlsTwilio(tmp_path) as tls, redirected_twilio(tls):
        yield tls


@pytest.fixture
def server_100(tmp_path: Path) -> Iterator[TlsTwilio]:
    """The HTTPS server answering in rounds of 100 requests (all 100 connections held)."""
    with TlsTwilio(tmp_path, gather=100) as tls, redirected_twilio(tls):
        yield tls


async def _post(http: Any) -> int:
    response = await http.request("POST", URL_MESSAGES, data=FORM, auth=AUTH)
    return int(response.status_code)


@pytest.mark.server
class TestOverHttps:
    def test_100_concurrent_requests_reuse_their_connections(self, server_100: TlsTwilio) -> None:
        """100 requests at once open 100 connections; a second round opens none."""

        async def main() -> None:
            async with AsyncRetryingHttpClient(timeout=30) as http:
                for _round in range(2):
                    statuses = await asyncio.gather(*(_post(http) for _ in range(100)))
                    assert set(statuses) == {201}
                    assert server_100.connections == 100

        asyncio.run(main())
        assert server_100.requests == 200

    def test_ensure_pool_keeps_more_connections(self, tmp_path: Path) -> None:
        """ensure_pool(150) keeps 150 concurrent connections, all reused in a second round."""
        with TlsTwilio(tmp_path, gather=150) as tls, redirected_twilio(tls):

            async def main() -> None:
                async with AsyncRetryingHttpClient(timeout=30) as http:
                    assert http.ensure_pool(150) == 150
                    for _round in range(2):
                        statuses = await asyncio.gather(*(_post(http) for _ in range(150)))
                        assert set(statuses) == {201}
                    assert tls.connections == 150

            asyncio.run(main())
            assert tls.requests == 300

    def test_a_slow_answer_ends_at_the_timeout_as_no_answer(self, tmp_path: Path) -> None:
        """An answer slower than timeout: the read times out, NoAnswer, sent once only."""
        with TlsTwilio(tmp_path, latency=2.0) as slow, redirected_twilio(slow):

            async def main() -> None:
                async with AsyncRetryingHttpClient(timeout=0.2, sleep=_no_sleep) as http:
                    with pytest.raises(NoAnswer) as info:
                        await _post(http)
                assert isinstance(info.value.__cause__, aiohttp.ServerTimeoutError)
                assert not isinstance(info.value.__cause__, aiohttp.ConnectionTimeoutError)

            asyncio.run(main())
            assert slow.requests == 1

    def test_a_closed_port_is_retried_then_fails(self) -> None:
        """Nothing listens: each attempt fails to connect; max_retries retries, then the error."""
        attempts: list[str] = []

        class Counting(AiohttpTwilioClient):
            async def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
                attempts.append(url)
                return await super().request(method, url, *args, **kwargs)

        sleeps: list[float] = []

        async def sleep(seconds: float) -> None:
            sleeps.append(seconds)

        async def main() -> None:
            http = AsyncRetryingHttpClient(Counting(timeout=5), max_retries=3, sleep=sleep)
            try:
                with pytest.raises(TwilioAPIError) as info:
                    await http.request("POST", f"http://127.0.0.1:{free_port()}/x", data=FORM)
            finally:
                await http.aclose()
            assert type(info.value) is TwilioAPIError
            assert info.value.retryable is True
            assert isinstance(info.value.__cause__, aiohttp.ClientConnectorError)

        asyncio.run(main())
        assert len(attempts) == 4
        assert len(sleeps) == 3

    def test_an_untrusted_certificate_is_never_sent(self, tmp_path: Path) -> None:
        """The server's self-signed certificate, not trusted: a TLS error, no retry, no request."""
        with TlsTwilio(tmp_path) as tls:

            async def main() -> None:
                async with AsyncRetryingHttpClient(
                    AiohttpTwilioClient(trust_env=False), sleep=_no_sleep
                ) as http:
                    with pytest.raises(TwilioAPIError) as info:
                        await http.request("GET", f"{tls.url}/2010-04-01/Accounts/{ACCOUNT}.json")
                assert not isinstance(info.value, NoAnswer)
                assert isinstance(info.value.__cause__, aiohttp.ClientConnectorCertificateError)

            asyncio.run(main())
            assert tls.requests == 0

    def test_aclose_leaves_nothing_unclosed(self, server: TlsTwilio) -> None:
        """Requests, a grown pool (a second session), aclose: no unclosed warning at all."""

        async def main() -> None:
            http = AsyncRetryingHttpClient(timeout=30)
            assert await _post(http) == 201
            http.ensure_pool(150)  # the next request opens a bigger session, closes the first
            assert set(await asyncio.gather(*(_post(http) for _ in range(5)))) == {201}
            await http.aclose()
            assert await _post(http) == 201  # a closed client opens a new session...
            await http.aclose()  # ...closed again

        with unclosed_resources() as found:
            asyncio.run(main())
        assert found == []
        assert server.connections >= 3  # three sessions: 1, then the bigger one, then the new one

    def test_the_detector_sees_an_unclosed_session(self) -> None:
        """The check above is not blind: a twilio async client never closed is reported.

        twilio's AsyncTwilioHttpClient opens its session at construction (its
        issue 866); nothing closes it here.
        """

        async def main() -> None:
            AsyncTwilioHttpClient()

        with unclosed_resources() as found:
            asyncio.run(main())
        assert any("Unclosed client session" in item for item in found), found

    def test_the_session_belongs_to_its_loop(self, server: TlsTwilio) -> None:
        """Used from a second loop with its session open: refused, nothing sent."""
        http = AsyncRetryingHttpClient(timeout=30)
        assert asyncio.run(_post(http)) == 201
        with pytest.raises(TwilioAPIError, match="another event loop"):
            asyncio.run(_post(http))
        assert server.requests == 1

        async def close() -> None:
            await http.inner.aclose()  # the first loop is gone; close what can be closed

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ResourceWarning)
            asyncio.run(close())


async def _no_sleep(seconds: float) -> None:
    return None


# --- twilio's REST client over the async seam ---------------------------------------------


@pytest.mark.anyio
class TestTwilioRestClient:
    @pytest.fixture
    def anyio_backend(self) -> str:
        return "asyncio"

    @pytest.mark.server
    async def test_create_async_over_https(self, server: TlsTwilio) -> None:
        """twilio.rest.Client with our wrapper sends messages_async to the HTTPS server."""
        async with AsyncRetryingHttpClient(timeout=30) as http:
            client = Client(ACCOUNT, "token", http_client=http)
            message = await client.messages.create_async(
                to="+5511999999999", from_="+15005550006", body="Confirmado"
            )
            account = await client.api.v2010.accounts(ACCOUNT).fetch_async()
        assert message.sid.startswith("SM")
        assert (message.to, message.body) == ("+5511999999999", "Confirmado")
        assert account.status == "active"
        assert server.requests == 2

    async def test_create_async_over_fake_twilio(self) -> None:
        """twilio.rest.Client over FakeTwilio.aio: messages, calls, the account, twilio errors."""
        fake = FakeTwilio()
        async with AsyncRetryingHttpClient(fake.aio) as http:
            client = Client(ACCOUNT, "token", http_client=http)
            message = await client.messages.create_async(
                to="whatsapp:+5511999999999",
                from_="whatsapp:+14155238886",
                media_url=["https://cdn.test/a.png", "https://cdn.test/b.png"],
            )
            call = await client.calls.create_async(
                to="+5511999999999", from_="+15005550006", twiml="<Response/>"
            )
            account = await client.api.v2010.accounts(ACCOUNT).fetch_async()
            with pytest.raises(TwilioRestException) as info:
                await client.messages.create_async(to="bad", from_="+15005550006", body="x")
        assert message.sid.startswith("SM")
        assert call.sid.startswith("CA")
        assert account.status == "active"
        assert info.value.code == 21211
        assert fake.requests[0].data["MediaUrl"] == [
            "https://cdn.test/a.png",
            "https://cdn.test/b.png",
        ]
        assert all(r.is_async for r in fake.requests)

    async def test_rate_limited_reaches_the_caller_as_ours(self) -> None:
        """A 429 past the retries leaves twilio's create_async as our RateLimited."""
        fake = FakeTwilio()
        fake.fail_next(3, Fault.rate_limited(retry_after=1))
        http, sleeps = _wrapper(fake.aio, max_retries=2)
        client = Client(ACCOUNT, "token", http_client=http)
        with pytest.raises(RateLimited):
            await client.messages.create_async(to="+5511999999999", from_="+1500", body="x")
        assert sleeps == [1.0, 1.0]


# --- our aiohttp client's encoding --------------------------------------------------------


@pytest.mark.server
class TestAiohttpTwilioClient:
    def test_the_request_is_encoded_like_requests_does(self, tmp_path: Path) -> None:
        """A list is a repeated key, None is left out, Basic auth as requests encodes it."""
        with TlsTwilio(tmp_path) as tls:

            async def main() -> Response:
                async with AiohttpTwilioClient(ssl=client_context(tls.cert), trust_env=False) as h:
                    return await h.request(
                        "POST",
                        tls.url + MESSAGES_PATH,
                        params={"Page": [1, 2], "Skip": None},
                        data={"To": "+5511999999999", "Body": "a b&c", "MediaUrl": ["x", "y"]},
                        auth=AUTH,
                    )

            response = asyncio.run(main())
            received = tls.last_request
        assert received is not None
        assert received.path == MESSAGES_PATH + "?Page=1&Page=2"
        assert received.body == b"To=%2B5511999999999&Body=a+b%26c&MediaUrl=x&MediaUrl=y"
        assert received.headers["Content-Type"] == "application/x-www-form-urlencoded"
        expected = requests.Request("GET", "https://x", auth=AUTH).prepare().headers
        assert received.headers["Authorization"] == expected["Authorization"]
        assert response.status_code == 201
        assert response.headers["content-type"] == "application/json"
        assert json.loads(response.text)["body"] == "a b&c"

    def test_json_bodies_are_sent_as_json(self, tmp_path: Path) -> None:
        """With a JSON Content-Type the data goes as JSON, as twilio's sync client sends it."""
        with TlsTwilio(tmp_path) as tls:

            async def main() -> int:
                async with AiohttpTwilioClient(ssl=client_context(tls.cert), trust_env=False) as h:
                    answer = await h.request(
                        "POST",
                        tls.url + "/v1/Things",
                        data={"a": [1, 2]},
                        headers={"Content-Type": "application/json"},
                    )
                    return int(answer.status_code)

            assert asyncio.run(main()) == 404
            received = tls.last_request
        assert received is not None
        assert json.loads(received.body) == {"a": [1, 2]}

    def test_bad_arguments(self) -> None:
        """A non-positive timeout or pool size is refused with ValueError."""
        with pytest.raises(ValueError, match="timeout"):
            AiohttpTwilioClient(timeout=0)
        with pytest.raises(ValueError, match="size"):
            AiohttpTwilioClient(pool_size=0)
