"""Tests for servio_twilio.testing.fake_twilio: answers, records and faults like Twilio's.

Both seams: the sync ``FakeTwilio`` and ``fake.aio`` at twilio's async seam, one state.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from collections.abc import Coroutine
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest
import requests
from twilio.base.exceptions import TwilioRestException
from twilio.http import AsyncHttpClient
from twilio.rest import Client

from servio_twilio.domain.errors import InvalidArgument
from servio_twilio.testing import FakeTwilio
from servio_twilio.testing.fake_twilio import Fault, RecordedRequest

ACCOUNT = "AC" + "b" * 32
BASE = f"https://api.twilio.com/2010-04-01/Accounts/{ACCOUNT}"
AUTH = (ACCOUNT, "token")


def _post(fake: FakeTwilio, path: str, data: dict[str, Any]) -> Any:
    return fake.request("POST", BASE + path, data=data, auth=AUTH)


def _json(response: Any) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads(response.text)
    return payload


class TestFakeTwilioAnswers:
    def test_message_create_echoes_what_was_sent(self) -> None:
        """A message create answers 201 with Twilio's shape: a new SM SID and the fields sent."""
        fake = FakeTwilio()
        response = _post(
            fake, "/Messages.json", {"To": "+5511999999999", "From": "+15005550006", "Body": "oi"}
        )
        assert response.status_code == 201
        body = _json(response)
        assert body["sid"].startswith("SM")
        assert len(body["sid"]) == 34
        assert (body["to"], body["from"], body["body"]) == ("+5511999999999", "+15005550006", "oi")
        assert body["status"] == "queued"
        assert body["account_sid"] == ACCOUNT
        assert body["uri"] == f"/2010-04-01/Accounts/{ACCOUNT}/Messages/{body['sid']}.json"

    def test_sids_are_unique(self) -> None:
        """Every create gets its own SID."""
        fake = FakeTwilio()
        sids = {
            _json(_post(fake, "/Messages.json", {"To": "+15005550006", "From": "+1", "Body": "x"}))[
                "sid"
            ]
            for _ in range(50)
        }
        assert len(sids) == 50

    def test_messaging_service_answers_accepted(self) -> None:
        """With a MessagingServiceSid the message is 'accepted' and has no From yet."""
        fake = FakeTwilio()
        service = "MG" + "c" * 32
        body = _json(
            _post(
                fake,
                "/Messages.json",
                {"To": "+5511999999999", "MessagingServiceSid": service, "Body": "x"},
            )
        )
        assert (body["status"], body["from"], body["messaging_service_sid"]) == (
            "accepted",
            None,
            service,
        )

    @pytest.mark.parametrize(
        ("data", "code"),
        [
            ({"From": "+15005550006", "Body": "x"}, 21604),
            ({"To": "12345", "From": "+15005550006", "Body": "x"}, 21211),
            ({"To": "+5511999999999", "Body": "x"}, 21603),
            ({"To": "+5511999999999", "From": "+15005550006"}, 21602),
            ({"To": "+5511999999999", "From": "+15005550006", "Body": "x" * 1601}, 21617),
        ],
        ids=["no-to", "bad-to", "no-from", "no-body", "long-body"],
    )
    def test_message_validation_like_twilio(self, data: dict[str, str], code: int) -> None:
        """Missing or malformed fields get Twilio's 400 and error code."""
        response = _post(FakeTwilio(), "/Messages.json", data)
        assert response.status_code == 400
        body = _json(response)
        assert body["code"] == code
        assert body["more_info"] == f"https://www.twilio.com/docs/errors/{code}"

    def test_call_create(self) -> None:
        """A call create answers 201 with a CA SID, status queued and the numbers sent."""
        fake = FakeTwilio()
        response = _post(
            fake,
            "/Calls.json",
            {"To": "+5511999999999", "From": "+15005550006", "Url": "https://x.test/t.xml"},
        )
        assert response.status_code == 201
        body = _json(response)
        assert body["sid"].startswith("CA")
        assert len(body["sid"]) == 34
        assert (body["status"], body["to"], body["from"]) == (
            "queued",
            "+5511999999999",
            "+15005550006",
        )

    def test_call_needs_instructions(self) -> None:
        """A call without Url, Twiml or ApplicationSid is refused."""
        response = _post(FakeTwilio(), "/Calls.json", {"To": "+5511999999999", "From": "+1500"})
        assert response.status_code == 400

    def test_account_fetch_reports_the_settable_status(self) -> None:
        """The account fetch answers with the fake's account_status."""
        fake = FakeTwilio(account_status="suspended")
        response = fake.request("GET", BASE + ".json", auth=AUTH)
        assert _json(response)["status"] == "suspended"
        fake.account_status = "active"
        assert _json(fake.request("GET", BASE + ".json", auth=AUTH))["status"] == "active"

    def test_incoming_numbers_filter(self) -> None:
        """IncomingPhoneNumbers lists the owned numbers matching PhoneNumber (* any digit)."""
        fake = FakeTwilio(owned_numbers=["+15005550006", "+15005550007", "+5511999999999"])
        url = BASE + "/IncomingPhoneNumbers.json"
        found = _json(fake.request("GET", url, params={"PhoneNumber": "+15005550006"}, auth=AUTH))
        assert [n["phone_number"] for n in found["incoming_phone_numbers"]] == ["+15005550006"]
        wild = _json(fake.request("GET", url, params={"PhoneNumber": "+1500555000*"}, auth=AUTH))
        assert len(wild["incoming_phone_numbers"]) == 2
        fake.owned_numbers = set()
        none = _json(fake.request("GET", url, params={"PhoneNumber": "+15005550006"}, auth=AUTH))
        assert none["incoming_phone_numbers"] == []

    def test_owns_every_number_by_default(self) -> None:
        """FakeTwilio() owns whatever number it is asked about."""
        url = BASE + "/IncomingPhoneNumbers.json"
        found = _json(
            FakeTwilio().request("GET", url, params={"PhoneNumber": "+15005550006"}, auth=AUTH)
        )
        assert found["incoming_phone_numbers"][0]["phone_number"] == "+15005550006"

    def test_unfiltered_list_by_default_holds_twilios_test_number(self) -> None:
        """FakeTwilio() lists Twilio's test number +15005550006 when no PhoneNumber is given."""
        url = BASE + "/IncomingPhoneNumbers.json"
        listed = _json(FakeTwilio().request("GET", url, auth=AUTH))
        assert [n["phone_number"] for n in listed["incoming_phone_numbers"]] == ["+15005550006"]
        assert listed["next_page_uri"] is None

    def test_incoming_numbers_are_paged(self) -> None:
        """PageSize pages the owned numbers; each next_page_uri leads to the next, the last None."""
        owned = [f"+1500555000{i}" for i in range(5)]
        client = Client(ACCOUNT, "token", http_client=(fake := FakeTwilio(owned_numbers=owned)))
        page = client.incoming_phone_numbers.page(page_size=2)
        seen: list[list[str]] = []
        while page is not None:
            seen.append([n.phone_number for n in page])
            page = page.next_page()
        assert seen == [owned[0:2], owned[2:4], owned[4:]]
        assert [r.params.get("Page") for r in fake.requests] == [None, "1", "2"]

    @pytest.mark.parametrize(
        ("method", "url", "status"),
        [
            ("GET", BASE + "/Queues.json", 404),
            ("POST", "https://api.twilio.com/2010-04-01/Accounts/nope.json", 404),
            ("DELETE", BASE + "/Messages.json", 405),
        ],
    )
    def test_unknown_routes(self, method: str, url: str, status: int) -> None:
        """Routes it does not serve answer 404 (405 for a wrong method), Twilio-shaped."""
        response = FakeTwilio().request(method, url, auth=AUTH)
        assert response.status_code == status
        assert "code" in _json(response)

    def test_unauthenticated(self) -> None:
        """A request without Basic auth answers 401 (20003)."""
        response = FakeTwilio().request("GET", BASE + ".json")
        assert (response.status_code, _json(response)["code"]) == (401, 20003)

    def test_works_under_the_official_client(self) -> None:
        """twilio.rest.Client parses its answers and raises its own exceptions for its errors."""
        fake = FakeTwilio()
        client = Client(ACCOUNT, "token", http_client=fake)
        message = client.messages.create(to="+5511999999999", from_="+15005550006", body="hi")
        assert message.sid.startswith("SM")
        assert message.to == "+5511999999999"
        call = client.calls.create(to="+5511999999999", from_="+15005550006", twiml="<Response/>")
        assert call.sid.startswith("CA")
        assert client.api.v2010.accounts(ACCOUNT).fetch().status == "active"
        numbers = client.incoming_phone_numbers.list(phone_number="+15005550006")
        assert [n.phone_number for n in numbers] == ["+15005550006"]
        with pytest.raises(TwilioRestException) as info:
            client.messages.create(to="bad", from_="+15005550006", body="hi")
        assert info.value.code == 21211


class TestFakeTwilioRecording:
    def test_requests_are_recorded_with_the_form(self) -> None:
        """Each request is kept: method, URL, path, form (repeated keys as lists), auth user."""
        fake = FakeTwilio()
        client = Client(ACCOUNT, "secret-token", http_client=fake)
        client.messages.create(
            to="whatsapp:+5511999999999",
            from_="whatsapp:+14155238886",
            media_url=["https://x.test/a.png", "https://x.test/b.png"],
        )
        [recorded] = fake.requests
        assert isinstance(recorded, RecordedRequest)
        assert recorded.method == "POST"
        assert recorded.path == f"/2010-04-01/Accounts/{ACCOUNT}/Messages.json"
        assert recorded.data == {
            "To": "whatsapp:+5511999999999",
            "From": "whatsapp:+14155238886",
            "MediaUrl": ["https://x.test/a.png", "https://x.test/b.png"],
        }
        assert recorded.username == ACCOUNT
        assert "secret-token" not in repr(recorded)
        assert all(k.lower() != "authorization" for k in recorded.headers)

    def test_reset_forgets_requests_and_faults(self) -> None:
        """reset() empties the log, the faults and the counters."""
        fake = FakeTwilio()
        fake.fail_next(3, Fault.server_error())
        _post(fake, "/Messages.json", {"To": "+5511999999999", "From": "+1", "Body": "x"})
        fake.reset()
        assert fake.requests == []
        assert fake.peak_in_flight == 0
        response = _post(
            fake, "/Messages.json", {"To": "+5511999999999", "From": "+1", "Body": "x"}
        )
        assert response.status_code == 201

    def test_peak_in_flight_under_concurrency(self) -> None:
        """With latency, concurrent requests overlap and peak_in_flight counts them."""
        fake = FakeTwilio(latency=0.2)
        barrier = threading.Barrier(8)

        def send() -> None:
            barrier.wait()
            _post(fake, "/Messages.json", {"To": "+5511999999999", "From": "+1", "Body": "x"})

        threads = [threading.Thread(target=send) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert fake.peak_in_flight >= 2
        assert fake.in_flight == 0
        assert len(fake.requests) == 8
        assert len({json.dumps(r.data) for r in fake.requests}) == 1

    def test_latency_must_be_non_negative(self) -> None:
        """A negative latency is refused."""
        with pytest.raises(ValueError, match="latency"):
            FakeTwilio(latency=-1)


class TestFakeTwilioFaults:
    def test_fail_number_with_a_twilio_error(self) -> None:
        """Requests to a failing number get the error; other numbers still succeed."""
        fake = FakeTwilio()
        fake.fail_number("+5511988887777", Fault.error(code=21610, status=400, message="STOP"))
        bad = _post(fake, "/Messages.json", {"To": "+5511988887777", "From": "+1", "Body": "x"})
        good = _post(fake, "/Messages.json", {"To": "+5511999999999", "From": "+1", "Body": "x"})
        assert (bad.status_code, _json(bad)["code"], _json(bad)["message"]) == (400, 21610, "STOP")
        assert good.status_code == 201

    def test_fail_number_ignores_the_whatsapp_prefix(self) -> None:
        """A number fault matches the WhatsApp address of the same number."""
        fake = FakeTwilio()
        fake.fail_number("whatsapp:+5511988887777", Fault.server_error(status=503))
        response = _post(
            fake, "/Messages.json", {"To": "whatsapp:+5511988887777", "From": "+1", "Body": "x"}
        )
        assert response.status_code == 503

    def test_fail_number_times(self) -> None:
        """With times=n only the next n requests to the number fail."""
        fake = FakeTwilio()
        fake.fail_number("+5511988887777", Fault.error(), times=2)
        statuses = [
            _post(
                fake, "/Messages.json", {"To": "+5511988887777", "From": "+1", "Body": "x"}
            ).status_code
            for _ in range(3)
        ]
        assert statuses == [400, 400, 201]

    def test_fail_next_then_recovers(self) -> None:
        """fail_next(n) fails the next n requests, in order, whatever they are."""
        fake = FakeTwilio()
        fake.fail_next(1, Fault.rate_limited(retry_after=2.5))
        fake.fail_next(1, Fault.server_error())
        first = fake.request("GET", BASE + ".json", auth=AUTH)
        second = fake.request("GET", BASE + ".json", auth=AUTH)
        third = fake.request("GET", BASE + ".json", auth=AUTH)
        assert (first.status_code, first.headers["Retry-After"]) == (429, "2.5")
        assert _json(first)["code"] == 20429
        assert second.status_code == 500
        assert third.status_code == 200

    def test_read_timeout_is_raised_after_recording(self) -> None:
        """A read timeout raises ReadTimeout, and the request counts as received."""
        fake = FakeTwilio()
        fake.fail_next(1, Fault.read_timeout())
        with pytest.raises(requests.exceptions.ReadTimeout):
            _post(fake, "/Messages.json", {"To": "+5511999999999", "From": "+1", "Body": "x"})
        assert len(fake.requests) == 1

    def test_connect_error_is_raised_before_receiving(self) -> None:
        """A connection failure raises ConnectionError and the request is not recorded."""
        fake = FakeTwilio()
        fake.fail_next(1, Fault.connect_error())
        with pytest.raises(requests.exceptions.ConnectionError):
            _post(fake, "/Messages.json", {"To": "+5511999999999", "From": "+1", "Body": "x"})
        assert fake.requests == []
        assert fake.connect_failures == 1

    def test_clear_faults(self) -> None:
        """clear_faults() removes every injected fault."""
        fake = FakeTwilio()
        fake.fail_next(2, Fault.server_error())
        fake.fail_number("+5511999999999", Fault.error())
        fake.clear_faults()
        response = _post(
            fake, "/Messages.json", {"To": "+5511999999999", "From": "+1", "Body": "x"}
        )
        assert response.status_code == 201

    def test_fault_is_reachable_from_the_class(self) -> None:
        """FakeTwilio.Fault is Fault, so one import is enough."""
        assert FakeTwilio.Fault is Fault

    @pytest.mark.parametrize(
        "call",
        [
            lambda f: f.fail_next(0, Fault.error()),
            lambda f: f.fail_number("+5511999999999", Fault.error(), times=0),
        ],
    )
    def test_bad_fault_arguments(self, call: Any) -> None:
        """Counts below 1 are refused."""
        with pytest.raises(ValueError, match=">= 1"):
            call(FakeTwilio())

    def test_fault_must_be_a_fault(self) -> None:
        """Anything but a Fault is refused with TypeError."""
        with pytest.raises(TypeError, match="Fault"):
            FakeTwilio().fail_next(1, 429)  # type: ignore[arg-type]


def _run(coroutine: Coroutine[Any, Any, Any]) -> Any:
    return asyncio.run(coroutine)


def _via(seam: str, fake: FakeTwilio, method: str, url: str, **kwargs: Any) -> Any:
    """One request through the sync seam (``fake``) or the async one (``fake.aio``)."""
    if seam == "sync":
        return fake.request(method, url, **kwargs)
    return _run(fake.aio.request(method, url, **kwargs))


SEAMS = pytest.mark.parametrize("seam", ["sync", "async"])


class TestFakeTwilioAsyncSeam:
    def test_aio_is_an_async_twilio_client(self) -> None:
        """fake.aio is a twilio AsyncHttpClient, always the same object, bound to its fake."""
        fake = FakeTwilio()
        assert isinstance(fake.aio, AsyncHttpClient)
        assert fake.aio.is_async is True
        assert fake.is_async is False
        assert fake.aio is fake.aio
        assert fake.aio.fake is fake
        assert "FakeTwilio.aio" in repr(fake.aio)

    @SEAMS
    @pytest.mark.parametrize(
        ("method", "path", "data", "status", "code"),
        [
            (
                "POST",
                "/Messages.json",
                {"To": "+5511999999999", "From": "+1", "Body": "x"},
                201,
                None,
            ),
            ("POST", "/Messages.json", {"To": "12345", "From": "+1", "Body": "x"}, 400, 21211),
            ("POST", "/Calls.json", {"To": "+5511999999999", "From": "+1"}, 400, 21205),
            ("GET", ".json", None, 200, None),
            ("GET", "/Queues.json", None, 404, 20404),
        ],
        ids=["message", "bad-to", "call-without-twiml", "account", "unknown-route"],
    )
    def test_both_seams_answer_the_same(
        self,
        seam: str,
        method: str,
        path: str,
        data: dict[str, str] | None,
        status: int,
        code: int | None,
    ) -> None:
        """Each seam answers a request with the same status and Twilio error code."""
        response = _via(seam, FakeTwilio(), method, BASE + path, data=data, auth=AUTH)
        assert response.status_code == status
        assert _json(response).get("code") == code

    def test_one_request_log_for_both_seams(self) -> None:
        """Sync and async requests land in one log, in order, each telling its seam."""
        fake = FakeTwilio()
        _post(fake, "/Messages.json", {"To": "+5511999999999", "From": "+1", "Body": "x"})
        _run(fake.aio.request("GET", BASE + ".json", auth=AUTH, timeout=3.0))
        assert [(r.method, r.is_async) for r in fake.requests] == [("POST", False), ("GET", True)]
        assert fake.requests[1].timeout == 3.0
        fake.reset()
        assert fake.requests == []

    def test_faults_are_shared(self) -> None:
        """A fault set on the fake fails the next request, whichever seam it comes through."""
        fake = FakeTwilio()
        fake.fail_next(1, Fault.rate_limited(retry_after=2.5))
        fake.fail_number("+5511988887777", Fault.error(code=21610), times=1)
        first = _run(fake.aio.request("GET", BASE + ".json", auth=AUTH))
        assert (first.status_code, first.headers["Retry-After"]) == (429, "2.5")
        data = {"To": "+5511988887777", "From": "+1", "Body": "x"}
        second = _run(fake.aio.request("POST", BASE + "/Messages.json", data=data, auth=AUTH))
        assert _json(second)["code"] == 21610
        assert _post(fake, "/Messages.json", data).status_code == 201

    def test_read_timeout_raises_aiohttps_error_after_recording(self) -> None:
        """On the async seam a read timeout is aiohttp's SocketTimeoutError; it was received."""
        fake = FakeTwilio()
        fake.fail_next(1, Fault.read_timeout())
        with pytest.raises(aiohttp.SocketTimeoutError):
            _run(fake.aio.request("POST", BASE + "/Messages.json", data={}, auth=AUTH))
        assert len(fake.requests) == 1
        assert fake.in_flight == 0

    def test_connect_error_raises_aiohttps_error_before_receiving(self) -> None:
        """On the async seam a refused connection is ClientConnectorError; nothing recorded."""
        fake = FakeTwilio()
        fake.fail_next(1, Fault.connect_error())
        with pytest.raises(aiohttp.ClientConnectorError) as info:
            _run(fake.aio.request("POST", BASE + "/Messages.json", data={}, auth=AUTH))
        assert isinstance(info.value.os_error, ConnectionRefusedError)
        assert (info.value.host, info.value.port) == ("api.twilio.com", 443)
        assert fake.requests == []
        assert fake.connect_failures == 1

    def test_latency_is_awaited_and_overlaps(self) -> None:
        """With latency, requests gathered on one loop are all in flight at once."""
        fake = FakeTwilio(latency=0.2)
        data = {"To": "+5511999999999", "From": "+1", "Body": "x"}

        async def main() -> list[Any]:
            return await asyncio.gather(
                *(
                    fake.aio.request("POST", BASE + "/Messages.json", data=data, auth=AUTH)
                    for _ in range(8)
                )
            )

        responses = _run(main())
        assert {r.status_code for r in responses} == {201}
        assert fake.peak_in_flight == 8
        assert fake.in_flight == 0

    def test_in_flight_counts_both_seams_together(self) -> None:
        """A sync request in flight in a thread and an async one at once: peak_in_flight is 2."""
        fake = FakeTwilio(latency=0.5)
        data = {"To": "+5511999999999", "From": "+1", "Body": "x"}
        thread = threading.Thread(target=_post, args=(fake, "/Messages.json", data))
        thread.start()
        for _ in range(5000):  # until the sync request is received (bounded)
            if fake.in_flight == 1:
                break
            time.sleep(0.001)
        _run(fake.aio.request("POST", BASE + "/Messages.json", data=data, auth=AUTH))
        thread.join()
        assert fake.peak_in_flight == 2
        assert sorted(r.is_async for r in fake.requests) == [False, True]

    def test_aclose_is_a_no_op(self) -> None:
        """fake.aio.aclose() can be awaited, and the fake keeps answering."""
        fake = FakeTwilio()
        _run(fake.aio.aclose())
        assert _run(fake.aio.request("GET", BASE + ".json", auth=AUTH)).status_code == 200

    def test_works_under_the_official_clients_async_methods(self) -> None:
        """twilio.rest.Client over fake.aio: create_async, fetch_async, list_async, errors."""
        fake = FakeTwilio()
        client = Client(ACCOUNT, "token", http_client=fake.aio)

        async def main() -> None:
            message = await client.messages.create_async(
                to="+5511999999999", from_="+15005550006", body="hi"
            )
            assert message.sid.startswith("SM")
            call = await client.calls.create_async(
                to="+5511999999999", from_="+15005550006", twiml="<Response/>"
            )
            assert call.sid.startswith("CA")
            assert (await client.api.v2010.accounts(ACCOUNT).fetch_async()).status == "active"
            numbers = await client.incoming_phone_numbers.list_async(phone_number="+15005550006")
            assert [n.phone_number for n in numbers] == ["+15005550006"]
            with pytest.raises(TwilioRestException) as info:
                await client.messages.create_async(to="bad", from_="+15005550006", body="hi")
            assert info.value.code == 21211

        _run(main())
        assert len(fake.requests) == 5
        assert all(r.is_async for r in fake.requests)


DAY = datetime(2025, 3, 10, 14, 30, tzinfo=UTC)
TO = "+5511999999999"
FROM = "+15005550006"
MESSAGE = {"To": TO, "From": FROM, "Body": "oi"}
CALL = {"To": TO, "From": FROM, "Twiml": "<Response/>"}


def _get(fake: FakeTwilio, path: str, **params: Any) -> Any:
    return fake.request("GET", BASE + path, params=params or None, auth=AUTH)


def _kept(fake: FakeTwilio, sid: str) -> dict[str, Any]:
    kept = fake.resource(sid)
    assert kept is not None
    return kept


def _created(fake: FakeTwilio, path: str = "/Messages.json", **data: str) -> str:
    response = _post(fake, path, {**(MESSAGE if "Messages" in path else CALL), **data})
    assert response.status_code == 201
    sid: str = _json(response)["sid"]
    return sid


class TestFakeTwilioKeepsState:
    def test_an_accepted_message_is_kept_and_fetchable(self) -> None:
        """A 201 message is kept as Twilio's JSON; GET Messages/{sid}.json answers it."""
        fake = FakeTwilio(clock=lambda: DAY)
        sid = _created(fake)
        kept = fake.resource(sid)
        assert kept is not None
        assert (kept["sid"], kept["status"], kept["to"], kept["from"], kept["body"]) == (
            sid,
            "queued",
            TO,
            FROM,
            "oi",
        )
        assert kept["date_created"] == kept["date_sent"] == "Mon, 10 Mar 2025 14:30:00 +0000"
        assert (kept["price"], kept["price_unit"], kept["num_segments"]) == (None, "USD", "1")
        assert (kept["error_code"], kept["error_message"]) == (None, None)
        fetched = _get(fake, f"/Messages/{sid}.json")
        assert fetched.status_code == 200
        assert _json(fetched) == kept
        assert fake.requests[-1].method == "GET"

    def test_the_create_answer_has_no_send_time_yet(self) -> None:
        """The 201 answers date_sent / start_time null as Twilio does; the kept one has them."""
        fake = FakeTwilio(clock=lambda: DAY)
        message = _json(_post(fake, "/Messages.json", MESSAGE))
        call = _json(_post(fake, "/Calls.json", CALL))
        assert (message["date_sent"], call["start_time"]) == (None, None)
        assert _kept(fake, message["sid"])["date_sent"] == "Mon, 10 Mar 2025 14:30:00 +0000"
        assert _kept(fake, call["sid"])["start_time"] == "Mon, 10 Mar 2025 14:30:00 +0000"

    def test_calls_are_kept_and_fetchable(self) -> None:
        """A 201 call is kept with Twilio's call fields; GET Calls/{sid}.json answers it."""
        fake = FakeTwilio(clock=lambda: DAY)
        sid = _created(fake, "/Calls.json")
        call = _json(_get(fake, f"/Calls/{sid}.json"))
        assert (call["sid"], call["status"], call["to"], call["from"]) == (sid, "queued", TO, FROM)
        assert (call["duration"], call["end_time"], call["price"]) == (None, None, None)
        assert call["start_time"] == "Mon, 10 Mar 2025 14:30:00 +0000"

    @pytest.mark.parametrize(
        "path",
        [
            f"/Messages/SM{'0' * 32}.json",
            f"/Calls/CA{'0' * 32}.json",
            f"/Messages/SM{'x' * 32}.json",
        ],
        ids=["message", "call", "malformed"],
    )
    def test_unknown_sids_are_404(self, path: str) -> None:
        """Fetching a SID Twilio does not hold answers 404 with Twilio's code 20404."""
        response = _get(FakeTwilio(), path)
        assert (response.status_code, _json(response)["code"]) == (404, 20404)

    def test_another_accounts_sid_is_404(self) -> None:
        """A resource is only found under the account that created it."""
        fake = FakeTwilio()
        sid = _created(fake)
        other = f"https://api.twilio.com/2010-04-01/Accounts/AC{'c' * 32}/Messages/{sid}.json"
        assert fake.request("GET", other, auth=AUTH).status_code == 404

    @pytest.mark.parametrize(
        "fault",
        [Fault.error(), Fault.server_error(), Fault.rate_limited()],
        ids=lambda f: f.kind,
    )
    def test_refused_creates_keep_nothing(self, fault: Fault) -> None:
        """A create answered with an error (a fault, or Twilio's own validation) keeps nothing."""
        fake = FakeTwilio()
        fake.fail_next(1, fault)
        _post(fake, "/Messages.json", MESSAGE)
        _post(fake, "/Messages.json", {**MESSAGE, "To": "12345"})
        assert fake.resources() == []

    @SEAMS
    def test_a_read_timeout_keeps_the_resource(self, seam: str) -> None:
        """A read timeout loses only the answer: the message reached Twilio and is kept."""
        fake = FakeTwilio()
        fake.fail_next(1, Fault.read_timeout())
        error = requests.exceptions.ReadTimeout if seam == "sync" else aiohttp.SocketTimeoutError
        with pytest.raises(error):
            _via(seam, fake, "POST", BASE + "/Messages.json", data=MESSAGE, auth=AUTH)
        [kept] = fake.resources("message")
        assert (kept["to"], kept["body"], kept["status"]) == (TO, "oi", "queued")
        assert fake.in_flight == 0

    @SEAMS
    def test_a_connect_error_keeps_nothing(self, seam: str) -> None:
        """A refused connection never reached Twilio: nothing is kept."""
        fake = FakeTwilio()
        fake.fail_next(1, Fault.connect_error())
        error = (
            requests.exceptions.ConnectionError if seam == "sync" else aiohttp.ClientConnectorError
        )
        with pytest.raises(error):
            _via(seam, fake, "POST", BASE + "/Calls.json", data=CALL, auth=AUTH)
        assert fake.resources() == []

    def test_both_seams_share_the_state(self) -> None:
        """A message created through fake.aio is fetched through the sync seam, and back."""
        fake = FakeTwilio()
        created = _run(fake.aio.request("POST", BASE + "/Messages.json", data=MESSAGE, auth=AUTH))
        sid = _json(created)["sid"]
        assert _get(fake, f"/Messages/{sid}.json").status_code == 200
        call = _created(fake, "/Calls.json")
        fetched = _run(fake.aio.request("GET", BASE + f"/Calls/{call}.json", auth=AUTH))
        assert _json(fetched)["sid"] == call
        assert [r["sid"] for r in fake.resources()] == [sid, call]

    def test_resources_by_kind_and_copies(self) -> None:
        """resources(kind) filters, oldest first; what it returns is a copy."""
        fake = FakeTwilio()
        first, second = _created(fake), _created(fake)
        call = _created(fake, "/Calls.json")
        recording = fake.add_recording(call)
        assert [r["sid"] for r in fake.resources("message")] == [first, second]
        assert [r["sid"] for r in fake.resources("call")] == [call]
        assert [r["sid"] for r in fake.resources("recording")] == [recording]
        assert len(fake.resources()) == 4
        fake.resources("message")[0]["status"] = "changed"
        copy = fake.resource(first)
        assert copy is not None
        copy["subresource_uris"]["media"] = "changed"
        assert fake.resource(first) == _json(_get(fake, f"/Messages/{first}.json"))
        assert fake.resource("SM" + "0" * 32) is None

    def test_reset_forgets_the_resources(self) -> None:
        """reset() also empties what the fake keeps."""
        fake = FakeTwilio()
        sid = _created(fake)
        fake.reset()
        assert fake.resources() == []
        assert _get(fake, f"/Messages/{sid}.json").status_code == 404

    def test_forget(self) -> None:
        """forget(sid): Twilio no longer holds it (404); an unknown SID is refused."""
        fake = FakeTwilio()
        sid = _created(fake)
        fake.forget(sid)
        assert _get(fake, f"/Messages/{sid}.json").status_code == 404
        with pytest.raises(InvalidArgument):
            fake.forget(sid)

    def test_a_naive_clock_counts_as_utc(self) -> None:
        """A clock giving naive datetimes is read as UTC; an aware one is converted to GMT."""
        naive = FakeTwilio(clock=lambda: datetime(2025, 3, 10, 14, 30))
        assert _kept(naive, _created(naive))["date_created"] == "Mon, 10 Mar 2025 14:30:00 +0000"
        tokyo = DAY.astimezone(ZoneInfo("Asia/Tokyo"))
        aware = FakeTwilio(clock=lambda: tokyo)
        assert _kept(aware, _created(aware))["date_created"] == "Mon, 10 Mar 2025 14:30:00 +0000"


class TestFakeTwilioProgress:
    def test_set_status_on_a_message(self) -> None:
        """set_status moves a message on and sets Twilio's fields as Twilio writes them."""
        now = [DAY]
        fake = FakeTwilio(clock=lambda: now[0])
        sid = _created(fake)
        now[0] = DAY + timedelta(seconds=5)
        fake.set_status(sid, "delivered", price="-0.00750", price_unit="BRL", num_segments=2)
        kept = _json(_get(fake, f"/Messages/{sid}.json"))
        assert (kept["status"], kept["price"], kept["price_unit"], kept["num_segments"]) == (
            "delivered",
            "-0.00750",
            "BRL",
            "2",
        )
        assert kept["date_updated"] == "Mon, 10 Mar 2025 14:30:05 +0000"
        assert kept["date_sent"] == "Mon, 10 Mar 2025 14:30:00 +0000"
        fake.set_status(sid, "undelivered", error_code=30003, error_message="Unreachable")
        kept = fake.resource(sid)
        assert kept is not None
        assert (kept["status"], kept["error_code"], kept["error_message"]) == (
            "undelivered",
            30003,
            "Unreachable",
        )
        assert kept["price"] == "-0.00750"  # None leaves a field as it was

    def test_set_status_on_a_call_ends_it(self) -> None:
        """A call set to a final status gets its end_time; duration is a string."""
        now = [DAY]
        fake = FakeTwilio(clock=lambda: now[0])
        sid = _created(fake, "/Calls.json")
        fake.set_status(sid, "in-progress")
        assert _kept(fake, sid)["end_time"] is None
        now[0] = DAY + timedelta(seconds=42)
        fake.set_status(sid, "completed", duration=42, price="-0.013")
        call = fake.resource(sid)
        assert call is not None
        assert (call["status"], call["duration"], call["price"]) == ("completed", "42", "-0.013")
        assert call["end_time"] == "Mon, 10 Mar 2025 14:30:42 +0000"

    @pytest.mark.parametrize(
        ("target", "kwargs"),
        [
            ("unknown", {}),
            ("recording", {}),
            ("message", {"duration": 3}),
            ("call", {"num_segments": 2}),
            ("call", {"error_code": 30003}),
            ("message", {"price": "cheap"}),
        ],
        ids=[
            "unknown-sid",
            "a-recording",
            "message-duration",
            "call-segments",
            "call-error",
            "price",
        ],
    )
    def test_set_status_refusals(self, target: str, kwargs: dict[str, Any]) -> None:
        """Unknown SIDs, recordings and fields the kind does not have are refused."""
        fake = FakeTwilio()
        call = _created(fake, "/Calls.json")
        sids = {
            "unknown": "SM" + "0" * 32,
            "recording": fake.add_recording(call),
            "message": _created(fake),
            "call": call,
        }
        with pytest.raises(InvalidArgument):
            fake.set_status(sids[target], "delivered", **kwargs)
        with pytest.raises(InvalidArgument):
            fake.set_status(sids["message"], "")

    def test_add_recording_lists_under_the_account_and_the_call(self) -> None:
        """A recording is listed by CallSid at the account and under its call, as Twilio shows."""
        fake = FakeTwilio(clock=lambda: DAY)
        call, other = _created(fake, "/Calls.json"), _created(fake, "/Calls.json")
        sid = fake.add_recording(call, duration=12)
        fake.add_recording(other)
        assert sid.startswith("RE")
        assert len(sid) == 34
        listed = _json(_get(fake, "/Recordings.json", CallSid=call))
        [recording] = listed["recordings"]
        assert (recording["sid"], recording["call_sid"], recording["duration"]) == (sid, call, "12")
        assert recording["status"] == "completed"
        assert recording["uri"] == f"/2010-04-01/Accounts/{ACCOUNT}/Recordings/{sid}.json"
        assert recording["media_url"] == f"https://api.twilio.com{recording['uri'][:-5]}"
        under_call = _json(_get(fake, f"/Calls/{call}/Recordings.json"))["recordings"]
        assert [r["sid"] for r in under_call] == [sid]
        assert "media_url" not in under_call[0]
        assert len(_json(_get(fake, "/Recordings.json"))["recordings"]) == 2
        assert _json(_get(fake, f"/Calls/CA{'0' * 32}/Recordings.json"))["recordings"] == []

    def test_add_recording_refusals(self) -> None:
        """A recording needs a call the fake holds and a duration >= 0."""
        fake = FakeTwilio()
        with pytest.raises(InvalidArgument):
            fake.add_recording(_created(fake))
        with pytest.raises(InvalidArgument):
            fake.add_recording(_created(fake, "/Calls.json"), duration=-1)


class TestFakeTwilioLists:
    def test_messages_filtered_by_to_from_and_day(self) -> None:
        """To, From and DateSent (a day, or a date-time: its day) filter, newest first."""
        now = [DAY]
        fake = FakeTwilio(clock=lambda: now[0])
        kept = [_created(fake, Body=f"#{i}") for i in range(2)]
        _created(fake, To="+5511988887777")
        _created(fake, From="+15005550007")
        now[0] = DAY + timedelta(days=1)
        _created(fake)
        for day in ("2025-03-10", "2025-03-10T00:00:00Z"):
            listed = _json(_get(fake, "/Messages.json", To=TO, From=FROM, DateSent=day))
            assert [m["sid"] for m in listed["messages"]] == kept[::-1]
        everything = _json(_get(fake, "/Messages.json"))["messages"]
        assert len(everything) == 5

    def test_date_inequalities(self) -> None:
        """DateSent< is on or before the day, DateSent> on or after it."""
        now = [DAY - timedelta(days=1)]
        fake = FakeTwilio(clock=lambda: now[0])
        before = _created(fake)
        now[0] = DAY
        same = _created(fake)
        now[0] = DAY + timedelta(days=1)
        after = _created(fake)
        on_or_before = _json(_get(fake, "/Messages.json", **{"DateSent<": "2025-03-10"}))
        on_or_after = _json(_get(fake, "/Messages.json", **{"DateSent>": "2025-03-10"}))
        assert [m["sid"] for m in on_or_before["messages"]] == [same, before]
        assert [m["sid"] for m in on_or_after["messages"]] == [after, same]

    def test_calls_filtered_by_start_time(self) -> None:
        """Calls list by To, From and StartTime (the day the call started)."""
        now = [DAY]
        fake = FakeTwilio(clock=lambda: now[0])
        call = _created(fake, "/Calls.json")
        now[0] = DAY + timedelta(days=2)
        _created(fake, "/Calls.json")
        _created(fake)
        listed = _json(_get(fake, "/Calls.json", To=TO, From=FROM, StartTime="2025-03-10"))
        assert [c["sid"] for c in listed["calls"]] == [call]

    def test_a_date_filter_that_is_no_date_is_refused(self) -> None:
        """A DateSent that is not a date answers 400, Twilio-shaped."""
        response = _get(FakeTwilio(), "/Messages.json", DateSent="yesterday")
        assert (response.status_code, _json(response)["code"]) == (400, 20001)

    def test_out_of_range_paging_is_refused(self) -> None:
        """A PageSize above 1000 (Twilio's most) or below 1 answers 400."""
        for size in ("0", "1001", "many"):
            assert _get(FakeTwilio(), "/Calls.json", PageSize=size).status_code == 400

    @SEAMS
    def test_more_than_one_page_under_the_official_client(self, seam: str) -> None:
        """twilio's list() with a small page_size follows next_page_uri across pages."""
        fake = FakeTwilio(clock=lambda: DAY)
        sids = [_created(fake, Body=f"#{i}") for i in range(5)]
        client = Client(ACCOUNT, "token", http_client=fake if seam == "sync" else fake.aio)
        start = len(fake.requests)
        if seam == "sync":
            listed = client.messages.list(to=TO, from_=FROM, date_sent=DAY.date(), page_size=2)
        else:
            listed = _run(
                client.messages.list_async(to=TO, from_=FROM, date_sent=DAY.date(), page_size=2)
            )
        assert [m.sid for m in listed] == sids[::-1]
        pages = fake.requests[start:]
        assert [r.params.get("Page") for r in pages] == [None, "1", "2"]
        assert all(r.params["DateSent"] == "2025-03-10T00:00:00Z" for r in pages)
        assert all(r.params["To"] == TO for r in pages)

    def test_instances_read_what_reconcile_needs(self) -> None:
        """twilio's instances read the fetched and listed JSON: cost, dates, duration, recording."""
        fake = FakeTwilio(clock=lambda: DAY)
        client = Client(ACCOUNT, "token", http_client=fake)
        message = client.messages.create(to=TO, from_=FROM, body="oi")
        fake.set_status(message.sid, "delivered", price="-0.0075", num_segments=3)
        fetched = client.messages(message.sid).fetch()
        assert (fetched.price, fetched.price_unit, fetched.num_segments) == ("-0.0075", "USD", "3")
        assert fetched.date_sent == DAY
        assert fetched.error_code is None
        call = client.calls.create(to=TO, from_=FROM, twiml="<Response/>")
        fake.set_status(call.sid, "completed", duration=9)
        [listed] = client.calls.list(to=TO, from_=FROM, start_time=DAY.date())
        assert (listed.sid, listed.status, listed.duration) == (call.sid, "completed", "9")
        assert listed.start_time == DAY
        recording_sid = fake.add_recording(call.sid)
        [recording] = client.recordings.list(call_sid=call.sid)
        assert (recording.sid, recording.duration, recording.call_sid) == (
            recording_sid,
            "7",
            call.sid,
        )
        assert recording.start_time == DAY
        [own] = client.calls(call.sid).recordings.list()
        assert own.sid == recording_sid
