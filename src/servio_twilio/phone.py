"""Phone numbers: E.164 normalization and masking for logs."""

from __future__ import annotations

import re

from servio_twilio.errors import InvalidPhoneNumber

__all__ = ["mask_phone", "normalize_e164", "strip_channel_prefix"]

_MAX_INPUT = 64  # longer than any formatted number; refuses 1 MB inputs cheaply
_E164 = re.compile(r"\+[1-9][0-9]{6,14}")
_PREFIX = "whatsapp:"


def strip_channel_prefix(raw: str) -> str:
    """``raw`` without a leading ``whatsapp:`` (any case) and surrounding blanks."""
    text = raw.strip()
    if text[: len(_PREFIX)].lower() == _PREFIX:
        return text[len(_PREFIX) :].strip()
    return text


def normalize_e164(raw: object, default_region: str | None = None) -> str:
    """Return ``raw`` as an E.164 number (``+5511999999999``).

    Accepts formatted international numbers (``+55 11 99999-9999``), a
    ``whatsapp:`` prefix, and national numbers when ``default_region`` (an ISO
    country code such as ``"BR"``) is given.

    Raises:
        InvalidPhoneNumber: for anything that is not a valid number.
    """
    if not isinstance(raw, str):
        raise InvalidPhoneNumber(raw, f"expected a string, got {type(raw).__name__}")
    if len(raw) > _MAX_INPUT:
        raise InvalidPhoneNumber(raw, f"longer than {_MAX_INPUT} characters")
    text = strip_channel_prefix(raw)
    if not text:
        raise InvalidPhoneNumber(raw, "empty")
    if not text.isascii():
        raise InvalidPhoneNumber(raw, "contains non-ASCII characters")
    if default_region is not None and (
        not isinstance(default_region, str) or not re.fullmatch(r"[A-Za-z]{2}", default_region)
    ):
        raise InvalidPhoneNumber(raw, f"default_region {default_region!r} is not a country code")
    if not text.startswith("+") and default_region is None:
        raise InvalidPhoneNumber(raw, "no country code: start with + or pass default_region")

    import phonenumbers  # noqa: PLC0415 - kept out of `import servio_twilio`

    try:
        parsed = phonenumbers.parse(text, default_region.upper() if default_region else None)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(raw, _parse_reason(exc)) from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneNumber(raw, "not a valid number for its country")
    number: str = phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)
    if not _E164.fullmatch(number):  # pragma: no cover - phonenumbers guarantees this
        raise InvalidPhoneNumber(raw, "not representable in E.164")
    return number


def _parse_reason(exc: Exception) -> str:
    text = str(exc)
    # phonenumbers prefixes "(N) Error type: N. "; keep the sentence after it.
    return text.rsplit(". ", 1)[-1].strip().rstrip(".").lower() or "unparseable"


def mask_phone(number: object) -> str:
    """Mask a phone number for logs: ``+5511999999999`` -> ``+55119*****999``.

    Keeps the country and area prefix and the last three digits; never raises.
    A ``whatsapp:`` prefix is kept. Anything that is not a string masks fully.
    """
    if not isinstance(number, str):
        return "***"
    prefix = ""
    text = number.strip()
    if text[: len(_PREFIX)].lower() == _PREFIX:
        prefix, text = _PREFIX, text[len(_PREFIX) :]
    text = text[:_MAX_INPUT]
    length = len(text)
    if length >= 10:
        shown_head, shown_tail = 6, 3
    elif length >= 6:
        shown_head, shown_tail = 2, 2
    else:
        return prefix + "*" * max(length, 3)
    return (
        prefix + text[:shown_head] + "*" * (length - shown_head - shown_tail) + text[-shown_tail:]
    )
