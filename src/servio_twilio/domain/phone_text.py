"""Phone numbers as text, without ``phonenumbers``: the ``whatsapp:`` prefix and masking.

The error messages mask numbers too, so this module imports nothing of ours.
"""

from __future__ import annotations

import re

__all__ = [
    "DIALABLE_PATTERN",
    "MAX_NUMBER_CHARS",
    "WHATSAPP_PREFIX",
    "has_channel_prefix",
    "mask_phone",
    "mask_phone_numbers",
    "strip_channel_prefix",
]

MAX_NUMBER_CHARS = 64
"""Longer than any formatted number: longer inputs are refused (or masked) cheaply."""
DIALABLE_PATTERN = re.compile(r"\+?[0-9 ().\-/]+")
"""Digits with the usual formatting; letters, extensions and a second ``+`` are refused."""
WHATSAPP_PREFIX = "whatsapp:"
"""What Twilio puts before a WhatsApp address (``whatsapp:+5511999999999``)."""


def has_channel_prefix(raw: str) -> bool:
    """True when ``raw`` starts with ``whatsapp:`` (any case), after leading blanks."""
    return raw.lstrip()[: len(WHATSAPP_PREFIX)].lower() == WHATSAPP_PREFIX


def strip_channel_prefix(raw: str) -> str:
    """``raw`` without a leading ``whatsapp:`` (any case) and surrounding blanks."""
    text = raw.strip()
    if has_channel_prefix(text):
        return text[len(WHATSAPP_PREFIX) :].strip()
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
    text = number[: MAX_NUMBER_CHARS * 2].strip()
    if has_channel_prefix(text):
        prefix, text = WHATSAPP_PREFIX, text[len(WHATSAPP_PREFIX) :].strip()
    if len(text) > MAX_NUMBER_CHARS or not text.isascii() or not DIALABLE_PATTERN.fullmatch(text):
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


# An E.164 number (also URL-encoded), or a bare run of 7 to 15 digits that is
# a token of its own: digits inside a longer word (a record id such as
# ``2b1ce62089a948c97``, a SID) are not a number and stay.
_NUMBER_IN_TEXT = re.compile(
    r"(?:\+|%2[Bb])[1-9][0-9]{6,14}(?![0-9])|(?<![0-9A-Za-z_])[0-9]{7,15}(?![0-9A-Za-z_])"
)


def mask_phone_numbers(text: str) -> str:
    """``text`` with every phone number in it masked, and nothing else changed.

    Masks E.164 numbers (``+5511999999999``, URL-encoded ``%2B5511999999999``)
    and bare runs of 7 to 15 digits that stand alone (``n=5511999999999``);
    digits inside a longer word, such as a record id or a SID, are kept. For
    log lines: twilio's request log, the URLs a refused webhook was verified
    against.
    """

    def mask(match: re.Match[str]) -> str:
        found = match.group(0)
        if found[0] == "%":
            return "%2B" + mask_phone("+" + found[3:])[1:]
        return mask_phone(found)

    return _NUMBER_IN_TEXT.sub(mask, text)
