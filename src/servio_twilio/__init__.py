"""servio-twilio: SMS, WhatsApp and calls through Twilio, logged in Firestore.

Public names are imported lazily (PEP 562), so ``import servio_twilio`` stays
cheap: it loads none of ``twilio.rest``, ``google.cloud.firestore``, ``grpc``,
``phonenumbers`` or ``asyncio`` until a name that needs them is used.
"""

from __future__ import annotations

import importlib

# Not `from typing import TYPE_CHECKING`: importing typing would double the
# cost of `import servio_twilio`. Type checkers treat this name the same way.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from servio_twilio.asgi import make_asgi_app, mount_asgi
    from servio_twilio.client import CommunicationsClient
    from servio_twilio.errors import (
        BatchTooLarge,
        ConfigurationError,
        DuplicateRecord,
        InvalidPhoneNumber,
        InvalidSignature,
        MalformedCallback,
        MissingSignature,
        RateLimited,
        RecordNotFound,
        RepositoryError,
        SendLimitExceeded,
        SendOutcomeUnknown,
        ServioTwilioError,
        TwilioAPIError,
        WebhookVerificationError,
    )
    from servio_twilio.events import (
        CallStatusEvent,
        InboundMessageEvent,
        MessageStatusEvent,
        RecordingStatusEvent,
    )
    from servio_twilio.limiter import InMemorySendLimiter, SendLimiter
    from servio_twilio.memory import InMemoryRepository
    from servio_twilio.models import Channel, Communication, Direction
    from servio_twilio.phone import mask_phone, normalize_e164
    from servio_twilio.repository import CommunicationRepository
    from servio_twilio.results import (
        BatchItemResult,
        BatchReport,
        HealthCheck,
        HealthReport,
        OutboundMessage,
        SendResult,
    )
    from servio_twilio.settings import TwilioSettings
    from servio_twilio.verifier import WebhookVerifier
    from servio_twilio.wsgi import make_wsgi_app, mount_wsgi

    __version__: str

_EXPORTS: dict[str, str] = {
    "BatchItemResult": "servio_twilio.results",
    "BatchReport": "servio_twilio.results",
    "BatchTooLarge": "servio_twilio.errors",
    "CallStatusEvent": "servio_twilio.events",
    "Channel": "servio_twilio.models",
    "Communication": "servio_twilio.models",
    "CommunicationRepository": "servio_twilio.repository",
    "CommunicationsClient": "servio_twilio.client",
    "ConfigurationError": "servio_twilio.errors",
    "Direction": "servio_twilio.models",
    "DuplicateRecord": "servio_twilio.errors",
    "HealthCheck": "servio_twilio.results",
    "HealthReport": "servio_twilio.results",
    "InMemoryRepository": "servio_twilio.memory",
    "InMemorySendLimiter": "servio_twilio.limiter",
    "InboundMessageEvent": "servio_twilio.events",
    "InvalidPhoneNumber": "servio_twilio.errors",
    "InvalidSignature": "servio_twilio.errors",
    "MalformedCallback": "servio_twilio.errors",
    "MessageStatusEvent": "servio_twilio.events",
    "MissingSignature": "servio_twilio.errors",
    "OutboundMessage": "servio_twilio.results",
    "RateLimited": "servio_twilio.errors",
    "RecordNotFound": "servio_twilio.errors",
    "RecordingStatusEvent": "servio_twilio.events",
    "RepositoryError": "servio_twilio.errors",
    "SendLimitExceeded": "servio_twilio.errors",
    "SendLimiter": "servio_twilio.limiter",
    "SendOutcomeUnknown": "servio_twilio.errors",
    "SendResult": "servio_twilio.results",
    "ServioTwilioError": "servio_twilio.errors",
    "TwilioAPIError": "servio_twilio.errors",
    "TwilioSettings": "servio_twilio.settings",
    "WebhookVerificationError": "servio_twilio.errors",
    "WebhookVerifier": "servio_twilio.verifier",
    "make_asgi_app": "servio_twilio.asgi",
    "make_wsgi_app": "servio_twilio.wsgi",
    "mask_phone": "servio_twilio.phone",
    "mount_asgi": "servio_twilio.asgi",
    "mount_wsgi": "servio_twilio.wsgi",
    "normalize_e164": "servio_twilio.phone",
}

__all__ = [
    "BatchItemResult",
    "BatchReport",
    "BatchTooLarge",
    "CallStatusEvent",
    "Channel",
    "Communication",
    "CommunicationRepository",
    "CommunicationsClient",
    "ConfigurationError",
    "Direction",
    "DuplicateRecord",
    "HealthCheck",
    "HealthReport",
    "InMemoryRepository",
    "InMemorySendLimiter",
    "InboundMessageEvent",
    "InvalidPhoneNumber",
    "InvalidSignature",
    "MalformedCallback",
    "MessageStatusEvent",
    "MissingSignature",
    "OutboundMessage",
    "RateLimited",
    "RecordNotFound",
    "RecordingStatusEvent",
    "RepositoryError",
    "SendLimitExceeded",
    "SendLimiter",
    "SendOutcomeUnknown",
    "SendResult",
    "ServioTwilioError",
    "TwilioAPIError",
    "TwilioSettings",
    "WebhookVerificationError",
    "WebhookVerifier",
    "make_asgi_app",
    "make_wsgi_app",
    "mask_phone",
    "mount_asgi",
    "mount_wsgi",
    "normalize_e164",
]


def __getattr__(name: str) -> Any:
    if name == "__version__":
        from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

        try:
            value = version("servio-twilio")
        except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
            value = "0+unknown"
        globals()[name] = value
        return value
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'servio_twilio' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__, "__version__"})
