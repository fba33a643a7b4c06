"""The OpenTelemetry binding: imported on first use, from the global or the given providers.

Nothing of OpenTelemetry is imported with the package: `instruments` tries
``import opentelemetry`` at the first instrumented operation, once. When that
fails, it answers None from then on (a no-op, forever). When it works, spans
go to the global tracer provider and metrics to the global meter provider
(OpenTelemetry's own no-ops until the host installs an SDK), or to the
providers given to `configure_telemetry`. `servio_twilio.domain.telemetry`
says what each operation emits.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Final

from servio_twilio.domain.errors import ConfigurationError

if TYPE_CHECKING:
    from opentelemetry.metrics import MeterProvider
    from opentelemetry.trace import TracerProvider

__all__ = ["Instruments", "configure_telemetry", "instruments", "set_open_records"]

_SCOPE: Final = "servio_twilio"


class _State:
    """What the module knows: one instance, read on every instrumented operation."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.otel: Instruments | None = None
        self.absent = False  # opentelemetry is not importable: a no-op, forever
        self.providers: tuple[Any, Any] = (None, None)
        self.open_records: int | None = None  # the records.open gauge: the last reconcile's


_state: Final = _State()


def configure_telemetry(
    *, tracer_provider: TracerProvider | None = None, meter_provider: MeterProvider | None = None
) -> None:
    """Send servio-twilio's spans and metrics to these providers instead of the global ones.

    For hosts that keep their OpenTelemetry providers out of the globals
    (``opentelemetry.trace.set_tracer_provider`` may be called once per
    process), and for tests. ``None`` means OpenTelemetry's global provider;
    ``configure_telemetry()`` goes back to both. Without ``opentelemetry-api``
    installed, telemetry stays off and a provider given raises.

    Raises:
        TypeError: ``tracer_provider`` has no ``get_tracer``, ``meter_provider`` no
            ``get_meter``.
        ConfigurationError: a provider was given and ``opentelemetry`` cannot be imported.

    New in 0.2.0.
    """
    for provider, method in ((tracer_provider, "get_tracer"), (meter_provider, "get_meter")):
        if provider is not None and not callable(getattr(provider, method, None)):
            raise TypeError(f"a provider with {method}() was expected, not {provider!r}")
    with _state.lock:
        _state.providers = (tracer_provider, meter_provider)
        _state.otel = None
        _state.open_records = None
        if _build() is None and (tracer_provider is not None or meter_provider is not None):
            _state.providers = (None, None)
            raise ConfigurationError(
                "telemetry needs opentelemetry-api: pip install 'servio-twilio[otel]'"
            )


def instruments() -> Instruments | None:
    """The tracer and instruments, built on first use; None without OpenTelemetry."""
    otel = _state.otel
    if otel is not None or _state.absent:
        return otel
    with _state.lock:
        return _state.otel if _state.otel is not None else _build()


def _build() -> Instruments | None:
    """Import OpenTelemetry and build the instruments (under the lock); None when absent."""
    try:
        from opentelemetry import context, metrics, trace  # noqa: PLC0415 - loaded on first use
    except ImportError:
        _state.absent = True
        return None
    _state.absent = False
    tracer_provider, meter_provider = _state.providers
    if tracer_provider is None:
        tracer_provider = trace.get_tracer_provider()
    if meter_provider is None:
        meter_provider = metrics.get_meter_provider()
    version = _version()
    _state.otel = otel = Instruments(
        trace=trace,
        context=context,
        tracer=tracer_provider.get_tracer(_SCOPE, version),
        meter=meter_provider.get_meter(_SCOPE, version),
        observation=metrics.Observation,
    )
    return otel


def _version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version  # noqa: PLC0415

    try:
        return version("servio-twilio")
    except PackageNotFoundError:
        return None


class Instruments:
    """The tracer and the instruments, built from the chosen providers."""

    def __init__(
        self, *, trace: Any, context: Any, tracer: Any, meter: Any, observation: Any
    ) -> None:
        self.trace = trace
        self.context = context
        self.tracer = tracer
        self.error = trace.Status(trace.StatusCode.ERROR)
        self.sends = meter.create_counter(
            "servio_twilio.sends", unit="{send}", description="Sends and batch items, by outcome"
        )
        self.duration = meter.create_histogram(
            "servio_twilio.send.duration", unit="s", description="Time to a send's outcome"
        )
        self.callbacks = meter.create_counter(
            "servio_twilio.callbacks", unit="{request}", description="Webhook requests answered"
        )
        self.signature_failures = meter.create_counter(
            "servio_twilio.signature_failures",
            unit="{request}",
            description="Webhook requests refused for their Twilio signature",
        )

        def observe_open(_options: Any) -> list[Any]:
            found = _state.open_records
            return [] if found is None else [observation(found)]

        meter.create_observable_gauge(
            "servio_twilio.records.open",
            callbacks=[observe_open],
            unit="{record}",
            description="Records the last reconcile left open (still open at Twilio or unchecked)",
        )

    def start(self, name: str, attributes: dict[str, Any], parent: Any = None) -> Any:
        context = None if parent is None else self.trace.set_span_in_context(parent)
        return self.tracer.start_span(name, context=context, attributes=attributes)


def set_open_records(count: int) -> None:
    """What the ``servio_twilio.records.open`` gauge reports from now on."""
    _state.open_records = count
