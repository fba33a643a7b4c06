"""The console's HTTP side: the request an adapter builds, the response it sends, the headers.

`ConsoleRequest` is what both adapters read from their server and what
``authorize`` receives; `ConsoleResponse` is what the core answers. Every
response carries `SECURITY_HEADERS`. Pure: nothing here does I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Final
from urllib.parse import quote, urlencode

import attrs

__all__ = [
    "CSS",
    "HTML",
    "SECURITY_HEADERS",
    "UNAUTHORIZED_HEADERS",
    "ConsoleRequest",
    "ConsoleResponse",
    "link",
]

HTML: Final = "text/html; charset=utf-8"
CSS: Final = "text/css; charset=utf-8"

CONTENT_SECURITY_POLICY: Final = (
    "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
    "base-uri 'none'; frame-ancestors 'none'"
)
SECURITY_HEADERS: Final[tuple[tuple[str, str], ...]] = (
    ("content-security-policy", CONTENT_SECURITY_POLICY),
    ("x-frame-options", "DENY"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
    ("cache-control", "no-store"),
)
"""The headers every console response carries, errors and 401 included."""

UNAUTHORIZED_HEADERS: Final[tuple[tuple[str, str], ...]] = (
    ("www-authenticate", 'Basic realm="servio-twilio console", charset="UTF-8"'),
)
"""What a refused request is answered with, beside `SECURITY_HEADERS`."""

# Kept as they are in a link's path: what RFC 3986 allows in a path segment, and "/".
_PATH_SAFE: Final = "/!$&'()*+,;=:@-._~"


@attrs.frozen(kw_only=True)
class ConsoleRequest:
    """One request to the console, as an adapter read it: what ``authorize`` receives.

    ``path`` is relative to where the console is mounted (``/communications``),
    decoded; ``root_path`` is the mount point (ASGI ``root_path``, WSGI
    ``SCRIPT_NAME``; empty at the root); ``query`` the raw query string;
    ``headers`` every request header, names lower-cased, values decoded as
    Latin-1 (repeated headers joined with ``", "``); ``client`` the peer's
    address (``"127.0.0.1"``), or None when the server does not say.

    New in 0.2.0.
    """

    method: str
    path: str
    query: str = ""
    headers: Mapping[str, str] = attrs.field(factory=dict)
    client: str | None = None
    root_path: str = ""


@attrs.frozen(kw_only=True)
class ConsoleResponse:
    """What the console answers: status, headers (lower-case names, final) and body.

    For ``HEAD`` the body is empty and ``content-length`` still gives the
    length a ``GET`` would have.
    """

    status: int
    headers: tuple[tuple[str, str], ...]
    body: bytes


def link(root_path: str, path: str, query: Mapping[str, str | None] | None = None) -> str:
    """The URL of the console's ``path`` for a browser: below the mount point, quoted.

    Query values that are None or empty are left out.
    """
    url = quote(root_path.rstrip("/") + path, safe=_PATH_SAFE)
    if query:
        kept = {name: value for name, value in query.items() if value}
        if kept:
            url += "?" + urlencode(kept)
    return url
