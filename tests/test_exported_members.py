"""The public surface: the documented import paths, what each exports, and what the docs import."""

from __future__ import annotations

import ast
import importlib
import importlib.metadata
import inspect
import re
from pathlib import Path

import pytest

import servio_twilio
import servio_twilio.testing

ROOT = Path(__file__).resolve().parent.parent
# The documented import paths; every other module is internal.
PUBLIC_PATHS = (
    "servio_twilio",
    "servio_twilio.firestore",
    "servio_twilio.testing",
    "servio_twilio.console",
)
# Logger names are stable channels that the docs name, not import paths.
LOGGER_NAMES = {
    "servio_twilio.batch",
    "servio_twilio.client",
    "servio_twilio.transport",
    "servio_twilio.verifier",
    "servio_twilio.webhook",
}
# OpenTelemetry span, metric and attribute names (docs: telemetry) are names, not import paths.
TELEMETRY_NAME = re.compile(
    r"servio_twilio\.(batch|callbacks?|channel|communication_id|error_code|outcome|reconcile"
    r"|records|route|sends?|signature_failures)(\.\w+)*"
)

# Every name DESIGN.md documents as exported from `servio_twilio`, with the
# module it lives in.
DESIGN_EXPORTS = {
    # settings and phone numbers
    "TwilioSettings": "servio_twilio.domain.settings",
    "normalize_e164": "servio_twilio.domain.phone",
    "mask_phone": "servio_twilio.domain.phone_text",
    # client and its value types
    "CommunicationsClient": "servio_twilio.sending.client",
    "SendResult": "servio_twilio.sending.results",
    "OutboundMessage": "servio_twilio.sending.results",
    "BatchReport": "servio_twilio.sending.results",
    "BatchItemResult": "servio_twilio.sending.results",
    "HealthReport": "servio_twilio.sending.results",
    "HealthCheck": "servio_twilio.sending.results",
    "SendLimiter": "servio_twilio.sending.limiter",
    "InMemorySendLimiter": "servio_twilio.sending.limiter",
    # errors
    "ServioTwilioError": "servio_twilio.domain.errors",
    "ConfigurationError": "servio_twilio.domain.errors",
    "InvalidPhoneNumber": "servio_twilio.domain.errors",
    "BatchTooLarge": "servio_twilio.domain.errors",
    "SendLimitExceeded": "servio_twilio.domain.errors",
    "TwilioAPIError": "servio_twilio.domain.errors",
    "RateLimited": "servio_twilio.domain.errors",
    "SendOutcomeUnknown": "servio_twilio.domain.errors",
    "RepositoryError": "servio_twilio.domain.errors",
    "DuplicateRecord": "servio_twilio.domain.errors",
    "RecordNotFound": "servio_twilio.domain.errors",
    "WebhookVerificationError": "servio_twilio.domain.errors",
    "MissingSignature": "servio_twilio.domain.errors",
    "InvalidSignature": "servio_twilio.domain.errors",
    # storage
    "CommunicationRepository": "servio_twilio.storage.repository",
    "InMemoryRepository": "servio_twilio.storage.memory",
    "Communication": "servio_twilio.domain.models",
    "Channel": "servio_twilio.domain.models",
    "Direction": "servio_twilio.domain.models",
    # receiving
    "WebhookVerifier": "servio_twilio.webhooks.verifier",
    "make_asgi_app": "servio_twilio.webhooks.asgi",
    "mount_asgi": "servio_twilio.webhooks.asgi",
    "make_wsgi_app": "servio_twilio.webhooks.wsgi",
    "mount_wsgi": "servio_twilio.webhooks.wsgi",
    "MessageStatusEvent": "servio_twilio.webhooks.events",
    "CallStatusEvent": "servio_twilio.webhooks.events",
    "RecordingStatusEvent": "servio_twilio.webhooks.events",
    "InboundMessageEvent": "servio_twilio.webhooks.events",
    # version 0.2: async, send policy
    "AsyncCommunicationsClient": "servio_twilio.sending.async_client",
    "AsyncCommunicationRepository": "servio_twilio.storage.repository",
    "SendPolicy": "servio_twilio.sending.policy",
    "RecipientOptedOut": "servio_twilio.domain.errors",
    "OutsideSendingHours": "servio_twilio.domain.errors",
    "ConsentStore": "servio_twilio.storage.consent",
    "InMemoryConsentStore": "servio_twilio.storage.consent",
    "SharedSendLimiter": "servio_twilio.sending.shared_limits",
    "SharedRateLimit": "servio_twilio.sending.shared_limits",
}

# Exported beyond DESIGN.md's list, each for a reason the docs give.
ADDED_EXPORTS = {
    # raised by the exported events' from_params() for a callback missing fields
    "MalformedCallback": "servio_twilio.domain.errors",
    # a bad argument value (empty body, limit out of range, ...): a ServioTwilioError that is
    # also a ValueError, so `except ServioTwilioError` catches it (docs: errors)
    "InvalidArgument": "servio_twilio.domain.errors",
    # every phone number in a line of text masked, for the host's own logs (docs: settings)
    "mask_phone_numbers": "servio_twilio.domain.phone_text",
    # the shared rate cap a batch accepts as rate_per_second (docs: batches)
    "TokenBucket": "servio_twilio.sending.ratelimit",
    # the status rules, for code that merges statuses itself (docs: statuses)
    "merge_status": "servio_twilio.domain.status",
    "status_rank": "servio_twilio.domain.status",
    # a record with some fields changed, for update() callbacks (docs: custom repository)
    "replace": "servio_twilio.domain.models",
    # the checks and ordering a repository of your own shares (docs: custom repository)
    "check_history_args": "servio_twilio.storage.repository",
    "check_page_args": "servio_twilio.storage.repository",
    "check_count_args": "servio_twilio.storage.repository",
    "check_update_result": "servio_twilio.storage.repository",
    "timestamp_order": "servio_twilio.storage.repository",
    # the async client's default, over an InMemoryRepository (docs: async)
    "AsyncInMemoryRepository": "servio_twilio.storage.async_view",
    # tells the repository kinds apart (docs: async)
    "is_async_repository": "servio_twilio.storage.repository",
    # a shared limit's storage is down: fail closed (docs: compliance)
    "LimiterUnavailable": "servio_twilio.domain.errors",
    # the consent stores' async variants (docs: compliance)
    "AsyncConsentStore": "servio_twilio.storage.consent",
    "AsyncInMemoryConsentStore": "servio_twilio.storage.consent",
    "is_async_consent_store": "servio_twilio.storage.consent",
    # what ConsentStore.get returns (docs: compliance)
    "Consent": "servio_twilio.domain.consent",
    "ConsentChange": "servio_twilio.domain.consent",
    # a send limiter for the async client (docs: compliance)
    "AsyncSendLimiter": "servio_twilio.sending.limiter",
    # what rate_per_second accepts: TokenBucket, SharedRateLimit (docs: batches)
    "RateLimit": "servio_twilio.sending.ratelimit",
    # what reconcile returns, and the record it could not check (DESIGN "A record that stays
    # true" names ReconcileReport; docs: reconcile)
    "ReconcileReport": "servio_twilio.sending.results",
    "ReconcileFailure": "servio_twilio.sending.results",
    # which records reconcile looks at, and which are final (docs: reconcile)
    "is_open": "servio_twilio.domain.status",
    "is_final": "servio_twilio.domain.status",
    # what CommunicationRepository.count_by_day returns (docs: custom repository)
    "DayCount": "servio_twilio.domain.models",
    # spans and metrics to providers that are not OpenTelemetry's globals (docs: telemetry)
    "configure_telemetry": "servio_twilio.domain.otel",
}
PUBLIC_EXPORTS = {**DESIGN_EXPORTS, **ADDED_EXPORTS}

DESIGN_TESTING_EXPORTS = {
    "FakeTwilio": "servio_twilio.testing.fake_twilio",
    # FakeTwilio.Fault, importable on its own too (docs: testing)
    "Fault": "servio_twilio.testing.fake_twilio",
    "signed_webhook": "servio_twilio.testing.webhooks",
}
FIRESTORE_EXPORTS = {
    "FirestoreRepository": "servio_twilio.storage.firestore.repository",
    "AsyncFirestoreRepository": "servio_twilio.storage.firestore.async_repository",
    # the consent stores (DESIGN.md "Send policy")
    "FirestoreConsentStore": "servio_twilio.storage.firestore.consent",
    "AsyncFirestoreConsentStore": "servio_twilio.storage.firestore.consent",
    # the document conversion, for code that reads the collection itself (docs: Firestore)
    "from_document": "servio_twilio.storage.firestore.documents",
    "to_document": "servio_twilio.storage.firestore.documents",
}


class TestPackageExports:
    def test_all_is_the_documented_names(self) -> None:
        """``servio_twilio.__all__`` is exactly DESIGN.md's names plus the listed additions."""
        assert set(servio_twilio.__all__) == set(PUBLIC_EXPORTS)
        assert servio_twilio.__all__ == sorted(servio_twilio.__all__)
        assert len(servio_twilio.__all__) == len(set(servio_twilio.__all__))

    @pytest.mark.parametrize("name", sorted(PUBLIC_EXPORTS))
    def test_every_name_resolves_from_its_module(self, name: str) -> None:
        """Each name resolves, and is the object defined in its documented module."""
        value = getattr(servio_twilio, name)
        module = importlib.import_module(PUBLIC_EXPORTS[name])
        assert value is getattr(module, name)
        assert getattr(value, "__module__", PUBLIC_EXPORTS[name]) == PUBLIC_EXPORTS[name]

    def test_every_name_has_a_docstring(self) -> None:
        """Public names are documented (checked on the ones that import today)."""
        for name in sorted(PUBLIC_EXPORTS):
            try:
                value = getattr(servio_twilio, name)
            except (AttributeError, ImportError):
                continue  # reported by test_every_name_resolves_from_its_module
            assert (value.__doc__ or "").strip(), name

    def test_dir_lists_every_name(self) -> None:
        """``dir(servio_twilio)`` lists every public name, before any is imported."""
        listed = set(dir(servio_twilio))
        assert set(DESIGN_EXPORTS) <= listed
        assert "__version__" in listed

    @pytest.mark.parametrize("name", ["FirestoreRepository", "nope", "_EXPORTS_", "advance"])
    def test_unknown_names_raise_attribute_error(self, name: str) -> None:
        """A name that is not exported raises AttributeError naming it."""
        with pytest.raises(AttributeError, match=name):
            getattr(servio_twilio, name)

    def test_from_import_of_an_unknown_name(self) -> None:
        """``from servio_twilio import X`` of an unknown name is an ImportError."""
        with pytest.raises(ImportError):
            exec("from servio_twilio import NotAThing", {})

    def test_version_is_the_installed_distribution_version(self) -> None:
        """``__version__`` is the installed package's version."""
        assert servio_twilio.__version__ == importlib.metadata.version("servio-twilio")


class TestTestingExports:
    def test_all_is_the_documented_names(self) -> None:
        """``servio_twilio.testing.__all__`` is exactly the kit's documented names."""
        assert sorted(servio_twilio.testing.__all__) == sorted(DESIGN_TESTING_EXPORTS)

    @pytest.mark.parametrize("name", sorted(DESIGN_TESTING_EXPORTS))
    def test_every_name_resolves_from_its_module(self, name: str) -> None:
        """Each name resolves, from its documented module."""
        value = getattr(servio_twilio.testing, name)
        module = importlib.import_module(DESIGN_TESTING_EXPORTS[name])
        assert value is getattr(module, name)

    def test_dir_lists_every_name(self) -> None:
        """``dir(servio_twilio.testing)`` lists both names."""
        assert set(DESIGN_TESTING_EXPORTS) <= set(dir(servio_twilio.testing))

    def test_unknown_names_raise_attribute_error(self) -> None:
        """A name that is not exported raises AttributeError naming it."""
        with pytest.raises(AttributeError, match="nothing_here"):
            _ = servio_twilio.testing.nothing_here

    def test_the_kit_is_not_exported_from_the_package(self) -> None:
        """The product does not export the kit's names."""
        for name in DESIGN_TESTING_EXPORTS:
            assert name not in servio_twilio.__all__


CONSOLE_EXPORTS = {
    "make_asgi_app": "servio_twilio.console.asgi",
    "make_wsgi_app": "servio_twilio.console.wsgi",
    "basic_auth": "servio_twilio.console.auth",
    "ConsoleRequest": "servio_twilio.console.http",
}


class TestConsoleExports:
    def test_all_is_the_documented_names(self) -> None:
        """``servio_twilio.console.__all__`` is the two apps, basic_auth and ConsoleRequest."""
        console = importlib.import_module("servio_twilio.console")
        assert console.__all__ == sorted(CONSOLE_EXPORTS)
        for name, module in CONSOLE_EXPORTS.items():
            value = getattr(console, name)
            assert value is getattr(importlib.import_module(module), name)
            assert "New in 0.2.0." in (value.__doc__ or ""), name


class TestFirestoreExports:
    def test_all_is_the_documented_names(self) -> None:
        """``servio_twilio.firestore.__all__`` is the backend and its document conversion."""
        firestore = importlib.import_module("servio_twilio.firestore")
        assert sorted(firestore.__all__) == sorted(FIRESTORE_EXPORTS)
        for name, module in FIRESTORE_EXPORTS.items():
            assert getattr(firestore, name) is getattr(importlib.import_module(module), name)


def _doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, re.S | re.M)


def _public_names(path: str) -> set[str]:
    return set(importlib.import_module(path).__all__)


class TestDocsUsePublicPaths:
    @pytest.mark.parametrize("doc", _doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
    def test_every_import_in_a_sample_is_public(self, doc: Path) -> None:
        """Each sample imports from a documented path, and only names that path exports."""
        for block in _python_blocks(doc.read_text(encoding="utf-8")):
            for node in ast.walk(ast.parse(block)):
                if isinstance(node, ast.ImportFrom) and (node.module or "").startswith(
                    "servio_twilio"
                ):
                    assert node.module in PUBLIC_PATHS, (doc.name, node.module)
                    missing = {a.name for a in node.names} - _public_names(node.module)
                    assert not missing, (doc.name, node.module, missing)
                elif isinstance(node, ast.Import):
                    for alias in node.names:
                        if alias.name.startswith("servio_twilio"):
                            assert alias.name in PUBLIC_PATHS, (doc.name, alias.name)

    @pytest.mark.parametrize("doc", _doc_files(), ids=lambda p: str(p.relative_to(ROOT)))
    def test_prose_and_reference_name_public_paths(self, doc: Path) -> None:
        """Pages name public paths only (``servio_twilio.X`` with X public); the map page aside.

        The API reference (``::: servio_twilio...``) included: each entry is a
        public name of a public path.
        """
        if doc.name == "architecture.md":
            return
        text = doc.read_text(encoding="utf-8")
        for dotted in set(re.findall(r"servio_twilio(?:\.\w+)+", text)) - LOGGER_NAMES:
            if TELEMETRY_NAME.fullmatch(dotted):
                continue
            parts = dotted.split(".")
            for cut in range(len(parts), 0, -1):
                if ".".join(parts[:cut]) in PUBLIC_PATHS:
                    break
            path = ".".join(parts[:cut])
            if cut < len(parts):
                assert parts[cut] in _public_names(path), (doc.name, dotted)
            else:
                assert path in PUBLIC_PATHS, (doc.name, dotted)


def _public_callables() -> dict[str, object]:
    found: dict[str, object] = {}
    for name in servio_twilio.__all__:
        value = getattr(servio_twilio, name)
        if isinstance(value, type):
            found |= {
                f"{name}.{attr}": member
                for attr, member in vars(value).items()
                if callable(member) and (attr == "__init__" or not attr.startswith("_"))
            }
        elif callable(value):
            found[name] = value
    return found


class TestPublicSignatures:
    @pytest.mark.parametrize("name", sorted(_public_callables()))
    def test_no_parameter_is_typed_any_where_a_real_type_exists(self, name: str) -> None:
        """No public parameter is a bare ``Any`` or an untyped ``Callable[..., Any]``.

        ``Any`` stays only inside JSON-shaped data (``Mapping[str, Any]``, ``**changes``).
        """
        value = _public_callables()[name]
        for parameter in inspect.signature(value).parameters.values():  # type: ignore[arg-type]
            annotation = str(parameter.annotation)
            if parameter.kind is parameter.VAR_KEYWORD:
                continue
            assert annotation.split(" | ")[0] != "Any", (name, parameter.name, annotation)
            assert "Callable[..., Any]" not in annotation, (name, parameter.name, annotation)
