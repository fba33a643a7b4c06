"""The HTTP side of the webhook: requests and answers as the adapters see them.

`WebhookRequest` is what an adapter (ASGI or WSGI) read; `WebhookResponse` what
it sends back. The helpers read what Twilio posts: the content type, the
form-encoded body (decoded once; the verifier, the event parser and the kept
event all use that one decoding) and the ``cid`` query parameter. All of it is
pure and does no I/O.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Final, NamedTuple
from urllib.parse import unquote_to_bytes

import attrs

__all__ = [
    "EMPTY_TWIML",
    "FORM",
    "HEADERS",
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
_ESCAPED_SEPARATOR: Final = re.compile(rb"%(?:26|3[Dd])")


def declared_length(value: str) -> int | None:
    """A ``Content-Length`` as a number, or None when it is not ASCII digits."""
    text = value.strip()
    # str.isdigit alone accepts "²" and other digits int() refuses.
    return int(text) if text.isascii() and text.isdigit() else None


class WebhookRequest(NamedTuple):
    """One HTTP request, as an adapter read it.

    ``route`` is the path relative to the mount point (``/message-status``);
    ``raw_path`` the full path as received (undecoded, without the query);
    ``query`` the raw query string; ``host`` the ``Host`` header (or the
    server's address); ``headers`` has lower-case names, values decoded as
    Latin-1 (an adapter may keep only `HEADERS`, the ones the core reads).
    ``body_complete`` is False when the adapter stopped reading because the
    body was over ``max_body_bytes``. A named tuple: one is built per request.
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


HEADERS: Final = frozenset(
    {
        "content-length",
        "content-type",
        "host",
        "i-twilio-idempotency-token",
        "x-forwarded-host",
        "x-forwarded-proto",
        "x-twilio-signature",
        "x-twilio-webhooks-signature-settings",
    }
)
"""The request headers the webhook core reads (lower-case names)."""


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
    if value == FORM:
        return True
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


def _unquoted_pair(piece: str) -> tuple[str, str, str]:
    """``piece.partition("=")`` with the name and the value decoded by `_unquote`."""
    name, mark, value = piece.partition("=")
    return _unquote(name), mark, _unquote(value)


def decode_form(body: bytes) -> dict[str, str | list[str]] | None:
    """The form fields (a list for a repeated field), or None when undecodable.

    Reads as ``urllib.parse.parse_qsl(..., keep_blank_values=True)`` does (empty
    pieces skipped, a piece without ``=`` an empty value), strictly in UTF-8;
    over 1000 fields is undecodable.

    Unless an escape decodes to a separator (``%26`` or ``%3D``), the whole
    body is unescaped at once before it is split: the same fields, with one
    call instead of one per escaped name and value.
    """
    if b"+" in body:
        body = body.replace(b"+", b" ")
    escaped = b"%" in body
    try:
        if escaped and _ESCAPED_SEPARATOR.search(body) is None:
            if not body.isascii():
                body.decode("utf-8")  # the body as sent must be UTF-8 too
            body = unquote_to_bytes(body)
            escaped = False
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if not text:
        return {}
    pieces = text.split("&")
    if len(pieces) > _MAX_FIELDS:
        return None
    try:
        pairs = [
            _unquoted_pair(piece) if escaped and "%" in piece else piece.partition("=")
            for piece in pieces
            if piece
        ]
    except UnicodeError:
        return None
    params: dict[str, str | list[str]] = {name: value for name, _, value in pairs}
    if len(params) == len(pairs):
        return params
    params = {}  # a field repeats: its values go in a list
    for name, _, value in pairs:
        present = params.get(name)
        if present is None:
            params[name] = value
        elif isinstance(present, list):
            present.append(value)
        else:
            params[name] = [present, value]
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
