"""`RecordedRequest`: one request `FakeTwilio` received, as its request log keeps it."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import attrs

__all__ = ["RecordedRequest", "recorded_request"]


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


def recorded_request(
    method: str,
    url: str,
    *,
    params: Mapping[str, object] | None,
    form: dict[str, str | list[str]],
    headers: Mapping[str, str] | None,
    auth: tuple[str, str] | None,
    timeout: float | None,
    is_async: bool,
) -> RecordedRequest:
    """The log entry of one request: its query merged from ``url`` and ``params``, no password.

    New in 0.2.0.
    """
    parts = urlsplit(url)
    return RecordedRequest(
        method=method.upper(),
        url=url,
        path=parts.path,
        params={**dict(parse_qsl(parts.query)), **(params or {})},
        data=form,
        headers={k: v for k, v in (headers or {}).items() if k.lower() != "authorization"},
        username=auth[0] if auth else None,
        timeout=timeout,
        is_async=is_async,
    )
