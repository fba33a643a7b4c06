"""The HTTP side of the webhook: requests and answers as the adapters see them.

`WebhookRequest` is what an adapter (ASGI or WSGI) read; `WebhookResponse` what
it sends back. The helpers read what Twilio posts: the content type, the
form-encoded body (decoded once; the verifier, the event parser and the kept
event all use that one decoding) and the ``cid`` query parameter. All of it is
pure and does no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final
from urllib.parse import unquote_to_bytes

import attrs

__all__ = [
    "EMPTY_TWIML",
    "FORM",
    "WebhookRequest",
    "WebhookResponse",
    "content_type_ok",
    "declared_length",
    "decode_form",
    "plain",
    "query_cid",
    "twiml",
]

FORM: Final = "application/x-www-form-urlencoded"
EMPTY_TWIML: Final = "<Response/>"
_CHARSETS: Final = frozenset({"utf-8", "utf8", "us-ascii", "ascii"})
_MAX_FIELDS: Final = 1000


def declared_length(value: str) -> int | None:
    """A ``Content-Length`` as a number, or None when it is not ASCII digits."""
    text = value.strip()
    # str.isdigit alone accepts "²" and other digits int() refuses.
    return int(text) if text.isascii() and text.isdigit() else None


@attrs.frozen(kw_only=True)
class WebhookRequest:
    """One HTTP request, as an adapter read it.

    ``route`` is the path relative to the mount point (``/message-status``);
    ``raw_path`` the full path as received (undecoded, without the query);
    ``query`` the raw query string; ``host`` the ``Host`` header (or the
    server's address); ``headers`` has lower-case names, values decoded as
    Latin-1. ``body_complete`` is False when the adapter stopped reading
    because the body was over ``max_body_bytes``.
    """

    method: str
    route: str
    raw_path: str
    query: str
    scheme: str
    host: str
    headers: Mapping[str, str]
    body: bytes
    body_complete: bool = True


@attrs.frozen
class WebhookResponse:
    """What to answer: status, headers (lower-case names) and body."""

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def plain(status: int, text: str, *extra: tuple[str, str]) -> WebhookResponse:
    """A ``text/plain`` answer, with any ``extra`` headers."""
    return WebhookResponse(
        status, (("content-type", "text/plain; charset=utf-8"), *extra), text.encode()
    )


def twiml(text: str) -> WebhookResponse:
    """A ``200 text/xml`` answer carrying TwiML."""
    return WebhookResponse(200, (("content-type", "text/xml"),), text.encode("utf-8"))


def content_type_ok(value: str | None) -> bool:
    """True for ``application/x-www-form-urlencoded``, with no charset or a UTF-8/ASCII one."""
    if not value:
        return False
    kind, _, rest = value.partition(";")
    if kind.strip().lower() != FORM:
        return False
    for param in rest.split(";"):
        name, _, charset = param.partition("=")
        if (
            name.strip().lower() == "charset"
            and charset.strip().strip('"').lower() not in _CHARSETS
        ):
            return False
    return True


def _unquote(text: str) -> str:
    """A form-encoded name or value decoded (``+`` is a space); UnicodeError if not UTF-8.

    Percent-decoding the text's UTF-8 bytes, then decoding them strictly, gives
    what ``urllib.parse.unquote(text, errors="strict")`` gives, and fails when it
    does, for any text without lone surrogates; it skips unquote's per-run
    splitting, which is most of its cost.
    """
    if "+" in text:
        text = text.replace("+", " ")
    return unquote_to_bytes(text).decode("utf-8") if "%" in text else text


def decode_form(body: bytes) -> dict[str, str | list[str]] | None:
    """The form fields (a list for a repeated field), or None when undecodable.

    Reads as ``urllib.parse.parse_qsl(..., keep_blank_values=True)`` does (empty
    pieces skipped, a piece without ``=`` an empty value), strictly in UTF-8;
    over 1000 fields is undecodable.
    """
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    params: dict[str, str | list[str]] = {}
    if not text:
        return params
    pieces = text.split("&")
    if len(pieces) > _MAX_FIELDS:
        return None
    try:
        for piece in pieces:
            if not piece:
                continue
            name, _, value = piece.partition("=")
            if "%" in piece or "+" in piece:
                name, value = _unquote(name), _unquote(value)
            present = params.get(name)
            if present is None:
                params[name] = value
            elif isinstance(present, list):
                present.append(value)
            else:
                params[name] = [present, value]
    except UnicodeError:
        return None
    return params


def query_cid(query: str) -> str | None:
    """The first ``cid`` query parameter, decoded; None when absent or not UTF-8."""
    if "cid=" not in query:
        return None
    for piece in query.split("&"):
        if piece.startswith("cid="):
            try:
                return _unquote(piece[4:])
            except UnicodeError:
                return None
    return None
