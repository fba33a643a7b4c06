"""Unit tests for servio_twilio.webhooks.config: each webhook keyword check, accepted or refused."""

from __future__ import annotations

import functools
from typing import Any

import pytest

import servio_twilio
from servio_twilio.domain.errors import ConfigurationError
from servio_twilio.domain.settings import TwilioSettings, check_settings
from servio_twilio.domain.steps import is_async_callable
from servio_twilio.storage.memory import InMemoryRepository
from servio_twilio.testing import signed_webhook
from servio_twilio.webhooks.config import (
    check_body_limit,
    check_hooks,
    check_prefix,
    check_public_base_url,
    check_repository,
    check_storage_timeout,
    check_trust_forwarded,
    check_verifier,
)
from servio_twilio.webhooks.verifier import WebhookVerifier

ACCOUNT = "AC" + "1" * 32
TOKEN = "primary-auth-token"
SECONDARY = "secondary-auth-token"
BASE = "https://api.servio.test/api/twilio/webhook"
URL = BASE + "/message-status?cid=abc"
FORM = {"MessageSid": "SM" + "0" * 32, "MessageStatus": "delivered"}


def _settings(**overrides: Any) -> TwilioSettings:
    values: dict[str, Any] = {"account_sid": ACCOUNT, "auth_token": TOKEN}
    values.update(overrides)
    return TwilioSettings(**values)


async def _async_hook(event: Any) -> None:
    return None


def _sync_hook(event: Any) -> None:
    return None


class _AsyncCallable:
    async def __call__(self, event: Any) -> None:
        return None


class _SyncCallable:
    def __call__(self, event: Any) -> None:
        return None


class TestIsAsync:
    @pytest.mark.parametrize(
        "fn",
        [_async_hook, _AsyncCallable(), functools.partial(_async_hook)],
        ids=["function", "callable-object", "partial"],
    )
    def test_coroutine_producers(self, fn: object) -> None:
        """Async functions, objects with an async __call__ and partials of them are async."""
        assert is_async_callable(fn) is True

    @pytest.mark.parametrize(
        "fn",
        [_sync_hook, _SyncCallable(), lambda event: None, print, object(), _AsyncCallable],
        ids=["function", "callable-object", "lambda", "builtin", "not-callable", "class"],
    )
    def test_everything_else(self, fn: object) -> None:
        """Plain functions, sync callables, builtins, non-callables and classes (calling one
        builds an instance, even when its __call__ is async) are not async."""
        assert is_async_callable(fn) is False


class TestCheckSettings:
    def test_settings_and_none_pass_through(self) -> None:
        """TwilioSettings comes back as the same object; None stays None."""
        settings = _settings()
        assert check_settings(settings) is settings
        assert check_settings(None) is None

    @pytest.mark.parametrize("value", [TOKEN, {"account_sid": ACCOUNT, "auth_token": TOKEN}])
    def test_anything_else_is_refused_without_echoing_it(self, value: object) -> None:
        """A token string or a dict is ConfigurationError naming the type, not the value."""
        with pytest.raises(ConfigurationError) as caught:
            check_settings(value)
        assert str(caught.value) == f"settings must be TwilioSettings, not {type(value).__name__}"
        assert TOKEN not in str(caught.value)


class TestCheckVerifier:
    def test_built_from_the_settings_tokens(self) -> None:
        """With no verifier, one is built that accepts both the primary and secondary token."""
        verifier = check_verifier(None, _settings(secondary_auth_token=SECONDARY))
        assert isinstance(verifier, WebhookVerifier)
        for token in (TOKEN, SECONDARY):
            headers, _ = signed_webhook(URL, FORM, token)
            verifier.verify(URL, FORM, headers["X-Twilio-Signature"])
        headers, _ = signed_webhook(URL, FORM, "some-other-token")
        assert not verifier.is_valid(URL, FORM, headers["X-Twilio-Signature"])

    def test_without_a_secondary_token_only_the_primary_verifies(self) -> None:
        """A verifier built from settings without a secondary token refuses other tokens."""
        verifier = check_verifier(None, _settings())
        headers, _ = signed_webhook(URL, FORM, SECONDARY)
        assert not verifier.is_valid(URL, FORM, headers["X-Twilio-Signature"])

    def test_a_given_verifier_is_used_as_is(self) -> None:
        """Any object with a callable verify() is returned unchanged, settings or not."""

        class Custom:
            def verify(self, *args: Any, **kwargs: Any) -> None:
                return None

        custom = Custom()
        assert check_verifier(custom, None) is custom
        assert check_verifier(custom, _settings()) is custom

    def test_needs_settings_or_a_verifier(self) -> None:
        """Neither: ConfigurationError saying what to pass."""
        with pytest.raises(ConfigurationError, match=r"needs settings= .* or verifier="):
            check_verifier(None, None)

    @pytest.mark.parametrize(
        "verifier",
        [object(), TOKEN, type("NotCallable", (), {"verify": "yes"})()],
        ids=["object", "token-string", "attribute"],
    )
    def test_objects_without_verify(self, verifier: object) -> None:
        """An object without a callable verify() is refused, without echoing it."""
        with pytest.raises(ConfigurationError, match="verify\\(\\) method") as caught:
            check_verifier(verifier, _settings())
        assert TOKEN not in str(caught.value)


class TestCheckRepository:
    def test_a_repository_passes_through(self) -> None:
        """A CommunicationRepository comes back as the same object."""
        repository = InMemoryRepository()
        assert check_repository(repository, allow_async=False) is repository

    @pytest.mark.parametrize("value", [None, object(), {}, "firestore"])
    def test_anything_else(self, value: object) -> None:
        """Non-repositories are refused naming their type."""
        with pytest.raises(ConfigurationError, match=f"not {type(value).__name__}$"):
            check_repository(value, allow_async=False)

    def test_a_partial_implementation(self) -> None:
        """An object missing some of the contract's methods is refused."""

        class Partial:
            blocking = False

            def add(self, communication: Any) -> Any:
                return communication

        with pytest.raises(ConfigurationError, match="CommunicationRepository"):
            check_repository(Partial(), allow_async=False)


class TestCheckPublicBaseUrl:
    @pytest.mark.parametrize(
        ("value", "expected"),
        [
            (BASE, BASE),
            (BASE + "/", BASE),
            (BASE + "///", BASE),
            ("http://localhost:8000", "http://localhost:8000"),
            ("https://[::1]:8443/hooks/", "https://[::1]:8443/hooks"),
        ],
    )
    def test_accepted_urls_lose_trailing_slashes(self, value: str, expected: str) -> None:
        """http(s) URLs with a host are accepted, without their trailing slashes."""
        assert check_public_base_url(value, None) == expected

    def test_defaults_to_the_settings(self) -> None:
        """None takes the settings' webhook_base_url; with none there either, None."""
        assert check_public_base_url(None, _settings(webhook_base_url=BASE + "/")) == BASE
        assert check_public_base_url(None, _settings()) is None
        assert check_public_base_url(None, None) is None

    def test_a_given_url_wins_over_the_settings(self) -> None:
        """An explicit public_base_url is used even when the settings have one."""
        settings = _settings(webhook_base_url=BASE)
        assert check_public_base_url("https://proxy.test/tw", settings) == "https://proxy.test/tw"

    @pytest.mark.parametrize(
        ("value", "match"),
        [
            (3, "must be a str, not int"),
            (b"https://x", "must be a str, not bytes"),
            ("ftp://servio.test", "must be an http"),
            ("servio.test/hooks", "must be an http"),
            ("https://", "must be an http"),
            ("https://[::1/x", "must be an http"),
            (BASE + "?token=1", "query or fragment"),
            (BASE + "#top", "query or fragment"),
        ],
    )
    def test_refused(self, value: object, match: str) -> None:
        """Non-strings, other schemes, no host, unparseable URLs, queries and fragments."""
        with pytest.raises(ConfigurationError, match=match):
            check_public_base_url(value, None)

    def test_a_query_is_not_echoed(self) -> None:
        """The refusal of a URL with a query does not repeat the query (it may hold a key)."""
        with pytest.raises(ConfigurationError) as caught:
            check_public_base_url(BASE + "?key=s3cr3t", None)
        assert "s3cr3t" not in str(caught.value)

    def test_credentials_are_not_echoed(self) -> None:
        """A refused URL with a user and password is not repeated in the error."""
        with pytest.raises(ConfigurationError) as caught:
            check_public_base_url("ftp://user:s3cr3t@hooks.example/x", None)
        assert "s3cr3t" not in str(caught.value)


class TestCheckTrustForwarded:
    @pytest.mark.parametrize("value", [True, False])
    def test_bools(self, value: bool) -> None:
        """True and False come back as they are."""
        assert check_trust_forwarded(value) is value

    @pytest.mark.parametrize("value", [1, 0, "yes", "false", None])
    def test_anything_else(self, value: object) -> None:
        """Truthy or falsy non-bools are refused: the choice must be explicit."""
        with pytest.raises(ConfigurationError, match="trust_forwarded_headers must be a bool"):
            check_trust_forwarded(value)


class TestCheckHooks:
    def test_none_and_callables_pass(self) -> None:
        """Unset hooks and sync callables pass, for WSGI and ASGI alike."""
        for allow_async in (False, True):
            check_hooks(allow_async, on_event=None, on_inbound=_sync_hook, other=_SyncCallable())

    def test_async_allowed(self) -> None:
        """Async hooks pass when the app can await them."""
        check_hooks(True, on_event=_async_hook, on_inbound=_AsyncCallable())

    @pytest.mark.parametrize("hook", [_async_hook, _AsyncCallable()], ids=["function", "object"])
    def test_async_refused_for_wsgi(self, hook: object) -> None:
        """An async hook in a WSGI app is refused, naming the keyword."""
        with pytest.raises(ConfigurationError, match=r"^on_inbound is async: a WSGI app needs"):
            check_hooks(False, on_event=_sync_hook, on_inbound=hook)

    @pytest.mark.parametrize("hook", ["print", 3, object()])
    def test_not_callable(self, hook: object) -> None:
        """A hook that cannot be called is refused, naming the keyword and the type."""
        with pytest.raises(ConfigurationError) as caught:
            check_hooks(True, on_event=hook)
        assert str(caught.value) == f"on_event must be callable, not {type(hook).__name__}"

    def test_no_hooks(self) -> None:
        """No hooks at all is fine."""
        check_hooks(False)


class TestCheckBodyLimit:
    @pytest.mark.parametrize("value", [1, 64 * 1024, 10**9])
    def test_positive_ints(self, value: int) -> None:
        """Positive ints come back unchanged."""
        assert check_body_limit(value) == value

    @pytest.mark.parametrize("value", [0, -1])
    def test_not_positive(self, value: int) -> None:
        """Zero and negatives are refused, with the value."""
        with pytest.raises(ConfigurationError, match=f"must be positive, not {value}$"):
            check_body_limit(value)

    @pytest.mark.parametrize("value", [True, 1.5, 1024.0, "1024", None])
    def test_not_an_int(self, value: object) -> None:
        """Booleans, floats, strings and None are refused as not an int."""
        with pytest.raises(ConfigurationError, match="max_body_bytes must be an int"):
            check_body_limit(value)


class TestCheckStorageTimeout:
    @pytest.mark.parametrize(("value", "expected"), [(10, 10.0), (0.1, 0.1), (14.5, 14.5)])
    def test_positive_numbers(self, value: float, expected: float) -> None:
        """Positive ints and floats are accepted, as a float."""
        assert check_storage_timeout(value) == expected
        assert type(check_storage_timeout(value)) is float

    @pytest.mark.parametrize("value", [0, -1, -0.5, float("nan"), float("inf")])
    def test_not_positive_and_finite(self, value: float) -> None:
        """Zero, negatives, NaN and infinity are refused, with the value."""
        with pytest.raises(ConfigurationError, match="storage_timeout must be positive seconds"):
            check_storage_timeout(value)

    @pytest.mark.parametrize("value", [True, "10", None])
    def test_not_a_number(self, value: object) -> None:
        """Booleans, strings and None are refused as not a number."""
        with pytest.raises(ConfigurationError, match="storage_timeout must be a number"):
            check_storage_timeout(value)

    @pytest.mark.parametrize("factory", ["make_asgi_app", "make_wsgi_app"])
    def test_both_apps_check_it(self, factory: str) -> None:
        """make_asgi_app and make_wsgi_app refuse a bad storage_timeout when built."""
        make = getattr(servio_twilio, factory)
        with pytest.raises(ConfigurationError, match="storage_timeout"):
            make(settings=_settings(), repository=InMemoryRepository(), storage_timeout=0)


class TestCheckPrefix:
    @pytest.mark.parametrize(
        ("prefix", "expected"),
        [("/twilio", "/twilio"), ("/api/twilio/webhook/", "/api/twilio/webhook"), ("/a//", "/a")],
    )
    def test_paths_lose_trailing_slashes(self, prefix: str, expected: str) -> None:
        """A path below / is accepted without its trailing slashes."""
        assert check_prefix(prefix) == expected

    @pytest.mark.parametrize("prefix", ["/", "//", "///"])
    def test_root_is_refused(self, prefix: str) -> None:
        """Only slashes is the root: refused, pointing to mounting the app itself."""
        with pytest.raises(ConfigurationError, match="pass the app itself"):
            check_prefix(prefix)

    @pytest.mark.parametrize("prefix", ["twilio", "", "/a?b=1", b"/a", None, 3])
    def test_not_a_path(self, prefix: object) -> None:
        """Relative paths, queries and non-strings are refused, showing what was given."""
        with pytest.raises(ConfigurationError) as caught:
            check_prefix(prefix)
        assert str(caught.value) == f"prefix must be a path starting with '/', not {prefix!r}"
