"""Argument checks for a send: prospect ids, numbers, bodies, media, templates and URLs."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from urllib.parse import urlsplit

from servio_twilio.domain.errors import InvalidArgument, InvalidPhoneNumber
from servio_twilio.domain.models import Channel
from servio_twilio.domain.phone import normalize_e164
from servio_twilio.domain.phone_text import has_channel_prefix

__all__ = [
    "MAX_BODY_CHARS",
    "MAX_MEDIA",
    "MAX_TWIML_CHARS",
    "check_content",
    "check_prospect_id",
    "check_twiml",
    "check_url",
    "normalize_number",
]

MAX_BODY_CHARS = 1600
MAX_MEDIA = 10
MAX_TWIML_CHARS = 4000
_CONTENT_SID = re.compile(r"HX[0-9a-fA-F]{32}")


def check_prospect_id(prospect_id: object, *, required: bool = False) -> None:
    """Raise unless ``prospect_id`` is a non-blank string (or None when not ``required``)."""
    if prospect_id is None and not required:
        return
    if not isinstance(prospect_id, str):
        raise TypeError(f"prospect_id must be a string, not {type(prospect_id).__name__}")
    if not prospect_id.strip():
        raise InvalidArgument("prospect_id must not be empty")


def normalize_number(
    to: object, *, allow_whatsapp: bool, what: str, default_region: str | None = None
) -> str:
    """``to`` in E.164; a ``whatsapp:`` address is refused unless ``allow_whatsapp``.

    A national number is read in ``default_region`` (``settings.default_region``);
    without one it needs its ``+`` country code.
    """
    if not allow_whatsapp and isinstance(to, str) and has_channel_prefix(to):
        raise InvalidPhoneNumber(to, f"a whatsapp: address cannot receive {what}")
    return normalize_e164(to, default_region)


def check_content(
    channel: Channel,
    body: object,
    media_url: object,
    content_sid: object,
    content_variables: object,
) -> tuple[str | None, tuple[str, ...], str | None, str | None]:
    """The body, media URLs, template SID and JSON variables of a valid message."""
    if channel == Channel.SMS:
        if media_url is not None or content_sid is not None or content_variables is not None:
            raise InvalidArgument("media and templates are sent with send_whatsapp, not as SMS")
        return _check_body(body, required=True), (), None, None
    text = _check_body(body, required=False)
    media = _check_media(media_url)
    template, variables = _check_template(content_sid, content_variables)
    if template is not None and (text is not None or media):
        raise InvalidArgument("a template (content_sid) cannot be combined with body or media_url")
    if text is None and not media and template is None:
        raise InvalidArgument("a WhatsApp message needs a body, media_url or content_sid")
    return text, media, template, variables


def check_twiml(twiml_url: object, twiml: object) -> None:
    """Raise unless exactly one of ``twiml_url`` (a URL) and ``twiml`` (a document) is given."""
    if (twiml_url is None) == (twiml is None):
        raise InvalidArgument("give exactly one of twiml_url and twiml")
    if twiml_url is not None:
        check_url(twiml_url, "twiml_url")
    if twiml is not None:
        if not isinstance(twiml, str):
            raise TypeError(f"twiml must be a string, not {type(twiml).__name__}")
        if not twiml.strip() or len(twiml) > MAX_TWIML_CHARS:
            raise InvalidArgument(f"twiml must be 1 to {MAX_TWIML_CHARS} characters")


def check_url(url: object, name: str) -> None:
    """Raise unless ``url`` is an absolute http(s) URL with no whitespace."""
    if not isinstance(url, str):
        raise TypeError(f"{name} must be a string, not {type(url).__name__}")
    try:
        parts = urlsplit(url)
    except ValueError:
        raise InvalidArgument(f"{name} is not a URL") from None
    if parts.scheme not in ("http", "https") or not parts.hostname or any(c.isspace() for c in url):
        # Not echoed: a refused URL may carry credentials.
        raise InvalidArgument(f"{name} must be an absolute http(s) URL with a host and no spaces")


def _check_body(body: object, *, required: bool) -> str | None:
    if body is None:
        if required:
            raise InvalidArgument("body is required")
        return None
    if not isinstance(body, str):
        raise TypeError(f"body must be a string, not {type(body).__name__}")
    if not body.strip():
        if required:
            raise InvalidArgument("body must not be empty")
        return None
    if len(body) > MAX_BODY_CHARS:
        raise InvalidArgument(f"body is {len(body)} characters; Twilio's limit is {MAX_BODY_CHARS}")
    return body


def _check_media(media_url: object) -> tuple[str, ...]:
    if media_url is None:
        return ()
    urls: Sequence[object]
    if isinstance(media_url, str):
        urls = (media_url,)
    elif isinstance(media_url, list | tuple):
        urls = media_url
    else:
        raise TypeError(
            f"media_url must be a URL or a list of URLs, not {type(media_url).__name__}"
        )
    if not urls:
        raise InvalidArgument("media_url must not be an empty list")
    if len(urls) > MAX_MEDIA:
        raise InvalidArgument(f"{len(urls)} media URLs; Twilio's limit is {MAX_MEDIA}")
    for url in urls:
        check_url(url, "media_url")
    return tuple(str(url) for url in urls)


def _check_template(content_sid: object, variables: object) -> tuple[str | None, str | None]:
    if content_sid is None:
        if variables is not None:
            raise InvalidArgument("content_variables needs a content_sid")
        return None, None
    if not isinstance(content_sid, str) or not _CONTENT_SID.fullmatch(content_sid):
        raise InvalidArgument("content_sid must be HX followed by 32 hex digits")
    if variables is None:
        return content_sid, None
    if not isinstance(variables, Mapping):
        raise TypeError(f"content_variables must be a mapping, not {type(variables).__name__}")
    if not all(isinstance(key, str) for key in variables):
        raise TypeError("content_variables keys must be strings")
    try:
        encoded = json.dumps(dict(variables), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidArgument(f"content_variables must be JSON-serializable: {exc}") from None
    return content_sid, encoded
