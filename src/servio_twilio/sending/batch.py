"""Batch sending: up to ``max_batch_size`` messages at once, concurrent, rate-capped.

`send_batch` is what `CommunicationsClient.send_batch` runs. It reuses the
single send's steps, in phases, so a batch keeps every rule of a single send:

1. size: over ``max_batch_size`` raises `BatchTooLarge`; nothing written or sent;
2. validation (`SendPath.prepare_message`): an invalid item fails in the
   report, with no record and no request;
3. the send limiter, per item: over it, the item fails (`SendLimitExceeded`'s text);
4. write-ahead: the valid items' ``pending`` records in ONE
   ``repository.add_many``; if it fails, nothing is sent and every one of
   them fails in the report (storage failure is an outcome, not an exception);
5. dispatch (`SendPath.ask`) in a thread pool of ``max_concurrency``
   workers, each taking a token from the optional `TokenBucket` first, with
   the client's retry rules (429 and failures to connect retried in the
   transport; nothing that may have reached Twilio is retried);
6. merging: this thread merges the answers into the records as they arrive,
   a group of at least ``max(10, workers)`` at a time in one
   ``repository.update_many`` (`merge_answer`, the single send's rules).

The report lists every item in input order; nothing raises once validation
of the arguments has passed, and one worker's failure never loses another's
result.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import TYPE_CHECKING, Any, TypeAlias

from servio_twilio.domain.errors import (
    BatchTooLarge,
    InvalidArgument,
    RecordNotFound,
    SendOutcomeUnknown,
    ServioTwilioError,
    TwilioAPIError,
)
from servio_twilio.domain.models import Channel, Communication
from servio_twilio.domain.status import UNKNOWN, advance
from servio_twilio.sending.dispatch import TwilioAnswer, log_unstored, merge_answer, result_of
from servio_twilio.sending.ratelimit import TokenBucket, is_positive_int, is_positive_number
from servio_twilio.sending.results import BatchItemResult, BatchReport, OutboundMessage

if TYPE_CHECKING:
    from servio_twilio.sending.prepare import PreparedSend
    from servio_twilio.sending.send_path import SendPath

__all__ = ["BatchMessage", "send_batch"]

_log = logging.getLogger("servio_twilio.batch")

BatchMessage: TypeAlias = OutboundMessage | Mapping[str, Any]
"""One batch item: an `OutboundMessage`, or a mapping in the earlier service's shape."""

_FAILED = "failed"
_CHANNELS = (Channel.SMS, Channel.WHATSAPP)


def send_batch(
    path: SendPath,
    messages: Iterable[BatchMessage],
    *,
    max_concurrency: int = 10,
    rate_per_second: float | TokenBucket | None = None,
    max_batch_size: int = 100,
) -> BatchReport:
    """Send ``messages`` through ``path``; see `CommunicationsClient.send_batch`.

    New in 0.1.0.
    """
    _check_positive_int("max_concurrency", max_concurrency)
    _check_positive_int("max_batch_size", max_batch_size)
    bucket = _bucket(rate_per_second)
    items = _items(messages)
    if len(items) > max_batch_size:
        raise BatchTooLarge(len(items), max_batch_size)

    results: dict[int, BatchItemResult] = {}
    ready: list[tuple[int, PreparedSend]] = []
    for index, item in enumerate(items):
        prepared = _prepare(path, index, item, results)
        if prepared is not None and _within_limit(path, index, prepared, results):
            ready.append((index, prepared))
    if ready and _write_ahead(path, ready, results):
        _dispatch_all(path, ready, results, bucket, max_concurrency)

    report = BatchReport.from_items(list(results.values()))
    _log.info(
        "batch of %d: %d sent, %d failed (%d not written)",
        report.total, report.succeeded, report.failed,
        sum(1 for item in report.items if item.communication_id is None and not item.ok),
    )  # fmt: skip
    return report


# -- phases -------------------------------------------------------------------------------


def _prepare(
    path: SendPath,
    index: int,
    item: object,
    results: dict[int, BatchItemResult],
) -> PreparedSend | None:
    """The validated send for one item, or None with its failure in ``results``."""
    try:
        message = _message(item)
        if message.channel not in _CHANNELS:
            raise InvalidArgument(f"a batch sends SMS and WhatsApp messages, not {message.channel}")
        return path.prepare_message(
            message.channel,
            message.to,
            body=message.body,
            media_url=message.media_url,
            content_sid=message.content_sid,
            content_variables=message.content_variables,
            prospect_id=message.prospect_id,
        )
    except (ServioTwilioError, ValueError, TypeError) as exc:
        error = f"invalid: {exc}"
    except Exception as exc:
        error = f"invalid: {type(exc).__name__}: {exc}"
    results[index] = BatchItemResult(index=index, to=_raw_to(item), ok=False, error=error)
    return None


def _within_limit(
    path: SendPath,
    index: int,
    prepared: PreparedSend,
    results: dict[int, BatchItemResult],
) -> bool:
    """Ask the send limiter for one item; a refusal (or a limiter failure) fails it."""
    try:
        path.check_limit(prepared)
    except ServioTwilioError as exc:
        error = str(exc)
    except Exception as exc:
        error = f"send limiter failed: {type(exc).__name__}: {exc}"
    else:
        return True
    results[index] = BatchItemResult(index=index, to=prepared.record.to, ok=False, error=error)
    return False


def _write_ahead(
    path: SendPath,
    ready: list[tuple[int, PreparedSend]],
    results: dict[int, BatchItemResult],
) -> bool:
    """Store every pending record in one ``add_many``; on failure fail them all, send nothing."""
    try:
        path.repository.add_many([prepared.record for _, prepared in ready])
    except Exception as exc:
        reason = str(exc) if isinstance(exc, ServioTwilioError) else f"{type(exc).__name__}: {exc}"
        error = f"not sent: the pending records could not be stored ({reason})"
        _log.error("batch: %s; none of %d messages sent", error, len(ready))
        written = _fail_written(path, [prepared for _, prepared in ready], error)
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


MERGE_GROUP_MIN = 10
"""The fewest Twilio answers merged in one write (fewer only at the batch's end)."""


def _dispatch_all(
    path: SendPath,
    ready: list[tuple[int, PreparedSend]],
    results: dict[int, BatchItemResult],
    bucket: TokenBucket | None,
    max_concurrency: int,
) -> None:
    """Send every written item in a pool of at most ``max_concurrency`` threads.

    The workers only call Twilio; this thread merges their answers into the
    records as they arrive, in groups of at least ``max(10, workers)`` (one
    ``repository.update_many`` each: with Firestore, one transaction), the
    last group when every item has answered.
    """
    workers = min(max_concurrency, len(ready))
    group_size = max(MERGE_GROUP_MIN, workers)
    path.rest.ensure_pool(workers)  # one kept connection per worker: no reconnects
    futures: dict[Future[TwilioAnswer | BatchItemResult], tuple[int, PreparedSend]] = {}
    answered: list[tuple[int, PreparedSend, TwilioAnswer]] = []
    collected: set[Future[TwilioAnswer | BatchItemResult]] = set()
    pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="servio-batch")
    try:
        for index, prepared in ready:
            future = pool.submit(_ask_one, path, index, prepared, bucket)
            futures[future] = (index, prepared)
        waiting = set(futures)
        while waiting:
            done, waiting = wait(waiting, return_when=FIRST_COMPLETED)
            for future in done:
                collected.add(future)
                index, prepared = futures[future]
                outcome = _collect(future, index, prepared)
                if isinstance(outcome, BatchItemResult):
                    results[index] = outcome
                else:
                    answered.append((index, prepared, outcome))
            if len(answered) >= group_size or not waiting:
                _merge(path, answered, results)
                answered = []
    except BaseException:
        # Interrupted (KeyboardInterrupt): merge the answers already in, and
        # say on the records of the items not started yet that they were never
        # sent, before the interruption goes on.
        pool.shutdown(wait=True, cancel_futures=True)
        for future, (index, prepared) in futures.items():
            if future not in collected and not future.cancelled():
                outcome = _collect(future, index, prepared)
                if isinstance(outcome, TwilioAnswer):
                    answered.append((index, prepared, outcome))
        _merge(path, answered, results)
        cancelled = [prepared for future, (_, prepared) in futures.items() if future.cancelled()]
        _fail_written(path, cancelled, "not sent: the batch was interrupted", all_written=True)
        raise
    finally:
        pool.shutdown(wait=True)


def _ask_one(
    path: SendPath,
    index: int,
    prepared: PreparedSend,
    bucket: TokenBucket | None,
) -> TwilioAnswer | BatchItemResult:
    """One worker's job: wait for a token and call Twilio; never raises.

    Twilio's answer, or the item's result when it failed before or outside
    the rules (the rate limiter failed, an unexpected error).
    """
    if bucket is not None:
        try:
            bucket.acquire()
        except Exception as exc:
            error = f"not sent: the rate limiter failed: {type(exc).__name__}: {exc}"
            _fail_written(path, [prepared], error, all_written=True)
            return BatchItemResult(
                index=index,
                to=prepared.record.to,
                ok=False,
                error=error,
                communication_id=prepared.communication_id,
            )
    try:
        return path.ask(prepared)
    except Exception as exc:
        return _unexpected(path, index, prepared, exc)


def _merge(
    path: SendPath,
    answered: list[tuple[int, PreparedSend, TwilioAnswer]],
    results: dict[int, BatchItemResult],
) -> None:
    """Merge a group of answers into their records in one write; report each item."""
    if not answered:
        return
    now = path.clock()
    updates = {prepared.communication_id: merge_answer(a, now) for _, prepared, a in answered}
    merged: dict[str, Communication] = {}
    failure: BaseException | None = None
    try:
        merged = path.repository.update_many(updates)
    except Exception as exc:
        failure = exc
    for index, prepared, answer in answered:
        record = merged.get(prepared.communication_id)
        if record is None:
            log_unstored(prepared, answer, failure or RecordNotFound("the record is gone"))
        results[index] = _item(index, prepared, answer, record)


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


def _collect(
    future: Future[TwilioAnswer | BatchItemResult], index: int, prepared: PreparedSend
) -> TwilioAnswer | BatchItemResult:
    """A worker's outcome; a worker that raised anyway still gives its item a result."""
    try:
        return future.result()
    except Exception as exc:  # _ask_one never raises: this is a last line of defence
        return BatchItemResult(
            index=index,
            to=prepared.record.to,
            ok=False,
            error=f"{type(exc).__name__}: {exc}",
            communication_id=prepared.communication_id,
        )


# -- failure bookkeeping ------------------------------------------------------------------


def _unexpected(
    path: SendPath, index: int, prepared: PreparedSend, exc: Exception
) -> BatchItemResult:
    """An error no rule expects: the item fails, its record becomes ``unknown`` saying why.

    ``unknown``, not ``failed``: the error may have come after Twilio had the
    request. Twilio's status callbacks will settle the record if it went out.
    """
    cid = prepared.communication_id
    error = f"{type(exc).__name__}: {exc}"
    _log.error("batch item %d (%s): unexpected error: %s", index, cid, error, exc_info=exc)
    try:
        now = path.clock()
        path.repository.update(
            cid, lambda record: advance(record, updated_at=now, status=UNKNOWN, error=error)
        )
    except Exception as store_exc:
        _log.error("batch item %d (%s): could not mark the record: %s", index, cid, store_exc)
    return BatchItemResult(
        index=index, to=prepared.record.to, ok=False, error=error, communication_id=cid
    )


def _fail_written(
    path: SendPath,
    prepared: list[PreparedSend],
    error: str,
    *,
    all_written: bool = False,
) -> set[str]:
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
    now = path.clock()

    def fail(record: Communication) -> Communication:
        return advance(record, updated_at=now, status=_FAILED, error=error)

    for item in prepared:
        cid = item.communication_id
        try:
            path.repository.update(cid, fail)
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


# -- arguments ------------------------------------------------------------------------------


def _items(messages: object) -> list[object]:
    if isinstance(messages, str | bytes | Mapping | OutboundMessage):
        raise TypeError(
            "messages must be an iterable of OutboundMessage or mappings, "
            f"not one {type(messages).__name__}"
        )
    if not isinstance(messages, Iterable):
        raise TypeError(f"messages must be an iterable, not {type(messages).__name__}")
    return list(messages)


def _message(item: object) -> OutboundMessage:
    if isinstance(item, OutboundMessage):
        return item
    if isinstance(item, Mapping):
        return OutboundMessage.from_dict(item)
    raise TypeError(f"an item must be an OutboundMessage or a mapping, not {type(item).__name__}")


def _raw_to(item: object) -> str:
    to = item.to if isinstance(item, OutboundMessage) else None
    if isinstance(item, Mapping):
        to = item.get("to")
    return to if isinstance(to, str) else ""


def _bucket(rate: object) -> TokenBucket | None:
    if rate is None or isinstance(rate, TokenBucket):
        return rate
    if not is_positive_number(rate):
        raise InvalidArgument(
            f"rate_per_second must be a positive number, a TokenBucket or None, got {rate!r}"
        )
    return TokenBucket(rate)


def _check_positive_int(name: str, value: object) -> None:
    if not is_positive_int(value):
        raise InvalidArgument(f"{name} must be an int >= 1, got {value!r}")
