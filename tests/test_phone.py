"""Phone numbers: E.164 normalization and masking for logs."""

from __future__ import annotations

import re

import pytest
from hypothesis import given, settings, strategies as st

from servio_twilio.domain.errors import InvalidPhoneNumber
from servio_twilio.domain.phone import normalize_e164
from servio_twilio.domain.phone_text import (
    has_channel_prefix,
    mask_phone,
    mask_phone_numbers,
    strip_channel_prefix,
)

BR = "+5511999999999"
US = "+12025550100"


class TestNormalizeE164:
    @pytest.mark.parametrize(
        ("raw", "expected"),
        [
            ("+5511999999999", BR),
            ("+55 11 99999-9999", BR),
            ("+55 (11) 99999-9999", BR),
            ("+55.11.99999.9999", BR),
            ("  +55 11 99999-9999  ", BR),
            ("+1 (202) 555-0100", US),
            ("+1 202/555 0100", US),
            ("+44 20 7946 0958", "+442079460958"),
        ],
    )
    def test_formatted_international_numbers(self, raw: str, expected: str) -> None:
        """Spaces, dashes, dots, slashes and parentheses are formatting and are dropped."""
        assert normalize_e164(raw) == expected

    @pytest.mark.parametrize(
        "raw",
        [
            "whatsapp:+5511999999999",
            "WhatsApp:+5511999999999",
            "WHATSAPP:+55 11 99999-9999",
            "whatsapp: +5511999999999",
            "  whatsapp:+5511999999999",
        ],
    )
    def test_whatsapp_prefix_in_any_case(self, raw: str) -> None:
        """A ``whatsapp:`` prefix in any case, with blanks around, is accepted and dropped."""
        assert normalize_e164(raw) == BR

    @pytest.mark.parametrize(
        ("raw", "region", "expected"),
        [
            ("11999999999", "BR", BR),
            ("(11) 99999-9999", "br", BR),
            ("011 99999 9999", "BR", BR),
            ("202-555-0100", "US", US),
            ("whatsapp:11999999999", "BR", BR),
        ],
    )
    def test_national_numbers_with_default_region(
        self, raw: str, region: str, expected: str
    ) -> None:
        """A national number is read in ``default_region`` (any case)."""
        assert normalize_e164(raw, default_region=region) == expected

    def test_international_number_ignores_default_region(self) -> None:
        """A number with ``+`` keeps its own country whatever region is given."""
        assert normalize_e164(BR, default_region="US") == BR

    def test_national_number_without_region_is_refused(self) -> None:
        """Without ``+`` and without a region there is no country to read it in."""
        with pytest.raises(InvalidPhoneNumber) as caught:
            normalize_e164("11999999999")
        assert caught.value.raw == "11999999999"
        assert "country code" in caught.value.reason

    @pytest.mark.parametrize(
        ("raw", "reason"),
        [
            ("", "empty"),
            ("   ", "empty"),
            ("whatsapp:", "empty"),
            ("+1", "not a phone number"),
            ("+55 11 9", "too short"),
            ("+551199999999999999", "too long"),
            ("+123456789012345678", "too long"),
            ("+882 3456 7890", "not a valid number"),
            ("+55abc", "only digits"),
            ("+5511999999999x", "only digits"),
            ("+55 11 99999-9999 ext. 12", "only digits"),
            ("tel:+5511999999999", "only digits"),
            ("++5511999999999", "only digits"),
            ("+5511999999999\n", None),
            ("+\u0665\u0665\u0661\u0661999999999", "non-ASCII"),
            ("+\uff15\uff15\uff11\uff11999999999", "non-ASCII"),
            ("+55 11 99999\u20119999", "non-ASCII"),
        ],
    )
    def test_invalid_strings(self, raw: str, reason: str | None) -> None:
        """Anything that is not a valid number raises `InvalidPhoneNumber` with raw and reason."""
        if reason is None:  # blanks around a valid number are not an error
            assert normalize_e164(raw) == BR
            return
        with pytest.raises(InvalidPhoneNumber) as caught:
            normalize_e164(raw)
        assert caught.value.raw == raw
        assert reason in caught.value.reason
        assert caught.value.reason in str(caught.value)

    @pytest.mark.parametrize("raw", [None, 5511999999999, 55.11, b"+5511999999999", ["+55"]])
    def test_wrong_types(self, raw: object) -> None:
        """Non-strings raise `InvalidPhoneNumber` naming the type, not a TypeError."""
        with pytest.raises(InvalidPhoneNumber) as caught:
            normalize_e164(raw)
        assert caught.value.raw is raw
        assert type(raw).__name__ in caught.value.reason

    @pytest.mark.parametrize("region", ["XX", "ZZ", "BRA", "", 5, "B1"])
    def test_bad_default_region(self, region: object) -> None:
        """An unknown or malformed region is reported as such, as `InvalidPhoneNumber`."""
        with pytest.raises(InvalidPhoneNumber) as caught:
            normalize_e164("11999999999", default_region=region)  # type: ignore[arg-type]
        assert "default_region" in caught.value.reason

    def test_one_megabyte_string_is_refused_with_a_bounded_message(self) -> None:
        """A 1 MB input is refused before parsing and the message stays short."""
        raw = "+55" + "1" * 1_000_000
        with pytest.raises(InvalidPhoneNumber) as caught:
            normalize_e164(raw)
        assert caught.value.raw is raw
        assert "longer than" in caught.value.reason
        assert len(str(caught.value)) < 200

    def test_no_phonenumbers_exception_escapes(self) -> None:
        """A phonenumbers parse failure is translated, without its exception as the cause."""
        with pytest.raises(InvalidPhoneNumber) as caught:
            normalize_e164("+0")
        assert caught.value.__cause__ is None
        assert caught.value.__suppress_context__

    @settings(max_examples=300, deadline=None)
    @given(st.text(max_size=80))
    def test_arbitrary_text_raises_only_invalid_phone_number(self, raw: str) -> None:
        """On any text it returns an E.164 number or raises `InvalidPhoneNumber`, nothing else."""
        try:
            result = normalize_e164(raw)
        except InvalidPhoneNumber as exc:
            error = exc
        else:
            assert re.fullmatch(r"\+[1-9][0-9]{6,14}", result)
            return
        assert error.raw == raw
        assert error.reason

    @settings(max_examples=300, deadline=None)
    @given(
        st.text(alphabet="+0123456789 ()-./whatsapWHATSAP:", max_size=30),
        st.one_of(st.none(), st.sampled_from(["BR", "US", "GB", "XX"])),
    )
    def test_number_like_text_raises_only_invalid_phone_number(
        self, raw: str, region: str | None
    ) -> None:
        """Text made of number-ish characters reaches phonenumbers; still only our error."""
        try:
            result = normalize_e164(raw, default_region=region)
        except InvalidPhoneNumber:
            return
        assert re.fullmatch(r"\+[1-9][0-9]{6,14}", result)
        assert normalize_e164(result) == result

    @settings(max_examples=100, deadline=None)
    @given(st.sampled_from([BR, US, "+442079460958", "+4915112345678"]))
    def test_normalizing_twice_changes_nothing(self, number: str) -> None:
        """An E.164 result normalizes to itself (with or without a ``whatsapp:`` prefix)."""
        assert normalize_e164(normalize_e164(number)) == number
        assert normalize_e164("whatsapp:" + number) == number


class TestStripChannelPrefix:
    def test_strips_prefix_and_blanks(self) -> None:
        """The prefix goes in any case, with the blanks around the number."""
        assert strip_channel_prefix("  WhatsApp: +5511 ") == "+5511"

    def test_leaves_other_text(self) -> None:
        """Text without the prefix is only trimmed."""
        assert strip_channel_prefix(" sms:+5511 ") == "sms:+5511"

    def test_tells_the_prefix(self) -> None:
        """has_channel_prefix: the prefix in any case, after leading blanks."""
        assert has_channel_prefix("  WhatsApp:+5511")
        assert has_channel_prefix("whatsapp:")
        assert not has_channel_prefix("+5511")
        assert not has_channel_prefix("whatsapp+5511")
        assert not has_channel_prefix("")


class TestMaskPhoneNumbers:
    @pytest.mark.parametrize(
        ("text", "masked"),
        [
            ("to +5511999999999 now", "to +55119*****999 now"),
            ("?PhoneNumber=%2B14155552671&x=1", "?PhoneNumber=%2B14155***671&x=1"),
            ("{'To': 'whatsapp:+14155552671'}", "{'To': 'whatsapp:+14155***671'}"),
            ("no numbers, 12345, AC123", "no numbers, 12345, AC123"),
            ("?n=5511999999999&m=1", "?n=55119*****999&m=1"),
            ("call 14155552671.", "call 14155***671."),
            # record ids and SIDs hold digit runs inside a word: they are not numbers
            ("?cid=2b1ce620894171948c97", "?cid=2b1ce620894171948c97"),
            ("?cid=a12345678901b", "?cid=a12345678901b"),
            ("SM0123456789abcdef0123456789abcdef", "SM0123456789abcdef0123456789abcdef"),
            ("id_1234567890", "id_1234567890"),
            ("12345678901234567890", "12345678901234567890"),
        ],
    )
    def test_numbers_in_text_are_masked(self, text: str, masked: str) -> None:
        """Every number in a log line is masked, URL-encoded ones too; ids and the rest stay."""
        assert mask_phone_numbers(text) == masked


class TestMaskPhone:
    def test_design_example(self) -> None:
        """The DESIGN example: ``+5511999999999`` -> ``+55119*****999``."""
        assert mask_phone(BR) == "+55119*****999"

    def test_formatted_number_masks_like_its_e164_form(self) -> None:
        """Formatting is dropped, so a formatted number reveals no more than E.164."""
        assert mask_phone("+55 (11) 99999-9999") == "+55119*****999"

    def test_whatsapp_prefix_is_kept(self) -> None:
        """A ``whatsapp:`` prefix stays, normalized to lower case."""
        assert mask_phone("WhatsApp:" + BR) == "whatsapp:+55119*****999"

    def test_us_number(self) -> None:
        """Eleven digits: five ahead, three behind."""
        assert mask_phone(US) == "+12025***100"

    def test_short_number(self) -> None:
        """Six to eight digits keep one digit ahead and two behind."""
        assert mask_phone("+1234567") == "+1****67"

    @pytest.mark.parametrize(
        "junk",
        [
            "",
            "   ",
            "12345",
            "abc",
            "secret-token-value",
            "x" * 100,
            "+5511999999999x",
            "+\uff15\uff15\uff11\uff11999999999",
            "1" * 16,
            "+55" + "9" * 1_000_000,
        ],
    )
    def test_junk_masks_fully(self, junk: str) -> None:
        """Too short, too long, letters or non-ASCII digits: nothing is revealed."""
        assert mask_phone(junk) == "***"

    @pytest.mark.parametrize("value", [None, 5511999999999, b"+5511999999999", object()])
    def test_non_strings_mask_fully(self, value: object) -> None:
        """Whatever the type, it returns ``***`` instead of raising."""
        assert mask_phone(value) == "***"

    @settings(max_examples=300, deadline=None)
    @given(st.text(max_size=100))
    def test_never_raises_and_never_reveals_more(self, text: str) -> None:
        """On any text: a string whose visible digits are at most the head and the last 3."""
        masked = mask_phone(text)
        assert isinstance(masked, str)
        body = masked.removeprefix("whatsapp:")
        visible = [c for c in body if c.isdigit()]
        assert len(visible) <= 8
        if visible:
            digits = re.sub(r"[^0-9]", "", text)
            head, tail = (5, 3) if len(digits) >= 9 else (1, 2)
            assert "".join(visible) == digits[:head] + digits[-tail:]
            assert body.count("*") == len(digits) - head - tail

    @settings(max_examples=200, deadline=None)
    @given(st.from_regex(r"\+[1-9][0-9]{8,14}", fullmatch=True))
    def test_e164_numbers_keep_head_and_last_three(self, number: str) -> None:
        """Any E.164 number keeps ``+``, five digits and the last three; stars in between."""
        masked = mask_phone(number)
        assert masked == number[:6] + "*" * (len(number) - 9) + number[-3:]
