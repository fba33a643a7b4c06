"""Tests for sending.client: the client over FakeTwilio and twilio's real HTTP client."""

from __future__ import annotations

import base64
import json
import logging
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import pytest
import requests
import responses

from servio_twilio.domain.errors import (
    ConfigurationError,
    InvalidPhoneNumber,
    RateLimited,
    RepositoryError,
    SendLimitExceeded,
    SendOutcomeUnknown,
    ServioTwilioError,
    TwilioAPIError,
)
from servio_twilio.domain.models import Channel, Communication
from servio_twilio.domain.settings import TwilioSettings
from servio_twilio.domain.status import advance
from servio_twilio.sending.client import CommunicationsClient
from servio_twilio.sending.limiter import InMemorySendLimiter
from servio_twilio.sending.results import OutboundMessage, SendResult
from servio_twilio.storage.memory import InMemoryRepository
from servio_twilio.testing import FakeTwilio
from servio_twilio.testing.fake_twilio import Fault
from support.clients import make_client
from support.sending import (
    ACCOUNT,
    API_KEY,
    BASE,
    PHONE,
    SERVICE,
    TEMPLATE,
    TO,
    TO_MASKED,
    WHATSAPP,
    TickingClock as _Clock,
    make_settings as _settings,
)

pytestmark = pytest.mark.usefixtures("client_kind")

MESSAGES = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
CALLS = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}/Calls.json"


@attrs.define
class Kit:
    client: CommunicationsClient
    fake: FakeTwilio
    repo: InMemoryRepository
    sleeps: list[float]


def _kit(settings: TwilioSettings | None = None, **kwargs: Any) -> Kit:
    fake = kwargs.pop("http_client", None)
    fake = FakeTwilio() if fake is None else fake
    repo = kwargs.pop("repository", None)
    repo = InMemoryRepository() if repo is None else repo
    sleeps: list[float] = []
    client = make_client(
        settings or _settings(),
        repository=repo,
        http_client=fake,
        clock=_Clock(),
        sleep=sleeps.append,
        **kwargs,
    )
    return Kit(client=client, fake=fake, repo=repo, sleeps=sleeps)


@pytest.fixture
def kit() -> Kit:
    return _kit()


def _cid(url: str) -> str:
    return parse_qs(urlsplit(url).query)["cid"][0]


class _FlakyRepository(InMemoryRepository):
    """An in-memory repository whose add or update can be made to fail."""

    def __init__(self, *, fail_add: bool = False, fail_update: bool = False) -> None:
        super().__init__()
        self.fail_add = fail_add
        self.fail_update = fail_update

    def add(self, communication: Communication) -> Communication:
        if self.fail_add:
            raise RepositoryError("storage is down")
        return super().add(communication)

    def update(
        self, communication_id: str, fn: Callable[[Communication], Communication]
    ) -> Communication:
        if self.fail_update:
            raise RepositoryError("storage is down")
        return super().update(communication_id, fn)

    def ping(self) -> None:
        if self.fail_update or self.fail_add:
            raise RepositoryError("storage is down")


class TestConstruction:
    def test_repr_has_no_secret(self) -> None:
        """The client's repr names the masked account, never the token."""
        client = CommunicationsClient(_settings(), http_client=FakeTwilio())
        text = repr(client)
        assert "auth-token-secret" not in text
        assert ACCOUNT not in text
        assert "AC1111" in text

    def test_default_repository_is_in_memory(self) -> None:
        """Without a repository the client keeps records in a new InMemoryRepository."""
        client = CommunicationsClient(_settings(), http_client=FakeTwilio())
        assert isinstance(client.repository, InMemoryRepository)

    @pytest.mark.parametrize(
        ("kwargs", "match"),
        [
            ({"repository": object()}, "CommunicationRepository"),
            ({"send_limiter": object()}, "SendLimiter"),
            ({"http_client": object()}, "HttpClient"),
            ({"clock": 5}, "clock"),
            ({"sleep": None}, "sleep"),
        ],
    )
    def test_wrong_types_are_refused(self, kwargs: dict[str, Any], match: str) -> None:
        """Collaborators of the wrong type raise TypeError naming the argument."""
        with pytest.raises(TypeError, match=match):
            CommunicationsClient(_settings(), **kwargs)

    def test_settings_must_be_settings(self) -> None:
        """A dict instead of TwilioSettings is refused."""
        with pytest.raises(TypeError, match="TwilioSettings"):
            CommunicationsClient({"account_sid": ACCOUNT})  # type: ignore[arg-type]

    @pytest.mark.parametrize("kwargs", [{"timeout": 0}, {"max_retries": -1}])
    def test_bad_limits_are_refused(self, kwargs: dict[str, Any]) -> None:
        """A non-positive timeout or a negative retry budget raises ValueError."""
        with pytest.raises(ValueError, match="must be"):
            CommunicationsClient(_settings(), http_client=FakeTwilio(), **kwargs)

    def test_twilio_rest_is_imported_on_first_use_only(self) -> None:
        """Building a client does not import twilio.rest; the first send does."""
        code = (
            "import sys\n"
            "from servio_twilio import CommunicationsClient, TwilioSettings\n"
            "from servio_twilio.testing import FakeTwilio\n"
            f"s = TwilioSettings(account_sid={ACCOUNT!r}, auth_token='t', phone_number={PHONE!r})\n"
            "c = CommunicationsClient(s, http_client=FakeTwilio())\n"
            "before = 'twilio.rest' in sys.modules\n"
            f"c.send_sms({TO!r}, 'hi')\n"
            "print(before, 'twilio.rest' in sys.modules)\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
        )
        assert out.stdout.split() == ["False", "True"]

    def test_api_key_auth(self) -> None:
        """With an API key in the settings, requests authenticate as the key, on the account."""
        kit = _kit(_settings(api_key_sid=API_KEY, api_key_secret="key-secret"))
        kit.client.send_sms(TO, "hi")
        [request] = kit.fake.requests
        assert request.username == API_KEY
        assert f"/Accounts/{ACCOUNT}/" in request.path

    def test_timeout_reaches_the_http_client(self) -> None:
        """The timeout keyword is what each request is sent with."""
        kit = _kit(timeout=2.5)
        kit.client.send_sms(TO, "hi")
        assert kit.fake.requests[0].timeout == 2.5

    def test_rest_client_is_built_once_under_concurrency(self) -> None:
        """Concurrent first sends share one twilio REST client and all succeed."""
        kit = _kit(http_client=FakeTwilio(latency=0.05))
        barrier = threading.Barrier(10)
        results: list[SendResult] = []
        built: list[Any] = []

        def send() -> None:
            barrier.wait()
            results.append(kit.client.send_sms(TO, "hi"))
            built.append(kit.client._targets["twilio"].client())

        threads = [threading.Thread(target=send) for _ in range(10)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert len(results) == 10
        assert len({id(rest) for rest in built}) == 1
        assert len({r.sid for r in results}) == 10
        assert kit.fake.peak_in_flight >= 2


class TestSendSms:
    def test_form_fields_and_record(self, kit: Kit) -> None:
        """To, From, Body and StatusCallback with cid are sent; the record gets SID and status."""
        result = kit.client.send_sms(TO, "Confirmado para 15h", prospect_id="prospect_123")
        [request] = kit.fake.requests
        assert request.method == "POST"
        assert request.url == MESSAGES
        assert request.data == {
            "To": TO,
            "From": PHONE,
            "Body": "Confirmado para 15h",
            "StatusCallback": f"{BASE}/message-status?cid={result.communication_id}",
        }
        assert result.sid.startswith("SM")
        assert (result.status, result.to, result.from_, result.channel) == (
            "queued",
            TO,
            PHONE,
            Channel.SMS,
        )
        record = kit.repo.get(result.communication_id)
        assert record is not None
        assert (record.twilio_sid, record.status, record.prospect_id) == (
            result.sid,
            "queued",
            "prospect_123",
        )
        assert (record.channel, record.to, record.from_, record.body) == (
            Channel.SMS,
            TO,
            PHONE,
            "Confirmado para 15h",
        )

    def test_number_is_normalized(self, kit: Kit) -> None:
        """A formatted number is sent and stored in E.164."""
        result = kit.client.send_sms("+55 (11) 99999-9999", "hi")
        assert kit.fake.requests[0].data["To"] == TO
        assert result.to == TO

    def test_messaging_service(self) -> None:
        """With a messaging service, MessagingServiceSid replaces From; status 'accepted'."""
        kit = _kit(_settings(phone_number=None, messaging_service_sid=SERVICE))
        result = kit.client.send_sms(TO, "hi")
        data = kit.fake.requests[0].data
        assert data["MessagingServiceSid"] == SERVICE
        assert "From" not in data
        assert result.status == "accepted"

    def test_messaging_service_leaves_the_sender_to_twilio(self) -> None:
        """With a service and a phone number, the record does not claim the number as sender:
        the service picks one, and Twilio's answer or a callback names it."""
        kit = _kit(_settings(messaging_service_sid=SERVICE))
        result = kit.client.send_sms(TO, "hi")
        assert "From" not in kit.fake.requests[0].data
        assert result.from_ == ""
        record = kit.repo.get(result.communication_id)
        assert record is not None
        assert record.from_ == ""

    def test_own_status_callback_gets_cid_merged(self, kit: Kit) -> None:
        """A caller's status_callback keeps its query and gains cid (replacing a stale one)."""
        result = kit.client.send_sms(
            TO, "hi", status_callback="https://hooks.test/status?tenant=a&cid=old"
        )
        callback = str(kit.fake.requests[0].data["StatusCallback"])
        assert callback.startswith("https://hooks.test/status?")
        assert parse_qs(urlsplit(callback).query) == {
            "tenant": ["a"],
            "cid": [result.communication_id],
        }

    def test_no_callback_without_base_url(self) -> None:
        """Without webhook_base_url or a status_callback, no StatusCallback is sent."""
        kit = _kit(_settings(webhook_base_url=None))
        kit.client.send_sms(TO, "hi")
        assert "StatusCallback" not in kit.fake.requests[0].data

    @pytest.mark.parametrize(
        ("to", "body", "kwargs", "error"),
        [
            ("12345", "hi", {}, InvalidPhoneNumber),
            ("whatsapp:+5511999999999", "hi", {}, InvalidPhoneNumber),
            (5511999999999, "hi", {}, InvalidPhoneNumber),
            (TO, "", {}, ValueError),
            (TO, "   ", {}, ValueError),
            (TO, None, {}, ValueError),
            (TO, 42, {}, TypeError),
            (TO, "x" * 1601, {}, ValueError),
            (TO, "hi", {"status_callback": "ftp://x.test/cb"}, ValueError),
            (TO, "hi", {"status_callback": "/relative"}, ValueError),
            (TO, "hi", {"prospect_id": ""}, ValueError),
            (TO, "hi", {"prospect_id": 7}, TypeError),
        ],
    )
    def test_bad_input_writes_and_sends_nothing(
        self, kit: Kit, to: Any, body: Any, kwargs: dict[str, Any], error: type[Exception]
    ) -> None:
        """Invalid arguments raise before any record is written or request sent."""
        with pytest.raises(error):
            kit.client.send_sms(to, body, **kwargs)
        assert len(kit.repo) == 0
        assert kit.fake.requests == []

    def test_no_sms_sender(self) -> None:
        """Without phone_number or messaging service, ConfigurationError; nothing sent."""
        kit = _kit(_settings(phone_number=None))
        with pytest.raises(ConfigurationError, match="TWILIO_PHONE_NUMBER"):
            kit.client.send_sms(TO, "hi")
        assert kit.fake.requests == []
        assert len(kit.repo) == 0


class TestWithoutCallbacks:
    def test_a_send_without_webhook_base_url_warns_once(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """No webhook base URL: the first send says it asks for no callbacks; later ones do not."""
        kit = _kit(_settings(webhook_base_url=None))
        with caplog.at_level(logging.WARNING, logger="servio_twilio.client"):
            kit.client.send_sms(TO, "one")
            kit.client.make_call(TO, twiml="<Response/>")
            kit.client.send_batch([OutboundMessage(to=TO, body="two")])
        warnings = [r for r in caplog.records if "without status callbacks" in r.getMessage()]
        assert len(warnings) == 1
        assert warnings[0].levelno == logging.WARNING
        assert "TWILIO_WEBHOOK_BASE_URL" in warnings[0].getMessage()
        assert all("StatusCallback" not in r.data for r in kit.fake.requests)

    def test_no_warning_when_callbacks_are_asked_for(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """With a base URL, or an explicit status_callback, nothing is logged about callbacks."""
        with caplog.at_level(logging.WARNING, logger="servio_twilio.client"):
            _kit().client.send_sms(TO, "with a base URL")
            _kit(_settings(webhook_base_url=None)).client.send_sms(
                TO, "explicit", status_callback="https://hooks.servio.test/status"
            )
        assert not [r for r in caplog.records if "without status callbacks" in r.getMessage()]


class TestSendWhatsapp:
    def test_prefixes_and_body(self, kit: Kit) -> None:
        """whatsapp: is added to To and From; the record stores bare numbers."""
        result = kit.client.send_whatsapp(TO, "Olá", prospect_id="p1")
        data = kit.fake.requests[0].data
        assert (data["To"], data["From"], data["Body"]) == (
            f"whatsapp:{TO}",
            f"whatsapp:{WHATSAPP}",
            "Olá",
        )
        assert data["StatusCallback"] == f"{BASE}/message-status?cid={result.communication_id}"
        record = kit.repo.get(result.communication_id)
        assert record is not None
        assert (record.channel, record.to, record.from_) == (Channel.WHATSAPP, TO, WHATSAPP)
        assert (result.to, result.from_) == (TO, WHATSAPP)

    def test_given_prefix_is_accepted(self, kit: Kit) -> None:
        """A whatsapp: prefix on the number is accepted, never doubled."""
        kit.client.send_whatsapp(f"whatsapp:{TO}", "hi")
        assert kit.fake.requests[0].data["To"] == f"whatsapp:{TO}"

    def test_one_media_url(self, kit: Kit) -> None:
        """One media URL is sent as MediaUrl and stored as mediaUrl and mediaUrls."""
        result = kit.client.send_whatsapp(TO, media_url="https://cdn.test/a.png")
        data = kit.fake.requests[0].data
        assert data["MediaUrl"] == "https://cdn.test/a.png"
        assert "Body" not in data
        record = kit.repo.get(result.communication_id)
        assert record is not None
        assert (record.media_url, record.media_urls) == (
            "https://cdn.test/a.png",
            ("https://cdn.test/a.png",),
        )

    def test_many_media_urls_repeat_the_key(self, kit: Kit) -> None:
        """Several media URLs are sent as a repeated MediaUrl, in order, with the caption."""
        urls = ["https://cdn.test/a.png", "https://cdn.test/b.pdf"]
        result = kit.client.send_whatsapp(TO, "see", media_url=urls)
        data = kit.fake.requests[0].data
        assert data["MediaUrl"] == urls
        assert data["Body"] == "see"
        record = kit.repo.get(result.communication_id)
        assert record is not None
        assert record.media_urls == tuple(urls)

    def test_template(self, kit: Kit) -> None:
        """content_sid and content_variables go as ContentSid and ContentVariables (JSON)."""
        kit.client.send_whatsapp(
            TO, content_sid=TEMPLATE, content_variables={"1": "Ana", "2": "15h às 16h"}
        )
        data = kit.fake.requests[0].data
        assert data["ContentSid"] == TEMPLATE
        assert json.loads(str(data["ContentVariables"])) == {"1": "Ana", "2": "15h às 16h"}
        assert "Body" not in data

    def test_template_without_variables(self, kit: Kit) -> None:
        """A template needs no variables; ContentVariables is then not sent."""
        kit.client.send_whatsapp(TO, content_sid=TEMPLATE)
        assert "ContentVariables" not in kit.fake.requests[0].data

    @pytest.mark.parametrize(
        ("kwargs", "error"),
        [
            ({}, ValueError),
            ({"body": "   "}, ValueError),
            ({"content_sid": "HX123"}, ValueError),
            ({"content_sid": TEMPLATE, "body": "hi"}, ValueError),
            ({"content_sid": TEMPLATE, "media_url": "https://cdn.test/a.png"}, ValueError),
            ({"body": "hi", "content_variables": {"1": "x"}}, ValueError),
            ({"content_sid": TEMPLATE, "content_variables": ["x"]}, TypeError),
            ({"content_sid": TEMPLATE, "content_variables": {1: "x"}}, TypeError),
            ({"content_sid": TEMPLATE, "content_variables": {"1": object()}}, ValueError),
            ({"content_sid": TEMPLATE, "content_variables": {"1": float("nan")}}, ValueError),
            ({"media_url": []}, ValueError),
            ({"media_url": ["https://cdn.test/x.png"] * 11}, ValueError),
            ({"media_url": "not a url"}, ValueError),
            ({"media_url": 5}, TypeError),
        ],
    )
    def test_bad_content_writes_and_sends_nothing(
        self, kit: Kit, kwargs: dict[str, Any], error: type[Exception]
    ) -> None:
        """Body, media and template rules are checked before anything happens."""
        with pytest.raises(error):
            kit.client.send_whatsapp(TO, **kwargs)
        assert len(kit.repo) == 0
        assert kit.fake.requests == []

    def test_no_whatsapp_sender(self) -> None:
        """Without whatsapp_number, ConfigurationError before anything happens."""
        kit = _kit(_settings(whatsapp_number=None))
        with pytest.raises(ConfigurationError, match="TWILIO_WHATSAPP_NUMBER"):
            kit.client.send_whatsapp(TO, "hi")
        assert kit.fake.requests == []


class TestMakeCall:
    def test_twiml_url_and_call_events(self, kit: Kit) -> None:
        """Url, StatusCallback with cid and the four call events are sent; no recording."""
        result = kit.client.make_call(TO, twiml_url="https://app.test/twiml.xml", prospect_id="p")
        [request] = kit.fake.requests
        assert request.url == CALLS
        assert request.data == {
            "To": TO,
            "From": PHONE,
            "Url": "https://app.test/twiml.xml",
            "StatusCallback": f"{BASE}/call-status?cid={result.communication_id}",
            "StatusCallbackEvent": ["initiated", "ringing", "answered", "completed"],
        }
        assert result.sid.startswith("CA")
        assert (result.channel, result.status) == (Channel.CALL, "queued")
        record = kit.repo.get(result.communication_id)
        assert record is not None
        assert (record.channel, record.twilio_sid, record.body) == (Channel.CALL, result.sid, None)

    def test_twiml_and_recording(self, kit: Kit) -> None:
        """Twiml, Record and the recording callback with its two events are sent."""
        result = kit.client.make_call(TO, twiml="<Response><Say>Oi</Say></Response>", record=True)
        data = kit.fake.requests[0].data
        cid = result.communication_id
        assert data["Twiml"] == "<Response><Say>Oi</Say></Response>"
        assert "Url" not in data
        assert data["Record"] == "true"
        assert data["RecordingStatusCallback"] == f"{BASE}/recording-status?cid={cid}"
        assert data["RecordingStatusCallbackEvent"] == ["completed", "absent"]

    def test_own_callbacks_get_cid(self, kit: Kit) -> None:
        """Caller-given call and recording callbacks both carry cid."""
        result = kit.client.make_call(
            TO,
            twiml_url="https://app.test/t.xml",
            record=True,
            status_callback="https://hooks.test/call",
            recording_status_callback="https://hooks.test/rec?x=1",
        )
        data = kit.fake.requests[0].data
        cid = result.communication_id
        assert data["StatusCallback"] == f"https://hooks.test/call?cid={cid}"
        assert data["RecordingStatusCallback"] == f"https://hooks.test/rec?x=1&cid={cid}"

    @pytest.mark.parametrize(
        ("kwargs", "error"),
        [
            ({}, ValueError),
            ({"twiml_url": "https://app.test/t.xml", "twiml": "<Response/>"}, ValueError),
            ({"twiml_url": "app.test/t.xml"}, ValueError),
            ({"twiml": ""}, ValueError),
            ({"twiml": "x" * 4001}, ValueError),
            ({"twiml": "<Response/>", "record": "yes"}, TypeError),
            ({"twiml": "<Response/>", "recording_status_callback": "https://h.test/r"}, ValueError),
        ],
    )
    def test_bad_input_writes_and_sends_nothing(
        self, kit: Kit, kwargs: dict[str, Any], error: type[Exception]
    ) -> None:
        """Exactly one of twiml_url/twiml, URL shapes and record rules are checked first."""
        with pytest.raises(error):
            kit.client.make_call(TO, **kwargs)
        assert len(kit.repo) == 0
        assert kit.fake.requests == []

    def test_no_voice_sender(self) -> None:
        """Calls need phone_number: a messaging service alone is not enough."""
        kit = _kit(_settings(phone_number=None, messaging_service_sid=SERVICE))
        with pytest.raises(ConfigurationError, match="TWILIO_PHONE_NUMBER"):
            kit.client.make_call(TO, twiml="<Response/>")


class TestDefaultRegion:
    """``settings.default_region`` reads national numbers on every kind of send."""

    NATIONAL = "(11) 99999-9999"

    @pytest.mark.parametrize(
        ("send", "sent_to"),
        [
            (lambda c, to: c.send_sms(to, "oi"), TO),
            (lambda c, to: c.send_whatsapp(to, "oi"), f"whatsapp:{TO}"),
            (lambda c, to: c.send_whatsapp(f"whatsapp:{to}", "oi"), f"whatsapp:{TO}"),
            (lambda c, to: c.make_call(to, twiml="<Response/>"), TO),
        ],
        ids=["sms", "whatsapp", "whatsapp-prefixed", "call"],
    )
    def test_national_number_is_sent_in_e164(
        self, send: Callable[[CommunicationsClient, str], SendResult], sent_to: str
    ) -> None:
        """With default_region="BR", a national number goes to Twilio, the result and the
        record in E.164."""
        kit = _kit(_settings(default_region="BR"))
        result = send(kit.client, self.NATIONAL)
        [request] = kit.fake.requests
        assert request.data["To"] == sent_to
        assert result.to == TO
        record = kit.repo.get(result.communication_id)
        assert record is not None
        assert record.to == TO

    @pytest.mark.parametrize(
        "send",
        [
            lambda c, to: c.send_sms(to, "oi"),
            lambda c, to: c.send_whatsapp(to, "oi"),
            lambda c, to: c.make_call(to, twiml="<Response/>"),
        ],
        ids=["sms", "whatsapp", "call"],
    )
    def test_national_number_without_a_region_is_refused(
        self, send: Callable[[CommunicationsClient, str], SendResult]
    ) -> None:
        """Without a region the same number is InvalidPhoneNumber; nothing written or sent."""
        kit = _kit()
        with pytest.raises(InvalidPhoneNumber, match="no country code"):
            send(kit.client, self.NATIONAL)
        assert len(kit.repo) == 0
        assert kit.fake.requests == []

    def test_international_number_ignores_the_region(self) -> None:
        """A number with its + country code is sent as given, whatever the region."""
        kit = _kit(_settings(default_region="US"))
        kit.client.send_sms(TO, "oi")
        assert kit.fake.requests[0].data["To"] == TO

    def test_number_invalid_in_the_region_is_refused(self) -> None:
        """A national number that is not valid in the region is InvalidPhoneNumber."""
        kit = _kit(_settings(default_region="BR"))
        with pytest.raises(InvalidPhoneNumber):
            kit.client.send_sms("9999", "oi")
        assert kit.fake.requests == []


class TestSendFaults:
    def test_rate_limited_then_success(self, kit: Kit) -> None:
        """A 429 is retried after Twilio's Retry-After; the send then succeeds."""
        kit.fake.fail_next(1, Fault.rate_limited(retry_after=3))
        result = kit.client.send_sms(TO, "hi")
        assert result.status == "queued"
        assert len(kit.fake.requests) == 2
        assert len(kit.sleeps) == 1
        assert kit.sleeps[0] >= 3.0

    def test_rate_limited_past_max_retries(self) -> None:
        """429 past max_retries: RateLimited with the record id; the record is failed, 20429."""
        kit = _kit(max_retries=2)
        kit.fake.fail_next(3, Fault.rate_limited(retry_after=1))
        with pytest.raises(RateLimited) as info:
            kit.client.send_sms(TO, "hi")
        assert info.value.retry_after == 1.0
        assert len(kit.fake.requests) == 3
        record = kit.repo.get(str(info.value.communication_id))
        assert record is not None
        assert (record.status, record.error_code) == ("failed", 20429)

    def test_refusal_marks_failed_and_raises_with_the_id(self, kit: Kit) -> None:
        """Twilio's refusal: the record is failed with error and errorCode; the error has its id."""
        kit.fake.fail_number(TO, Fault.error(code=21610, status=400, message="Unsubscribed"))
        with pytest.raises(TwilioAPIError) as info:
            kit.client.send_sms(TO, "hi", prospect_id="p")
        error = info.value
        assert (error.status, error.code, error.message) == (400, 21610, "Unsubscribed")
        assert error.retryable is False
        record = kit.repo.get(str(error.communication_id))
        assert record is not None
        assert (record.status, record.error, record.error_code, record.twilio_sid) == (
            "failed",
            "Unsubscribed",
            21610,
            None,
        )

    def test_500_is_not_retried_and_marks_failed(self, kit: Kit) -> None:
        """A 500 on create is Twilio's answer: not retried, the record is failed."""
        kit.fake.fail_next(1, Fault.server_error(status=500))
        with pytest.raises(TwilioAPIError) as info:
            kit.client.send_sms(TO, "hi")
        assert info.value.status == 500
        assert len(kit.fake.requests) == 1
        assert kit.sleeps == []
        record = kit.repo.get(str(info.value.communication_id))
        assert record is not None
        assert record.status == "failed"

    def test_read_timeout_is_unknown_not_retried(self, kit: Kit) -> None:
        """A read timeout after sending: no retry, record unknown, SendOutcomeUnknown raised."""
        kit.fake.fail_next(1, Fault.read_timeout())
        with pytest.raises(SendOutcomeUnknown) as info:
            kit.client.make_call(TO, twiml="<Response/>")
        assert len(kit.fake.requests) == 1
        assert kit.sleeps == []
        record = kit.repo.get(info.value.communication_id)
        assert record is not None
        assert record.status == "unknown"
        assert isinstance(info.value.__cause__, TwilioAPIError)

    def test_unknown_record_is_settled_by_a_later_callback(self, kit: Kit) -> None:
        """The cid sent with the lost request lets a callback move the unknown record on."""
        kit.fake.fail_next(1, Fault.read_timeout())
        with pytest.raises(SendOutcomeUnknown) as info:
            kit.client.send_sms(TO, "hi")
        cid = _cid(str(kit.fake.requests[0].data["StatusCallback"]))
        assert cid == info.value.communication_id
        now = datetime.now(UTC)
        kit.repo.update(cid, lambda r: advance(r, updated_at=now, status="delivered"))
        record = kit.repo.get(cid)
        assert record is not None
        assert record.status == "delivered"

    def test_connect_failure_is_retried(self, kit: Kit) -> None:
        """A refused connection is retried (nothing was sent) and the send succeeds."""
        kit.fake.fail_next(2, Fault.connect_error())
        result = kit.client.send_sms(TO, "hi")
        assert result.status == "queued"
        assert kit.fake.connect_failures == 2
        assert len(kit.fake.requests) == 1
        assert len(kit.sleeps) == 2

    def test_connect_failure_past_max_retries(self) -> None:
        """Never connected: the record is failed and the error says a retry may succeed."""
        kit = _kit(max_retries=1)
        kit.fake.fail_next(2, Fault.connect_error())
        with pytest.raises(TwilioAPIError) as info:
            kit.client.send_sms(TO, "hi")
        assert (info.value.status, info.value.retryable) == (0, True)
        record = kit.repo.get(str(info.value.communication_id))
        assert record is not None
        assert record.status == "failed"
        assert kit.fake.requests == []

    def test_storage_down_before_sending(self) -> None:
        """When the pending record cannot be written: RepositoryError and nothing sent."""
        kit = _kit(repository=_FlakyRepository(fail_add=True))
        with pytest.raises(RepositoryError):
            kit.client.send_sms(TO, "hi")
        assert kit.fake.requests == []

    def test_a_foreign_storage_error_is_translated(self) -> None:
        """A custom repository raising its driver's error still gives RepositoryError."""

        class Broken(InMemoryRepository):
            def add(self, communication: Communication) -> Communication:
                raise OSError("disk full")

        kit = _kit(repository=Broken())
        with pytest.raises(RepositoryError, match="disk full") as info:
            kit.client.send_sms(TO, "hi")
        assert isinstance(info.value.__cause__, OSError)
        assert kit.fake.requests == []

    def test_storage_down_after_sending(self, caplog: pytest.LogCaptureFixture) -> None:
        """Twilio accepted but the record cannot be completed: the result is returned, logged."""
        repo = _FlakyRepository()
        kit = _kit(repository=repo)
        repo.fail_update = True
        with caplog.at_level(logging.ERROR, logger="servio_twilio.client"):
            result = kit.client.send_sms(TO, "hi")
        assert result.sid.startswith("SM")
        assert result.status == "queued"
        [log] = [r for r in caplog.records if r.name == "servio_twilio.client"]
        message = log.getMessage()
        assert result.sid in message
        assert TO_MASKED in message
        assert TO not in message
        record = repo.get(result.communication_id)
        assert record is not None
        assert record.status == "pending"

    def test_storage_down_after_a_refusal_still_raises_twilios_error(self) -> None:
        """If marking the record failed also fails, the caller still gets Twilio's error."""
        repo = _FlakyRepository()
        kit = _kit(repository=repo)
        kit.fake.fail_next(1, Fault.error(code=21211))
        repo.fail_update = True
        with pytest.raises(TwilioAPIError) as info:
            kit.client.send_sms(TO, "hi")
        assert info.value.code == 21211

    @pytest.mark.parametrize(
        "client_kind", ["sync"]
    )  # overrides the sync FakeTwilio.request; async: test_async_client.py
    def test_callback_before_create_returns_is_not_moved_back(self, client_kind: str) -> None:
        """A status callback that lands before Twilio's answer keeps its higher status."""
        repo = InMemoryRepository()

        class CallbackFirst(FakeTwilio):
            def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
                cid = _cid(str(kwargs["data"]["StatusCallback"]))
                now = datetime.now(UTC)
                repo.update(cid, lambda r: advance(r, updated_at=now, status="delivered"))
                return super().request(method, url, *args, **kwargs)

        kit = _kit(http_client=CallbackFirst(), repository=repo)
        result = kit.client.send_sms(TO, "hi")
        record = repo.get(result.communication_id)
        assert record is not None
        assert (record.status, record.twilio_sid) == ("delivered", result.sid)
        assert result.status == "delivered"

    @pytest.mark.parametrize(
        "client_kind", ["sync"]
    )  # overrides the sync FakeTwilio.request; async: test_async_client.py
    def test_unreadable_success_is_unknown(self, client_kind: str) -> None:
        """A 2xx answer that is not JSON: the message may be out, so the outcome is unknown."""

        class Garbled(FakeTwilio):
            def request(self, *args: Any, **kwargs: Any) -> Any:
                from twilio.http.response import Response

                super().request(*args, **kwargs)
                return Response(201, "<html>oops</html>", {})

        kit = _kit(http_client=Garbled())
        with pytest.raises(SendOutcomeUnknown) as info:
            kit.client.send_sms(TO, "hi")
        record = kit.repo.get(info.value.communication_id)
        assert record is not None
        assert record.status == "unknown"

    @pytest.mark.parametrize(
        "fault",
        [
            Fault.error(),
            Fault.rate_limited(retry_after=None),
            Fault.server_error(),
            Fault.read_timeout(),
            Fault.connect_error(),
        ],
        ids=lambda f: f.kind,
    )
    def test_no_dependency_exception_leaks(self, fault: Fault) -> None:
        """Every fault surfaces as one of our errors, never twilio's or requests'."""
        kit = _kit(max_retries=0)
        kit.fake.fail_next(1, fault)
        with pytest.raises(ServioTwilioError) as info:
            kit.client.send_sms(TO, "hi")
        assert type(info.value).__module__ == "servio_twilio.domain.errors"


class TestSendLimit:
    def test_over_the_limit_nothing_is_written_or_sent(self) -> None:
        """Past the prospect's limit: SendLimitExceeded with the wait; no record, no request."""
        kit = _kit(send_limiter=InMemorySendLimiter(2, 60))
        kit.client.send_sms(TO, "1", prospect_id="p1")
        kit.client.send_whatsapp(TO, "2", prospect_id="p1")
        with pytest.raises(SendLimitExceeded) as info:
            kit.client.make_call(TO, twiml="<Response/>", prospect_id="p1")
        assert info.value.prospect_id == "p1"
        assert 0 < info.value.retry_after <= 60
        assert len(kit.repo) == 2
        assert len(kit.fake.requests) == 2
        kit.client.send_sms(TO, "other prospect", prospect_id="p2")

    def test_without_prospect_the_number_is_limited(self) -> None:
        """With no prospect_id the destination number is the key; the error masks it."""
        kit = _kit(send_limiter=InMemorySendLimiter(1, 60))
        kit.client.send_sms(TO, "1")
        with pytest.raises(SendLimitExceeded) as info:
            kit.client.send_whatsapp(f"whatsapp:{TO}", "2")
        assert info.value.prospect_id == f"to:{TO_MASKED}"
        assert TO not in str(info.value)
        kit.client.send_sms("+5511988887777", "another number")

    def test_invalid_input_does_not_use_the_limit(self) -> None:
        """A send refused as invalid is not counted."""
        kit = _kit(send_limiter=InMemorySendLimiter(1, 60))
        with pytest.raises(ValueError, match="body"):
            kit.client.send_sms(TO, "", prospect_id="p1")
        kit.client.send_sms(TO, "ok", prospect_id="p1")


class TestHistoryAndEvents:
    def test_history_newest_first_with_filters(self, kit: Kit) -> None:
        """history() gives the prospect's records newest first, by channel, before a time."""
        first = kit.client.send_sms(TO, "1", prospect_id="p1")
        second = kit.client.send_whatsapp(TO, "2", prospect_id="p1")
        third = kit.client.send_sms(TO, "3", prospect_id="p1")
        kit.client.send_sms(TO, "other", prospect_id="p2")
        ids = [c.id for c in kit.client.history("p1")]
        assert ids == [third.communication_id, second.communication_id, first.communication_id]
        sms = [c.id for c in kit.client.history("p1", channel=Channel.SMS)]
        assert sms == [third.communication_id, first.communication_id]
        newest = kit.client.history("p1", limit=1)
        assert [c.id for c in newest] == [third.communication_id]
        older = kit.client.history("p1", before=newest[0].timestamp)
        assert [c.id for c in older] == [second.communication_id, first.communication_id]

    @pytest.mark.parametrize(
        "kwargs",
        [{"limit": 0}, {"limit": 1001}, {"before": datetime(2025, 1, 1)}],
    )
    def test_history_bad_arguments(self, kit: Kit, kwargs: dict[str, Any]) -> None:
        """Out-of-range limits and naive datetimes are refused."""
        with pytest.raises(ValueError, match=r"limit|aware"):
            kit.client.history("p1", **kwargs)

    def test_history_needs_a_prospect(self, kit: Kit) -> None:
        """An empty prospect id is refused."""
        with pytest.raises(ValueError, match="prospect_id"):
            kit.client.history("")

    def test_events_oldest_first(self, kit: Kit) -> None:
        """events() returns the record's kept callbacks in arrival order."""
        result = kit.client.send_sms(TO, "hi")
        kit.repo.append_event(result.communication_id, {"MessageStatus": "sent"})
        kit.repo.append_event(result.communication_id, {"MessageStatus": "delivered"})
        statuses = [e["MessageStatus"] for e in kit.client.events(result.communication_id)]
        assert statuses == ["sent", "delivered"]
        assert kit.client.events("missing") == []


class TestHealth:
    def test_healthy(self, kit: Kit) -> None:
        """Active account, owned number and answering storage: healthy, account SID masked."""
        report = kit.client.health()
        assert report.healthy is True
        assert report.account_status == "active"
        assert report.account_sid != ACCOUNT
        assert report.account_sid.startswith("AC1111")
        assert report.account_sid.endswith("1111")
        assert (report.phone_number, report.whatsapp_number) == (PHONE, WHATSAPP)
        assert {c.name: c.ok for c in report.checks} == {
            "account": True,
            "phone_number": True,
            "repository": True,
            "whatsapp_number": True,
        }
        number_request = kit.fake.requests[-1]
        assert number_request.path.endswith("/IncomingPhoneNumbers.json")
        assert "PhoneNumber" not in number_request.params  # listed unfiltered, compared here

    def test_suspended_account_and_unowned_number(self) -> None:
        """A suspended account and a number the account lacks fail their checks."""
        kit = _kit(
            http_client=FakeTwilio(account_status="suspended", owned_numbers=["+15005550001"])
        )
        report = kit.client.health()
        checks = {c.name: c for c in report.checks}
        assert report.healthy is False
        assert report.account_status == "suspended"
        assert not checks["account"].ok
        assert "suspended" in checks["account"].detail
        assert not checks["phone_number"].ok

    def test_storage_down(self) -> None:
        """A repository that does not answer ping() fails the repository check only."""
        kit = _kit(repository=_FlakyRepository(fail_add=True))
        report = kit.client.health()
        checks = {c.name: c for c in report.checks}
        assert report.healthy is False
        assert checks["account"].ok
        assert not checks["repository"].ok
        assert "storage is down" in checks["repository"].detail

    def test_twilio_unreachable_never_raises(self) -> None:
        """With Twilio unreachable, health() reports failures instead of raising."""
        kit = _kit(max_retries=0)
        kit.fake.fail_next(2, Fault.connect_error())
        report = kit.client.health()
        checks = {c.name: c for c in report.checks}
        assert report.healthy is False
        assert report.account_status is None
        assert not checks["account"].ok
        assert not checks["phone_number"].ok
        assert checks["repository"].ok

    def test_whatsapp_not_configured_never_fails(self) -> None:
        """A missing WhatsApp sender is reported, not failed."""
        kit = _kit(_settings(whatsapp_number=None))
        report = kit.client.health()
        check = next(c for c in report.checks if c.name == "whatsapp_number")
        assert check.ok
        assert check.detail == "not configured"
        assert report.healthy is True

    def test_no_phone_number_with_a_messaging_service(self) -> None:
        """Without a phone number the number check passes when another sender exists."""
        kit = _kit(_settings(phone_number=None, messaging_service_sid=SERVICE))
        report = kit.client.health()
        assert report.healthy is True
        assert not any(r.path.endswith("IncomingPhoneNumbers.json") for r in kit.fake.requests)


@pytest.fixture
def mocked() -> Iterator[responses.RequestsMock]:
    with responses.RequestsMock() as mock:
        yield mock


def _real(settings: TwilioSettings | None = None, **kwargs: Any) -> CommunicationsClient:
    """A client on twilio's real TwilioHttpClient (requests intercepted by `responses`)."""
    return CommunicationsClient(
        settings or _settings(), clock=_Clock(), sleep=kwargs.pop("sleep", lambda _: None), **kwargs
    )


def _form(call: Any) -> dict[str, list[str]]:
    body = call.request.body
    text = body.decode() if isinstance(body, bytes) else str(body)
    return parse_qs(text, keep_blank_values=True)


def _message_json(sid: str = "SM" + "5" * 32, status: str = "queued") -> dict[str, Any]:
    return {"sid": sid, "status": status, "to": TO, "from": PHONE, "account_sid": ACCOUNT}


class TestOverTwilioHttpClient:
    def test_sms_form_on_the_wire(self, mocked: responses.RequestsMock) -> None:
        """Under twilio's own HTTP client the SMS form is exactly what Twilio documents."""
        mocked.post(MESSAGES, json=_message_json(), status=201)
        result = _real().send_sms(TO, "Olá", prospect_id="p")
        form = _form(mocked.calls[0])
        assert form == {
            "To": [TO],
            "From": [PHONE],
            "Body": ["Olá"],
            "StatusCallback": [f"{BASE}/message-status?cid={result.communication_id}"],
        }
        assert result.sid == "SM" + "5" * 32

    def test_whatsapp_media_and_template_on_the_wire(self, mocked: responses.RequestsMock) -> None:
        """Repeated MediaUrl keys, ContentSid and ContentVariables JSON reach the wire."""
        mocked.post(MESSAGES, json=_message_json(), status=201)
        client = _real()
        client.send_whatsapp(
            TO, "x", media_url=["https://cdn.test/a.png", "https://cdn.test/b.png"]
        )
        client.send_whatsapp(TO, content_sid=TEMPLATE, content_variables={"1": "Ana"})
        media, template = (_form(c) for c in mocked.calls)
        assert media["MediaUrl"] == ["https://cdn.test/a.png", "https://cdn.test/b.png"]
        assert media["To"] == [f"whatsapp:{TO}"]
        assert media["From"] == [f"whatsapp:{WHATSAPP}"]
        assert template["ContentSid"] == [TEMPLATE]
        assert json.loads(template["ContentVariables"][0]) == {"1": "Ana"}

    def test_call_form_on_the_wire(self, mocked: responses.RequestsMock) -> None:
        """The call form carries Url, Record and both callbacks with repeated event keys."""
        mocked.post(CALLS, json={"sid": "CA" + "6" * 32, "status": "queued", "to": TO}, status=201)
        result = _real().make_call(TO, twiml_url="https://app.test/t.xml", record=True)
        form = _form(mocked.calls[0])
        cid = result.communication_id
        assert form == {
            "To": [TO],
            "From": [PHONE],
            "Url": ["https://app.test/t.xml"],
            "Record": ["true"],
            "StatusCallback": [f"{BASE}/call-status?cid={cid}"],
            "StatusCallbackEvent": ["initiated", "ringing", "answered", "completed"],
            "RecordingStatusCallback": [f"{BASE}/recording-status?cid={cid}"],
            "RecordingStatusCallbackEvent": ["completed", "absent"],
        }
        assert result.from_ == PHONE

    def test_api_key_basic_auth_on_the_wire(self, mocked: responses.RequestsMock) -> None:
        """API key auth sends the key SID and secret as Basic auth, on the account's URL."""
        mocked.post(MESSAGES, json=_message_json(), status=201)
        _real(_settings(api_key_sid=API_KEY, api_key_secret="key-secret")).send_sms(TO, "hi")
        header = mocked.calls[0].request.headers["Authorization"]
        assert base64.b64decode(header.split()[1]).decode() == f"{API_KEY}:key-secret"

    def test_429_retry_after_on_the_wire(self, mocked: responses.RequestsMock) -> None:
        """Twilio's 429 with Retry-After is waited for and retried through the real client."""
        mocked.post(
            MESSAGES,
            json={"code": 20429, "message": "Too Many Requests", "status": 429},
            status=429,
            headers={"Retry-After": "2"},
        )
        mocked.post(MESSAGES, json=_message_json(), status=201)
        sleeps: list[float] = []
        result = _real(sleep=sleeps.append).send_sms(TO, "hi")
        assert result.status == "queued"
        assert len(sleeps) == 1
        assert sleeps[0] >= 2.0

    def test_refusal_on_the_wire(self, mocked: responses.RequestsMock) -> None:
        """Twilio's JSON error becomes TwilioAPIError with its code and more_info."""
        mocked.post(
            MESSAGES,
            json={
                "code": 21211,
                "message": "Invalid 'To' Phone Number",
                "more_info": "https://www.twilio.com/docs/errors/21211",
                "status": 400,
            },
            status=400,
        )
        repo = InMemoryRepository()
        with pytest.raises(TwilioAPIError) as info:
            _real(repository=repo).send_sms(TO, "hi")
        assert (info.value.status, info.value.code) == (400, 21211)
        assert info.value.more_info == "https://www.twilio.com/docs/errors/21211"
        record = repo.get(str(info.value.communication_id))
        assert record is not None
        assert record.status == "failed"

    def test_twilio_request_log_masks_numbers(
        self, mocked: responses.RequestsMock, caplog: pytest.LogCaptureFixture
    ) -> None:
        """twilio's own request log (INFO) shows health()'s number filter masked, not whole.

        The filter is only sent for an account with more numbers than health()
        lists: here every page of the unfiltered list has a next one.
        """
        base = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}"
        numbers = f"{base}/IncomingPhoneNumbers.json"
        mocked.get(f"{base}.json", json={"sid": ACCOUNT, "status": "active"})

        def page(request: requests.PreparedRequest) -> tuple[int, dict[str, str], str]:
            query = parse_qs(urlsplit(str(request.url)).query)
            found = query.get("PhoneNumber") == [PHONE]
            items = [{"sid": "PN" + "6" * 32, "phone_number": PHONE if found else "+15005550001"}]
            after = f"{urlsplit(numbers).path}?PageSize=1000&Page=9&PageToken=PT9"
            body = {"incoming_phone_numbers": items, "next_page_uri": None if found else after}
            return 200, {}, json.dumps(body)

        mocked.add_callback(responses.GET, numbers, callback=page)
        with caplog.at_level(logging.INFO, logger="twilio.http_client"):
            report = _real().health()
        assert report.healthy, report.checks
        assert "PhoneNumber" in caplog.text  # twilio did log the filtered request
        assert PHONE not in caplog.text
        assert PHONE.replace("+", "%2B") not in caplog.text
        assert "+15005***006" in caplog.text

    @pytest.mark.parametrize("body", ["[]", "null", '"queued"', "42"])
    def test_answer_that_is_not_an_object(self, mocked: responses.RequestsMock, body: str) -> None:
        """A 2xx whose JSON is not an object: outcome unknown, record unknown, no leak."""
        mocked.post(MESSAGES, body=body, status=201, content_type="application/json")
        repo = InMemoryRepository()
        with pytest.raises(SendOutcomeUnknown) as info:
            _real(repository=repo).send_sms(TO, "hi")
        record = repo.get(info.value.communication_id)
        assert record is not None
        assert record.status == "unknown"

    def test_read_timeout_on_the_wire(self, mocked: responses.RequestsMock) -> None:
        """requests' ReadTimeout under the real client: unknown, one attempt."""
        mocked.post(MESSAGES, body=requests.exceptions.ReadTimeout("read timed out"))
        repo = InMemoryRepository()
        with pytest.raises(SendOutcomeUnknown) as info:
            _real(repository=repo).send_sms(TO, "hi")
        assert len(mocked.calls) == 1
        record = repo.get(info.value.communication_id)
        assert record is not None
        assert record.status == "unknown"
