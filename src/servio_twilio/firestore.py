"""The Google Cloud Firestore backends: ``from servio_twilio.firestore import FirestoreRepository``.

`to_document` and `from_document` convert a `Communication` to and from the
stored document, for code that reads or writes the collection itself.

Install them with ``pip install 'servio-twilio[firestore]'``. Importing this
module imports ``google.cloud.firestore``; ``import servio_twilio`` never does.

New in 0.1.0.
"""

from __future__ import annotations

from servio_twilio.storage.firestore.documents import from_document, to_document
from servio_twilio.storage.firestore.repository import FirestoreRepository

__all__ = ["FirestoreRepository", "from_document", "to_document"]
