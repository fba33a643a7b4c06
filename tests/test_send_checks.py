"""Unit tests for servio_twilio.sending.checks: every argument check of a send, at its boundary."""

from __future__ import annotations

import math
from collections import OrderedDict
from typing import Any

import pytest

from servio_twilio.domain.errors import InvalidPhoneNumber
from servio_twilio.domain.models import Channel
from servio_twilio.sending.checks import (
    MAX_BODY_CHARS,
    MAX_MEDIA,
    MAX_TWIML_CHARS,
    check_content,
    check_prospect_id,
    check_twiml,
    check_url,
    normalize_number,
)

TO = "+5511999999999"
TEMPLATE = "HX" + "a" * 32
IMAGE = "https://cdn.servio.test/a.jpg"


def _sms(body: object = "hi", **extra: Any) -> tuple[Any, ...]:
    args = {"media_url": None, "content_sid": None, "content_variables": None}
    args.update(extra)
    return check_content(
        Channel.SMS, body, args["media_url"], args["content_sid"], args["content_variables"]
    )


def _whatsapp(
    body: object = None,
    media_url: object = None,
    content_sid: object = None,
    content_variables: object = None,
) -> tuple[Any, ...]:
    return check_content(Channel.WHATSAPP, body, media_url, content_sid, content_variables)


class TestCheckProspectId:
    def test_none_is_accepted_unless_required(self) -> None:
        """None passes by default; with required=True it is a TypeError naming prospect_id."""
        check_prospect_id(None)
        with pytest.raises(TypeError, match="prospect_id must be a string, not NoneType"):
            check_prospect_id(None, required=True)

    @pytest.mark.parametrize("value", ["p1", " padded ", "ü"])
    def test_non_blank_strings_pass(self, value: str) -> None:
        """Any string with a non-blank character passes, required or not."""
        check_prospect_id(value)
        check_prospect_id(value, required=True)

    @pytest.mark.parametrize("value", [1, b"p1", ["p1"]])
    def test_non_strings_are_type_errors(self, value: object) -> None:
        """A non-string prospect id is a TypeError naming its type."""
        with pytest.raises(TypeError, match=type(value).__name__):
            check_prospect_id(value)

    @pytest.mark.parametrize("value", ["", "   ", "\t\n"])
    def test_blank_strings_are_value_errors(self, value: str) -> None:
        """An empty or blank prospect id is a ValueError, even when optional."""
        with pytest.raises(ValueError, match="prospect_id must not be empty"):
            check_prospect_id(value)


class TestNormalizeNumber:
    def test_formatted_number_becomes_e164(self) -> None:
        """A formatted international number comes back in E.164."""
        assert normalize_number("+55 (11) 99999-9999", allow_whatsapp=False, what="an SMS") == TO

    @pytest.mark.parametrize("prefix", ["whatsapp:", "WhatsApp:", "  WHATSAPP:"])
    def test_whatsapp_prefix_allowed_and_stripped(self, prefix: str) -> None:
        """With allow_whatsapp the prefix (any case, leading blanks) is accepted and dropped."""
        assert normalize_number(prefix + TO, allow_whatsapp=True, what="x") == TO

    @pytest.mark.parametrize("prefix", ["whatsapp:", "WhatsApp:", "  WHATSAPP:"])
    def test_whatsapp_prefix_refused_names_the_use(self, prefix: str) -> None:
        """Without allow_whatsapp, a whatsapp: address is refused saying what it cannot get."""
        with pytest.raises(InvalidPhoneNumber) as caught:
            normalize_number(prefix + TO, allow_whatsapp=False, what="a call")
        assert caught.value.reason == "a whatsapp: address cannot receive a call"
        assert caught.value.raw == prefix + TO

    def test_national_number_in_the_default_region(self) -> None:
        """A national number is read in default_region; without one it is refused."""
        national = "(11) 99999-9999"
        assert normalize_number(national, allow_whatsapp=False, what="x", default_region="BR") == TO
        with pytest.raises(InvalidPhoneNumber, match="no country code"):
            normalize_number(national, allow_whatsapp=False, what="x")

    @pytest.mark.parametrize("bad", ["", "abc", "+1", None, 5511999999999])
    def test_invalid_numbers(self, bad: object) -> None:
        """Anything that is not a valid number is InvalidPhoneNumber (also a ValueError)."""
        with pytest.raises(InvalidPhoneNumber) as caught:
            normalize_number(bad, allow_whatsapp=True, what="x")
        assert isinstance(caught.value, ValueError)


class TestCheckContentSms:
    def test_body_is_returned_alone(self) -> None:
        """An SMS gives its body and no media, template or variables."""
        assert _sms("hello") == ("hello", (), None, None)

    def test_body_at_the_limit_passes(self) -> None:
        """A body of exactly MAX_BODY_CHARS characters is accepted unchanged."""
        body = "x" * MAX_BODY_CHARS
        assert _sms(body)[0] == body

    def test_body_over_the_limit(self) -> None:
        """One character over the limit is a ValueError giving the length and the limit."""
        with pytest.raises(ValueError, match=f"body is {MAX_BODY_CHARS + 1} characters.*1600"):
            _sms("x" * (MAX_BODY_CHARS + 1))

    def test_missing_body(self) -> None:
        """An SMS without a body is a ValueError."""
        with pytest.raises(ValueError, match="body is required"):
            _sms(None)

    @pytest.mark.parametrize("body", ["", "  \n "])
    def test_blank_body(self, body: str) -> None:
        """An empty or blank SMS body is a ValueError."""
        with pytest.raises(ValueError, match="body must not be empty"):
            _sms(body)

    @pytest.mark.parametrize("body", [b"hi", 42, ["hi"]])
    def test_body_of_wrong_type(self, body: object) -> None:
        """A non-string body is a TypeError naming its type."""
        with pytest.raises(TypeError, match=f"body must be a string, not {type(body).__name__}"):
            _sms(body)

    @pytest.mark.parametrize(
        "extra",
        [{"media_url": IMAGE}, {"content_sid": TEMPLATE}, {"content_variables": {"1": "a"}}],
    )
    def test_media_and_templates_are_refused(self, extra: dict[str, Any]) -> None:
        """Media, a template or template variables on an SMS point to send_whatsapp."""
        with pytest.raises(ValueError, match="send_whatsapp"):
            _sms("hi", **extra)


class TestCheckContentWhatsapp:
    def test_body_only(self) -> None:
        """A WhatsApp body alone is accepted."""
        assert _whatsapp("olá") == ("olá", (), None, None)

    def test_blank_body_with_media_reads_as_no_body(self) -> None:
        """A blank body beside media is dropped (None), not sent as whitespace."""
        assert _whatsapp("  ", IMAGE) == (None, (IMAGE,), None, None)

    def test_one_url_becomes_a_tuple(self) -> None:
        """A single media URL string comes back as a one-item tuple."""
        assert _whatsapp(media_url=IMAGE)[1] == (IMAGE,)

    @pytest.mark.parametrize("container", [list, tuple])
    def test_list_or_tuple_of_urls_keeps_order(self, container: type) -> None:
        """A list or tuple of URLs comes back as a tuple in the same order."""
        urls = [f"https://cdn.servio.test/{i}.jpg" for i in range(MAX_MEDIA)]
        assert _whatsapp(media_url=container(urls))[1] == tuple(urls)

    def test_too_many_urls(self) -> None:
        """More than MAX_MEDIA URLs is a ValueError giving the count and the limit."""
        urls = [IMAGE] * (MAX_MEDIA + 1)
        with pytest.raises(ValueError, match=f"{MAX_MEDIA + 1} media URLs.*limit is {MAX_MEDIA}"):
            _whatsapp(media_url=urls)

    def test_empty_url_list(self) -> None:
        """An empty list of media URLs is a ValueError, not a message without content."""
        with pytest.raises(ValueError, match="media_url must not be an empty list"):
            _whatsapp("hi", media_url=[])

    @pytest.mark.parametrize("media", [{IMAGE}, 3, b"https://x/a.jpg"])
    def test_media_of_wrong_type(self, media: object) -> None:
        """A set, a number or bytes as media_url is a TypeError naming the type."""
        with pytest.raises(TypeError, match=f"not {type(media).__name__}"):
            _whatsapp(media_url=media)

    def test_a_non_string_url_in_the_list(self) -> None:
        """A list item that is not a string is a TypeError naming media_url."""
        with pytest.raises(TypeError, match="media_url must be a string, not int"):
            _whatsapp(media_url=[IMAGE, 7])

    @pytest.mark.parametrize("url", ["ftp://cdn/a.jpg", "/a.jpg", "https:///a.jpg"])
    def test_a_bad_url_in_the_list(self, url: str) -> None:
        """A media URL that is not absolute http(s) is a ValueError naming media_url."""
        with pytest.raises(ValueError, match="media_url must be an absolute http"):
            _whatsapp(media_url=[IMAGE, url])

    def test_nothing_to_send(self) -> None:
        """No body, media or template is a ValueError listing the three options."""
        with pytest.raises(ValueError, match="needs a body, media_url or content_sid"):
            _whatsapp(" ")

    def test_template_alone(self) -> None:
        """A template SID without variables passes with variables None."""
        assert _whatsapp(content_sid=TEMPLATE) == (None, (), TEMPLATE, None)

    def test_template_variables_are_json_with_unicode_kept(self) -> None:
        """Variables are encoded as JSON, in order, with non-ASCII characters as themselves."""
        variables = OrderedDict([("1", "João"), ("2", 3), ("3", None)])
        _, _, sid, encoded = _whatsapp(content_sid=TEMPLATE, content_variables=variables)
        assert sid == TEMPLATE
        assert encoded == '{"1": "João", "2": 3, "3": null}'

    def test_upper_case_hex_template(self) -> None:
        """Upper-case hex digits in the template SID are accepted."""
        sid = "HX" + "ABCDEF0123456789" * 2
        assert _whatsapp(content_sid=sid)[2] == sid

    @pytest.mark.parametrize(
        "sid", ["HX" + "a" * 31, "HX" + "a" * 33, "hx" + "a" * 32, "HX" + "g" * 32, 123]
    )
    def test_bad_template_sid(self, sid: object) -> None:
        """A content SID that is not HX + 32 hex digits (or not a string) is a ValueError."""
        with pytest.raises(ValueError, match="content_sid must be HX followed by 32 hex digits"):
            _whatsapp(content_sid=sid)

    @pytest.mark.parametrize("extra", [{"body": "hi"}, {"media_url": IMAGE}])
    def test_template_with_body_or_media(self, extra: dict[str, Any]) -> None:
        """A template cannot be combined with a body or media."""
        with pytest.raises(ValueError, match="cannot be combined"):
            _whatsapp(content_sid=TEMPLATE, **extra)

    def test_variables_without_template(self) -> None:
        """Variables without a content SID are a ValueError."""
        with pytest.raises(ValueError, match="content_variables needs a content_sid"):
            _whatsapp("hi", content_variables={"1": "a"})

    def test_variables_not_a_mapping(self) -> None:
        """A list of variables is a TypeError naming the type."""
        with pytest.raises(TypeError, match="content_variables must be a mapping, not list"):
            _whatsapp(content_sid=TEMPLATE, content_variables=[("1", "a")])

    def test_variables_with_non_string_keys(self) -> None:
        """Integer keys (which JSON would silently turn into strings) are a TypeError."""
        with pytest.raises(TypeError, match="keys must be strings"):
            _whatsapp(content_sid=TEMPLATE, content_variables={1: "a"})

    @pytest.mark.parametrize("value", [object(), math.nan, math.inf, {1, 2}])
    def test_variables_not_json(self, value: object) -> None:
        """Values JSON cannot carry (objects, sets, NaN, infinity) are a ValueError."""
        with pytest.raises(ValueError, match="content_variables must be JSON-serializable"):
            _whatsapp(content_sid=TEMPLATE, content_variables={"1": value})


class TestCheckTwiml:
    def test_url_alone(self) -> None:
        """A TwiML URL alone passes."""
        check_twiml("https://servio.test/twiml.xml", None)

    def test_document_alone(self) -> None:
        """A TwiML document alone passes, up to MAX_TWIML_CHARS characters."""
        check_twiml(None, "<Response><Say>Oi</Say></Response>")
        check_twiml(None, "x" * MAX_TWIML_CHARS)

    @pytest.mark.parametrize(
        ("url", "document"), [(None, None), ("https://servio.test/t.xml", "<Response/>")]
    )
    def test_exactly_one(self, url: object, document: object) -> None:
        """Neither or both of twiml_url and twiml is a ValueError."""
        with pytest.raises(ValueError, match="exactly one of twiml_url and twiml"):
            check_twiml(url, document)

    def test_bad_url_is_named(self) -> None:
        """A relative twiml_url is a ValueError naming twiml_url."""
        with pytest.raises(ValueError, match="twiml_url must be an absolute http"):
            check_twiml("/twiml.xml", None)

    def test_document_of_wrong_type(self) -> None:
        """Bytes as twiml are a TypeError naming the type."""
        with pytest.raises(TypeError, match="twiml must be a string, not bytes"):
            check_twiml(None, b"<Response/>")

    @pytest.mark.parametrize("document", ["", "  ", "x" * (MAX_TWIML_CHARS + 1)])
    def test_document_blank_or_too_long(self, document: str) -> None:
        """A blank document or one over the limit is a ValueError giving the bounds."""
        with pytest.raises(ValueError, match=f"1 to {MAX_TWIML_CHARS} characters"):
            check_twiml(None, document)


class TestCheckUrl:
    @pytest.mark.parametrize(
        "url",
        [
            "https://servio.test/cb",
            "http://localhost:8000/cb?a=1",
            "https://[::1]:8443/x",
            "HTTPS://SERVIO.TEST/",
        ],
    )
    def test_absolute_http_urls_pass(self, url: str) -> None:
        """Absolute http and https URLs (ports, queries, IPv6, upper case) pass."""
        check_url(url, "status_callback")

    @pytest.mark.parametrize(
        "url",
        [
            "ftp://servio.test/cb",
            "servio.test/cb",
            "/cb",
            "https://",
            "https://servio.test/a b",
            "https://servio.test/a\tb",
            "https://servio.test/\n",
        ],
    )
    def test_other_strings_are_refused_with_the_name(self, url: str) -> None:
        """Other schemes, relative URLs, no host or any whitespace: ValueError with the name."""
        with pytest.raises(ValueError, match=r"^my_callback must be an absolute http"):
            check_url(url, "my_callback")

    def test_unparseable_url(self) -> None:
        """A URL urllib cannot split (an unclosed IPv6 bracket) is our ValueError, not urllib's."""
        with pytest.raises(ValueError, match=r"^my_callback is not a URL$") as caught:
            check_url("https://[::1/cb", "my_callback")
        assert caught.value.__cause__ is None
        assert caught.value.__suppress_context__

    def test_refused_url_is_not_echoed(self) -> None:
        """The message does not repeat a refused URL: it may carry credentials."""
        url = "ftp://user:s3cret@host.example/" + "a" * 500
        with pytest.raises(ValueError, match="must be an absolute") as caught:
            check_url(url, "u")
        assert "s3cret" not in str(caught.value)
        assert len(str(caught.value)) < 100

    @pytest.mark.parametrize("url", [None, b"https://x", 1])
    def test_non_strings(self, url: object) -> None:
        """A non-string URL is a TypeError naming the argument and the type."""
        with pytest.raises(TypeError, match=f"^u must be a string, not {type(url).__name__}$"):
            check_url(url, "u")
