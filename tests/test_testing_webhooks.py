"""signed_webhook: what Twilio would send, checked by our verifier and by twilio's."""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl, quote

import pytest
from hypothesis import given, settings, strategies as st
from twilio.request_validator import RequestValidator
from werkzeug.datastructures import MultiDict

from servio_twilio import ConfigurationError, InvalidSignature, WebhookVerifier
from servio_twilio.testing import signed_webhook

URL = "https://api.example.com/api/twilio/webhook/message-status?cid=abc123"
TOKEN = "test-auth-token"
PARAMS = {
    "MessageSid": "SM" + "a" * 32,
    "MessageStatus": "delivered",
    "To": "+5511999999999",
    "Body": "Olá, confirmado para às 15h & até já",
}


def decode(body: bytes) -> MultiDict[str, str]:
    """The body as a server reads a form: every field, repeated ones included."""
    return MultiDict(parse_qsl(body.decode("ascii"), keep_blank_values=True, strict_parsing=False))


class TestSignedWebhook:
    """The headers and body of a correctly signed callback."""

    def test_headers(self) -> None:
        """Form content type and an X-Twilio-Signature, nothing else."""
        headers, _ = signed_webhook(URL, PARAMS, TOKEN)
        assert set(headers) == {"Content-Type", "X-Twilio-Signature"}
        assert headers["Content-Type"] == "application/x-www-form-urlencoded"

    def test_twilio_documented_vector(self) -> None:
        """Twilio's documented example gives Twilio's documented signature."""
        params = {
            "CallSid": "CA1234567890ABCDE",
            "Digits": "1234",
            "From": "+14158675309",
            "To": "+18005551212",
            "Caller": "+14158675309",
        }
        headers, _ = signed_webhook("https://mycompany.com/myapp.php?foo=1&bar=2", params, "12345")
        assert headers["X-Twilio-Signature"] == "RSOYDt4T1cUTdK1PDd93/VVr8B8="

    def test_body_is_form_encoded(self) -> None:
        """The body decodes back to the fields, in the order given, non-ASCII included."""
        _, body = signed_webhook(URL, PARAMS, TOKEN)
        assert list(decode(body).items(multi=True)) == list(PARAMS.items())
        assert b"+5511999999999" not in body  # '+' is escaped, or it would read as a space

    def test_round_trip_verifier(self) -> None:
        """Our verifier accepts the callback as a server would decode it."""
        headers, body = signed_webhook(URL, PARAMS, TOKEN)
        WebhookVerifier(TOKEN).verify(URL, decode(body), headers["X-Twilio-Signature"])

    def test_round_trip_twilio(self) -> None:
        """twilio's RequestValidator accepts it too."""
        headers, body = signed_webhook(URL, PARAMS, TOKEN)
        assert RequestValidator(TOKEN).validate(URL, decode(body), headers["X-Twilio-Signature"])

    def test_repeated_fields(self) -> None:
        """A list value becomes a repeated field, signed as Twilio signs repeated fields."""
        params = {"Sid": "CA123", "SidAccount": "AC123", "Digits": ["5678", "1234"]}
        headers, body = signed_webhook(
            "https://mycompany.com/myapp.php?foo=1&bar=2", params, "12345"
        )
        assert headers["X-Twilio-Signature"] == "IK+Dwps556ElfBT0I3Rgjkr1wJU="
        assert body == b"Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234"

    def test_other_token_refused(self) -> None:
        """The signature is the given token's: a verifier with another token refuses it."""
        headers, body = signed_webhook(URL, PARAMS, TOKEN)
        with pytest.raises(InvalidSignature):
            WebhookVerifier("another-token").verify(
                URL, decode(body), headers["X-Twilio-Signature"]
            )

    def test_signs_the_url_as_given(self) -> None:
        """The URL is signed exactly as passed: another query string does not verify."""
        headers, body = signed_webhook(URL, PARAMS, TOKEN)
        with pytest.raises(InvalidSignature):
            WebhookVerifier(TOKEN).verify(
                URL.replace("abc123", "abc124"), decode(body), headers["X-Twilio-Signature"]
            )

    def test_empty_params(self) -> None:
        """No fields: an empty body and a signature over the URL alone."""
        headers, body = signed_webhook(URL, {}, TOKEN)
        assert body == b""
        assert headers["X-Twilio-Signature"] == RequestValidator(TOKEN).compute_signature(URL, {})

    @pytest.mark.parametrize(
        ("url", "params", "token"),
        [
            ("", PARAMS, TOKEN),
            (None, PARAMS, TOKEN),
            (URL, PARAMS, ""),
            (URL, PARAMS, "  "),
            (URL, PARAMS, None),
            (URL, [("To", "x")], TOKEN),
            (URL, {"To": 1}, TOKEN),
            (URL, {"To": ["x", None]}, TOKEN),
            (URL, {1: "x"}, TOKEN),
            (URL, {"To": "\ud800"}, TOKEN),
            (URL, PARAMS, "\ud800"),
        ],
    )
    def test_bad_input(self, url: Any, params: Any, token: Any) -> None:
        """Bad arguments raise ConfigurationError, never a TypeError or UnicodeError."""
        with pytest.raises(ConfigurationError):
            signed_webhook(url, params, token)

    @settings(max_examples=300, deadline=None)
    @given(
        path=st.text(
            st.characters(blacklist_categories=("Cs",), blacklist_characters="?#"), max_size=10
        ),
        params=st.dictionaries(
            st.text(max_size=10),
            st.text(max_size=10)
            | st.lists(st.text(max_size=10), min_size=1, max_size=3, unique=True),
            max_size=6,
        ),
    )
    def test_round_trip_generated(self, path: str, params: dict[str, Any]) -> None:
        """Any fields (unicode, blanks, repeated) and paths round-trip through both verifiers."""
        url = f"https://api.example.com/{quote(path)}?cid=x"
        headers, body = signed_webhook(url, params, TOKEN)
        received = decode(body)
        signature = headers["X-Twilio-Signature"]
        WebhookVerifier(TOKEN).verify(url, received, signature)
        assert RequestValidator(TOKEN).validate(url, received, signature)
