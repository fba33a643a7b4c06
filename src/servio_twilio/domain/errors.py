"""Every exception servio-twilio raises.

No exception type of ``twilio``, ``requests``, ``google.api_core`` or ``grpc``
reaches callers: each is translated at the boundary with ``raise ... from exc``.

```
ServioTwilioError(Exception)
├── ConfigurationError(ServioTwilioError, ValueError)
├── InvalidArgument(ServioTwilioError, ValueError)      an argument has a bad value
├── InvalidPhoneNumber(ServioTwilioError, ValueError)   .raw, .reason
├── BatchTooLarge(ServioTwilioError, ValueError)        .size, .limit
├── SendLimitExceeded(ServioTwilioError)                .prospect_id, .retry_after
│   └── LimiterUnavailable                              a shared limit's storage failed
├── RecipientOptedOut(ServioTwilioError)                .number, .channel
├── OutsideSendingHours(ServioTwilioError)              .number, .next_allowed_at, .reason
├── TwilioAPIError      .status, .code, .message, .more_info, .retryable, .communication_id
│   └── RateLimited                                     .retry_after
├── SendOutcomeUnknown(ServioTwilioError)               .communication_id
├── RepositoryError                                     storage failed
│   ├── DuplicateRecord
│   └── RecordNotFound(RepositoryError, KeyError)
├── WebhookVerificationError
│   ├── MissingSignature
│   └── InvalidSignature
└── MalformedCallback(ServioTwilioError, ValueError)    .fields
```
"""

from __future__ import annotations

from datetime import datetime

from servio_twilio.domain.phone_text import mask_phone, mask_phone_numbers

__all__ = [
    "BatchTooLarge",
    "ConfigurationError",
    "DuplicateRecord",
    "InvalidArgument",
    "InvalidPhoneNumber",
    "InvalidSignature",
    "LimiterUnavailable",
    "MalformedCallback",
    "MissingSignature",
    "OutsideSendingHours",
    "RateLimited",
    "RecipientOptedOut",
    "RecordNotFound",
    "RepositoryError",
    "SendLimitExceeded",
    "SendOutcomeUnknown",
    "ServioTwilioError",
    "TwilioAPIError",
    "WebhookVerificationError",
]

_MAX_SHOWN = 40
_MAX_MESSAGE = 500


def _shorten(value: object) -> str:
    """A bounded repr, so a 1 MB input never becomes a 1 MB message; never raises."""
    try:
        text = repr(value)
    except Exception:  # a hostile __repr__ must not replace the error being raised
        return f"<{type(value).__name__} object>"
    if len(text) > _MAX_SHOWN:
        return f"{text[:_MAX_SHOWN]}... ({len(text)} chars)"
    return text


def _clip(text: str) -> str:
    """``text`` cut to a bounded length, saying how long it was."""
    if len(text) > _MAX_MESSAGE:
        return f"{text[:_MAX_MESSAGE]}... ({len(text)} chars)"
    return text


def _shown_number(raw: object) -> str:
    """``raw`` masked for a message (messages end up in logs); ``.raw`` keeps it whole."""
    if not isinstance(raw, str):
        return f"<{type(raw).__name__}>"
    if len(raw) > _MAX_SHOWN:
        return f"<{len(raw)} chars>"
    return repr(mask_phone(raw))


def _reduce_with_state(error: ServioTwilioError) -> tuple[object, ...]:
    """Pickle ``error`` as its args and attributes; loading does not call ``__init__``."""
    return (_rebuild, (type(error), error.args, error.__dict__.copy()))


def _rebuild(
    cls: type[ServioTwilioError], args: tuple[object, ...], state: dict[str, object]
) -> ServioTwilioError:
    error = cls.__new__(cls)
    Exception.__init__(error, *args)
    error.__dict__.update(state)
    return error


class ServioTwilioError(Exception):
    """Base class of every error this library raises."""


class ConfigurationError(ServioTwilioError, ValueError):
    """Settings are missing or malformed, or an operation lacks what it needs.

    The message names every problem at once; it never contains a secret.
    """


class InvalidArgument(ServioTwilioError, ValueError):
    """An argument has a bad value; nothing was written or sent.

    An empty or too long body, a malformed URL, a limit out of range, a naive
    datetime, an unknown channel... The message names the argument. Also a
    ``ValueError``, so ``except ValueError`` keeps working. An argument of the
    wrong type is still a ``TypeError``.

    New in 0.1.0.
    """


class InvalidPhoneNumber(ServioTwilioError, ValueError):
    """A phone number could not be read as a valid E.164 number."""

    def __init__(self, raw: object, reason: str) -> None:
        self.raw = raw
        self.reason = reason
        super().__init__(f"invalid phone number {_shown_number(raw)}: {reason}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.raw, self.reason))


class BatchTooLarge(ServioTwilioError, ValueError):
    """A batch has more messages than its limit; nothing was written or sent."""

    def __init__(self, size: int, limit: int) -> None:
        self.size = size
        self.limit = limit
        super().__init__(f"batch of {size} messages is over the limit of {limit}")

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.size, self.limit))


class SendLimitExceeded(ServioTwilioError):
    """The per-prospect send limit is reached; nothing was written or sent."""

    def __init__(self, prospect_id: str, retry_after: float) -> None:
        self.prospect_id = prospect_id
        self.retry_after = retry_after
        super().__init__(
            f"send limit reached for prospect {_shorten(prospect_id)}; retry in {retry_after:.1f}s"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.prospect_id, self.retry_after))


class LimiterUnavailable(SendLimitExceeded):
    """A shared limit could not be checked (its storage failed): nothing was written or sent.

    Shared limits fail closed: a send whose limit cannot be counted is
    refused, never sent unchecked. A `SendLimitExceeded`, so code that
    catches that (a batch, a retry queue) handles it too; ``prospect_id`` is
    the limit's key with any phone number in it masked, ``retry_after`` a
    suggestion (``RETRY_AFTER`` seconds), ``detail`` what failed (no secret,
    no phone number).

    New in 0.2.0.
    """

    RETRY_AFTER = 5.0
    """The ``retry_after`` it suggests: the storage may be back by then."""

    def __init__(self, prospect_id: str, detail: str, *, retry_after: float = RETRY_AFTER) -> None:
        shown = mask_phone_numbers(prospect_id) if isinstance(prospect_id, str) else prospect_id
        self.detail = detail
        super().__init__(shown, retry_after)
        Exception.__init__(
            self,
            f"send limit for {_shorten(shown)} could not be checked, so nothing was "
            f"sent: {_clip(detail)}",
        )

    __reduce__ = _reduce_with_state


class RecipientOptedOut(ServioTwilioError):
    """The recipient opted out of this channel: nothing was written or sent.

    ``number`` is the E.164 number (masked in the message, which ends up in
    logs), ``channel`` the channel's value (``"sms"``, ``"whatsapp"``,
    ``"call"``).

    New in 0.2.0.
    """

    def __init__(self, number: str, channel: str) -> None:
        self.number = number
        self.channel = str(channel)
        super().__init__(
            f"{_shown_number(number)} opted out of {_shorten(self.channel)}; nothing was sent"
        )

    def __reduce__(self) -> tuple[object, ...]:
        return (type(self), (self.number, self.channel))


class OutsideSendingHours(ServioTwilioError):
    """The recipient's local time is outside the sending hours: nothing was written or sent.

    ``next_allowed_at`` is the first moment (aware UTC) when the local time
    is inside the window in every one of ``time_zones``, the number's time
    zones; None when waiting does not help, and ``reason`` says why: no
    moment within a week is inside the window in all the zones, or no time
    zone is known for the number (and there is no default). ``number`` is
    masked in the message.

    New in 0.2.0.
    """

    def __init__(
        self,
        number: str,
        next_allowed_at: datetime | None,
        *,
        time_zones: tuple[str, ...] = (),
        reason: str = "",
    ) -> None:
        self.number = number
        self.next_allowed_at = next_allowed_at
        self.time_zones = tuple(time_zones)
        self.reason = reason
        shown = ", ".join(self.time_zones[:5]) + (", ..." if len(self.time_zones) > 5 else "")
        message = f"outside sending hours for {_shown_number(number)}"
        if shown:
            message += f" [{shown}]"
        if reason:
            message += f": {_clip(reason)}"
        if next_allowed_at is not None:
            message += f"; next allowed at {next_allowed_at.isoformat()}"
        super().__init__(message)

    __reduce__ = _reduce_with_state


class TwilioAPIError(ServioTwilioError):
    """Twilio refused a request, or could not be reached.

    ``status`` is the HTTP status (0 when no response came), ``code`` Twilio's
    error code when it gave one, ``retryable`` whether sending the same request
    again may succeed, and ``communication_id`` the record that says so.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 0,
        code: int | None = None,
        more_info: str | None = None,
        retryable: bool = False,
        communication_id: str | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.code = code
        self.more_info = more_info
        self.retryable = retryable
        self.communication_id = communication_id
        super().__init__(message)

    def __str__(self) -> str:
        parts = [f"HTTP {self.status}" if self.status else "no response"]
        if self.code is not None:
            parts.append(f"Twilio error {self.code}")
        return f"{_clip(str(self.message))} ({', '.join(parts)})"

    __reduce__ = _reduce_with_state


class RateLimited(TwilioAPIError):
    """Twilio answered 429 (error 20429) past the retry budget.

    ``retry_after`` is the wait Twilio asked for, in seconds, when it said.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 429,
        code: int | None = 20429,
        more_info: str | None = None,
        retry_after: float | None = None,
        communication_id: str | None = None,
    ) -> None:
        super().__init__(
            message,
            status=status,
            code=code,
            more_info=more_info,
            retryable=True,
            communication_id=communication_id,
        )
        self.retry_after = retry_after


class SendOutcomeUnknown(ServioTwilioError):
    """The request may have reached Twilio but no answer came.

    The record is stored with status ``unknown``; Twilio's status callbacks
    settle it. Do not send again blindly: the message may already be out.
    """

    def __init__(self, message: str, *, communication_id: str) -> None:
        self.communication_id = communication_id
        super().__init__(message)

    __reduce__ = _reduce_with_state


class RepositoryError(ServioTwilioError):
    """The storage backend failed or refused an operation."""


class DuplicateRecord(RepositoryError):
    """A record with that id already exists."""


class RecordNotFound(RepositoryError, KeyError):
    """No record has that id."""

    def __str__(self) -> str:
        # KeyError would quote the message; this is a sentence, not a key.
        return str(self.args[0]) if self.args else ""


class WebhookVerificationError(ServioTwilioError):
    """A webhook request's Twilio signature did not verify."""


class MissingSignature(WebhookVerificationError):
    """The request has no ``X-Twilio-Signature``, or an empty one."""


class InvalidSignature(WebhookVerificationError):
    """The signature is present but does not match the request."""


class MalformedCallback(ServioTwilioError, ValueError):
    """A webhook request lacks a field its route needs, or has one malformed.

    ``fields`` names the offending form fields. The webhook apps answer it
    with 400; nothing is stored.

    New in 0.1.0.
    """

    def __init__(self, message: str, *, fields: tuple[str, ...] = ()) -> None:
        self.fields = fields
        super().__init__(message)

    __reduce__ = _reduce_with_state
