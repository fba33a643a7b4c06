"""pytest plugin: a Firestore emulator for the session, and clients and repositories on it.

``firestore_emulator`` starts ``node tests/firestore_emulator.js PORT``
(``@firestore-emulator/server``) on a free port of 127.0.0.1, waits for its
``ready`` line, points ``FIRESTORE_EMULATOR_HOST`` at it and stops it at the
end of the session. Without ``node`` or the npm package the fixture skips
locally and fails in CI (``CI=true``), naming what is missing.

``firestore_client`` is a ``google.cloud.firestore.Client`` on the emulator;
``firestore_repository`` a ``FirestoreRepository`` on a collection of its own
(the emulator cannot list or delete collections, so each test gets a new name);
``async_firestore_repository`` an ``AsyncFirestoreRepository`` on a collection
of its own, with an ``AsyncClient`` of its own (a client's gRPC channel
belongs to the event loop of its first call, and each test has its loop).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from support import requirements
from support.processes import free_port, require, stop, tail

TESTS_DIR = requirements.TESTS_DIR
SCRIPT = TESTS_DIR / "firestore_emulator.js"
PROJECT = "demo-servio-test"
READY_TIMEOUT = 20.0


@pytest.fixture(scope="session")
def firestore_emulator(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The emulator's ``host:port``, with ``FIRESTORE_EMULATOR_HOST`` set to it."""
    require("Firestore emulator", requirements.for_firestore_emulator())
    node = shutil.which("node") or "node"
    log_path = tmp_path_factory.mktemp("firestore-emulator") / "emulator.log"
    last_error = ""
    for _attempt in range(3):  # a port taken between probe and bind gets another try
        port = free_port()
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [node, str(SCRIPT), str(port)],
                cwd=TESTS_DIR,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + READY_TIMEOUT
        ready = False
        while time.monotonic() < deadline and process.poll() is None:
            if f"ready {port}" in log_path.read_text(errors="replace"):
                ready = True
                break
            time.sleep(0.05)
        if ready:
            break
        stop(process)
        last_error = tail(log_path)
        if "bind failed" not in last_error:
            break
    if not ready:
        pytest.fail(
            f"Firestore emulator did not start within {READY_TIMEOUT:.0f}s; log tail:\n"
            f"{last_error}",
            pytrace=False,
        )
    host = f"127.0.0.1:{port}"
    previous = os.environ.get("FIRESTORE_EMULATOR_HOST")
    os.environ["FIRESTORE_EMULATOR_HOST"] = host
    try:
        yield host
    finally:
        if previous is None:
            os.environ.pop("FIRESTORE_EMULATOR_HOST", None)
        else:
            os.environ["FIRESTORE_EMULATOR_HOST"] = previous
        stop(process)


@pytest.fixture(scope="session")
def firestore_client(firestore_emulator: str) -> Any:
    """A ``google.cloud.firestore.Client`` on the emulator (project ``demo-servio-test``)."""
    from google.cloud import firestore

    return firestore.Client(project=PROJECT)


def unique_collection(prefix: str = "communications") -> str:
    """A collection name no other test uses."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def firestore_repository(firestore_client: Any) -> Any:
    """A ``FirestoreRepository`` on a fresh collection of the emulator."""
    from servio_twilio.firestore import FirestoreRepository

    return FirestoreRepository(firestore_client, collection=unique_collection(), timeout=15.0)


@pytest.fixture
def async_firestore_repository(firestore_emulator: str) -> Any:
    """An ``AsyncFirestoreRepository`` on a fresh collection, with a new ``AsyncClient``.

    Await it on one event loop (e.g. through ``support.sync_facade.SyncFacade``).
    """
    from google.cloud import firestore

    from servio_twilio.firestore import AsyncFirestoreRepository

    client = firestore.AsyncClient(project=PROJECT)
    return AsyncFirestoreRepository(client, collection=unique_collection(), timeout=15.0)
