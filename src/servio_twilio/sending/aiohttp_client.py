"""`AiohttpTwilioClient`: the async HTTP client the async wrapper builds by default.

Not twilio's ``AsyncTwilioHttpClient``, which opens its ``ClientSession`` in
``__init__`` (outside any event loop, so an unclosed session warns: twilio
issues 866 and PR 966), retries through ``aiohttp-retry`` (its defaults retry
5xx answers to a POST: a message could go out twice) and drops the client's
``timeout`` (twilio issue 925). This one:

- opens its session on the first request, inside the running loop, and
  closes it in `AiohttpTwilioClient.aclose`;
- bounds every request with ``aiohttp.ClientTimeout`` from ``timeout``: the
  connection (waiting for a pooled one, TCP and TLS) and each read of the
  answer, as requests does for the sync client;
- keeps up to `DEFAULT_POOL_SIZE` connections, more when `ensure_pool`
  asks: requests under way finish on the old session, which is closed once
  they have;
- never retries anything (the wrapper decides) and sends the form as
  twilio's sync client does (a list value is a repeated key).

Its aiohttp errors are left to `AsyncRetryingHttpClient`, which classifies
and translates them.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Mapping
from ssl import SSLContext
from typing import Any
from urllib.parse import urlencode

import aiohttp
import attrs
from multidict import CIMultiDict
from twilio.http import AsyncHttpClient  # type: ignore[import-untyped]
from twilio.http.response import Response  # type: ignore[import-untyped]

from servio_twilio.domain.errors import TwilioAPIError
from servio_twilio.sending.http_rules import (
    DEFAULT_POOL_SIZE,
    check_pool_size,
    check_seconds,
    describe_request,
    twilio_http_log,
)

__all__ = ["AiohttpTwilioClient"]

_JSON_TYPES = ("application/json", "application/scim+json")
_FORM = "application/x-www-form-urlencoded"


@attrs.define
class _Pool:
    """One session and its connector's size; ``in_flight`` requests are using it."""

    session: aiohttp.ClientSession
    size: int
    in_flight: int = 0


class AiohttpTwilioClient(AsyncHttpClient):  # type: ignore[misc]
    """A ``twilio.http.AsyncHttpClient`` over one aiohttp session of its own.

    ``timeout`` (seconds) bounds every request that does not give its own;
    ``pool_size`` connections are kept (all hosts together). ``ssl`` is the
    TLS context to verify servers with (None: the system's trust store);
    ``trust_env`` reads proxies from the environment (``HTTPS_PROXY``,
    ``NO_PROXY``), as the sync client does. Both may be changed before the
    first request. Use it from one event loop; `aclose` it in that loop.

    Raises:
        InvalidArgument: (a ``ValueError``) ``timeout`` or ``pool_size`` out of range.

    New in 0.2.0.
    """

    def __init__(
        self,
        *,
        timeout: float = 10.0,
        pool_size: int = DEFAULT_POOL_SIZE,
        ssl: SSLContext | None = None,
        trust_env: bool = True,
    ) -> None:
        check_seconds("timeout", timeout)
        super().__init__(twilio_http_log, True, timeout)
        self.ssl = ssl
        self.trust_env = trust_env
        self._size = check_pool_size(pool_size)
        self._pool: _Pool | None = None
        self._retired: list[_Pool] = []
        self._loop: asyncio.AbstractEventLoop | None = None

    def __repr__(self) -> str:
        state = "open" if self._pool is not None else "idle"
        return f"<AiohttpTwilioClient {state} timeout={self.timeout:g} pool_size={self._size}>"

    @property
    def pool_size(self) -> int:
        """The connections the next session keeps (the current one's, unless grown since)."""
        return self._size

    def ensure_pool(self, size: int) -> int:
        """Keep at least ``size`` connections from the next request on; return the size.

        The pool only grows. When a session is open with fewer, the next
        request opens a bigger one, and the old one is closed once its
        requests have ended.

        Raises:
            InvalidArgument: (a ``ValueError``) ``size`` is not an int >= 1.
        """
        self._size = max(self._size, check_pool_size(size))
        return self._size

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
        """Send one request; return twilio's ``Response`` (any status). aiohttp errors propagate.

        Raises:
            TwilioAPIError: used from another event loop than its session's (nothing sent).
        """
        seconds = self.timeout if timeout is None else timeout
        check_seconds("timeout", seconds)
        sent_headers = dict(headers or {})
        if auth:
            sent_headers["Authorization"] = _basic_auth(*auth)
        content_type = _content_type(sent_headers)
        body: dict[str, Any] = {}
        if content_type in _JSON_TYPES:
            body["json"] = data
        elif data:
            body["data"] = urlencode(_pairs(data)).encode()
            if content_type is None:
                sent_headers["Content-Type"] = _FORM
        self.log_request(
            {"method": method.upper(), "url": url, "params": params, "headers": headers}
        )
        pool = self._current_pool(method, url)
        pool.in_flight += 1
        try:
            for idle in [p for p in self._retired if p.in_flight == 0]:
                await self._close_retired(idle)
            async with pool.session.request(
                method.upper(),
                url,
                params=_pairs(params) if params else None,
                headers=sent_headers,
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=seconds, sock_connect=seconds, sock_read=seconds
                ),
                allow_redirects=allow_redirects,
                ssl=self.ssl if self.ssl is not None else True,
                **body,
            ) as answer:
                text = await answer.text(errors="replace")
                self.log_response(answer.status, answer)
                return Response(answer.status, text, CIMultiDict(answer.headers))
        finally:
            pool.in_flight -= 1
            if pool is not self._pool and pool.in_flight == 0:
                await self._close_retired(pool)

    async def aclose(self) -> None:
        """Close the session (and any older one); a later request opens a new one."""
        pools = [*self._retired, *([self._pool] if self._pool is not None else [])]
        self._pool, self._retired, self._loop = None, [], None
        for pool in pools:
            await pool.session.close()

    async def __aenter__(self) -> AiohttpTwilioClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def _current_pool(self, method: str, url: str) -> _Pool:
        loop = asyncio.get_running_loop()
        if self._loop is not None and loop is not self._loop:
            raise TwilioAPIError(
                f"request {describe_request(method, url)} not sent: this HTTP client's session "
                "belongs to another event loop (aclose() it in its loop, or use one per loop)"
            )
        pool = self._pool
        if pool is not None and pool.size >= self._size:
            return pool
        if pool is not None:
            self._retired.append(pool)
        self._pool = self._open()
        self._loop = loop
        return self._pool

    def _open(self) -> _Pool:
        connector = aiohttp.TCPConnector(limit=self._size, limit_per_host=0)
        session = aiohttp.ClientSession(
            connector=connector,
            trust_env=self.trust_env,
            cookie_jar=aiohttp.DummyCookieJar(),
            raise_for_status=False,
        )
        return _Pool(session=session, size=self._size)

    async def _close_retired(self, pool: _Pool) -> None:
        await pool.session.close()
        if pool in self._retired:
            self._retired.remove(pool)


def _basic_auth(username: str, password: str) -> str:
    """The ``Authorization`` value, encoded as requests encodes it (latin-1, else UTF-8)."""
    text = f"{username}:{password}"
    try:
        raw = text.encode("latin-1")
    except UnicodeEncodeError:
        raw = text.encode()
    return "Basic " + base64.b64encode(raw).decode("ascii")


def _content_type(headers: Mapping[str, str]) -> str | None:
    for key, value in headers.items():
        if key.lower() == "content-type":
            return value.split(";", 1)[0].strip().lower()
    return None


def _pairs(values: Mapping[str, object]) -> list[tuple[str, str]]:
    """Form or query pairs as requests encodes them: a list is a repeated key, None left out."""
    pairs: list[tuple[str, str]] = []
    for key, value in values.items():
        items = value if isinstance(value, list | tuple) else [value]
        pairs.extend((str(key), str(item)) for item in items if item is not None)
    return pairs
