"""pytest plugin: a real headless Chromium, driven by selenium, for the console's browser tests.

``browser`` gives a ``selenium.webdriver.Chrome`` on Debian's ``chromium`` and
``chromedriver`` (packages ``chromium`` and ``chromium-driver``), headless,
with a fresh profile in the test's ``tmp_path``, quit after the test. Without
them, or without the ``selenium`` package, the fixture fails naming what to
install (`support.requirements`), in CI and outside it: never a skip.

`send_basic_auth` makes every request of the page (stylesheet included) carry
an ``Authorization: Basic`` header, through the DevTools protocol;
`screenshot` saves the whole page (not only the window) as a PNG;
`browser_errors` reads the page's console messages of level SEVERE and
`responses` the HTTP status of each response the browser received (a 401
shows no page of its own in headless Chromium: its status is how to see it).
Selenium Manager is kept offline: the binaries are given, nothing is fetched.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support import requirements
from support.processes import require

WINDOW = (1280, 900)
"""The browser window's size in CSS pixels (what the screenshots show)."""
PAGE_LOAD_TIMEOUT = 30.0
MAX_SCREENSHOT_HEIGHT = 8000
"""The tallest screenshot `screenshot` takes, in CSS pixels (the top of a longer page)."""

CHROMIUM_ARGUMENTS = (
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-default-apps",
    "--password-store=basic",
    "--no-default-browser-check",
    "--no-pings",
    "--dns-prefetch-disable",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    # No name resolves: nothing but 127.0.0.1 (the servers under test) can be reached.
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
    f"--window-size={WINDOW[0]},{WINDOW[1]}",
)


def chromium_binary() -> str:
    """Debian's Chromium itself, not its /usr/bin/chromium launcher (whose flags it adds)."""
    real = Path("/usr/lib/chromium/chromium")
    if real.is_file() and os.access(real, os.X_OK):
        return str(real)
    return shutil.which("chromium") or "/usr/bin/chromium"


def send_basic_auth(driver: Any, user: str, password: str) -> None:
    """Make every later request of ``driver`` carry HTTP basic credentials."""
    token = base64.b64encode(f"{user}:{password}".encode()).decode("ascii")
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd(
        "Network.setExtraHTTPHeaders", {"headers": {"Authorization": f"Basic {token}"}}
    )


def screenshot(driver: Any, path: Path) -> Path:
    """Save the whole page (up to `MAX_SCREENSHOT_HEIGHT` pixels tall) as a PNG at ``path``."""
    size = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    clip = {
        "x": 0,
        "y": 0,
        "width": max(1, min(int(size["width"]), 4 * WINDOW[0])),
        "height": max(1, min(int(size["height"]), MAX_SCREENSHOT_HEIGHT)),
        "scale": 1,
    }
    shot = driver.execute_cdp_cmd(
        "Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": clip}
    )
    path.write_bytes(base64.b64decode(shot["data"]))
    return path


def forget_basic_auth(driver: Any) -> None:
    """Stop sending the credentials `send_basic_auth` set."""
    driver.execute_cdp_cmd("Network.setExtraHTTPHeaders", {"headers": {}})


def responses(driver: Any) -> list[tuple[str, int]]:
    """(URL, HTTP status) of each response received since the last call, in order."""
    received = []
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        if message.get("method") == "Network.responseReceived":
            response = message["params"]["response"]
            received.append((str(response["url"]), int(response["status"])))
    return received


def browser_errors(driver: Any) -> list[dict[str, Any]]:
    """The console messages of level SEVERE the page logged since the last call."""
    entries: list[dict[str, Any]] = driver.get_log("browser")
    return [entry for entry in entries if entry.get("level") == "SEVERE"]


@pytest.fixture
def browser(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A headless Chromium WebDriver with a fresh profile, quit after the test."""
    require("Chromium", requirements.for_browser())
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service

    # Selenium Manager would look for (and download) browsers: never here.
    monkeypatch.setenv("SE_OFFLINE", "true")
    options = webdriver.ChromeOptions()
    options.binary_location = chromium_binary()
    for argument in CHROMIUM_ARGUMENTS:
        options.add_argument(argument)
    profile = tmp_path / "chromium-profile"
    profile.mkdir()
    options.add_argument(f"--user-data-dir={profile}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"})
    log_path = tmp_path / "chromedriver.log"
    service = Service(
        executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver",
        log_output=os.fspath(log_path),
    )
    try:
        driver = webdriver.Chrome(service=service, options=options)
    except WebDriverException as exc:
        pytest.fail(
            f"Chromium did not start ({exc.msg}); chromedriver's log: {log_path}."
            " It needs Debian's chromium and chromium-driver packages of the same version.",
            pytrace=False,
        )
    try:
        driver.set_page_load_timeout(PAGE_LOAD_TIMEOUT)
        yield driver
    finally:
        driver.quit()
