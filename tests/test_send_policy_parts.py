"""The send policy's pure parts: inbound keywords, sending hours, `SendPolicy`, its errors.

Sending hours are checked around midnight and daylight-saving changes for a
Brazilian number (São Paulo: no DST since 2019, a midnight DST start in
2018), US numbers with several zones (Alaska: Adak and Anchorage; a toll-free
+1 800 number: 42 zones) and a Portuguese mobile (Lisbon and the Azores).
Times are passed in: no real clock is read.
"""

from __future__ import annotations

import pickle
from datetime import UTC, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings, strategies as st

from servio_twilio.domain.consent import (
    ConsentAction,
    consent_action,
    inbound_source,
)
from servio_twilio.domain.errors import (
    InvalidArgument,
    LimiterUnavailable,
    OutsideSendingHours,
    RecipientOptedOut,
    SendLimitExceeded,
    ServioTwilioError,
)
from servio_twilio.domain.sending_hours import (
    HORIZON,
    check_window,
    is_inside,
    next_allowed_at,
    sending_hours_refusal,
    time_zones_for_number,
)
from servio_twilio.sending.policy import SendPolicy
from servio_twilio.storage.consent import AsyncInMemoryConsentStore, InMemoryConsentStore

BRAZIL = "+5511999999999"  # America/Sao_Paulo
ALASKA = "+19075550123"  # America/Adak, America/Anchorage
TOLL_FREE = "+18005550199"  # every zone of the North American numbering plan
PORTUGAL_MOBILE = "+351912345678"  # Atlantic/Azores, Europe/Lisbon
LISBON = "+351212345678"  # Europe/Lisbon
NO_ZONE = "+80012345678"  # international freephone: Etc/Unknown
DAY = (time(8), time(21))
NIGHT = (time(21), time(8))


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def refusal(number: str, now: datetime, window: tuple[time, time] = DAY) -> datetime | None:
    """``next_allowed_at`` of the refusal; fails the test when the send is allowed."""
    found = sending_hours_refusal(number, now, window)
    assert found is not None, f"{number} is allowed at {now}"
    return found.next_allowed_at


class TestKeywords:
    @pytest.mark.parametrize(
        "body",
        [
            *("STOP", "stop", " Stop ", "\tSTOP\n", "STOPALL", "UNSUBSCRIBE", "cancel"),
            *("End", "QUIT", "REVOKE", "optout"),
        ],
    )
    def test_opt_out_keywords(self, body: str) -> None:
        """Twilio's opt-out keywords, in any case and with blanks around, opt out."""
        assert consent_action(body) is ConsentAction.OPT_OUT

    @pytest.mark.parametrize("body", ["START", "start", " Yes ", "UNSTOP"])
    def test_opt_in_keywords(self, body: str) -> None:
        """START, YES and UNSTOP opt back in."""
        assert consent_action(body) is ConsentAction.OPT_IN

    @pytest.mark.parametrize(
        "body", ["HELP", "info", "please stop", "STOP IT", "", "S T O P", None]
    )
    def test_anything_else_changes_nothing(self, body: str | None) -> None:
        """HELP, a sentence containing a keyword, an empty or missing body: no change."""
        assert consent_action(body) is None

    def test_opt_out_type_stop_decides_on_a_body_of_its_own(self) -> None:
        """OptOutType=STOP on a Portuguese 'Pare' (a Messaging Service's keyword) opts out."""
        assert consent_action("Pare", "STOP") is ConsentAction.OPT_OUT

    @pytest.mark.parametrize(
        ("body", "opt_out_type", "expected"),
        [
            ("Volto", "START", ConsentAction.OPT_IN),
            ("STOP", "START", ConsentAction.OPT_IN),
            ("STOP", "HELP", None),
            ("Ajuda", "help", None),
            ("STOP", "", ConsentAction.OPT_OUT),
            ("STOP", "SOMETHING-NEW", ConsentAction.OPT_OUT),
        ],
    )
    def test_opt_out_type_decides_when_it_is_known(
        self, body: str, opt_out_type: str, expected: ConsentAction | None
    ) -> None:
        """STOP, START and HELP (any case) decide; empty or unknown values leave it to the body."""
        assert consent_action(body, opt_out_type) is expected

    def test_source_names_what_decided(self) -> None:
        """The stored source says the keyword, or that OptOutType decided."""
        assert inbound_source(" stop ") == "inbound:STOP"
        assert inbound_source("Pare", "stop") == "inbound:OptOutType=STOP"


class TestTimeZonesOfNumbers:
    def test_zones_come_from_phonenumbers(self) -> None:
        """One zone for São Paulo and Lisbon, two for Portuguese mobiles and Alaska, none: +800."""
        assert time_zones_for_number(BRAZIL) == ("America/Sao_Paulo",)
        assert time_zones_for_number(LISBON) == ("Europe/Lisbon",)
        assert time_zones_for_number(PORTUGAL_MOBILE) == ("Atlantic/Azores", "Europe/Lisbon")
        assert time_zones_for_number(ALASKA) == ("America/Adak", "America/Anchorage")
        assert len(time_zones_for_number(TOLL_FREE)) > 10
        assert time_zones_for_number(NO_ZONE) == ()
        assert time_zones_for_number("not a number") == ()


class TestBrazil:
    def test_opens_at_eight_local(self) -> None:
        """07:59:59 in São Paulo (UTC-3) is refused until 08:00 (11:00 UTC), then allowed."""
        assert refusal(BRAZIL, utc(2024, 6, 14, 10, 59, 59)) == utc(2024, 6, 14, 11)
        assert sending_hours_refusal(BRAZIL, utc(2024, 6, 14, 11), DAY) is None

    def test_after_closing_waits_past_midnight(self) -> None:
        """At 21:00 and at 23:59:59 local the next send is 08:00 the next local day."""
        assert refusal(BRAZIL, utc(2024, 6, 15, 0)) == utc(2024, 6, 15, 11)  # 21:00 on the 14th
        assert refusal(BRAZIL, utc(2024, 6, 15, 2, 59, 59)) == utc(2024, 6, 15, 11)
        assert refusal(BRAZIL, utc(2024, 6, 15, 3)) == utc(2024, 6, 15, 11)  # 00:00 on the 15th

    def test_no_daylight_saving_any_more(self) -> None:
        """Around the first Sunday of November 2024 (the old DST start) 08:00 stays 11:00 UTC."""
        for day in (2, 3, 4):
            assert refusal(BRAZIL, utc(2024, 11, day, 5)) == utc(2024, 11, day, 11)

    def test_the_2018_midnight_dst_start(self) -> None:
        """4 Nov 2018 skipped 00:00-01:00: a window from 00:30 opens at the jump (03:00 UTC)."""
        window = (time(0, 30), time(6))
        assert refusal(BRAZIL, utc(2018, 11, 4, 2, 59, 59), window) == utc(2018, 11, 4, 3)
        assert sending_hours_refusal(BRAZIL, utc(2018, 11, 4, 3), window) is None

    def test_a_window_across_midnight(self) -> None:
        """(21:00, 08:00) allows late evening and early morning, refuses midday."""
        assert sending_hours_refusal(BRAZIL, utc(2024, 6, 15, 1), NIGHT) is None  # 22:00
        assert sending_hours_refusal(BRAZIL, utc(2024, 6, 15, 10, 59), NIGHT) is None  # 07:59
        assert refusal(BRAZIL, utc(2024, 6, 15, 11), NIGHT) == utc(2024, 6, 16, 0)  # 08:00


class TestUnitedStates:
    def test_alaska_needs_both_zones(self) -> None:
        """Adak is an hour behind Anchorage: the window opens at 08:00 in Adak (18:00 UTC)."""
        assert refusal(ALASKA, utc(2024, 3, 9, 12)) == utc(2024, 3, 9, 18)

    def test_alaska_on_the_day_dst_starts(self) -> None:
        """10 Mar 2024 both zones spring forward: 08:00 in Adak is 17:00 UTC that day."""
        assert refusal(ALASKA, utc(2024, 3, 10, 12)) == utc(2024, 3, 10, 17)

    def test_alaska_closes_at_nine_in_anchorage(self) -> None:
        """Open until 21:00 in Anchorage (05:00 UTC in summer time), refused from then."""
        assert sending_hours_refusal(ALASKA, utc(2024, 3, 11, 4, 59, 59), DAY) is None
        assert refusal(ALASKA, utc(2024, 3, 11, 5)) == utc(2024, 3, 11, 17)

    def test_new_york_window_starting_in_the_skipped_hour(self) -> None:
        """10 Mar 2024 02:00-03:00 never happened in New York: a 02:30 start opens at 03:00 EDT."""
        zones = ["America/New_York"]
        window = (time(2, 30), time(5))
        assert next_allowed_at(zones, utc(2024, 3, 10, 6), window) == utc(2024, 3, 10, 7)

    def test_new_york_repeated_hour(self) -> None:
        """3 Nov 2024 01:00-02:00 happened twice: a window from 01:30 opens at the first one."""
        zones = ["America/New_York"]
        window = (time(1, 30), time(5))
        assert next_allowed_at(zones, utc(2024, 11, 3, 4), window) == utc(2024, 11, 3, 5, 30)

    def test_toll_free_must_suit_every_zone(self) -> None:
        """A +1 800 number waits until 08:00 in its easternmost zone, Guam."""
        found = refusal(TOLL_FREE, utc(2024, 7, 1, 12))  # 22:00 in Guam
        assert found is not None
        zones = time_zones_for_number(TOLL_FREE)
        assert all(is_inside(found.astimezone(ZoneInfo(z)).time(), DAY) for z in zones)
        before = found - timedelta(seconds=1)
        assert not all(is_inside(before.astimezone(ZoneInfo(z)).time(), DAY) for z in zones)

    def test_toll_free_zones_never_share_a_narrow_window(self) -> None:
        """08:00-09:00 everywhere from Guam to Hawaii never happens: next_allowed_at is None."""
        found = sending_hours_refusal(TOLL_FREE, utc(2024, 7, 1, 12), (time(8), time(9)))
        assert found is not None
        assert found.next_allowed_at is None
        assert "never share" in str(found)


class TestPortugal:
    def test_mobile_needs_lisbon_and_the_azores(self) -> None:
        """Winter: 08:00 in the Azores (UTC-1) is 09:00 UTC; summer time not yet begun."""
        assert refusal(PORTUGAL_MOBILE, utc(2024, 3, 30, 6)) == utc(2024, 3, 30, 9)

    def test_across_the_march_change(self) -> None:
        """31 Mar 2024 01:00 UTC both zones move forward: the next opening is 08:00 UTC."""
        assert refusal(PORTUGAL_MOBILE, utc(2024, 3, 30, 22)) == utc(2024, 3, 31, 8)

    def test_across_the_october_change(self) -> None:
        """27 Oct 2024 01:00 UTC both zones move back: the next opening is 09:00 UTC."""
        assert refusal(PORTUGAL_MOBILE, utc(2024, 10, 26, 22)) == utc(2024, 10, 27, 9)

    def test_closes_at_nine_in_lisbon(self) -> None:
        """Summer: 21:00 in Lisbon is 20:00 UTC."""
        assert sending_hours_refusal(PORTUGAL_MOBILE, utc(2024, 7, 1, 19, 59), DAY) is None
        assert refusal(PORTUGAL_MOBILE, utc(2024, 7, 1, 20)) == utc(2024, 7, 2, 8)

    def test_lisbon_landline_at_night_window(self) -> None:
        """A window across midnight for Lisbon alone: refused at 08:00, open again at 21:00."""
        assert sending_hours_refusal(LISBON, utc(2024, 1, 10, 7, 59), NIGHT) is None
        assert refusal(LISBON, utc(2024, 1, 10, 8), NIGHT) == utc(2024, 1, 10, 21)


class TestUnknownZone:
    def test_refused_without_a_default(self) -> None:
        """No zone and no default_timezone: refused, with no next time and the fix in the reason."""
        found = sending_hours_refusal(NO_ZONE, utc(2024, 7, 1, 12), DAY)
        assert found is not None
        assert found.next_allowed_at is None
        assert "default_timezone" in str(found)

    def test_default_timezone_is_used(self) -> None:
        """With default_timezone the number follows that zone."""
        now = utc(2024, 7, 1, 10)  # 07:00 in São Paulo
        found = sending_hours_refusal(NO_ZONE, now, DAY, "America/Sao_Paulo")
        assert found is not None
        assert found.next_allowed_at == utc(2024, 7, 1, 11)
        assert found.time_zones == ("America/Sao_Paulo",)


class TestNextAllowedAtIsTheFirst:
    @settings(max_examples=40, deadline=None)
    @given(
        number=st.sampled_from([BRAZIL, ALASKA, PORTUGAL_MOBILE, LISBON, "+12125550123"]),
        minute=st.integers(min_value=0, max_value=366 * 24 * 60),
        start=st.integers(min_value=0, max_value=24 * 4 - 1),
        length=st.integers(min_value=1, max_value=24 * 4 - 1),
    )
    def test_allowed_there_and_nowhere_before(
        self, number: str, minute: int, start: int, length: int
    ) -> None:
        """For any time and quarter-hour window: the answer is allowed and no minute before it
        is; None only when no minute of the horizon is (Alaska's zones are an hour apart)."""
        now = utc(2024, 1, 1) + timedelta(minutes=minute, seconds=17)
        first = time(start // 4, start % 4 * 15)
        end_quarter = (start + length) % 96
        window = (first, time(end_quarter // 4, end_quarter % 4 * 15))
        zones = [ZoneInfo(z) for z in time_zones_for_number(number)]

        def allowed(at: datetime) -> bool:
            return all(is_inside(at.astimezone(z).time(), window) for z in zones)

        found = next_allowed_at(time_zones_for_number(number), now, window)
        if found is not None:
            assert allowed(found)
            assert found == now or not allowed(found - timedelta(seconds=1))
        probe = now
        while probe < (found or now + HORIZON):
            assert not allowed(probe), probe
            probe += timedelta(minutes=1)


class TestArguments:
    @pytest.mark.parametrize(
        "window", [None, (time(8),), (8, 21), ("08:00", "21:00"), (time(8), time(9), time(10))]
    )
    def test_window_of_the_wrong_type(self, window: object) -> None:
        """Anything but a pair of datetime.time is a TypeError."""
        with pytest.raises(TypeError, match=r"pair of datetime\.time"):
            check_window(window)

    def test_empty_or_zoned_window(self) -> None:
        """start == end, or a time with a tzinfo, is InvalidArgument."""
        with pytest.raises(InvalidArgument, match="empty window"):
            check_window((time(8), time(8)))
        with pytest.raises(InvalidArgument, match="local"):
            check_window((time(8, tzinfo=UTC), time(21)))

    def test_naive_now(self) -> None:
        """A naive now is refused: the rule compares instants."""
        with pytest.raises(InvalidArgument, match="aware"):
            sending_hours_refusal(BRAZIL, datetime(2024, 1, 1, 12), DAY)

    def test_now_in_any_offset(self) -> None:
        """An aware now in another offset is the same instant: same answer, in UTC."""
        now = datetime(2024, 6, 14, 7, 59, 59, tzinfo=timezone(timedelta(hours=-3)))
        assert refusal(BRAZIL, now) == utc(2024, 6, 14, 11)

    def test_unknown_zone_in_next_allowed_at(self) -> None:
        """next_allowed_at needs known zones, at least one."""
        with pytest.raises(InvalidArgument, match="unknown time zone"):
            next_allowed_at(["Mars/Olympus"], utc(2024, 1, 1), DAY)
        with pytest.raises(InvalidArgument, match="at least one"):
            next_allowed_at([], utc(2024, 1, 1), DAY)


class TestSendPolicy:
    def test_defaults_check_nothing(self) -> None:
        """SendPolicy() has no consent store and no hours: every send passes its hours check."""
        policy = SendPolicy()
        assert (policy.consent, policy.sending_hours, policy.default_timezone) == (None, None, None)
        assert policy.sending_hours_refusal(NO_ZONE, utc(2024, 1, 1, 3)) is None
        assert policy.async_consent is False

    def test_sending_hours_raise_outside_sending_hours(self) -> None:
        """check_sending_hours raises OutsideSendingHours with next_allowed_at in UTC."""
        policy = SendPolicy(sending_hours=[time(8), time(21)])  # type: ignore[arg-type]
        assert policy.sending_hours == DAY
        with pytest.raises(OutsideSendingHours) as caught:
            policy.check_sending_hours(BRAZIL, utc(2024, 6, 14, 10))
        assert caught.value.next_allowed_at == utc(2024, 6, 14, 11)
        assert caught.value.next_allowed_at.tzinfo is UTC
        policy.check_sending_hours(BRAZIL, utc(2024, 6, 14, 12))

    def test_default_timezone_reaches_the_rule(self) -> None:
        """A number without zones follows the policy's default_timezone."""
        policy = SendPolicy(sending_hours=DAY, default_timezone="Europe/Lisbon")
        assert policy.sending_hours_refusal(NO_ZONE, utc(2024, 1, 10, 12)) is None

    def test_consent_stores_of_both_kinds(self) -> None:
        """A sync or an async consent store is accepted; async_consent tells which."""
        assert SendPolicy(consent=InMemoryConsentStore()).async_consent is False
        assert SendPolicy(consent=AsyncInMemoryConsentStore()).async_consent is True

    @pytest.mark.parametrize(
        ("arguments", "error", "match"),
        [
            ({"consent": object()}, TypeError, "ConsentStore"),
            ({"sending_hours": (8, 21)}, TypeError, "datetime.time"),
            ({"sending_hours": (time(9), time(9))}, InvalidArgument, "empty window"),
            ({"default_timezone": "America/Nowhere"}, InvalidArgument, "time zone"),
            ({"default_timezone": 3}, TypeError, "str"),
        ],
    )
    def test_bad_arguments(self, arguments: dict[str, object], error: type, match: str) -> None:
        """Wrong types are TypeError, bad values InvalidArgument (a ValueError)."""
        with pytest.raises(error, match=match):
            SendPolicy(**arguments)  # type: ignore[arg-type]

    def test_frozen_and_keyword_only(self) -> None:
        """A policy cannot change after it is built, nor be built positionally."""
        policy = SendPolicy(sending_hours=DAY)
        with pytest.raises(AttributeError):
            policy.sending_hours = None  # type: ignore[misc]
        with pytest.raises(TypeError):
            SendPolicy(None)  # type: ignore[misc]


class TestErrors:
    def test_recipient_opted_out(self) -> None:
        """The number is masked in the message and whole in .number; .channel is the value."""
        error = RecipientOptedOut(BRAZIL, "whatsapp")
        assert isinstance(error, ServioTwilioError)
        assert (error.number, error.channel) == (BRAZIL, "whatsapp")
        assert BRAZIL not in str(error)
        assert "+55119*****999" in str(error)
        assert "whatsapp" in str(error)
        copy = pickle.loads(pickle.dumps(error))
        assert (copy.number, copy.channel, str(copy)) == (BRAZIL, "whatsapp", str(error))

    def test_outside_sending_hours(self) -> None:
        """The number is masked; next_allowed_at and the zones survive pickling."""
        error = OutsideSendingHours(BRAZIL, utc(2024, 6, 14, 11), time_zones=("America/Sao_Paulo",))
        assert BRAZIL not in str(error)
        assert "2024-06-14T11:00:00+00:00" in str(error)
        copy = pickle.loads(pickle.dumps(error))
        assert (copy.next_allowed_at, copy.time_zones) == (
            utc(2024, 6, 14, 11),
            ("America/Sao_Paulo",),
        )

    def test_limiter_unavailable_is_a_send_limit_exceeded(self) -> None:
        """Callers catching SendLimitExceeded catch it too; a number in the key is masked."""
        error = LimiterUnavailable(f"to:{BRAZIL}", "ConnectionError: refused")
        assert isinstance(error, SendLimitExceeded)
        assert error.retry_after == LimiterUnavailable.RETRY_AFTER
        assert BRAZIL not in str(error)
        assert BRAZIL not in error.prospect_id
        assert "nothing was sent" in str(error)
        assert str(pickle.loads(pickle.dumps(error))) == str(error)
