"""The console apps' keywords, checked: each refusal a `ConfigurationError` naming it.

Both `make_asgi_app` and `make_wsgi_app` run these before they build the
core; the WSGI app refuses what it would have to await. Nothing here
touches a request.
"""

from __future__ import annotations

from typing import Any, Final

from servio_twilio.domain.errors import ConfigurationError
from servio_twilio.domain.steps import is_async_callable
from servio_twilio.storage.repository import is_async_repository

__all__ = [
    "check_authorize",
    "check_consent_listing",
    "check_console_repository",
    "check_mask_numbers",
]

# What the pages call on the repository and the consent store.
_REPOSITORY_METHODS: Final = ("get", "events", "history", "communications", "count_by_day", "ping")
_CONSENT_METHODS: Final = ("opted_out",)


def check_authorize(authorize: object, *, allow_async: bool) -> Any:
    """``authorize`` itself; `ConfigurationError` unless callable (and plain for WSGI)."""
    if authorize is None:
        raise ConfigurationError(
            "the console needs authorize=: a function of the request returning True to let it "
            "in (basic_auth(user, password) is one); it never serves pages without one"
        )
    if not callable(authorize):
        raise ConfigurationError(f"authorize must be callable, not {type(authorize).__name__}")
    if not allow_async and is_async_callable(authorize):
        raise ConfigurationError("authorize is async: a WSGI console needs a plain function")
    return authorize


def _missing(target: object, methods: tuple[str, ...]) -> list[str]:
    return [name for name in methods if not callable(getattr(target, name, None))]


def check_console_repository(repository: object, *, allow_async: bool) -> Any:
    """``repository`` itself; `ConfigurationError` unless it has what the pages read."""
    missing = _missing(repository, _REPOSITORY_METHODS)
    if missing:
        raise ConfigurationError(
            f"repository must implement CommunicationRepository; {type(repository).__name__} "
            f"lacks {', '.join(missing)}"
        )
    if not allow_async and is_async_repository(repository):
        raise ConfigurationError(
            "a WSGI console cannot await an async repository: pass a CommunicationRepository "
            "(FirestoreRepository, InMemoryRepository)"
        )
    return repository


def check_consent_listing(store: object, *, allow_async: bool) -> Any:
    """``store`` itself (or None); `ConfigurationError` unless it can list opted-out numbers."""
    if store is None:
        return None
    missing = _missing(store, _CONSENT_METHODS)
    if missing:
        raise ConfigurationError(
            f"consent_store must implement ConsentStore (with opted_out()); "
            f"{type(store).__name__} lacks {', '.join(missing)}"
        )
    if not allow_async and is_async_callable(getattr(store, "opted_out", None)):
        raise ConfigurationError(
            "a WSGI console cannot await an async consent store: pass a ConsentStore"
        )
    return store


def check_mask_numbers(mask_numbers: object) -> bool:
    """``mask_numbers`` itself; `ConfigurationError` unless a bool."""
    if not isinstance(mask_numbers, bool):
        raise ConfigurationError("mask_numbers must be a bool")
    return mask_numbers
