"""Tests for servio_twilio.webhooks.callbacks: verified callbacks applied to the repository."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pytest

from servio_twilio.domain.models import Channel, Communication, Direction
from servio_twilio.domain.steps import run
from servio_twilio.storage.memory import InMemoryRepository
from servio_twilio.webhooks.callbacks import (
    Callback,
    event_record,
    sid_record_id,
    store_inbound_callback,
    store_status,
    valid_cid,
)
from servio_twilio.webhooks.events import (
    CallStatusEvent,
    InboundMessageEvent,
    MessageStatusEvent,
    Params,
    RecordingStatusEvent,
    WebhookEvent,
    call_status_fields,
    inbound_message_fields,
    message_status_fields,
    recording_status_fields,
)
from support.twilio_callbacks import (
    PROSPECT_NUMBER,
    SENDER,
    call_params,
    inbound_params,
    message_params,
    recording_params,
    sid,
)

NOW = datetime(2025, 3, 1, 12, 0, tzinfo=UTC)
CA = sid("CA", 3)
RE = sid("RE", 4)
SM = sid("SM", 5)

_PARSERS: dict[str, tuple[Callable[[Params], dict[str, Any]], type[WebhookEvent]]] = {
    "message-status": (message_status_fields, MessageStatusEvent),
    "call-status": (call_status_fields, CallStatusEvent),
    "recording-status": (recording_status_fields, RecordingStatusEvent),
    "inbound": (inbound_message_fields, InboundMessageEvent),
}


def _callback(route: str, params: dict[str, Any], cid: str | None = None) -> Callback:
    """A verified callback of ``route``, as the webhook core hands it to the store."""
    parse, kind = _PARSERS[route]
    return Callback(route, kind, parse(params), cid, params)


def _status(repository: InMemoryRepository, callback: Callback) -> Communication:
    stored = run(store_status(callback, received_at=NOW), {"repository": repository})
    assert stored is not None
    return stored


def _inbound(
    repository: InMemoryRepository,
    params: dict[str, Any],
    prospect_id: str | None,
    *,
    resolve: bool,
) -> Communication:
    steps = store_inbound_callback(
        _callback("inbound", params), received_at=NOW, prospect_id=prospect_id, resolve=resolve
    )
    stored = run(steps, {"repository": repository})
    assert stored is not None
    return stored


class TestHelpers:
    def test_sid_record_id(self) -> None:
        """Records made from callbacks are named sid-<SID>."""
        assert sid_record_id(SM) == "sid-" + SM

    @pytest.mark.parametrize(
        ("cid", "expected"),
        [("abc_DEF-123", "abc_DEF-123"), ("a/b", None), ("", None), ("__x", None), (None, None)],
    )
    def test_valid_cid(self, cid: str | None, expected: str | None) -> None:
        """A cid is used only when it can be a record id (no slashes, no leading _)."""
        assert valid_cid(cid) == expected

    def test_event_record_shape(self) -> None:
        """The kept callback: route, receivedAt (ISO 8601), params."""
        assert event_record("inbound", {"a": "1"}, NOW) == {
            "route": "inbound",
            "receivedAt": "2025-03-01T12:00:00+00:00",
            "params": {"a": "1"},
        }


class TestStoreStatus:
    def test_creates_from_the_callback(self) -> None:
        """Unknown SID, no cid: a record from the callback's own fields."""
        repository = InMemoryRepository()
        params = message_params(SM, "sent", To="whatsapp:" + PROSPECT_NUMBER)
        record = _status(repository, _callback("message-status", params))
        assert record.id == "sid-" + SM
        assert (record.channel, record.direction, record.to, record.from_) == (
            Channel.WHATSAPP,
            Direction.OUTBOUND,
            PROSPECT_NUMBER,
            SENDER,
        )
        assert (record.status, record.timestamp) == ("sent", NOW)
        assert [e["route"] for e in repository.events(record.id)] == ["message-status"]

    def test_recording_first_then_call_fills_numbers(self) -> None:
        """A recording callback makes a call record without numbers; the call status fills them."""
        repository = InMemoryRepository()
        first = _status(repository, _callback("recording-status", recording_params(CA, RE)))
        assert (first.to, first.status, first.recording_sid) == ("", "unknown", RE)
        call = call_params(CA, "completed", CallDuration="9")
        record = _status(repository, _callback("call-status", call))
        assert (record.to, record.from_, record.status, record.duration) == (
            PROSPECT_NUMBER,
            SENDER,
            "completed",
            9,
        )
        assert record.recording_sid == RE

    def test_absent_recording_sets_no_url(self) -> None:
        """RecordingStatus absent: the recording SID is kept, no URL or duration."""
        repository = InMemoryRepository()
        params = recording_params(CA, RE, RecordingStatus="absent", RecordingDuration="0")
        record = _status(repository, _callback("recording-status", params))
        assert (record.recording_sid, record.recording_url, record.recording_duration) == (
            RE,
            None,
            None,
        )

    def test_error_code_without_message(self) -> None:
        """An ErrorCode alone gives the error text 'Twilio error <code>'."""
        repository = InMemoryRepository()
        params = message_params(SM, "failed", ErrorCode="21610")
        record = _status(repository, _callback("message-status", params))
        assert (record.error, record.error_code) == ("Twilio error 21610", 21610)

    def test_invalid_cid_is_ignored(self) -> None:
        """A cid that cannot be a record id is not looked up."""
        repository = InMemoryRepository()
        callback = _callback("message-status", message_params(SM, "sent"), cid="../x")
        assert _status(repository, callback).id == "sid-" + SM


class TestStoreInbound:
    def test_resolve_by_latest_outbound(self) -> None:
        """resolve=True: the newest outbound record to the sender gives the prospect."""
        repository = InMemoryRepository()
        repository.add(
            Communication(channel=Channel.SMS, to=PROSPECT_NUMBER, from_=SENDER, prospect_id="p7")
        )
        record = _inbound(repository, inbound_params(SM), None, resolve=True)
        assert (record.prospect_id, record.status, record.timestamp) == ("p7", "received", NOW)

    def test_given_prospect(self) -> None:
        """resolve=False: the given prospect (a resolver's answer) is used as is."""
        repository = InMemoryRepository()
        record = _inbound(repository, inbound_params(SM), "p1", resolve=False)
        assert record.prospect_id == "p1"

    def test_repeat_returns_the_first_record(self) -> None:
        """A second delivery returns the stored record and keeps the callback."""
        repository = InMemoryRepository()
        params = inbound_params(SM, "primeiro")
        first = _inbound(repository, params, "p1", resolve=False)
        again = _inbound(repository, params, "p2", resolve=False)
        assert again == first
        assert len(repository.events("sid-" + SM)) == 2
