"""CommunicationsClient.send_sms beside the bare twilio.rest.Client().messages.create.

Run: ``python bench/client_overhead.py [--number N] [--repeat R]``. Both send
through `FakeTwilio` with no latency, so what is measured is the work done in
this process: for the bare client, twilio's request building and parsing; for
ours, that plus validation (phone number parsing), the pending record, the
retrying wrapper and the completed record (in an `InMemoryRepository`).
Rounds alternate between the two and the best round of each is kept
(timeit-style), so noise from the shared machine hurts both alike. Prints
microseconds per send and the per-send overhead.
"""

from __future__ import annotations

import argparse
import timeit
from collections.abc import Callable

from twilio.rest import Client  # type: ignore[import-untyped]

from servio_twilio import CommunicationsClient, InMemoryRepository, TwilioSettings
from servio_twilio.testing import FakeTwilio

ACCOUNT = "AC" + "1" * 32
TOKEN = "0123456789abcdef0123456789abcdef"
PHONE = "+15005550006"
TO = "+5511999999999"
BODY = "Olá! Sua visita está confirmada para amanhã às 15h."
CALLBACK = "https://api.servio.test/api/twilio/webhook/message-status"


def _ours() -> Callable[[], object]:
    settings = TwilioSettings(
        account_sid=ACCOUNT,
        auth_token=TOKEN,
        phone_number=PHONE,
        webhook_base_url="https://api.servio.test/api/twilio/webhook",
    )
    client = CommunicationsClient(
        settings, repository=InMemoryRepository(), http_client=FakeTwilio()
    )

    def send() -> object:
        return client.send_sms(TO, BODY, prospect_id="prospect_123")

    return send


def _bare() -> Callable[[], object]:
    client = Client(ACCOUNT, TOKEN, http_client=FakeTwilio())

    def send() -> object:
        return client.messages.create(to=TO, from_=PHONE, body=BODY, status_callback=CALLBACK)

    return send


def main() -> None:
    """Time both senders in alternating rounds and print a table."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--number", type=int, default=1000, help="sends per round")
    parser.add_argument("--repeat", type=int, default=7, help="rounds of each; the best is kept")
    args = parser.parse_args()
    senders = {"twilio.rest messages.create": _bare(), "CommunicationsClient.send_sms": _ours()}
    for send in senders.values():
        send()  # build the REST client, warm imports and caches
    best = {name: float("inf") for name in senders}
    for _ in range(args.repeat):
        for name, send in senders.items():
            seconds = timeit.timeit(send, number=args.number)
            best[name] = min(best[name], seconds / args.number * 1e6)
    bare, ours = best["twilio.rest messages.create"], best["CommunicationsClient.send_sms"]
    width = max(len(name) for name in senders)
    print(f"{args.number} sends per round, best of {args.repeat} rounds, FakeTwilio, no latency")
    print(f"{'sender':<{width}}  {'us/send':>9}")
    for name, value in best.items():
        print(f"{name:<{width}}  {value:>9.1f}")
    ratio = ours / bare
    print(f"{'overhead per send':<{width}}  {ours - bare:>9.1f}  ({ratio:.2f}x the bare call)")


if __name__ == "__main__":
    main()
