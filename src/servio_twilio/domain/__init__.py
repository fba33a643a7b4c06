"""The domain layer: records, status rules, phone numbers, settings and errors.

Imports nothing else of the package. Internal: import the public names from
`servio_twilio`.
"""
