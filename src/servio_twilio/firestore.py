"""The Google Cloud Firestore backends: ``from servio_twilio.firestore import FirestoreRepository``.

`FirestoreRepository` runs on ``google.cloud.firestore.Client`` (blocking);
`AsyncFirestoreRepository` on ``google.cloud.firestore.AsyncClient``
(awaited, for an event loop). Both store the same documents.
`to_document` and `from_document` convert a `Communication` to and from the
stored document, for code that reads or writes the collection itself.
`FirestoreConsentStore` and `AsyncFirestoreConsentStore` keep opt-outs and
opt-ins (the ``consents`` collection).

Install them with ``pip install 'servio-twilio[firestore]'``. Importing this
module imports ``google.cloud.firestore``; ``import servio_twilio`` never does.

New in 0.1.0. Changed in 0.2.0: `AsyncFirestoreRepository`, the consent stores.
"""

from __future__ import annotations

from servio_twilio.storage.firestore.async_repository import AsyncFirestoreRepository
from servio_twilio.storage.firestore.consent import (
    AsyncFirestoreConsentStore,
    FirestoreConsentStore,
)
from servio_twilio.storage.firestore.documents import from_document, to_document
from servio_twilio.storage.firestore.repository import FirestoreRepository

__all__ = [
    "AsyncFirestoreConsentStore",
    "AsyncFirestoreRepository",
    "FirestoreConsentStore",
    "FirestoreRepository",
    "from_document",
    "to_document",
]
