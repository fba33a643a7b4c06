"""`FakeTwilio`: an offline Twilio for tests, plugged in at twilio's HTTP seams.

Pass it as ``http_client=`` to `CommunicationsClient` (or to
``twilio.rest.Client``), and ``fake.aio`` to the async client (or to
``twilio.rest.Client`` for its ``*_async`` methods). It answers the four
2010 API routes the library uses as Twilio does, records every request, and
injects faults; both seams share one state:

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
from collections.abc import Iterable, Mapping
from typing import Any, ClassVar
from urllib.parse import parse_qsl, urlsplit

import attrs
from twilio.http import AsyncHttpClient, HttpClient  # type: ignore[import-untyped]

from servio_twilio.domain.errors import InvalidArgument
from servio_twilio.testing.faults import Fault, check_fault, connection_refused, fault_answer
from servio_twilio.testing.twilio_answers import (
    answer,
    bare_number,
    read_form,
)

__all__ = ["AsyncFakeTwilio", "FakeTwilio", "Fault", "RecordedRequest"]

_log = logging.getLogger("servio_twilio.testing.fake_twilio")

_Fault = Fault  # FakeTwilio.Fault shadows the name inside the class


@attrs.frozen(kw_only=True)
class RecordedRequest:
    """One request `FakeTwilio` received.

    ``data`` is the form as Twilio reads it: one value as a string, a
    repeated key as a list of strings. ``username`` is the Basic auth user
    (the account SID or the API key SID); the password is not kept.
    ``params`` holds the query parameters, given apart or in ``url`` (a next
    page's URL carries them); ``url`` is as given. ``is_async`` tells the
    seam it came through (True: ``fake.aio``; new in 0.2.0).

    New in 0.1.0.
    """

    method: str
    url: str
    path: str
    params: dict[str, Any]
    data: dict[str, str | list[str]]
    headers: dict[str, str]
    username: str | None
    timeout: float | None
    is_async: bool = False


class FakeTwilio(HttpClient):  # type: ignore[misc]
    """A ``twilio.http.HttpClient`` that answers like Twilio's 2010 API, offline.

    Answers Messages (create), Calls (create), Accounts (fetch) and
    IncomingPhoneNumbers (list, paged, with the ``PhoneNumber`` filter) with JSON
    shaped like Twilio's: unique 34-character SIDs (``SM...``, ``CA...``),
    what was sent echoed back, status ``queued`` (``accepted`` with a
    ``MessagingServiceSid``). Twilio's own validation of required fields is
    mimicked (e.g. 21604 without ``To``, 21211 for a malformed ``To``);
    unknown routes get 404. Anything else is accepted.

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
    ) -> None:
        if not isinstance(latency, int | float) or isinstance(latency, bool) or latency < 0:
            raise InvalidArgument(f"latency must be a number of seconds >= 0, got {latency!r}")
        super().__init__(_log, False, None)
        self.latency = float(latency)
        self.account_status = account_status
        self.owned_numbers: set[str] | None = None if owned_numbers is None else set(owned_numbers)
        self._lock = threading.Lock()
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

    def clear_faults(self) -> None:
        """Remove every injected fault."""
        with self._lock:
            self._next_faults.clear()
            self._number_faults.clear()

    def reset(self) -> None:
        """Forget requests and faults and reset the counters."""
        with self._lock:
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
        recorded = RecordedRequest(
            method=method.upper(),
            url=url,
            path=urlsplit(url).path,
            params={**dict(parse_qsl(urlsplit(url).query)), **(params or {})},
            data=form,
            headers={k: v for k, v in (headers or {}).items() if k.lower() != "authorization"},
            username=auth[0] if auth else None,
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
        if fault is not None:
            return fault_answer(fault, recorded.url, is_async=recorded.is_async)
        with self._lock:
            owned = None if self.owned_numbers is None else set(self.owned_numbers)
        return answer(
            recorded.method,
            recorded.path,
            form=recorded.data,
            params=recorded.params,
            authenticated=bool(auth),
            account_status=self.account_status,
            owned_numbers=owned,
        )

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
