"""Reconciliation: settle the records whose callbacks never came, from Twilio's API.

`reconcile` is what both clients' ``reconcile`` run: a generator of
`servio_twilio.domain.steps.Call` steps, driven by `run` (the sync client)
or `run_async` (the async one).

1. One query finds the open records (`servio_twilio.domain.status.is_open`)
   whose ``timestamp`` is older than ``older_than`` (and younger than
   ``max_age``), newest first, at most ``limit``.
2. Each is checked by a job the ``engine`` target runs, at most
   ``max_concurrency`` at once (threads or tasks, as a batch's sends):
   a record with a SID is fetched (a call that owes a recording also lists
   its recordings); a record without one (``pending`` or ``unknown``: the
   create's answer never came) is looked up in Twilio's list of messages or
   calls by ``To``, ``From`` and the day sent, matched by body (calls: by
   start time within a minute), skipping SIDs another record holds. Never a
   resend.
3. The findings are merged into the records as they arrive, a group at a
   time in one ``repository.update_many``, through the status rules
   (`advance`): the same update a callback makes, applied to the record as
   it is when written, so a callback that lands meanwhile is never undone,
   and two reconcilers at once give the same records.

A record with no SID that Twilio does not list, older than
``not_sent_after``, becomes ``failed`` with ``not sent: Twilio has no such
message`` (or call); younger, it stays open for the next run.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from datetime import date, datetime, timedelta
from typing import Any

import attrs

from servio_twilio.domain.errors import (
    InvalidArgument,
    RecordNotFound,
    ServioTwilioError,
    TwilioAPIError,
)
from servio_twilio.domain.models import Channel, Communication, replace
from servio_twilio.domain.phone_text import mask_phone_numbers
from servio_twilio.domain.status import advance, is_final, is_open
from servio_twilio.domain.steps import Call, Steps
from servio_twilio.domain.telemetry import reconcile_span
from servio_twilio.sending.results import ReconcileFailure, ReconcileReport
from servio_twilio.sending.twilio_facts import (
    candidates,
    days_to_list,
    observed,
    recording_fields,
    twilio_address,
)
from servio_twilio.storage.repository import check_history_args

__all__ = ["NOT_SENT_ERROR", "Finding", "reconcile"]

_log = logging.getLogger("servio_twilio.reconcile")

NOT_SENT_ERROR = "not sent: Twilio has no such {noun}"
"""The error of a record Twilio has no trace of (``{noun}``: message or call)."""

_FAILED = "failed"
_MERGE_GROUP_MIN = 10


@attrs.frozen(kw_only=True)
class Finding:
    """What Twilio said of one record: the update to merge, or why it could not be checked.

    ``outcome`` is ``"checked"`` (``update`` merges what Twilio reports),
    ``"not_sent"`` (``update`` fails the record), ``"open"`` (nothing to
    write yet) or ``"failed"`` (``reason`` says why it could not be checked).
    """

    communication_id: str
    outcome: str
    update: Callable[[Communication], Communication] | None = None
    sid: str | None = None
    reason: str | None = None


def reconcile(
    *,
    clock: Callable[[], datetime],
    older_than: timedelta,
    limit: int,
    not_sent_after: timedelta,
    max_age: timedelta,
    max_concurrency: int,
) -> Steps[ReconcileReport]:
    """Check the open records against Twilio; see `CommunicationsClient.reconcile`.

    Raises `InvalidArgument` or ``TypeError`` for bad arguments, before any
    step, and `RepositoryError` when the open records cannot be read.
    """
    _check_duration("older_than", older_than)
    _check_duration("not_sent_after", not_sent_after)
    _check_duration("max_age", max_age)
    check_history_args(limit, None)  # the open-records query's limit: 1..1000
    _check_at_least_one("max_concurrency", max_concurrency)
    if max_age <= older_than:
        raise InvalidArgument("max_age must be longer than older_than")

    with reconcile_span() as observed:
        report = yield from _run(
            clock(),
            older_than=older_than,
            limit=limit,
            not_sent_after=not_sent_after,
            max_age=max_age,
            max_concurrency=max_concurrency,
        )
        observed.record(
            examined=report.examined,
            settled=report.settled,
            still_open=report.still_open,
            not_sent=report.not_sent,
            failed=len(report.failed),
        )
    _log.info(
        "reconcile: %d examined, %d settled, %d still open, %d not sent, %d failed",
        report.examined, report.settled, report.still_open, report.not_sent, len(report.failed),
    )  # fmt: skip
    return report


def _run(
    now: datetime,
    *,
    older_than: timedelta,
    limit: int,
    not_sent_after: timedelta,
    max_age: timedelta,
    max_concurrency: int,
) -> Steps[ReconcileReport]:
    records: list[Communication] = yield Call(
        "repository",
        "communications",
        (),
        {
            "open_only": True,
            "since": now - max_age,
            "before": now - older_than,
            "limit": limit,
        },
    )
    _log.info("reconcile: %d open records older than %s", len(records), older_than)
    tally = _Tally(examined=len(records))
    if not records:
        return tally.report()

    workers = min(max_concurrency, len(records))
    yield Call("twilio", "ensure_pool", (workers,))
    jobs = [_check(record, now, not_sent_after) for record in records]
    group = max(_MERGE_GROUP_MIN, workers)
    found: list[Finding] = []
    yield Call("engine", "start", (jobs, workers))
    remaining = len(jobs)
    try:
        while remaining:
            done, remaining = yield Call("engine", "next_done")
            for position, outcome in done:
                found.append(_as_finding(records[position], outcome))
            if len(found) >= group or not remaining:
                yield from _merge(found, tally)
                found = []
                _log.info("reconcile: %d of %d checked", len(records) - remaining, len(records))
    except BaseException:
        # Interrupted or cancelled: the checks under way end, the others never start;
        # what was merged stays merged, the rest waits for the next run.
        yield Call("engine", "stop")
        raise
    return tally.report()


@attrs.define
class _Tally:
    examined: int
    settled: int = 0
    still_open: int = 0
    not_sent: int = 0
    failed: list[ReconcileFailure] = attrs.field(factory=list)
    claimed: dict[str, str] = attrs.field(factory=dict)

    def report(self) -> ReconcileReport:
        return ReconcileReport(
            examined=self.examined,
            settled=self.settled,
            still_open=self.still_open,
            not_sent=self.not_sent,
            failed=sorted(self.failed, key=lambda failure: failure.communication_id),
        )


def _merge(findings: list[Finding], tally: _Tally) -> Steps[None]:
    """Write one group of findings in one ``update_many`` and count what came of each."""
    updates: dict[str, Callable[[Communication], Communication]] = {}
    for finding in findings:
        cid = finding.communication_id
        if finding.outcome == "failed":
            tally.failed.append(ReconcileFailure(communication_id=cid, reason=finding.reason or ""))
        elif finding.outcome == "open":
            tally.still_open += 1
        elif finding.sid is not None and tally.claimed.setdefault(finding.sid, cid) != cid:
            tally.still_open += 1  # two records matched one listed message: the next run decides
        elif finding.update is not None:
            updates[cid] = finding.update
    if not updates:
        return
    try:
        merged: dict[str, Communication] = yield Call("repository", "update_many", (updates,))
    except ServioTwilioError as exc:
        reason = f"could not store: {exc}"
        tally.failed.extend(
            ReconcileFailure(communication_id=cid, reason=reason) for cid in updates
        )
        return
    outcomes = {finding.communication_id: finding.outcome for finding in findings}
    for cid in updates:
        record = merged.get(cid)
        if record is None:
            tally.failed.append(ReconcileFailure(communication_id=cid, reason="record deleted"))
        elif outcomes[cid] == "not_sent" and record.status == _FAILED and not record.twilio_sid:
            tally.not_sent += 1
        elif is_open(record):
            tally.still_open += 1
        else:
            tally.settled += 1


def _as_finding(record: Communication, outcome: object) -> Finding:
    cid = record.id or ""
    if isinstance(outcome, Finding):
        return outcome
    reason = f"{type(outcome).__name__}: {outcome}" if isinstance(outcome, BaseException) else ""
    return Finding(communication_id=cid, outcome="failed", reason=mask_phone_numbers(reason))


def _check(record: Communication, now: datetime, not_sent_after: timedelta) -> Steps[Finding]:
    """One record's job: ask Twilio, never raise (a failure is the finding)."""
    cid = record.id or ""
    try:
        if record.twilio_sid:
            return (yield from _fetch(record, now))
        return (yield from _look_up(record, now, not_sent_after))
    except ServioTwilioError as exc:
        return Finding(communication_id=cid, outcome="failed", reason=_reason(exc))


def _fetch(record: Communication, now: datetime) -> Steps[Finding]:
    sid = record.twilio_sid
    assert sid is not None
    kind = _kind(record)
    instance = yield Call("twilio", "fetch", (kind, sid))
    observation = observed(kind, instance)
    if kind == "call" and _owes_recording(record, observation.get("status")):
        listed = yield Call("twilio", "recordings", (sid,))
        observation.update(recording_fields(listed))
    return Finding(
        communication_id=record.id or "",
        outcome="checked",
        update=_settle(sid, observation, now),
    )


def _look_up(record: Communication, now: datetime, not_sent_after: timedelta) -> Steps[Finding]:
    kind = _kind(record)
    cid = record.id or ""
    to, from_ = twilio_address(record, record.to), twilio_address(record, record.from_)
    # The day it was sent (and the next, near midnight); before failing it, the
    # newest sends undated too: a message Twilio still queues or schedules has no DateSent.
    last_look = now - record.timestamp >= not_sent_after
    days: list[date | None] = [*days_to_list(record.timestamp), *([None] if last_look else [])]
    for day in days:
        listed = yield Call("twilio", "list_sent", (kind,), {"to": to, "from_": from_, "day": day})
        found = yield from _unclaimed(record, kind, listed, now)
        if found is not None:
            return found
    if not last_look:
        return Finding(communication_id=cid, outcome="open")
    noun = "call" if kind == "call" else "message"
    return Finding(communication_id=cid, outcome="not_sent", update=_not_sent(noun, now))


def _unclaimed(
    record: Communication, kind: str, listed: Sequence[Any], now: datetime
) -> Steps[Finding | None]:
    """The finding for the likeliest listed send no other record holds, or None."""
    for candidate in candidates(record, kind, listed):
        sid = candidate.sid
        holder: Communication | None = yield Call("repository", "find_by_sid", (sid,))
        if holder is not None and holder.id != record.id:
            continue  # another record's message (a re-send of the same text, say)
        return Finding(
            communication_id=record.id or "",
            outcome="checked",
            update=_settle(sid, observed(kind, candidate), now),
            sid=sid,
        )
    return None


def _settle(
    sid: str, observation: dict[str, Any], now: datetime
) -> Callable[[Communication], Communication]:
    def apply(current: Communication) -> Communication:
        if current.twilio_sid not in (None, sid):
            return current  # a callback tied it to another SID meanwhile: that one is right
        updated = advance(current, updated_at=now, twilio_sid=sid, **observation)
        if is_final(updated) and not updated.reconciled:
            updated = replace(updated, reconciled=True, updated_at=now)
        return updated

    return apply


def _not_sent(noun: str, now: datetime) -> Callable[[Communication], Communication]:
    error = NOT_SENT_ERROR.format(noun=noun)

    def apply(current: Communication) -> Communication:
        if current.twilio_sid is not None:
            return current  # a callback brought the SID meanwhile: it was sent
        return advance(current, updated_at=now, status=_FAILED, error=error)

    return apply


def _owes_recording(record: Communication, status: object) -> bool:
    return (
        record.recording_requested
        and record.recording_sid is None
        and "completed" in (record.status, status)
    )


def _kind(record: Communication) -> str:
    return "call" if record.channel == Channel.CALL else "message"


def _reason(exc: ServioTwilioError) -> str:
    if isinstance(exc, TwilioAPIError) and exc.status == 404:
        return mask_phone_numbers(f"Twilio has no such resource ({exc})")
    if isinstance(exc, RecordNotFound):
        return "record deleted"
    return mask_phone_numbers(f"{type(exc).__name__}: {exc}")


def _check_duration(name: str, value: object) -> None:
    if not isinstance(value, timedelta):
        raise TypeError(f"{name} must be a timedelta, not {type(value).__name__}")
    if value < timedelta(0):
        raise InvalidArgument(f"{name} must not be negative, got {value}")


def _check_at_least_one(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, not {type(value).__name__}")
    if value < 1:
        raise InvalidArgument(f"{name} must be at least 1, got {value}")
