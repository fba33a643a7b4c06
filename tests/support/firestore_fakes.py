"""Firestore repositories of either kind on a fake API or a given host, for the unit tests.

``kind`` is ``"sync"`` (`FirestoreRepository` on a ``Client``) or ``"async"``
(`AsyncFirestoreRepository` on an ``AsyncClient``, behind a `SyncFacade`, so
one test body checks both). A fake API is written once, synchronously:
`AsyncApi` gives it the async face of the generated ``AsyncClient`` API.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from google.auth.credentials import AnonymousCredentials
from google.cloud import firestore

from servio_twilio.firestore import AsyncFirestoreRepository, FirestoreRepository
from support.sync_facade import LoopThread, SyncFacade

KINDS = ["sync", "async"]


class _AsyncIterator:
    def __init__(self, items: Iterator[Any]) -> None:
        self._items = items

    def __aiter__(self) -> _AsyncIterator:
        return self

    async def __anext__(self) -> Any:
        try:
            return next(self._items)
        except StopIteration:
            raise StopAsyncIteration from None


class AsyncApi:
    """``api`` (a fake of the sync generated API) as the async one: each RPC awaited.

    A streamed answer (an iterator) becomes an async iterator; an error is
    raised when the call is awaited, as ``grpc.aio`` raises it.
    """

    def __init__(self, api: Any) -> None:
        self.api = api

    def __getattr__(self, name: str) -> Callable[..., Any]:
        rpc = getattr(self.api, name)

        async def call(*args: Any, **kwargs: Any) -> Any:
            answer = rpc(*args, **kwargs)
            return _AsyncIterator(answer) if isinstance(answer, Iterator) else answer

        return call


def client_of(kind: str, *, project: str, offline: bool = False) -> Any:
    """A ``Client`` or ``AsyncClient``: on ``FIRESTORE_EMULATOR_HOST``, or never connecting."""
    credentials = AnonymousCredentials() if offline else None
    if kind == "sync":
        return firestore.Client(project=project, credentials=credentials)
    return firestore.AsyncClient(project=project, credentials=credentials)


def repository_of(kind: str, client: Any, loop: Callable[[], LoopThread], **kwargs: Any) -> Any:
    """A repository of ``kind`` on ``client``; an async one behind a facade on ``loop()``."""
    if kind == "sync":
        return FirestoreRepository(client, **kwargs)
    return SyncFacade(AsyncFirestoreRepository(client, **kwargs), loop())


def with_api(kind: str, client: Any, api: Any) -> Any:
    """``client`` with its generated API replaced by the fake ``api`` (no call leaves)."""
    client._firestore_api_internal = api if kind == "sync" else AsyncApi(api)
    return client
