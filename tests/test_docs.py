"""Every Python sample in the docs and the README runs.

Each page's ```` ```python ```` blocks run in order in one namespace, as a
reader would paste them, in a fresh working directory, with Twilio-shaped
environment variables set. Twilio is `FakeTwilio` (the real HTTP client is
patched to answer from it, so samples that build a default client stay
offline) and Firestore is the emulator. A block preceded by the comment
``<!-- docs: not run (why) -->`` is shown, not run: the reason must be there.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest
from twilio.http.http_client import TwilioHttpClient

from servio_twilio.testing import FakeTwilio

ROOT = Path(__file__).resolve().parent.parent
PAGES = [*sorted((ROOT / "docs").rglob("*.md")), ROOT / "README.md"]
BLOCK = re.compile(
    r"(<!-- docs: not run \((?P<why>[^)]+)\) -->\s*)?```python\n(?P<code>.*?)```", re.S
)
ENVIRONMENT = {
    "TWILIO_ACCOUNT_SID": "AC" + "d0c5" * 8,
    "TWILIO_AUTH_TOKEN": "docs-auth-token-0123456789abcdef",
    "TWILIO_PHONE_NUMBER": "+14155552671",
    "TWILIO_WHATSAPP_NUMBER": "whatsapp:+14155238886",
    "GOOGLE_CLOUD_PROJECT": "demo-servio-docs",
}


def _blocks(page: Path) -> list[tuple[str, str | None]]:
    text = page.read_text(encoding="utf-8")
    # Blank lines in front keep tracebacks pointing at the page's own line numbers.
    return [
        ("\n" * text.count("\n", 0, m.start("code")) + m.group("code"), m.group("why"))
        for m in BLOCK.finditer(text)
    ]


PAGES_WITH_CODE = [p for p in PAGES if _blocks(p)]


@pytest.fixture
def offline_twilio(monkeypatch: pytest.MonkeyPatch) -> FakeTwilio:
    """twilio's real HTTP client, answering from a `FakeTwilio` instead of the network."""
    fake = FakeTwilio()

    def request(self: TwilioHttpClient, method: str, url: str, *args: Any, **kwargs: Any) -> Any:
        return fake.request(method, url, *args, **kwargs)

    monkeypatch.setattr(TwilioHttpClient, "request", request)
    return fake


class TestDocSamples:
    def test_every_page_is_found(self) -> None:
        """The docs have samples to run, and every page with samples is collected."""
        assert len(PAGES_WITH_CODE) >= 10

    @pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=lambda p: str(p.relative_to(ROOT)))
    def test_samples_run(
        self,
        page: Path,
        request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
        offline_twilio: FakeTwilio,
    ) -> None:
        """The page's Python samples run in order and their assertions hold."""
        blocks = _blocks(page)
        if any("google.cloud" in code or "firestore" in code for code, _ in blocks):
            request.getfixturevalue("firestore_emulator")
        monkeypatch.setattr(os, "environ", dict(os.environ))  # samples may set variables
        for name, value in ENVIRONMENT.items():
            monkeypatch.setenv(name, value)
        monkeypatch.delenv("BACKEND_URL", raising=False)
        monkeypatch.chdir(tmp_path)
        namespace: dict[str, Any] = {"__name__": f"docs_{page.stem}"}
        ran = 0
        for code, why in blocks:
            if why is not None:
                assert why.strip(), "a sample that is not run says why"
                continue
            exec(compile(code, str(page), "exec"), namespace)
            ran += 1
        assert ran, f"{page.name}: every sample is marked not run"
        logging.getLogger("servio_twilio").handlers.clear()
