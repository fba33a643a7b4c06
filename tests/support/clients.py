"""Both clients behind one sync face, so one test body checks the sync and the async client.

`make_client(kind, settings, **kwargs)` builds a `CommunicationsClient`
(``kind == "sync"``) or an `AsyncCommunicationsClient` (``"async"``) behind
`AsyncClientFacade`, whose methods run each coroutine to its end on a loop
of its own, running in a thread of its own (so calls from several threads
at once run concurrently on it, as tasks would). ``http_client`` is a
`FakeTwilio` (the async client gets its ``.aio`` face) and ``sleep`` a
plain callable (the async client awaits a wrapper of it), so a test passes
the same arguments for both.

Test modules opt in with the `client_kind` fixture (``pytest_plugins``
registers it; ``pytestmark = pytest.mark.usefixtures("client_kind")``):
every test runs once per kind, and `make_client` builds that kind unless
told otherwise. Facades are closed (client and loop) at the end of each test.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from servio_twilio import AsyncCommunicationsClient, CommunicationsClient
from servio_twilio.testing import FakeTwilio
from support.sync_facade import LoopThread

KINDS = ["sync", "async"]

_open: list[AsyncClientFacade] = []
_current = {"kind": "sync"}


class AsyncClientFacade:
    """An `AsyncCommunicationsClient` whose coroutine methods are called like plain ones."""

    def __init__(self, client: AsyncCommunicationsClient) -> None:
        self._loop = LoopThread()
        self.client = client
        self.run = self._loop.run
        _open.append(self)

    def __getattr__(self, name: str) -> Any:
        value = getattr(self.client, name)
        if not inspect.iscoroutinefunction(value):
            return value

        def call(*args: Any, **kwargs: Any) -> Any:
            return self.run(value(*args, **kwargs))

        return call

    def __repr__(self) -> str:
        return repr(self.client)

    def close(self) -> None:
        """Close the client, then its loop."""
        if not self._loop.loop.is_closed():
            self.run(self.client.aclose())
            self._loop.close()


def _awaitable(sleep: Callable[[float], object]) -> Callable[[float], Any]:
    async def wait(seconds: float) -> None:
        sleep(seconds)

    return wait


def make_client(settings: Any, *, kind: str | None = None, **kwargs: Any) -> Any:
    """A sync client, or an async one behind `AsyncClientFacade`, with the same arguments.

    ``kind`` defaults to the running test's `client_kind` (``"sync"`` outside one).
    """
    if (kind or _current["kind"]) == "sync":
        return CommunicationsClient(settings, **kwargs)
    fake = kwargs.get("http_client")
    if isinstance(fake, FakeTwilio):
        kwargs["http_client"] = fake.aio
    if "sleep" in kwargs and not inspect.iscoroutinefunction(kwargs["sleep"]):
        kwargs["sleep"] = _awaitable(kwargs["sleep"])
    return AsyncClientFacade(AsyncCommunicationsClient(settings, **kwargs))


@pytest.fixture(params=KINDS)
def client_kind(request: pytest.FixtureRequest) -> Iterator[str]:
    """``"sync"`` and ``"async"``: a test asking for it runs against both clients."""
    _current["kind"] = str(request.param)
    yield _current["kind"]
    _current["kind"] = "sync"


@pytest.fixture(autouse=True)
def _close_facades() -> Iterator[None]:
    yield
    while _open:
        _open.pop().close()
