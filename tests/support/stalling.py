"""A blocking in-memory repository that stalls on demand: storage that stops answering."""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from servio_twilio.domain.models import Communication
from servio_twilio.storage.memory import InMemoryRepository

MAX_STALL = 10.0
"""The longest a stalled call waits for `StallingRepository.release` (a stuck test ends)."""


class StallingRepository(InMemoryRepository):
    """In memory but ``blocking``; while ``stalled``, each storing call waits for `release`.

    ``finished`` is set when a stalled call has gone on to store after all.
    """

    blocking = True

    def __init__(self) -> None:
        super().__init__()
        self.stalled = True
        self.finished = threading.Event()
        self._released = threading.Event()

    def release(self) -> None:
        """Let every stalled call go on, and the calls after it run at once."""
        self.stalled = False
        self._released.set()

    def _stall(self) -> bool:
        if not self.stalled:
            return False
        self._released.wait(MAX_STALL)
        return True

    def record_event(
        self,
        event: Mapping[str, Any],
        apply: Callable[[Communication | None], Communication],
        *,
        communication_id: str | None = None,
        sid: str | None = None,
        token: str | None = None,
    ) -> Communication | None:
        """Stall while stalled, then record as in memory."""
        stalled = self._stall()
        result = super().record_event(
            event, apply, communication_id=communication_id, sid=sid, token=token
        )
        if stalled:
            self.finished.set()
        return result

    def add(
        self,
        communication: Communication,
        *,
        event: Mapping[str, Any] | None = None,
        token: str | None = None,
    ) -> Communication:
        """Stall while stalled, then add as in memory."""
        stalled = self._stall()
        result = super().add(communication, event=event, token=token)
        if stalled:
            self.finished.set()
        return result
