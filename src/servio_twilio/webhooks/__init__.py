"""The receiving layer: the verifier, callback events, the webhook core and its adapters.

Imports the domain and storage layers, never the sending layer. Internal:
import the public names from `servio_twilio`.
"""
