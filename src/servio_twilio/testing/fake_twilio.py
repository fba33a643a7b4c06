"""`FakeTwilio`: an offline Twilio for tests, plugged in at twilio's HTTP seam.

Pass it as ``http_client=`` to `CommunicationsClient` (or to
``twilio.rest.Client``). It answers the four 2010 API routes the library
uses as Twilio does, records every request, and injects faults:

```python
fake = FakeTwilio()
fake.fail_number("+5511988887777", FakeTwilio.Fault.error(code=21211, status=400))
fake.fail_next(1, FakeTwilio.Fault.rate_limited(retry_after=2))
```
"""

from __future__ import annotations

import json
import logging
import re
import threading
import time
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any, ClassVar, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit

import attrs
from twilio.http import HttpClient  # type: ignore[import-untyped]
from twilio.http.response import Response  # type: ignore[import-untyped]

from servio_twilio.domain.errors import InvalidArgument
from servio_twilio.domain.phone import E164_PATTERN
from servio_twilio.domain.phone_text import has_channel_prefix

__all__ = ["FakeTwilio", "Fault", "RecordedRequest"]

_log = logging.getLogger("servio_twilio.testing.fake_twilio")

_API = "/2010-04-01/Accounts"
_ROUTES = {
    "message": re.compile(r"/2010-04-01/Accounts/(?P<account>AC[0-9a-fA-F]{32})/Messages\.json"),
    "call": re.compile(r"/2010-04-01/Accounts/(?P<account>AC[0-9a-fA-F]{32})/Calls\.json"),
    "account": re.compile(r"/2010-04-01/Accounts/(?P<account>AC[0-9a-fA-F]{32})\.json"),
    "numbers": re.compile(
        r"/2010-04-01/Accounts/(?P<account>AC[0-9a-fA-F]{32})/IncomingPhoneNumbers\.json"
    ),
}
_METHODS = {"message": "POST", "call": "POST", "account": "GET", "numbers": "GET"}
_MAX_BODY = 1600
_WHATSAPP = "whatsapp:"
# What an unfiltered IncomingPhoneNumbers list holds when owned_numbers is None:
# Twilio's magic test number (the valid From of its test credentials).
_TEST_NUMBER = "+15005550006"

FaultKind = Literal["error", "rate_limited", "server_error", "read_timeout", "connect_error"]


@attrs.frozen(kw_only=True)
class Fault:
    """One failure `FakeTwilio` can inject; build it with the class methods.

    New in 0.1.0.
    """

    kind: FaultKind
    status: int = 0
    code: int | None = None
    message: str | None = None
    retry_after: float | None = None

    @classmethod
    def error(cls, code: int = 21211, status: int = 400, message: str | None = None) -> Fault:
        """Twilio refuses with its error ``code`` and HTTP ``status`` (JSON body like Twilio's)."""
        return cls(kind="error", status=status, code=code, message=message)

    @classmethod
    def rate_limited(cls, retry_after: float | None = 1.0) -> Fault:
        """A 429 with code 20429 and, unless None, a ``Retry-After`` header (seconds)."""
        return cls(kind="rate_limited", status=429, code=20429, retry_after=retry_after)

    @classmethod
    def server_error(cls, status: int = 500, code: int = 20500) -> Fault:
        """A 5xx answer from Twilio."""
        return cls(kind="server_error", status=status, code=code)

    @classmethod
    def read_timeout(cls) -> Fault:
        """``requests.exceptions.ReadTimeout``, raised after the request is recorded."""
        return cls(kind="read_timeout")

    @classmethod
    def connect_error(cls) -> Fault:
        """``requests.exceptions.ConnectionError`` (connection refused), raised before the
        request is received: it is not recorded in ``requests``."""
        return cls(kind="connect_error")


_Fault = Fault  # FakeTwilio.Fault shadows the name inside the class


@attrs.frozen(kw_only=True)
class RecordedRequest:
    """One request `FakeTwilio` received.

    ``data`` is the form as Twilio reads it: one value as a string, a
    repeated key as a list of strings. ``username`` is the Basic auth user
    (the account SID or the API key SID); the password is not kept.
    ``params`` holds the query parameters, given apart or in ``url`` (a next
    page's URL carries them); ``url`` is as given.

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


class FakeTwilio(HttpClient):  # type: ignore[misc]
    """A ``twilio.http.HttpClient`` that answers like Twilio's 2010 API, offline.

    Answers Messages (create), Calls (create), Accounts (fetch) and
    IncomingPhoneNumbers (list, paged, with the ``PhoneNumber`` filter) with JSON
    shaped like Twilio's: unique 34-character SIDs (``SM...``, ``CA...``),
    what was sent echoed back, status ``queued`` (``accepted`` with a
    ``MessagingServiceSid``). Twilio's own validation of required fields is
    mimicked (e.g. 21604 without ``To``, 21211 for a malformed ``To``);
    unknown routes get 404. Anything else is accepted.

    ``latency`` seconds are slept inside each request, so concurrency is
    observable in ``peak_in_flight``. ``account_status`` is what the account
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

    def __repr__(self) -> str:
        return f"<FakeTwilio requests={len(self._requests)} latency={self.latency:g}>"

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of every request received, in order (connect failures excluded)."""
        with self._lock:
            return list(self._requests)

    @property
    def in_flight(self) -> int:
        """How many requests are being answered right now."""
        with self._lock:
            return self._in_flight

    def fail_number(self, number: str, fault: _Fault, *, times: int | None = None) -> None:
        """Inject ``fault`` into requests whose ``To`` is ``number`` (``whatsapp:`` ignored).

        ``times``: how many such requests fail (None: all of them).
        """
        _check_fault(fault)
        if times is not None and times < 1:
            raise InvalidArgument("times must be >= 1 or None")
        with self._lock:
            self._number_faults[_bare(number)] = (fault, times)

    def fail_next(self, n: int, fault: _Fault) -> None:
        """Inject ``fault`` into the next ``n`` requests, whatever they are."""
        _check_fault(fault)
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
        form = _form(data)
        fault = self._take_fault(form)
        if fault is not None and fault.kind == "connect_error":
            with self._lock:
                self.connect_failures += 1
            raise _connection_refused(url)
        recorded = RecordedRequest(
            method=method.upper(),
            url=url,
            path=urlsplit(url).path,
            params={**dict(parse_qsl(urlsplit(url).query)), **(params or {})},
            data=form,
            headers={k: v for k, v in (headers or {}).items() if k.lower() != "authorization"},
            username=auth[0] if auth else None,
            timeout=timeout,
        )
        with self._lock:
            self._requests.append(recorded)
            self._in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self._in_flight)
        try:
            if self.latency:
                time.sleep(self.latency)
            if fault is not None:
                return _fault_response(fault, url)
            return self._answer(recorded, auth)
        finally:
            with self._lock:
                self._in_flight -= 1

    def _take_fault(self, form: Mapping[str, str | list[str]]) -> _Fault | None:
        with self._lock:
            if self._next_faults:
                return self._next_faults.pop(0)
            to = form.get("To")
            if not isinstance(to, str):
                return None
            number = _bare(to)
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

    def _answer(self, req: RecordedRequest, auth: tuple[str, str] | None) -> Any:  # noqa: PLR0911
        route, account = _route(req.path)
        if route is None or account is None:
            return _error(404, 20404, f"The requested resource {req.path} was not found")
        if req.method != _METHODS[route]:
            return _error(405, 20004, "Method not allowed")
        if not auth:
            return _error(401, 20003, "Authenticate")
        if route == "message":
            return _create_message(account, req.data)
        if route == "call":
            return _create_call(account, req.data)
        if route == "account":
            return _json(200, self._account(account))
        return _json(200, self._numbers(account, req.params))

    def _account(self, account: str) -> dict[str, Any]:
        now = _now()
        return {
            "sid": account,
            "owner_account_sid": account,
            "friendly_name": "FakeTwilio account",
            "status": self.account_status,
            "type": "Full",
            "date_created": now,
            "date_updated": now,
            "uri": f"{_API}/{account}.json",
            "subresource_uris": {"messages": f"{_API}/{account}/Messages.json"},
        }

    def _numbers(self, account: str, params: Mapping[str, Any]) -> dict[str, Any]:
        raw = params.get("PhoneNumber")
        wanted = raw if isinstance(raw, str) else ""
        with self._lock:
            owned = None if self.owned_numbers is None else sorted(self.owned_numbers)
        if owned is None and wanted:
            owned = [wanted] if E164_PATTERN.fullmatch(wanted) else []
        elif owned is None:
            owned = [_TEST_NUMBER]
        if wanted:
            pattern = re.compile(re.escape(wanted).replace(r"\*", "[0-9]"))
            owned = [n for n in owned if pattern.search(n)]
        page_size = int(params.get("PageSize") or 50)
        page = int(params.get("Page") or 0)
        start = page * page_size
        items = [_number_resource(account, n) for n in owned[start : start + page_size]]
        kept = {k: v for k, v in params.items() if k not in {"Page", "PageSize", "PageToken"}}

        def page_uri(number: int) -> str:
            query = {**kept, "PageSize": page_size, "Page": number}
            if number:
                query["PageToken"] = f"PT{number}"
            return f"{_API}/{account}/IncomingPhoneNumbers.json?" + urlencode(query)

        return {
            "incoming_phone_numbers": items,
            "end": start + max(len(items) - 1, 0),
            "first_page_uri": page_uri(0),
            "next_page_uri": page_uri(page + 1) if start + page_size < len(owned) else None,
            "page": page,
            "page_size": page_size,
            "previous_page_uri": page_uri(page - 1) if page else None,
            "start": start,
            "uri": page_uri(page),
        }


def _check_fault(fault: object) -> None:
    if not isinstance(fault, Fault):
        raise TypeError(f"expected a Fault (FakeTwilio.Fault.error(...)), got {fault!r}")


def _bare(number: str) -> str:
    text = number.strip()
    return text[len(_WHATSAPP) :] if has_channel_prefix(text) else text


def _form(data: Mapping[str, object] | None) -> dict[str, str | list[str]]:
    form: dict[str, str | list[str]] = {}
    for key, value in (data or {}).items():
        if value is None:
            continue
        if isinstance(value, list | tuple):
            values = [_text(v) for v in value if v is not None]
            if len(values) == 1:
                form[key] = values[0]
            elif values:
                form[key] = values
        else:
            form[key] = _text(value)
    return form


def _text(value: object) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _route(path: str) -> tuple[str | None, str | None]:
    for name, pattern in _ROUTES.items():
        match = pattern.fullmatch(path)
        if match:
            return name, match["account"]
    return None, None


def _now() -> str:
    return format_datetime(datetime.now(UTC))


def _sid(prefix: str) -> str:
    return prefix + uuid.uuid4().hex


def _json(status: int, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None) -> Any:
    merged = {"Content-Type": "application/json"}
    merged.update(headers or {})
    return Response(status, json.dumps(payload), merged)


def _error(status: int, code: int, message: str, headers: Mapping[str, str] | None = None) -> Any:
    payload = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return _json(status, payload, headers)


def _fault_response(fault: Fault, url: str) -> Any:
    if fault.kind == "read_timeout":
        import requests  # noqa: PLC0415

        raise requests.exceptions.ReadTimeout(
            f"HTTPSConnectionPool(host='api.twilio.com', port=443): Read timed out. ({url})"
        )
    if fault.kind == "rate_limited":
        headers = {} if fault.retry_after is None else {"Retry-After": f"{fault.retry_after:g}"}
        return _error(429, fault.code or 20429, fault.message or "Too Many Requests", headers)
    if fault.kind == "server_error":
        return _error(fault.status, fault.code or 20500, fault.message or "Internal Server Error")
    return _error(fault.status, fault.code or 0, fault.message or f"Twilio error {fault.code}")


def _connection_refused(url: str) -> Exception:
    import requests  # noqa: PLC0415
    from urllib3.exceptions import MaxRetryError, NewConnectionError  # noqa: PLC0415

    refused = "Failed to establish a new connection: [Errno 111] Connection refused"
    reason = NewConnectionError(None, refused)  # type: ignore[arg-type]
    return requests.exceptions.ConnectionError(
        MaxRetryError(None, url, reason)  # type: ignore[arg-type]
    )


def _create_message(account: str, form: Mapping[str, str | list[str]]) -> Any:
    to = form.get("To")
    sender = form.get("From")
    service = form.get("MessagingServiceSid")
    body = form.get("Body")
    media = form.get("MediaUrl")
    media_list = [media] if isinstance(media, str) else list(media or [])
    if not isinstance(to, str) or not to:
        return _error(400, 21604, "A 'To' phone number is required.")
    if not E164_PATTERN.fullmatch(_bare(to)):
        return _error(400, 21211, f"Invalid 'To' Phone Number: {to}")
    if not sender and not service:
        return _error(400, 21603, "A 'From' phone number is required.")
    if not body and not media_list and not form.get("ContentSid"):
        return _error(400, 21602, "Message body is required.")
    if isinstance(body, str) and len(body) > _MAX_BODY:
        return _error(400, 21617, "The concatenated message body exceeds the 1600 character limit.")
    sid = _sid("SM")
    now = _now()
    payload = {
        "account_sid": account,
        "api_version": "2010-04-01",
        "body": body if isinstance(body, str) else "",
        "date_created": now,
        "date_sent": None,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": sender if isinstance(sender, str) else None,
        "messaging_service_sid": service if isinstance(service, str) else None,
        "num_media": str(len(media_list)),
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        "status": "accepted" if service else "queued",
        "subresource_uris": {"media": f"{_API}/{account}/Messages/{sid}/Media.json"},
        "to": to,
        "uri": f"{_API}/{account}/Messages/{sid}.json",
    }
    return _json(201, payload)


def _create_call(account: str, form: Mapping[str, str | list[str]]) -> Any:
    to = form.get("To")
    sender = form.get("From")
    if not isinstance(to, str) or not to:
        return _error(400, 21201, "No 'To' number is specified")
    if not isinstance(sender, str) or not sender:
        return _error(400, 21213, "No 'From' number is specified")
    if not E164_PATTERN.fullmatch(to):
        return _error(
            400, 21211, f"The phone number you are attempting to call, {to}, is not valid."
        )
    if not (form.get("Url") or form.get("Twiml") or form.get("ApplicationSid")):
        return _error(400, 21205, "A 'Url', 'Twiml' or 'ApplicationSid' parameter is required.")
    sid = _sid("CA")
    now = _now()
    payload = {
        "account_sid": account,
        "annotation": None,
        "answered_by": None,
        "api_version": "2010-04-01",
        "caller_name": None,
        "date_created": now,
        "date_updated": now,
        "direction": "outbound-api",
        "duration": None,
        "end_time": None,
        "forwarded_from": None,
        "from": sender,
        "from_formatted": sender,
        "group_sid": None,
        "parent_call_sid": None,
        "phone_number_sid": _sid("PN"),
        "price": None,
        "price_unit": "USD",
        "queue_time": "0",
        "sid": sid,
        "start_time": None,
        "status": "queued",
        "subresource_uris": {"recordings": f"{_API}/{account}/Calls/{sid}/Recordings.json"},
        "to": to,
        "to_formatted": to,
        "trunk_sid": None,
        "uri": f"{_API}/{account}/Calls/{sid}.json",
    }
    return _json(201, payload)


def _number_resource(account: str, number: str) -> dict[str, Any]:
    sid = _sid("PN")
    now = _now()
    return {
        "account_sid": account,
        "capabilities": {"voice": True, "sms": True, "mms": True, "fax": False},
        "date_created": now,
        "date_updated": now,
        "friendly_name": number,
        "phone_number": number,
        "sid": sid,
        "status": "in-use",
        "uri": f"{_API}/{account}/IncomingPhoneNumbers/{sid}.json",
    }
