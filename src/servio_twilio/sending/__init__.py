"""The sending layer: the client, its send path, batches, limits and the HTTP wrapper.

Imports the domain and storage layers, never the webhooks layer. Internal:
import the public names from `servio_twilio`.
"""
