"""Health checks for both clients: the Twilio account, the sender number and storage.

`check_health` is a generator of `servio_twilio.domain.steps.Call` steps (the
``twilio`` and ``repository`` targets): each client drives it.
"""

from __future__ import annotations

import logging

from servio_twilio.domain.settings import TwilioSettings
from servio_twilio.domain.steps import Call, Steps
from servio_twilio.sending.results import HealthCheck, HealthReport

__all__ = ["NUMBER_PAGES", "NUMBER_PAGE_SIZE", "check_health", "mask_sid"]

# The client's logger: these records are the client's, wherever the code lives.
_log = logging.getLogger("servio_twilio.client")

# The number check reads at most this many pages of the account's numbers.
NUMBER_PAGE_SIZE = 1000
NUMBER_PAGES = 3


def check_health(settings: TwilioSettings) -> Steps[HealthReport]:
    """Run every check; see `CommunicationsClient.health`. Never raises for their failures."""
    checks: list[HealthCheck] = []
    account_status: str | None = None
    try:
        account = yield Call("twilio", "fetch_account")
        account_status = str(account.status) if account.status is not None else None
        checks.append(
            HealthCheck(
                name="account",
                ok=account_status == "active",
                detail=f"account status is {account_status!r}",
            )
        )
    except Exception as exc:
        _log.warning("health: could not fetch the Twilio account: %s", exc)
        checks.append(HealthCheck(name="account", ok=False, detail=_describe(exc)))
    checks.append((yield from _check_phone_number(settings)))
    checks.append((yield from _check_repository()))
    checks.append(
        HealthCheck(
            name="whatsapp_number",
            ok=True,
            detail="configured (not verifiable through Twilio's API)"
            if settings.whatsapp_number
            else "not configured",
        )
    )
    return HealthReport(
        healthy=all(check.ok for check in checks),
        account_sid=mask_sid(settings.account_sid),
        account_status=account_status,
        phone_number=settings.phone_number,
        whatsapp_number=settings.whatsapp_number,
        checks=checks,
    )


def mask_sid(sid: str) -> str:
    """``sid`` with all but its first six and last four characters starred."""
    if len(sid) <= 10:
        return "*" * len(sid)
    return sid[:6] + "*" * (len(sid) - 10) + sid[-4:]


def _check_phone_number(settings: TwilioSettings) -> Steps[HealthCheck]:
    number = settings.phone_number
    if number is None:
        if settings.messaging_service_sid or settings.whatsapp_number:
            return HealthCheck(name="phone_number", ok=True, detail="not configured")
        return HealthCheck(name="phone_number", ok=False, detail="no sender configured")
    try:
        owned = yield from _owns(number)
    except Exception as exc:
        _log.warning("health: could not list the account's numbers: %s", exc)
        return HealthCheck(name="phone_number", ok=False, detail=_describe(exc))
    if owned:
        return HealthCheck(
            name="phone_number", ok=True, detail="one of the account's incoming numbers"
        )
    return HealthCheck(
        name="phone_number", ok=False, detail="not among the account's incoming numbers"
    )


def _owns(number: str) -> Steps[bool]:
    """Whether ``number`` is one of the account's IncomingPhoneNumbers.

    The number stays out of the request URLs (urllib3 logs them at DEBUG): the
    account's numbers are listed unfiltered, up to `NUMBER_PAGES` pages of
    `NUMBER_PAGE_SIZE`, and compared here. Only an account with more numbers
    than that is asked by ``PhoneNumber=`` (the number in the query string).
    """
    page = yield Call("twilio", "numbers_page", (NUMBER_PAGE_SIZE,))
    for read in range(1, NUMBER_PAGES + 1):
        if any(_is(item, number) for item in page):
            return True
        if not page.next_page_url:
            return False
        if read < NUMBER_PAGES:
            page = yield Call("twilio", "next_page", (page,))
    named = yield Call("twilio", "numbers_named", (number,))
    return any(_is(item, number) for item in named)


def _is(item: object, number: str) -> bool:
    return getattr(item, "phone_number", None) == number


def _check_repository() -> Steps[HealthCheck]:
    try:
        yield Call("repository", "ping")
    except Exception as exc:
        _log.warning("health: the repository did not answer: %s", exc)
        return HealthCheck(name="repository", ok=False, detail=_describe(exc))
    return HealthCheck(name="repository", ok=True, detail="answered ping()")


def _describe(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}"
