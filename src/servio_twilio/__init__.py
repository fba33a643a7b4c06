"""servio-twilio: SMS, WhatsApp and calls through Twilio, logged in Firestore.

The public import paths are this package (every public name),
`servio_twilio.firestore` (the Firestore backend) and `servio_twilio.testing`
(the testing kit). The layer folders (``domain``, ``storage``, ``sending``,
``webhooks``) are internal: their module paths may change in any release.

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

    from servio_twilio.domain.consent import Consent, ConsentChange
    from servio_twilio.domain.errors import (
        BatchTooLarge,
        ConfigurationError,
        DuplicateRecord,
        InvalidArgument,
        InvalidPhoneNumber,
        InvalidSignature,
        LimiterUnavailable,
        MalformedCallback,
        MissingSignature,
        OutsideSendingHours,
        RateLimited,
        RecipientOptedOut,
        RecordNotFound,
        RepositoryError,
        SendLimitExceeded,
        SendOutcomeUnknown,
        ServioTwilioError,
        TwilioAPIError,
        WebhookVerificationError,
    )
    from servio_twilio.domain.models import Channel, Communication, DayCount, Direction, replace
    from servio_twilio.domain.otel import configure_telemetry
    from servio_twilio.domain.phone import normalize_e164
    from servio_twilio.domain.phone_text import mask_phone, mask_phone_numbers
    from servio_twilio.domain.settings import TwilioSettings
    from servio_twilio.domain.status import is_final, is_open, merge_status, status_rank
    from servio_twilio.sending.async_client import AsyncCommunicationsClient
    from servio_twilio.sending.client import CommunicationsClient
    from servio_twilio.sending.limiter import AsyncSendLimiter, InMemorySendLimiter, SendLimiter
    from servio_twilio.sending.policy import SendPolicy
    from servio_twilio.sending.ratelimit import RateLimit, TokenBucket
    from servio_twilio.sending.results import (
        BatchItemResult,
        BatchReport,
        HealthCheck,
        HealthReport,
        OutboundMessage,
        ReconcileFailure,
        ReconcileReport,
        SendResult,
    )
    from servio_twilio.sending.shared_limits import SharedRateLimit, SharedSendLimiter
    from servio_twilio.storage.async_view import AsyncInMemoryRepository
    from servio_twilio.storage.consent import (
        AsyncConsentStore,
        AsyncInMemoryConsentStore,
        ConsentStore,
        InMemoryConsentStore,
        is_async_consent_store,
    )
    from servio_twilio.storage.memory import InMemoryRepository
    from servio_twilio.storage.repository import (
        AsyncCommunicationRepository,
        CommunicationRepository,
        check_count_args,
        check_history_args,
        check_page_args,
        check_update_result,
        is_async_repository,
        timestamp_order,
    )
    from servio_twilio.webhooks.asgi import make_asgi_app, mount_asgi
    from servio_twilio.webhooks.events import (
        CallStatusEvent,
        InboundMessageEvent,
        MessageStatusEvent,
        RecordingStatusEvent,
    )
    from servio_twilio.webhooks.verifier import WebhookVerifier
    from servio_twilio.webhooks.wsgi import make_wsgi_app, mount_wsgi

    __version__: str

_EXPORTS: dict[str, str] = {
    "AsyncCommunicationRepository": "servio_twilio.storage.repository",
    "AsyncCommunicationsClient": "servio_twilio.sending.async_client",
    "AsyncConsentStore": "servio_twilio.storage.consent",
    "AsyncInMemoryConsentStore": "servio_twilio.storage.consent",
    "AsyncInMemoryRepository": "servio_twilio.storage.async_view",
    "AsyncSendLimiter": "servio_twilio.sending.limiter",
    "BatchItemResult": "servio_twilio.sending.results",
    "BatchReport": "servio_twilio.sending.results",
    "BatchTooLarge": "servio_twilio.domain.errors",
    "CallStatusEvent": "servio_twilio.webhooks.events",
    "Channel": "servio_twilio.domain.models",
    "Communication": "servio_twilio.domain.models",
    "CommunicationRepository": "servio_twilio.storage.repository",
    "CommunicationsClient": "servio_twilio.sending.client",
    "ConfigurationError": "servio_twilio.domain.errors",
    "Consent": "servio_twilio.domain.consent",
    "ConsentChange": "servio_twilio.domain.consent",
    "ConsentStore": "servio_twilio.storage.consent",
    "DayCount": "servio_twilio.domain.models",
    "Direction": "servio_twilio.domain.models",
    "DuplicateRecord": "servio_twilio.domain.errors",
    "HealthCheck": "servio_twilio.sending.results",
    "HealthReport": "servio_twilio.sending.results",
    "InMemoryConsentStore": "servio_twilio.storage.consent",
    "InMemoryRepository": "servio_twilio.storage.memory",
    "InMemorySendLimiter": "servio_twilio.sending.limiter",
    "InboundMessageEvent": "servio_twilio.webhooks.events",
    "InvalidArgument": "servio_twilio.domain.errors",
    "InvalidPhoneNumber": "servio_twilio.domain.errors",
    "InvalidSignature": "servio_twilio.domain.errors",
    "LimiterUnavailable": "servio_twilio.domain.errors",
    "MalformedCallback": "servio_twilio.domain.errors",
    "ReconcileFailure": "servio_twilio.sending.results",
    "ReconcileReport": "servio_twilio.sending.results",
    "is_final": "servio_twilio.domain.status",
    "is_open": "servio_twilio.domain.status",
    "MessageStatusEvent": "servio_twilio.webhooks.events",
    "MissingSignature": "servio_twilio.domain.errors",
    "OutboundMessage": "servio_twilio.sending.results",
    "OutsideSendingHours": "servio_twilio.domain.errors",
    "RateLimit": "servio_twilio.sending.ratelimit",
    "RateLimited": "servio_twilio.domain.errors",
    "RecipientOptedOut": "servio_twilio.domain.errors",
    "RecordNotFound": "servio_twilio.domain.errors",
    "RecordingStatusEvent": "servio_twilio.webhooks.events",
    "RepositoryError": "servio_twilio.domain.errors",
    "SendLimitExceeded": "servio_twilio.domain.errors",
    "SendLimiter": "servio_twilio.sending.limiter",
    "SendOutcomeUnknown": "servio_twilio.domain.errors",
    "SendPolicy": "servio_twilio.sending.policy",
    "SendResult": "servio_twilio.sending.results",
    "ServioTwilioError": "servio_twilio.domain.errors",
    "SharedRateLimit": "servio_twilio.sending.shared_limits",
    "SharedSendLimiter": "servio_twilio.sending.shared_limits",
    "TokenBucket": "servio_twilio.sending.ratelimit",
    "TwilioAPIError": "servio_twilio.domain.errors",
    "TwilioSettings": "servio_twilio.domain.settings",
    "WebhookVerificationError": "servio_twilio.domain.errors",
    "WebhookVerifier": "servio_twilio.webhooks.verifier",
    "check_count_args": "servio_twilio.storage.repository",
    "check_history_args": "servio_twilio.storage.repository",
    "check_page_args": "servio_twilio.storage.repository",
    "check_update_result": "servio_twilio.storage.repository",
    "configure_telemetry": "servio_twilio.domain.otel",
    "is_async_consent_store": "servio_twilio.storage.consent",
    "is_async_repository": "servio_twilio.storage.repository",
    "make_asgi_app": "servio_twilio.webhooks.asgi",
    "make_wsgi_app": "servio_twilio.webhooks.wsgi",
    "mask_phone": "servio_twilio.domain.phone_text",
    "mask_phone_numbers": "servio_twilio.domain.phone_text",
    "merge_status": "servio_twilio.domain.status",
    "mount_asgi": "servio_twilio.webhooks.asgi",
    "mount_wsgi": "servio_twilio.webhooks.wsgi",
    "normalize_e164": "servio_twilio.domain.phone",
    "replace": "servio_twilio.domain.models",
    "status_rank": "servio_twilio.domain.status",
    "timestamp_order": "servio_twilio.storage.repository",
}

__all__ = [
    "AsyncCommunicationRepository",
    "AsyncCommunicationsClient",
    "AsyncConsentStore",
    "AsyncInMemoryConsentStore",
    "AsyncInMemoryRepository",
    "AsyncSendLimiter",
    "BatchItemResult",
    "BatchReport",
    "BatchTooLarge",
    "CallStatusEvent",
    "Channel",
    "Communication",
    "CommunicationRepository",
    "CommunicationsClient",
    "ConfigurationError",
    "Consent",
    "ConsentChange",
    "ConsentStore",
    "DayCount",
    "Direction",
    "DuplicateRecord",
    "HealthCheck",
    "HealthReport",
    "InMemoryConsentStore",
    "InMemoryRepository",
    "InMemorySendLimiter",
    "InboundMessageEvent",
    "InvalidArgument",
    "InvalidPhoneNumber",
    "InvalidSignature",
    "LimiterUnavailable",
    "MalformedCallback",
    "MessageStatusEvent",
    "MissingSignature",
    "OutboundMessage",
    "OutsideSendingHours",
    "RateLimit",
    "RateLimited",
    "RecipientOptedOut",
    "ReconcileFailure",
    "ReconcileReport",
    "RecordNotFound",
    "RecordingStatusEvent",
    "RepositoryError",
    "SendLimitExceeded",
    "SendLimiter",
    "SendOutcomeUnknown",
    "SendPolicy",
    "SendResult",
    "ServioTwilioError",
    "SharedRateLimit",
    "SharedSendLimiter",
    "TokenBucket",
    "TwilioAPIError",
    "TwilioSettings",
    "WebhookVerificationError",
    "WebhookVerifier",
    "check_count_args",
    "check_history_args",
    "check_page_args",
    "check_update_result",
    "configure_telemetry",
    "is_async_consent_store",
    "is_async_repository",
    "is_final",
    "is_open",
    "make_asgi_app",
    "make_wsgi_app",
    "mask_phone",
    "mask_phone_numbers",
    "merge_status",
    "mount_asgi",
    "mount_wsgi",
    "normalize_e164",
    "replace",
    "status_rank",
    "timestamp_order",
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
