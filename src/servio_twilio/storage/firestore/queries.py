"""The queries of the ``communications`` collection, built here and run by `Operations`.

Each function takes the collection's reference (of a ``Client`` or an
``AsyncClient``: both build queries the same way) and arguments already
checked, and returns the query; nothing here does I/O. The composite indexes
these queries need are shipped in ``firestore.indexes.json``:

```
query               filters                                       order by         index
by_sid              twilioSid ==                                  -                automatic
history             prospectId == [type ==] [timestamp <]         timestamp DESC   2 composite
latest_outbound_to  to ==, direction ==                           timestamp DESC   composite
page                [type ==] [prospectId ==] [open == true]      timestamp DESC   1 per equality
                    [status == | in] [timestamp >=] [timestamp <]                  field, merged
day_range           timestamp >=, timestamp <                     -                automatic
```

Equality filters are written with ``FieldFilter`` (the positional form
warns in current clients). Ties of ``timestamp`` come back in document-id
order, descending, as `servio_twilio.storage.repository.timestamp_order`
sorts them (Firestore orders by ``__name__`` after the last ordered field).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from google.cloud import firestore

from servio_twilio.domain.models import Channel, Direction

__all__ = ["by_sid", "day_range", "history", "latest_outbound_to", "page"]


def _equal(field: str, value: object) -> Any:
    return firestore.FieldFilter(field, "==", value)


def _newest_first(query: Any, limit: int) -> Any:
    return query.order_by("timestamp", direction=firestore.Query.DESCENDING).limit(limit)


def by_sid(collection: Any, sid: str) -> Any:
    """``twilioSid ==``, limit 1."""
    return collection.where(filter=_equal("twilioSid", sid)).limit(1)


def history(
    collection: Any,
    prospect_id: str,
    *,
    channel: Channel | str | None,
    before: datetime | None,
    limit: int,
) -> Any:
    """``prospectId ==`` [``type ==``] [``timestamp <``], newest first, ``limit``."""
    query = collection.where(filter=_equal("prospectId", prospect_id))
    if channel is not None:
        query = query.where(filter=_equal("type", Channel(channel).value))
    if before is not None:
        query = query.where(filter=firestore.FieldFilter("timestamp", "<", before))
    return _newest_first(query, limit)


def latest_outbound_to(collection: Any, number: str) -> Any:
    """``to ==``, ``direction == "outbound"``, newest first, limit 1."""
    query = collection.where(filter=_equal("to", number)).where(
        filter=_equal("direction", Direction.OUTBOUND.value)
    )
    return _newest_first(query, 1)


def page(
    collection: Any,
    *,
    channel: Channel | str | None,
    statuses: Sequence[str] | None,
    prospect_id: str | None,
    open_only: bool,
    since: datetime | None,
    before: datetime | None,
    limit: int,
) -> Any:
    """[``type ==``] [``prospectId ==``] [``open == true``] [``status ==``, or ``in`` for
    several] [``timestamp >=`` since] [``timestamp <`` before], newest first, ``limit``.
    """
    filters: list[Any] = []
    if channel is not None:
        filters.append(_equal("type", Channel(channel).value))
    if prospect_id is not None:
        filters.append(_equal("prospectId", prospect_id))
    if open_only:
        filters.append(_equal("open", True))
    if statuses is not None:
        distinct = sorted(set(statuses))
        if len(distinct) == 1:
            filters.append(_equal("status", distinct[0]))
        else:
            filters.append(firestore.FieldFilter("status", "in", distinct))
    if since is not None:
        filters.append(firestore.FieldFilter("timestamp", ">=", since))
    if before is not None:
        filters.append(firestore.FieldFilter("timestamp", "<", before))
    query = collection
    for one in filters:
        query = query.where(filter=one)
    return _newest_first(query, limit)


def day_range(collection: Any, since: datetime, until: datetime, fields: Sequence[str]) -> Any:
    """``since <= timestamp < until``, only ``fields`` of each document (a projection)."""
    return (
        collection.where(filter=firestore.FieldFilter("timestamp", ">=", since))
        .where(filter=firestore.FieldFilter("timestamp", "<", until))
        .select(list(fields))
    )
