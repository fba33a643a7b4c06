"""One Firestore transaction as steps: begin, the body's reads, commit; within one timeout.

The client library's own runners (``firestore.transactional`` and
``async_transactional``) give begin, commit and rollback their default
policy: up to a minute each against a dead host. `transact` runs the loop
itself, as steps (`servio_twilio.storage.firestore.steps`), so both
repositories share it: its begin, the body's reads, its commit and rollback
each get what is left of one ``timeout``, and a commit Firestore aborts
(contention) begins again, at most `MAX_ATTEMPTS` times in all, while time
is left.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from typing import Any, Final, TypeVar

import attrs
from google.api_core import exceptions as api_exceptions

from servio_twilio.domain.errors import RepositoryError
from servio_twilio.storage.firestore.errors import detail, storage_cause, translated
from servio_twilio.storage.firestore.steps import GetAll, Rpc, RunQuery, Steps

__all__ = ["MAX_ATTEMPTS", "Deadline", "InTransaction", "OutOfTime", "transact"]

MAX_ATTEMPTS: Final = 5
"""A transaction's commits Firestore may abort before it fails, as the client's runner."""

_log = logging.getLogger("servio_twilio.firestore")

T = TypeVar("T")


class OutOfTime(RepositoryError):
    """A transaction's time ran out before its next call: `transact` names the operation."""


class Deadline:
    """What is left of ``timeout`` seconds from now (None: no bound)."""

    def __init__(self, timeout: float | None) -> None:
        self.timeout = timeout
        self._end = None if timeout is None else time.monotonic() + timeout

    def left(self) -> float | None:
        """The seconds the next call may take; `OutOfTime` when none are left."""
        if self._end is None:
            return None
        left = self._end - time.monotonic()
        if left <= 0:
            raise OutOfTime(f"the timeout of {self.timeout:g} s ran out")
        return left


@attrs.frozen(kw_only=True)
class InTransaction:
    """What a transaction's body works with: ``transaction`` takes its writes.

    Its reads are the steps `get_all` and `query` give, run in the
    transaction with what is left of the timeout.
    """

    transaction: Any
    deadline: Deadline

    def get_all(self, refs: Iterable[Any]) -> GetAll:
        """The step reading ``refs`` in the transaction."""
        return GetAll(refs=refs, transaction=self.transaction, timeout=self.deadline.left())

    def query(self, query: Any) -> RunQuery:
        """The step running ``query`` in the transaction."""
        return RunQuery(query=query, transaction=self.transaction, timeout=self.deadline.left())


def transact(
    client: Any,
    operation: str,
    body: Callable[[InTransaction], Steps[T]],
    timeout: float | None,
) -> Steps[T]:
    """The steps of ``body`` in a Firestore transaction of ``client``, retried on contention.

    ``body`` may run more than once. Every storage error becomes ours
    (`translated`); running out of time is a `RepositoryError` naming the
    operation and the timeout.
    """
    try:
        with translated(operation):
            return (yield from _attempts(client, operation, body, Deadline(timeout)))
    except OutOfTime as exc:
        cause = storage_cause(exc)
        what = f"{exc}" if cause is None else f"{exc}; last error: {detail(cause)}"
        _log.warning("Firestore %s failed: %s", operation, what)
        raise RepositoryError(f"Firestore {operation} failed: {what}") from cause


def _attempts(
    client: Any,
    operation: str,
    body: Callable[[InTransaction], Steps[T]],
    deadline: Deadline,
) -> Steps[T]:
    """`transact`'s loop: begin, ``body``, commit; again while commits abort."""
    transaction = client.transaction()
    retry_id: bytes | None = None
    aborted: BaseException | None = None
    attempts = 0
    while attempts < MAX_ATTEMPTS:
        try:
            left = deadline.left()
        except OutOfTime:
            if aborted is None:
                raise
            break
        attempts += 1
        transaction._clean_up()
        begun = yield Rpc(
            method="begin_transaction",
            request={
                "database": client._database_string,
                "options": transaction._options_protobuf(retry_id),
            },
            reads=True,
            timeout=left,
        )
        transaction._id = begun.transaction
        retry_id = retry_id or begun.transaction
        try:
            result = yield from body(InTransaction(transaction=transaction, deadline=deadline))
        except GeneratorExit:
            raise
        except BaseException:
            yield from _roll_back(client, transaction, deadline)
            raise
        try:
            yield Rpc(
                method="commit",
                request={
                    "database": client._database_string,
                    "writes": transaction._write_pbs,
                    "transaction": transaction._id,
                },
                reads=False,
                timeout=deadline.left(),
            )
        except api_exceptions.Aborted as exc:  # contention: Firestore ended it
            aborted = exc
            transaction._clean_up()
            continue
        except GeneratorExit:
            raise
        except BaseException:
            yield from _roll_back(client, transaction, deadline)
            raise
        transaction._clean_up()
        return result
    assert aborted is not None
    what = f"{detail(aborted)} (aborted {attempts} times)"
    _log.warning("Firestore %s failed: %s", operation, what)
    raise RepositoryError(f"Firestore {operation} failed: {what}") from aborted


def _roll_back(client: Any, transaction: Any, deadline: Deadline) -> Steps[None]:
    """Roll back a transaction in progress, in the time left; a failure is only logged.

    With no time left the rollback is skipped: Firestore ends an idle
    transaction by itself.
    """
    if not transaction.in_progress:
        return
    try:
        left = deadline.left()
    except OutOfTime:
        transaction._clean_up()
        return
    try:
        yield Rpc(
            method="rollback",
            request={"database": client._database_string, "transaction": transaction._id},
            reads=False,
            timeout=left,
        )
    except Exception as exc:  # the error that made us roll back is the one to raise
        _log.debug("Firestore rollback failed: %s", detail(exc))
    finally:
        transaction._clean_up()
