"""The offline demo behind ``python -m servio_twilio demo``.

Everything runs on embedded defaults, with no credentials and no network: an
`InMemoryRepository`, `FakeTwilio` as Twilio, and the WSGI webhook app served
by the standard library's server on a free 127.0.0.1 port. The story is in
`servio_twilio.demo.flow`; the output in `servio_twilio.demo.report`.

Part of the kit: nothing in the product imports it.
"""

from __future__ import annotations

from servio_twilio.demo.flow import PROSPECT, PROSPECT_NUMBER
from servio_twilio.demo.report import run_demo
from servio_twilio.demo.twilio_side import DemoFailed

__all__ = ["PROSPECT", "PROSPECT_NUMBER", "DemoFailed", "run_demo"]
