"""`SendPolicy`: what must hold before anything is written or sent.

Both clients take ``policy=SendPolicy(...)``. For each single send and each
batch item, after validation and before the send limit and the write-ahead
record: consent (`RecipientOptedOut`), then sending hours
(`OutsideSendingHours`). The checks here are pure; the consent store's read
is the client's I/O.
"""

from __future__ import annotations

from datetime import datetime, time
from typing import Any

import attrs

from servio_twilio.domain.errors import OutsideSendingHours
from servio_twilio.domain.sending_hours import (
    check_time_zone,
    check_window,
    sending_hours_refusal,
)
from servio_twilio.storage.consent import (
    AsyncConsentStore,
    ConsentStore,
    is_async_consent_store,
)

__all__ = ["SendPolicy"]


def _check_consent(instance: Any, attribute: Any, value: object) -> None:
    if value is not None and not isinstance(value, ConsentStore | AsyncConsentStore):
        raise TypeError(
            "consent must be a ConsentStore or an AsyncConsentStore (opt_out, opt_in, "
            f"is_opted_out, get), not {type(value).__name__}"
        )


def _window(value: object) -> tuple[time, time] | None:
    return None if value is None else check_window(value)


def _time_zone(value: object) -> str | None:
    return None if value is None else check_time_zone(value)


@attrs.frozen(kw_only=True)
class SendPolicy:
    """The rules every send must pass before anything is written or sent.

    - ``consent``: a `ConsentStore` (or `AsyncConsentStore`): a send to a
      number that opted out of the channel raises `RecipientOptedOut`.
    - ``sending_hours``: ``(start, end)`` local times, e.g.
      ``(time(8), time(21))``: a send (calls included) when the recipient's
      local time is outside raises `OutsideSendingHours`. The window may
      wrap midnight (``(time(21), time(8))``). The recipient's time zones
      come from ``phonenumbers``; a number with several must be inside in
      every one.
    - ``default_timezone``: the IANA zone of numbers with no known zone;
      without it such numbers are refused while ``sending_hours`` is set.

    Raises:
        TypeError: ``consent`` is not a consent store, ``sending_hours`` not a
            pair of ``datetime.time``, ``default_timezone`` not a str.
        InvalidArgument: (a ``ValueError``) an empty window (start == end), a
            time with a tzinfo, an unknown time zone.

    New in 0.2.0.
    """

    consent: ConsentStore | AsyncConsentStore | None = attrs.field(
        default=None, validator=_check_consent
    )
    sending_hours: tuple[time, time] | None = attrs.field(default=None, converter=_window)
    default_timezone: str | None = attrs.field(default=None, converter=_time_zone)

    @property
    def async_consent(self) -> bool:
        """Whether ``consent`` is an `AsyncConsentStore` (its methods are coroutines)."""
        return self.consent is not None and is_async_consent_store(self.consent)

    def sending_hours_refusal(self, to: str, now: datetime) -> OutsideSendingHours | None:
        """None when a send to ``to`` (E.164) is inside the sending hours at ``now``; else the
        `OutsideSendingHours` to raise (or to report, for a batch item)."""
        if self.sending_hours is None:
            return None
        return sending_hours_refusal(to, now, self.sending_hours, self.default_timezone)

    def check_sending_hours(self, to: str, now: datetime) -> None:
        """Raise `OutsideSendingHours` when ``to``'s local time at ``now`` is outside the hours."""
        refusal = self.sending_hours_refusal(to, now)
        if refusal is not None:
            raise refusal
