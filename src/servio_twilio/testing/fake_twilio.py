"""`FakeTwilio`: an offline Twilio for tests, plugged in at twilio's HTTP seams.

Pass it as ``http_client=`` to `CommunicationsClient` (or to
``twilio.rest.Client``), and ``fake.aio`` to the async client (or to
``twilio.rest.Client`` for its ``*_async`` methods). It answers the 2010 API
routes the library uses as Twilio does, keeps the messages and calls it
accepted (fetchable and listable, moved on with `FakeTwilio.set_status`),
records every request, and injects faults; both seams share one state:

```python
fake = FakeTwilio()
fake.fail_number("+5511988887777", FakeTwilio.Fault.error(code=21211, status=400))
fake.fail_next(1, FakeTwilio.Fault.rate_limited(retry_after=2))
```
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

from twilio.http import AsyncHttpClient, HttpClient  # type: ignore[import-untyped]

from servio_twilio.domain.errors import InvalidArgument
from servio_twilio.testing.faults import Fault, check_fault, connection_refused, fault_answer
from servio_twilio.testing.request_log import RecordedRequest, recorded_request
from servio_twilio.testing.twilio_answers import (
    answer,
    bare_number,
    read_form,
)
from servio_twilio.testing.twilio_resources import ResourceKind, TwilioStore

__all__ = ["AsyncFakeTwilio", "FakeTwilio", "Fault", "RecordedRequest"]

_log = logging.getLogger("servio_twilio.testing.fake_twilio")

_Fault = Fault  # FakeTwilio.Fault shadows the name inside the class


class FakeTwilio(HttpClient):  # type: ignore[misc]
    """A ``twilio.http.HttpClient`` that answers like Twilio's 2010 API, offline.

    Answers Messages and Calls (create, fetch, list filtered by ``To``,
    ``From`` and the day sent or started, paged), Recordings (the account's,
    by ``CallSid``, and a call's), Accounts (fetch) and IncomingPhoneNumbers
    (list, paged, with the ``PhoneNumber`` filter) with JSON shaped like
    Twilio's: unique 34-character SIDs (``SM...``, ``CA...``), what was sent
    echoed back, status ``queued`` (``accepted`` with a
    ``MessagingServiceSid``). Twilio's own validation of required fields is
    mimicked (e.g. 21604 without ``To``, 21211 for a malformed ``To``);
    unknown routes and SIDs get 404. Anything else is accepted.

    Every message and call accepted is kept (also when a read timeout loses
    its answer: the request reached Twilio), with its ``date_sent`` or
    ``start_time`` set to its creation, taken from ``clock`` (default: now,
    UTC); `set_status` and `add_recording` do what Twilio's side would as it
    progresses, `resource` and `resources` show what is kept (new in 0.2.0).

    `aio` is the same fake at twilio's async seam (a ``twilio.http.AsyncHttpClient``):
    one request log, one set of faults, one ``in_flight`` count for both.

    ``latency`` seconds are slept inside each request (awaited on `aio`), so
    concurrency is observable in ``peak_in_flight``. ``account_status`` is what the account
    fetch answers; ``owned_numbers`` the account's incoming numbers (None:
    every number asked for by ``PhoneNumber`` is owned, and a list without
    that filter holds Twilio's test number ``+15005550006``). All state is
    guarded by a lock.

    Raises:
        InvalidArgument: (a ``ValueError``) a negative ``latency``; from
            `fail_next` and `fail_number`, a count below 1.

    New in 0.1.0.
    """

    Fault: ClassVar[type[Fault]] = Fault

    def __init__(
        self,
        *,
        latency: float = 0.0,
        account_status: str = "active",
        owned_numbers: Iterable[str] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if not isinstance(latency, int | float) or isinstance(latency, bool) or latency < 0:
            raise InvalidArgument(f"latency must be a number of seconds >= 0, got {latency!r}")
        super().__init__(_log, False, None)
        self.latency = float(latency)
        self.account_status = account_status
        self.owned_numbers: set[str] | None = None if owned_numbers is None else set(owned_numbers)
        self.clock = clock or _utc_now
        self._lock = threading.Lock()
        self._store = TwilioStore()
        self._requests: list[RecordedRequest] = []
        self._next_faults: list[_Fault] = []
        self._number_faults: dict[str, tuple[_Fault, int | None]] = {}
        self._in_flight = 0
        self.peak_in_flight = 0
        self.connect_failures = 0
        self._aio = AsyncFakeTwilio(self)

    def __repr__(self) -> str:
        return f"<FakeTwilio requests={len(self._requests)} latency={self.latency:g}>"

    @property
    def aio(self) -> AsyncFakeTwilio:
        """This fake at twilio's async seam: pass it where a ``twilio.http.AsyncHttpClient`` goes.

        Always the same object; it shares everything with this one.

        New in 0.2.0.
        """
        return self._aio

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every request received, in order (connect failures excluded)."""
        with self._lock:
            return list(self._requests)

    @property
    def in_flight(self) -> int:
        """How many requests are being answered right now, through either seam."""
        with self._lock:
            return self._in_flight

    def fail_number(self, number: str, fault: _Fault, *, times: int | None = None) -> None:
        """Inject ``fault`` into requests whose ``To`` is ``number`` (``whatsapp:`` ignored).

        ``times``: how many such requests fail (None: all of them).
        """
        check_fault(fault)
        if times is not None and times < 1:
            raise InvalidArgument("times must be >= 1 or None")
        with self._lock:
            self._number_faults[bare_number(number)] = (fault, times)

    def fail_next(self, n: int, fault: _Fault) -> None:
        """Inject ``fault`` into the next ``n`` requests, whatever they are."""
        check_fault(fault)
        if n < 1:
            raise InvalidArgument("n must be >= 1")
        with self._lock:
            self._next_faults.extend([fault] * n)

    def resource(self, sid: str) -> dict[str, Any] | None:
        """A copy of the message, call or recording ``sid`` as Twilio's JSON; None if not kept.

        New in 0.2.0.
        """
        with self._lock:
            return self._store.get(sid)

    def resources(self, kind: ResourceKind | None = None) -> list[dict[str, Any]]:
        """Copies of the resources kept, oldest first: ``"message"``, ``"call"``, ``"recording"``.

        None: all of them. New in 0.2.0.
        """
        with self._lock:
            return self._store.of_kind(kind)

    def set_status(
        self,
        sid: str,
        status: str,
        *,
        price: str | None = None,
        price_unit: str | None = None,
        num_segments: int | str | None = None,
        duration: int | str | None = None,
        error_code: int | None = None,
        error_message: str | None = None,
    ) -> None:
        """Move the message or call ``sid`` to ``status``, as Twilio's side would.

        The fields given are set as Twilio writes them (``price`` a decimal
        string such as ``"-0.0075"``; ``num_segments`` and ``duration`` as
        strings); None leaves a field as it is. Messages take
        ``num_segments``, ``error_code`` and ``error_message``; calls take
        ``duration``, and get their ``end_time`` on a final status.

        Raises:
            InvalidArgument: no message or call has that SID, or a field its
                kind does not have.

        New in 0.2.0.
        """
        changes = {
            "price": price,
            "price_unit": price_unit,
            "num_segments": num_segments,
            "duration": duration,
            "error_code": error_code,
            "error_message": error_message,
        }
        now = self._now()
        with self._lock:
            self._store.set_status(sid, status, now, changes)

    def add_recording(self, call_sid: str, *, duration: int = 7) -> str:
        """Give the call ``call_sid`` a completed recording of ``duration`` seconds; its RE SID.

        Raises:
            InvalidArgument: no call has that SID.

        New in 0.2.0.
        """
        now = self._now()
        with self._lock:
            return self._store.add_recording(call_sid, duration, now)

    def forget(self, sid: str) -> None:
        """Drop the resource ``sid``: Twilio has no such resource any more (fetches get 404).

        Raises:
            InvalidArgument: no resource has that SID.

        New in 0.2.0.
        """
        with self._lock:
            self._store.forget(sid)

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        with self._lock:
            self._next_faults.clear()
            self._number_faults.clear()

    def reset(self) -> None:
        """Forget requests, faults and every resource kept, and reset the counters."""
        with self._lock:
            self._store.clear()
            self._requests.clear()
            self._next_faults.clear()
            self._number_faults.clear()
            self.peak_in_flight = 0
            self.connect_failures = 0

    def request(  # noqa: PLR0917 - twilio's HttpClient.request signature
        self,
        method: str,
        url: str,
        params: Mapping[str, object] | None = None,
        data: Mapping[str, object] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Any:
        """Answer one request as Twilio would, or fail as a fault says."""
        recorded, fault = self._receive(
            method, url, params, data, headers, auth, timeout, is_async=False
        )
        try:
            if self.latency:
                time.sleep(self.latency)
            return self._respond(recorded, fault, auth)
        finally:
            self._leave()

    def _receive(  # noqa: PLR0917 - the request's parts, as given
        self,
        method: str,
        url: str,
        params: Mapping[str, object] | None,
        data: Mapping[str, object] | None,
        headers: Mapping[str, str] | None,
        auth: tuple[str, str] | None,
        timeout: float | None,
        *,
        is_async: bool,
    ) -> tuple[RecordedRequest, _Fault | None]:
        """Take the fault for this request and record it as in flight; or refuse to connect."""
        form = read_form(data)
        fault = self._take_fault(form)
        if fault is not None and fault.kind == "connect_error":
            with self._lock:
                self.connect_failures += 1
            raise connection_refused(url, is_async=is_async)
        recorded = recorded_request(
            method,
            url,
            params=params,
            form=form,
            headers=headers,
            auth=auth,
            timeout=timeout,
            is_async=is_async,
        )
        with self._lock:
            self._requests.append(recorded)
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
        return recorded, fault

    def _respond(
        self, recorded: RecordedRequest, fault: _Fault | None, auth: tuple[str, str] | None
    ) -> Any:
        if fault is not None and fault.kind != "read_timeout":
            return fault_answer(fault, recorded.url, is_async=recorded.is_async)
        now = self._now()
        with self._lock:
            response = answer(
                recorded.method,
                recorded.path,
                form=recorded.data,
                params=recorded.params,
                authenticated=bool(auth),
                account_status=self.account_status,
                owned_numbers=self.owned_numbers,
                store=self._store,
                now=now,
            )
        if fault is not None:
            # Twilio acted on the request (a create is kept); only its answer is lost.
            return fault_answer(fault, recorded.url, is_async=recorded.is_async)
        return response

    def _now(self) -> datetime:
        moment = self.clock()
        return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)

    def _leave(self) -> None:
        with self._lock:
            self._in_flight -= 1

    def _take_fault(self, form: Mapping[str, str | list[str]]) -> _Fault | None:
        with self._lock:
            if self._next_faults:
                return self._next_faults.pop(0)
            to = form.get("To")
            if not isinstance(to, str):
                return None
            number = bare_number(to)
            entry = self._number_faults.get(number)
            if entry is None:
                return None
            fault, times = entry
            if times is not None:
                if times <= 1:
                    del self._number_faults[number]
                else:
                    self._number_faults[number] = (fault, times - 1)
            return fault


def _utc_now() -> datetime:
    return datetime.now(UTC)


class AsyncFakeTwilio(AsyncHttpClient):  # type: ignore[misc]
    """`FakeTwilio` at twilio's async seam; get it as ``fake.aio``, never build it.

    Answers, records and fails exactly as its `FakeTwilio`, sharing its
    request log, faults, counters and ``latency`` (awaited with
    ``asyncio.sleep``). Its faults raise what aiohttp raises: see `Fault`.
    ``aclose()`` does nothing (there is no session to close).

    New in 0.2.0.
    """

    def __init__(self, fake: FakeTwilio) -> None:
        super().__init__(_log, True, None)
        self.fake = fake

    def __repr__(self) -> str:
        return f"<FakeTwilio.aio of {self.fake!r}>"

    async def request(  # noqa: PLR0917 - twilio's AsyncHttpClient.request signature
        self,
        method: str,
        url: str,
        params: Mapping[str, object] | None = None,
        data: Mapping[str, object] | None = None,
        headers: Mapping[str, str] | None = None,
        auth: tuple[str, str] | None = None,
        timeout: float | None = None,
        allow_redirects: bool = False,
    ) -> Any:
        """Answer one request as Twilio would, or fail as a fault says."""
        fake = self.fake
        recorded, fault = fake._receive(
            method, url, params, data, headers, auth, timeout, is_async=True
        )
        try:
            if fake.latency:
                await asyncio.sleep(fake.latency)
            return fake._respond(recorded, fault, auth)
        finally:
            fake._leave()

    async def aclose(self) -> None:
        """Nothing to close; here so code that closes its HTTP client can."""
