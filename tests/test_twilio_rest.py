"""Unit tests for sending.twilio_rest: the lazily built REST client, its error runner and reads."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import twilio.rest
from twilio.base.exceptions import (
    TwilioException,
    TwilioRestException,
    TwilioServiceException,
)
from twilio.http.response import Response

from servio_twilio.domain.errors import (
    InvalidArgument,
    RateLimited,
    ServioTwilioError,
    TwilioAPIError,
)
from servio_twilio.domain.settings import TwilioSettings
from servio_twilio.sending.async_transport import AsyncRetryingHttpClient
from servio_twilio.sending.transport import NoAnswer, RetryingHttpClient
from servio_twilio.sending.twilio_rest import AsyncTwilioRest, TwilioRest, sent_filters
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


DAY = datetime(2025, 3, 10, 14, 30, tzinfo=UTC)


class _Reads:
    """The reconcile reads of one TwilioRest or AsyncTwilioRest, called the same blocking way."""

    def __init__(self, fake: FakeTwilio, face: str) -> None:
        self.face = face
        if face == "sync":
            self.rest: Any = TwilioRest(
                _settings(), RetryingHttpClient(fake, max_retries=0, sleep=lambda _: None)
            )
        else:
            self.rest = AsyncTwilioRest(
                _settings(), AsyncRetryingHttpClient(fake.aio, max_retries=0)
            )

    def run(self, name: str, *args: Any, **kwargs: Any) -> Any:
        result = getattr(self.rest, name)(*args, **kwargs)
        if self.face == "sync":
            return result
        return asyncio.run(_awaited(result))

    def fetch(self, kind: str, sid: str) -> Any:
        return self.run("fetch", kind, sid)

    def list_sent(self, kind: str, **kwargs: Any) -> list[Any]:
        result: list[Any] = self.run("list_sent", kind, **kwargs)
        return result

    def recordings(self, call_sid: str) -> list[Any]:
        result: list[Any] = self.run("recordings", call_sid)
        return result


async def _awaited(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return await coroutine


def _sent(fake: FakeTwilio, kind: str, to: str = TO, body: str = "oi") -> str:
    """Create a message or call on ``fake`` through twilio's client; its SID."""
    client = twilio.rest.Client(ACCOUNT, TOKEN, http_client=fake)
    if kind == "message":
        return str(client.messages.create(to=to, from_=PHONE, body=body).sid)
    return str(client.calls.create(to=to, from_=PHONE, twiml="<Response/>").sid)


FACES = pytest.mark.parametrize("face", ["sync", "async"])


class TestReconcileReads:
    @FACES
    def test_fetch_a_message_with_its_cost(self, face: str) -> None:
        """fetch("message") returns Twilio's instance, price and segments as Twilio reports them."""
        fake = FakeTwilio(clock=lambda: DAY)
        sid = _sent(fake, "message")
        fake.set_status(sid, "delivered", price="-0.0075", price_unit="USD", num_segments=2)
        message = _Reads(fake, face).fetch("message", sid)
        assert (message.sid, message.status, message.body) == (sid, "delivered", "oi")
        assert (message.price, message.price_unit, message.num_segments) == ("-0.0075", "USD", "2")
        assert message.date_sent == DAY
        assert fake.requests[-1].method == "GET"
        assert fake.requests[-1].path.endswith(f"/Messages/{sid}.json")
        assert fake.requests[-1].is_async is (face == "async")

    @FACES
    def test_fetch_a_call(self, face: str) -> None:
        """fetch("call") returns the call with its start time, duration and price."""
        fake = FakeTwilio(clock=lambda: DAY)
        sid = _sent(fake, "call")
        fake.set_status(sid, "completed", duration=42, price="-0.013")
        call = _Reads(fake, face).fetch("call", sid)
        assert (call.sid, call.status, call.duration, call.price) == (
            sid,
            "completed",
            "42",
            "-0.013",
        )
        assert call.start_time == DAY
        assert call.end_time == DAY

    @FACES
    @pytest.mark.parametrize(
        ("kind", "sid"), [("message", "SM" + "0" * 32), ("call", "CA" + "0" * 32)]
    )
    def test_unknown_sid_is_a_404(self, face: str, kind: str, sid: str) -> None:
        """A SID Twilio does not hold comes out as our TwilioAPIError, 404 with code 20404."""
        with pytest.raises(TwilioAPIError) as caught:
            _Reads(FakeTwilio(), face).fetch(kind, sid)
        assert type(caught.value) is TwilioAPIError
        assert (caught.value.status, caught.value.code) == (404, 20404)

    @FACES
    def test_empty_sid_is_refused_before_any_request(self, face: str) -> None:
        """fetch with an empty SID raises InvalidArgument and sends nothing."""
        fake = FakeTwilio()
        with pytest.raises(InvalidArgument):
            _Reads(fake, face).fetch("message", "")
        assert fake.requests == []

    @FACES
    def test_list_sent_messages_by_numbers_and_day(self, face: str) -> None:
        """list_sent("message") sends To, From and the day; that day's matching ones come back."""
        now = [DAY]
        fake = FakeTwilio(clock=lambda: now[0])
        wanted = [_sent(fake, "message", body=f"#{i}") for i in range(2)]
        _sent(fake, "message", to="+5511988887777")
        now[0] = DAY + timedelta(days=1)
        _sent(fake, "message")
        found = _Reads(fake, face).list_sent(
            "message", to=TO, from_=PHONE, day=date(2025, 3, 10), limit=50
        )
        assert [m.sid for m in found] == wanted[::-1]
        request = fake.requests[-1]
        assert request.path.endswith("/Messages.json")
        assert {k: str(v) for k, v in request.params.items()} == {
            "To": TO,
            "From": PHONE,
            "DateSent": "2025-03-10T00:00:00Z",
            "PageSize": "50",
        }

    @FACES
    def test_list_sent_calls_by_start_day(self, face: str) -> None:
        """list_sent("call") filters by StartTime; a datetime counts as its UTC day."""
        fake = FakeTwilio(clock=lambda: DAY)
        sid = _sent(fake, "call")
        late = datetime(2025, 3, 10, 23, 30, tzinfo=UTC).astimezone(ZoneInfo("Asia/Tokyo"))
        found = _Reads(fake, face).list_sent("call", to=TO, from_=PHONE, day=late)
        assert [c.sid for c in found] == [sid]
        assert fake.requests[-1].path.endswith("/Calls.json")
        assert fake.requests[-1].params["StartTime"] == "2025-03-10T00:00:00Z"

    @FACES
    def test_list_sent_without_from_and_whatsapp_addresses(self, face: str) -> None:
        """from_=None sends no From filter; a whatsapp: To matches as Twilio stores it."""
        fake = FakeTwilio(clock=lambda: DAY)
        sid = _sent(fake, "message", to=f"whatsapp:{TO}")
        _sent(fake, "message")
        found = _Reads(fake, face).list_sent(
            "message", to=f"whatsapp:{TO}", from_=None, day=date(2025, 3, 10)
        )
        assert [m.sid for m in found] == [sid]
        assert "From" not in fake.requests[-1].params

    @FACES
    def test_limit_bounds_the_result_in_one_page(self, face: str) -> None:
        """limit is the most returned, newest first, and the PageSize asked: one request."""
        fake = FakeTwilio(clock=lambda: DAY)
        sids = [_sent(fake, "message", body=f"#{i}") for i in range(5)]
        reads = _Reads(fake, face)
        everything = reads.list_sent("message", to=TO, from_=PHONE, day=DAY.date(), limit=5)
        assert [m.sid for m in everything] == sids[::-1]
        before = len(fake.requests)
        three = reads.list_sent("message", to=TO, from_=PHONE, day=DAY.date(), limit=3)
        assert [m.sid for m in three] == sids[::-1][:3]
        assert len(fake.requests) == before + 1
        assert str(fake.requests[-1].params["PageSize"]) == "3"

    @FACES
    def test_recordings_of_a_call(self, face: str) -> None:
        """recordings() lists the account's recordings by CallSid; other calls' are left out."""
        fake = FakeTwilio(clock=lambda: DAY)
        call, other = _sent(fake, "call"), _sent(fake, "call")
        first = fake.add_recording(call, duration=12)
        fake.add_recording(other)
        found = _Reads(fake, face).recordings(call)
        assert [(r.sid, r.call_sid, r.duration) for r in found] == [(first, call, "12")]
        assert found[0].uri == f"/2010-04-01/Accounts/{ACCOUNT}/Recordings/{first}.json"
        assert found[0].media_url.endswith(f"/Recordings/{first}")
        request = fake.requests[-1]
        assert request.path == f"/2010-04-01/Accounts/{ACCOUNT}/Recordings.json"
        assert request.params["CallSid"] == call
        assert str(request.params["PageSize"]) == "20"
        assert _Reads(fake, face).recordings("CA" + "0" * 32) == []

    @FACES
    def test_read_errors_are_ours(self, face: str) -> None:
        """A 5xx or a read timeout on a list comes out as our errors, not twilio's or aiohttp's."""
        fake = FakeTwilio()
        reads = _Reads(fake, face)
        fake.fail_next(1, Fault.server_error(status=503))
        with pytest.raises(TwilioAPIError) as caught:
            reads.list_sent("message", to=TO, from_=PHONE, day=DAY.date())
        assert caught.value.status == 503
        fake.fail_next(1, Fault.read_timeout())
        with pytest.raises(NoAnswer):
            reads.recordings("CA" + "0" * 32)

    @FACES
    def test_a_refused_list_page_keeps_its_status_and_code(self, face: str) -> None:
        """twilio's bare "Unable to fetch page" becomes our error with Twilio's status and code."""
        fake = FakeTwilio()
        reads = _Reads(fake, face)
        fake.fail_next(1, Fault.error(code=20003, status=401, message="Authenticate"))
        with pytest.raises(TwilioAPIError) as caught:
            reads.list_sent("call", to=TO, from_=PHONE, day=DAY.date())
        assert (caught.value.status, caught.value.code, caught.value.message) == (
            401,
            20003,
            "Authenticate",
        )
        fake.fail_next(1, Fault.rate_limited(retry_after=None))
        with pytest.raises(RateLimited) as limited:
            reads.recordings("CA" + "0" * 32)
        assert (limited.value.status, limited.value.code) == (429, 20429)

    def test_a_page_error_without_a_readable_body(self) -> None:
        """A refused page whose body is not JSON keeps its status, with twilio's own text."""
        exc = TwilioException("Unable to fetch page", Response(502, "<html>bad gateway</html>", {}))
        with pytest.raises(TwilioAPIError) as caught:
            _rest().call(_raise(exc))
        assert (caught.value.status, caught.value.code) == (502, None)
        assert caught.value.message == "Unable to fetch page"


class TestSentFilters:
    def test_messages_and_calls_filter_their_own_date(self) -> None:
        """Messages filter on date_sent, calls on start_time; the page holds the limit."""
        day = date(2025, 3, 10)
        assert sent_filters("message", to=TO, from_=PHONE, day=day, limit=10) == {
            "to": TO,
            "from_": PHONE,
            "date_sent": day,
            "limit": 10,
            "page_size": 10,
        }
        calls = sent_filters("call", to=TO, from_=None, day=day, limit=5000)
        assert calls == {"to": TO, "start_time": day, "limit": 5000, "page_size": 1000}

    def test_a_naive_datetime_counts_as_its_day(self) -> None:
        """A naive datetime is taken as UTC: its date is the day."""
        found = sent_filters("message", to=TO, from_=PHONE, day=datetime(2025, 3, 10, 23), limit=1)
        assert found["date_sent"] == date(2025, 3, 10)

    @pytest.mark.parametrize(
        "call",
        [
            lambda: sent_filters("message", to=TO, from_=PHONE, day=date(2025, 1, 1), limit=0),
            lambda: sent_filters("message", to=TO, from_=PHONE, day=date(2025, 1, 1), limit=True),
            lambda: sent_filters("call", to=TO, from_=PHONE, day="2025-01-01", limit=5),  # type: ignore[arg-type]
        ],
        ids=["zero-limit", "bool-limit", "text-day"],
    )
    def test_bad_arguments_are_refused(self, call: Callable[[], Any]) -> None:
        """A limit below 1 (or a bool) and a day that is not a date raise InvalidArgument."""
        with pytest.raises(InvalidArgument):
            call()
