"""The Firestore backend: documents, error translation, the operations as steps, both repositories.

Imports ``google.cloud.firestore``; the public face is `servio_twilio.firestore`.
"""
