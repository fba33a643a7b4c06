"""Twilio's REST API as the send rules use it, sync (`TwilioRest`) and async (`AsyncTwilioRest`).

Each is the ``twilio`` target of `servio_twilio.domain.steps`: the same
method names, blocking in one and coroutines in the other, each a single
request through twilio's REST client (built once, on first use) whose
failures all come out as our errors.
"""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Literal

from twilio.base.exceptions import TwilioException  # type: ignore[import-untyped]

from servio_twilio.domain.errors import ServioTwilioError
from servio_twilio.domain.settings import TwilioSettings
from servio_twilio.sending.transport import NoAnswer, translate_twilio_error

__all__ = ["AsyncTwilioRest", "TwilioRest", "translated"]

Kind = Literal["message", "call"]


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


def translated(exc: Exception) -> ServioTwilioError | None:
    """Our error for what a twilio REST call raised; None for ours and for bugs (re-raise them)."""
    if isinstance(exc, ServioTwilioError):
        return None
    if isinstance(exc, TwilioException):
        return translate_twilio_error(exc)
    if isinstance(exc, ValueError | TypeError | AttributeError | KeyError):
        # a 2xx answer that is not JSON, or JSON that is not an object
        return NoAnswer(f"unreadable answer from Twilio ({type(exc).__name__})")
    return None


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

    async def aclose(self) -> None:
        """Close the HTTP session (``http.aclose``)."""
        close = getattr(self.http, "aclose", None)
        if close is not None:
            await close()
