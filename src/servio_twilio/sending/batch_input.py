"""A batch's input: its items read and validated, its rate cap built.

`send_batch` (`servio_twilio.sending.batch`) reads ``messages`` with
`batch_items`, validates each with `prepare_item` (an invalid one fails in
the report, with no record and no request) and caps the creates with
`rate_cap`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, TypeAlias

from servio_twilio.domain.errors import InvalidArgument, ServioTwilioError
from servio_twilio.domain.models import Channel
from servio_twilio.sending.ratelimit import TokenBucket, is_positive_int, is_positive_number
from servio_twilio.sending.results import BatchItemResult, OutboundMessage

if TYPE_CHECKING:
    from servio_twilio.sending.prepare import PreparedSend
    from servio_twilio.sending.send_core import SendCore

__all__ = [
    "BatchMessage",
    "batch_items",
    "batch_message",
    "check_positive_int",
    "prepare_item",
    "rate_cap",
    "raw_to",
]

BatchMessage: TypeAlias = OutboundMessage | Mapping[str, Any]
"""One batch item: an `OutboundMessage`, or a mapping in the earlier service's shape."""

_CHANNELS = (Channel.SMS, Channel.WHATSAPP)


def rate_cap(rate: object) -> Any:
    """The rate cap for ``rate_per_second``: None, the given cap, or a new `TokenBucket`.

    A cap is a `TokenBucket` or anything with its ``acquire()`` (and
    ``acquire_async()`` for the async client), such as `SharedRateLimit`.

    Raises:
        InvalidArgument: (a ``ValueError``) ``rate`` is neither a positive number nor a cap.
    """
    if rate is None or callable(getattr(rate, "acquire", None)):
        return rate
    if not is_positive_number(rate):
        raise InvalidArgument(
            f"rate_per_second must be a positive number, a TokenBucket or None, got {rate!r}"
        )
    return TokenBucket(rate)


def prepare_item(
    core: SendCore,
    index: int,
    item: object,
    results: dict[int, BatchItemResult],
) -> PreparedSend | None:
    """The validated send for one item, or None with its failure in ``results``."""
    try:
        message = batch_message(item)
        if message.channel not in _CHANNELS:
            raise InvalidArgument(f"a batch sends SMS and WhatsApp messages, not {message.channel}")
        return core.prepare_message(
            message.channel,
            message.to,
            body=message.body,
            media_url=message.media_url,
            content_sid=message.content_sid,
            content_variables=message.content_variables,
            prospect_id=message.prospect_id,
        )
    except (ServioTwilioError, ValueError, TypeError) as exc:
        error = f"invalid: {exc}"
    except Exception as exc:
        error = f"invalid: {type(exc).__name__}: {exc}"
    results[index] = BatchItemResult(index=index, to=raw_to(item), ok=False, error=error)
    return None


def batch_items(messages: object) -> list[object]:
    """``messages`` as a list; ``TypeError`` for one message or a non-iterable."""
    if isinstance(messages, str | bytes | Mapping | OutboundMessage):
        raise TypeError(
            "messages must be an iterable of OutboundMessage or mappings, "
            f"not one {type(messages).__name__}"
        )
    if not isinstance(messages, Iterable):
        raise TypeError(f"messages must be an iterable, not {type(messages).__name__}")
    return list(messages)


def batch_message(item: object) -> OutboundMessage:
    """One item as an `OutboundMessage` (a mapping in the earlier service's shape is read)."""
    if isinstance(item, OutboundMessage):
        return item
    if isinstance(item, Mapping):
        return OutboundMessage.from_dict(item)
    raise TypeError(f"an item must be an OutboundMessage or a mapping, not {type(item).__name__}")


def raw_to(item: object) -> str:
    """The item's ``to`` as given, for its failed result ("" when it has none)."""
    to = item.to if isinstance(item, OutboundMessage) else None
    if isinstance(item, Mapping):
        to = item.get("to")
    return to if isinstance(to, str) else ""


def check_positive_int(name: str, value: object) -> None:
    """Raise `InvalidArgument` naming ``name`` unless ``value`` is an int >= 1."""
    if not is_positive_int(value):
        raise InvalidArgument(f"{name} must be an int >= 1, got {value!r}")
