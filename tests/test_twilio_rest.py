"""Unit tests for sending.twilio_rest: the lazily built REST client and its error runner."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import twilio.rest
from twilio.base.exceptions import (
    TwilioException,
    TwilioRestException,
    TwilioServiceException,
)
from twilio.http.response import Response

from servio_twilio.domain.errors import RateLimited, ServioTwilioError, TwilioAPIError
from servio_twilio.domain.settings import TwilioSettings
from servio_twilio.sending.transport import NoAnswer, RetryingHttpClient
from servio_twilio.sending.twilio_rest import TwilioRest
from servio_twilio.testing import FakeTwilio
from servio_twilio.testing.fake_twilio import Fault
from support.sending import ACCOUNT, API_KEY, PHONE, TO

TOKEN = "auth-token-secret"
KEY_SECRET = "api-key-secret-value"


def _settings(**overrides: Any) -> TwilioSettings:
    values: dict[str, Any] = {"account_sid": ACCOUNT, "auth_token": TOKEN, "phone_number": PHONE}
    values.update(overrides)
    return TwilioSettings(**values)


class _AuthRecorder(FakeTwilio):
    """A FakeTwilio that also keeps the Basic auth pair of each request."""

    def __init__(self) -> None:
        super().__init__()
        self.auths: list[tuple[str, str] | None] = []

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        self.auths.append(kwargs.get("auth"))
        return super().request(method, url, *args, **kwargs)


class _Garbled(FakeTwilio):
    """Answers every request with a 2xx body that is not JSON."""

    def request(self, *args: Any, **kwargs: Any) -> Any:
        super().request(*args, **kwargs)
        return Response(201, "<html>gateway</html>", {})


def _rest(settings: TwilioSettings | None = None, http: Any = None) -> TwilioRest:
    inner = FakeTwilio() if http is None else http
    return TwilioRest(
        settings or _settings(), RetryingHttpClient(inner, max_retries=0, sleep=lambda _: None)
    )


def _fetch_account(client: Any) -> Any:
    return client.api.v2010.accounts(ACCOUNT).fetch()


def _raise(exc: BaseException) -> Any:
    def request(client: Any) -> Any:
        raise exc

    return request


class TestClient:
    def test_not_built_before_first_use(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Constructing TwilioRest builds no twilio client; repr says so."""
        built: list[Any] = []
        monkeypatch.setattr(twilio.rest, "Client", lambda *a, **k: built.append(a) or object())
        rest = _rest()
        assert built == []
        assert repr(rest) == "<TwilioRest built=False>"

    def test_built_once_and_reused(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The first client() builds the twilio client; later calls return the same object."""
        real = twilio.rest.Client
        built: list[Any] = []

        def counting(*args: Any, **kwargs: Any) -> Any:
            built.append(args)
            return real(*args, **kwargs)

        monkeypatch.setattr(twilio.rest, "Client", counting)
        rest = _rest()
        first = rest.client()
        assert rest.client() is first
        rest.call(lambda client: client)
        assert len(built) == 1
        assert isinstance(first, real)
        assert repr(rest) == "<TwilioRest built=True>"

    def test_concurrent_first_use_builds_one_client(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Threads racing on first use all get one client, built exactly once."""
        real = twilio.rest.Client
        built: list[Any] = []
        started = threading.Event()

        def slow(*args: Any, **kwargs: Any) -> Any:
            built.append(args)
            started.set()
            time.sleep(0.05)  # widens the race window; nothing is timed
            return real(*args, **kwargs)

        monkeypatch.setattr(twilio.rest, "Client", slow)
        rest = _rest()
        threads_count = 8
        barrier = threading.Barrier(threads_count)
        results: list[Any] = [None] * threads_count

        def use(i: int) -> None:
            barrier.wait()
            results[i] = rest.client()

        threads = [threading.Thread(target=use, args=(i,)) for i in range(threads_count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=10)
        assert started.is_set()
        assert len(built) == 1
        assert all(result is results[0] for result in results)
        assert results[0] is not None

    def test_auth_token_authenticates_as_the_account(self) -> None:
        """Without an API key, requests authenticate as the account SID with the auth token."""
        fake = _AuthRecorder()
        _rest(http=fake).call(_fetch_account)
        assert fake.auths == [(ACCOUNT, TOKEN)]
        assert fake.requests[0].path == f"/2010-04-01/Accounts/{ACCOUNT}.json"

    def test_api_key_authenticates_as_the_key(self) -> None:
        """With an API key, requests authenticate with the key; the URLs still name the account."""
        fake = _AuthRecorder()
        settings = _settings(api_key_sid=API_KEY, api_key_secret=KEY_SECRET)
        rest = _rest(settings, fake)
        rest.call(
            lambda client: client.messages.create(to=TO, from_=PHONE, body="hi"),
        )
        assert fake.auths == [(API_KEY, KEY_SECRET)]
        assert fake.requests[0].path == f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
        assert rest.client().account_sid == ACCOUNT

    def test_repr_names_no_secret(self) -> None:
        """repr shows neither the auth token, the key secret nor the account SID."""
        rest = _rest(_settings(api_key_sid=API_KEY, api_key_secret=KEY_SECRET))
        rest.client()
        text = repr(rest)
        for secret in (TOKEN, KEY_SECRET, ACCOUNT, API_KEY):
            assert secret not in text


class TestEnsurePool:
    def test_grows_the_default_pool(self) -> None:
        """ensure_pool reaches the default HTTP client's pool: it grows to the size asked."""
        rest = TwilioRest(_settings(), RetryingHttpClient())
        assert rest.ensure_pool(150) == 150
        assert rest.ensure_pool(20) == 150

    def test_leaves_a_given_client_alone(self) -> None:
        """With a client passed in (FakeTwilio here), ensure_pool changes nothing: None."""
        assert TwilioRest(_settings(), RetryingHttpClient(FakeTwilio())).ensure_pool(150) is None


class TestCall:
    def test_returns_the_requests_result(self) -> None:
        """call() gives the request the built client and returns what it returns."""
        rest = _rest()
        assert rest.call(lambda client: client) is rest.client()
        account = rest.call(_fetch_account)
        assert account.sid == ACCOUNT

    def test_twilio_refusal_is_translated(self) -> None:
        """A refusal through the HTTP seam comes out as TwilioAPIError with status and code."""
        fake = FakeTwilio()
        fake.fail_next(1, Fault.error(code=21211, status=400, message="Invalid 'To' Phone Number"))
        with pytest.raises(TwilioAPIError) as caught:
            _rest(http=fake).call(
                lambda client: client.messages.create(to=TO, from_=PHONE, body="hi")
            )
        error = caught.value
        assert type(error) is TwilioAPIError
        assert (error.status, error.code, error.message) == (
            400,
            21211,
            "Invalid 'To' Phone Number",
        )
        assert error.more_info == "https://www.twilio.com/docs/errors/21211"
        assert isinstance(error.__cause__, TwilioRestException)

    def test_authentication_failure_names_no_secret(self) -> None:
        """A 401 is TwilioAPIError whose text holds neither token nor key secret."""
        fake = FakeTwilio()
        fake.fail_next(1, Fault.error(code=20003, status=401, message="Authenticate"))
        settings = _settings(api_key_sid=API_KEY, api_key_secret=KEY_SECRET)
        with pytest.raises(TwilioAPIError) as caught:
            _rest(settings, fake).call(_fetch_account)
        assert (caught.value.status, caught.value.code) == (401, 20003)
        for text in (str(caught.value), repr(caught.value)):
            assert TOKEN not in text
            assert KEY_SECRET not in text

    def test_rest_exception_429_is_rate_limited(self) -> None:
        """A TwilioRestException with status 429 becomes RateLimited (retryable)."""
        exc = TwilioRestException(429, "/x", msg="Too Many Requests", code=20429)
        with pytest.raises(RateLimited) as caught:
            _rest().call(_raise(exc))
        assert caught.value.retryable is True
        assert caught.value.__cause__ is exc

    def test_service_exception_is_translated(self) -> None:
        """A TwilioServiceException (problem details) gives title and detail in the message."""
        exc = TwilioServiceException(
            "https://www.twilio.com/docs/errors/20404", "Not Found", 404, 20404, "no such thing"
        )
        with pytest.raises(TwilioAPIError) as caught:
            _rest().call(_raise(exc))
        assert caught.value.message == "Not Found: no such thing"
        assert (caught.value.status, caught.value.code) == (404, 20404)

    def test_any_other_twilio_exception(self) -> None:
        """A bare TwilioException becomes a TwilioAPIError with no HTTP status."""
        with pytest.raises(TwilioAPIError, match="Twilio client error: TwilioException: boom"):
            _rest().call(_raise(TwilioException("boom")))

    def test_our_errors_pass_unchanged(self) -> None:
        """An error of ours raised inside is re-raised as the same object, not wrapped."""
        ours = RateLimited("slow down", retry_after=2.0)
        with pytest.raises(RateLimited) as caught:
            _rest().call(_raise(ours))
        assert caught.value is ours

    def test_read_timeout_is_no_answer(self) -> None:
        """A read timeout at the HTTP seam comes out as NoAnswer (status 0)."""
        fake = FakeTwilio()
        fake.fail_next(1, Fault.read_timeout())
        with pytest.raises(NoAnswer) as caught:
            _rest(http=fake).call(_fetch_account)
        assert caught.value.status == 0

    @pytest.mark.parametrize("error", [ValueError, TypeError, AttributeError, KeyError])
    def test_unreadable_answers_are_no_answer(self, error: type[Exception]) -> None:
        """The errors an unreadable 2xx answer causes become NoAnswer naming only their type."""
        exc = error("body held +5511999999999 and a token")
        with pytest.raises(NoAnswer) as caught:
            _rest().call(_raise(exc))
        assert str(caught.value.message) == f"unreadable answer from Twilio ({error.__name__})"
        assert "+5511999999999" not in str(caught.value)
        assert caught.value.__cause__ is exc

    def test_a_non_json_success_is_no_answer(self) -> None:
        """A 2xx answer that is not JSON, parsed by twilio, comes out as NoAnswer."""
        with pytest.raises(NoAnswer, match="unreadable answer"):
            _rest(http=_Garbled()).call(_fetch_account)

    @pytest.mark.parametrize(
        "fault",
        [Fault.error(), Fault.server_error(), Fault.rate_limited(retry_after=None)],
        ids=lambda f: f.kind,
    )
    def test_no_dependency_exception_escapes(self, fault: Fault) -> None:
        """Every Twilio fault through the seam is one of our errors."""
        fake = FakeTwilio()
        fake.fail_next(1, fault)
        with pytest.raises(ServioTwilioError) as caught:
            _rest(http=fake).call(_fetch_account)
        assert type(caught.value).__module__.startswith("servio_twilio.")
