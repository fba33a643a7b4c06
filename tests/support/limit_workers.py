"""Worker processes of the shared-limit tests (started with multiprocessing's ``spawn``).

Each worker builds its own limiter on the storage URI it is given, waits at
the barrier so all start together, and puts what it saw on the queue. Kept
in a small module so a spawned child imports little.
"""

from __future__ import annotations

import time
from typing import Any

from servio_twilio.domain.errors import SendLimitExceeded
from servio_twilio.sending.shared_limits import SharedRateLimit, SharedSendLimiter


def send_attempts(
    storage_uri: str, key: str, attempts: int, max_sends: int, barrier: Any, results: Any
) -> None:
    """Try ``attempts`` sends to ``key``; put (allowed, refused, errors) on ``results``."""
    limiter = SharedSendLimiter(storage_uri, max_sends=max_sends, per_seconds=60)
    allowed = refused = errors = 0
    barrier.wait(timeout=60)
    for _ in range(attempts):
        try:
            wait = limiter.try_acquire(key)
        except SendLimitExceeded:
            errors += 1
            continue
        if wait is None:
            allowed += 1
        else:
            refused += 1
    results.put((allowed, refused, errors))


def rate_takes(
    storage_uri: str, per_second: float, takes: int, name: str, barrier: Any, results: Any
) -> None:
    """Take ``takes`` sends from one shared rate; put the wall-clock time of each on ``results``."""
    rate = SharedRateLimit(storage_uri, per_second=per_second, name=name)
    stamps = []
    barrier.wait(timeout=60)
    for _ in range(takes):
        rate.acquire()
        stamps.append(time.time())
    results.put(stamps)
