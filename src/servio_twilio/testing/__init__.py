"""A testing kit, so host apps can test their Twilio integration offline.

- `FakeTwilio`: a ``twilio.http.HttpClient`` that answers like Twilio, records
  every request and injects faults; pass it as ``http_client=``.
- `Fault`: what `FakeTwilio` injects (also ``FakeTwilio.Fault``).
- `signed_webhook`: the headers and body of a correctly signed callback.

Nothing in the product imports this module.
"""

from __future__ import annotations

import importlib

# Not `from typing import TYPE_CHECKING`: importing typing would double the
# cost of `import servio_twilio`. Type checkers treat this name the same way.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from servio_twilio.testing.fake_twilio import FakeTwilio, Fault
    from servio_twilio.testing.webhooks import signed_webhook

_EXPORTS = {
    "FakeTwilio": "servio_twilio.testing.fake_twilio",
    "Fault": "servio_twilio.testing.fake_twilio",
    "signed_webhook": "servio_twilio.testing.webhooks",
}

__all__ = ["FakeTwilio", "Fault", "signed_webhook"]


def __getattr__(name: str) -> Any:
    module_name = _EXPORTS.get(name)
    if module_name is None:
        raise AttributeError(f"module 'servio_twilio.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(module_name), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
