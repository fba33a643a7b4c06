"""The public names: what ``servio_twilio`` and ``servio_twilio.testing`` export, and from where."""

from __future__ import annotations

import importlib
import importlib.metadata

import pytest

import servio_twilio
import servio_twilio.testing

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
}

# Exported beyond DESIGN.md's list, each for a reason the docs give.
ADDED_EXPORTS = {
    # raised by the exported events' from_params() for a callback missing fields
    "MalformedCallback": "servio_twilio.domain.errors",
}
PUBLIC_EXPORTS = {**DESIGN_EXPORTS, **ADDED_EXPORTS}

DESIGN_TESTING_EXPORTS = {
    "FakeTwilio": "servio_twilio.testing.fake_twilio",
    "signed_webhook": "servio_twilio.testing.webhooks",
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
        """``servio_twilio.testing.__all__`` is exactly FakeTwilio and signed_webhook."""
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
