"""The stored communication record and its enums."""

from __future__ import annotations

import enum
import typing
from collections.abc import Mapping
from datetime import UTC, date, datetime
from typing import TYPE_CHECKING, Any, NoReturn

import attrs

from servio_twilio.domain.errors import InvalidArgument

if TYPE_CHECKING:  # pydantic is optional: only building a schema imports it
    from pydantic import GetCoreSchemaHandler
    from pydantic_core import CoreSchema

__all__ = [
    "Channel",
    "Communication",
    "DayCount",
    "Direction",
    "json_ready",
    "parse_channel",
    "pydantic_output_schema",
    "replace",
    "to_json_dict",
    "utcnow",
]


class Channel(enum.StrEnum):
    """How a communication travels; stored as the record's ``type``."""

    SMS = "sms"
    WHATSAPP = "whatsapp"
    CALL = "call"


class Direction(enum.StrEnum):
    """Whether we sent the communication or the prospect did."""

    INBOUND = "inbound"
    OUTBOUND = "outbound"


def utcnow() -> datetime:
    """The current time as an aware UTC datetime (the default clock)."""
    return datetime.now(UTC)


def _aware_utc(value: datetime) -> datetime:
    if type(value) is datetime and value.tzinfo is UTC:
        return value  # the common case, and the hot path of every record update
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise InvalidArgument("naive datetime: pass an aware one (UTC)")
    return value.astimezone(UTC)


def parse_channel(value: Channel | str, name: str = "channel") -> Channel:
    """``value`` (a `Channel` or its value, ``"sms"``) as a `Channel`.

    Raises:
        InvalidArgument: (a ``ValueError``) naming ``name`` for any other value.
    """
    if type(value) is Channel:
        return value
    try:
        return Channel(value)
    except ValueError:
        choices = ", ".join(channel.value for channel in Channel)
        raise InvalidArgument(f"{name} must be one of {choices}, not {value!r:.40}") from None


def _channel(value: Channel | str) -> Channel:
    return value if type(value) is Channel else parse_channel(value)


def _direction(value: Direction | str) -> Direction:
    if type(value) is Direction:
        return value
    try:
        return Direction(value)
    except ValueError:
        raise InvalidArgument(
            f"direction must be one of inbound, outbound, not {value!r:.40}"
        ) from None


def _media_urls(value: object) -> tuple[str, ...]:
    if type(value) is tuple:
        return value
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    return tuple(value)  # type: ignore[arg-type]


def json_ready(value: Any) -> Any:
    """``value`` with datetimes as ISO 8601 strings, enums as their values, tuples as lists."""
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, Mapping):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value


def _json_key(field_name: str) -> str:
    return field_name.rstrip("_")  # from_ -> from


def to_json_dict(instance: Any) -> dict[str, Any]:
    """An attrs instance as JSON-ready data; a trailing ``_`` (``from_``) is dropped from keys."""
    return {
        _json_key(field.name): json_ready(getattr(instance, field.name))
        for field in attrs.fields(type(instance))
    }


def _call_to_dict(value: Any) -> Any:
    return value.to_dict()


def _output_core_schema(cls: type[Any], source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
    """How pydantic (and so FastAPI) handles ``cls``, an attrs type with ``to_dict()``.

    Serialized, in every mode, as exactly ``value.to_dict()``. Validated from
    Python by ``isinstance`` (the instance itself is kept); from JSON, refused
    with a validation error: these are output types, never built from input.
    The JSON schema is the object ``to_dict()`` gives, each key typed from the
    attrs field's annotation (``from`` for ``from_``, times as date-time
    strings), all keys required.
    """
    from pydantic_core import PydanticCustomError, core_schema  # noqa: PLC0415 - optional

    def refuse(value: Any) -> NoReturn:
        raise PydanticCustomError(
            "output_type",
            "{name} is an output type: it is returned, never read from JSON",
            {"name": cls.__name__},
        )

    hints = typing.get_type_hints(cls)  # resolved in the class's module
    # What to_dict() gives, for the JSON schema only: refuse() runs before it on any input.
    shape = core_schema.typed_dict_schema(
        {
            _json_key(field.name): core_schema.typed_dict_field(
                handler.generate_schema(hints[field.name])
            )
            for field in attrs.fields(cls)
        }
    )
    return core_schema.json_or_python_schema(
        json_schema=core_schema.no_info_before_validator_function(refuse, shape),
        python_schema=core_schema.is_instance_schema(cls),
        serialization=core_schema.plain_serializer_function_ser_schema(_call_to_dict),
        ref=f"{cls.__module__}.{cls.__qualname__}:{id(cls)}",
    )


pydantic_output_schema = classmethod(_output_core_schema)
"""The result types' ``__get_pydantic_core_schema__``: FastAPI returns them as ``to_dict()``.

Assigned in each class body; pydantic is imported only when a schema is built.
"""


@attrs.frozen(kw_only=True, slots=False)
class Communication:
    """One SMS, WhatsApp message or call, in either direction.

    Stored in the ``communications`` collection with the earlier service's
    field names (``prospectId``, ``type``, ``twilioSid``, ...): each backend
    converts in one place. Times are aware UTC datetimes; ``to`` and ``from_``
    are E.164 numbers without a ``whatsapp:`` prefix (``channel`` says it).

    ``status`` follows the rank table of `servio_twilio.domain.status`: it only moves
    up. ``media_url`` is the first of ``media_urls``.

    ``price`` is Twilio's charge exactly as Twilio reports it (a decimal
    string, negative for a charge: ``"-0.00750"``), in ``price_unit``
    (``"USD"``); ``num_segments`` is a message's segment count.
    ``recording_requested`` says the call was made with ``record=True``:
    until its recording is stored, `reconcile` keeps looking for it.
    ``reconciled`` says `reconcile` fetched the record from Twilio once it
    was final (so its cost is what Twilio reported then).

    New in 0.1.0. Changed in 0.2.0: ``recording_requested``, ``price``,
    ``price_unit``, ``num_segments``, ``reconciled``.
    """

    id: str | None = None
    prospect_id: str | None = None
    channel: Channel = attrs.field(converter=_channel)
    direction: Direction = attrs.field(default=Direction.OUTBOUND, converter=_direction)
    to: str
    from_: str
    body: str | None = None
    media_url: str | None = None
    media_urls: tuple[str, ...] = attrs.field(default=(), converter=_media_urls)
    twilio_sid: str | None = None
    status: str = "pending"
    duration: int | None = None
    recording_url: str | None = None
    recording_sid: str | None = None
    recording_duration: int | None = None
    error: str | None = None
    error_code: int | None = None
    timestamp: datetime = attrs.field(factory=utcnow, converter=_aware_utc)
    created_at: datetime = attrs.field(factory=utcnow, converter=_aware_utc)
    updated_at: datetime = attrs.field(factory=utcnow, converter=_aware_utc)
    recording_requested: bool = False
    price: str | None = None
    price_unit: str | None = None
    num_segments: int | None = None
    reconciled: bool = False

    __get_pydantic_core_schema__ = pydantic_output_schema

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready data: snake_case keys (``from`` for ``from_``), ISO 8601 times."""
        return to_json_dict(self)


@attrs.frozen(kw_only=True)
class DayCount:
    """How many records of one channel and status have their ``timestamp`` on one UTC day.

    New in 0.2.0.
    """

    day: date
    channel: Channel = attrs.field(converter=_channel)
    status: str
    count: int


_FIELD_NAMES: frozenset[str] = frozenset(field.name for field in attrs.fields(Communication))
_CONVERTERS: dict[str, Any] = {
    field.name: field.converter
    for field in attrs.fields(Communication)
    if field.converter is not None
}


def replace(record: Communication, **changes: Any) -> Communication:
    """``record`` with ``changes``: what `attrs.evolve` gives, several times faster.

    Status callbacks change a record on every delivery, so this copies the
    instance's attributes at once instead of calling ``__init__`` with all
    of them; the changed fields go through their converters as in ``__init__``.

    Raises:
        TypeError: a name in ``changes`` is not a field.
        InvalidArgument: (a ``ValueError``) a changed time is naive, or a changed
            channel or direction is not one of its values.

    New in 0.1.0.
    """
    if type(record) is not Communication:  # a subclass may add fields and checks
        updated: Communication = attrs.evolve(record, **changes)
        return updated
    if not _FIELD_NAMES.issuperset(changes):
        unknown = sorted(set(changes) - _FIELD_NAMES)
        raise TypeError(f"Communication has no field {unknown[0]!r}")
    for name in _CONVERTERS.keys() & changes.keys():
        changes[name] = _CONVERTERS[name](changes[name])
    copy = object.__new__(Communication)
    attributes = copy.__dict__
    attributes.update(record.__dict__)
    attributes.update(changes)
    return copy
