"""Phone numbers: E.164 normalization with ``phonenumbers``."""

from __future__ import annotations

import re

from servio_twilio.domain.errors import InvalidPhoneNumber
from servio_twilio.domain.phone_text import (
    DIALABLE_PATTERN,
    MAX_NUMBER_CHARS,
    strip_channel_prefix,
)

__all__ = ["E164_PATTERN", "normalize_e164"]

E164_PATTERN = re.compile(r"\+[1-9][0-9]{6,14}")
"""An E.164 number: ``+``, a non-zero digit, then 6 to 14 digits."""
# phonenumbers.ValidationResult values: INVALID_COUNTRY_CODE 1, TOO_SHORT 2, TOO_LONG 3.
_POSSIBLE_REASONS = {1: "unknown country code", 2: "too short", 3: "too long"}
_PARSE_REASONS = {
    0: "unknown country code",
    1: "not a phone number",
    2: "too short after the international prefix",
    3: "too short",
    4: "too long",
}


def normalize_e164(raw: object, default_region: str | None = None) -> str:
    """Return ``raw`` as an E.164 number (``+5511999999999``).

    Accepts formatted international numbers (``+55 11 99999-9999``: digits,
    a leading ``+``, spaces and ``( ) . - /``), a ``whatsapp:`` prefix in any
    case, and national numbers when ``default_region`` (an ISO country code
    such as ``"BR"``) is given. Letters, extensions and non-ASCII digits are
    refused.

    Raises:
        InvalidPhoneNumber: for anything that is not a valid number, with
            ``.raw`` (the input as given) and ``.reason``.

    New in 0.1.0.
    """
    text = _dialable_text(raw, default_region)

    import phonenumbers  # noqa: PLC0415 - kept out of `import servio_twilio`

    try:
        parsed = phonenumbers.parse(text, default_region.upper() if default_region else None)
    except phonenumbers.NumberParseException as exc:
        reason = _PARSE_REASONS.get(exc.error_type, "not a phone number")
        if exc.error_type == 0 and not text.startswith("+"):
            reason = f"default_region {default_region!r:.20} is not a known region"
        raise InvalidPhoneNumber(raw, reason) from None
    if not phonenumbers.is_valid_number(parsed):
        possible = phonenumbers.is_possible_number_with_reason(parsed)
        raise InvalidPhoneNumber(
            raw, _POSSIBLE_REASONS.get(possible, "not a valid number for its country")
        )
    number: str = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if not E164_PATTERN.fullmatch(number):  # pragma: no cover - phonenumbers guarantees this
        raise InvalidPhoneNumber(raw, "not representable in E.164")
    return number


def _dialable_text(raw: object, default_region: object) -> str:
    """``raw`` without its prefix, once the checks that need no phonenumbers pass."""
    if not isinstance(raw, str):
        raise InvalidPhoneNumber(raw, f"expected a string, got {type(raw).__name__}")
    if len(raw) > MAX_NUMBER_CHARS:
        raise InvalidPhoneNumber(raw, f"longer than {MAX_NUMBER_CHARS} characters")
    text = strip_channel_prefix(raw)
    if not text:
        raise InvalidPhoneNumber(raw, "empty")
    if not text.isascii():
        raise InvalidPhoneNumber(raw, "contains non-ASCII characters")
    if not DIALABLE_PATTERN.fullmatch(text):
        raise InvalidPhoneNumber(raw, "only digits, a leading +, spaces and ( ) . - / are allowed")
    if default_region is not None and not isinstance(default_region, str):
        kind = type(default_region).__name__
        raise InvalidPhoneNumber(raw, f"default_region must be a country code string, not {kind}")
    if default_region is not None and not re.fullmatch(r"[A-Za-z]{2}", default_region):
        raise InvalidPhoneNumber(
            raw, f"default_region {default_region!r:.20} is not a country code"
        )
    if not text.startswith("+") and default_region is None:
        raise InvalidPhoneNumber(raw, "no country code: start with + or pass default_region")
    return text
