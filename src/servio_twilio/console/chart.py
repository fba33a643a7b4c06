"""The overview's chart: records per day, channel and status group, as SVG geometry.

`build_chart` turns `DayCount` rows into bars and labels (numbers only); the
overview template draws them as an inline ``<svg>``, no script, no asset.
Each day has one bar per channel (sms, whatsapp, call), stacked by status
group: delivered or otherwise done (`status_group` ``ok``), in flight, and
failed (`servio_twilio.domain.status.FAILURE_STATUSES`). Pure.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import date, timedelta
from typing import Final

import attrs

from servio_twilio.domain.models import Channel, DayCount
from servio_twilio.domain.status import FAILURE_STATUSES

__all__ = [
    "GROUPS",
    "GROUP_COLOURS",
    "GROUP_LABELS",
    "Bar",
    "Chart",
    "Label",
    "build_chart",
    "last_days",
    "status_group",
]

GROUPS: Final = ("ok", "in_flight", "failed")
"""The status groups, bottom of a bar first."""
GROUP_LABELS: Final = {"ok": "delivered / done", "in_flight": "in flight", "failed": "failed"}
GROUP_COLOURS: Final = {"ok": "#2e7d32", "in_flight": "#1565c0", "failed": "#c62828"}
_DONE: Final = frozenset({"delivered", "read", "completed", "received", "partially_delivered"})
_CHANNELS: Final = (Channel.SMS, Channel.WHATSAPP, Channel.CALL)
_WEEKDAYS: Final = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")

WIDTH: Final = 720
HEIGHT: Final = 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 44, 8, 12, 44
_BAR, _GAP = 20, 6


def status_group(status: str) -> str:
    """``failed`` for a failure status, ``ok`` for a delivered or done one, else ``in_flight``."""
    if status in FAILURE_STATUSES:
        return "failed"
    return "ok" if status in _DONE else "in_flight"


def last_days(today: date, days: int = 7) -> list[date]:
    """The ``days`` UTC days ending with ``today``, oldest first."""
    return [today - timedelta(days=back) for back in range(days - 1, -1, -1)]


@attrs.frozen(kw_only=True)
class Bar:
    """One stacked segment: a channel's records of one status group on one day."""

    x: float
    y: float
    width: float
    height: float
    group: str
    colour: str
    title: str


@attrs.frozen(kw_only=True)
class Label:
    """A text label at (x, y)."""

    x: float
    y: float
    text: str
    anchor: str = "middle"


@attrs.frozen(kw_only=True)
class Chart:
    """What the overview template draws: segments, axis labels, ticks and a description."""

    width: int
    height: int
    bars: tuple[Bar, ...]
    labels: tuple[Label, ...]
    ticks: tuple[Label, ...]
    gridlines: tuple[float, ...]
    baseline: float
    left: float
    right: float
    total: int
    description: str


def _nice_ceiling(value: int) -> int:
    """The smallest 1, 2 or 5 times a power of ten that is at least ``value`` (1 for 0)."""
    if value <= 1:
        return 1
    power = int(10 ** math.floor(math.log10(value)))
    for step in (1, 2, 5, 10):
        if step * power >= value:
            return step * power
    return 10 * power  # pragma: no cover - the loop always returns


def build_chart(counts: Sequence[DayCount], days: Sequence[date]) -> Chart:
    """The chart of ``counts`` over ``days`` (oldest first); counts on other days are left out."""
    stacks: dict[tuple[date, Channel], dict[str, int]] = {}
    for row in counts:
        stack = stacks.setdefault((row.day, row.channel), dict.fromkeys(GROUPS, 0))
        stack[status_group(row.status)] += row.count
    shown = set(days)
    total = sum(sum(stack.values()) for (day, _), stack in stacks.items() if day in shown)
    tallest = max(
        (sum(stack.values()) for (day, _), stack in stacks.items() if day in shown), default=0
    )
    top = _nice_ceiling(tallest)
    baseline = HEIGHT - _BOTTOM
    plot_height = baseline - _TOP
    group_width = (WIDTH - _LEFT - _RIGHT) / max(len(days), 1)
    offset = (group_width - (3 * _BAR + 2 * _GAP)) / 2
    bars: list[Bar] = []
    labels: list[Label] = []
    for index, day in enumerate(days):
        group_x = _LEFT + index * group_width
        name = f"{_WEEKDAYS[day.weekday()]} {day:%m-%d}"
        labels.append(Label(x=round(group_x + group_width / 2, 1), y=baseline + 32, text=name))
        for position, channel in enumerate(_CHANNELS):
            x = round(group_x + offset + position * (_BAR + _GAP), 1)
            labels.append(
                Label(x=round(x + _BAR / 2, 1), y=baseline + 15, text=channel.value[0].upper())
            )
            found = stacks.get((day, channel))
            if found is None:
                continue
            y = float(baseline)
            for group in GROUPS:
                count = found[group]
                if not count:
                    continue
                height = count / top * plot_height
                y -= height
                title = f"{day.isoformat()} {channel.value}, {GROUP_LABELS[group]}: {count}"
                bars.append(
                    Bar(
                        x=x,
                        y=round(y, 1),
                        width=_BAR,
                        height=round(height, 1),
                        group=group,
                        colour=GROUP_COLOURS[group],
                        title=title,
                    )
                )
    ticks: list[Label] = []
    gridlines: list[float] = []
    for fraction in (0.0, 0.25, 0.5, 0.75, 1.0):
        value = top * fraction
        if value != int(value):
            continue
        y = round(baseline - fraction * plot_height, 1)
        ticks.append(Label(x=_LEFT - 6, y=y + 4, text=str(int(value)), anchor="end"))
        gridlines.append(y)
    first, last = (days[0], days[-1]) if days else (None, None)
    description = (
        f"Communications per day from {first} to {last}, one bar per channel (S: SMS, "
        f"W: WhatsApp, C: calls), stacked by status: {total} in total. "
        "The numbers are in the table below."
    )
    return Chart(
        width=WIDTH,
        height=HEIGHT,
        bars=tuple(bars),
        labels=tuple(labels),
        ticks=tuple(ticks),
        gridlines=tuple(gridlines),
        baseline=baseline,
        left=_LEFT,
        right=WIDTH - _RIGHT,
        total=total,
        description=description,
    )
