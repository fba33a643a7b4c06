"""Who may see the console: the ``authorize`` hook's type and `basic_auth`, a ready one.

The console refuses every request ``authorize`` does not answer ``True``
(fail closed). `basic_auth` checks HTTP Basic credentials in constant time:
the whole encoded credential is compared with `hmac.compare_digest`, so
neither a wrong user nor a wrong password answers sooner.
"""

from __future__ import annotations

import base64
import hmac
from collections.abc import Awaitable, Callable
from typing import TypeAlias

from servio_twilio.console.http import ConsoleRequest
from servio_twilio.domain.errors import ConfigurationError

__all__ = ["Authorize", "BasicAuth", "basic_auth"]

Authorize: TypeAlias = Callable[[ConsoleRequest], bool | Awaitable[bool]]
"""``authorize(request) -> bool`` (plain, or async under ASGI): True lets the request in."""


class BasicAuth:
    """An ``authorize`` hook accepting one user and password (HTTP Basic); see `basic_auth`."""

    __slots__ = ("_expected", "user")

    def __init__(self, user: str, password: str) -> None:
        for name, value in (("user", user), ("password", password)):
            if not isinstance(value, str) or not value:
                raise ConfigurationError(f"basic_auth needs a non-empty {name} string")
        if ":" in user:
            raise ConfigurationError("a Basic auth user cannot contain ':'")
        self.user = user
        """The accepted user name."""
        credential = base64.b64encode(f"{user}:{password}".encode())
        self._expected = b"basic " + credential

    def __repr__(self) -> str:
        return f"<basic_auth user={self.user!r}>"  # never the password

    def __call__(self, request: ConsoleRequest) -> bool:
        """True when the request's ``Authorization`` header holds the credentials."""
        header = request.headers.get("authorization", "")
        scheme, _, credential = header.strip().partition(" ")
        # The scheme is case-insensitive and not secret; the credential is compared whole.
        given = (
            scheme.lower().encode("latin-1", "replace")
            + b" "
            + credential.strip().encode("latin-1", "replace")
        )
        return hmac.compare_digest(given, self._expected)


def basic_auth(user: str, password: str) -> BasicAuth:
    """A ready ``authorize``: HTTP Basic with this one ``user`` and ``password``.

    The browser asks for them (the console answers 401 with
    ``WWW-Authenticate: Basic``, UTF-8); serve the console over HTTPS only,
    as Basic credentials travel with every request. The comparison is
    constant-time (`hmac.compare_digest` over the whole encoded credential).

    Raises:
        ConfigurationError: an empty user or password, or a user with ``:``.

    New in 0.2.0.
    """
    return BasicAuth(user, password)
