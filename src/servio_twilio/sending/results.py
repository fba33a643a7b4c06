"""Value types the client takes and returns: messages to send, results, reports."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import attrs

from servio_twilio.domain.errors import InvalidArgument
from servio_twilio.domain.models import (
    Channel,
    parse_channel,
    pydantic_output_schema,
    to_json_dict,
)

__all__ = [
    "BatchItemResult",
    "BatchReport",
    "HealthCheck",
    "HealthReport",
    "OutboundMessage",
    "ReconcileFailure",
    "ReconcileReport",
    "SendResult",
]


@attrs.frozen(kw_only=True)
class SendResult:
    """What a send returned: the record's id, Twilio's SID and status.

    New in 0.1.0.
    """

    communication_id: str
    sid: str
    status: str
    to: str
    from_: str
    channel: Channel = attrs.field(converter=parse_channel)

    __get_pydantic_core_schema__ = pydantic_output_schema

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data (``from`` for ``from_``)."""
        return to_json_dict(self)


def _media(value: str | Sequence[str] | None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return (value,)
    return tuple(value)


_FROM_DICT_KEYS = {"to", "body", "prospectId", "mediaUrl", "channel"}
_CHANNELS = {"sms": Channel.SMS, "whatsapp": Channel.WHATSAPP}


@attrs.frozen(kw_only=True)
class OutboundMessage:
    """One message of a batch: SMS or WhatsApp, with media or a template.

    ``media_url`` is one URL or several; ``content_sid`` with
    ``content_variables`` sends an approved WhatsApp template. The client
    validates it (number, channel, body or media or template) before anything
    is written or sent.

    New in 0.1.0.
    """

    to: str
    body: str | None = None
    channel: Channel = attrs.field(default=Channel.SMS, converter=parse_channel)
    media_url: tuple[str, ...] | None = attrs.field(default=None, converter=_media)
    content_sid: str | None = None
    content_variables: Mapping[str, Any] | None = None
    prospect_id: str | None = None

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OutboundMessage:
        """Read one item in the earlier service's shape.

        Keys: ``to`` (required), ``body``, ``prospectId``, ``mediaUrl`` (a URL or
        a list), ``channel`` (``"sms"``, the default, or ``"whatsapp"``).

        Raises:
            InvalidArgument: (a ``ValueError``) naming the key that is missing, unknown
                or of the wrong type.
        """
        if not isinstance(data, Mapping):
            raise TypeError(f"expected a mapping, got {type(data).__name__}")
        unknown = sorted(str(k) for k in data if k not in _FROM_DICT_KEYS)
        if unknown:
            raise InvalidArgument(
                f"unknown keys {unknown}; expected some of {sorted(_FROM_DICT_KEYS)}"
            )
        if "to" not in data:
            raise InvalidArgument("'to' is required")
        for key in ("to", "body", "prospectId"):
            value = data.get(key)
            if key in data and value is not None and not isinstance(value, str):
                raise InvalidArgument(f"{key!r} must be a string, not {type(value).__name__}")
        if not isinstance(data["to"], str):
            raise InvalidArgument("'to' must be a string")
        media = data.get("mediaUrl")
        if media is not None and not (
            isinstance(media, str)
            or (isinstance(media, list) and all(isinstance(u, str) for u in media))
        ):
            raise InvalidArgument("'mediaUrl' must be a URL or a list of URLs")
        channel_name = data.get("channel", "sms")
        channel = _CHANNELS.get(channel_name) if isinstance(channel_name, str) else None
        if channel is None:
            raise InvalidArgument(f"'channel' must be 'sms' or 'whatsapp', not {channel_name!r}")
        return cls(
            to=data["to"],
            body=data.get("body"),
            channel=channel,
            media_url=media,
            prospect_id=data.get("prospectId"),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return to_json_dict(self)


def _item_list(items: Iterable[BatchItemResult]) -> list[BatchItemResult]:
    return list(items)


def _check_list(checks: Iterable[HealthCheck]) -> list[HealthCheck]:
    return list(checks)


@attrs.frozen(kw_only=True)
class BatchItemResult:
    """The outcome of one batch item, at its input ``index``.

    ``ok`` with a ``result``, or not ok with an ``error`` (and Twilio's
    ``error_code`` when it gave one). ``communication_id`` is the item's
    record when one was written (a failed item may have one: its record says
    why), None for an item refused before anything was written.

    New in 0.1.0.
    """

    index: int
    to: str
    ok: bool
    result: SendResult | None = None
    error: str | None = None
    error_code: int | None = None
    communication_id: str | None = None

    __get_pydantic_core_schema__ = pydantic_output_schema

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        data = to_json_dict(self)
        data["result"] = None if self.result is None else self.result.to_dict()
        return data


@attrs.frozen(kw_only=True)
class BatchReport:
    """Every item's outcome, in input order; ``succeeded + failed == total``.

    New in 0.1.0.
    """

    total: int
    succeeded: int
    failed: int
    items: list[BatchItemResult] = attrs.field(converter=_item_list)

    __get_pydantic_core_schema__ = pydantic_output_schema

    @classmethod
    def from_items(cls, items: Sequence[BatchItemResult]) -> BatchReport:
        """The report over ``items`` (sorted by index), with the counts derived."""
        ordered = sorted(items, key=lambda item: item.index)
        succeeded = sum(1 for item in ordered if item.ok)
        return cls(
            total=len(ordered),
            succeeded=succeeded,
            failed=len(ordered) - succeeded,
            items=ordered,
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "total": self.total,
            "succeeded": self.succeeded,
            "failed": self.failed,
            "items": [item.to_dict() for item in self.items],
        }


@attrs.frozen(kw_only=True)
class HealthCheck:
    """One health check: its ``name``, whether it passed, and why.

    New in 0.1.0.
    """

    name: str
    ok: bool
    detail: str

    __get_pydantic_core_schema__ = pydantic_output_schema

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return to_json_dict(self)


@attrs.frozen(kw_only=True)
class HealthReport:
    """Whether the account, the sender number and storage all answer.

    ``account_sid`` is masked; ``healthy`` is every check passing.

    New in 0.1.0.
    """

    healthy: bool
    account_sid: str
    account_status: str | None
    phone_number: str | None
    whatsapp_number: str | None
    checks: list[HealthCheck] = attrs.field(converter=_check_list)

    __get_pydantic_core_schema__ = pydantic_output_schema

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        data = to_json_dict(self)
        data["checks"] = [check.to_dict() for check in self.checks]
        return data


@attrs.frozen(kw_only=True)
class ReconcileFailure:
    """A record `reconcile` could not check, and why (Twilio or storage failed).

    New in 0.2.0.
    """

    communication_id: str
    reason: str

    __get_pydantic_core_schema__ = pydantic_output_schema

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return to_json_dict(self)


def _failure_list(failures: Iterable[ReconcileFailure]) -> list[ReconcileFailure]:
    return list(failures)


@attrs.frozen(kw_only=True)
class ReconcileReport:
    """What one `reconcile` run did with the open records it found.

    ``examined`` open records, each counted once: ``settled`` (now final),
    ``still_open`` (Twilio has not finished with them, or a record without
    SID not found yet and younger than ``not_sent_after``), ``not_sent``
    (Twilio has no such message or call: now ``failed``) or in ``failed``
    (could not be checked, with the reason). ``ok`` is True when every
    record could be checked.

    New in 0.2.0.
    """

    examined: int
    settled: int
    still_open: int
    not_sent: int
    failed: list[ReconcileFailure] = attrs.field(converter=_failure_list)

    __get_pydantic_core_schema__ = pydantic_output_schema

    @property
    def ok(self) -> bool:
        """Whether every examined record could be checked."""
        return not self.failed

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data."""
        return {
            "examined": self.examined,
            "settled": self.settled,
            "still_open": self.still_open,
            "not_sent": self.not_sent,
            "failed": [failure.to_dict() for failure in self.failed],
        }
