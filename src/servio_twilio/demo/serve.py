"""``demo --serve``: after the story, keep the webhook app and an operator console running.

The console is mounted at ``/console`` beside the webhook app, behind
`basic_auth` with the user ``demo`` and a one-time password printed once,
until Ctrl-C (or ``stop`` is set).
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable
from typing import Any, TextIO

from servio_twilio.console import basic_auth, make_wsgi_app
from servio_twilio.demo.flow import MOUNT, PROSPECT
from servio_twilio.storage.memory import InMemoryRepository

__all__ = ["CONSOLE_MOUNT", "CONSOLE_USER", "console_server"]

CONSOLE_MOUNT = "/console"
CONSOLE_USER = "demo"


def console_server(
    repository: InMemoryRepository, stdout: TextIO, stop: threading.Event
) -> Callable[[str, Callable[[str, Any], None], dict[str, Any]], None]:
    """The ``serve_more`` step of `servio_twilio.demo.flow.run_flow` for ``--serve``.

    Mounts a console over ``repository`` (numbers masked), prints where it
    is and its one-time password on ``stdout``, then waits for ``stop``.
    Raises `ConfigurationError` when the console's extra (jinja2) is missing.
    """

    def serve_more(base_url: str, mount: Callable[[str, Any], None], _: dict[str, Any]) -> None:
        password = secrets.token_urlsafe(12)
        console = make_wsgi_app(repository=repository, authorize=basic_auth(CONSOLE_USER, password))
        mount(CONSOLE_MOUNT, console)
        stdout.write(
            "\n".join(
                [
                    "",
                    f"Console:     {base_url}{CONSOLE_MOUNT}/  "
                    f"(user {CONSOLE_USER}, one-time password {password})",
                    f"Prospect:    {base_url}{CONSOLE_MOUNT}/prospects/{PROSPECT}",
                    f"Webhook app: {base_url}{MOUNT}",
                    "Serving until Ctrl-C.",
                    "",
                ]
            )
        )
        stdout.flush()
        stop.wait()

    return serve_more
