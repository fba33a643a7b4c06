"""The overview's Twilio health report, checked at most once a minute.

A console built with ``settings`` shows the report of
`CommunicationsClient.health` (the account, the sender number, storage). It
asks Twilio on the first view and then keeps the report for `HEALTH_TTL`
seconds, so a busy page (or a reload loop) costs Twilio's API one check a
minute: `HealthCache` for the WSGI app, `AsyncHealthCache` for the ASGI app.
Concurrent views while a check runs wait for it rather than start their own.
A check that raises is not kept (the next view tries again).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import TYPE_CHECKING, Any, Final

import attrs

from servio_twilio.domain.models import utcnow

if TYPE_CHECKING:
    from servio_twilio.sending.results import HealthReport

__all__ = ["HEALTH_TTL", "AsyncHealthCache", "CheckedHealth", "HealthCache"]

HEALTH_TTL: Final = 60.0
"""Seconds a health report is shown before Twilio is asked again."""


@attrs.frozen(kw_only=True)
class CheckedHealth:
    """A health report and when it was checked (aware UTC)."""

    report: HealthReport
    checked_at: datetime


class HealthCache:
    """``check()``'s report, kept `HEALTH_TTL` seconds; thread-safe (one check at a time)."""

    def __init__(
        self,
        check: Callable[[], HealthReport],
        *,
        ttl: float = HEALTH_TTL,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._check = check
        self._ttl = ttl
        self._monotonic = monotonic
        self._lock = threading.Lock()
        self._kept: CheckedHealth | None = None
        self._kept_at = 0.0

    def __repr__(self) -> str:
        return f"<HealthCache ttl={self._ttl}s kept={self._kept is not None}>"

    def report(self) -> CheckedHealth:
        """The kept report while it is fresh, else a new check's."""
        with self._lock:
            kept = self._kept
            if kept is not None and self._monotonic() - self._kept_at < self._ttl:
                return kept
            report = self._check()
            self._kept = kept = CheckedHealth(report=report, checked_at=utcnow())
            self._kept_at = self._monotonic()
            return kept


class AsyncHealthCache:
    """`HealthCache` for an event loop: ``check()`` is awaited, one at a time."""

    def __init__(
        self,
        check: Callable[[], Awaitable[HealthReport]],
        *,
        ttl: float = HEALTH_TTL,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._check = check
        self._ttl = ttl
        self._monotonic = monotonic
        self._lock: Any = None  # an asyncio.Lock, made on first use
        self._kept: CheckedHealth | None = None
        self._kept_at = 0.0

    def __repr__(self) -> str:
        return f"<AsyncHealthCache ttl={self._ttl}s kept={self._kept is not None}>"

    def _fresh(self) -> CheckedHealth | None:
        kept = self._kept
        if kept is not None and self._monotonic() - self._kept_at < self._ttl:
            return kept
        return None

    async def report(self) -> CheckedHealth:
        """The kept report while it is fresh, else a new check's."""
        kept = self._fresh()
        if kept is not None:
            return kept
        if self._lock is None:
            import asyncio  # noqa: PLC0415 - only awaited code needs it

            self._lock = asyncio.Lock()
        async with self._lock:
            kept = self._fresh()
            if kept is not None:
                return kept
            report = await self._check()
            self._kept = kept = CheckedHealth(report=report, checked_at=utcnow())
            self._kept_at = self._monotonic()
            return kept
