"""What `FakeTwilio` answers: Twilio's JSON for the 2010 API routes it serves, and its errors.

Functions of the request, the fake's settings and its `TwilioStore`, shared
by both of `FakeTwilio`'s seams: a create keeps its resource in the store,
a fetch or a list reads it. No lock and no I/O here: the fake calls
`answer` under its lock.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from twilio.http.response import Response  # type: ignore[import-untyped]

from servio_twilio.domain.errors import InvalidArgument
from servio_twilio.domain.phone import E164_PATTERN
from servio_twilio.domain.phone_text import has_channel_prefix
from servio_twilio.testing.twilio_resources import (
    API,
    ResourceKind,
    TwilioStore,
    call_resource,
    message_resource,
    new_sid,
    rfc2822,
)

__all__ = ["answer", "bare_number", "error_response", "json_response", "read_form"]

_ACCOUNT = r"/2010-04-01/Accounts/(?P<account>AC[0-9a-fA-F]{32})"
_ROUTES = {
    "message": re.compile(_ACCOUNT + r"/Messages\.json"),
    "message_one": re.compile(_ACCOUNT + r"/Messages/(?P<sid>(?:SM|MM)[0-9a-fA-F]{32})\.json"),
    "call": re.compile(_ACCOUNT + r"/Calls\.json"),
    "call_one": re.compile(_ACCOUNT + r"/Calls/(?P<sid>CA[0-9a-fA-F]{32})\.json"),
    "call_recordings": re.compile(_ACCOUNT + r"/Calls/(?P<sid>CA[0-9a-fA-F]{32})/Recordings\.json"),
    "recordings": re.compile(_ACCOUNT + r"/Recordings\.json"),
    "account": re.compile(_ACCOUNT + r"\.json"),
    "numbers": re.compile(_ACCOUNT + r"/IncomingPhoneNumbers\.json"),
}
_METHODS = {"message": {"GET", "POST"}, "call": {"GET", "POST"}}
_LISTS: dict[str, tuple[ResourceKind, str]] = {
    "message": ("message", "messages"),
    "call": ("call", "calls"),
    "recordings": ("recording", "recordings"),
}
_MAX_BODY = 1600
_MAX_PAGE = 1000
_WHATSAPP = "whatsapp:"
# What an unfiltered IncomingPhoneNumbers list holds when owned_numbers is None:
# Twilio's magic test number (the valid From of its test credentials).
_TEST_NUMBER = "+15005550006"


def answer(  # noqa: PLR0911 - one return per route
    method: str,
    path: str,
    *,
    form: Mapping[str, str | list[str]],
    params: Mapping[str, Any],
    authenticated: bool,
    account_status: str,
    owned_numbers: Iterable[str] | None,
    store: TwilioStore,
    now: datetime,
) -> Any:
    """Twilio's answer (a ``twilio.http.response.Response``) to one request.

    ``owned_numbers``: the account's incoming numbers (None: every number
    asked for by ``PhoneNumber``, and Twilio's test number without a filter).
    A message or call created is kept in ``store``; ``now`` dates what is made.

    New in 0.2.0.
    """
    route, found = _route(path)
    if route is None or found is None:
        return error_response(404, 20404, f"The requested resource {path} was not found")
    account, sid = found["account"], found.get("sid")
    if method.upper() not in _METHODS.get(route, {"GET"}):
        return error_response(405, 20004, "Method not allowed")
    if not authenticated:
        return error_response(401, 20003, "Authenticate")
    if method.upper() == "POST":
        return _create(route, account, form, store, now)
    if route in {"message_one", "call_one"}:
        resource = store.get(sid or "")
        if resource is None or resource.get("account_sid") != account:
            return error_response(404, 20404, f"The requested resource {path} was not found")
        return json_response(200, resource)
    if route == "account":
        return json_response(200, _account(account, account_status, now))
    if route == "numbers":
        owned = None if owned_numbers is None else sorted(owned_numbers)
        numbers = _numbers(account, params, owned, now)
        return _page_response("incoming_phone_numbers", path, numbers, params)
    if route == "call_recordings":
        listed = store.listed("recording", account, {"CallSid": sid})
        return _page_response("recordings", path, [_call_recording(r) for r in listed], params)
    kind, key = _LISTS[route]
    try:
        items = store.listed(kind, account, params)
    except InvalidArgument as exc:
        return error_response(400, 20001, str(exc))
    return _page_response(key, path, items, params)


def _create(
    route: str,
    account: str,
    form: Mapping[str, str | list[str]],
    store: TwilioStore,
    now: datetime,
) -> Any:
    refusal = _message_refusal(form) if route == "message" else _call_refusal(form)
    if refusal is not None:
        return refusal
    if route == "message":
        resource, unset = message_resource(account, form, now), "date_sent"
    else:
        resource, unset = call_resource(account, form, now), "start_time"
    store.keep(resource)
    # Twilio answers before it sends: the create's answer has no date_sent / start_time yet.
    return json_response(201, {**resource, unset: None})


def _account(account: str, status: str, now: datetime) -> dict[str, Any]:
    stamp = rfc2822(now)
    return {
        "sid": account,
        "owner_account_sid": account,
        "friendly_name": "FakeTwilio account",
        "status": status,
        "type": "Full",
        "date_created": stamp,
        "date_updated": stamp,
        "uri": f"{API}/{account}.json",
        "subresource_uris": {"messages": f"{API}/{account}/Messages.json"},
    }


def _numbers(
    account: str, params: Mapping[str, Any], owned: list[str] | None, now: datetime
) -> list[dict[str, Any]]:
    raw = params.get("PhoneNumber")
    wanted = raw if isinstance(raw, str) else ""
    if owned is None and wanted:
        owned = [wanted] if E164_PATTERN.fullmatch(wanted) else []
    elif owned is None:
        owned = [_TEST_NUMBER]
    if wanted:
        pattern = re.compile(re.escape(wanted).replace(r"\*", "[0-9]"))
        owned = [n for n in owned if pattern.search(n)]
    return [_number_resource(account, n, now) for n in owned]


def _page_response(
    key: str, path: str, items: list[dict[str, Any]], params: Mapping[str, Any]
) -> Any:
    try:
        return json_response(200, _page(key, path, items, params))
    except ValueError:
        return error_response(400, 20001, "Invalid paging parameters")


def _page(
    key: str, path: str, items: list[dict[str, Any]], params: Mapping[str, Any]
) -> dict[str, Any]:
    """One page of ``items`` as Twilio pages its lists (``Page``, ``PageSize``, next page URI)."""
    page_size = int(params.get("PageSize") or 50)
    page = int(params.get("Page") or 0)
    if not 1 <= page_size <= _MAX_PAGE or page < 0:
        raise ValueError("paging out of range")
    start = page * page_size
    shown = items[start : start + page_size]
    kept = {k: v for k, v in params.items() if k not in {"Page", "PageSize", "PageToken"}}

    def page_uri(number: int) -> str:
        query = {**kept, "PageSize": page_size, "Page": number}
        if number:
            query["PageToken"] = f"PT{number}"
        return f"{path}?" + urlencode(query)

    return {
        key: shown,
        "end": start + max(len(shown) - 1, 0),
        "first_page_uri": page_uri(0),
        "next_page_uri": page_uri(page + 1) if start + page_size < len(items) else None,
        "page": page,
        "page_size": page_size,
        "previous_page_uri": page_uri(page - 1) if page else None,
        "start": start,
        "uri": page_uri(page),
    }


def _call_recording(recording: dict[str, Any]) -> dict[str, Any]:
    """A recording as the call's own Recordings list shows it (no ``media_url``, a ``track``)."""
    shown = {k: v for k, v in recording.items() if k != "media_url"}
    shown["track"] = "both"
    return shown


def bare_number(number: str) -> str:
    """``number`` without its ``whatsapp:`` prefix.

    New in 0.2.0.
    """
    text = number.strip()
    return text[len(_WHATSAPP) :] if has_channel_prefix(text) else text


def read_form(data: Mapping[str, object] | None) -> dict[str, str | list[str]]:
    """The form as Twilio reads it: one value as a string, a repeated key as a list.

    New in 0.2.0.
    """
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


def _route(path: str) -> tuple[str | None, dict[str, str] | None]:
    for name, pattern in _ROUTES.items():
        match = pattern.fullmatch(path)
        if match:
            return name, match.groupdict()
    return None, None


def json_response(
    status: int, payload: Mapping[str, Any], headers: Mapping[str, str] | None = None
) -> Any:
    """A twilio ``Response`` with ``payload`` as JSON.

    New in 0.2.0.
    """
    merged = {"Content-Type": "application/json"}
    merged.update(headers or {})
    return Response(status, json.dumps(payload), merged)


def error_response(
    status: int, code: int, message: str, headers: Mapping[str, str] | None = None
) -> Any:
    """Twilio's error body (``code``, ``message``, ``more_info``, ``status``) as a ``Response``.

    New in 0.2.0.
    """
    payload = {
        "code": code,
        "message": message,
        "more_info": f"https://www.twilio.com/docs/errors/{code}",
        "status": status,
    }
    return json_response(status, payload, headers)


def _message_refusal(form: Mapping[str, str | list[str]]) -> Any:
    to = form.get("To")
    body = form.get("Body")
    media = form.get("MediaUrl")
    if not isinstance(to, str) or not to:
        return error_response(400, 21604, "A 'To' phone number is required.")
    if not E164_PATTERN.fullmatch(bare_number(to)):
        return error_response(400, 21211, f"Invalid 'To' Phone Number: {to}")
    if not form.get("From") and not form.get("MessagingServiceSid"):
        return error_response(400, 21603, "A 'From' phone number is required.")
    if not body and not media and not form.get("ContentSid"):
        return error_response(400, 21602, "Message body is required.")
    if isinstance(body, str) and len(body) > _MAX_BODY:
        return error_response(
            400, 21617, "The concatenated message body exceeds the 1600 character limit."
        )
    return None


def _call_refusal(form: Mapping[str, str | list[str]]) -> Any:
    to = form.get("To")
    sender = form.get("From")
    if not isinstance(to, str) or not to:
        return error_response(400, 21201, "No 'To' number is specified")
    if not isinstance(sender, str) or not sender:
        return error_response(400, 21213, "No 'From' number is specified")
    if not E164_PATTERN.fullmatch(to):
        return error_response(
            400, 21211, f"The phone number you are attempting to call, {to}, is not valid."
        )
    if not (form.get("Url") or form.get("Twiml") or form.get("ApplicationSid")):
        return error_response(
            400, 21205, "A 'Url', 'Twiml' or 'ApplicationSid' parameter is required."
        )
    return None


def _number_resource(account: str, number: str, now: datetime) -> dict[str, Any]:
    sid = new_sid("PN")
    stamp = rfc2822(now)
    return {
        "account_sid": account,
        "capabilities": {"voice": True, "sms": True, "mms": True, "fax": False},
        "date_created": stamp,
        "date_updated": stamp,
        "friendly_name": number,
        "phone_number": number,
        "sid": sid,
        "status": "in-use",
        "uri": f"{API}/{account}/IncomingPhoneNumbers/{sid}.json",
    }
