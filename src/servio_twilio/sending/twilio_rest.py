"""Twilio's REST API as the send rules use it, sync (`TwilioRest`) and async (`AsyncTwilioRest`).

Each is the ``twilio`` target of `servio_twilio.domain.steps`: the same
method names, blocking in one and coroutines in the other, each a single
request through twilio's REST client (built once, on first use) whose
failures all come out as our errors.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, date, datetime
from typing import Any, Literal

from twilio.base.exceptions import (  # type: ignore[import-untyped]
    TwilioException,
    TwilioRestException,
)

from servio_twilio.domain.errors import InvalidArgument, ServioTwilioError
from servio_twilio.domain.settings import TwilioSettings
from servio_twilio.sending.transport import NoAnswer, translate_twilio_error

__all__ = ["AsyncTwilioRest", "TwilioRest", "sent_filters", "translated"]

Kind = Literal["message", "call"]
# Twilio's largest list page; a bigger PageSize is refused.
_MAX_PAGE_SIZE = 1000
_RECORDINGS_LIMIT = 20


class _LazyClient:
    """A ``twilio.rest.Client`` over ``http``, built once on first use (thread-safe)."""

    def __init__(self, settings: TwilioSettings, http: Any) -> None:
        self._settings = settings
        self.http = http
        self._client: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<{type(self).__name__} built={self._client is not None}>"

    def client(self) -> Any:
        """The twilio REST client, built once on first use."""
        rest = self._client
        if rest is not None:
            return rest
        with self._lock:
            if self._client is None:
                from twilio.rest import Client  # type: ignore[import-untyped]  # noqa: PLC0415

                s = self._settings
                if s.api_key_sid is not None and s.api_key_secret is not None:
                    username, password = s.api_key_sid, s.api_key_secret
                else:
                    username, password = s.account_sid, s.auth_token
                self._client = Client(username, password, s.account_sid, http_client=self.http)
            return self._client

    def ensure_pool(self, size: int) -> int | None:
        """Let the HTTP pool keep ``size`` connections a host (``http.ensure_pool``)."""
        grow = getattr(self.http, "ensure_pool", None)
        return grow(size) if grow is not None else None

    def _resource(self, kind: Kind) -> Any:
        client = self.client()
        return client.calls if kind == "call" else client.messages

    def _account(self) -> Any:
        return self.client().api.v2010.accounts(self._settings.account_sid)

    def _one(self, kind: Kind, sid: str) -> Any:
        if not isinstance(sid, str) or not sid:
            raise InvalidArgument("sid must be a non-empty string")
        return self._resource(kind)(sid)


def sent_filters(
    kind: Kind, *, to: str, from_: str | None, day: date | None, limit: int
) -> dict[str, Any]:
    """The keywords of twilio's ``messages.list`` / ``calls.list`` for one day's sends.

    ``day`` goes to twilio as a date (a datetime counts as its UTC day), which
    twilio writes ``YYYY-MM-DDT00:00:00Z``: the form Twilio's schema takes for
    ``DateSent`` and ``StartTime``, read by Twilio as that day. ``day`` None:
    no date filter (the newest sends, those not sent yet included). ``from_``
    None: no ``From`` filter. One page holds up to ``limit`` (at most 1000).

    Raises:
        InvalidArgument: ``limit`` below 1, or ``day`` not a date.

    New in 0.2.0.
    """
    if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
        raise InvalidArgument(f"limit must be a whole number >= 1, got {limit!r}")
    if isinstance(day, datetime):
        day = (day.astimezone(UTC) if day.tzinfo is not None else day).date()
    elif day is not None and not isinstance(day, date):
        raise InvalidArgument(f"day must be a date or None, got {type(day).__name__}")
    filters: dict[str, Any] = {"to": to, "limit": limit, "page_size": min(limit, _MAX_PAGE_SIZE)}
    if from_ is not None:
        filters["from_"] = from_
    if day is not None:
        filters["date_sent" if kind == "message" else "start_time"] = day
    return filters


def translated(exc: Exception) -> ServioTwilioError | None:
    """Our error for what a twilio REST call raised; None for ours and for bugs (re-raise them)."""
    if isinstance(exc, ServioTwilioError):
        return None
    if isinstance(exc, TwilioException):
        return translate_twilio_error(_page_refusal(exc) or exc)
    if isinstance(exc, ValueError | TypeError | AttributeError | KeyError):
        # a 2xx answer that is not JSON, or JSON that is not an object
        return NoAnswer(f"unreadable answer from Twilio ({type(exc).__name__})")
    return None


def _page_refusal(exc: Exception) -> Exception | None:
    """twilio's bare ``TwilioException("Unable to fetch page", response)`` as a REST refusal.

    A list page that is not a 200 carries Twilio's answer in ``args[1]``; read
    as a fetch's refusal, a 404 keeps its status and a 429 stays rate limiting.
    """
    if type(exc) is not TwilioException or len(exc.args) != 2:
        return None
    response = exc.args[1]
    status = getattr(response, "status_code", None)
    if not isinstance(status, int) or isinstance(status, bool):
        return None
    try:
        body = json.loads(getattr(response, "text", "") or "{}")
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    message = body.get("message")
    refusal: Exception = TwilioRestException(
        status,
        "",
        msg=message if isinstance(message, str) and message else str(exc.args[0]),
        code=body.get("code"),
        details=body.get("details"),
    )
    return refusal


class TwilioRest(_LazyClient):
    """Blocking calls of Twilio's REST API over a `RetryingHttpClient` (or any sync client)."""

    def call(self, request: Callable[[Any], Any]) -> Any:
        """Run one twilio REST call; every failure comes out as our error."""
        try:
            return request(self.client())
        except Exception as exc:
            error = translated(exc)
            if error is None:
                raise
            raise error from exc

    def create(self, kind: Kind, params: Mapping[str, Any]) -> Any:
        """Create a message or a call; Twilio's instance."""
        return self.call(lambda _: self._resource(kind).create(**params))

    def fetch_account(self) -> Any:
        """The account's instance."""
        return self.call(lambda _: self._account().fetch())

    def numbers_page(self, page_size: int) -> Any:
        """The first page of the account's IncomingPhoneNumbers."""
        return self.call(lambda client: client.incoming_phone_numbers.page(page_size=page_size))

    def next_page(self, page: Any) -> Any:
        """The page after ``page``."""
        return self.call(lambda _: page.next_page())

    def numbers_named(self, number: str) -> Any:
        """The account's IncomingPhoneNumbers whose number is ``number`` (a filtered list)."""
        return self.call(
            lambda client: client.incoming_phone_numbers.list(phone_number=number, limit=50)
        )

    def fetch(self, kind: Kind, sid: str) -> Any:
        """The message or call ``sid`` as Twilio holds it now (its instance).

        New in 0.2.0.
        """
        return self.call(lambda _: self._one(kind, sid).fetch())

    def list_sent(
        self, kind: Kind, *, to: str, from_: str | None, day: date | None, limit: int = 50
    ) -> list[Any]:
        """Twilio's messages (or calls) from ``from_`` to ``to`` sent (started) on ``day``, UTC.

        Newest first, at most ``limit``. ``to`` and ``from_`` are matched
        exactly as Twilio stores them (``whatsapp:`` included); see `sent_filters`.

        New in 0.2.0.
        """
        filters = sent_filters(kind, to=to, from_=from_, day=day, limit=limit)
        return list(self.call(lambda _: self._resource(kind).list(**filters)))

    def recordings(self, call_sid: str) -> list[Any]:
        """The recordings of the call ``call_sid`` (the account's Recordings, by ``CallSid``).

        New in 0.2.0.
        """
        return list(
            self.call(
                lambda client: client.recordings.list(call_sid=call_sid, limit=_RECORDINGS_LIMIT)
            )
        )


class AsyncTwilioRest(_LazyClient):
    """`TwilioRest`'s methods as coroutines, over an `AsyncRetryingHttpClient`."""

    async def call(self, request: Callable[[Any], Awaitable[Any]]) -> Any:
        """Await one twilio REST call; every failure comes out as our error."""
        try:
            return await request(self.client())
        except Exception as exc:
            error = translated(exc)
            if error is None:
                raise
            raise error from exc

    async def create(self, kind: Kind, params: Mapping[str, Any]) -> Any:
        """Create a message or a call; Twilio's instance."""
        return await self.call(lambda _: self._resource(kind).create_async(**params))

    async def fetch_account(self) -> Any:
        """The account's instance."""
        return await self.call(lambda _: self._account().fetch_async())

    async def numbers_page(self, page_size: int) -> Any:
        """The first page of the account's IncomingPhoneNumbers."""
        return await self.call(
            lambda client: client.incoming_phone_numbers.page_async(page_size=page_size)
        )

    async def next_page(self, page: Any) -> Any:
        """The page after ``page``."""
        return await self.call(lambda _: page.next_page_async())

    async def numbers_named(self, number: str) -> Any:
        """The account's IncomingPhoneNumbers whose number is ``number`` (a filtered list)."""
        return await self.call(
            lambda client: client.incoming_phone_numbers.list_async(phone_number=number, limit=50)
        )

    async def fetch(self, kind: Kind, sid: str) -> Any:
        """The message or call ``sid`` as Twilio holds it now (its instance).

        New in 0.2.0.
        """
        return await self.call(lambda _: self._one(kind, sid).fetch_async())

    async def list_sent(
        self, kind: Kind, *, to: str, from_: str | None, day: date | None, limit: int = 50
    ) -> list[Any]:
        """Twilio's messages (or calls) from ``from_`` to ``to`` sent (started) on ``day``, UTC.

        As `TwilioRest.list_sent`. New in 0.2.0.
        """
        filters = sent_filters(kind, to=to, from_=from_, day=day, limit=limit)
        return list(await self.call(lambda _: self._resource(kind).list_async(**filters)))

    async def recordings(self, call_sid: str) -> list[Any]:
        """The recordings of the call ``call_sid`` (the account's Recordings, by ``CallSid``).

        New in 0.2.0.
        """
        return list(
            await self.call(
                lambda client: client.recordings.list_async(
                    call_sid=call_sid, limit=_RECORDINGS_LIMIT
                )
            )
        )

    async def aclose(self) -> None:
        """Close the HTTP session (``http.aclose``)."""
        close = getattr(self.http, "aclose", None)
        if close is not None:
            await close()
