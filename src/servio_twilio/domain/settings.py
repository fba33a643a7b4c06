"""Twilio credentials, sender numbers and the public webhook URL."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from urllib.parse import urlsplit

import attrs

from servio_twilio.domain.errors import ConfigurationError, InvalidPhoneNumber
from servio_twilio.domain.phone import E164_PATTERN, normalize_e164
from servio_twilio.domain.phone_text import strip_channel_prefix

__all__ = ["TwilioSettings", "check_settings"]

_SID_PREFIX = {"account_sid": "AC", "api_key_sid": "SK", "messaging_service_sid": "MG"}
_SID = {field: re.compile(prefix + r"[0-9a-fA-F]{32}") for field, prefix in _SID_PREFIX.items()}
_SECRETS = ("auth_token", "api_key_secret", "secondary_auth_token")
_NUMBERS = ("phone_number", "whatsapp_number")
_REGION = re.compile(r"[A-Z]{2}")

_ENV = {
    "account_sid": "TWILIO_ACCOUNT_SID",
    "auth_token": "TWILIO_AUTH_TOKEN",
    "api_key_sid": "TWILIO_API_KEY_SID",
    "api_key_secret": "TWILIO_API_KEY_SECRET",
    "phone_number": "TWILIO_PHONE_NUMBER",
    "whatsapp_number": "TWILIO_WHATSAPP_NUMBER",
    "messaging_service_sid": "TWILIO_MESSAGING_SERVICE_SID",
    "secondary_auth_token": "TWILIO_SECONDARY_AUTH_TOKEN",
    "webhook_base_url": "TWILIO_WEBHOOK_BASE_URL",
    "default_region": "TWILIO_DEFAULT_REGION",
}
_WEBHOOK_PATH = "/api/twilio/webhook"


def _blank_to_none(value: str | None) -> str | None:
    if not isinstance(value, str):
        return value  # None, or a wrong type the checks report with its field name
    text = value.strip()
    return text or None


def _number(value: str | None, region: object = None) -> str | None:
    """``value`` in E.164 (national form read in ``region``), else as given for the checks."""
    text = _blank_to_none(value)
    if text is None or not isinstance(text, str):
        return text
    text = strip_channel_prefix(text)
    usable = region if isinstance(region, str) and _REGION.fullmatch(region) else None
    try:
        return normalize_e164(text, usable)
    except InvalidPhoneNumber:
        return text  # kept as given; the checks report it


def _region(value: str | None) -> str | None:
    """``value`` trimmed and upper-cased (``"br"`` -> ``"BR"``); blank means None."""
    text = _blank_to_none(value)
    # Only ASCII is upper-cased: "ß".upper() is "SS", a region the caller never named.
    return text.upper() if isinstance(text, str) and text.isascii() else text


def _url(value: str | None) -> str | None:
    text = _blank_to_none(value)
    return text.rstrip("/") if isinstance(text, str) else text


@attrs.frozen(kw_only=True)
class TwilioSettings:
    """What the client and the webhook apps need to know about a Twilio account.

    Secrets (``auth_token``, ``api_key_secret``, ``secondary_auth_token``) never
    appear in ``repr``, ``str``, logs or error messages. Phone numbers are
    normalized to E.164 (a ``whatsapp:`` prefix is accepted and dropped);
    ``webhook_base_url`` loses its trailing slash.

    ``default_region`` (optional) is a two-letter ISO 3166 region code such as
    ``"BR"``, stored upper-cased. With it, national numbers (``11 99999-9999``)
    are accepted wherever the library takes a number: the sender numbers
    here, and every send's ``to``. Without it, numbers need their ``+``
    country code.

    Raises:
        ConfigurationError: naming every missing or malformed field at once.

    New in 0.1.0.
    """

    account_sid: str
    auth_token: str = attrs.field(repr=False)
    api_key_sid: str | None = attrs.field(default=None, converter=_blank_to_none)
    api_key_secret: str | None = attrs.field(default=None, repr=False, converter=_blank_to_none)
    phone_number: str | None = attrs.field(default=None, converter=_number)
    whatsapp_number: str | None = attrs.field(default=None, converter=_number)
    messaging_service_sid: str | None = attrs.field(default=None, converter=_blank_to_none)
    webhook_base_url: str | None = attrs.field(default=None, converter=_url)
    secondary_auth_token: str | None = attrs.field(
        default=None, repr=False, converter=_blank_to_none
    )
    default_region: str | None = attrs.field(default=None, converter=_region)

    def __attrs_post_init__(self) -> None:
        if self.default_region is not None:
            # The converters ran before the region was known: read national numbers now.
            for field in _NUMBERS:
                value = getattr(self, field)
                if isinstance(value, str) and not E164_PATTERN.fullmatch(value):
                    object.__setattr__(self, field, _number(value, self.default_region))
        problems = _problems(attrs.asdict(self))
        if problems:
            raise ConfigurationError(
                "invalid Twilio settings: " + "; ".join(f"{k} {v}" for k, v in problems.items())
            )

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> TwilioSettings:
        """Read the settings from environment variables.

        ``TWILIO_ACCOUNT_SID`` and ``TWILIO_AUTH_TOKEN`` are required; also read:
        ``TWILIO_API_KEY_SID``, ``TWILIO_API_KEY_SECRET``, ``TWILIO_PHONE_NUMBER``,
        ``TWILIO_WHATSAPP_NUMBER`` (with or without ``whatsapp:``),
        ``TWILIO_MESSAGING_SERVICE_SID``, ``TWILIO_SECONDARY_AUTH_TOKEN``,
        ``TWILIO_WEBHOOK_BASE_URL`` (else ``BACKEND_URL`` + ``/api/twilio/webhook``)
        and ``TWILIO_DEFAULT_REGION`` (a region code such as ``BR``; the sender
        numbers may then be national).

        Raises:
            ConfigurationError: naming every missing or malformed variable.
        """
        env = os.environ if environ is None else environ
        if not isinstance(env, Mapping):
            raise ConfigurationError(
                f"environ must be a mapping of variable names, not {type(env).__name__}"
            )
        values: dict[str, str | None] = {
            field: _blank_to_none(env.get(var)) for field, var in _ENV.items()
        }
        if values["webhook_base_url"] is None:
            backend = _url(env.get("BACKEND_URL"))
            if backend:
                values["webhook_base_url"] = backend + _WEBHOOK_PATH
        region = _region(values["default_region"])
        normalized = {
            "phone_number": _number(values["phone_number"], region),
            "whatsapp_number": _number(values["whatsapp_number"], region),
            "webhook_base_url": _url(values["webhook_base_url"]),
            "default_region": region,
        }
        values.update(normalized)
        problems = _problems(values)
        if problems:
            named = []
            for field, problem in problems.items():
                var = _ENV[field]
                if field == "webhook_base_url" and _blank_to_none(env.get(var)) is None:
                    var = "BACKEND_URL"
                named.append(f"{var} {problem}")
            raise ConfigurationError("invalid Twilio environment: " + "; ".join(named))
        return cls(**values)  # type: ignore[arg-type]

    @property
    def uses_api_key(self) -> bool:
        """Whether requests authenticate with an API key rather than the auth token."""
        return self.api_key_sid is not None

    def require_sms_sender(self) -> None:
        """Raise `ConfigurationError` unless SMS can be sent (a number or a messaging service)."""
        if self.phone_number is None and self.messaging_service_sid is None:
            raise ConfigurationError(
                "sending SMS needs phone_number (TWILIO_PHONE_NUMBER) or "
                "messaging_service_sid (TWILIO_MESSAGING_SERVICE_SID)"
            )

    def require_whatsapp_sender(self) -> None:
        """Raise `ConfigurationError` unless WhatsApp can be sent (a WhatsApp number)."""
        if self.whatsapp_number is None:
            raise ConfigurationError(
                "sending WhatsApp needs whatsapp_number (TWILIO_WHATSAPP_NUMBER)"
            )

    def require_voice_sender(self) -> None:
        """Raise `ConfigurationError` unless calls can be made (a phone number)."""
        if self.phone_number is None:
            raise ConfigurationError("making calls needs phone_number (TWILIO_PHONE_NUMBER)")


def _problems(values: Mapping[str, object]) -> dict[str, str]:
    """Every problem with the given field values, by field name; never echoes a secret."""
    problems: dict[str, str] = {}
    for field in ("account_sid", "auth_token"):
        value = values.get(field)
        if value is None or (isinstance(value, str) and not value.strip()):
            problems[field] = "is required"
    for field, value in values.items():
        if field in problems or value is None:
            continue
        reason = _value_problem(field, value, has_region=values.get("default_region") is not None)
        if reason:
            problems[field] = reason
    if (values.get("api_key_sid") is None) != (values.get("api_key_secret") is None):
        for field in ("api_key_sid", "api_key_secret"):
            problems.setdefault(field, "must be set together with its pair (API key auth)")
    return problems


def _value_problem(field: str, value: object, *, has_region: bool) -> str | None:
    """What is wrong with one set field's value, or None; never echoes the value."""
    if not isinstance(value, str):
        return f"must be a string, not {type(value).__name__}"
    if field in _SID and not _SID[field].fullmatch(value):
        return f"must be {_SID_PREFIX[field]} followed by 32 hex digits"
    if field in _SECRETS and (not value.isprintable() or not value.isascii()):
        return "must be printable ASCII"
    if field in _NUMBERS and not E164_PATTERN.fullmatch(value):
        reason = "must be a valid phone number in E.164 form (+5511999999999)"
        return reason + " or in national form for default_region" if has_region else reason
    check = _FORMAT_CHECKS.get(field)
    return check(value) if check is not None else None


def _region_problem(value: str) -> str | None:
    """Why ``value`` is not a region code ``phonenumbers`` can read national numbers in."""
    if not _REGION.fullmatch(value):
        return "must be a two-letter ISO 3166 region code such as BR"

    import phonenumbers  # noqa: PLC0415 - only settings with a region pay for it

    if value not in phonenumbers.SUPPORTED_REGIONS:
        return "is not a region with phone numbers (an ISO 3166 code such as BR or US)"
    return None


def _url_problem(value: str) -> str | None:
    if not value.isascii() or not value.isprintable() or " " in value:
        return "must be an http(s) URL of printable ASCII with no spaces"
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port out of range
    except ValueError:
        return "must be an http(s) URL"
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return "must be an http(s) URL with a host"
    if parts.query or parts.fragment:
        return "must not have a query or fragment"
    return None


_FORMAT_CHECKS: dict[str, Callable[[str], str | None]] = {
    "default_region": _region_problem,
    "webhook_base_url": _url_problem,
}


def check_settings(settings: object) -> TwilioSettings | None:
    """``settings`` itself; `ConfigurationError` unless None or `TwilioSettings`."""
    if settings is not None and not isinstance(settings, TwilioSettings):
        raise ConfigurationError(f"settings must be TwilioSettings, not {type(settings).__name__}")
    return settings
