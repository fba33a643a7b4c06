"""Build signed Twilio callbacks, to test webhook handlers offline."""

from __future__ import annotations

import hashlib
import hmac
from base64 import b64encode
from collections.abc import Mapping
from urllib.parse import urlencode

from servio_twilio.domain.errors import ConfigurationError

__all__ = ["signed_webhook"]


def _fields(params: object) -> list[tuple[str, str]]:
    if not isinstance(params, Mapping):
        raise ConfigurationError(
            f"params must be a mapping of field names to values, not {type(params).__name__}"
        )
    fields: list[tuple[str, str]] = []
    for key, value in params.items():
        if not isinstance(key, str):
            raise ConfigurationError(f"a field name must be a str, not {key!r}")
        values = list(value) if isinstance(value, list | tuple) else [value]
        for item in values:
            if not isinstance(item, str):
                raise ConfigurationError(
                    f"field {key!r} must be a str or a list of str, not {type(item).__name__}"
                )
            fields.append((key, item))
    return fields


def _utf8(name: str, text: str) -> bytes:
    try:
        return text.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigurationError(f"{name} is not encodable as UTF-8") from None


def signed_webhook(
    url: str, params: Mapping[str, str | list[str]], auth_token: str
) -> tuple[dict[str, str], bytes]:
    """The headers and form-encoded body of a callback Twilio signed for ``url``.

    ``url`` is the full URL Twilio would request (query string included);
    ``params`` the form fields, a list value giving a field repeated once per
    item; ``auth_token`` the token Twilio signs with. The headers are
    ``Content-Type: application/x-www-form-urlencoded`` and
    ``X-Twilio-Signature``; the body keeps the fields in the order given.

    ```python
    headers, body = signed_webhook(
        "https://api.example.com/api/twilio/webhook/message-status?cid=abc",
        {"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered"},
        "test-auth-token",
    )
    ```

    Raises:
        ConfigurationError: ``url`` or ``auth_token`` is not a non-blank str,
            or ``params`` is not a mapping of str to str or list of str.

    New in 0.1.0.
    """
    if not isinstance(url, str) or not url.strip():
        raise ConfigurationError("url must be a non-blank str")
    if not isinstance(auth_token, str) or not auth_token.strip():
        raise ConfigurationError("auth_token must be a non-blank str")
    fields = _fields(params)
    signed = url + "".join(key + value for key, value in sorted(fields))
    digest = hmac.new(
        _utf8("auth_token", auth_token), _utf8("the signed data", signed), hashlib.sha1
    ).digest()
    headers = {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": b64encode(digest).decode("ascii"),
    }
    return headers, urlencode(fields).encode("ascii")
