"""Phone numbers: E.164 normalization and masking for logs."""

from __future__ import annotations

import re

from servio_twilio.errors import InvalidPhoneNumber

__all__ = [
    "E164_PATTERN",
    "WHATSAPP_PREFIX",
    "has_channel_prefix",
    "mask_phone",
    "mask_phone_numbers",
    "normalize_e164",
    "strip_channel_prefix",
]

_MAX_INPUT = 64  # longer than any formatted number; refuses 1 MB inputs cheaply
E164_PATTERN = re.compile(r"\+[1-9][0-9]{6,14}")
"""An E.164 number: ``+``, a non-zero digit, then 6 to 14 digits."""
# Digits with the usual formatting; letters, extensions and a second "+" are refused.
_DIALABLE = re.compile(r"\+?[0-9 ().\-/]+")
WHATSAPP_PREFIX = "whatsapp:"
"""What Twilio puts before a WhatsApp address (``whatsapp:+5511999999999``)."""
# phonenumbers.ValidationResult values: INVALID_COUNTRY_CODE 1, TOO_SHORT 2, TOO_LONG 3.
_POSSIBLE_REASONS = {1: "unknown country code", 2: "too short", 3: "too long"}
_PARSE_REASONS = {
    0: "unknown country code",
    1: "not a phone number",
    2: "too short after the international prefix",
    3: "too short",
    4: "too long",
}


def has_channel_prefix(raw: str) -> bool:
    """True when ``raw`` starts with ``whatsapp:`` (any case), after leading blanks."""
    return raw.lstrip()[: len(WHATSAPP_PREFIX)].lower() == WHATSAPP_PREFIX


def strip_channel_prefix(raw: str) -> str:
    """``raw`` without a leading ``whatsapp:`` (any case) and surrounding blanks."""
    text = raw.strip()
    if has_channel_prefix(text):
        return text[len(WHATSAPP_PREFIX) :].strip()
    return text


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
    if len(raw) > _MAX_INPUT:
        raise InvalidPhoneNumber(raw, f"longer than {_MAX_INPUT} characters")
    text = strip_channel_prefix(raw)
    if not text:
        raise InvalidPhoneNumber(raw, "empty")
    if not text.isascii():
        raise InvalidPhoneNumber(raw, "contains non-ASCII characters")
    if not _DIALABLE.fullmatch(text):
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


def mask_phone(number: object) -> str:
    """Mask a phone number for logs: ``+5511999999999`` -> ``+55119*****999``.

    Formatting is dropped; the leading ``+``, the first five digits (country
    and area) and the last three digits are kept, the rest become ``*``
    (numbers of six to eight digits keep one digit ahead and two behind).
    A ``whatsapp:`` prefix is kept. Never raises: anything that is not a
    plausible phone number (not a string, letters, too short, too long)
    masks fully as ``***``.

    New in 0.1.0.
    """
    if not isinstance(number, str):
        return "***"
    prefix = ""
    text = number[: _MAX_INPUT * 2].strip()
    if has_channel_prefix(text):
        prefix, text = WHATSAPP_PREFIX, text[len(WHATSAPP_PREFIX) :].strip()
    if len(text) > _MAX_INPUT or not text.isascii() or not _DIALABLE.fullmatch(text):
        return prefix + "***"
    plus = "+" if text.startswith("+") else ""
    digits = "".join(char for char in text if char.isdigit())
    if 9 <= len(digits) <= 15:
        head, tail = 5, 3
    elif 6 <= len(digits) <= 8:
        head, tail = 1, 2
    else:
        return prefix + "***"
    hidden = len(digits) - head - tail
    return prefix + plus + digits[:head] + "*" * hidden + digits[-tail:]


_NUMBER_IN_TEXT = re.compile(r"(?:\+|%2[Bb])[1-9][0-9]{6,14}(?![0-9])")


def mask_phone_numbers(text: str) -> str:
    """``text`` with every E.164 number in it masked (also URL-encoded, ``%2B...``).

    For log lines written by code that is not ours, such as twilio's request log.
    """

    def mask(match: re.Match[str]) -> str:
        found = match.group(0)
        if found[0] == "%":
            return "%2B" + mask_phone("+" + found[3:])[1:]
        return mask_phone(found)

    return _NUMBER_IN_TEXT.sub(mask, text)
