"""Tests for servio_twilio.webhooks.http: requests, answers and form-encoded bodies."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, unquote

from hypothesis import given, settings, strategies as st

from servio_twilio.webhooks.http import (
    EMPTY_TWIML,
    _unquote,
    content_type_ok,
    decode_form,
    plain,
    query_cid,
    twiml,
)

# Percent escapes, '+', ASCII, and non-ASCII text (1 to 4 UTF-8 bytes).
# Escapes of the separators ('%26', '%3D', '%3d') take the decoder's slower path.
_FORM_TEXT = st.text(alphabet="ab=&%+2F0C3A9E8é\x00 ÿ€😀6Dd", max_size=30)


def _as_dict(pairs: list[tuple[str, str]]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for name, value in pairs:
        if name in found:
            present = found[name]
            found[name] = [*(present if isinstance(present, list) else [present]), value]
        else:
            found[name] = value
    return found


class TestUnquote:
    @settings(max_examples=2000)
    @given(st.text(alphabet="%+aF0C3A9E2829é\x80ÿ€😀", max_size=20))
    def test_agrees_with_urllib(self, text: str) -> None:
        """Decoding equals unquote(errors="strict") after '+' -> ' ', and fails when it fails."""
        try:
            expected: str | None = unquote(text.replace("+", " "), errors="strict")
        except UnicodeDecodeError:
            expected = None
        try:
            got: str | None = _unquote(text)
        except UnicodeError:
            got = None
        assert got == expected


class TestDecodeForm:
    @settings(max_examples=3000)
    @given(_FORM_TEXT)
    def test_reads_like_parse_qsl(self, text: str) -> None:
        """The decoder agrees with parse_qsl(keep_blank_values=True), strict UTF-8."""
        try:
            expected = _as_dict(parse_qsl(text, keep_blank_values=True, errors="strict"))
        except UnicodeDecodeError:
            assert decode_form(text.encode()) is None
            return
        assert decode_form(text.encode()) == expected

    def test_escaped_separators_stay_inside_fields(self) -> None:
        """'%26' and '%3D' decode to a literal '&' and '=' inside a name or value."""
        assert decode_form(b"a%3Db=c%26d&e=%3d") == {"a=b": "c&d", "e": "="}
        assert decode_form(b"To=%2B1555&Body=a+b%2Bc") == {"To": "+1555", "Body": "a b+c"}

    def test_raw_body_must_be_utf8(self) -> None:
        """A body that is not UTF-8 is undecodable, even where escapes would complete it."""
        assert decode_form(b"a=\xc3%A9") is None
        assert decode_form(b"a=%C3%A9") == {"a": "é"}

    def test_repeated_fields_become_lists(self) -> None:
        """A repeated field keeps every value, in order."""
        assert decode_form(b"a=1&b=2&a=3&a=4") == {"a": ["1", "3", "4"], "b": "2"}

    def test_too_many_fields(self) -> None:
        """Over 1000 fields is undecodable; 1000 is fine."""
        assert decode_form(b"&".join([b"a=1"] * 1001)) is None
        assert decode_form(b"&".join([b"a=1"] * 1000)) == {"a": ["1"] * 1000}

    def test_empty_body(self) -> None:
        """An empty body is an empty form."""
        assert decode_form(b"") == {}


class TestQueryCid:
    def test_first_cid_decoded(self) -> None:
        """The first cid is read, percent-decoded; other parameters do not matter."""
        assert query_cid("a=1&cid=abc%2D1&cid=zzz") == "abc-1"
        assert query_cid("cid=a+b") == "a b"

    def test_absent_or_undecodable(self) -> None:
        """No cid (or only a look-alike) and a cid that is not UTF-8 give None."""
        assert query_cid("") is None
        assert query_cid("xcid=1") is None
        assert query_cid("cid=%ff") is None

    def test_lone_surrogate_is_refused(self) -> None:
        """A query string that cannot be UTF-8 (a lone surrogate) gives None, not an error."""
        assert query_cid("cid=%41\udc80") is None


class TestContentTypeOk:
    def test_form_with_or_without_utf8_charset(self) -> None:
        """The form type is accepted bare, in any case, and with a UTF-8 or ASCII charset."""
        for value in (
            "application/x-www-form-urlencoded",
            "Application/X-WWW-Form-Urlencoded ; charset=UTF-8",
            'application/x-www-form-urlencoded; charset="us-ascii"',
        ):
            assert content_type_ok(value), value

    def test_refused(self) -> None:
        """Other types, a missing header and other charsets are refused."""
        for value in (
            None,
            "",
            "application/json",
            "application/x-www-form-urlencoded; charset=latin-1",
        ):
            assert not content_type_ok(value), value


class TestResponses:
    def test_plain(self) -> None:
        """A plain answer is UTF-8 text/plain with the extra headers after the type."""
        response = plain(405, "no\n", ("allow", "POST"))
        assert response.status == 405
        assert response.headers == (
            ("content-type", "text/plain; charset=utf-8"),
            ("allow", "POST"),
        )
        assert response.body == b"no\n"

    def test_twiml(self) -> None:
        """A TwiML answer is 200 text/xml, UTF-8."""
        response = twiml(EMPTY_TWIML.replace("/>", ">é</Response>"))
        assert (response.status, response.headers) == (200, (("content-type", "text/xml"),))
        assert response.body == "<Response>é</Response>".encode()
