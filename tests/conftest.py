"""Suite-wide test configuration.

No test skips, in CI or outside it: a skipped test (or module) is reported as
a failure, so a missing Firestore emulator, Prism, OpenAPI file or server
fails the run instead of shrinking it. To run a subset, select it with
pytest's ``-m`` or ``-k`` (deselected tests are not skips). ``xfail`` is
unaffected (and strict, see pyproject.toml).
"""

from __future__ import annotations

import pytest

pytest_plugins = [
    "support.firestore_emulator",
    "support.prism",
    "support.redis_server",
    "support.servers",
    "support.clients",
    "support.browser",
    "support.console",
]

_NO_SKIPS = "skipped, but this suite runs every test (select a subset with -m or -k)"


def _reason(longrepr: object) -> object:
    return longrepr[2] if isinstance(longrepr, tuple) and len(longrepr) == 3 else longrepr


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"{_NO_SKIPS}: {_reason(report.longrepr)}"


@pytest.hookimpl(hookwrapper=True)
def pytest_make_collect_report(collector: pytest.Collector):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if report.skipped:
        report.outcome = "failed"
        report.longrepr = f"{_NO_SKIPS}: {_reason(report.longrepr)}"
