"""Shared values for the sending tests: an account, its senders, settings and a clock."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from servio_twilio.domain.settings import TwilioSettings

ACCOUNT = "AC" + "1" * 32
API_KEY = "SK" + "2" * 32
SERVICE = "MG" + "3" * 32
TEMPLATE = "HX" + "4" * 32
PHONE = "+15005550006"
WHATSAPP = "+14155238886"
BASE = "https://api.servio.test/api/twilio/webhook"
TO = "+5511999999999"
TO_MASKED = "+55119*****999"
T0 = datetime(2025, 1, 1, 12, 0, tzinfo=UTC)


def make_settings(**overrides: Any) -> TwilioSettings:
    """Settings with every sender and a webhook base URL; ``overrides`` replace fields."""
    values: dict[str, Any] = {
        "account_sid": ACCOUNT,
        "auth_token": "auth-token-secret",
        "phone_number": PHONE,
        "whatsapp_number": WHATSAPP,
        "webhook_base_url": BASE,
    }
    values.update(overrides)
    return TwilioSettings(**values)


class TickingClock:
    """A clock one second later at every call, starting after `T0`; thread-safe."""

    def __init__(self) -> None:
        self.now = T0
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            self.now += timedelta(seconds=1)
            return self.now
