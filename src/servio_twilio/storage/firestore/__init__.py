"""The Firestore backend: documents, error translation and the repository.

Imports ``google.cloud.firestore``; the public face is `servio_twilio.firestore`.
"""
