"""The operator console in a real headless Chromium, under uvicorn and under a WSGI server.

Each test serves the console (`make_asgi_app` under uvicorn, `make_wsgi_app`
under werkzeug's threaded server) over one `InMemoryRepository` holding
records of every kind (SMS, WhatsApp and calls; outbound and inbound;
delivered, in flight and failed; with prices, media, recordings and kept
callbacks) and an `InMemoryConsentStore` with opted-out numbers, then drives
Debian's ``chromium`` through ``chromedriver`` (`support.browser`): it signs
in with HTTP basic credentials, opens every page, submits the filter forms,
follows ``#next-page`` to the end, and saves a screenshot of each page under
the test's temporary folder (the paths are printed). Inbound bodies, prospect
ids, error texts and a consent's source hold markup, ``javascript:`` and a
5,000-character word: they must show as text, run nothing and keep the pages
readable.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import attrs
import pytest
from selenium.common.exceptions import NoAlertPresentException, WebDriverException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.select import Select
from selenium.webdriver.support.wait import WebDriverWait

from servio_twilio.domain.models import Channel, Communication, Direction, utcnow
from servio_twilio.storage.consent import InMemoryConsentStore
from servio_twilio.storage.memory import InMemoryRepository
from support.browser import (
    browser_errors,
    forget_basic_auth,
    responses,
    screenshot,
    send_basic_auth,
)

USER = "operator"
PASSWORD = "correct horse battery staple"
SERVERS = ["uvicorn", "werkzeug"]

SCRIPT = "<script>alert(1)</script>"
BREAKOUT = '"><img src=x onerror=alert(1)>'
JAVASCRIPT = "javascript:alert(1)"
LONG = "W" * 5000
HOSTILE = (SCRIPT, BREAKOUT, JAVASCRIPT, LONG)

BUSY_PROSPECT = "prospect-busy"
BUSY_RECORDS = 60
BUSY_PRICE = "-0.00750"
PAGE_SIZE = 50
OPTED_OUT = 55
WHATSAPP_OPTED_OUT = 11
WITH_EVENTS = "rec-with-events"
LONG_BODY = "rec-long-body"


def _number(i: int) -> str:
    return f"+55119{i:08d}"


@attrs.frozen(kw_only=True)
class World:
    """What the console reads: the records, their events and the consents."""

    repository: InMemoryRepository
    consents: InMemoryConsentStore
    records: tuple[Communication, ...]


def build_world() -> World:
    """123 records of every kind over the last 6 days, the hostile ones newest, and consents."""
    now = utcnow().replace(microsecond=0)
    records: list[Communication] = []
    clock = iter(now - timedelta(minutes=5 * i) for i in range(1, 1000))

    def add(**fields: Any) -> None:
        fields.setdefault("to", _number(len(records)))
        fields.setdefault("from_", "+15005550006")
        fields.setdefault("id", f"rec-{len(records):03d}")
        fields.setdefault("timestamp", next(clock))
        records.append(Communication(**fields))

    inbound = {"direction": Direction.INBOUND, "status": "received", "from_": _number(900)}
    # Hostile data first: the newest records, on the first page and in the failures.
    add(channel=Channel.SMS, body=SCRIPT, prospect_id=SCRIPT, **inbound)
    add(channel=Channel.WHATSAPP, body=BREAKOUT, prospect_id=BREAKOUT, **inbound)
    add(channel=Channel.SMS, body=JAVASCRIPT, prospect_id=JAVASCRIPT, **inbound)
    add(id=LONG_BODY, channel=Channel.SMS, body=LONG, prospect_id=LONG, **inbound)
    add(channel=Channel.SMS, body="hi", status="failed", error_code=30003, error=SCRIPT)
    add(channel=Channel.WHATSAPP, status="undelivered", error_code=63016, error=BREAKOUT + LONG)
    # Every kind of record.
    add(
        id=WITH_EVENTS,
        channel=Channel.SMS,
        body="Your visit is confirmed for Tuesday.",
        prospect_id="prospect-7",
        twilio_sid="SM" + "a" * 32,
        status="delivered",
        price="-0.00790",
        price_unit="USD",
        num_segments=1,
    )
    add(channel=Channel.SMS, body="queued one", prospect_id="prospect-7", status="queued")
    add(channel=Channel.SMS, body="failed one", status="failed", error_code=21610, error="STOP")
    add(channel=Channel.WHATSAPP, body="photo", status="read", media_urls=("https://x.test/1.jpg",))
    add(channel=Channel.WHATSAPP, body="inbound on whatsapp", prospect_id="prospect-8", **inbound)
    add(channel=Channel.CALL, status="completed", duration=73, recording_sid="RE" + "b" * 32)
    add(channel=Channel.CALL, status="no-answer", prospect_id="prospect-8")
    add(channel=Channel.CALL, status="busy")
    add(channel=Channel.CALL, status="in-progress")
    for i in range(BUSY_RECORDS):
        add(
            channel=Channel.SMS,
            body=f"reminder {i}",
            prospect_id=BUSY_PROSPECT,
            status="delivered",
            price=BUSY_PRICE,
            price_unit="USD",
        )
    channels = (Channel.SMS, Channel.WHATSAPP, Channel.CALL)
    for i in range(123 - len(records)):
        add(channel=channels[i % 3], body=f"filler {i}", prospect_id=f"prospect-{i % 5}")
    repository = InMemoryRepository()
    repository.add_many(records)
    for status in ("queued", "sent", "delivered"):
        repository.append_event(
            WITH_EVENTS,
            {
                "route": "status",
                "receivedAt": now.isoformat(),
                "params": {"MessageStatus": status, "To": _number(6), "Body": SCRIPT},
            },
        )
    repository.append_event(LONG_BODY, {"route": "inbound", "params": {"Body": LONG}})

    ticks = iter(now - timedelta(hours=1) + timedelta(seconds=i) for i in range(1000))
    consents = InMemoryConsentStore(clock=lambda: next(ticks))
    for i in range(OPTED_OUT):
        channel = Channel.WHATSAPP if i < WHATSAPP_OPTED_OUT else Channel.SMS
        source = BREAKOUT if i == OPTED_OUT - 1 else "inbound:STOP"
        consents.opt_out(_number(500 + i), channel, source=source)
    consents.opt_out(_number(600), Channel.CALL, source="admin")
    consents.opt_in(_number(600), Channel.CALL, source="admin")
    return World(repository=repository, consents=consents, records=tuple(records))


@pytest.fixture
def world() -> World:
    return build_world()


@pytest.fixture(params=SERVERS)
def console(
    request: pytest.FixtureRequest,
    world: World,
    asgi_server: Callable[..., str],
    wsgi_server: Callable[..., str],
) -> str:
    """The console over ``world``, served by uvicorn (ASGI) or werkzeug (WSGI): its base URL."""
    from servio_twilio.console import basic_auth, make_asgi_app, make_wsgi_app

    options: dict[str, Any] = {
        "repository": world.repository,
        "authorize": basic_auth(USER, PASSWORD),
        "consent_store": world.consents,
    }
    if request.param == "uvicorn":
        return asgi_server(make_asgi_app(**options))
    return wsgi_server(make_wsgi_app(**options), server="werkzeug")


@pytest.fixture
def driver(browser: Any, console: str) -> Any:
    """The browser, signed in to the console (every request carries the credentials)."""
    send_basic_auth(browser, USER, PASSWORD)
    return browser


@pytest.fixture
def shots(
    tmp_path: Path, request: pytest.FixtureRequest, capsys: pytest.CaptureFixture[str]
) -> Iterator[Callable[[Any, str], Path]]:
    """Saves a screenshot of the whole page as ``tmp_path/<name>.png``; prints the paths."""
    saved: list[Path] = []

    def shoot(driver: Any, name: str) -> Path:
        path = screenshot(driver, tmp_path / f"{name}.png")
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert path.stat().st_size > 1000
        saved.append(path)
        return path

    yield shoot
    with capsys.disabled():
        for path in saved:
            print(f"\n[screenshot] {request.node.name}: {path}")


def follow(driver: Any, element: Any) -> None:
    """Click ``element`` (a link or a submit button); wait until the next page replaced this."""
    page = driver.find_element(By.TAG_NAME, "html")
    element.click()
    WebDriverWait(driver, 20).until(lambda _: _replaced(page))
    WebDriverWait(driver, 20).until(
        lambda d: d.execute_script("return document.readyState") == "complete"
    )


def _replaced(page: Any) -> bool:
    """Whether ``page`` (the old ``html`` element) has left the document.

    Mid-navigation Chromium may answer "Node with given id does not belong to
    the document" (a WebDriverException) instead of a stale element: both
    mean the old page is gone.
    """
    try:
        page.is_enabled()
    except WebDriverException:  # StaleElementReferenceException included
        return True
    return False


def rows(driver: Any, table: str) -> list[Any]:
    """The data rows of the table ``#table`` (not the row saying it is empty)."""
    return list(driver.find_elements(By.CSS_SELECTOR, f"#{table} tbody tr:not(.empty)"))


def page_through(driver: Any, table: str, cell: Callable[[Any], str]) -> list[str]:
    """``cell(row)`` for each data row of ``#table`` on this page and each ``#next-page``."""
    seen: list[str] = []
    for _ in range(50):
        seen.extend(cell(row) for row in rows(driver, table))
        following = driver.find_elements(By.ID, "next-page")
        if not following:
            return seen
        follow(driver, following[0])
    raise AssertionError("#next-page never went away")


def record_id(row: Any) -> str:
    """The id of the record a row of a records table links to."""
    href = row.find_element(By.CSS_SELECTOR, "a.record-link").get_attribute("href")
    return str(href).rsplit("/", 1)[-1]


def status_of(driver: Any, url: str) -> int:
    """The HTTP status of the browser's last response for ``url``."""
    matching = [status for seen, status in responses(driver) if seen == url]
    assert matching, f"the browser received no response for {url}"
    return matching[-1]


def assert_styled(driver: Any) -> None:
    """The stylesheet applied: styles only /static/console.css sets are computed."""
    header = driver.find_element(By.CSS_SELECTOR, "header.top")
    assert header.value_of_css_property("display") == "flex"
    assert driver.find_element(By.TAG_NAME, "body").value_of_css_property("margin") == "0px"
    nav_list = driver.find_element(By.CSS_SELECTOR, "nav ul")
    assert nav_list.value_of_css_property("list-style-type") == "none"


def assert_frame(driver: Any, current: str) -> None:
    """The page has the console's nav (three links, ``current`` marked) and one ``main``."""
    links = driver.find_elements(By.CSS_SELECTOR, "nav a")
    assert [link.text for link in links] == ["Overview", "Communications", "Consents"]
    marked = driver.find_elements(By.CSS_SELECTOR, "nav a[aria-current='page']")
    assert [link.text for link in marked] == [current]
    assert len(driver.find_elements(By.TAG_NAME, "main")) == 1


def assert_inert(driver: Any) -> None:
    """Nothing hostile ran or was built, and the page stays within the window."""
    with pytest.raises(NoAlertPresentException):
        driver.switch_to.alert  # noqa: B018 - raises when no dialog is open
    assert driver.find_elements(By.CSS_SELECTOR, "img[src='x']") == []
    assert driver.find_elements(By.CSS_SELECTOR, "[onerror]") == []
    assert driver.find_elements(By.TAG_NAME, "script") == []
    assert driver.find_elements(By.CSS_SELECTOR, "a[href^='javascript'], a[href*='alert']") == []
    viewport = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssLayoutViewport"]
    width = viewport["clientWidth"]
    for table in driver.find_elements(By.TAG_NAME, "table"):
        assert table.rect["x"] + table.rect["width"] <= width * 1.02, "a table overflows"
    content = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})["cssContentSize"]
    assert content["width"] <= width * 1.02, f"the page is {content['width']} wide in {width}"


# The texts of table cells other than a body, a prospect id or an error that the browser
# broke over two lines or more ("whatsap/p"): short columns squeezed by long data.
BROKEN_WORDS = """
const broken = [];
for (const td of document.querySelectorAll('table td:not(.body):not(.prospect):not(.error)')) {
  const walker = document.createTreeWalker(td, NodeFilter.SHOW_TEXT);
  for (let node = walker.nextNode(); node; node = walker.nextNode()) {
    if (!node.textContent.trim()) continue;
    const range = document.createRange();
    range.selectNodeContents(node);
    const tops = new Set([...range.getClientRects()].map(rect => Math.round(rect.top)));
    if (tops.size > 1) broken.push(node.textContent.trim());
  }
}
return broken;
"""
MIN_BODY_WIDTH = 100
"""The narrowest a table's Body column may be, in CSS pixels (about 12 characters)."""


def assert_readable(driver: Any) -> None:
    """Long data leaves the short columns whole and the Body column wide enough to read."""
    assert driver.execute_script(BROKEN_WORDS) == [], "words broken in short columns"
    for cell in driver.find_elements(By.CSS_SELECTOR, "table.records td.body"):
        assert cell.rect["width"] >= MIN_BODY_WIDTH, f"a Body column {cell.rect['width']}px wide"


def assert_no_policy_errors(driver: Any, *expected: str) -> None:
    """The browser logged no Content-Security-Policy violation, and no error but a missing
    favicon and those naming one of ``expected`` (404 pages asked for), since the last call."""
    for entry in browser_errors(driver):
        message = str(entry.get("message"))
        assert "Content Security Policy" not in message, message
        allowed = ("/favicon.ico ", *expected)
        assert any(text in message for text in allowed), f"unexpected browser error: {message}"


class TestSignIn:
    def test_without_credentials_the_page_is_a_401(self, browser: Any, console: str) -> None:
        """No credentials: the browser gets a 401 with no console page; with them, a 200."""
        browser.get(console + "/")
        assert status_of(browser, console + "/") == 401
        assert browser.find_elements(By.ID, "chart") == []
        assert "Overview" not in browser.page_source
        send_basic_auth(browser, USER, "wrong password")
        browser.get(console + "/communications")
        assert status_of(browser, console + "/communications") == 401
        assert browser.find_elements(By.ID, "communications") == []
        send_basic_auth(browser, USER, PASSWORD)
        browser.get(console + "/")
        assert status_of(browser, console + "/") == 200
        assert browser.find_element(By.ID, "chart").is_displayed()
        forget_basic_auth(browser)
        browser.get(console + "/consents")
        assert status_of(browser, console + "/consents") == 401


class TestPages:
    def test_every_page_renders_styled_with_its_parts(
        self, driver: Any, console: str, world: World, shots: Callable[[Any, str], Path]
    ) -> None:
        """Overview, communications, a record, a prospect and consents: each a 200 page with
        the nav, its parts and the stylesheet applied; a screenshot of each."""
        driver.get(console + "/")
        received = responses(driver)
        assert (console + "/", 200) in received
        assert (console + "/static/console.css", 200) in received
        assert_frame(driver, "Overview")
        assert_styled(driver)
        chart = driver.find_element(By.CSS_SELECTOR, "svg#chart")
        assert chart.is_displayed()
        assert len(chart.find_elements(By.CSS_SELECTOR, "rect.bar")) > 0
        counted = sum(
            int(cell.text) for cell in driver.find_elements(By.CSS_SELECTOR, "#counts td.count")
        )
        assert counted == len(world.records)
        assert len(rows(driver, "failures-table")) > 0
        assert driver.find_element(By.ID, "health").is_displayed()
        shots(driver, "overview")

        follow(driver, driver.find_element(By.ID, "nav-communications"))
        assert_frame(driver, "Communications")
        assert_styled(driver)
        assert len(rows(driver, "communications")) == PAGE_SIZE
        assert driver.find_element(By.ID, "filters").is_displayed()
        assert driver.find_element(By.ID, "next-page").is_displayed()
        shots(driver, "communications")

        link = driver.find_element(By.CSS_SELECTOR, f"a.record-link[href$='/{WITH_EVENTS}']")
        follow(driver, link)
        assert urlsplit(driver.current_url).path == f"/communications/{WITH_EVENTS}"
        assert_styled(driver)
        record = driver.find_element(By.ID, "record")
        assert "Your visit is confirmed for Tuesday." in record.text
        assert "-0.00790 USD" in driver.find_element(By.ID, "record-cost").text
        events = driver.find_elements(By.CSS_SELECTOR, "#events > li")
        assert len(events) == 3
        assert [e.find_element(By.CSS_SELECTOR, ".status").text for e in events] == [
            "queued",
            "sent",
            "delivered",
        ]
        shots(driver, "record")

        follow(driver, driver.find_element(By.CSS_SELECTOR, "#record-prospect a.prospect-link"))
        assert urlsplit(driver.current_url).path == "/prospects/prospect-7"
        assert_styled(driver)
        assert len(rows(driver, "history")) == 2
        assert "0.00790 USD" in driver.find_element(By.ID, "cost").text
        shots(driver, "prospect")

        follow(driver, driver.find_element(By.ID, "nav-consents"))
        assert_frame(driver, "Consents")
        assert_styled(driver)
        assert len(rows(driver, "consents")) == PAGE_SIZE
        shots(driver, "consents")
        assert_no_policy_errors(driver)


class TestPaging:
    def test_communications_pages_show_every_record_once(
        self, driver: Any, console: str, world: World
    ) -> None:
        """Following #next-page from the first page lists each of the 123 records exactly once,
        newest first."""
        driver.get(console + "/communications")
        seen = page_through(driver, "communications", record_id)
        assert len(seen) == len(world.records)
        newest_first = sorted(world.records, key=lambda r: r.timestamp, reverse=True)
        assert seen == [record.id for record in newest_first]

    def test_the_channel_filter_form_narrows_the_list(
        self, driver: Any, console: str, world: World, shots: Callable[[Any, str], Path]
    ) -> None:
        """Choosing a channel and submitting the form lists that channel's records, all of
        them across pages, and the form keeps the choice."""
        expected = Counter(record.channel for record in world.records)
        for channel in (Channel.SMS, Channel.CALL):
            driver.get(console + "/communications")
            Select(
                driver.find_element(By.CSS_SELECTOR, "#filters select[name=channel]")
            ).select_by_value(channel.value)
            follow(driver, driver.find_element(By.CSS_SELECTOR, "#filters button[type=submit]"))
            assert parse_qs(urlsplit(driver.current_url).query)["channel"] == [channel.value]
            selected = Select(driver.find_element(By.CSS_SELECTOR, "#filters select[name=channel]"))
            assert selected.first_selected_option.get_attribute("value") == channel.value
            if channel is Channel.SMS:
                shots(driver, "communications-sms")

            def channel_of(row: Any) -> str:
                return str(row.find_elements(By.TAG_NAME, "td")[1].text)

            seen = page_through(driver, "communications", channel_of)
            assert seen == [channel.value] * expected[channel]

    def test_the_status_and_prospect_filters(self, driver: Any, console: str) -> None:
        """Typing a status or a prospect id into the form lists only the matching records."""
        driver.get(console + "/communications")
        field = driver.find_element(By.CSS_SELECTOR, "#filters input[name=status]")
        field.send_keys("failed")
        follow(driver, driver.find_element(By.CSS_SELECTOR, "#filters button[type=submit]"))
        statuses = {
            row.find_element(By.CSS_SELECTOR, ".status").text
            for row in rows(driver, "communications")
        }
        assert statuses == {"failed"}
        assert len(rows(driver, "communications")) == 2
        driver.get(console + "/communications")
        field = driver.find_element(By.CSS_SELECTOR, "#filters input[name=prospect]")
        field.send_keys(BUSY_PROSPECT)
        follow(driver, driver.find_element(By.CSS_SELECTOR, "#filters button[type=submit]"))
        assert parse_qs(urlsplit(driver.current_url).query)["prospect"] == [BUSY_PROSPECT]
        seen = page_through(driver, "communications", record_id)
        assert len(seen) == len(set(seen)) == BUSY_RECORDS

    def test_a_prospect_pages_through_its_history_with_the_cost(
        self, driver: Any, console: str, shots: Callable[[Any, str], Path]
    ) -> None:
        """A prospect's page shows 50 records and the cost of all 60; #next-page the other 10
        (an older page repeats no cost: reading the whole history is the first page's)."""
        driver.get(console + f"/prospects/{BUSY_PROSPECT}")
        total = f"{abs(Decimal(BUSY_PRICE)) * BUSY_RECORDS} USD"
        assert total in driver.find_element(By.ID, "cost").text
        assert len(rows(driver, "history")) == PAGE_SIZE
        shots(driver, "prospect-busy")
        seen = page_through(driver, "history", record_id)
        assert len(seen) == len(set(seen)) == BUSY_RECORDS
        assert driver.find_elements(By.ID, "cost") == []

    def test_consents_page_and_filter(
        self, driver: Any, console: str, shots: Callable[[Any, str], Path]
    ) -> None:
        """The consents page lists every opted-out number once across pages (not the one that
        opted back in), and its channel filter narrows it."""
        driver.get(console + "/consents")

        def channel_and_time(row: Any) -> str:
            cells = row.find_elements(By.TAG_NAME, "td")
            moment = cells[2].find_element(By.TAG_NAME, "time").get_attribute("datetime")
            return f"{cells[1].text}:{moment}"

        seen = page_through(driver, "consents", channel_and_time)
        assert len(seen) == len(set(seen)) == OPTED_OUT
        assert not any(entry.startswith("call:") for entry in seen)
        driver.get(console + "/consents")
        Select(driver.find_element(By.CSS_SELECTOR, "select[name=channel]")).select_by_value(
            "whatsapp"
        )
        follow(driver, driver.find_element(By.CSS_SELECTOR, "#consent-filters button[type=submit]"))
        channels = [
            row.find_elements(By.TAG_NAME, "td")[1].text for row in rows(driver, "consents")
        ]
        assert channels == ["whatsapp"] * WHATSAPP_OPTED_OUT
        shots(driver, "consents-whatsapp")


class TestHostileData:
    def test_long_data_leaves_every_column_readable(
        self, driver: Any, console: str, shots: Callable[[Any, str], Path]
    ) -> None:
        """Beside 5,000-character ids, bodies and errors, no word of a short column (channel,
        status, time, number) is broken over lines and the Body column stays readable."""
        for path, name in (("/", "readable-overview"), ("/communications", "readable-list")):
            driver.get(console + path)
            shots(driver, name)
            assert_readable(driver)

    def test_markup_in_data_shows_as_text_and_runs_nothing(
        self, driver: Any, console: str, shots: Callable[[Any, str], Path]
    ) -> None:
        """Bodies, prospect ids, error texts and a consent source holding <script>, a tag
        breakout, javascript: and 5,000 characters: shown as text on every page, no dialog, no
        injected element, no script, and no page wider than the window."""
        driver.get(console + "/")
        assert_inert(driver)
        failures = driver.find_element(By.ID, "failures").text
        assert SCRIPT in failures
        shots(driver, "hostile-overview")

        driver.get(console + "/communications")
        assert_inert(driver)
        table = driver.find_element(By.ID, "communications").text
        for text in (SCRIPT, BREAKOUT, JAVASCRIPT):
            assert text in table
        unlinked = [span.text for span in driver.find_elements(By.CSS_SELECTOR, "span.unlinked")]
        assert set(unlinked) >= {SCRIPT, BREAKOUT, JAVASCRIPT}
        long_id = [text for text in unlinked if text.startswith("WWW")]
        assert len(long_id) == 1
        shown = long_id[0].replace("\n", "")
        assert shown == LONG[:119] + "…"  # cut in tables, as bodies are
        shots(driver, "hostile-communications")

        driver.get(console + f"/communications/{LONG_BODY}")
        assert_inert(driver)
        body = driver.find_element(By.ID, "record-body")
        assert body.text.replace("\n", "") == LONG
        assert body.rect["height"] > 100, "the 5,000 characters do not wrap"
        params = driver.find_element(By.CSS_SELECTOR, "#events details")
        params.find_element(By.TAG_NAME, "summary").click()
        assert LONG in params.text.replace("\n", "")
        shots(driver, "hostile-record")

        driver.get(console + f"/communications/{WITH_EVENTS}")
        for summary in driver.find_elements(By.CSS_SELECTOR, "#events summary"):
            summary.click()
        assert SCRIPT in driver.find_element(By.ID, "events").text
        assert_inert(driver)

        driver.get(console + "/consents")
        assert_inert(driver)
        assert BREAKOUT in driver.find_element(By.ID, "consents").text

        assert_no_policy_errors(driver)
        missing = (
            "/prospects/%3Cscript%3Ealert(1)%3C%2Fscript%3E",
            "/prospects/javascript:alert(1)",
        )
        for path in missing:
            driver.get(console + path)
            assert status_of(driver, console + path) == 404
            assert_inert(driver)
        assert_no_policy_errors(driver, *(f"{console}{path} " for path in missing))
