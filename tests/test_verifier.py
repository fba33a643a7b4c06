"""WebhookVerifier: Twilio's vectors, twilio's RequestValidator as an oracle, malformed input."""

from __future__ import annotations

import hashlib
import logging
from typing import Any
from urllib.parse import urlparse, urlsplit

import pytest
from django.http import QueryDict
from hypothesis import HealthCheck, event, given, settings, strategies as st
from multidict import MultiDict as AioMultiDict
from starlette.datastructures import FormData
from twilio.request_validator import RequestValidator, add_port, remove_port
from werkzeug.datastructures import MultiDict

import servio_twilio.webhooks.verifier as verifier_module
from servio_twilio import (
    ConfigurationError,
    InvalidSignature,
    MissingSignature,
    WebhookVerificationError,
    WebhookVerifier,
)
from support.django_project import configure as configure_django

configure_django()  # QueryDict reads the charset from Django's settings

# The vectors of twilio-python's tests/unit/test_request_validator.py.
TOKEN = "12345"
URI = "https://mycompany.com/myapp.php?foo=1&bar=2"
PARAMS = {
    "CallSid": "CA1234567890ABCDE",
    "Digits": "1234",
    "From": "+14158675309",
    "To": "+18005551212",
    "Caller": "+14158675309",
}
EXPECTED = "RSOYDt4T1cUTdK1PDd93/VVr8B8="
BODY = '{"property": "value", "boolean": true}'
BODY_HASH = "0a1ff7634d9ab3b95db5c9a2dfe9416e41502b283a80c7cf19632632f96e6620"
URI_WITH_BODY = URI + "&bodySHA256=" + BODY_HASH
BODY_SIGNATURE = "a9nBmqA0ju/hNViExpshrM61xv4="
DUPLICATE_EXPECTED = "IK+Dwps556ElfBT0I3Rgjkr1wJU="
SECONDARY = "secondary-token-67890"
SHARED_ID = "webhooks_sharedkey_abc"
SHARED_SECRET = "shared-secret-xyz"
SHARED_HEADER = f"key={SHARED_ID},algorithm=HMAC_SHA256"


def sign(url: str, params: Any, token: str = TOKEN, algorithm: str | None = None) -> str:
    """Twilio's own signature for url + params."""
    return RequestValidator(token).compute_signature(url, params, algorithm)


@pytest.fixture
def verifier() -> WebhookVerifier:
    return WebhookVerifier(
        TOKEN, secondary_auth_token=SECONDARY, shared_keys={SHARED_ID: SHARED_SECRET}
    )


class TestOfficialVectors:
    """The examples of twilio-python's own test suite."""

    def test_documented_form_signature(self) -> None:
        """The documented form callback verifies with its documented signature."""
        WebhookVerifier(TOKEN).verify(URI, PARAMS, EXPECTED)

    def test_https_port_removed(self) -> None:
        """A URL with :1234 verifies with the signature of the URL without it."""
        WebhookVerifier(TOKEN).verify(URI.replace(".com", ".com:1234"), PARAMS, EXPECTED)

    def test_http_with_port_as_signed(self) -> None:
        """An http URL with a port verifies with the signature of that very URL."""
        uri = URI.replace(".com", ".com:1234").replace("https", "http")
        WebhookVerifier(TOKEN).verify(uri, PARAMS, "Zmvh+3yNM1Phv2jhDCwEM3q5ebU=")

    def test_https_default_port_added(self) -> None:
        """A signature over the URL with :443 verifies for the URL without a port."""
        WebhookVerifier(TOKEN).verify(URI, PARAMS, "kvajT1Ptam85bY51eRf/AJRuM3w=")

    def test_http_default_port_added(self) -> None:
        """A signature over the http URL with :80 verifies for the URL without a port."""
        uri = URI.replace("https", "http")
        WebhookVerifier(TOKEN).verify(uri, PARAMS, "0ZXoZLH/DfblKGATFgpif+LLRf4=")

    def test_json_body(self) -> None:
        """The documented JSON body verifies through bodySHA256, as str and as bytes."""
        assert hashlib.sha256(BODY.encode()).hexdigest() == BODY_HASH
        WebhookVerifier(TOKEN).verify(URI_WITH_BODY, BODY, BODY_SIGNATURE)
        WebhookVerifier(TOKEN).verify(URI_WITH_BODY, BODY.encode(), BODY_SIGNATURE)

    @pytest.mark.parametrize(
        "params",
        [
            {"Sid": "CA123", "SidAccount": "AC123", "Digits": ["5678", "1234"]},
            MultiDict(
                [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
            ),
            AioMultiDict(
                [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
            ),
            QueryDict("Sid=CA123&SidAccount=AC123&Digits=5678&Digits=1234", encoding="utf-8"),
            FormData(
                [("Sid", "CA123"), ("SidAccount", "AC123"), ("Digits", "5678"), ("Digits", "1234")]
            ),
        ],
        ids=["dict-of-lists", "werkzeug", "multidict", "django", "starlette"],
    )
    def test_repeated_fields(self, params: Any) -> None:
        """Repeated fields verify with the documented signature, from a list or any multi-dict."""
        WebhookVerifier(TOKEN).verify(URI, params, DUPLICATE_EXPECTED)

    def test_wrong_signature_refused(self) -> None:
        """Another valid-looking signature is refused with InvalidSignature."""
        with pytest.raises(InvalidSignature):
            WebhookVerifier(TOKEN).verify(URI, PARAMS, DUPLICATE_EXPECTED)


class TestConstructor:
    """Tokens and shared keys are checked once, and never shown."""

    @pytest.mark.parametrize("token", ["", "   ", None, 12345, b"12345", "\ud800"])
    def test_bad_auth_token(self, token: Any) -> None:
        """An empty, blank, non-str or unencodable token raises ConfigurationError."""
        with pytest.raises(ConfigurationError, match="auth_token"):
            WebhookVerifier(token)

    @pytest.mark.parametrize("token", ["", " \t", 1, b"x"])
    def test_bad_secondary_token(self, token: Any) -> None:
        """A secondary token that is given must be a non-blank str too."""
        with pytest.raises(ConfigurationError, match="secondary_auth_token"):
            WebhookVerifier(TOKEN, secondary_auth_token=token)

    @pytest.mark.parametrize(
        "shared_keys",
        [
            ["key", "secret"],
            "key=secret",
            {"": "secret"},
            {" ": "s"},
            {1: "secret"},
            {"k": ""},
            {"k": None},
        ],
    )
    def test_bad_shared_keys(self, shared_keys: Any) -> None:
        """Malformed shared_keys raise ConfigurationError, never a TypeError."""
        with pytest.raises(ConfigurationError, match="shared_keys"):
            WebhookVerifier(TOKEN, shared_keys=shared_keys)

    def test_repr_hides_secrets(self) -> None:
        """repr shows that tokens are set and the key ids, never a secret."""
        text = repr(
            WebhookVerifier(
                "primary-secret", secondary_auth_token="second-secret", shared_keys={"kid": "ks"}
            )
        )
        assert "primary-secret" not in text
        assert "second-secret" not in text
        assert "'ks'" not in text
        assert "kid" in text
        assert "secondary_auth_token='***'" in text
        assert "secondary_auth_token=None" in repr(WebhookVerifier("primary-secret"))

    def test_no_secret_in_errors_or_logs(self, caplog: pytest.LogCaptureFixture) -> None:
        """A failed verification mentions no token in its error or the logs."""
        caplog.set_level(logging.DEBUG, logger="servio_twilio")
        v = WebhookVerifier("primary-secret", secondary_auth_token="second-secret")
        with pytest.raises(InvalidSignature) as info:
            v.verify(URI, PARAMS, EXPECTED)
        with pytest.raises(InvalidSignature) as malformed:
            v.verify(URI, {"a": 1}, EXPECTED)
        text = caplog.text + str(info.value) + str(malformed.value)
        assert caplog.records
        assert "primary-secret" not in text
        assert "second-secret" not in text


class TestPortVariants:
    """The URL is tried as given, then without its port or with the default one."""

    @pytest.mark.parametrize(
        ("received", "signed"),
        [
            ("https://h.example/cb?x=1", "https://h.example:443/cb?x=1"),
            ("https://h.example:443/cb", "https://h.example/cb"),
            ("https://h.example:8443/cb", "https://h.example/cb"),
            ("http://h.example/cb", "http://h.example:80/cb"),
            ("http://h.example:8080/cb", "http://h.example/cb"),
            ("HTTPS://h.example/cb?", "https://h.example/cb"),
        ],
    )
    def test_variants_accepted(self, received: str, signed: str) -> None:
        """A signature over either form of the URL verifies."""
        WebhookVerifier(TOKEN).verify(received, PARAMS, sign(signed, PARAMS))

    @pytest.mark.parametrize(
        ("received", "signed"),
        [
            ("https://h.example/cb", "https://h.example:8443/cb"),
            ("https://h.example/cb", "http://h.example/cb"),
            ("https://h.example:8443/cb", "https://h.example:443/cb"),
            ("https://h.example/cb", "https://h.example/cb/"),
        ],
    )
    def test_other_urls_refused(self, received: str, signed: str) -> None:
        """Another port, scheme or path is not a variant."""
        with pytest.raises(InvalidSignature):
            WebhookVerifier(TOKEN).verify(received, PARAMS, sign(signed, PARAMS))

    @pytest.mark.parametrize("url", ["https://h.example:99999/cb", "https://h.example:x/cb"])
    def test_bad_port_refused_even_when_signed(self, url: str) -> None:
        """A URL whose port is not a port is refused, even signed over as given."""
        with pytest.raises(InvalidSignature, match="malformed"):
            WebhookVerifier(TOKEN).verify(url, PARAMS, sign(url, PARAMS))

    def test_common_case_is_one_hmac(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """The URL as given with the primary token costs one HMAC and no port variant."""
        calls: list[bytes] = []
        real = verifier_module._KeyState.signature

        def counting(state: Any, data: bytes) -> bytes:
            calls.append(data)
            return real(state, data)

        def no_variant(parsed: Any) -> str:
            raise AssertionError("port variant computed in the common case")

        monkeypatch.setattr(verifier_module._KeyState, "signature", counting)
        monkeypatch.setattr(verifier_module, "_port_variant", no_variant)
        WebhookVerifier(TOKEN, secondary_auth_token=SECONDARY).verify(URI, PARAMS, EXPECTED)
        assert len(calls) == 1

    def test_port_variant_after_first_try(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """A signature over the variant is found after both tokens failed on the URL as given."""
        calls: list[bytes] = []
        real = verifier_module._KeyState.signature

        def counting(state: Any, data: bytes) -> bytes:
            calls.append(data)
            return real(state, data)

        monkeypatch.setattr(verifier_module._KeyState, "signature", counting)
        signature = sign("https://mycompany.com:443/myapp.php?foo=1&bar=2", PARAMS, SECONDARY)
        WebhookVerifier(TOKEN, secondary_auth_token=SECONDARY).verify(URI, PARAMS, signature)
        assert [d.split(b"?")[0] for d in calls] == [
            b"https://mycompany.com/myapp.php",
            b"https://mycompany.com/myapp.php",
            b"https://mycompany.com:443/myapp.php",
            b"https://mycompany.com:443/myapp.php",
        ]


class TestKeyLengths:
    """Precomputed key states give the HMAC of any token or secret length."""

    @settings(max_examples=200, deadline=None)
    @given(
        token=st.text(min_size=1, max_size=150).filter(str.strip),
        algorithm=st.sampled_from(["HMAC_SHA1", "HMAC_SHA256"]),
    )
    def test_any_length(self, token: str, algorithm: str) -> None:
        """Tokens and shared secrets shorter and longer than the hash block verify."""
        WebhookVerifier(token).verify(URI, PARAMS, sign(URI, PARAMS, token))
        verifier = WebhookVerifier(TOKEN, shared_keys={SHARED_ID: token})
        header = f"key={SHARED_ID},algorithm={algorithm}"
        verifier.verify(URI, PARAMS, sign(URI, PARAMS, token, algorithm), signature_settings=header)

    @pytest.mark.parametrize("length", [1, 63, 64, 65, 128, 129, 500])
    def test_block_size_edges(self, length: int) -> None:
        """Keys around the 64-byte block size (hashed first when longer) verify."""
        token = "k" * length
        WebhookVerifier(token).verify(URI, PARAMS, sign(URI, PARAMS, token))


class TestSecondaryToken:
    """Both tokens count while a token rotation is under way."""

    def test_secondary_signature_accepted(self, verifier: WebhookVerifier) -> None:
        """A signature made with the secondary token verifies."""
        verifier.verify(URI, PARAMS, sign(URI, PARAMS, SECONDARY))

    def test_secondary_with_port_variant(self, verifier: WebhookVerifier) -> None:
        """The secondary token is tried on the port variant too."""
        verifier.verify(
            URI, PARAMS, sign("https://mycompany.com:443/myapp.php?foo=1&bar=2", PARAMS, SECONDARY)
        )

    def test_without_secondary_refused(self) -> None:
        """Without the secondary token configured, its signatures are refused."""
        with pytest.raises(InvalidSignature):
            WebhookVerifier(TOKEN).verify(URI, PARAMS, sign(URI, PARAMS, SECONDARY))

    def test_other_token_refused(self, verifier: WebhookVerifier) -> None:
        """A signature made with a third token is refused."""
        with pytest.raises(InvalidSignature):
            verifier.verify(URI, PARAMS, sign(URI, PARAMS, "third-token"))


class TestSharedKeys:
    """X-Twilio-Webhooks-Signature-Settings picks the SharedKey and algorithm."""

    def test_sha256_shared_key(self, verifier: WebhookVerifier) -> None:
        """HMAC-SHA256 with the named key verifies (as twilio computes it)."""
        signature = sign(URI, PARAMS, SHARED_SECRET, "HMAC_SHA256")
        assert len(signature) == 44
        verifier.verify(URI, PARAMS, signature, signature_settings=SHARED_HEADER)

    def test_sha256_port_variant_and_json(self, verifier: WebhookVerifier) -> None:
        """Port variants and JSON bodies work with a shared key as with a token."""
        signature = sign(
            "https://mycompany.com:443/myapp.php?foo=1&bar=2", PARAMS, SHARED_SECRET, "HMAC_SHA256"
        )
        verifier.verify(URI, PARAMS, signature, signature_settings=SHARED_HEADER)
        signature = sign(URI_WITH_BODY, {}, SHARED_SECRET, "HMAC_SHA256")
        verifier.verify(URI_WITH_BODY, BODY, signature, signature_settings=SHARED_HEADER)

    @pytest.mark.parametrize(
        "header",
        [
            f" key = {SHARED_ID} , algorithm = hmac_sha256 ",
            f"algorithm=HMAC_SHA256,key={SHARED_ID}",
            f"key={SHARED_ID},algorithm=HMAC_SHA256,future=1,",
        ],
    )
    def test_header_spelling(self, verifier: WebhookVerifier, header: str) -> None:
        """Blanks, order, the algorithm's case and unknown parts do not matter."""
        signature = sign(URI, PARAMS, SHARED_SECRET, "HMAC_SHA256")
        verifier.verify(URI, PARAMS, signature, signature_settings=header)

    def test_sha1_shared_key(self, verifier: WebhookVerifier) -> None:
        """HMAC_SHA1 named, or no algorithm (twilio's default), uses SHA-1 with the key."""
        signature = sign(URI, PARAMS, SHARED_SECRET)
        verifier.verify(
            URI, PARAMS, signature, signature_settings=f"key={SHARED_ID},algorithm=HMAC_SHA1"
        )
        verifier.verify(URI, PARAMS, signature, signature_settings=f"key={SHARED_ID}")

    def test_header_means_key_not_token(self, verifier: WebhookVerifier) -> None:
        """With the header, a signature made with the auth token is refused."""
        with pytest.raises(InvalidSignature):
            verifier.verify(
                URI, PARAMS, EXPECTED, signature_settings=f"key={SHARED_ID},algorithm=HMAC_SHA1"
            )

    def test_blank_header_means_token(self, verifier: WebhookVerifier) -> None:
        """An empty or blank header counts as absent: the tokens are used."""
        verifier.verify(URI, PARAMS, EXPECTED, signature_settings="")
        verifier.verify(URI, PARAMS, EXPECTED, signature_settings="  ")

    def test_wrong_algorithm_for_signature(self, verifier: WebhookVerifier) -> None:
        """A SHA-256 signature does not verify when the header says SHA-1."""
        signature = sign(URI, PARAMS, SHARED_SECRET, "HMAC_SHA256")
        with pytest.raises(InvalidSignature):
            verifier.verify(
                URI, PARAMS, signature, signature_settings=f"key={SHARED_ID},algorithm=HMAC_SHA1"
            )

    @pytest.mark.parametrize(
        ("header", "reason"),
        [
            ("key=webhooks_sharedkey_other,algorithm=HMAC_SHA256", "unknown shared key"),
            (f"key={SHARED_ID},algorithm=HMAC_SHA512", "unsupported algorithm"),
            (f"key={SHARED_ID},algorithm=RSA", "unsupported algorithm"),
            ("algorithm=HMAC_SHA256", "names no key"),
            ("key=,algorithm=HMAC_SHA256", "names no key"),
            (f"{SHARED_ID},HMAC_SHA256", "malformed"),
            (f"key={SHARED_ID},key=other,algorithm=HMAC_SHA256", "malformed"),
        ],
    )
    def test_bad_headers_refused(self, verifier: WebhookVerifier, header: str, reason: str) -> None:
        """Unknown key ids, unknown algorithms and malformed headers raise InvalidSignature."""
        signature = sign(URI, PARAMS, SHARED_SECRET, "HMAC_SHA256")
        with pytest.raises(InvalidSignature, match=reason):
            verifier.verify(URI, PARAMS, signature, signature_settings=header)

    def test_no_shared_keys_configured(self) -> None:
        """A verifier without shared keys refuses every signature settings header."""
        signature = sign(URI, PARAMS, SHARED_SECRET, "HMAC_SHA256")
        with pytest.raises(InvalidSignature, match="unknown shared key"):
            WebhookVerifier(TOKEN).verify(URI, PARAMS, signature, signature_settings=SHARED_HEADER)


class TestJsonBodies:
    """A raw body is checked by the URL's bodySHA256."""

    def test_tampered_body_refused(self) -> None:
        """A body that is not the one hashed in the URL is refused."""
        with pytest.raises(InvalidSignature, match="bodySHA256"):
            WebhookVerifier(TOKEN).verify(
                URI_WITH_BODY, BODY.replace("true", "false"), BODY_SIGNATURE
            )

    def test_tampered_hash_refused(self) -> None:
        """A URL whose bodySHA256 was changed to match another body is refused."""
        other = '{"property": "other"}'
        url = URI + "&bodySHA256=" + hashlib.sha256(other.encode()).hexdigest()
        with pytest.raises(InvalidSignature):
            WebhookVerifier(TOKEN).verify(url, other, BODY_SIGNATURE)

    def test_body_without_hash_refused(self) -> None:
        """A non-empty raw body without bodySHA256 is refused, even with a URL signature."""
        with pytest.raises(InvalidSignature, match="bodySHA256"):
            WebhookVerifier(TOKEN).verify(URI, BODY, sign(URI, {}))
        with pytest.raises(InvalidSignature, match="bodySHA256"):
            WebhookVerifier(TOKEN).verify(URI, BODY.encode(), sign(URI, {}))

    def test_empty_body(self) -> None:
        """An empty body without bodySHA256 is signed over the URL alone, as in twilio."""
        WebhookVerifier(TOKEN).verify(URI, "", sign(URI, {}))
        WebhookVerifier(TOKEN).verify(URI, b"", sign(URI, {}))
        url = URI + "&bodySHA256=" + hashlib.sha256(b"").hexdigest()
        WebhookVerifier(TOKEN).verify(url, b"", sign(url, {}))

    def test_non_utf8_body_refused(self) -> None:
        """A bytes body that is not UTF-8 is refused even when its hash matches."""
        body = b'{"a": "\xff"}'
        url = URI + "&bodySHA256=" + hashlib.sha256(body).hexdigest()
        with pytest.raises(InvalidSignature, match="malformed"):
            WebhookVerifier(TOKEN).verify(url, body, sign(url, {}))

    def test_body_signature_needs_the_url(self) -> None:
        """The JSON signature covers the URL: another path is refused."""
        with pytest.raises(InvalidSignature):
            WebhookVerifier(TOKEN).verify(
                URI_WITH_BODY.replace("myapp", "other"), BODY, BODY_SIGNATURE
            )


class TestTampering:
    """A signature replayed on a changed request is refused."""

    @pytest.mark.parametrize(
        "change",
        [
            {"Digits": "1235"},
            {"Extra": "1"},
            {"Digits": ["1234", "1234"]},
            {"To": "+18005551213"},
        ],
    )
    def test_changed_params_refused(self, change: dict[str, Any]) -> None:
        """Changing, adding or repeating a field breaks the signature."""
        with pytest.raises(InvalidSignature):
            WebhookVerifier(TOKEN).verify(URI, {**PARAMS, **change}, EXPECTED)

    def test_removed_param_refused(self) -> None:
        """Dropping a field breaks the signature."""
        params = dict(PARAMS)
        del params["Digits"]
        with pytest.raises(InvalidSignature):
            WebhookVerifier(TOKEN).verify(URI, params, EXPECTED)

    def test_changed_query_refused(self) -> None:
        """Changing the query string (e.g. the record id) breaks the signature."""
        with pytest.raises(InvalidSignature):
            WebhookVerifier(TOKEN).verify(URI.replace("foo=1", "foo=2"), PARAMS, EXPECTED)

    def test_signature_with_blanks_refused(self) -> None:
        """The signature is compared exactly: surrounding blanks are not stripped."""
        with pytest.raises(InvalidSignature):
            WebhookVerifier(TOKEN).verify(URI, PARAMS, f" {EXPECTED}")


_ANYTHING = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.binary(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3)
        | st.dictionaries(st.text(max_size=5) | st.integers(), inner, max_size=3)
    ),
    max_leaves=6,
)


class TestMalformedInputs:
    """Whatever the input, only MissingSignature or InvalidSignature comes out."""

    @pytest.mark.parametrize("signature", [None, "", b""])
    def test_missing_signature(self, verifier: WebhookVerifier, signature: Any) -> None:
        """No signature, or an empty one, raises MissingSignature."""
        with pytest.raises(MissingSignature):
            verifier.verify(URI, PARAMS, signature)

    @pytest.mark.parametrize(
        ("url", "params", "signature", "settings_header"),
        [
            (URI, PARAMS, "é" * 28, None),
            (URI, PARAMS, "\ud800" * 28, None),
            (URI, PARAMS, b"RSOYDt4T1cUTdK1PDd93/VVr8B8=", None),
            (URI, PARAMS, 123, None),
            (URI, PARAMS, "not base64 !!", None),
            (URI.encode(), PARAMS, EXPECTED, None),
            (None, PARAMS, EXPECTED, None),
            ("http://[::1/cb", PARAMS, EXPECTED, None),
            ("https://h:65536/cb", PARAMS, EXPECTED, None),
            ("https://h:-1/cb", PARAMS, EXPECTED, None),
            ("https://h:١٢/cb", PARAMS, EXPECTED, None),
            ("https://\ud800/cb", PARAMS, EXPECTED, None),
            ("https://h℀.com/cb", PARAMS, EXPECTED, None),
            (URI, None, EXPECTED, None),
            (URI, 42, EXPECTED, None),
            (URI, ["To", "x"], EXPECTED, None),
            (URI, {"To": 1}, EXPECTED, None),
            (URI, {"To": None}, EXPECTED, None),
            (URI, {1: "x"}, EXPECTED, None),
            (URI, {1: "x", "a": "y"}, EXPECTED, None),
            (URI, {"To": ["a", 1]}, EXPECTED, None),
            (URI, {"To": [b"a"]}, EXPECTED, None),
            (URI, {"To": b"a"}, EXPECTED, None),
            (URI, {"To": "\udcff"}, EXPECTED, None),
            (URI, "\udcff", EXPECTED, None),
            (URI_WITH_BODY, "\udcff", EXPECTED, None),
            (URI_WITH_BODY, b"\xff\xfe", EXPECTED, None),
            (URI + "&bodySHA256=\ud800", "{}", EXPECTED, None),
            (URI + "&bodySHA256=é", "{}", EXPECTED, None),
            (URI, PARAMS, EXPECTED, 5),
            (URI, PARAMS, EXPECTED, b"key=a"),
            (URI, PARAMS, EXPECTED, "garbage"),
            (URI, PARAMS, EXPECTED, "key=\ud800,algorithm=\ud800"),
        ],
    )
    def test_malformed_refused(
        self, verifier: WebhookVerifier, url: Any, params: Any, signature: Any, settings_header: Any
    ) -> None:
        """Each malformed input raises InvalidSignature (and is_valid says False)."""
        with pytest.raises(InvalidSignature):
            verifier.verify(url, params, signature, signature_settings=settings_header)
        assert (
            verifier.is_valid(url, params, signature, signature_settings=settings_header) is False
        )

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        url=_ANYTHING | st.text(max_size=40),
        params=_ANYTHING,
        signature=_ANYTHING,
        settings_header=st.none() | st.text(max_size=30) | _ANYTHING,
    )
    def test_fuzz_only_our_errors(
        self, url: Any, params: Any, signature: Any, settings_header: Any
    ) -> None:
        """Random values of any type in every argument give only our two errors."""
        verifier = WebhookVerifier(TOKEN, shared_keys={SHARED_ID: SHARED_SECRET})
        try:
            verifier.verify(url, params, signature, signature_settings=settings_header)
        except (MissingSignature, InvalidSignature):
            verified = False
        else:
            verified = True
        assert (
            verifier.is_valid(url, params, signature, signature_settings=settings_header)
            is verified
        )


class TestIsValid:
    """is_valid mirrors verify."""

    def test_true_when_verified(self, verifier: WebhookVerifier) -> None:
        """A verifying request gives True."""
        assert verifier.is_valid(URI, PARAMS, EXPECTED) is True
        assert verifier.is_valid(URI_WITH_BODY, BODY, BODY_SIGNATURE) is True

    def test_false_for_missing_and_invalid(self, verifier: WebhookVerifier) -> None:
        """A missing or a wrong signature gives False rather than raising."""
        assert verifier.is_valid(URI, PARAMS, None) is False
        assert verifier.is_valid(URI, PARAMS, "") is False
        assert verifier.is_valid(URI, PARAMS, DUPLICATE_EXPECTED) is False

    def test_errors_are_one_family(self) -> None:
        """Both errors are WebhookVerificationErrors, so a host can catch them at once."""
        assert issubclass(MissingSignature, WebhookVerificationError)
        assert issubclass(InvalidSignature, WebhookVerificationError)


# --- the official library as an oracle -------------------------------------------------

_SCHEMES = st.sampled_from(["https", "http", "HTTPS", "Http", "ftp"])
_HOSTS = st.sampled_from(
    ["api.servio.ai", "localhost", "127.0.0.1", "[::1]", "user:pw@h.example", "x.y"]
)
_PORTS = st.none() | st.sampled_from([0, 80, 443, 8080, 1]) | st.integers(1, 65535)
_SEGMENT = st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="?#/"), max_size=8
)
_QUERY = st.none() | st.text(
    st.characters(blacklist_categories=("Cs",), blacklist_characters="#"), max_size=20
)


@st.composite
def _urls(draw: st.DrawFn) -> str:
    port = draw(_PORTS)
    url = f"{draw(_SCHEMES)}://{draw(_HOSTS)}"
    if port is not None:
        url += f":{port}"
    url += "/" + "/".join(draw(st.lists(_SEGMENT, max_size=3)))
    query = draw(_QUERY)
    if query is not None:
        url += "?" + query
    if draw(st.booleans()):
        url += "#" + draw(_SEGMENT)
    return url


_TEXT = st.text(max_size=12)
_PARAMS = st.dictionaries(
    _TEXT, _TEXT | st.lists(_TEXT, min_size=1, max_size=3, unique=True), max_size=6
)


def _twilio_params(params: dict[str, Any]) -> Any:
    """The same params in a form RequestValidator reads (it needs getlist for lists)."""
    if any(isinstance(v, list) for v in params.values()):
        return MultiDict(
            [(k, x) for k, v in params.items() for x in (v if isinstance(v, list) else [v])]
        )
    return params


def _candidates(url: str) -> list[str]:
    """The URLs a signature may have been made over: as given, normalized, port variants."""
    found = [url]
    try:
        parsed = urlparse(url)
        found += [parsed.geturl(), add_port(parsed), remove_port(parsed)]
    except ValueError:
        pass
    return found


def _oracle(
    tokens: list[str], url: str, params: Any, signature: str, algorithm: str | None = None
) -> bool:
    """twilio's verdict: any token validates; an exception inside twilio means 'not valid'."""
    verdicts = []
    for token in tokens:
        try:
            verdicts.append(RequestValidator(token).validate(url, params, signature, algorithm))
        except (TypeError, ValueError):
            verdicts.append(False)
    return any(verdicts)


_TOKENS = st.sampled_from([TOKEN, SECONDARY, "wrong-token", "ç-unicode-token"])


class TestOracle:
    """Same verdicts as twilio's RequestValidator.validate on generated requests."""

    @settings(max_examples=1000, deadline=None)
    @given(url=_urls(), params=_PARAMS, data=st.data(), token=_TOKENS)
    def test_form_requests(
        self, url: str, params: dict[str, Any], data: st.DataObject, token: str
    ) -> None:
        """Form callbacks signed over any URL form, with any token: verdicts agree."""
        signed_url = data.draw(st.sampled_from(_candidates(url)))
        signature = sign(signed_url, _twilio_params(params), token)
        if data.draw(st.booleans()):
            signature = data.draw(st.sampled_from([signature[:-1], signature + "=", EXPECTED, ""]))
        verifier = WebhookVerifier(TOKEN, secondary_auth_token=SECONDARY)
        expected = _oracle([TOKEN, SECONDARY], url, _twilio_params(params), signature)
        event(f"twilio says {expected}")
        assert verifier.is_valid(url, params, signature) is expected
        if signature:
            assert WebhookVerifier(TOKEN).is_valid(url, params, signature) is _oracle(
                [TOKEN], url, _twilio_params(params), signature
            )

    @settings(max_examples=300, deadline=None)
    @given(url=_urls(), params=_PARAMS, data=st.data())
    def test_tampered_params(self, url: str, params: dict[str, Any], data: st.DataObject) -> None:
        """A signature for some params, checked against changed params: verdicts agree."""
        signature = sign(data.draw(st.sampled_from(_candidates(url))), _twilio_params(params))
        changed = dict(params)
        key = data.draw(st.sampled_from(sorted(params)) if params else _TEXT)
        how = data.draw(st.sampled_from(["set", "drop", "extra"]))
        if how == "drop" and key in changed:
            del changed[key]
        elif how == "extra" and isinstance(changed.get(key), list):
            changed[key] = [*changed[key], data.draw(_TEXT.filter(lambda v: v not in changed[key]))]
        else:
            changed[key] = data.draw(_TEXT.filter(lambda v: v != params.get(key)))
        expected = _oracle([TOKEN], url, _twilio_params(changed), signature)
        event(f"twilio says {expected}")
        assert WebhookVerifier(TOKEN).is_valid(url, changed, signature) is expected

    @settings(max_examples=300, deadline=None)
    @given(url=_urls(), body=st.text(max_size=40), data=st.data())
    def test_json_requests(self, url: str, body: str, data: st.DataObject) -> None:
        """JSON bodies with a right or wrong bodySHA256, or an empty body: verdicts agree."""
        hashed = data.draw(st.sampled_from([body, body + " ", ""]))
        base, sep, fragment = url.partition("#")
        joiner = "&" if "?" in base else "?"
        signed = (
            f"{base}{joiner}bodySHA256={hashlib.sha256(hashed.encode()).hexdigest()}{sep}{fragment}"
        )
        if data.draw(st.booleans()):
            signed, body = url, ""
        signature = sign(data.draw(st.sampled_from(_candidates(signed))), {})
        expected = _oracle([TOKEN], signed, body, signature)
        event(f"twilio says {expected}")
        assert WebhookVerifier(TOKEN).is_valid(signed, body, signature) is expected
        assert WebhookVerifier(TOKEN).is_valid(signed, body.encode(), signature) is expected

    @settings(max_examples=300, deadline=None)
    @given(url=_urls(), params=_PARAMS, data=st.data())
    def test_shared_keys(self, url: str, params: dict[str, Any], data: st.DataObject) -> None:
        """SharedKey signatures (SHA-1 or SHA-256, right or wrong secret): verdicts agree."""
        algorithm = data.draw(st.sampled_from(["HMAC_SHA1", "HMAC_SHA256"]))
        secret = data.draw(st.sampled_from([SHARED_SECRET, TOKEN]))
        signed_with = data.draw(st.sampled_from(["HMAC_SHA1", "HMAC_SHA256"]))
        signature = sign(
            data.draw(st.sampled_from(_candidates(url))),
            _twilio_params(params),
            secret,
            signed_with,
        )
        verifier = WebhookVerifier(TOKEN, shared_keys={SHARED_ID: SHARED_SECRET})
        header = f"key={SHARED_ID},algorithm={algorithm}"
        expected = _oracle([SHARED_SECRET], url, _twilio_params(params), signature, algorithm)
        event(f"twilio says {expected}")
        assert verifier.is_valid(url, params, signature, signature_settings=header) is expected

    @settings(max_examples=300, deadline=None)
    @given(
        url=st.text(max_size=30) | st.builds("{}://{}".format, _SCHEMES, st.text(max_size=30)),
        data=st.data(),
    )
    def test_arbitrary_url_text(self, url: str, data: st.DataObject) -> None:
        """Any text as the URL (odd schemes, blanks, controls, ';', brackets): verdicts agree."""
        signature = sign(data.draw(st.sampled_from(_candidates(url))), PARAMS)
        expected = _oracle([TOKEN], url, PARAMS, signature)
        event(f"twilio says {expected}")
        assert WebhookVerifier(TOKEN).is_valid(url, PARAMS, signature) is expected


class TestUrlAndQuery:
    """The URL is parsed without its query when that changes nothing."""

    @settings(max_examples=1000, deadline=None)
    @given(
        url=_urls()
        | st.text(alphabet="hts:/?#&=\t\n\r ;@[]:1ab%", max_size=30)
        | st.builds(lambda u, q: u + "?" + q, _urls(), st.text(max_size=10))
    )
    def test_same_as_parsing_the_whole_url(self, url: str) -> None:
        """The normalized URL and query equal urlparse's and urlsplit's, errors included."""
        try:
            expected: Any = (urlparse(url).geturl(), urlsplit(url).query)
            if ":" in urlsplit(url).netloc:
                urlsplit(url).port  # noqa: B018 - the port check the verifier makes
        except ValueError as exc:
            expected = type(exc)
        try:
            got: Any = verifier_module._url_and_query(url)
        except ValueError as exc:
            got = type(exc)
        assert got == expected
