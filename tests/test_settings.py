"""TwilioSettings: the constructor, from_env, sender checks, and secrets handling."""

from __future__ import annotations

import logging
import pickle
from collections.abc import Iterator
from typing import Any

import attrs
import pytest

from servio_twilio.domain.errors import ConfigurationError
from servio_twilio.domain.settings import TwilioSettings

ACCOUNT = "AC" + "0123456789abcdef" * 2
API_KEY = "SK" + "fedcba9876543210" * 2
SERVICE = "MG" + "00112233445566778899AABBCCDDEEFF"
TOKEN = "tok-primary-7f3a9c2e1b"
SECONDARY = "tok-secondary-5d8e4f1a"
KEY_SECRET = "keysecret-c4b2a1e9"
SECRETS = (TOKEN, SECONDARY, KEY_SECRET)

FULL_ENV = {
    "TWILIO_ACCOUNT_SID": ACCOUNT,
    "TWILIO_AUTH_TOKEN": TOKEN,
    "TWILIO_API_KEY_SID": API_KEY,
    "TWILIO_API_KEY_SECRET": KEY_SECRET,
    "TWILIO_PHONE_NUMBER": "+12025550100",
    "TWILIO_WHATSAPP_NUMBER": "whatsapp:+5511999999999",
    "TWILIO_MESSAGING_SERVICE_SID": SERVICE,
    "TWILIO_SECONDARY_AUTH_TOKEN": SECONDARY,
    "TWILIO_WEBHOOK_BASE_URL": "https://api.servio.ai/api/twilio/webhook/",
    "TWILIO_DEFAULT_REGION": "br",
}


def _settings(**overrides: Any) -> TwilioSettings:
    values: dict[str, Any] = {"account_sid": ACCOUNT, "auth_token": TOKEN}
    values.update(overrides)
    return TwilioSettings(**values)


def _error_texts(error: BaseException) -> Iterator[str]:
    """str and repr of an error and of every error chained to it."""
    seen: BaseException | None = error
    while seen is not None:
        yield str(seen)
        yield repr(seen)
        yield from (str(arg) for arg in seen.args)
        seen = seen.__cause__ or seen.__context__


class TestConstructor:
    def test_minimal(self) -> None:
        """The account SID and auth token are enough; everything else defaults to None."""
        settings = _settings()
        assert settings.account_sid == ACCOUNT
        assert settings.auth_token == TOKEN
        for name in (
            "api_key_sid",
            "api_key_secret",
            "phone_number",
            "whatsapp_number",
            "messaging_service_sid",
            "webhook_base_url",
            "secondary_auth_token",
            "default_region",
        ):
            assert getattr(settings, name) is None
        assert not settings.uses_api_key

    def test_every_field(self) -> None:
        """Every field is kept; numbers are normalized and the URL loses its trailing slash."""
        settings = _settings(
            api_key_sid=API_KEY,
            api_key_secret=KEY_SECRET,
            phone_number="+1 (202) 555-0100",
            whatsapp_number="WhatsApp:+55 11 99999-9999",
            messaging_service_sid=SERVICE,
            webhook_base_url="https://api.servio.ai/hooks//",
            secondary_auth_token=SECONDARY,
        )
        assert settings.api_key_sid == API_KEY
        assert settings.api_key_secret == KEY_SECRET
        assert settings.phone_number == "+12025550100"
        assert settings.whatsapp_number == "+5511999999999"
        assert settings.messaging_service_sid == SERVICE
        assert settings.webhook_base_url == "https://api.servio.ai/hooks"
        assert settings.secondary_auth_token == SECONDARY
        assert settings.uses_api_key

    def test_frozen_and_keyword_only(self) -> None:
        """Settings cannot be changed after construction nor built positionally."""
        settings = _settings()
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            settings.auth_token = "other"  # type: ignore[misc]
        with pytest.raises(TypeError):
            TwilioSettings(ACCOUNT, TOKEN)  # type: ignore[misc]

    def test_blank_optional_values_mean_unset(self) -> None:
        """Empty or whitespace optional values are treated as not given."""
        settings = _settings(
            phone_number="  ", whatsapp_number="", webhook_base_url=" ", secondary_auth_token=" "
        )
        assert settings.phone_number is None
        assert settings.whatsapp_number is None
        assert settings.webhook_base_url is None
        assert settings.secondary_auth_token is None

    @pytest.mark.parametrize(
        ("field", "value"),
        [
            ("account_sid", "AC123"),
            ("account_sid", "SK" + "0" * 32),
            ("account_sid", "AC" + "g" * 32),
            ("account_sid", "AC" + "0" * 33),
            ("account_sid", " AC" + "0" * 32),
            ("api_key_sid", "SK" + "0" * 31),
            ("messaging_service_sid", "MGxyz"),
            ("messaging_service_sid", ACCOUNT),
        ],
    )
    def test_sid_formats(self, field: str, value: str) -> None:
        """SIDs must be their two-letter prefix followed by exactly 32 hex digits."""
        extra = {"api_key_secret": KEY_SECRET} if field == "api_key_sid" else {}
        with pytest.raises(ConfigurationError, match=field):
            _settings(**{field: value, **extra})

    def test_sid_hex_in_either_case(self) -> None:
        """Upper and lower case hex digits are both accepted."""
        assert _settings(account_sid="AC" + "ABCDEF0123456789" * 2).account_sid.startswith("AC")

    @pytest.mark.parametrize("pair", [{"api_key_sid": API_KEY}, {"api_key_secret": KEY_SECRET}])
    def test_api_key_pair_rule(self, pair: dict[str, str]) -> None:
        """The API key SID and secret come together or not at all; both are named."""
        with pytest.raises(ConfigurationError) as caught:
            _settings(**pair)
        assert "api_key_sid" in str(caught.value)
        assert "api_key_secret" in str(caught.value)

    @pytest.mark.parametrize(
        "url",
        [
            "ftp://example.com/hook",
            "example.com/hook",
            "https://",
            "https://example.com/hook?x=1",
            "https://example.com/hook#frag",
            "https://example.com:99999/hook",
            "https://exa mple.com/hook",
            "https://exämple.com/hook",
            "http://[::1/hook",
        ],
    )
    def test_bad_webhook_base_url(self, url: str) -> None:
        """Only an absolute http(s) URL with a host, no query and no fragment is accepted."""
        with pytest.raises(ConfigurationError, match="webhook_base_url"):
            _settings(webhook_base_url=url)

    def test_bad_numbers(self) -> None:
        """Malformed sender numbers are reported by field name."""
        with pytest.raises(ConfigurationError) as caught:
            _settings(phone_number="12345", whatsapp_number="whatsapp:abc")
        assert "phone_number" in str(caught.value)
        assert "whatsapp_number" in str(caught.value)

    def test_every_problem_in_one_error(self) -> None:
        """One ConfigurationError names every malformed field at once."""
        with pytest.raises(ConfigurationError) as caught:
            TwilioSettings(
                account_sid="nope",
                auth_token="",
                api_key_sid="SKbad",
                phone_number="x",
                messaging_service_sid="MG1",
                webhook_base_url="ftp://x",
            )
        message = str(caught.value)
        for field in (
            "account_sid",
            "auth_token",
            "api_key_sid",
            "api_key_secret",
            "phone_number",
            "messaging_service_sid",
            "webhook_base_url",
        ):
            assert field in message

    def test_equality_and_hash(self) -> None:
        """Equal values make equal, hashable settings."""
        assert _settings(phone_number="+1 202 555 0100") == _settings(phone_number="+12025550100")
        assert hash(_settings()) == hash(_settings())

    def test_pickle_round_trip(self) -> None:
        """Settings pickle (for process pools) and come back equal."""
        settings = _settings(phone_number="+12025550100")
        assert pickle.loads(pickle.dumps(settings)) == settings


class TestHostileInput:
    @pytest.mark.parametrize(
        "value",
        [
            "",
            "   ",
            "\u00e9\u00e8",
            "tok\x00en",
            "tok\nen",
            "\u202etoken",
            123,
            12.5,
            b"token",
            ["token"],
            {"token": 1},
            object(),
        ],
    )
    @pytest.mark.parametrize(
        "field",
        [
            "account_sid",
            "auth_token",
            "api_key_sid",
            "api_key_secret",
            "phone_number",
            "whatsapp_number",
            "messaging_service_sid",
            "webhook_base_url",
            "secondary_auth_token",
            "default_region",
        ],
    )
    def test_bad_values_raise_configuration_error_only(self, field: str, value: object) -> None:
        """Empty, whitespace, unicode, control characters or wrong types: a ConfigurationError.

        Blank optional values are accepted as "not set"; everything else is refused.
        """
        blank = isinstance(value, str) and not value.strip()
        optional = field not in ("account_sid", "auth_token")
        extra: dict[str, Any] = {}
        if field == "api_key_sid":
            extra["api_key_secret"] = KEY_SECRET
        if field == "api_key_secret":
            extra["api_key_sid"] = API_KEY
        if blank and optional and not extra:
            assert getattr(_settings(**{field: value}), field) is None
            return
        with pytest.raises(ConfigurationError) as caught:
            _settings(**{field: value, **extra})
        assert field in str(caught.value)

    @pytest.mark.parametrize(
        "field",
        [
            "account_sid",
            "api_key_sid",
            "phone_number",
            "whatsapp_number",
            "messaging_service_sid",
            "webhook_base_url",
            "default_region",
        ],
    )
    def test_one_megabyte_strings(self, field: str) -> None:
        """A 1 MB value is refused with a short message (no value echoed)."""
        value = "1" * 1_000_000
        with pytest.raises(ConfigurationError) as caught:
            _settings(
                **{field: value, "api_key_secret": KEY_SECRET}
                if field == "api_key_sid"
                else {field: value}
            )
        assert field in str(caught.value)
        assert len(str(caught.value)) < 500

    def test_one_megabyte_environment(self) -> None:
        """Every variable at 1 MB: one ConfigurationError, short, naming them."""
        env = dict.fromkeys(FULL_ENV, "é" * 1000000)
        with pytest.raises(ConfigurationError) as caught:
            TwilioSettings.from_env(env)
        assert len(str(caught.value)) < 2000
        assert "TWILIO_ACCOUNT_SID" in str(caught.value)

    @pytest.mark.parametrize("environ", [["TWILIO_ACCOUNT_SID"], "TWILIO_ACCOUNT_SID=x", 42])
    def test_environ_of_the_wrong_type(self, environ: object) -> None:
        """A non-mapping environ is a ConfigurationError, not an AttributeError."""
        with pytest.raises(ConfigurationError, match="mapping"):
            TwilioSettings.from_env(environ)  # type: ignore[arg-type]

    def test_environment_values_of_the_wrong_type(self) -> None:
        """Non-string values in a mapping are named by their variable."""
        env: dict[str, Any] = {**FULL_ENV, "TWILIO_AUTH_TOKEN": 5, "TWILIO_PHONE_NUMBER": b"+1"}
        with pytest.raises(ConfigurationError) as caught:
            TwilioSettings.from_env(env)
        assert "TWILIO_AUTH_TOKEN" in str(caught.value)
        assert "TWILIO_PHONE_NUMBER" in str(caught.value)


class TestFromEnv:
    def test_every_variable(self) -> None:
        """Every documented variable lands in its field, normalized."""
        settings = TwilioSettings.from_env(FULL_ENV)
        assert settings == TwilioSettings(
            account_sid=ACCOUNT,
            auth_token=TOKEN,
            api_key_sid=API_KEY,
            api_key_secret=KEY_SECRET,
            phone_number="+12025550100",
            whatsapp_number="+5511999999999",
            messaging_service_sid=SERVICE,
            secondary_auth_token=SECONDARY,
            webhook_base_url="https://api.servio.ai/api/twilio/webhook",
            default_region="BR",
        )

    def test_reads_os_environ_by_default(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Without an argument it reads ``os.environ``."""
        for name in (*FULL_ENV, "BACKEND_URL"):
            monkeypatch.delenv(name, raising=False)
        monkeypatch.setenv("TWILIO_ACCOUNT_SID", ACCOUNT)
        monkeypatch.setenv("TWILIO_AUTH_TOKEN", TOKEN)
        monkeypatch.setenv("TWILIO_PHONE_NUMBER", "+12025550100")
        settings = TwilioSettings.from_env()
        assert settings.phone_number == "+12025550100"
        assert settings.account_sid == ACCOUNT

    def test_minimal_environment(self) -> None:
        """The two required variables alone give settings with nothing else set."""
        settings = TwilioSettings.from_env(
            {"TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": TOKEN, "UNRELATED": "x"}
        )
        assert settings == _settings()

    def test_whatsapp_number_with_or_without_prefix(self) -> None:
        """``TWILIO_WHATSAPP_NUMBER`` may carry ``whatsapp:`` or not; it is stored without."""
        base = {"TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": TOKEN}
        for value in ("whatsapp:+5511999999999", "+5511999999999", "WHATSAPP:+55 11 99999-9999"):
            settings = TwilioSettings.from_env({**base, "TWILIO_WHATSAPP_NUMBER": value})
            assert settings.whatsapp_number == "+5511999999999"

    @pytest.mark.parametrize(
        ("backend", "expected"),
        [
            ("https://api.servio.ai", "https://api.servio.ai/api/twilio/webhook"),
            ("https://api.servio.ai/", "https://api.servio.ai/api/twilio/webhook"),
            ("https://servio.ai/backend/", "https://servio.ai/backend/api/twilio/webhook"),
            (" http://localhost:8080 ", "http://localhost:8080/api/twilio/webhook"),
        ],
    )
    def test_backend_url_fallback(self, backend: str, expected: str) -> None:
        """Without ``TWILIO_WEBHOOK_BASE_URL``, ``BACKEND_URL`` + ``/api/twilio/webhook``."""
        env = {"TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": TOKEN, "BACKEND_URL": backend}
        assert TwilioSettings.from_env(env).webhook_base_url == expected

    def test_webhook_base_url_wins_over_backend_url(self) -> None:
        """An explicit base URL is used as is (without trailing slash), never suffixed."""
        env = {**FULL_ENV, "BACKEND_URL": "https://other.example"}
        assert (
            TwilioSettings.from_env(env).webhook_base_url
            == "https://api.servio.ai/api/twilio/webhook"
        )

    def test_blank_webhook_base_url_falls_back_to_backend_url(self) -> None:
        """A blank ``TWILIO_WEBHOOK_BASE_URL`` counts as unset."""
        env = {
            "TWILIO_ACCOUNT_SID": ACCOUNT,
            "TWILIO_AUTH_TOKEN": TOKEN,
            "TWILIO_WEBHOOK_BASE_URL": "  ",
            "BACKEND_URL": "https://api.servio.ai",
        }
        assert (
            TwilioSettings.from_env(env).webhook_base_url
            == "https://api.servio.ai/api/twilio/webhook"
        )

    def test_bad_backend_url_is_named_as_backend_url(self) -> None:
        """A malformed fallback is reported as ``BACKEND_URL``, the variable the user set."""
        env = {
            "TWILIO_ACCOUNT_SID": ACCOUNT,
            "TWILIO_AUTH_TOKEN": TOKEN,
            "TWILIO_WEBHOOK_BASE_URL": "",
            "BACKEND_URL": "ftp://x",
        }
        with pytest.raises(ConfigurationError) as caught:
            TwilioSettings.from_env(env)
        assert "BACKEND_URL" in str(caught.value)
        assert "TWILIO_WEBHOOK_BASE_URL" not in str(caught.value)

    def test_no_webhook_url_at_all(self) -> None:
        """Neither variable: no webhook base URL (sending without callbacks still works)."""
        env = {"TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": TOKEN}
        assert TwilioSettings.from_env(env).webhook_base_url is None

    def test_missing_required_variables(self) -> None:
        """An empty environment names both required variables in one error."""
        with pytest.raises(ConfigurationError) as caught:
            TwilioSettings.from_env({})
        assert "TWILIO_ACCOUNT_SID is required" in str(caught.value)
        assert "TWILIO_AUTH_TOKEN is required" in str(caught.value)

    def test_blank_required_variables(self) -> None:
        """Whitespace-only required variables count as missing."""
        with pytest.raises(ConfigurationError) as caught:
            TwilioSettings.from_env({"TWILIO_ACCOUNT_SID": " ", "TWILIO_AUTH_TOKEN": "\t\n"})
        assert "TWILIO_ACCOUNT_SID is required" in str(caught.value)
        assert "TWILIO_AUTH_TOKEN is required" in str(caught.value)

    def test_surrounding_whitespace_is_trimmed(self) -> None:
        """A trailing newline (a common secret-file artefact) does not end up in the token."""
        env = {"TWILIO_ACCOUNT_SID": f" {ACCOUNT}\n", "TWILIO_AUTH_TOKEN": f"{TOKEN}\n"}
        settings = TwilioSettings.from_env(env)
        assert settings.account_sid == ACCOUNT
        assert settings.auth_token == TOKEN

    def test_every_malformed_variable_in_one_error(self) -> None:
        """One ConfigurationError names each missing or malformed variable, by variable."""
        env = {
            "TWILIO_AUTH_TOKEN": "tok\x00",
            "TWILIO_API_KEY_SID": "SKnope",
            "TWILIO_PHONE_NUMBER": "abc",
            "TWILIO_WHATSAPP_NUMBER": "whatsapp:123",
            "TWILIO_MESSAGING_SERVICE_SID": "MG",
            "TWILIO_WEBHOOK_BASE_URL": "mailto:x@y",
            "TWILIO_DEFAULT_REGION": "Brasil",
        }
        with pytest.raises(ConfigurationError) as caught:
            TwilioSettings.from_env(env)
        message = str(caught.value)
        for name in (
            "TWILIO_ACCOUNT_SID",
            "TWILIO_AUTH_TOKEN",
            "TWILIO_API_KEY_SID",
            "TWILIO_API_KEY_SECRET",
            "TWILIO_PHONE_NUMBER",
            "TWILIO_WHATSAPP_NUMBER",
            "TWILIO_MESSAGING_SERVICE_SID",
            "TWILIO_WEBHOOK_BASE_URL",
            "TWILIO_DEFAULT_REGION",
        ):
            assert name in message
        assert "tok" not in message

    def test_configuration_error_is_a_value_error(self) -> None:
        """Callers may catch ValueError."""
        with pytest.raises(ValueError, match="TWILIO_ACCOUNT_SID"):
            TwilioSettings.from_env({})


class TestDefaultRegion:
    @pytest.mark.parametrize("value", ["BR", "br", " Br\n", "us"])
    def test_stored_upper_cased(self, value: str) -> None:
        """A region code is trimmed and stored upper-cased."""
        assert _settings(default_region=value).default_region == value.strip().upper()

    @pytest.mark.parametrize("value", [None, "", "  "])
    def test_blank_means_no_region(self, value: str | None) -> None:
        """None or a blank value leaves the region unset."""
        assert _settings(default_region=value).default_region is None

    @pytest.mark.parametrize(
        "value", ["B", "BRA", "Brazil", "B1", "+55", "XX", "UK", "\u00df", "\uff22\uff32", 55]
    )
    def test_bad_regions_are_named(self, value: object) -> None:
        """Not two letters, not a region phonenumbers knows (XX; UK is GB) or not a string:
        a ConfigurationError naming default_region (``ß`` is not upper-cased into ``SS``)."""
        with pytest.raises(ConfigurationError, match="default_region") as caught:
            _settings(default_region=value)
        assert isinstance(caught.value, ValueError)

    def test_national_sender_numbers_with_a_region(self) -> None:
        """With a region the sender numbers may be national; they are stored in E.164."""
        settings = _settings(
            default_region="BR",
            phone_number="(11) 3333-4444",
            whatsapp_number="whatsapp:11 99999-9999",
        )
        assert settings.phone_number == "+551133334444"
        assert settings.whatsapp_number == "+5511999999999"

    def test_international_sender_numbers_ignore_the_region(self) -> None:
        """A number with its + country code is read as given, whatever the region."""
        settings = _settings(default_region="BR", phone_number="+1 202 555 0100")
        assert settings.phone_number == "+12025550100"

    def test_national_sender_numbers_without_a_region(self) -> None:
        """Without a region a national sender number is refused, by field name."""
        with pytest.raises(ConfigurationError) as caught:
            _settings(phone_number="(11) 3333-4444", whatsapp_number="11 99999-9999")
        assert "phone_number" in str(caught.value)
        assert "whatsapp_number" in str(caught.value)

    def test_bad_region_and_national_number_both_named(self) -> None:
        """A bad region cannot read a national number: both are named in one error."""
        with pytest.raises(ConfigurationError) as caught:
            _settings(default_region="Brasil", phone_number="(11) 3333-4444")
        assert "default_region" in str(caught.value)
        assert "phone_number" in str(caught.value)

    def test_evolve_keeps_the_numbers(self) -> None:
        """attrs.evolve re-runs the checks; E.164 numbers stay valid with the region removed."""
        settings = _settings(default_region="BR", phone_number="(11) 3333-4444")
        assert attrs.evolve(settings, default_region=None).phone_number == "+551133334444"

    def test_pickle_round_trip(self) -> None:
        """Settings with a region pickle and come back equal."""
        settings = _settings(default_region="BR", phone_number="11 3333-4444")
        assert pickle.loads(pickle.dumps(settings)) == settings

    def test_from_env_with_the_variable(self) -> None:
        """``TWILIO_DEFAULT_REGION`` sets the region; sender numbers may then be national."""
        env = {
            "TWILIO_ACCOUNT_SID": ACCOUNT,
            "TWILIO_AUTH_TOKEN": TOKEN,
            "TWILIO_DEFAULT_REGION": " br ",
            "TWILIO_PHONE_NUMBER": "(11) 3333-4444",
            "TWILIO_WHATSAPP_NUMBER": "whatsapp:11 99999-9999",
        }
        settings = TwilioSettings.from_env(env)
        assert settings.default_region == "BR"
        assert settings.phone_number == "+551133334444"
        assert settings.whatsapp_number == "+5511999999999"

    @pytest.mark.parametrize(
        "env", [{}, {"TWILIO_DEFAULT_REGION": ""}, {"TWILIO_DEFAULT_REGION": " "}]
    )
    def test_from_env_without_the_variable(self, env: dict[str, str]) -> None:
        """Absent or blank ``TWILIO_DEFAULT_REGION``: no region."""
        base = {"TWILIO_ACCOUNT_SID": ACCOUNT, "TWILIO_AUTH_TOKEN": TOKEN}
        assert TwilioSettings.from_env({**base, **env}).default_region is None

    def test_from_env_national_number_without_the_variable(self) -> None:
        """Without a region, a national ``TWILIO_PHONE_NUMBER`` is named as malformed."""
        env = {
            "TWILIO_ACCOUNT_SID": ACCOUNT,
            "TWILIO_AUTH_TOKEN": TOKEN,
            "TWILIO_PHONE_NUMBER": "(11) 3333-4444",
        }
        with pytest.raises(ConfigurationError, match="TWILIO_PHONE_NUMBER"):
            TwilioSettings.from_env(env)

    @pytest.mark.parametrize("value", ["Brazil", "55", "XX", "B R"])
    def test_from_env_bad_region_in_the_one_error(self, value: str) -> None:
        """A bad ``TWILIO_DEFAULT_REGION`` is named in the same error as the other problems."""
        env = {"TWILIO_AUTH_TOKEN": TOKEN, "TWILIO_DEFAULT_REGION": value}
        with pytest.raises(ConfigurationError) as caught:
            TwilioSettings.from_env(env)
        message = str(caught.value)
        assert "TWILIO_ACCOUNT_SID is required" in message
        assert "TWILIO_DEFAULT_REGION" in message


class TestRequireSenders:
    def test_sms_with_phone_number(self) -> None:
        """A phone number is enough to send SMS."""
        _settings(phone_number="+12025550100").require_sms_sender()

    def test_sms_with_messaging_service(self) -> None:
        """A messaging service is enough to send SMS."""
        _settings(messaging_service_sid=SERVICE).require_sms_sender()

    def test_sms_without_sender(self) -> None:
        """Neither: ConfigurationError naming both ways to fix it."""
        with pytest.raises(ConfigurationError) as caught:
            _settings(whatsapp_number="+5511999999999").require_sms_sender()
        assert "TWILIO_PHONE_NUMBER" in str(caught.value)
        assert "TWILIO_MESSAGING_SERVICE_SID" in str(caught.value)

    def test_whatsapp_with_number(self) -> None:
        """A WhatsApp number is enough to send WhatsApp."""
        _settings(whatsapp_number="whatsapp:+5511999999999").require_whatsapp_sender()

    def test_whatsapp_without_number(self) -> None:
        """An SMS number does not make a WhatsApp sender."""
        settings = _settings(phone_number="+12025550100", messaging_service_sid=SERVICE)
        with pytest.raises(ConfigurationError, match="TWILIO_WHATSAPP_NUMBER"):
            settings.require_whatsapp_sender()

    def test_voice_with_phone_number(self) -> None:
        """A phone number is enough to make calls."""
        _settings(phone_number="+12025550100").require_voice_sender()

    def test_voice_without_phone_number(self) -> None:
        """A messaging service or WhatsApp number cannot place calls."""
        settings = _settings(messaging_service_sid=SERVICE, whatsapp_number="+5511999999999")
        with pytest.raises(ConfigurationError, match="TWILIO_PHONE_NUMBER"):
            settings.require_voice_sender()


class TestSecrets:
    def test_not_in_repr_or_str(self) -> None:
        """No secret appears in repr or str of fully configured settings."""
        settings = TwilioSettings.from_env(FULL_ENV)
        for text in (repr(settings), str(settings), f"{settings}", f"{settings!r}"):
            for secret in SECRETS:
                assert secret not in text
        assert ACCOUNT in repr(settings)

    @pytest.mark.parametrize(
        "bad_secret",
        [
            "tok\x00secret-\u00e9-7f3a9c",
            "tok\nsecret-7f3a9c",
            "secret-\u2028-7f3a9c",
        ],
    )
    def test_malformed_secrets_not_in_errors_or_logs(
        self, bad_secret: str, caplog: pytest.LogCaptureFixture
    ) -> None:
        """A malformed secret is reported by name only: not in the error, its chain, or logs."""
        caplog.set_level(logging.DEBUG)
        env = {
            **FULL_ENV,
            "TWILIO_AUTH_TOKEN": bad_secret,
            "TWILIO_SECONDARY_AUTH_TOKEN": bad_secret + "2",
            "TWILIO_API_KEY_SECRET": bad_secret + "3",
            "TWILIO_PHONE_NUMBER": "nope",
        }
        with pytest.raises(ConfigurationError) as caught:
            TwilioSettings.from_env(env)
        texts = list(_error_texts(caught.value))
        assert "TWILIO_AUTH_TOKEN" in texts[0]
        assert "TWILIO_SECONDARY_AUTH_TOKEN" in texts[0]
        assert "TWILIO_API_KEY_SECRET" in texts[0]
        fragment = "secret-"
        for text in [*texts, caplog.text]:
            assert fragment not in text
            assert "7f3a9c" not in text

    def test_valid_secrets_not_in_errors_about_other_fields(
        self, caplog: pytest.LogCaptureFixture
    ) -> None:
        """An error about another field does not echo the valid secrets next to it."""
        caplog.set_level(logging.DEBUG)
        with pytest.raises(ConfigurationError) as caught:
            _settings(
                account_sid=TOKEN,
                secondary_auth_token=SECONDARY,
                api_key_sid=API_KEY,
                api_key_secret=KEY_SECRET,
                phone_number=TOKEN,
                webhook_base_url=KEY_SECRET,
            )
        for text in [*_error_texts(caught.value), caplog.text]:
            for secret in SECRETS:
                assert secret not in text

    def test_sender_errors_do_not_echo_secrets(self) -> None:
        """The require_* errors name variables, never values."""
        settings = _settings(secondary_auth_token=SECONDARY)
        for check in (
            settings.require_sms_sender,
            settings.require_whatsapp_sender,
            settings.require_voice_sender,
        ):
            with pytest.raises(ConfigurationError) as caught:
                check()
            for text in _error_texts(caught.value):
                assert TOKEN not in text
                assert SECONDARY not in text
