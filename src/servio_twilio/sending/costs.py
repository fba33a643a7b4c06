"""What a prospect's communications cost: Twilio's prices, summed per currency.

Twilio reports a charge as a negative decimal string (``"-0.00750"``) in a
currency (``"USD"``); records keep both as given (``price``,
``price_unit``). `sum_charges` adds them up exactly (``Decimal``, never
floats); `read_costs` reads a prospect's records page by page to do it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from decimal import Decimal, InvalidOperation

from servio_twilio.domain.models import Communication
from servio_twilio.domain.steps import Call, Steps
from servio_twilio.sending.checks import check_prospect_id
from servio_twilio.storage.repository import MAX_HISTORY_LIMIT, check_aware

__all__ = ["charge", "read_costs", "sum_charges"]


def charge(record: Communication) -> tuple[str, Decimal] | None:
    """``(currency, amount)`` Twilio charged for ``record`` (a positive amount), or None.

    None when the record has no price, no currency, or a price that is not
    a finite decimal.
    """
    if record.price is None or not record.price_unit:
        return None
    try:
        amount = Decimal(record.price)
    except InvalidOperation:
        return None
    if not amount.is_finite():
        return None
    return record.price_unit.upper(), abs(amount)


def sum_charges(records: Iterable[Communication]) -> dict[str, Decimal]:
    """The charges of ``records`` summed per currency (positive amounts), currencies sorted."""
    totals: dict[str, Decimal] = {}
    for record in records:
        found = charge(record)
        if found is not None:
            currency, amount = found
            totals[currency] = totals.get(currency, Decimal(0)) + amount
    return dict(sorted(totals.items()))


def read_costs(prospect_id: str, *, since: datetime | None) -> Steps[dict[str, Decimal]]:
    """A prospect's charges per currency, from its records since ``since`` (all when None).

    Reads the prospect's history newest first, a page of 1000 at a time,
    until a page is short or reaches ``since``.
    """
    check_prospect_id(prospect_id, required=True)
    check_aware("since", since)
    totals: dict[str, Decimal] = {}
    before: datetime | None = None
    while True:
        page: list[Communication] = yield Call(
            "repository",
            "history",
            (prospect_id,),
            {"limit": MAX_HISTORY_LIMIT, "before": before},
        )
        kept = [record for record in page if since is None or record.timestamp >= since]
        for currency, amount in sum_charges(kept).items():
            totals[currency] = totals.get(currency, Decimal(0)) + amount
        if len(page) < MAX_HISTORY_LIMIT or len(kept) < len(page):
            return dict(sorted(totals.items()))
        before = page[-1].timestamp
