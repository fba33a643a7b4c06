"""The webhook apps' keywords, checked: each refusal a `ConfigurationError` naming it.

`servio_twilio.webhooks.core.build_core` runs these checks, in a fixed order, before
it builds the core; the ASGI and WSGI apps check their ``prefix`` with
`check_prefix`. Nothing here touches a request.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from servio_twilio.domain.errors import ConfigurationError
from servio_twilio.domain.settings import TwilioSettings
from servio_twilio.domain.steps import is_async_callable
from servio_twilio.storage.consent import is_async_consent_store
from servio_twilio.storage.repository import CommunicationRepository, is_async_repository

if TYPE_CHECKING:
    from servio_twilio.webhooks.verifier import WebhookVerifier

__all__ = [
    "check_body_limit",
    "check_hooks",
    "check_prefix",
    "check_public_base_url",
    "check_repository",
    "check_storage_timeout",
    "check_trust_forwarded",
    "check_verifier",
]


def check_verifier(verifier: object, settings: TwilioSettings | None) -> WebhookVerifier:
    """``verifier``, or a `WebhookVerifier` over the settings' auth tokens when None."""
    if verifier is None:
        if settings is None:
            raise ConfigurationError(
                "the webhook app needs settings= (for the auth token) or verifier="
            )
        from servio_twilio.webhooks.verifier import WebhookVerifier  # noqa: PLC0415 - receiving only

        return WebhookVerifier(
            settings.auth_token, secondary_auth_token=settings.secondary_auth_token
        )
    if not callable(getattr(verifier, "verify", None)):
        raise ConfigurationError("verifier must have a verify() method, like WebhookVerifier")
    # Any object with WebhookVerifier's verify() serves (a wrapper, a fake).
    return verifier  # type: ignore[return-value]


def check_repository(repository: object, *, allow_async: bool) -> CommunicationRepository:
    """``repository`` itself; `ConfigurationError` unless a repository the app can drive.

    An `AsyncCommunicationRepository` only where ``allow_async`` (the ASGI app).
    """
    if is_async_repository(repository):
        if not allow_async:
            raise ConfigurationError(
                "a WSGI app cannot await an async repository: pass a CommunicationRepository "
                "(FirestoreRepository, InMemoryRepository)"
            )
        return repository  # type: ignore[return-value]
    if not isinstance(repository, CommunicationRepository):
        raise ConfigurationError(
            f"repository must implement CommunicationRepository, not {type(repository).__name__}"
        )
    return repository


def check_consent_store(store: object, *, allow_async: bool, repository: object) -> Any:
    """``store`` itself (or None); `ConfigurationError` unless one the app can drive.

    A store is driven with the repository: an async store needs the ASGI app,
    and beside an async repository a sync store must not block (pass its
    async variant).
    """
    if store is None:
        return None
    if not callable(getattr(store, "opt_out", None)) or not callable(
        getattr(store, "opt_in", None)
    ):
        raise ConfigurationError(
            f"consent_store must implement ConsentStore, not {type(store).__name__}"
        )
    if is_async_consent_store(store):
        if not allow_async:
            raise ConfigurationError(
                "a WSGI app cannot await an async consent store: pass a ConsentStore"
            )
        if not is_async_repository(repository) and getattr(repository, "blocking", True):
            raise ConfigurationError(
                "an async consent store needs an async (or in-memory) repository beside it: "
                "pass the async variant of the repository, or a sync consent store"
            )
    elif is_async_repository(repository) and getattr(store, "blocking", True):
        raise ConfigurationError(
            "a blocking consent store beside an async repository would block the event "
            "loop: pass its async variant (AsyncFirestoreConsentStore)"
        )
    return store


def check_public_base_url(public_base_url: object, settings: TwilioSettings | None) -> str | None:
    """The base URL without its trailing ``/`` (default: the settings'), or None."""
    if public_base_url is None and settings is not None:
        public_base_url = settings.webhook_base_url
    return None if public_base_url is None else _check_url(public_base_url)


def _check_url(value: object) -> str:
    if not isinstance(value, str):
        raise ConfigurationError(f"public_base_url must be a str, not {type(value).__name__}")
    try:
        parts = urlsplit(value)
    except ValueError:
        parts = None
    if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
        # Not echoed: a refused URL may carry credentials.
        raise ConfigurationError("public_base_url must be an http(s) URL with a host")
    if parts.query or parts.fragment:
        raise ConfigurationError("public_base_url must not have a query or fragment")
    return value.rstrip("/")


def check_trust_forwarded(trust_forwarded_headers: object) -> bool:
    """``trust_forwarded_headers`` itself; `ConfigurationError` unless a bool."""
    if not isinstance(trust_forwarded_headers, bool):
        raise ConfigurationError("trust_forwarded_headers must be a bool")
    return trust_forwarded_headers


def check_hooks(allow_async: bool, **hooks: object) -> None:
    """`ConfigurationError` for a hook that is not callable, or async when not allowed."""
    for name, hook in hooks.items():
        if hook is None:
            continue
        if not callable(hook):
            raise ConfigurationError(f"{name} must be callable, not {type(hook).__name__}")
        if not allow_async and is_async_callable(hook):
            raise ConfigurationError(f"{name} is async: a WSGI app needs a plain function")


def check_body_limit(max_body_bytes: object) -> int:
    """``max_body_bytes`` itself; `ConfigurationError` unless a positive int."""
    if isinstance(max_body_bytes, bool) or not isinstance(max_body_bytes, int):
        raise ConfigurationError("max_body_bytes must be an int")
    if max_body_bytes < 1:
        raise ConfigurationError(f"max_body_bytes must be positive, not {max_body_bytes}")
    return max_body_bytes


def check_storage_timeout(storage_timeout: object) -> float:
    """``storage_timeout`` as a float; `ConfigurationError` unless a positive finite number."""
    if isinstance(storage_timeout, bool) or not isinstance(storage_timeout, int | float):
        raise ConfigurationError("storage_timeout must be a number of seconds")
    if not (math.isfinite(storage_timeout) and storage_timeout > 0):
        raise ConfigurationError(f"storage_timeout must be positive seconds, not {storage_timeout}")
    return float(storage_timeout)


def check_prefix(prefix: object) -> str:
    """``prefix`` without its trailing ``/``; `ConfigurationError` unless a path below ``/``."""
    if not isinstance(prefix, str) or not prefix.startswith("/") or "?" in prefix:
        raise ConfigurationError(f"prefix must be a path starting with '/', not {prefix!r}")
    stripped = prefix.rstrip("/")
    if not stripped:
        raise ConfigurationError("prefix must not be '/': pass the app itself instead")
    return stripped
