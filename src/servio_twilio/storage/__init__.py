"""The storage layer: the repository Protocol, the in-memory and Firestore backends.

Imports the domain layer only. Internal: import the public names from
`servio_twilio` and `servio_twilio.firestore`.
"""
