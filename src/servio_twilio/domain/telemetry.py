"""What each operation emits: the spans and metrics of sends, batches, callbacks, reconcile.

The sending rules (`servio_twilio.sending.send_core`, `.batch`), the webhook
apps and reconcile call the functions here. Each returns one shared no-op
when OpenTelemetry is not installed, else an object driving a span and the
metrics through `servio_twilio.domain.otel` (which imports it on first use).
Attribute values come from fixed sets (channels, outcomes, route names,
status codes, Twilio error codes, exception class names) plus our own random
communication ids: never a phone number, a body, a URL, a secret, a prospect
id or an exception's message (Twilio's messages quote numbers).

Spans of sends, batches and reconcile are started and ended explicitly, never
made current: their code runs as generators whose steps may run in other
threads or tasks. A callback's span is current while the app handles the
request (when it records), so spans the hooks open nest under it.
"""

from __future__ import annotations

import time
from typing import Any, Final

from servio_twilio.domain.errors import (
    LimiterUnavailable,
    OutsideSendingHours,
    RecipientOptedOut,
    SendLimitExceeded,
    SendOutcomeUnknown,
    TwilioAPIError,
)
from servio_twilio.domain.otel import Instruments, instruments, set_open_records

__all__ = [
    "FAILED",
    "LIMITED",
    "OTHER_ROUTE",
    "OUTCOMES",
    "REFUSED",
    "REJECTED",
    "SENT",
    "UNKNOWN",
    "BatchTelemetry",
    "CallbackTelemetry",
    "ReconcileTelemetry",
    "SendTelemetry",
    "callback_span",
    "outcome_of",
    "reconcile_span",
    "signature_failed",
    "start_batch",
    "start_send",
]

SENT: Final = "sent"
"""Twilio accepted the message or call (it has a SID)."""
REFUSED: Final = "refused"
"""Twilio answered with an error (``servio_twilio.error_code`` says which)."""
UNKNOWN: Final = "unknown"
"""The request may have reached Twilio, no answer came: the callbacks will tell."""
REJECTED: Final = "rejected"
"""The send policy refused it: the recipient opted out, or outside sending hours."""
LIMITED: Final = "limited"
"""The send limiter refused it (``SendLimitExceeded``)."""
FAILED: Final = "failed"
"""Our side failed before Twilio had it: storage, the limiter, an interruption."""
OUTCOMES: Final = frozenset({SENT, REFUSED, UNKNOWN, REJECTED, LIMITED, FAILED})
"""Every value of the ``outcome`` attribute."""
OTHER_ROUTE: Final = "other"
"""The ``route`` of a webhook request to a path the app does not serve."""


def outcome_of(exc: BaseException, *, dispatched: bool) -> str:
    """The outcome of a send that raised ``exc``; ``dispatched``: the create had begun."""
    if isinstance(exc, TwilioAPIError):
        return REFUSED
    if isinstance(exc, SendOutcomeUnknown):
        return UNKNOWN
    if isinstance(exc, RecipientOptedOut | OutsideSendingHours):
        return REJECTED
    if isinstance(exc, SendLimitExceeded) and not isinstance(exc, LimiterUnavailable):
        return LIMITED
    return UNKNOWN if dispatched else FAILED


# -- sends ----------------------------------------------------------------------------------


class SendTelemetry:
    """One send's span and measurements; this base class records nothing (no OpenTelemetry).

    Call `dispatching` when the request to Twilio is about to go, then one of
    `sent`, `raised` or `finish`; the first ending counts, later ones are ignored.
    """

    __slots__ = ()

    def dispatching(self) -> None:
        """The request to Twilio is about to go: an error from here on may have reached it."""

    def sent(self) -> None:
        """Twilio accepted the send."""

    def raised(self, exc: BaseException) -> None:
        """The send ended with ``exc``: its outcome follows from its type (`outcome_of`)."""

    def finish(self, outcome: str, exc: BaseException | None = None) -> None:
        """End with ``outcome``; ``exc`` gives ``error.type`` and Twilio's error code."""


_NO_SEND: Final = SendTelemetry()


class _LiveSend(SendTelemetry):
    __slots__ = ("_channel", "_dispatched", "_done", "_otel", "_span", "_started")

    def __init__(self, otel: Instruments, channel: str, communication_id: str, parent: Any) -> None:
        self._otel = otel
        self._channel = channel
        self._dispatched = False
        self._done = False
        self._started = time.perf_counter()
        attributes = {"servio_twilio.channel": channel}
        if communication_id:
            attributes["servio_twilio.communication_id"] = communication_id
        self._span = otel.start("servio_twilio.send", attributes, parent)

    def dispatching(self) -> None:
        self._dispatched = True

    def sent(self) -> None:
        self.finish(SENT)

    def raised(self, exc: BaseException) -> None:
        self.finish(outcome_of(exc, dispatched=self._dispatched), exc)

    def finish(self, outcome: str, exc: BaseException | None = None) -> None:
        if self._done:
            return
        self._done = True
        elapsed = time.perf_counter() - self._started
        span, otel = self._span, self._otel
        span.set_attribute("servio_twilio.outcome", outcome)
        if exc is not None:
            span.set_attribute("error.type", type(exc).__name__)
            code = getattr(exc, "code", None) if isinstance(exc, TwilioAPIError) else None
            if isinstance(code, int):
                span.set_attribute("servio_twilio.error_code", code)
        if outcome != SENT:
            span.set_status(otel.error)
        span.end()
        labels = {"channel": self._channel, "outcome": outcome}
        otel.sends.add(1, labels)
        otel.duration.record(elapsed, labels)


def start_send(channel: str, communication_id: str) -> SendTelemetry:
    """Start a send's span (a child of the caller's current span) and its clock.

    New in 0.2.0.
    """
    otel = instruments()
    if otel is None:
        return _NO_SEND
    return _LiveSend(otel, str(channel), communication_id, None)


# -- batches --------------------------------------------------------------------------------


class BatchTelemetry:
    """A batch's span and its items' `SendTelemetry`, by communication id; records nothing here.

    Item methods are safe from the batch's worker threads or tasks.
    """

    __slots__ = ()

    def item(self, channel: str, communication_id: str) -> SendTelemetry:
        """Start an item's send span, a child of the batch's span."""
        return _NO_SEND

    def finish_item(self, communication_id: str, outcome: str, exc: BaseException | None) -> None:
        """End an item with ``outcome`` (see `SendTelemetry.finish`)."""

    def answered(self, communication_id: str, failure: BaseException | None) -> None:
        """End an item by Twilio's answer: sent, or what ``failure`` says."""

    def finish(self, *, succeeded: int, failed: int) -> None:
        """End the batch with its report's counts."""

    def raised(self, exc: BaseException) -> None:
        """End the batch interrupted by ``exc``, and its unfinished items (not sent: ``failed``)."""


_NO_BATCH: Final = BatchTelemetry()


class _LiveBatch(BatchTelemetry):
    __slots__ = ("_items", "_otel", "_span")

    def __init__(self, otel: Instruments, size: int) -> None:
        self._otel = otel
        self._items: dict[str, SendTelemetry] = {}
        self._span = otel.start("servio_twilio.batch", {"servio_twilio.batch.size": size})

    def item(self, channel: str, communication_id: str) -> SendTelemetry:
        observed = _LiveSend(self._otel, str(channel), communication_id, self._span)
        self._items[communication_id] = observed
        return observed

    def finish_item(self, communication_id: str, outcome: str, exc: BaseException | None) -> None:
        observed = self._items.pop(communication_id, None)
        if observed is not None:
            observed.finish(outcome, exc)

    def answered(self, communication_id: str, failure: BaseException | None) -> None:
        if failure is None:
            self.finish_item(communication_id, SENT, None)
        else:
            self.finish_item(communication_id, outcome_of(failure, dispatched=True), failure)

    def finish(self, *, succeeded: int, failed: int) -> None:
        for communication_id in list(self._items):  # none, unless a rule forgot one
            self.finish_item(communication_id, UNKNOWN, None)
        self._span.set_attribute("servio_twilio.batch.succeeded", succeeded)
        self._span.set_attribute("servio_twilio.batch.failed", failed)
        self._span.end()

    def raised(self, exc: BaseException) -> None:
        for communication_id in list(self._items):
            observed = self._items.pop(communication_id, None)
            if observed is not None:
                observed.raised(exc)
        self._span.set_attribute("error.type", type(exc).__name__)
        self._span.set_status(self._otel.error)
        self._span.end()


def start_batch(size: int) -> BatchTelemetry:
    """Start a batch's span, a child of the caller's current span.

    New in 0.2.0.
    """
    otel = instruments()
    return _NO_BATCH if otel is None else _LiveBatch(otel, size)


# -- webhook requests -----------------------------------------------------------------------


class CallbackTelemetry:
    """A webhook request's span, current inside ``with``; this base class records nothing."""

    __slots__ = ()

    def __enter__(self) -> CallbackTelemetry:
        return self

    def __exit__(self, kind: object, exc: BaseException | None, traceback: object) -> None:
        return None

    def answered(self, status: int) -> None:
        """The app answers with HTTP ``status``."""


_NO_CALLBACK: Final = CallbackTelemetry()


class _LiveCallback(CallbackTelemetry):
    __slots__ = ("_otel", "_route", "_span", "_status", "_token")

    def __init__(self, otel: Instruments, route: str) -> None:
        self._otel = otel
        self._route = route
        self._status: int | None = None
        self._span = otel.start("servio_twilio.callback", {"servio_twilio.route": route})
        self._token: Any = None

    def __enter__(self) -> CallbackTelemetry:
        span = self._span
        if span.is_recording():  # a span that records nothing would only hide its parent
            self._token = self._otel.context.attach(self._otel.trace.set_span_in_context(span))
        return self

    def __exit__(self, kind: object, exc: BaseException | None, traceback: object) -> None:
        if self._token is not None:
            self._otel.context.detach(self._token)
        span = self._span
        status = self._status
        if isinstance(exc, Exception) and status is None:
            status = 500  # the server answers an app that raised with 500
        if exc is not None:
            span.set_attribute("error.type", type(exc).__name__)
        if status is not None:
            span.set_attribute("http.status_code", status)
            self._otel.callbacks.add(1, {"route": self._route, "http.status_code": status})
            if status >= 500:
                span.set_status(self._otel.error)
        span.end()

    def answered(self, status: int) -> None:
        self._status = status


def callback_span(route: str | None) -> CallbackTelemetry:
    """A webhook request's telemetry, for ``with``: ``route`` is its route name (None: unknown).

    New in 0.2.0.
    """
    otel = instruments()
    return _NO_CALLBACK if otel is None else _LiveCallback(otel, route or OTHER_ROUTE)


def signature_failed(route: str | None) -> None:
    """Count a webhook request refused for its signature (``route``: its route name).

    New in 0.2.0.
    """
    otel = instruments()
    if otel is not None:
        otel.signature_failures.add(1, {"route": route or OTHER_ROUTE})


# -- reconcile ------------------------------------------------------------------------------


class ReconcileTelemetry:
    """A reconcile run's span, for ``with`` (never made current); this base records nothing."""

    __slots__ = ()

    def __enter__(self) -> ReconcileTelemetry:
        return self

    def __exit__(self, kind: object, exc: BaseException | None, traceback: object) -> None:
        return None

    def record(
        self, *, examined: int, settled: int, still_open: int, not_sent: int, failed: int
    ) -> None:
        """The run's counts (a `ReconcileReport`'s, ``failed`` as a number).

        Sets the ``servio_twilio.records.open`` gauge to ``still_open + failed``:
        the records the run left open.
        """
        set_open_records(still_open + failed)


_NO_RECONCILE: Final = ReconcileTelemetry()


class _LiveReconcile(ReconcileTelemetry):
    __slots__ = ("_otel", "_span")

    def __init__(self, otel: Instruments) -> None:
        self._otel = otel
        self._span = otel.start("servio_twilio.reconcile", {})

    def __exit__(self, kind: object, exc: BaseException | None, traceback: object) -> None:
        if exc is not None:
            self._span.set_attribute("error.type", type(exc).__name__)
            self._span.set_status(self._otel.error)
        self._span.end()

    def record(
        self, *, examined: int, settled: int, still_open: int, not_sent: int, failed: int
    ) -> None:
        super().record(
            examined=examined,
            settled=settled,
            still_open=still_open,
            not_sent=not_sent,
            failed=failed,
        )
        counts = {
            "examined": examined,
            "settled": settled,
            "still_open": still_open,
            "not_sent": not_sent,
            "failed": failed,
        }
        for name, count in counts.items():
            self._span.set_attribute(f"servio_twilio.reconcile.{name}", count)


def reconcile_span() -> ReconcileTelemetry:
    """A reconcile run's telemetry: ``with reconcile_span() as span: ... span.record(...)``.

    Safe across a generator's ``yield``: the span is never made current.

    New in 0.2.0.
    """
    otel = instruments()
    return _NO_RECONCILE if otel is None else _LiveReconcile(otel)
