"""The Firestore emulator for the benchmarks: started on a free 127.0.0.1 port, then stopped.

`firestore_emulator(workdir)` runs ``tests/firestore_emulator.js`` (the npm
package ``@firestore-emulator/server``, installed by ``npm ci --prefix tests``)
and yields ``host:port`` for ``FIRESTORE_EMULATOR_HOST``; its log goes to
``workdir``. A port taken between the probe and the bind gets another try.
When it cannot start it raises `EmulatorUnavailable`, a ``SystemExit``: a
bench that can go on without the emulator catches it, any other one exits
with its message.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = [
    "EMULATOR_PACKAGE",
    "TESTS_DIR",
    "EmulatorUnavailable",
    "firestore_emulator",
    "free_port",
]

TESTS_DIR = Path(__file__).resolve().parent.parent / "tests"
EMULATOR_SCRIPT = TESTS_DIR / "firestore_emulator.js"
EMULATOR_PACKAGE = TESTS_DIR / "node_modules" / "@firestore-emulator" / "server"
READY_TIMEOUT = 30.0


class EmulatorUnavailable(SystemExit):
    """The emulator cannot start: ``node`` or the npm package is missing, or it did not answer."""


def free_port() -> int:
    """A port free on 127.0.0.1 now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def firestore_emulator(workdir: Path) -> Iterator[str]:
    """Start the Firestore emulator on a free port; yield ``host:port``; stop it.

    Raises:
        EmulatorUnavailable: ``node`` or the npm package is missing, or the emulator did
            not start.
    """
    node = shutil.which("node")
    if node is None:
        raise EmulatorUnavailable("`node` is not on PATH")
    if not EMULATOR_PACKAGE.is_dir():
        raise EmulatorUnavailable(f"{EMULATOR_PACKAGE} is missing (run `npm ci --prefix tests`)")
    log_path = workdir / f"emulator-{uuid.uuid4().hex[:8]}.log"
    ready = False
    for _attempt in range(3):
        port = free_port()
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [node, str(EMULATOR_SCRIPT), str(port)],
                cwd=TESTS_DIR,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        try:
            ready = _wait_ready(process, port, log_path)
        except BaseException:  # Ctrl-C while waiting: no emulator left behind
            _stop(process)
            raise
        if ready:
            break
        _stop(process)
        if "bind failed" not in log_path.read_text(errors="replace"):
            break
    if not ready:
        tail = log_path.read_text(errors="replace")[-2000:]
        raise EmulatorUnavailable(f"the Firestore emulator did not start: {tail}")
    try:
        yield f"127.0.0.1:{port}"
    finally:
        _stop(process)


def _wait_ready(process: subprocess.Popen[bytes], port: int, log_path: Path) -> bool:
    deadline = time.monotonic() + READY_TIMEOUT
    while process.poll() is None and time.monotonic() < deadline:
        if f"ready {port}" in log_path.read_text(errors="replace"):
            return True
        time.sleep(0.05)
    return False


def _stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=5)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)
