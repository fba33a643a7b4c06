"""Batch sending: up to ``max_batch_size`` messages at once, concurrent, rate-capped.

`send_batch` is what both clients' ``send_batch`` run: a generator of
`servio_twilio.domain.steps.Call` steps, driven by `run` (the sync client)
or `run_async` (the async one). It reuses the single send's steps, in
phases, so a batch keeps every rule of a single send:

1. size: over ``max_batch_size`` raises `BatchTooLarge`; nothing written or sent;
2. validation (`SendCore.prepare_message`): an invalid item fails in the
   report, with no record and no request;
3. admission (`SendCore.admit`), per item, as for a single send: the
   client's `SendPolicy` (consent, then sending hours), then the send
   limiter; a refused item fails with the error's text (`RecipientOptedOut`,
   `OutsideSendingHours`, `SendLimitExceeded`...), with no record and no
   request;
4. write-ahead: the valid items' ``pending`` records in ONE
   ``repository.add_many``; if it fails, nothing is sent and every one of
   them fails in the report (storage failure is an outcome, not an exception);
5. dispatch (`ask_twilio`) by the ``engine`` target, at most
   ``max_concurrency`` at once (threads for the sync client, tasks for the
   async one: `servio_twilio.sending.engines`), each item taking a token from the
   ``rate`` target first, with the client's retry rules (429 and failures to
   connect retried in the transport; nothing that may have reached Twilio
   is retried);
6. merging: the answers are merged into the records as they arrive, a
   group of at least ``max(10, workers)`` at a time in one
   ``repository.update_many`` (`merge_answer`, the single send's rules);
   then each item Twilio refused with 21610 is opted out in the consent
   store (`opt_out_refused`).

The report lists every item in input order; nothing raises once validation
of the arguments has passed, and one worker's failure never loses another's
result. Telemetry (`servio_twilio.domain.telemetry`): a span for the batch,
and a send span under it for each item admission sees, ended with the
item's outcome where the rules learn it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import TYPE_CHECKING, TypeAlias

from servio_twilio.domain import telemetry
from servio_twilio.domain.errors import (
    BatchTooLarge,
    RecordNotFound,
    SendOutcomeUnknown,
    ServioTwilioError,
    TwilioAPIError,
)
from servio_twilio.domain.models import Communication
from servio_twilio.domain.status import UNKNOWN, advance
from servio_twilio.domain.steps import Call, Steps
from servio_twilio.domain.telemetry import BatchTelemetry, start_batch
from servio_twilio.sending.batch_input import (
    BatchMessage,
    batch_items,
    check_positive_int,
    prepare_item,
)
from servio_twilio.sending.dispatch import (
    TwilioAnswer,
    ask_twilio,
    log_unstored,
    merge_answer,
    opt_out_refused,
    result_of,
)
from servio_twilio.sending.results import BatchItemResult, BatchReport

if TYPE_CHECKING:
    from servio_twilio.sending.prepare import PreparedSend
    from servio_twilio.sending.send_core import SendCore

__all__ = ["MERGE_GROUP_MIN", "Outcome", "send_batch"]

_log = logging.getLogger("servio_twilio.batch")


_FAILED = "failed"


MERGE_GROUP_MIN = 10
"""The fewest Twilio answers merged in one write (fewer only at the batch's end)."""

Outcome: TypeAlias = TwilioAnswer | BatchItemResult
"""What one item's dispatch gives: Twilio's answer, or the item's failed result."""


def send_batch(
    core: SendCore,
    messages: Iterable[BatchMessage],
    *,
    max_concurrency: int = 10,
    rated: bool = False,
    max_batch_size: int = 100,
) -> Steps[BatchReport]:
    """Send ``messages``; see `CommunicationsClient.send_batch`.

    ``rated`` says whether the ``rate`` target caps the creates (its
    ``acquire()`` before each); check the caller's ``rate_per_second`` with
    `rate_cap` first. Raises `BatchTooLarge`, `InvalidArgument` and
    `TypeError` for bad arguments, before any step.
    """
    check_positive_int("max_concurrency", max_concurrency)
    check_positive_int("max_batch_size", max_batch_size)
    items = batch_items(messages)
    if len(items) > max_batch_size:
        raise BatchTooLarge(len(items), max_batch_size)

    results: dict[int, BatchItemResult] = {}
    ready: list[tuple[int, PreparedSend]] = []
    observed = start_batch(len(items))
    try:
        for index, item in enumerate(items):
            prepared = prepare_item(core, index, item, results)
            if prepared is not None and (
                yield from _admitted(core, index, prepared, results, observed)
            ):
                ready.append((index, prepared))
        if ready and (yield from _write_ahead(core, ready, results, observed)):
            yield from _dispatch_all(
                core, ready, results, rated, max_concurrency, observed=observed
            )
    except BaseException as exc:
        observed.raised(exc)
        raise

    report = BatchReport.from_items(list(results.values()))
    observed.finish(succeeded=report.succeeded, failed=report.failed)
    _log.info(
        "batch of %d: %d sent, %d failed (%d not written)",
        report.total, report.succeeded, report.failed,
        sum(1 for item in report.items if item.communication_id is None and not item.ok),
    )  # fmt: skip
    return report


# -- phases -------------------------------------------------------------------------------


def _admitted(
    core: SendCore,
    index: int,
    prepared: PreparedSend,
    results: dict[int, BatchItemResult],
    observed: BatchTelemetry,
) -> Steps[bool]:
    """Admit one item (`SendCore.admit`); a refusal (or a policy or limiter failure) fails it."""
    item = observed.item(prepared.record.channel, prepared.communication_id)
    try:
        yield from core.admit(prepared)
    except ServioTwilioError as exc:
        error = str(exc)
        item.raised(exc)
    except Exception as exc:
        error = f"send limiter failed: {type(exc).__name__}: {exc}"
        item.raised(exc)
    else:
        return True
    results[index] = BatchItemResult(index=index, to=prepared.record.to, ok=False, error=error)
    return False


def _write_ahead(
    core: SendCore,
    ready: list[tuple[int, PreparedSend]],
    results: dict[int, BatchItemResult],
    observed: BatchTelemetry,
) -> Steps[bool]:
    """Store every pending record in one ``add_many``; on failure fail them all, send nothing."""
    try:
        yield Call("repository", "add_many", ([prepared.record for _, prepared in ready],))
    except Exception as exc:
        for _, prepared in ready:
            observed.finish_item(prepared.communication_id, telemetry.FAILED, exc)
        reason = str(exc) if isinstance(exc, ServioTwilioError) else f"{type(exc).__name__}: {exc}"
        error = f"not sent: the pending records could not be stored ({reason})"
        _log.error("batch: %s; none of %d messages sent", error, len(ready))
        written = yield from _fail_written(core, [prepared for _, prepared in ready], error)
        for index, prepared in ready:
            cid = prepared.communication_id
            results[index] = BatchItemResult(
                index=index,
                to=prepared.record.to,
                ok=False,
                error=error,
                communication_id=cid if cid in written else None,
            )
        return False
    return True


def _dispatch_all(
    core: SendCore,
    ready: list[tuple[int, PreparedSend]],
    results: dict[int, BatchItemResult],
    rated: bool,
    max_concurrency: int,
    *,
    observed: BatchTelemetry,
) -> Steps[None]:
    """Send every written item, at most ``max_concurrency`` at once (the ``engine`` target).

    The engine only runs each item's `_ask_one`; the answers are merged into
    the records here as they arrive, in groups of at least
    ``max(10, workers)`` (one ``repository.update_many`` each: with
    Firestore, one transaction), the last group when every item has answered.
    """
    workers = min(max_concurrency, len(ready))
    group_size = max(MERGE_GROUP_MIN, workers)
    yield Call("twilio", "ensure_pool", (workers,))  # a kept connection per worker: no reconnects
    jobs = [_ask_one(core, index, prepared, rated, observed) for index, prepared in ready]
    answered: list[tuple[int, PreparedSend, TwilioAnswer]] = []

    def collect(done: list[tuple[int, Outcome]]) -> None:
        for position, outcome in done:
            index, prepared = ready[position]
            if isinstance(outcome, BaseException):  # a job that raised anyway: a last defence
                observed.finish_item(prepared.communication_id, telemetry.UNKNOWN, outcome)
                results[index] = BatchItemResult(
                    index=index,
                    to=prepared.record.to,
                    ok=False,
                    error=f"{type(outcome).__name__}: {outcome}",
                    communication_id=prepared.communication_id,
                )
            elif isinstance(outcome, BatchItemResult):
                results[index] = outcome
            else:
                observed.answered(prepared.communication_id, outcome.failure)
                answered.append((index, prepared, outcome))

    yield Call("engine", "start", (jobs, workers))
    try:
        remaining = len(jobs)
        while remaining:
            done, remaining = yield Call("engine", "next_done")
            collect(done)
            if len(answered) >= group_size or not remaining:
                yield from _merge(core, answered, results)
                answered = []
    except GeneratorExit:
        raise
    except BaseException:
        # Interrupted (KeyboardInterrupt, a cancelled task): merge the answers
        # already in, and say on the records of the items not started that
        # they were never sent, before the interruption goes on.
        finished, never_started = yield Call("engine", "stop")
        collect(finished)
        yield from _merge(core, answered, results)
        cancelled = [ready[position][1] for position in never_started]
        for prepared in cancelled:
            observed.finish_item(prepared.communication_id, telemetry.FAILED, None)
        yield from _fail_written(
            core, cancelled, "not sent: the batch was interrupted", all_written=True
        )
        raise


def _ask_one(
    core: SendCore, index: int, prepared: PreparedSend, rated: bool, observed: BatchTelemetry
) -> Steps[Outcome]:
    """One item's dispatch: wait for the rate cap and call Twilio; never raises.

    Twilio's answer, or the item's result when it failed before or outside
    the rules (the rate limiter failed, an unexpected error).
    """
    if rated:
        try:
            yield Call("rate", "acquire")
        except Exception as exc:
            observed.finish_item(prepared.communication_id, telemetry.FAILED, exc)
            error = f"not sent: the rate limiter failed: {type(exc).__name__}: {exc}"
            yield from _fail_written(core, [prepared], error, all_written=True)
            return BatchItemResult(
                index=index,
                to=prepared.record.to,
                ok=False,
                error=error,
                communication_id=prepared.communication_id,
            )
    try:
        return (yield from ask_twilio(prepared))
    except Exception as exc:
        observed.finish_item(prepared.communication_id, telemetry.UNKNOWN, exc)
        return (yield from _unexpected(core, index, prepared, exc))


def _merge(
    core: SendCore,
    answered: list[tuple[int, PreparedSend, TwilioAnswer]],
    results: dict[int, BatchItemResult],
) -> Steps[None]:
    """Merge a group of answers into their records in one write; report each item.

    Then, with a consent store, opt out the numbers Twilio refused with 21610.
    """
    if not answered:
        return
    now = core.clock()
    updates = {prepared.communication_id: merge_answer(a, now) for _, prepared, a in answered}
    merged: dict[str, Communication] = {}
    failure: BaseException | None = None
    try:
        merged = yield Call("repository", "update_many", (updates,))
    except Exception as exc:
        failure = exc
    for index, prepared, answer in answered:
        record = merged.get(prepared.communication_id)
        if record is None:
            log_unstored(prepared, answer, failure or RecordNotFound("the record is gone"))
        results[index] = _item(index, prepared, answer, record)
    if core.consented:
        for _, prepared, answer in answered:
            yield from opt_out_refused(prepared, answer)


def _item(
    index: int, prepared: PreparedSend, answer: TwilioAnswer, merged: Communication | None
) -> BatchItemResult:
    """One item's report from Twilio's answer and its merged record."""
    cid = prepared.communication_id
    to = prepared.record.to
    try:
        result = result_of(prepared, answer, merged)
    except SendOutcomeUnknown as exc:
        return BatchItemResult(
            index=index, to=to, ok=False, error=f"outcome unknown: {exc}", communication_id=cid
        )
    except TwilioAPIError as exc:
        return BatchItemResult(
            index=index,
            to=to,
            ok=False,
            error=str(exc),
            error_code=exc.code,
            communication_id=cid,
        )
    return BatchItemResult(index=index, to=to, ok=True, result=result, communication_id=cid)


# -- failure bookkeeping ------------------------------------------------------------------


def _unexpected(
    core: SendCore, index: int, prepared: PreparedSend, exc: Exception
) -> Steps[BatchItemResult]:
    """An error no rule expects: the item fails, its record becomes ``unknown`` saying why.

    ``unknown``, not ``failed``: the error may have come after Twilio had the
    request. Twilio's status callbacks will settle the record if it went out.
    """
    cid = prepared.communication_id
    error = f"{type(exc).__name__}: {exc}"
    _log.error("batch item %d (%s): unexpected error: %s", index, cid, error, exc_info=exc)
    now = core.clock()
    try:
        yield Call(
            "repository",
            "update",
            (cid, lambda record: advance(record, updated_at=now, status=UNKNOWN, error=error)),
        )
    except Exception as store_exc:
        _log.error("batch item %d (%s): could not mark the record: %s", index, cid, store_exc)
    return BatchItemResult(
        index=index, to=prepared.record.to, ok=False, error=error, communication_id=cid
    )


def _fail_written(
    core: SendCore,
    prepared: list[PreparedSend],
    error: str,
    *,
    all_written: bool = False,
) -> Steps[set[str]]:
    """Mark the records of never-sent items ``failed`` with ``error``; return the ids marked.

    After a failed ``add_many`` (``all_written=False``), the records that were
    written anyway are a prefix of the list (a backend that commits in chunks,
    like Firestore past 500 writes, keeps the chunks before the failing one):
    stop at the first record that does not exist. Stop at the first storage
    failure too: storage is down, and each further call would wait its timeout.
    """
    marked: set[str] = set()
    if not prepared:
        return marked
    now = core.clock()

    def fail(record: Communication) -> Communication:
        return advance(record, updated_at=now, status=_FAILED, error=error)

    for item in prepared:
        cid = item.communication_id
        try:
            yield Call("repository", "update", (cid, fail))
        except RecordNotFound:
            if all_written:
                continue
            break
        except Exception as exc:
            _log.error(
                "batch: could not mark %d never-sent records as failed (%s); "
                "they may stay pending",
                len(prepared) - len(marked), exc,
            )  # fmt: skip
            break
        marked.add(cid)
    return marked
