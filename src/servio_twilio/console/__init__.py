"""The operator console: read-only pages over the repository, mounted by the host app.

Build it with `make_asgi_app` or `make_wsgi_app` (one core, two thin
adapters, as the webhook apps) and mount it next to the webhook app; every
request goes through ``authorize`` first (`basic_auth` is a ready one).
Needs Jinja2: ``pip install "servio-twilio[console]"``. ``import
servio_twilio`` never imports this package; import it yourself.

New in 0.2.0.
"""

from __future__ import annotations

from servio_twilio.console.asgi import make_asgi_app
from servio_twilio.console.auth import basic_auth
from servio_twilio.console.http import ConsoleRequest
from servio_twilio.console.wsgi import make_wsgi_app

__all__ = ["ConsoleRequest", "basic_auth", "make_asgi_app", "make_wsgi_app"]
