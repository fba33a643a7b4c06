"""The operator console's pages, through both adapters: what each shows, with data and empty."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from servio_twilio import Communication, InMemoryConsentStore, InMemoryRepository
from servio_twilio.domain.models import utcnow
from support.console import (
    OPTED_OUT,
    PROSPECT,
    TO,
    Elements,
    filled_repository,
    next_page,
    record_ids,
)


def many(count: int, **fields: Any) -> list[Communication]:
    """``count`` SMS records to TO, a minute apart, newest first."""
    now = utcnow()
    return [
        Communication(
            channel=fields.get("channel", "sms" if index % 3 else "whatsapp"),
            to=TO,
            from_="+14155552671",
            body=f"n{index}",
            prospect_id=fields.get("prospect_id", f"p{index % 4}"),
            status=fields.get("status", "delivered" if index % 2 else "failed"),
            timestamp=now - timedelta(minutes=index + 1),
        )
        for index in range(count)
    ]


class TestOverview:
    def test_with_data(self, console: Any) -> None:
        """The overview draws the chart, the counts table, the recent failures and health."""
        page = console().get("/")
        assert page.status_code == 200
        assert page.headers["content-type"] == "text/html; charset=utf-8"
        ids = Elements(page.text).ids()
        assert {"chart", "counts", "failures", "health", "legend"} <= ids
        assert '<svg id="chart" role="img" aria-label="' in page.text
        assert "10 in total" in page.text
        # failures: failed, undelivered and no-answer, with Twilio's codes
        failures = page.text.split('id="failures"', 1)[1].split('id="health"', 1)[0]
        assert "30003" in failures
        assert "63016" in failures
        assert "no-answer" in failures
        assert "https://www.twilio.com/docs/errors/30003" in failures
        assert "ok: the repository answered this page's queries" in page.text
        assert "not checked" in page.text  # no settings, no Twilio report

    def test_chart_segments_are_coloured_by_status_group(self, console: Any) -> None:
        """Each segment is a rect of its status group, titled with its day, channel and count."""
        page = console().get("/")
        chart = page.text.split('<svg id="chart"', 1)[1].split("</svg>", 1)[0]
        assert chart.count('class="bar bar-ok"') == 4  # delivered, read, received, completed
        assert chart.count('class="bar bar-failed"') == 3
        assert chart.count('class="bar bar-in_flight"') == 3
        assert "sms, failed: 1</title>" in chart

    def test_empty(self, console: Any) -> None:
        """With no records the overview still renders: an empty chart, table and failures."""
        page = console(repository=InMemoryRepository()).get("/")
        assert page.status_code == 200
        assert "No communications in the last 7 days" in page.text
        assert "No failures." in page.text
        assert "0 in total" in page.text

    def test_older_records_are_not_counted(self, console: Any) -> None:
        """Records older than the 7 days shown are not in the chart."""
        repository = InMemoryRepository()
        repository.add_many(many(1, status="delivered"))
        old = Communication(
            channel="sms", to=TO, from_="+14155552671", timestamp=utcnow() - timedelta(days=9)
        )
        repository.add(old)
        page = console(repository=repository).get("/")
        assert "1 in total" in page.text


class TestCommunications:
    def test_lists_every_record_with_links(self, console: Any) -> None:
        """The list shows each record (newest first) linking to its page."""
        repository = filled_repository()
        page = console(repository=repository).get("/communications")
        assert page.status_code == 200
        expected = [record.id for record in repository.communications(limit=50)]
        assert record_ids(page.text) == expected
        assert next_page(page.text) is None  # one page only
        assert {"filters", "communications", "filter-channel", "filter-status"} <= Elements(
            page.text
        ).ids()

    def test_empty(self, console: Any) -> None:
        """No records: the table says so, and there is no next page."""
        page = console(repository=InMemoryRepository()).get("/communications")
        assert page.status_code == 200
        assert "No communications match." in page.text
        assert next_page(page.text) is None

    @pytest.mark.parametrize(
        ("query", "count"),
        [
            ("channel=call", 3),
            ("channel=whatsapp", 3),
            ("status=failed", 1),
            ("status=no-answer", 1),
            (f"prospect={PROSPECT}", 9),
            ("channel=sms&status=queued", 1),
            ("channel=&status=&prospect=", 10),
            ("channel=sms&prospect=nobody", 0),
        ],
    )
    def test_filters(self, console: Any, query: str, count: int) -> None:
        """Each filter narrows the list; empty values mean any."""
        page = console().get(f"/communications?{query}")
        assert page.status_code == 200
        assert len(record_ids(page.text)) == count

    def test_the_form_keeps_the_filters(self, console: Any) -> None:
        """The filter form shows the filters in use."""
        page = console().get("/communications?channel=call&status=ringing")
        assert '<option value="call" selected>' in page.text
        assert 'id="filter-status" name="status" value="ringing"' in page.text

    @pytest.mark.parametrize("query", ["", "channel=sms", "status=failed", "prospect=p1"])
    def test_paging_sees_every_record_once(self, console: Any, query: str) -> None:
        """Following next-page to the end shows every matching record exactly once."""
        repository = InMemoryRepository()
        repository.add_many(many(137))
        wanted = {
            "": {},
            "channel=sms": {"channel": "sms"},
            "status=failed": {"status": "failed"},
            "prospect=p1": {"prospect_id": "p1"},
        }[query]
        expected = [r.id for r in repository.communications(limit=1000, **wanted)]
        app = console(repository=repository)
        url: str | None = "/communications" + (f"?{query}" if query else "")
        seen: list[str] = []
        pages = 0
        while url is not None:
            page = app.get(url)
            assert page.status_code == 200, url
            seen += record_ids(page.text)
            url = next_page(page.text)
            if url is not None and query:
                assert query in url  # the filters follow the pages
            pages += 1
        assert seen == expected
        assert pages == len(expected) // 50 + 1

    def test_next_page_link_is_the_last_timestamp(self, console: Any) -> None:
        """A full page links to ``before=`` its last record's time (ISO 8601, "+" encoded)."""
        repository = InMemoryRepository()
        repository.add_many(many(60))
        page = console(repository=repository).get("/communications")
        last = repository.communications(limit=50)[-1]
        link = next_page(page.text)
        assert link is not None
        assert link.startswith("/communications?before=")
        assert last.timestamp.isoformat().replace("+", "%2B").replace(":", "%3A") in link


class TestRecord:
    def test_shows_fields_events_and_cost(self, console: Any) -> None:
        """The record page lists its fields, its callbacks as a timeline, and its cost."""
        repository = filled_repository()
        failed = repository.communications(status="failed")[0]
        page = console(repository=repository).get(f"/communications/{failed.id}")
        assert page.status_code == 200
        ids = Elements(page.text).ids()
        assert {"record", "events", "record-cost", "record-error"} <= ids
        assert "-0.00750 usd" in page.text
        events = page.text.split('id="events"', 1)[1]
        assert events.count("<li>") == 2
        assert "error 30003" in events
        assert "Unreachable destination handset" in page.text

    def test_a_call_with_its_recording(self, console: Any) -> None:
        """A call shows its duration and recording."""
        repository = filled_repository()
        call = repository.communications(status="completed")[0]
        page = console(repository=repository).get(f"/communications/{call.id}")
        assert "42 s" in page.text
        assert "RE" + "1" * 32 in page.text

    def test_no_events(self, console: Any) -> None:
        """A record without callbacks says so."""
        repository = InMemoryRepository()
        (record,) = repository.add_many(many(1))
        page = console(repository=repository).get(f"/communications/{record.id}")
        assert page.status_code == 200
        assert "No callbacks kept for this record." in page.text

    def test_unknown_id_is_404(self, console: Any) -> None:
        """An id with no record is a 404 page."""
        page = console().get("/communications/nope")
        assert page.status_code == 404
        assert "no communication with this id" in page.text


class TestProspect:
    def test_history_and_cost(self, console: Any) -> None:
        """A prospect's page lists its records and sums their cost per currency."""
        page = console().get(f"/prospects/{PROSPECT}")
        assert page.status_code == 200
        assert {"history", "cost"} <= Elements(page.text).ids()
        assert len(record_ids(page.text)) == 9
        cost = page.text.split('id="cost"', 1)[1].split("</p>", 1)[0]
        assert "0.0130 BRL" in cost
        assert "0.02000 USD" in cost  # 0.0075 + 0.0075 + 0.005, unit case folded

    def test_the_total_cost_is_read_on_the_first_page_only(self, console: Any) -> None:
        """An older page of a prospect (``before=``) shows no total: it would read the whole
        history again on every page."""
        page = console().get(f"/prospects/{PROSPECT}?before=2030-01-01T00:00:00Z")
        assert page.status_code == 200
        assert "cost" not in Elements(page.text).ids()

    def test_unknown_prospect_is_empty(self, console: Any) -> None:
        """A prospect with no records shows an empty history and no cost."""
        page = console().get("/prospects/nobody")
        assert page.status_code == 200
        assert "No communications with this prospect." in page.text
        assert "none reported" in page.text

    def test_paging(self, console: Any) -> None:
        """The history pages with next-page until every record was seen once."""
        repository = InMemoryRepository()
        repository.add_many(many(120, prospect_id="p9"))
        app = console(repository=repository)
        url: str | None = "/prospects/p9"
        seen: list[str] = []
        while url is not None:
            page = app.get(url)
            assert page.status_code == 200
            seen += record_ids(page.text)
            url = next_page(page.text)
        assert len(seen) == len(set(seen)) == 120


class TestConsents:
    def test_lists_opted_out_numbers(self, console: Any) -> None:
        """With a consent store, /consents lists the opted-out numbers, not opted-in ones."""
        store = InMemoryConsentStore()
        store.opt_out(OPTED_OUT, "sms", source="inbound:STOP")
        store.opt_out(TO, "whatsapp", source="admin")
        store.opt_in(TO, "whatsapp", source="inbound:START")
        app = console(consent_store=store)
        page = app.get("/consents")
        assert page.status_code == 200
        table = page.text.split('id="consents"', 1)[1]
        assert table.count("<tr><td") == 1
        assert "inbound:STOP" in table
        assert 'id="nav-consents"' in app.get("/").text

    def test_channel_filter_and_empty(self, console: Any) -> None:
        """The channel filter narrows the list; an empty list says so."""
        store = InMemoryConsentStore()
        store.opt_out(OPTED_OUT, "sms", source="inbound:STOP")
        page = console(consent_store=store).get("/consents?channel=call")
        assert "No number has opted out." in page.text

    def test_paging(self, console: Any) -> None:
        """More than a page of opted-out numbers pages with next-page, each seen once."""
        store = InMemoryConsentStore()
        numbers = [f"+55119{index:08d}" for index in range(70)]
        for number in numbers:
            store.opt_out(number, "sms", source="admin")
        app = console(consent_store=store, mask_numbers=False)
        url: str | None = "/consents"
        seen: list[str] = []
        while url is not None:
            page = app.get(url)
            assert page.status_code == 200
            seen += [n for n in numbers if f'<td class="number">{n}</td>' in page.text]
            url = next_page(page.text)
        assert sorted(seen) == numbers

    def test_without_a_store_is_404(self, console: Any) -> None:
        """Without a consent store there is no Consents page nor link to it."""
        app = console()
        assert app.get("/consents").status_code == 404
        assert "nav-consents" not in app.get("/").text


class TestNavigation:
    @pytest.mark.parametrize(
        "path", ["/", "/communications", f"/prospects/{PROSPECT}", "/consents", "/nope"]
    )
    def test_every_page_has_nav_and_main(self, console: Any, path: str) -> None:
        """Every page, errors included, has the nav (with the current page marked) and a main."""
        page = console(consent_store=InMemoryConsentStore()).get(path)
        tags = [tag for tag, _ in Elements(page.text).tags]
        assert tags.count("nav") == 1
        assert tags.count("main") == 1
        assert {"nav-overview", "nav-communications", "nav-consents"} <= Elements(page.text).ids()

    def test_stylesheet(self, console: Any) -> None:
        """The stylesheet is served as CSS from the app itself, and every page links it."""
        app = console()
        css = app.get("/static/console.css")
        assert css.status_code == 200
        assert css.headers["content-type"] == "text/css; charset=utf-8"
        assert b"#chart" in css.content
        assert '<link rel="stylesheet" href="/static/console.css">' in app.get("/").text


class TestMasking:
    @pytest.mark.parametrize("path", ["/", "/communications", f"/prospects/{PROSPECT}"])
    def test_numbers_masked_by_default(self, console: Any, path: str) -> None:
        """No full number appears, in tables, error texts or kept callbacks."""
        page = console().get(path)
        assert TO not in page.text
        assert "+55119*****999" in page.text

    def test_record_page_and_events_masked(self, console: Any) -> None:
        """The record page masks its numbers and those in its callbacks' parameters."""
        repository = filled_repository()
        record = repository.communications(status="failed")[0]
        page = console(repository=repository).get(f"/communications/{record.id}")
        assert TO not in page.text
        assert "+55119*****999" in page.text

    def test_consents_masked(self, console: Any) -> None:
        """Opted-out numbers are masked too."""
        store = InMemoryConsentStore()
        store.opt_out(OPTED_OUT, "sms", source="inbound:STOP")
        page = console(consent_store=store).get("/consents")
        assert OPTED_OUT not in page.text
        assert "+55119*****777" in page.text

    @pytest.mark.parametrize("path", ["/", "/communications", f"/prospects/{PROSPECT}"])
    def test_mask_numbers_false_shows_them(self, console: Any, path: str) -> None:
        """``mask_numbers=False`` shows numbers in full."""
        page = console(mask_numbers=False).get(path)
        assert TO in page.text
        assert "*****" not in page.text

    def test_bodies_are_shown_as_received(self, console: Any) -> None:
        """A body holding a number is a message: it is not masked (only escaped)."""
        repository = InMemoryRepository()
        (record,) = repository.add_many(
            [Communication(channel="sms", to=TO, from_="+14155552671", body=f"call me {TO}")]
        )
        page = console(repository=repository).get(f"/communications/{record.id}")
        assert f"call me {TO}" in page.text
