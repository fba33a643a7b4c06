"""pytest plugin: a real ``redis-server`` (Debian's package) for the shared-limit tests.

``redis_server`` (session) starts ``redis-server --port P --bind 127.0.0.1
--save '' --appendonly no`` on a free port of 127.0.0.1, with its output in a
log file, waits until it accepts connections and stops it at the end of the
session. ``private_redis_server`` starts one for a single test, which may
`RedisServer.stop` and `RedisServer.start` it again on the same port (Redis
going down mid-run). Without ``redis-server`` on PATH the fixtures fail, in
CI and outside it (never skip), naming the package (`support.requirements`).
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from support import requirements
from support.processes import free_port, require, stop, tail

READY_TIMEOUT = 20.0


class RedisServer:
    """One ``redis-server`` process on 127.0.0.1, stoppable and restartable on its port."""

    def __init__(self, log_path: Path) -> None:
        self.log_path = log_path
        self.port = 0
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        """The ``redis://`` URI of database 0."""
        return f"redis://127.0.0.1:{self.port}/0"

    @property
    def running(self) -> bool:
        """Whether the process is alive."""
        return self.process is not None and self.process.poll() is None

    def start(self) -> None:
        """Start on the server's port (a free one the first time); fail the test if it cannot."""
        attempts = 3 if self.port == 0 else 10
        for _attempt in range(attempts):
            port = self.port or free_port()
            if self._launch(port):
                self.port = port
                return
            if self.port:  # the same port again: it may still be in TIME_WAIT
                time.sleep(0.2)
        pytest.fail(
            f"redis-server did not start within {READY_TIMEOUT:.0f}s; log tail:\n"
            f"{tail(self.log_path)}",
            pytrace=False,
        )

    def _launch(self, port: int) -> bool:
        command = [
            shutil.which(requirements.REDIS_SERVER) or requirements.REDIS_SERVER,
            *("--port", str(port), "--bind", "127.0.0.1"),
            *("--save", "", "--appendonly", "no"),
        ]
        with self.log_path.open("ab") as log:
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT
            )
        deadline = time.monotonic() + READY_TIMEOUT
        while time.monotonic() < deadline and process.poll() is None:
            if _answers_ping(port):
                self.process = process
                return True
            time.sleep(0.05)
        stop(process)
        return False

    def stop(self) -> None:
        """Stop the process (SIGTERM, then SIGKILL after 5 s); its port stays this server's."""
        if self.process is not None:
            stop(self.process)
            self.process = None


def _command(port: int, command: bytes) -> bytes:
    """Send one inline command and return the first line of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=1.0) as sock:
        sock.sendall(command + b"\r\n")
        return sock.recv(64).split(b"\r\n", 1)[0]


def _answers_ping(port: int) -> bool:
    try:
        return _command(port, b"PING") == b"+PONG"
    except OSError:
        return False


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A running ``redis-server`` for the session (``.url`` is its ``redis://`` URI)."""
    require("redis-server", requirements.for_redis_server())
    server = RedisServer(tmp_path_factory.mktemp("redis") / "redis.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def private_redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    """A running ``redis-server`` of this test alone, which it may stop and start again."""
    require("redis-server", requirements.for_redis_server())
    server = RedisServer(tmp_path / "redis.log")
    server.start()
    try:
        yield server
    finally:
        server.stop()
