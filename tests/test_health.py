"""Unit tests for servio_twilio.sending.health: each health check and the masked account SID."""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import unquote, urlencode

import pytest

from servio_twilio.domain.errors import RepositoryError
from servio_twilio.domain.settings import TwilioSettings
from servio_twilio.domain.steps import run
from servio_twilio.sending import health
from servio_twilio.sending.health import NUMBER_PAGE_SIZE, NUMBER_PAGES, check_health, mask_sid
from servio_twilio.sending.results import HealthReport
from servio_twilio.sending.transport import RetryingHttpClient
from servio_twilio.sending.twilio_rest import TwilioRest
from servio_twilio.storage.memory import InMemoryRepository
from servio_twilio.testing import FakeTwilio
from servio_twilio.testing.fake_twilio import Fault

ACCOUNT = "AC0123456789abcdef0123456789abcdef"
TOKEN = "auth-token-secret"
SERVICE = "MG" + "3" * 32
PHONE = "+15005550006"
WHATSAPP = "+14155238886"


def _settings(**overrides: Any) -> TwilioSettings:
    values: dict[str, Any] = {
        "account_sid": ACCOUNT,
        "auth_token": TOKEN,
        "phone_number": PHONE,
        "whatsapp_number": WHATSAPP,
    }
    values.update(overrides)
    return TwilioSettings(**values)


class _DownRepository(InMemoryRepository):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error

    def ping(self) -> None:
        raise self.error


def _health(
    settings: TwilioSettings | None = None,
    fake: FakeTwilio | None = None,
    repository: InMemoryRepository | None = None,
) -> HealthReport:
    rest = TwilioRest(
        settings or _settings(),
        RetryingHttpClient(
            FakeTwilio() if fake is None else fake, max_retries=0, sleep=lambda _: None
        ),
    )
    targets = {
        "twilio": rest,
        "repository": InMemoryRepository() if repository is None else repository,
    }
    return run(check_health(settings or _settings()), targets)


def _bare_digits(number: str) -> str:
    return number.lstrip("+")


def _checks(report: HealthReport) -> dict[str, tuple[bool, str]]:
    return {check.name: (check.ok, check.detail) for check in report.checks}


class TestMaskSid:
    def test_account_sid_keeps_six_and_four(self) -> None:
        """A 34-character SID keeps its first six and last four characters, the rest starred."""
        assert mask_sid(ACCOUNT) == "AC0123" + "*" * 24 + "cdef"

    def test_length_is_kept(self) -> None:
        """The masked SID is as long as the SID, for every length."""
        for length in range(40):
            assert len(mask_sid("x" * length)) == length

    @pytest.mark.parametrize("sid", ["", "A", "AC12345678"])
    def test_short_values_are_all_stars(self, sid: str) -> None:
        """Ten characters or fewer are starred entirely (nothing would stay hidden otherwise)."""
        assert mask_sid(sid) == "*" * len(sid)

    def test_eleven_characters_hide_one(self) -> None:
        """At eleven characters exactly the middle one is starred."""
        assert mask_sid("ABCDEFxWXYZ") == "ABCDEF*WXYZ"

    def test_middle_never_shows(self) -> None:
        """No character of the SID's middle appears in its mask."""
        sid = "AC" + "0000" + "9" * 24 + "0000"
        assert "9" not in mask_sid(sid)


class TestCheckHealth:
    def test_all_checks_pass(self) -> None:
        """Active account, owned number, answering storage: healthy, in a fixed check order."""
        report = _health()
        assert report.healthy is True
        assert [check.name for check in report.checks] == [
            "account",
            "phone_number",
            "repository",
            "whatsapp_number",
        ]
        assert _checks(report) == {
            "account": (True, "account status is 'active'"),
            "phone_number": (True, "one of the account's incoming numbers"),
            "repository": (True, "answered ping()"),
            "whatsapp_number": (True, "configured (not verifiable through Twilio's API)"),
        }
        assert (report.account_status, report.phone_number, report.whatsapp_number) == (
            "active",
            PHONE,
            WHATSAPP,
        )

    def test_account_sid_is_masked(self) -> None:
        """The report names the account only through mask_sid, and no secret anywhere."""
        report = _health()
        assert report.account_sid == mask_sid(ACCOUNT)
        text = repr(report) + str(report.to_dict())
        assert ACCOUNT not in text
        assert TOKEN not in text

    @pytest.mark.parametrize("status", ["suspended", "closed"])
    def test_inactive_account(self, status: str) -> None:
        """An account that is not active fails its check, with the status in the detail."""
        report = _health(fake=FakeTwilio(account_status=status))
        assert report.healthy is False
        assert report.account_status == status
        assert _checks(report)["account"] == (False, f"account status is {status!r}")

    def test_account_fetch_refused(self, caplog: pytest.LogCaptureFixture) -> None:
        """A refused account fetch fails the check with our error's text; health still returns."""
        fake = FakeTwilio()
        fake.fail_next(1, Fault.error(code=20003, status=401, message="Authenticate"))
        with caplog.at_level(logging.WARNING, logger="servio_twilio.client"):
            report = _health(fake=fake)
        ok, detail = _checks(report)["account"]
        assert not ok
        assert detail == "TwilioAPIError: Authenticate (HTTP 401, Twilio error 20003)"
        assert report.account_status is None
        assert _checks(report)["phone_number"][0] is True
        assert "could not fetch the Twilio account" in caplog.text
        assert TOKEN not in caplog.text

    def test_number_not_owned(self) -> None:
        """A phone number the account does not own fails the phone_number check."""
        report = _health(fake=FakeTwilio(owned_numbers=["+15005550001"]))
        assert report.healthy is False
        assert _checks(report)["phone_number"] == (
            False,
            "not among the account's incoming numbers",
        )

    def test_number_stays_out_of_the_requests(self) -> None:
        """The number check lists the account's numbers unfiltered: the number is in no URL."""
        fake = FakeTwilio(owned_numbers=["+15005550001", PHONE])
        report = _health(fake=fake)
        assert _checks(report)["phone_number"][0] is True
        [lookup] = [r for r in fake.requests if r.path.endswith("/IncomingPhoneNumbers.json")]
        assert lookup.params == {"PageSize": NUMBER_PAGE_SIZE}
        for request in fake.requests:
            wire = f"{request.url}?{urlencode(request.params)}"  # as requests would send it
            assert PHONE not in unquote(wire)
            assert _bare_digits(PHONE) not in wire

    def test_number_found_on_a_later_page(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The number on the last page health() reads is found, the pages followed in order."""
        monkeypatch.setattr(health, "NUMBER_PAGE_SIZE", 2)
        others = [f"+1500555000{i}" for i in range(1, 5)]  # sorted before PHONE
        fake = FakeTwilio(owned_numbers=[*others, PHONE])
        report = _health(fake=fake)
        assert _checks(report)["phone_number"] == (True, "one of the account's incoming numbers")
        pages = [r.params for r in fake.requests if r.path.endswith("IncomingPhoneNumbers.json")]
        assert [int(p.get("Page", 0)) for p in pages] == [0, 1, 2]
        assert not any("PhoneNumber" in p for p in pages)

    def test_number_absent_from_a_complete_listing(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A listing that ends without the number fails the check, with no filtered lookup."""
        monkeypatch.setattr(health, "NUMBER_PAGE_SIZE", 2)
        fake = FakeTwilio(owned_numbers=[f"+1500555000{i}" for i in range(1, 4)])
        report = _health(fake=fake)
        assert _checks(report)["phone_number"][0] is False
        pages = [r.params for r in fake.requests if r.path.endswith("IncomingPhoneNumbers.json")]
        assert len(pages) == 2
        assert not any("PhoneNumber" in p for p in pages)

    @pytest.mark.parametrize("owned", [True, False], ids=["owned", "not-owned"])
    def test_more_numbers_than_listed_asks_by_number(
        self, owned: bool, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """Past NUMBER_PAGES pages without the number, Twilio is asked by PhoneNumber, once."""
        monkeypatch.setattr(health, "NUMBER_PAGE_SIZE", 1)
        many = [f"+1202555{i:04d}" for i in range(NUMBER_PAGES + 1)]  # sorted before PHONE
        fake = FakeTwilio(owned_numbers=[*many, PHONE] if owned else many)
        report = _health(fake=fake)
        assert _checks(report)["phone_number"][0] is owned
        pages = [r.params for r in fake.requests if r.path.endswith("IncomingPhoneNumbers.json")]
        assert len(pages) == NUMBER_PAGES + 1
        assert [p.get("PhoneNumber") for p in pages] == [None] * NUMBER_PAGES + [PHONE]

    def test_number_lookup_fails(self) -> None:
        """When the number lookup cannot be made, the check fails naming the error type."""
        fake = FakeTwilio()
        fake.fail_next(1, Fault.read_timeout())  # the account fetch
        fake.fail_next(1, Fault.server_error(status=503))  # the number lookup
        report = _health(fake=fake)
        checks = _checks(report)
        assert checks["account"][1].startswith("NoAnswer: ")
        assert not checks["phone_number"][0]
        assert checks["phone_number"][1].startswith("TwilioAPIError: ")
        assert "HTTP 503" in checks["phone_number"][1]

    def test_no_sender_at_all(self) -> None:
        """No phone number, messaging service or WhatsApp number fails, without a lookup."""
        fake = FakeTwilio()
        report = _health(_settings(phone_number=None, whatsapp_number=None), fake)
        assert _checks(report)["phone_number"] == (False, "no sender configured")
        assert report.healthy is False
        assert not any(r.path.endswith("IncomingPhoneNumbers.json") for r in fake.requests)

    @pytest.mark.parametrize(
        "overrides",
        [{"messaging_service_sid": SERVICE, "whatsapp_number": None}, {}],
        ids=["messaging-service", "whatsapp"],
    )
    def test_another_sender_makes_no_number_fine(self, overrides: dict[str, Any]) -> None:
        """Without a phone number, a messaging service or WhatsApp number passes the check."""
        report = _health(_settings(phone_number=None, **overrides))
        assert _checks(report)["phone_number"] == (True, "not configured")
        assert report.healthy is True
        assert report.phone_number is None

    @pytest.mark.parametrize(
        "error",
        [RepositoryError("Firestore ping failed: ServiceUnavailable"), RuntimeError("socket")],
        ids=["ours", "foreign"],
    )
    def test_repository_down(self, error: Exception, caplog: pytest.LogCaptureFixture) -> None:
        """A failing ping() fails the repository check with the error's type; never raises."""
        with caplog.at_level(logging.WARNING, logger="servio_twilio.client"):
            report = _health(repository=_DownRepository(error))
        assert report.healthy is False
        assert _checks(report)["repository"] == (False, f"{type(error).__name__}: {error}")
        assert _checks(report)["account"][0] is True
        assert "the repository did not answer" in caplog.text

    def test_whatsapp_not_configured_is_reported_not_failed(self) -> None:
        """A missing WhatsApp number is a passing check saying "not configured"."""
        report = _health(_settings(whatsapp_number=None))
        assert _checks(report)["whatsapp_number"] == (True, "not configured")
        assert report.whatsapp_number is None
        assert report.healthy is True
