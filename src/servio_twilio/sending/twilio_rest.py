"""The twilio REST client, built once on first use, and a runner that translates its errors."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from twilio.base.exceptions import TwilioException  # type: ignore[import-untyped]

from servio_twilio.domain.errors import ServioTwilioError
from servio_twilio.domain.settings import TwilioSettings
from servio_twilio.sending.transport import NoAnswer, RetryingHttpClient, translate_twilio_error

__all__ = ["TwilioRest"]


class TwilioRest:
    """A lazily built ``twilio.rest.Client`` over ``http``; ``call`` runs one request.

    The client is built on first use (thread-safe); with an API key in the
    settings it authenticates with the key.
    """

    def __init__(self, settings: TwilioSettings, http: RetryingHttpClient) -> None:
        self._settings = settings
        self._http = http
        self._client: Any = None
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"<TwilioRest built={self._client is not None}>"

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
                self._client = Client(username, password, s.account_sid, http_client=self._http)
            return self._client

    def ensure_pool(self, size: int) -> int | None:
        """Let the HTTP pool keep ``size`` connections a host (`RetryingHttpClient.ensure_pool`)."""
        return self._http.ensure_pool(size)

    def call(self, request: Callable[[Any], Any]) -> Any:
        """Run one twilio REST call; every failure comes out as our error."""
        try:
            return request(self.client())
        except ServioTwilioError:
            raise
        except TwilioException as exc:
            raise translate_twilio_error(exc) from exc
        except (ValueError, TypeError, AttributeError, KeyError) as exc:
            # a 2xx answer that is not JSON, or JSON that is not an object
            raise NoAnswer(f"unreadable answer from Twilio ({type(exc).__name__})") from exc
