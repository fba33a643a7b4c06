"""WebhookVerifier.verify beside twilio's RequestValidator.validate, on the same inputs.

Run: ``python bench/verify.py [--number N] [--repeat R]``. Prints microseconds per
verification (best of the repeats, timeit-style) and the speed-up, for a
realistic form callback of 15 fields, a JSON body checked by bodySHA256, and
form callbacks each with its own URL (as in production, where every callback URL
carries its record id, so ``urllib.parse``'s URL cache does not help either side).
"""

from __future__ import annotations

import argparse
import hashlib
import itertools
import json
import timeit
from collections.abc import Callable, Mapping
from typing import Any

from twilio.request_validator import RequestValidator  # type: ignore[import-untyped]

from servio_twilio import WebhookVerifier

TOKEN = "0123456789abcdef0123456789abcdef"
FORM_URL = "https://api.servio.ai/api/twilio/webhook/message-status?cid=Xq3v9ZbT1kRw8sLm"
FORM: dict[str, str] = {
    "AccountSid": "AC" + "1" * 32,
    "ApiVersion": "2010-04-01",
    "Body": "Olá! Sua visita está confirmada para amanhã às 15h. Responda SIM para confirmar.",
    "From": "+5511988887777",
    "MessageSid": "SM" + "2" * 32,
    "MessageStatus": "delivered",
    "MessagingServiceSid": "MG" + "3" * 32,
    "NumMedia": "0",
    "NumSegments": "2",
    "SmsSid": "SM" + "2" * 32,
    "SmsStatus": "delivered",
    "To": "+5511999999999",
    "ChannelToAddress": "+5511999999999",
    "ChannelPrefix": "sms",
    "RawDlrDoneDate": "2605091512",
}
BODY = json.dumps(
    {
        "account_sid": "AC" + "1" * 32,
        "sid": "SM" + "2" * 32,
        "status": "delivered",
        "to": "+5511999999999",
        "from": "+5511988887777",
        "date_updated": "2026-05-09T15:12:00Z",
    }
)
JSON_URL = (
    "https://api.servio.ai/api/twilio/webhook/events?cid=Xq3v9ZbT1kRw8sLm&bodySHA256="
    + hashlib.sha256(BODY.encode()).hexdigest()
)


Request = tuple[str, Mapping[str, str] | str, str]


def _best_us(
    check: Callable[[str, Any, str], object], requests: list[Request], number: int, repeat: int
) -> float:
    """Best-of-repeats microseconds per call of ``check`` over ``requests``, in a cycle."""
    cycle = itertools.cycle(requests)

    def one() -> None:
        check(*next(cycle))

    return min(timeit.repeat(one, number=number, repeat=repeat)) / number * 1e6


def main() -> None:
    """Time both verifiers on each case and print a table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--number", type=int, default=20_000, help="calls per repeat")
    parser.add_argument("--repeat", type=int, default=7, help="repeats; the best is kept")
    args = parser.parse_args()

    validator = RequestValidator(TOKEN)
    verifier = WebhookVerifier(TOKEN)
    # Every real callback has its own URL (its record id rides in ``cid``), so the
    # stdlib's urlsplit cache misses; the first two cases repeat one URL (it hits).
    fresh_urls = [f"{FORM_URL}{n:06d}" for n in range(args.number)]
    cases: list[tuple[str, list[Request]]] = [
        ("form, 15 fields", [(FORM_URL, FORM, validator.compute_signature(FORM_URL, FORM))]),
        ("JSON + bodySHA256", [(JSON_URL, BODY, validator.compute_signature(JSON_URL, {}))]),
        (
            "form, new URL/call",
            [(url, FORM, validator.compute_signature(url, FORM)) for url in fresh_urls],
        ),
    ]
    print(f"{'case':<20} {'servio_twilio us/op':>20} {'twilio us/op':>14} {'speed-up':>9}")
    for name, requests in cases:
        for url, payload, signature in requests[:100]:
            assert validator.validate(url, payload, signature)
            verifier.verify(url, payload, signature)  # raises if it does not verify
        ours = _best_us(verifier.verify, requests, args.number, args.repeat)
        theirs = _best_us(validator.validate, requests, args.number, args.repeat)
        print(f"{name:<20} {ours:>20.2f} {theirs:>14.2f} {theirs / ours:>8.1f}x")


if __name__ == "__main__":
    main()
