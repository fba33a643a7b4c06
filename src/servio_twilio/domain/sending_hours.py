"""Sending hours: whether it is a decent hour where the recipient is, and when it will be.

A window ``(start, end)`` of local wall-clock times is allowed from ``start``
(included) to ``end`` (excluded). A window whose ``start`` is after its ``end``
wraps midnight: ``(time(21), time(8))`` allows 21:00 to 08:00 the next morning.
``start == end`` is refused (it could mean always or never).

The recipient's time zones come from ``phonenumbers``' time-zone data for the
number (``phonenumbers.timezone.time_zones_for_number``; ``Etc/Unknown``
means none); a number with several zones (a US toll-free number, a
Portuguese mobile: Lisbon and the Azores) must be inside the window in every
one. A number with none uses the default time zone; with no default either,
it is refused (nothing known about its local time). Local times follow each
zone's daylight-saving rules (``zoneinfo``), including days when an hour is
skipped or repeated. Pure: the caller passes ``now``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, time, timedelta
from typing import Final
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from servio_twilio.domain.errors import InvalidArgument, OutsideSendingHours

__all__ = [
    "HORIZON",
    "check_time_zone",
    "check_window",
    "is_inside",
    "next_allowed_at",
    "sending_hours_refusal",
    "time_zones_for_number",
]

HORIZON: Final = timedelta(days=8)
"""How far `next_allowed_at` looks ahead (a week, and a day for the time-zone spread)."""
_UNKNOWN_ZONE: Final = "Etc/Unknown"
_STEP: Final = timedelta(hours=3)  # offsets are sampled this far apart; changes are months apart
_SECOND: Final = timedelta(seconds=1)


def check_window(window: object) -> tuple[time, time]:
    """``window`` as a ``(start, end)`` tuple of naive `datetime.time` values.

    Raises:
        TypeError: not a pair of ``datetime.time``.
        InvalidArgument: (a ``ValueError``) a time with a ``tzinfo`` (the window is
            the recipient's local time), or ``start == end``.

    New in 0.2.0.
    """
    pair = "sending_hours must be a (start, end) pair of datetime.time"
    if not isinstance(window, tuple | list) or len(window) != 2:
        raise TypeError(f"{pair}, not {window!r:.60}")
    start, end = window
    if not isinstance(start, time) or not isinstance(end, time):
        raise TypeError(f"{pair}, not {window!r:.60}")
    if start.tzinfo is not None or end.tzinfo is not None:
        raise InvalidArgument(
            "sending_hours are the recipient's local times: pass naive datetime.time values"
        )
    if start == end:
        raise InvalidArgument(
            f"sending_hours start and end are both {start.isoformat()}: an empty window"
        )
    return (start, end)


def check_time_zone(name: object) -> str:
    """``name`` when it is an IANA time zone ``zoneinfo`` knows (``"America/Sao_Paulo"``).

    Raises:
        TypeError: not a str.
        InvalidArgument: (a ``ValueError``) no such time zone.

    New in 0.2.0.
    """
    if not isinstance(name, str):
        raise TypeError(f"default_timezone must be a str, not {type(name).__name__}")
    if _zone(name) is None:
        raise InvalidArgument(f"default_timezone {name!r:.60} is not a known IANA time zone")
    return name


@functools.lru_cache(maxsize=1024)
def _zone(name: str) -> ZoneInfo | None:
    if not name or name == _UNKNOWN_ZONE:
        return None
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):  # ValueError: a malformed key such as "../x"
        return None


@functools.lru_cache(maxsize=4096)
def time_zones_for_number(number: str) -> tuple[str, ...]:
    """The IANA time zones ``phonenumbers`` knows for an E.164 ``number``; () when none.

    New in 0.2.0.
    """
    import phonenumbers  # noqa: PLC0415 - kept out of `import servio_twilio`
    from phonenumbers import timezone  # noqa: PLC0415

    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return ()
    names = timezone.time_zones_for_number(parsed)
    return tuple(sorted({name for name in names if _zone(name) is not None}))


def is_inside(local: time, window: tuple[time, time]) -> bool:
    """Whether the wall-clock time ``local`` is inside ``window`` (which may wrap midnight).

    New in 0.2.0.
    """
    start, end = window
    if start < end:
        return start <= local < end
    return local >= start or local < end


def _allowed(zones: Iterable[ZoneInfo], instant: datetime, window: tuple[time, time]) -> bool:
    return all(is_inside(instant.astimezone(zone).time(), window) for zone in zones)


def next_allowed_at(
    zones: Sequence[str], now: datetime, window: tuple[time, time]
) -> datetime | None:
    """The first moment at or after ``now`` inside ``window`` in every one of ``zones``.

    ``now`` itself (in UTC) when it is inside already; None when no moment
    within `HORIZON` is (zones too far apart for the window). The answer is
    exact to the second across daylight-saving changes: the window opens
    where a zone's wall clock reaches ``start``, or where a change of offset
    moves the wall clock into the window (a start inside a skipped hour).

    Raises:
        InvalidArgument: (a ``ValueError``) a naive ``now``, an unknown zone, or
            no zone at all.

    New in 0.2.0.
    """
    window = check_window(window)
    if now.tzinfo is None or now.utcoffset() is None:
        raise InvalidArgument("now must be an aware datetime")
    loaded = []
    for name in zones:
        zone = _zone(name)
        if zone is None:
            raise InvalidArgument(f"unknown time zone {name!r:.60}")
        loaded.append(zone)
    if not loaded:
        raise InvalidArgument("next_allowed_at needs at least one time zone")
    now = now.astimezone(UTC)
    if _allowed(loaded, now, window):
        return now
    candidates: set[datetime] = set()
    distinct: dict[tuple[object, ...], ZoneInfo] = {}
    for zone in loaded:
        offsets, changes = _offsets(zone, now)
        distinct.setdefault((*offsets, *changes), zone)  # zones that agree here count once
        candidates.update(changes)
        candidates.update(_starts(now, window[0], set(offsets)))
    zones_here = list(distinct.values())
    horizon = now + HORIZON
    for candidate in sorted(c for c in candidates if now < c <= horizon):
        if _allowed(zones_here, candidate, window):
            return candidate
    return None


def _offsets(zone: ZoneInfo, now: datetime) -> tuple[list[timedelta], list[datetime]]:
    """``zone``'s UTC offsets from ``now`` to `HORIZON` (sampled) and the instants they change."""
    instant = now.replace(microsecond=0)
    end = now + HORIZON + _STEP
    offsets: list[timedelta] = []
    changes: list[datetime] = []
    previous = _offset(zone, instant)
    offsets.append(previous)
    while instant < end:
        following = instant + _STEP
        offset = _offset(zone, following)
        if offset != previous:
            changes.append(_change_between(zone, instant, following))
            offsets.append(offset)
            previous = offset
        instant = following
    return offsets, changes


def _offset(zone: ZoneInfo, instant: datetime) -> timedelta:
    offset = instant.astimezone(zone).utcoffset()
    assert offset is not None  # a ZoneInfo always has one
    return offset


def _change_between(zone: ZoneInfo, low: datetime, high: datetime) -> datetime:
    """The first whole second in ``(low, high]`` with ``high``'s offset (bisection).

    ``low`` and ``high`` are whole seconds apart, as the samples are.
    """
    target = _offset(zone, high)
    below, above = int(low.timestamp()), int(high.timestamp())
    while above - below > 1:
        middle = (below + above) // 2
        if _offset(zone, datetime.fromtimestamp(middle, UTC)) == target:
            above = middle
        else:
            below = middle
    return datetime.fromtimestamp(above, UTC)


def _starts(now: datetime, start: time, offsets: set[timedelta]) -> Iterable[datetime]:
    """The UTC instants where a wall clock at any of ``offsets`` reads ``start``, near ``now``."""
    first = (now - timedelta(days=1)).date()
    for day in range(HORIZON.days + 3):
        local = datetime.combine(first + timedelta(days=day), start, tzinfo=UTC)
        for offset in offsets:
            yield local - offset


def sending_hours_refusal(
    number: str,
    now: datetime,
    window: tuple[time, time],
    default_timezone: str | None = None,
) -> OutsideSendingHours | None:
    """None when ``now`` is inside ``window`` for ``number``; else the error to raise.

    The error's ``next_allowed_at`` is the first moment (aware UTC) inside the
    window in every zone of the number, or None when there is none within a
    week, or no time zone is known for the number and ``default_timezone`` is
    None (the error's ``reason`` says which).

    Raises:
        InvalidArgument: (a ``ValueError``) a naive ``now``, a malformed window, an
            unknown ``default_timezone``.

    New in 0.2.0.
    """
    window = check_window(window)
    if not isinstance(now, datetime):
        raise TypeError(f"now must be a datetime, not {type(now).__name__}")
    if now.tzinfo is None or now.utcoffset() is None:
        raise InvalidArgument("now must be an aware datetime")
    zones = time_zones_for_number(number)
    if not zones:
        if default_timezone is None:
            return OutsideSendingHours(
                number,
                None,
                reason="no time zone is known for the number; set SendPolicy(default_timezone=...)",
            )
        zones = (check_time_zone(default_timezone),)
    allowed = next_allowed_at(zones, now, window)
    if allowed is not None and allowed == now:
        return None
    reason = "" if allowed is not None else "its time zones never share a time inside the window"
    return OutsideSendingHours(number, allowed, time_zones=zones, reason=reason)
