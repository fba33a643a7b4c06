"""Helpers the server fixtures share: failing on what is missing, free ports, processes, logs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import Any, NoReturn

import pytest


def require(what: str, problems: list[str]) -> None:
    """Fail the test, in CI and outside it, if ``problems`` (`support.requirements`) is not empty.

    A test that needs a server never skips: to run a subset of the suite,
    select it with ``-m`` or ``-k``.
    """
    if problems:
        unavailable(what, "; ".join(problems))


def unavailable(what: str, reason: str) -> NoReturn:
    """Fail the test (never skip, CI or not), saying what is missing and where it comes from."""
    pytest.fail(f"{what} unavailable: {reason}", pytrace=False)


def free_port() -> int:
    """A TCP port of 127.0.0.1 that nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def tail(path: Path, lines: int = 30) -> str:
    """The last ``lines`` lines of a log file, for a failure message."""
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError as exc:
        return f"(no log: {exc})"


def stop(process: subprocess.Popen[bytes]) -> None:
    """Terminate a child process, killing it if it does not exit within 5 s."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def run_python(code: str, *, drop_env: tuple[str, ...] = ("PYTHON",)) -> Any:
    """Run ``code`` in a fresh interpreter; the JSON on the last line it printed.

    Variables starting with any of ``drop_env`` are left out of its
    environment (``PYTHON...``: no ``PYTHONPATH`` or start-up file leaks in).
    The process must exit 0.
    """
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop_env)}
    completed = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        check=False,
        env=env,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    return json.loads(completed.stdout.strip().splitlines()[-1])
