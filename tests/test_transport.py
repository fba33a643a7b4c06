"""Tests for servio_twilio.sending.transport: the retrying wrapper and twilio error translation."""

from __future__ import annotations

import http.client
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import pytest
import requests
import responses
from twilio.base.exceptions import TwilioException, TwilioRestException, TwilioServiceException
from twilio.http import HttpClient
from twilio.http.response import Response
from urllib3.exceptions import MaxRetryError, NewConnectionError, ProtocolError

from servio_twilio.domain.errors import RateLimited, ServioTwilioError, TwilioAPIError
from servio_twilio.sending.http_rules import RetryPolicy, caused_by
from servio_twilio.sending.transport import (
    DEFAULT_POOL_SIZE,
    NoAnswer,
    RetryingHttpClient,
    translate_twilio_error,
)
from servio_twilio.testing import FakeTwilio

URL = "https://api.twilio.com/2010-04-01/Accounts/AC" + "a" * 32 + "/Messages.json"


def _error(status: int, code: int, headers: dict[str, str] | None = None) -> Response:
    body = {"code": code, "message": "nope", "more_info": f"https://x/{code}", "status": status}
    return Response(status, json.dumps(body), headers or {})


def _ok() -> Response:
    return Response(201, json.dumps({"sid": "SM" + "1" * 32}), {})


def _refused() -> requests.exceptions.ConnectionError:
    reason = NewConnectionError(None, "Failed to establish a new connection")  # type: ignore[arg-type]
    return requests.exceptions.ConnectionError(MaxRetryError(None, URL, reason))  # type: ignore[arg-type]


def _aborted() -> requests.exceptions.ConnectionError:
    cause = http.client.RemoteDisconnected("Remote end closed connection without response")
    return requests.exceptions.ConnectionError(ProtocolError("Connection aborted.", cause))


class _Scripted(HttpClient):  # type: ignore[misc]
    """An inner client answering from a script: responses, or exceptions to raise."""

    def __init__(self, *steps: Response | BaseException) -> None:
        super().__init__(logging.getLogger("test"), False, None)
        self.steps = list(steps)
        self.calls: list[dict[str, Any]] = []

    def request(self, method: str, url: str, **kwargs: Any) -> Response:
        self.calls.append({"method": method, "url": url, **kwargs})
        step = self.steps.pop(0)
        if isinstance(step, BaseException):
            raise step
        return step


def _wrapper(
    inner: HttpClient, *, max_retries: int = 3, jitter: Callable[[], float] = lambda: 1.0
) -> tuple[RetryingHttpClient, list[float]]:
    sleeps: list[float] = []
    client = RetryingHttpClient(inner, max_retries=max_retries, sleep=sleeps.append, jitter=jitter)
    return client, sleeps


class TestRetryingHttpClient:
    def test_429_then_success_honours_retry_after(self) -> None:
        """A 429 with Retry-After is retried after at least that long; the success is returned."""
        inner = _Scripted(_error(429, 20429, {"Retry-After": "7"}), _ok())
        client, sleeps = _wrapper(inner, jitter=lambda: 0.0)
        response = client.request("POST", URL, data={"To": "+1"})
        assert response.status_code == 201
        assert sleeps == [7.0]
        assert len(inner.calls) == 2

    def test_backoff_is_capped_exponential_with_jitter(self) -> None:
        """Without Retry-After the waits grow as base * 2**n, scaled by jitter, up to the cap."""
        inner = _Scripted(*[_error(429, 20429)] * 6, _ok())
        sleeps: list[float] = []
        client = RetryingHttpClient(
            inner, max_retries=6, sleep=sleeps.append, jitter=lambda: 0.5, backoff_cap=4.0
        )
        client.request("POST", URL)
        assert sleeps == [0.25, 0.5, 1.0, 2.0, 2.0, 2.0]

    def test_429_past_max_retries_raises_rate_limited(self) -> None:
        """After max_retries retries the last 429 becomes RateLimited with Twilio's details."""
        inner = _Scripted(*[_error(429, 20429, {"retry-after": "3"})] * 3)
        client, sleeps = _wrapper(inner, max_retries=2)
        with pytest.raises(RateLimited) as info:
            client.request("POST", URL)
        error = info.value
        assert (error.status, error.code, error.retry_after) == (429, 20429, 3.0)
        assert error.retryable is True
        assert error.more_info == "https://x/20429"
        assert "3 attempt" in str(error)
        assert len(inner.calls) == 3
        assert len(sleeps) == 2

    def test_retry_after_over_the_cap_is_not_waited_for(self) -> None:
        """A Retry-After longer than max_retry_after raises RateLimited at once."""
        inner = _Scripted(_error(429, 20429, {"Retry-After": "3600"}))
        client, sleeps = _wrapper(inner)
        with pytest.raises(RateLimited) as info:
            client.request("POST", URL)
        assert info.value.retry_after == 3600.0
        assert sleeps == []

    def test_retry_after_as_http_date(self) -> None:
        """Retry-After given as an HTTP date is read as the seconds until then."""
        when = format_datetime(datetime.now(UTC) + timedelta(seconds=20), usegmt=True)
        inner = _Scripted(_error(429, 20429, {"Retry-After": when}), _ok())
        client, sleeps = _wrapper(inner, jitter=lambda: 0.0)
        client.request("POST", URL)
        assert 15.0 < sleeps[0] <= 20.0

    def test_twilio_code_20429_is_rate_limiting(self) -> None:
        """A body with code 20429 is retried like a 429 whatever its status."""
        inner = _Scripted(_error(503, 20429), _ok())
        client, sleeps = _wrapper(inner)
        assert client.request("POST", URL).status_code == 201
        assert len(sleeps) == 1

    @pytest.mark.parametrize("status", [400, 401, 404, 500, 502, 503])
    def test_other_errors_are_returned_not_retried(self, status: int) -> None:
        """Any other error answer goes back to twilio untouched: Twilio answered."""
        inner = _Scripted(_error(status, 20500))
        client, sleeps = _wrapper(inner)
        assert client.request("POST", URL).status_code == status
        assert sleeps == []
        assert len(inner.calls) == 1

    @pytest.mark.parametrize(
        "failure",
        [_refused, lambda: requests.exceptions.ConnectTimeout("connect timed out")],
        ids=["refused", "connect-timeout"],
    )
    def test_connect_failures_are_retried(self, failure: Callable[[], BaseException]) -> None:
        """Failing to connect means nothing was sent: retried, then the answer is returned."""
        inner = _Scripted(failure(), failure(), _ok())
        client, sleeps = _wrapper(inner)
        assert client.request("POST", URL).status_code == 201
        assert sleeps == [0.5, 1.0]

    def test_connect_failures_past_max_retries(self) -> None:
        """Connect failures past the budget raise a retryable TwilioAPIError with status 0."""
        inner = _Scripted(_refused(), _refused())
        client, _ = _wrapper(inner, max_retries=1)
        with pytest.raises(TwilioAPIError) as info:
            client.request("POST", URL)
        assert type(info.value) is TwilioAPIError
        assert (info.value.status, info.value.retryable) == (0, True)
        assert isinstance(info.value.__cause__, requests.exceptions.ConnectionError)

    @pytest.mark.parametrize(
        "failure",
        [
            lambda: requests.exceptions.ReadTimeout("read timed out"),
            _aborted,
            lambda: requests.exceptions.ChunkedEncodingError("cut short"),
            lambda: requests.exceptions.ConnectionError("no details"),
            lambda: RuntimeError("a custom client's own failure"),
        ],
        ids=["read-timeout", "aborted", "chunked", "bare-connection-error", "custom"],
    )
    def test_may_have_reached_twilio_is_never_retried(
        self, failure: Callable[[], BaseException]
    ) -> None:
        """A failure after the request may have gone out raises NoAnswer, with no retry."""
        inner = _Scripted(failure(), _ok())
        client, sleeps = _wrapper(inner)
        with pytest.raises(NoAnswer) as info:
            client.request("POST", URL)
        assert info.value.status == 0
        assert isinstance(info.value, TwilioAPIError)
        assert len(inner.calls) == 1
        assert sleeps == []

    @pytest.mark.parametrize(
        "failure",
        [requests.exceptions.InvalidURL("bad"), requests.exceptions.SSLError("bad cert")],
        ids=["invalid-url", "ssl"],
    )
    def test_not_sent_failures_are_not_retried(self, failure: BaseException) -> None:
        """Failures that happen before sending raise TwilioAPIError, not NoAnswer, once."""
        inner = _Scripted(failure)
        client, sleeps = _wrapper(inner)
        with pytest.raises(TwilioAPIError) as info:
            client.request("POST", URL)
        assert not isinstance(info.value, NoAnswer)
        assert sleeps == []

    def test_our_own_errors_pass_through(self) -> None:
        """An error of ours raised by the inner client is not re-wrapped."""
        inner = _Scripted(RateLimited("inner", retry_after=1.0))
        client, _ = _wrapper(inner)
        with pytest.raises(RateLimited, match="inner"):
            client.request("GET", URL)

    def test_default_timeout_is_passed_and_an_explicit_one_kept(self) -> None:
        """Requests without a timeout get the wrapper's; a given timeout is kept."""
        inner = _Scripted(_ok(), _ok())
        client = RetryingHttpClient(inner, timeout=4.5)
        client.request("GET", URL)
        client.request("GET", URL, timeout=1.0)
        assert [c["timeout"] for c in inner.calls] == [4.5, 1.0]

    @pytest.mark.parametrize(
        "kwargs",
        [
            {"timeout": 0},
            {"timeout": -1},
            {"timeout": float("nan")},
            {"max_retries": -1},
            {"max_retries": 1.5},
            {"backoff_cap": 0},
        ],
    )
    def test_bad_settings_raise_value_error(self, kwargs: dict[str, Any]) -> None:
        """Nonsense timeouts and retry budgets are refused."""
        with pytest.raises(ValueError, match="must be"):
            RetryingHttpClient(FakeTwilio(), **kwargs)

    def test_inner_must_be_a_twilio_http_client(self) -> None:
        """Anything but a twilio HttpClient is refused with TypeError."""
        with pytest.raises(TypeError, match=r"twilio\.http\.HttpClient"):
            RetryingHttpClient(requests.Session())

    def test_defaults_to_twilios_http_client_with_the_timeout(self) -> None:
        """Without an inner client it builds twilio's TwilioHttpClient with its timeout."""
        from twilio.http.http_client import TwilioHttpClient

        client = RetryingHttpClient(timeout=3.0)
        assert isinstance(client.inner, TwilioHttpClient)
        assert client.inner.timeout == 3.0

    def test_default_client_pools_default_pool_size(self) -> None:
        """The default client's https adapter keeps DEFAULT_POOL_SIZE connections per host."""
        client = RetryingHttpClient()
        adapter = client.inner.session.get_adapter("https://api.twilio.com")
        assert adapter.poolmanager.connection_pool_kw["maxsize"] == DEFAULT_POOL_SIZE == 100

    def test_ensure_pool_only_grows(self) -> None:
        """ensure_pool grows the default pool to the size asked, and never shrinks it."""
        client = RetryingHttpClient()
        adapter = client.inner.session.get_adapter("https://api.twilio.com")
        assert client.ensure_pool(10) == DEFAULT_POOL_SIZE
        assert adapter.poolmanager.connection_pool_kw["maxsize"] == DEFAULT_POOL_SIZE
        assert client.ensure_pool(250) == 250
        assert adapter.poolmanager.connection_pool_kw["maxsize"] == 250
        assert client.ensure_pool(120) == 250

    def test_ensure_pool_leaves_a_given_client_alone(self) -> None:
        """A client passed in is not resized: ensure_pool returns None, its adapter unchanged."""
        from twilio.http.http_client import TwilioHttpClient

        inner = TwilioHttpClient()
        before = inner.session.get_adapter("https://api.twilio.com")
        size = before.poolmanager.connection_pool_kw["maxsize"]
        client = RetryingHttpClient(inner)
        assert client.ensure_pool(500) is None
        assert inner.session.get_adapter("https://api.twilio.com") is before
        assert before.poolmanager.connection_pool_kw["maxsize"] == size
        assert RetryingHttpClient(FakeTwilio()).ensure_pool(500) is None

    @pytest.mark.parametrize("size", [0, -1, True, 2.5, "10"])
    def test_ensure_pool_refuses_nonsense(self, size: Any) -> None:
        """A size that is not an int >= 1 raises InvalidArgument (a ValueError)."""
        with pytest.raises(ValueError, match="size must be"):
            RetryingHttpClient().ensure_pool(size)

    @responses.activate
    def test_works_over_twilios_real_http_client(self) -> None:
        """Under twilio's TwilioHttpClient (requests mocked), 429 + Retry-After is retried."""
        responses.add(
            responses.POST,
            URL,
            json={"code": 20429, "message": "Too Many Requests", "status": 429},
            status=429,
            headers={"Retry-After": "2"},
        )
        responses.add(responses.POST, URL, json={"sid": "SM" + "2" * 32}, status=201)
        client = RetryingHttpClient(sleep=(sleeps := []).append, jitter=lambda: 0.0)
        response = client.request("POST", URL, data={"To": "+15005550006"})
        assert response.status_code == 201
        assert sleeps == [2.0]
        assert len(responses.calls) == 2

    @responses.activate
    def test_connection_refused_over_twilios_real_http_client(self) -> None:
        """A refused connection under TwilioHttpClient is retried, then reported as not sent."""
        responses.add(responses.POST, URL, body=_refused())
        responses.add(responses.POST, URL, body=_refused())
        client = RetryingHttpClient(max_retries=1, sleep=lambda _: None)
        with pytest.raises(TwilioAPIError) as info:
            client.request("POST", URL)
        assert info.value.retryable is True
        assert len(responses.calls) == 2


class TestTranslateTwilioError:
    def test_rest_exception(self) -> None:
        """TwilioRestException keeps status and code, drops twilio's prefix, links the docs."""
        exc = TwilioRestException(
            400, URL, "Unable to create record: The 'To' number is not valid", 21211, "POST"
        )
        error = translate_twilio_error(exc)
        assert type(error) is TwilioAPIError
        assert (error.status, error.code) == (400, 21211)
        assert error.message == "The 'To' number is not valid"
        assert error.more_info == "https://www.twilio.com/docs/errors/21211"
        assert error.retryable is False

    def test_rest_exception_without_a_code(self) -> None:
        """twilio fills in the HTTP status as code when the body had none: that is not a code."""
        error = translate_twilio_error(TwilioRestException(502, URL, "Bad gateway", 502))
        assert (error.status, error.code, error.more_info) == (502, None, None)

    def test_service_exception(self) -> None:
        """RFC 9457 problem details keep their title, detail, code and type URI."""
        exc = TwilioServiceException(
            type_uri="https://www.twilio.com/docs/api/errors/20001",
            title="Invalid parameter",
            status=400,
            code=20001,
            detail="To is required",
        )
        error = translate_twilio_error(exc)
        assert (error.status, error.code) == (400, 20001)
        assert error.message == "Invalid parameter: To is required"
        assert error.more_info == "https://www.twilio.com/docs/api/errors/20001"

    @pytest.mark.parametrize(
        "exc",
        [
            TwilioRestException(429, URL, "Too Many Requests", 20429),
            TwilioServiceException(
                type_uri="https://x", title="Too Many Requests", status=429, code=20429
            ),
        ],
    )
    def test_429_becomes_rate_limited(self, exc: BaseException) -> None:
        """Either exception for a 429 becomes RateLimited."""
        error = translate_twilio_error(exc)
        assert isinstance(error, RateLimited)
        assert error.retryable is True

    def test_any_other_twilio_exception(self) -> None:
        """A bare TwilioException still becomes a TwilioAPIError (status 0)."""
        error = translate_twilio_error(TwilioException("Page Records can not be deserialized"))
        assert isinstance(error, ServioTwilioError)
        assert error.status == 0


class TestRetryPolicy:
    """The pure rules both wrappers run (servio_twilio.sending.http_rules)."""

    def test_an_answer_that_is_not_rate_limited_is_handed_back(self) -> None:
        """Any answer but a 429 / 20429 means: return it (None), whatever its status."""
        policy = RetryPolicy()
        for response in (_ok(), _error(400, 21211), _error(503, 20500)):
            assert policy.delay_after_answer(response, 0, "POST /x") is None

    def test_the_wait_is_the_longer_of_backoff_and_retry_after(self) -> None:
        """A 429's wait is max(jittered backoff, Retry-After)."""
        policy = RetryPolicy(jitter=lambda: 1.0)
        assert policy.delay_after_answer(_error(429, 20429), 2, "GET /x") == 2.0
        with_header = _error(429, 20429, {"Retry-After": "5"})
        assert policy.delay_after_answer(with_header, 0, "GET /x") == 5.0

    def test_the_last_attempt_raises_rate_limited(self) -> None:
        """At attempt == max_retries the 429 raises RateLimited naming the attempts."""
        policy = RetryPolicy(max_retries=1)
        with pytest.raises(RateLimited, match="after 2 attempt"):
            policy.delay_after_answer(_error(429, 20429), 1, "POST /x")

    @pytest.mark.parametrize(
        ("kind", "error", "retryable"),
        [("connect", TwilioAPIError, True), ("not_sent", TwilioAPIError, False)],
    )
    def test_failures_past_the_budget_raise_ours_chained(
        self, kind: Any, error: type[TwilioAPIError], retryable: bool
    ) -> None:
        """A connect failure out of retries, or a request never sent: TwilioAPIError, chained."""
        cause = OSError("boom")
        with pytest.raises(error) as info:
            RetryPolicy(max_retries=0).delay_after_failure(cause, kind, 0, "POST /x")
        assert type(info.value) is error
        assert info.value.retryable is retryable
        assert info.value.__cause__ is cause

    def test_no_answer_is_raised_at_any_attempt(self) -> None:
        """``no_answer`` raises NoAnswer even with retries left."""
        with pytest.raises(NoAnswer):
            RetryPolicy(max_retries=5).delay_after_failure(OSError(), "no_answer", 0, "POST /x")

    def test_a_connect_failure_with_retries_left_waits(self) -> None:
        """``connect`` with retries left returns the jittered backoff."""
        policy = RetryPolicy(jitter=lambda: 0.5, backoff_base=1.0)
        assert policy.delay_after_failure(OSError(), "connect", 2, "POST /x") == 2.0

    def test_caused_by_walks_causes_contexts_and_args(self) -> None:
        """caused_by finds a type in __cause__, __context__, args or .reason, and nothing else."""
        refused = ConnectionRefusedError(111, "refused")
        wrapped = requests.exceptions.ConnectionError(MaxRetryError(None, URL, refused))  # type: ignore[arg-type]
        assert caused_by(wrapped, (ConnectionRefusedError,))
        assert not caused_by(RuntimeError("x"), (ConnectionRefusedError,))
        later = RuntimeError("later")
        later.__context__ = refused
        assert caused_by(later, (ConnectionRefusedError,))
