"""The error tree: relations, attributes, messages and pickling."""

from __future__ import annotations

import pickle
from typing import Any

import pytest

import servio_twilio
from servio_twilio.domain import errors
from servio_twilio.domain.errors import (
    BatchTooLarge,
    ConfigurationError,
    DuplicateRecord,
    InvalidPhoneNumber,
    InvalidSignature,
    MissingSignature,
    RateLimited,
    RecordNotFound,
    RepositoryError,
    SendLimitExceeded,
    SendOutcomeUnknown,
    ServioTwilioError,
    TwilioAPIError,
    WebhookVerificationError,
)

# DESIGN.md's diagram: each class and its direct bases, in order.
DESIGN_TREE: dict[type[BaseException], tuple[type[BaseException], ...]] = {
    ServioTwilioError: (Exception,),
    ConfigurationError: (ServioTwilioError, ValueError),
    InvalidPhoneNumber: (ServioTwilioError, ValueError),
    BatchTooLarge: (ServioTwilioError, ValueError),
    SendLimitExceeded: (ServioTwilioError,),
    TwilioAPIError: (ServioTwilioError,),
    RateLimited: (TwilioAPIError,),
    SendOutcomeUnknown: (ServioTwilioError,),
    RepositoryError: (ServioTwilioError,),
    DuplicateRecord: (RepositoryError,),
    RecordNotFound: (RepositoryError, KeyError),
    WebhookVerificationError: (ServioTwilioError,),
    MissingSignature: (WebhookVerificationError,),
    InvalidSignature: (WebhookVerificationError,),
}

BIG = "x" * 1_000_000


def _examples() -> list[ServioTwilioError]:
    return [
        ServioTwilioError("base"),
        ConfigurationError("TWILIO_ACCOUNT_SID is required"),
        InvalidPhoneNumber("+55abc", "only digits"),
        BatchTooLarge(101, 100),
        SendLimitExceeded("prospect_1", 12.5),
        TwilioAPIError(
            "The 'To' number is not valid",
            status=400,
            code=21211,
            more_info="https://www.twilio.com/docs/errors/21211",
            retryable=False,
            communication_id="c1",
        ),
        RateLimited("Too many requests", retry_after=2.0, communication_id="c2"),
        SendOutcomeUnknown("read timed out", communication_id="c3"),
        RepositoryError("firestore unavailable"),
        DuplicateRecord("record 'sid-SM1' exists"),
        RecordNotFound("no record 'c9'"),
        WebhookVerificationError("bad"),
        MissingSignature("no X-Twilio-Signature"),
        InvalidSignature("signature does not match"),
    ]


class TestTree:
    def test_direct_bases_match_design(self) -> None:
        """Every class has exactly DESIGN's bases, in DESIGN's order."""
        for cls, bases in DESIGN_TREE.items():
            assert cls.__bases__ == bases, cls.__name__

    def test_the_module_exports_every_design_class(self) -> None:
        """errors.__all__ lists every class of the diagram; any addition is still ours."""
        assert {cls.__name__ for cls in DESIGN_TREE} <= set(errors.__all__)
        for name in errors.__all__:
            assert issubclass(getattr(errors, name), ServioTwilioError)

    def test_every_error_is_a_servio_twilio_error(self) -> None:
        """One ``except ServioTwilioError`` catches anything the library raises."""
        for cls in DESIGN_TREE:
            assert issubclass(cls, ServioTwilioError)

    @pytest.mark.parametrize(
        ("cls", "builtin"),
        [
            (ConfigurationError, ValueError),
            (InvalidPhoneNumber, ValueError),
            (BatchTooLarge, ValueError),
            (RecordNotFound, KeyError),
            (RecordNotFound, LookupError),
        ],
    )
    def test_builtin_mixins(self, cls: type[Exception], builtin: type[Exception]) -> None:
        """Callers may catch the matching builtin instead."""
        assert issubclass(cls, builtin)

    @pytest.mark.parametrize(
        "cls", [SendLimitExceeded, TwilioAPIError, SendOutcomeUnknown, DuplicateRecord]
    )
    def test_no_accidental_value_error(self, cls: type[Exception]) -> None:
        """Runtime failures are not ValueErrors (a retry loop must not mistake them for input)."""
        assert not issubclass(cls, ValueError)
        assert not issubclass(cls, KeyError)

    def test_exported_from_the_package(self) -> None:
        """Every error is importable from ``servio_twilio``, as the same class."""
        for cls in DESIGN_TREE:
            assert getattr(servio_twilio, cls.__name__) is cls


class TestAttributes:
    def test_invalid_phone_number(self) -> None:
        """``.raw`` is the input as given, ``.reason`` why it was refused."""
        error = InvalidPhoneNumber(12, "expected a string")
        assert (error.raw, error.reason) == (12, "expected a string")
        assert str(error) == "invalid phone number <int>: expected a string"

    def test_invalid_phone_number_message_masks_the_number(self) -> None:
        """The message (which ends up in logs) masks the number; ``.raw`` keeps it whole."""
        error = InvalidPhoneNumber("whatsapp:+5511999999999", "no whatsapp: prefix for SMS")
        assert "+5511999999999" not in str(error)
        assert "+55119*****999" in str(error)
        assert error.raw == "whatsapp:+5511999999999"

    def test_batch_too_large(self) -> None:
        """``.size`` and ``.limit`` are kept and said."""
        error = BatchTooLarge(101, 100)
        assert (error.size, error.limit) == (101, 100)
        assert "101" in str(error)
        assert "100" in str(error)

    def test_send_limit_exceeded(self) -> None:
        """``.prospect_id`` and ``.retry_after`` are kept and said."""
        error = SendLimitExceeded("p1", 12.25)
        assert (error.prospect_id, error.retry_after) == ("p1", 12.25)
        assert str(error) == "send limit reached for prospect 'p1'; retry in 12.2s"

    def test_twilio_api_error(self) -> None:
        """Every attribute is kept; str says the message, HTTP status and Twilio code."""
        error = TwilioAPIError(
            "Invalid 'To'",
            status=400,
            code=21211,
            more_info="https://www.twilio.com/docs/errors/21211",
            communication_id="c1",
        )
        assert error.message == "Invalid 'To'"
        assert (error.status, error.code, error.retryable) == (400, 21211, False)
        assert error.more_info == "https://www.twilio.com/docs/errors/21211"
        assert error.communication_id == "c1"
        assert str(error) == "Invalid 'To' (HTTP 400, Twilio error 21211)"

    def test_twilio_api_error_defaults(self) -> None:
        """Without a response: status 0, no code, not retryable, said as 'no response'."""
        error = TwilioAPIError("connection refused")
        assert (error.status, error.code, error.more_info) == (0, None, None)
        assert (error.retryable, error.communication_id) == (False, None)
        assert str(error) == "connection refused (no response)"

    def test_rate_limited_defaults(self) -> None:
        """RateLimited is a retryable 429 / 20429, with ``.retry_after``."""
        error = RateLimited("slow down", retry_after=3.5)
        assert (error.status, error.code, error.retryable, error.retry_after) == (
            429,
            20429,
            True,
            3.5,
        )
        assert str(error) == "slow down (HTTP 429, Twilio error 20429)"
        assert RateLimited("x").retry_after is None

    def test_send_outcome_unknown(self) -> None:
        """``.communication_id`` is the record stored ``unknown``."""
        error = SendOutcomeUnknown("read timed out", communication_id="c3")
        assert error.communication_id == "c3"
        assert str(error) == "read timed out"

    def test_record_not_found_str_is_not_quoted(self) -> None:
        """Unlike KeyError, str() is the sentence itself, not its repr."""
        assert str(RecordNotFound("no record 'c9'")) == "no record 'c9'"
        assert str(RecordNotFound()) == ""

    def test_record_not_found_caught_as_key_error(self) -> None:
        """``except KeyError`` catches it, like a dict lookup."""
        with pytest.raises(KeyError):
            raise RecordNotFound("no record 'c9'")


class TestPickling:
    @pytest.mark.parametrize("error", _examples(), ids=lambda e: type(e).__name__)
    def test_round_trip(self, error: ServioTwilioError) -> None:
        """Errors survive pickling (process pools, task queues) with type, attributes and str."""
        copy = pickle.loads(pickle.dumps(error))
        assert type(copy) is type(error)
        assert copy.__dict__ == error.__dict__
        assert copy.args == error.args
        assert str(copy) == str(error)

    def test_round_trip_with_every_protocol(self) -> None:
        """The oldest and newest pickle protocols both work."""
        error = RateLimited("slow", retry_after=1.0, communication_id="c")
        for protocol in (0, pickle.HIGHEST_PROTOCOL):
            copy: Any = pickle.loads(pickle.dumps(error, protocol=protocol))
            assert (copy.retry_after, copy.communication_id, copy.retryable) == (1.0, "c", True)


class TestBoundedMessages:
    def test_invalid_phone_number(self) -> None:
        """A 1 MB raw value is kept whole in ``.raw`` but shortened in the message."""
        error = InvalidPhoneNumber(BIG, "too long")
        assert error.raw is BIG
        assert len(str(error)) < 120
        assert f"<{len(BIG)} chars>" in str(error)

    def test_send_limit_exceeded(self) -> None:
        """A 1 MB prospect id does not make a 1 MB message."""
        error = SendLimitExceeded(BIG, 1.0)
        assert error.prospect_id is BIG
        assert len(str(error)) < 200

    def test_twilio_api_error(self) -> None:
        """A 1 MB message from Twilio is clipped in str(), kept whole in ``.message``."""
        error = TwilioAPIError(BIG, status=500)
        assert error.message is BIG
        assert len(str(error)) < 600
        assert str(error).endswith("(HTTP 500)")

    def test_hostile_repr(self) -> None:
        """A raw value whose repr raises still gives an InvalidPhoneNumber."""

        class Hostile:
            def __repr__(self) -> str:
                raise RuntimeError("no")

        error = InvalidPhoneNumber(Hostile(), "expected a string")
        assert "<Hostile>" in str(error)
