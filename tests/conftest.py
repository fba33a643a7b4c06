"""Suite-wide test configuration.

In CI (``CI=true``) a skipped test is a failure: tests that need the Firestore
emulator, Prism or a real server must run there, never skip.
"""

from __future__ import annotations

import pytest

from support.processes import IN_CI

pytest_plugins = [
    "support.firestore_emulator",
    "support.prism",
    "support.servers",
]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else report.longrepr
        report.longrepr = f"skipped in CI, which must run every test: {reason}"
