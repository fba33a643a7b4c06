"""Result types: SendResult, OutboundMessage, BatchItemResult, BatchReport, HealthCheck/Report."""

from __future__ import annotations

import json
from typing import Any

import attrs
import pytest
from hypothesis import given, strategies as st

from servio_twilio.domain.models import Channel
from servio_twilio.sending.results import (
    BatchItemResult,
    BatchReport,
    HealthCheck,
    HealthReport,
    OutboundMessage,
    SendResult,
)


def _result(n: int = 1) -> SendResult:
    return SendResult(
        communication_id=f"c{n}",
        sid=f"SM{n}",
        status="queued",
        to="+5511999999999",
        from_="+12025550100",
        channel="sms",
    )


def _json_round_trip(data: dict[str, Any]) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(json.dumps(data))
    return loaded


class TestSendResult:
    def test_to_dict(self) -> None:
        """JSON-ready, with ``from`` for ``from_`` and the channel as a string."""
        data = _result().to_dict()
        assert data == {
            "communication_id": "c1",
            "sid": "SM1",
            "status": "queued",
            "to": "+5511999999999",
            "from": "+12025550100",
            "channel": "sms",
        }
        assert _json_round_trip(data) == data

    def test_channel_converted_and_frozen(self) -> None:
        """The channel string becomes the enum; the result is immutable."""
        result = _result()
        assert result.channel is Channel.SMS
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            result.sid = "x"  # type: ignore[misc]


class TestOutboundMessage:
    def test_defaults(self) -> None:
        """Only ``to`` is required; the channel defaults to SMS."""
        message = OutboundMessage(to="+5511999999999")
        assert message.channel is Channel.SMS
        assert (message.body, message.media_url, message.content_sid) == (None, None, None)
        assert (message.content_variables, message.prospect_id) == (None, None)

    def test_media_url_converter(self) -> None:
        """One URL or several become a tuple."""
        assert OutboundMessage(to="+1", media_url="https://a").media_url == ("https://a",)
        assert OutboundMessage(to="+1", media_url=["a", "b"]).media_url == ("a", "b")

    def test_to_dict(self) -> None:
        """JSON-ready, templates and media included."""
        message = OutboundMessage(
            to="+5511999999999",
            channel="whatsapp",
            media_url=["https://a/1.png"],
            content_sid="HX123",
            content_variables={"1": "Ana", "2": "15h"},
            prospect_id="p1",
        )
        data = message.to_dict()
        assert data == {
            "to": "+5511999999999",
            "body": None,
            "channel": "whatsapp",
            "media_url": ["https://a/1.png"],
            "content_sid": "HX123",
            "content_variables": {"1": "Ana", "2": "15h"},
            "prospect_id": "p1",
        }
        assert _json_round_trip(data) == data

    def test_from_dict_earlier_service_keys(self) -> None:
        """The earlier service's keys map to the fields."""
        message = OutboundMessage.from_dict(
            {
                "to": "+5511999999999",
                "body": "Confirmado para 15h",
                "prospectId": "prospect_123",
                "mediaUrl": "https://a/1.png",
                "channel": "whatsapp",
            }
        )
        assert message == OutboundMessage(
            to="+5511999999999",
            body="Confirmado para 15h",
            prospect_id="prospect_123",
            media_url=("https://a/1.png",),
            channel=Channel.WHATSAPP,
        )

    def test_from_dict_minimal_and_defaults(self) -> None:
        """Only ``to``: an SMS with nothing else; None values count as absent."""
        assert OutboundMessage.from_dict({"to": "+1"}) == OutboundMessage(to="+1")
        assert OutboundMessage.from_dict(
            {"to": "+1", "body": None, "prospectId": None, "mediaUrl": None}
        ) == OutboundMessage(to="+1")

    def test_from_dict_media_list(self) -> None:
        """``mediaUrl`` may be a list of URLs."""
        message = OutboundMessage.from_dict({"to": "+1", "mediaUrl": ["a", "b"]})
        assert message.media_url == ("a", "b")

    def test_from_dict_missing_to(self) -> None:
        """Without ``to``: ValueError naming it."""
        with pytest.raises(ValueError, match="'to' is required"):
            OutboundMessage.from_dict({"body": "hi"})

    def test_from_dict_unknown_keys(self) -> None:
        """Unknown keys (a typo, a snake_case key) are named, with the accepted ones."""
        with pytest.raises(ValueError, match=r"unknown keys \['media_url', 'prospect_id'\]"):
            OutboundMessage.from_dict({"to": "+1", "prospect_id": "p", "media_url": "u"})

    @pytest.mark.parametrize(
        ("data", "named"),
        [
            ({"to": 5511999999999}, "'to'"),
            ({"to": None}, "'to'"),
            ({"to": "+1", "body": 5}, "'body'"),
            ({"to": "+1", "prospectId": 123}, "'prospectId'"),
            ({"to": "+1", "mediaUrl": 5}, "'mediaUrl'"),
            ({"to": "+1", "mediaUrl": ["a", 5]}, "'mediaUrl'"),
            ({"to": "+1", "mediaUrl": {"a": 1}}, "'mediaUrl'"),
            ({"to": "+1", "channel": "call"}, "'channel'"),
            ({"to": "+1", "channel": "SMS "}, "'channel'"),
            ({"to": "+1", "channel": 1}, "'channel'"),
            ({"to": "+1", "channel": None}, "'channel'"),
        ],
    )
    def test_from_dict_wrong_types(self, data: dict[str, Any], named: str) -> None:
        """A value of the wrong type or an unknown channel: ValueError naming the key."""
        with pytest.raises(ValueError, match=named):
            OutboundMessage.from_dict(data)

    @pytest.mark.parametrize("data", [["to", "+1"], "+1", None])
    def test_from_dict_not_a_mapping(self, data: object) -> None:
        """A non-mapping is a TypeError naming its type."""
        with pytest.raises(TypeError, match="mapping"):
            OutboundMessage.from_dict(data)  # type: ignore[arg-type]

    @given(
        st.dictionaries(
            st.sampled_from(["to", "body", "prospectId", "mediaUrl", "channel", "x"]),
            st.one_of(
                st.none(),
                st.text(max_size=5),
                st.integers(),
                st.lists(st.text(max_size=3), max_size=2),
                st.sampled_from(["sms", "whatsapp"]),
            ),
        )
    )
    def test_from_dict_raises_only_value_error(self, data: dict[str, Any]) -> None:
        """Any JSON-like item gives a message or a ValueError, nothing else."""
        try:
            message = OutboundMessage.from_dict(data)
        except ValueError:
            return
        assert message.to == data["to"]
        assert message.channel in (Channel.SMS, Channel.WHATSAPP)


def _item(index: int, *, ok: bool) -> BatchItemResult:
    if ok:
        return BatchItemResult(index=index, to="+1", ok=True, result=_result(index))
    return BatchItemResult(index=index, to="+1", ok=False, error="bad number", error_code=21211)


class TestBatchItemResult:
    def test_to_dict_ok(self) -> None:
        """A success nests its SendResult as JSON-ready data."""
        data = _item(0, ok=True).to_dict()
        assert data["result"] == _result(0).to_dict()
        assert (data["index"], data["ok"], data["error"], data["error_code"]) == (
            0,
            True,
            None,
            None,
        )
        assert _json_round_trip(data) == data

    def test_to_dict_failed(self) -> None:
        """A failure has no result, and says the error and code."""
        data = _item(3, ok=False).to_dict()
        assert data == {
            "index": 3,
            "to": "+1",
            "ok": False,
            "result": None,
            "error": "bad number",
            "error_code": 21211,
            "communication_id": None,
        }


class TestBatchReport:
    def test_from_items_orders_by_index_and_counts(self) -> None:
        """Items come back in input order whatever order they finished in; counts add up."""
        items = [_item(2, ok=False), _item(0, ok=True), _item(3, ok=True), _item(1, ok=False)]
        report = BatchReport.from_items(items)
        assert [item.index for item in report.items] == [0, 1, 2, 3]
        assert (report.total, report.succeeded, report.failed) == (4, 2, 2)

    @given(
        st.lists(st.booleans(), max_size=30).flatmap(
            lambda oks: st.permutations([_item(i, ok=ok) for i, ok in enumerate(oks)])
        )
    )
    def test_from_items_any_order(self, items: list[BatchItemResult]) -> None:
        """For any completion order: input order, and succeeded + failed == total."""
        report = BatchReport.from_items(items)
        assert [item.index for item in report.items] == list(range(len(items)))
        assert report.succeeded == sum(item.ok for item in items)
        assert report.succeeded + report.failed == report.total == len(items)

    def test_empty(self) -> None:
        """No items: all counts zero."""
        report = BatchReport.from_items([])
        assert (report.total, report.succeeded, report.failed, report.items) == (0, 0, 0, [])

    def test_to_dict(self) -> None:
        """JSON-ready, items nested in order."""
        report = BatchReport.from_items([_item(1, ok=False), _item(0, ok=True)])
        data = report.to_dict()
        assert (data["total"], data["succeeded"], data["failed"]) == (2, 1, 1)
        assert [item["index"] for item in data["items"]] == [0, 1]
        assert data["items"][0]["result"]["sid"] == "SM0"
        assert _json_round_trip(data) == data

    def test_items_converted_to_a_list(self) -> None:
        """Items given as any iterable are stored as a list."""
        report = BatchReport(total=1, succeeded=1, failed=0, items=(_item(0, ok=True),))
        assert isinstance(report.items, list)


class TestHealth:
    def test_health_check_to_dict(self) -> None:
        """A check is its name, verdict and detail."""
        check = HealthCheck(name="account", ok=True, detail="active")
        assert check.to_dict() == {"name": "account", "ok": True, "detail": "active"}

    def test_health_report_to_dict(self) -> None:
        """A report nests its checks as JSON-ready data."""
        report = HealthReport(
            healthy=False,
            account_sid="AC12345*****",
            account_status="active",
            phone_number="+12025550100",
            whatsapp_number=None,
            checks=(
                HealthCheck(name="account", ok=True, detail="active"),
                HealthCheck(name="repository", ok=False, detail="unavailable"),
            ),
        )
        data = report.to_dict()
        assert data == {
            "healthy": False,
            "account_sid": "AC12345*****",
            "account_status": "active",
            "phone_number": "+12025550100",
            "whatsapp_number": None,
            "checks": [
                {"name": "account", "ok": True, "detail": "active"},
                {"name": "repository", "ok": False, "detail": "unavailable"},
            ],
        }
        assert isinstance(report.checks, list)
        assert _json_round_trip(data) == data
