"""A minimal Django project for the tests: settings configured once, one view.

Every test module that needs Django calls `configure()`; the first call wins,
so all of them must agree on these settings.
"""

from __future__ import annotations

from typing import Any

import django
from django.conf import settings
from django.http import HttpResponse
from django.urls import path


def health(request: Any) -> HttpResponse:
    """The host app's own route, to show requests outside the mount reach Django."""
    return HttpResponse("django ok", content_type="text/plain")


urlpatterns = [path("health", health)]


def configure() -> None:
    """Configure Django for the tests, once per process."""
    if settings.configured:
        return
    settings.configure(
        DEBUG=False,
        SECRET_KEY="servio-twilio-tests",
        ALLOWED_HOSTS=["127.0.0.1", "localhost", "testserver"],
        ROOT_URLCONF=__name__,
        INSTALLED_APPS=[],
        MIDDLEWARE=[],
    )
    django.setup()
