"""What `FakeTwilio` answers: Twilio's JSON for the four 2010 API routes, and its errors.

Pure functions of the request and the fake's settings (no state, no I/O),
shared by both of `FakeTwilio`'s seams.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlencode

from twilio.http.response import Response  # type: ignore[import-untyped]

from servio_twilio.domain.phone import E164_PATTERN
from servio_twilio.domain.phone_text import has_channel_prefix

__all__ = ["answer", "bare_number", "error_response", "json_response", "read_form"]

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


def answer(  # noqa: PLR0911 - one return per route
    method: str,
    path: str,
    *,
    form: Mapping[str, str | list[str]],
    params: Mapping[str, Any],
    authenticated: bool,
    account_status: str,
    owned_numbers: Iterable[str] | None,
) -> Any:
    """Twilio's answer (a ``twilio.http.response.Response``) to one request.

    ``owned_numbers``: the account's incoming numbers (None: every number
    asked for by ``PhoneNumber``, and Twilio's test number without a filter).

    New in 0.2.0.
    """
    route, account = _route(path)
    if route is None or account is None:
        return error_response(404, 20404, f"The requested resource {path} was not found")
    if method.upper() != _METHODS[route]:
        return error_response(405, 20004, "Method not allowed")
    if not authenticated:
        return error_response(401, 20003, "Authenticate")
    if route == "message":
        return _create_message(account, form)
    if route == "call":
        return _create_call(account, form)
    if route == "account":
        return json_response(200, _account(account, account_status))
    owned = None if owned_numbers is None else sorted(owned_numbers)
    return json_response(200, _numbers(account, params, owned))


def _account(account: str, status: str) -> dict[str, Any]:
    now = _now()
    return {
        "sid": account,
        "owner_account_sid": account,
        "friendly_name": "FakeTwilio account",
        "status": status,
        "type": "Full",
        "date_created": now,
        "date_updated": now,
        "uri": f"{_API}/{account}.json",
        "subresource_uris": {"messages": f"{_API}/{account}/Messages.json"},
    }


def _numbers(account: str, params: Mapping[str, Any], owned: list[str] | None) -> dict[str, Any]:
    raw = params.get("PhoneNumber")
    wanted = raw if isinstance(raw, str) else ""
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


def _create_message(account: str, form: Mapping[str, str | list[str]]) -> Any:
    to = form.get("To")
    sender = form.get("From")
    service = form.get("MessagingServiceSid")
    body = form.get("Body")
    media = form.get("MediaUrl")
    media_list = [media] if isinstance(media, str) else list(media or [])
    if not isinstance(to, str) or not to:
        return error_response(400, 21604, "A 'To' phone number is required.")
    if not E164_PATTERN.fullmatch(bare_number(to)):
        return error_response(400, 21211, f"Invalid 'To' Phone Number: {to}")
    if not sender and not service:
        return error_response(400, 21603, "A 'From' phone number is required.")
    if not body and not media_list and not form.get("ContentSid"):
        return error_response(400, 21602, "Message body is required.")
    if isinstance(body, str) and len(body) > _MAX_BODY:
        return error_response(
            400, 21617, "The concatenated message body exceeds the 1600 character limit."
        )
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
    return json_response(201, payload)


def _create_call(account: str, form: Mapping[str, str | list[str]]) -> Any:
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
    return json_response(201, payload)


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
