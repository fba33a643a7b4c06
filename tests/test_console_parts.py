"""The operator console's pure parts: parameters, the chart, costs, timelines, the health
cache, and how it ships (imported only on demand; templates in the wheel)."""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import zipfile
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from servio_twilio import Communication
from servio_twilio.console.chart import build_chart, last_days, status_group
from servio_twilio.console.health import AsyncHealthCache, HealthCache
from servio_twilio.console.http import link
from servio_twilio.console.params import (
    MAX_QUERY_BYTES,
    BadParameter,
    parse_before,
    parse_channel_filter,
    parse_query,
    valid_id,
)
from servio_twilio.console.render import TEMPLATES
from servio_twilio.console.views import Masking, format_time, timeline
from servio_twilio.domain.models import Channel, DayCount
from servio_twilio.sending.costs import sum_charges
from support.sync_facade import LoopThread

ROOT = Path(__file__).resolve().parent.parent


class TestIds:
    @pytest.mark.parametrize(
        "value", ["abc", "2b1ce62089a948c97f0e", "prospect_123", "lead:42", "a@b.c", "x-y+z=1"]
    )
    def test_valid(self, value: str) -> None:
        """Firestore auto ids, our ids and common prospect ids have pages."""
        assert valid_id(value)

    @pytest.mark.parametrize(
        "value",
        ["", ".", "..", "a/b", "a b", "<script>", "javascript:alert(1)", "é", "a" * 129, "a\x00"],
    )
    def test_invalid(self, value: str) -> None:
        """Anything outside the conservative shape has no page."""
        assert not valid_id(value)


class TestQuery:
    def test_reads_only_the_names_asked_for(self) -> None:
        """Unknown parameters are ignored; values are decoded and stripped."""
        found = parse_query("channel=sms&utm=x&status=+failed+", frozenset({"channel", "status"}))
        assert found == {"channel": "sms", "status": "failed"}

    def test_too_long(self) -> None:
        """A query string over the limit is refused before it is parsed."""
        with pytest.raises(BadParameter, match="longer"):
            parse_query("a" * (MAX_QUERY_BYTES + 1), frozenset())

    @pytest.mark.parametrize("query", ["channel=%ff", "channel=%C3", "é=1&" * 30])
    def test_undecodable(self, query: str) -> None:
        """Percent-escapes that are not UTF-8, or too many fields: refused."""
        with pytest.raises(BadParameter):
            parse_query(query, frozenset({"channel"}))

    def test_repeated(self) -> None:
        """A parameter given twice is refused (which one would count?)."""
        with pytest.raises(BadParameter, match="more than once"):
            parse_query("channel=sms&channel=call", frozenset({"channel"}))

    def test_channel(self) -> None:
        """Empty is any channel; the three channels parse; anything else is refused."""
        assert parse_channel_filter("") is None
        assert parse_channel_filter("call") is Channel.CALL
        with pytest.raises(BadParameter):
            parse_channel_filter("Call")

    @pytest.mark.parametrize(
        ("text", "expected"),
        [
            ("2024-05-01T10:00:00+00:00", datetime(2024, 5, 1, 10, tzinfo=UTC)),
            ("2024-05-01T10:00:00 00:00", datetime(2024, 5, 1, 10, tzinfo=UTC)),
            ("2024-05-01T12:00:00+02:00", datetime(2024, 5, 1, 10, tzinfo=UTC)),
            ("2024-05-01T10:00:00", datetime(2024, 5, 1, 10, tzinfo=UTC)),
            ("2024-05-01 10:00:00", datetime(2024, 5, 1, 10, tzinfo=UTC)),
            ("2024-05-01", datetime(2024, 5, 1, tzinfo=UTC)),
        ],
    )
    def test_before(self, text: str, expected: datetime) -> None:
        """``before`` reads ISO 8601; no offset means UTC; a "+" sent unescaped is understood."""
        assert parse_before(text) == expected

    @pytest.mark.parametrize("text", ["soon", "0001-01-01T00:00:00+14:00", "9" * 65, "2024-02-30"])
    def test_bad_before(self, text: str) -> None:
        """Unparsable or out-of-range times are refused, never an OverflowError."""
        with pytest.raises(BadParameter):
            parse_before(text)


class TestLinks:
    def test_under_the_mount_point(self) -> None:
        """Links start with the mount point, quoted, and carry their non-empty query."""
        assert link("", "/communications") == "/communications"
        assert link("/console/", "/") == "/console/"
        assert link("/cônsole", "/x") == "/c%C3%B4nsole/x"
        url = link("/c", "/communications", {"channel": "sms", "status": "", "before": "a+b"})
        assert url == "/c/communications?channel=sms&before=a%2Bb"


def counts(*rows: tuple[date, str, str, int]) -> list[DayCount]:
    return [DayCount(day=d, channel=c, status=s, count=n) for d, c, s, n in rows]


class TestChart:
    def test_status_groups(self) -> None:
        """Failures, finished records and everything else (in flight) are told apart."""
        assert [status_group(s) for s in ("failed", "no-answer", "canceled", "undelivered")] == [
            "failed"
        ] * 4
        assert {status_group(s) for s in ("delivered", "read", "completed", "received")} == {"ok"}
        assert {status_group(s) for s in ("pending", "queued", "sent", "ringing", "odd")} == {
            "in_flight"
        }

    def test_last_days(self) -> None:
        """Seven days, oldest first, ending today."""
        days = last_days(date(2024, 5, 7))
        assert days[0] == date(2024, 5, 1)
        assert days[-1] == date(2024, 5, 7)
        assert len(days) == 7

    def test_bars_stack_per_day_and_channel(self) -> None:
        """One bar per day and channel, its segments stacked bottom-up, scaled to a round top."""
        days = last_days(date(2024, 5, 7))
        chart = build_chart(
            counts(
                (days[-1], "sms", "delivered", 3),
                (days[-1], "sms", "failed", 2),
                (days[-1], "sms", "queued", 1),
                (days[0], "call", "completed", 4),
                (date(2024, 4, 1), "sms", "failed", 99),  # outside the days: left out
            ),
            days,
        )
        assert chart.total == 10
        sms = [bar for bar in chart.bars if "2024-05-07 sms" in bar.title]
        assert [bar.group for bar in sms] == ["ok", "in_flight", "failed"]
        # stacked: each segment starts where the one below ends
        for lower, upper in itertools.pairwise(sms):
            assert upper.y + upper.height == pytest.approx(lower.y, abs=0.11)
        assert sms[0].y + sms[0].height == pytest.approx(chart.baseline)
        assert [tick.text for tick in chart.ticks] == ["0", "5", "10"]  # top: 10 for 6
        assert "10 in total" in chart.description

    def test_empty(self) -> None:
        """No counts: no bars, a 0-to-1 axis, labels for every day and channel."""
        chart = build_chart([], last_days(date(2024, 5, 7)))
        assert chart.bars == ()
        assert chart.total == 0
        assert len(chart.labels) == 7 * 4


class TestCosts:
    def test_sum_per_currency(self) -> None:
        """abs(price) summed per unit (case folded); missing, unitless or unreadable skipped."""

        def record(price: Any, unit: Any) -> Communication:
            return Communication(channel="sms", to="+1", from_="+2", price=price, price_unit=unit)

        records = [
            record("-0.0075", "USD"),
            record("-0.0075", "usd"),
            record("0.5", "BRL"),
            record(None, "USD"),
            record("NaN", "USD"),
            record("Infinity", "USD"),
            record("<b>", "USD"),
            record("-1", None),
        ]
        assert sum_charges(records) == {"BRL": Decimal("0.5"), "USD": Decimal("0.0150")}
        assert sum_charges([]) == {}


class TestTimeline:
    def test_webhook_events(self) -> None:
        """A kept callback shows its time, route, status, error code and masked params."""
        events = [
            {
                "route": "message-status",
                "receivedAt": "2024-05-01T10:00:00+00:00",
                "params": {
                    "MessageStatus": "failed",
                    "ErrorCode": "30003",
                    "To": "+5511999999999",
                    "Body": "call +5511999999999",
                    "Repeated": ["a", "b"],
                },
            }
        ]
        (item,) = timeline(events, Masking(True))
        assert (item.at, item.kind, item.status, item.error_code) == (
            "2024-05-01 10:00:00 UTC",
            "message-status",
            "failed",
            "30003",
        )
        params = dict(item.params)
        assert params["To"] == "+55119*****999"
        assert params["Body"] == "call +5511999999999"
        assert params["Repeated"] == "a, b"

    def test_other_shapes(self) -> None:
        """Events of other writers (no params, odd values) and non-mappings are read safely."""
        events: list[Any] = [{"source": "reconcile", "at": "nonsense", "status": "delivered"}, 7]
        (item,) = timeline(events, Masking(False))
        assert (item.kind, item.status, item.at) == ("reconcile", "delivered", "nonsense")

    def test_format_time(self) -> None:
        """Times show in UTC; None is empty."""
        moment = datetime(2024, 5, 1, 12, tzinfo=UTC) + timedelta(seconds=1)
        assert format_time(moment) == "2024-05-01 12:00:01 UTC"
        assert format_time(None) == ""


class _Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class TestHealthCache:
    def test_kept_for_the_ttl(self) -> None:
        """The report is checked once, kept for the TTL, then checked again."""
        calls: list[int] = []
        clock = _Clock()
        report: Any = object()
        cache = HealthCache(lambda: calls.append(1) or report, ttl=60, monotonic=clock)
        assert cache.report().report is report
        clock.now = 59.9
        cache.report()
        assert len(calls) == 1
        clock.now = 60.0
        cache.report()
        assert len(calls) == 2

    def test_a_failed_check_is_not_kept(self) -> None:
        """A check that raises is not kept: the next view tries again."""
        attempts: list[int] = []

        def check() -> Any:
            attempts.append(1)
            if len(attempts) == 1:
                raise RuntimeError("twilio down")
            return "report"

        cache = HealthCache(check)
        with pytest.raises(RuntimeError):
            cache.report()
        assert cache.report().report == "report"

    def test_async_views_share_one_check(self) -> None:
        """Views arriving together while a check runs wait for it instead of starting theirs."""
        import asyncio

        calls: list[int] = []

        async def check() -> Any:
            calls.append(1)
            await asyncio.sleep(0.01)
            return "report"

        cache = AsyncHealthCache(check)

        async def views() -> list[Any]:
            return await asyncio.gather(*(cache.report() for _ in range(5)))

        loop = LoopThread()
        try:
            results = loop.run(views())
        finally:
            loop.close()
        assert len(calls) == 1
        assert {r.report for r in results} == {"report"}


class TestShipping:
    def test_importing_the_package_leaves_the_console_alone(self) -> None:
        """``import servio_twilio`` (and its names) imports neither the console nor Jinja2."""
        script = (
            "import json, sys, servio_twilio\n"
            "servio_twilio.__all__; servio_twilio.InMemoryRepository\n"
            "print(json.dumps([m for m in ('servio_twilio.console', 'jinja2') "
            "if m in sys.modules]))\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        done = subprocess.run(
            [sys.executable, "-c", script],
            check=False,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout.strip().splitlines()[-1]) == []

    def test_importing_the_console_leaves_jinja2_for_the_build(self) -> None:
        """``import servio_twilio.console`` works without building: Jinja2 loads with an app."""
        script = (
            "import json, sys, servio_twilio.console\nprint(json.dumps('jinja2' in sys.modules))\n"
        )
        env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
        done = subprocess.run(
            [sys.executable, "-c", script],
            check=False,
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
        )
        assert done.returncode == 0, done.stderr
        assert json.loads(done.stdout.strip().splitlines()[-1]) is False

    def test_the_wheel_carries_the_templates_and_stylesheet(self, tmp_path: Path) -> None:
        """A wheel built from pyproject.toml holds every template and the stylesheet."""
        from hatchling.builders.wheel import WheelBuilder

        (wheel,) = WheelBuilder(str(ROOT)).build(directory=str(tmp_path), versions=["standard"])
        names = set(zipfile.ZipFile(wheel).namelist())
        for template in TEMPLATES:
            assert f"servio_twilio/console/templates/{template}" in names
        assert "servio_twilio/console/static/console.css" in names
