"""pytest plugin: Prism serving Twilio's OpenAPI description, as a mock Twilio.

``prism_url`` starts ``tests/node_modules/.bin/prism mock`` on
``twilio_api_v2010.prism.json`` (requests validated against Twilio's schemas,
answers from Twilio's examples); ``prism_errors_url`` on
``twilio_api_v2010.prism-errors.json``, which also answers Twilio-shaped
errors when asked with a ``Prefer: code=429`` header. Both listen on a free
port of 127.0.0.1, log to a file, are polled until ready and stopped at the
end of the session. The spec files are read from ``../shared/twilio-oai/``
beside the project root (or ``TWILIO_OAI_DIR``). Without ``node``, the npm
package or the spec, the fixtures fail (in CI and outside it, never skip),
naming what is missing and where it comes from (`support.requirements`).

``PrismHttpClient`` is a ``TwilioHttpClient`` that sends
``https://api.twilio.com`` requests to Prism instead.
"""

from __future__ import annotations

import base64
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest
from twilio.http.http_client import TwilioHttpClient

from support import requirements
from support.processes import free_port, require, stop, tail, unavailable

TESTS_DIR = requirements.TESTS_DIR
PRISM = requirements.PRISM
READY_TIMEOUT = 60.0
PROBE_ACCOUNT = "AC" + "0" * 32
TWILIO_API = "https://api.twilio.com"


class PrismHttpClient(TwilioHttpClient):  # type: ignore[misc]
    """twilio's own HTTP client, with ``https://api.twilio.com`` swapped for Prism's URL.

    ``prefer`` (e.g. ``"code=429"``) is sent as the ``Prefer`` header, which
    makes Prism answer with that response of the description.
    """

    def __init__(self, base_url: str, *, prefer: str | None = None) -> None:
        super().__init__(timeout=30)
        self.base_url = base_url.rstrip("/")
        self.prefer = prefer

    def request(self, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        if url.startswith(TWILIO_API):
            url = self.base_url + url[len(TWILIO_API) :]
        if self.prefer is not None:
            headers = dict(kwargs.get("headers") or {})
            headers["Prefer"] = self.prefer
            kwargs["headers"] = headers
        return super().request(method, url, *args, **kwargs)


def _ready(url: str) -> bool:
    token = base64.b64encode(f"{PROBE_ACCOUNT}:probe".encode()).decode()
    request = urllib.request.Request(
        f"{url}/2010-04-01/Accounts/{PROBE_ACCOUNT}.json",
        headers={"Authorization": f"Basic {token}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _serve(spec_name: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    require("Prism", requirements.for_prism(spec_name))
    spec = requirements.spec_dir() / spec_name
    log_path = tmp_path_factory.mktemp("prism") / f"{spec.stem}.log"
    last_error = ""
    for _attempt in range(3):  # a port taken between probe and bind gets another try
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [str(PRISM), "mock", str(spec), "-h", "127.0.0.1", "-p", str(port), "-v", "warn"],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                cwd=TESTS_DIR,
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            if _ready(url):
                try:
                    yield url
                finally:
                    stop(process)
                return
            time.sleep(0.2)
        stop(process)
        last_error = (
            f"exited with {process.returncode}"
            if process.returncode is not None
            else f"not ready within {READY_TIMEOUT:.0f}s"
        )
        last_error += f"; log tail:\n{tail(log_path)}"
    unavailable("Prism", f"prism mock {spec.name} did not start: {last_error}")


@pytest.fixture(scope="session")
def prism_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of Prism serving ``twilio_api_v2010.prism.json``."""
    yield from _serve("twilio_api_v2010.prism.json", tmp_path_factory)


@pytest.fixture(scope="session")
def prism_errors_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The base URL of Prism serving ``twilio_api_v2010.prism-errors.json`` (``Prefer: code=``)."""
    yield from _serve("twilio_api_v2010.prism-errors.json", tmp_path_factory)
