"""Verify Twilio's ``X-Twilio-Signature`` on webhook requests.

What is signed (as ``twilio.request_validator.RequestValidator`` computes it):
the full URL Twilio requested, then, for a form-encoded request, each
parameter name in sorted order followed by one of its values, once per value
in sorted order; HMAC-SHA1 keyed with the Auth Token, base64-encoded. A JSON
request is signed over the URL alone, and that URL carries ``bodySHA256``, the
hex SHA-256 of the raw body. A request that matches a Twilio Webhook Rule is
signed with that rule's SharedKey and algorithm instead, and says so in the
``X-Twilio-Webhooks-Signature-Settings`` header.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import re
from binascii import b2a_base64
from collections.abc import Callable, Iterable, Mapping
from hmac import compare_digest
from typing import Any
from urllib.parse import ParseResult, SplitResult, unquote, urlparse, urlsplit

from servio_twilio.domain.errors import (
    ConfigurationError,
    InvalidSignature,
    MissingSignature,
    WebhookVerificationError,
)

__all__ = ["WebhookVerifier"]

log = logging.getLogger("servio_twilio.verifier")

_ALGORITHMS: dict[str, Callable[..., Any]] = {
    "HMAC_SHA1": hashlib.sha1,
    "HMAC_SHA256": hashlib.sha256,
}
_DEFAULT_ALGORITHM = "HMAC_SHA1"
_BODY_HASH_PARAM = "bodySHA256"
# What urlsplit removes from or cuts off a URL's query: its fragment, tabs, newlines.
_SPLIT_CHANGES = re.compile("[#\t\r\n]")  # what urlsplit strips or cuts at
_IPAD = bytes(x ^ 0x36 for x in range(256))
_OPAD = bytes(x ^ 0x5C for x in range(256))
# Every input problem the standard library can report while we read a request.
_MALFORMED = (TypeError, ValueError, LookupError, AttributeError)


def _secret(name: str, value: object) -> bytes:
    if not isinstance(value, str):
        raise ConfigurationError(f"{name} must be a str, not {type(value).__name__}")
    if not value.strip():
        raise ConfigurationError(f"{name} must not be empty or blank")
    try:
        return value.encode("utf-8")
    except UnicodeEncodeError:
        raise ConfigurationError(f"{name} is not encodable as UTF-8") from None


class _KeyState:
    """An HMAC key, precomputed (RFC 2104): the hash states after the padded key.

    Signing copies the two states instead of rekeying, which is what
    ``hmac.new(key, digestmod=...).copy()`` does, minus its Python wrapper.
    """

    __slots__ = ("_inner", "_outer")

    def __init__(self, secret: bytes, digest: Callable[..., Any]) -> None:
        block_size: int = digest().block_size
        if len(secret) > block_size:
            secret = digest(secret).digest()
        secret = secret.ljust(block_size, b"\0")
        self._inner = digest(secret.translate(_IPAD))
        self._outer = digest(secret.translate(_OPAD))

    def __repr__(self) -> str:
        return "_KeyState(<hidden>)"

    def signature(self, data: bytes) -> bytes:
        """The base64 HMAC of ``data``."""
        inner = self._inner.copy()
        inner.update(data)
        outer = self._outer.copy()
        outer.update(inner.digest())
        return b2a_base64(outer.digest(), newline=False)


def _key_states(secret: bytes) -> dict[str, _KeyState]:
    return {name: _KeyState(secret, digest) for name, digest in _ALGORITHMS.items()}


class WebhookVerifier:
    """Checks that a webhook request was signed by Twilio.

    ``auth_token`` is the account's Auth Token; ``secondary_auth_token`` the
    secondary one, accepted too while you rotate tokens; ``shared_keys`` maps
    Twilio SharedKey ids (``key=`` in the ``X-Twilio-Webhooks-Signature-Settings``
    header) to their secrets. Tokens and secrets are kept only as HMAC key
    states: they never appear in ``repr``, logs or error messages.

    Its verdicts equal ``twilio.request_validator.RequestValidator.validate``'s,
    except that a repeated identical form value is signed once per occurrence
    (as Twilio sends it) and a non-empty raw body without ``bodySHA256`` is
    refused (twilio raises ``TypeError`` there).

    Raises:
        ConfigurationError: a token is not a str, or is empty or blank; or
            ``shared_keys`` is not a mapping of non-blank str ids to non-blank
            str secrets.

    New in 0.1.0.
    """

    __slots__ = ("_shared", "_tokens")

    def __init__(
        self,
        auth_token: str,
        *,
        secondary_auth_token: str | None = None,
        shared_keys: Mapping[str, str] | None = None,
    ) -> None:
        tokens = [_KeyState(_secret("auth_token", auth_token), hashlib.sha1)]
        if secondary_auth_token is not None:
            secret = _secret("secondary_auth_token", secondary_auth_token)
            tokens.append(_KeyState(secret, hashlib.sha1))
        self._tokens: tuple[_KeyState, ...] = tuple(tokens)
        self._shared: dict[str, dict[str, _KeyState]] = {}
        if shared_keys is None:
            return
        if not isinstance(shared_keys, Mapping):
            raise ConfigurationError(
                f"shared_keys must be a mapping of key ids to secrets, "
                f"not {type(shared_keys).__name__}"
            )
        for key_id, secret_text in shared_keys.items():
            if not isinstance(key_id, str) or not key_id.strip():
                raise ConfigurationError(
                    f"shared_keys ids must be non-blank strings, not {key_id!r}"
                )
            secret = _secret(f"shared_keys[{key_id!r}]", secret_text)
            self._shared[key_id] = _key_states(secret)

    def __repr__(self) -> str:
        secondary = "'***'" if len(self._tokens) > 1 else "None"
        keys = sorted(self._shared)
        return (
            f"WebhookVerifier(auth_token='***', secondary_auth_token={secondary}, "
            f"shared_keys={keys!r})"
        )

    def verify(
        self,
        url: str,
        params_or_body: Mapping[str, str | list[str]] | str | bytes,
        signature: str | None,
        *,
        signature_settings: str | None = None,
    ) -> None:
        """Return when ``signature`` is Twilio's for this request, else raise.

        ``url`` is the full URL Twilio requested (scheme, host, path and raw
        query string). ``params_or_body`` is the form fields (a mapping whose
        values are a str, or a list of str for a repeated field; Flask, Django
        and Starlette multi-dicts work too) or, for a JSON request, the raw body
        as ``str`` or ``bytes``. ``signature`` is the ``X-Twilio-Signature``
        header and ``signature_settings`` the
        ``X-Twilio-Webhooks-Signature-Settings`` header when the request has it.

        The URL is tried as ``urllib.parse.urlparse(url).geturl()`` gives it,
        then with its port removed when it has one, else with the scheme's
        default port added, each with the primary then the secondary token.

        Raises:
            MissingSignature: ``signature`` is missing or empty.
            InvalidSignature: anything else that does not verify, however
                malformed.

        New in 0.1.0.
        """
        if signature is None or signature in ("", b""):
            raise MissingSignature("the request has no X-Twilio-Signature header")
        if not isinstance(signature, str):
            raise InvalidSignature(f"the signature must be a str, not {type(signature).__name__}")
        states = self._tokens if signature_settings is None else self._states(signature_settings)
        try:
            expected = signature.encode("utf-8", "surrogatepass")
            if not isinstance(url, str):
                raise TypeError(f"the URL must be a str, not {type(url).__name__}")
            first, query = _url_and_query(url)
            suffix = _signed_suffix(query, params_or_body)
            data = (first + suffix).encode("utf-8")
        except WebhookVerificationError:
            raise
        except _MALFORMED as exc:
            log.debug("malformed webhook request: %s", type(exc).__name__)
            raise InvalidSignature(f"the request is malformed ({type(exc).__name__})") from exc
        for state in states:
            if compare_digest(state.signature(data), expected):
                return
        try:
            variant = _port_variant(urlparse(url))
        except _MALFORMED as exc:
            raise InvalidSignature(f"the URL is malformed ({type(exc).__name__})") from exc
        if variant != first:
            data = (variant + suffix).encode("utf-8")
            for state in states:
                if compare_digest(state.signature(data), expected):
                    return
        log.debug("webhook signature does not match (URL tried with and without its port)")
        raise InvalidSignature("the signature does not match the request")

    def is_valid(
        self,
        url: str,
        params_or_body: Mapping[str, str | list[str]] | str | bytes,
        signature: str | None,
        *,
        signature_settings: str | None = None,
    ) -> bool:
        """True when `verify` would return, False when it would raise.

        New in 0.1.0.
        """
        try:
            self.verify(url, params_or_body, signature, signature_settings=signature_settings)
        except WebhookVerificationError:
            return False
        return True

    def _states(self, signature_settings: object) -> tuple[_KeyState, ...]:
        """The key states to try for a settings header that is present (`verify` does None)."""
        if not isinstance(signature_settings, str):
            raise InvalidSignature(
                "the signature settings header must be a str, "
                f"not {type(signature_settings).__name__}"
            )
        if not signature_settings.strip():
            return self._tokens
        key_id, algorithm = _parse_settings(signature_settings)
        keys = self._shared.get(key_id)
        if keys is None:
            raise InvalidSignature("the signature settings name an unknown shared key")
        state = keys.get(algorithm.upper())
        if state is None:
            raise InvalidSignature("the signature settings name an unsupported algorithm")
        return (state,)


def _parse_settings(header: str) -> tuple[str, str]:
    """``(key id, algorithm)`` from ``key=<id>,algorithm=<name>``.

    Blank parts and unknown names are ignored (as twilio does); a part without
    ``=``, a repeated name, or a missing or empty ``key`` is malformed. A
    missing ``algorithm`` means HMAC_SHA1, as in twilio's
    ``get_signature_algorithm``.
    """
    found: dict[str, str] = {}
    for part in header.split(","):
        if not part.strip():
            continue
        name, separator, value = part.partition("=")
        name = name.strip()
        if not separator or name in found:
            raise InvalidSignature("the signature settings header is malformed")
        found[name] = value.strip()
    key_id = found.get("key", "")
    if not key_id:
        raise InvalidSignature("the signature settings header names no key")
    return key_id, found.get("algorithm") or _DEFAULT_ALGORITHM


def _url_and_query(url: str) -> tuple[str, str]:
    """``urlparse(url).geturl()`` and the URL's query; ValueError and the like when malformed.

    Callback URLs differ only in their query (the ``cid``). When the URL has a
    query and nothing `urlsplit` would clean or cut (a ``#``, tab or newline),
    only the part before the query is parsed, and that result is cached: the
    same few heads come back on every callback.
    """
    head, mark, query = url.partition("?")
    if mark and _SPLIT_CHANGES.search(url) is None:
        first = _normalized_head(head)
        return (first + "?" + query if query else first), query
    split = urlsplit(url)
    if ":" in split.netloc:
        split.port  # noqa: B018 - raises ValueError on a bad port, as twilio does
    return _normalized(url, split), split.query


@functools.lru_cache(maxsize=256)
def _normalized_head(head: str) -> str:
    """`_normalized` of a URL without a query (errors are raised, never cached)."""
    split = urlsplit(head)
    if ":" in split.netloc:
        split.port  # noqa: B018 - raises ValueError on a bad port, as twilio does
    return _normalized(head, split)


def _normalized(url: str, split: SplitResult) -> str:
    """``urlparse(url).geturl()``, without its cost in the usual case.

    With a scheme, a host and no ``;`` (which urlparse reads as path params),
    that is ``urlunsplit(split)``, rebuilt here directly.
    """
    scheme, netloc, path, query, fragment = split
    if not scheme or not netloc or ";" in path:
        return urlparse(url).geturl()
    if path and path[0] != "/":
        path = "/" + path
    rebuilt = scheme + "://" + netloc + path
    if query:
        rebuilt += "?" + query
    if fragment:
        rebuilt += "#" + fragment
    return rebuilt


def _signed_suffix(query: str, params_or_body: object) -> str:
    """What follows the URL in the signed string; checks a raw body's hash."""
    if type(params_or_body) is dict:
        try:  # every value a str, the common case: one pass
            return "".join([key + value for key, value in sorted(params_or_body.items())])
        except TypeError:  # a repeated field's values come as a list
            return _form_suffix(sorted(params_or_body), params_or_body.__getitem__)
    if isinstance(params_or_body, str | bytes | bytearray):
        _check_body(query, params_or_body)
        return ""
    if not isinstance(params_or_body, Mapping):
        raise InvalidSignature(
            "the parameters must be a mapping of form fields or the raw body, "
            f"not {type(params_or_body).__name__}"
        )
    getter = getattr(params_or_body, "getall", None) or getattr(params_or_body, "getlist", None)
    return _form_suffix(sorted(set(params_or_body)), getter or params_or_body.__getitem__)


def _form_suffix(keys: Iterable[str], get: Callable[[str], object]) -> str:
    parts: list[str] = []
    append = parts.append
    for key in keys:
        value = get(key)
        if isinstance(value, str):
            append(key)
            append(value)
        elif isinstance(value, list | tuple):
            for item in sorted(value):
                append(key)
                append(item)
        else:
            raise TypeError(f"a form value must be a str or a list of str, not {type(value)}")
    return "".join(parts)  # TypeError when a key or value is not a str


def _check_body(query: str, body: str | bytes | bytearray) -> None:
    """A raw (JSON) body must match the URL's ``bodySHA256``."""
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    if not isinstance(body, str):
        raw.decode("utf-8")  # a JSON body is UTF-8; anything else is refused
    claimed = _body_hash_param(query)
    if claimed is None:
        if raw:
            raise InvalidSignature(
                "a raw body is only verifiable with the bodySHA256 query parameter"
            )
        return
    actual = hashlib.sha256(raw).hexdigest()
    if not claimed.isascii() or not compare_digest(actual, claimed):
        raise InvalidSignature("the body does not match its bodySHA256 query parameter")


def _body_hash_param(query: str) -> str | None:
    """The first non-empty ``bodySHA256`` value, read as ``urllib.parse.parse_qs`` reads it."""
    for field in query.split("&"):
        name, separator, value = field.partition("=")
        if not separator or not value:
            continue
        if "%" in name or "+" in name:
            name = unquote(name.replace("+", " "))
        if name == _BODY_HASH_PARAM:
            return unquote(value.replace("+", " ")) if "%" in value or "+" in value else value
    return None


def _port_variant(parsed: ParseResult) -> str:
    """The URL without its port if it has one, else with the default port.

    Built exactly as twilio's ``remove_port`` / ``add_port`` build theirs
    (a port of 0 counts as none; anything but https gets port 80).
    """
    if parsed.port:
        return parsed._replace(netloc=parsed.netloc.split(":")[0]).geturl()
    port = 443 if parsed.scheme == "https" else 80
    return parsed._replace(netloc=f"{parsed.netloc}:{port}").geturl()
