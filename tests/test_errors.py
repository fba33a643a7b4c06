"""The error tree: relations, attributes, messages and pickling."""

from __future__ import annotations

import pickle
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

import servio_twilio
from servio_twilio import (
    Communication,
    CommunicationsClient,
    InMemoryRepository,
    InMemorySendLimiter,
    OutboundMessage,
    SendResult,
    TokenBucket,
    check_history_args,
    replace,
)
from servio_twilio.domain import errors
from servio_twilio.domain.errors import (
    BatchTooLarge,
    ConfigurationError,
    DuplicateRecord,
    InvalidArgument,
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
from servio_twilio.firestore import FirestoreRepository
from servio_twilio.testing import FakeTwilio, Fault
from support.sending import TEMPLATE, TO, make_settings

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
        InvalidArgument("body must not be empty"),
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
            (InvalidArgument, ValueError),
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


def _client(**kwargs: Any) -> CommunicationsClient:
    return CommunicationsClient(make_settings(), http_client=FakeTwilio(), **kwargs)


def _record(**kwargs: Any) -> Communication:
    return Communication(channel="sms", to=TO, from_="+15005550006", **kwargs)


NAIVE = datetime(2025, 1, 1, 12, 0)  # naive on purpose

# Each bad value, through the public API: (what it shows, how it is raised).
BAD_VALUES: list[tuple[str, Callable[[], object]]] = [
    ("empty SMS body", lambda: _client().send_sms(TO, "")),
    ("blank SMS body", lambda: _client().send_sms(TO, "   ")),
    ("no SMS body", lambda: _client().send_sms(TO, None)),  # type: ignore[arg-type]
    ("too long SMS body", lambda: _client().send_sms(TO, "x" * 1601)),
    ("empty prospect_id", lambda: _client().send_sms(TO, "hi", prospect_id="")),
    ("relative status_callback", lambda: _client().send_sms(TO, "hi", status_callback="/cb")),
    (
        "ftp status_callback",
        lambda: _client().send_sms(TO, "hi", status_callback="ftp://a.test/cb"),
    ),
    ("bad media URL", lambda: _client().send_whatsapp(TO, media_url="not a url")),
    ("empty media list", lambda: _client().send_whatsapp(TO, media_url=[])),
    (
        "too many media",
        lambda: _client().send_whatsapp(TO, media_url=["https://a.test/x.png"] * 11),
    ),
    ("empty WhatsApp message", lambda: _client().send_whatsapp(TO)),
    ("malformed content_sid", lambda: _client().send_whatsapp(TO, content_sid="HX123")),
    ("template with a body", lambda: _client().send_whatsapp(TO, "hi", content_sid=TEMPLATE)),
    (
        "variables without a template",
        lambda: _client().send_whatsapp(TO, "hi", content_variables={"1": "a"}),
    ),
    (
        "variables not JSON",
        lambda: _client().send_whatsapp(
            TO, content_sid=TEMPLATE, content_variables={"1": float("nan")}
        ),
    ),
    ("call without TwiML", lambda: _client().make_call(TO)),
    (
        "call with both TwiML kinds",
        lambda: _client().make_call(TO, twiml_url="https://a.test/t.xml", twiml="<Response/>"),
    ),
    ("empty TwiML", lambda: _client().make_call(TO, twiml="")),
    ("too long TwiML", lambda: _client().make_call(TO, twiml="x" * 4001)),
    (
        "recording callback without record",
        lambda: _client().make_call(
            TO, twiml="<Response/>", recording_status_callback="https://a.test/r"
        ),
    ),
    ("history limit 0", lambda: _client().history("p1", limit=0)),
    ("history limit 1001", lambda: _client().history("p1", limit=1001)),
    ("naive history before", lambda: _client().history("p1", before=NAIVE)),
    ("unknown history channel", lambda: _client().history("p1", channel="fax")),  # type: ignore[arg-type]
    ("empty history prospect_id", lambda: _client().history("")),
    ("empty communication_id", lambda: _client().events("")),
    ("max_concurrency 0", lambda: _client().send_batch([], max_concurrency=0)),
    ("max_batch_size 0", lambda: _client().send_batch([], max_batch_size=0)),
    ("rate_per_second -1", lambda: _client().send_batch([], rate_per_second=-1)),
    ("rate_per_second NaN", lambda: _client().send_batch([], rate_per_second=float("nan"))),
    ("timeout 0", lambda: _client(timeout=0)),
    ("negative max_retries", lambda: _client(max_retries=-1)),
    ("TokenBucket rate 0", lambda: TokenBucket(0)),
    ("TokenBucket rate inf", lambda: TokenBucket(float("inf"))),
    ("TokenBucket burst too big", lambda: TokenBucket(2, burst=5)),
    ("InMemorySendLimiter max_sends 0", lambda: InMemorySendLimiter(max_sends=0)),
    ("InMemorySendLimiter per_seconds 0", lambda: InMemorySendLimiter(per_seconds=0)),
    ("OutboundMessage channel", lambda: OutboundMessage(to=TO, body="x", channel="fax")),  # type: ignore[arg-type]
    ("OutboundMessage.from_dict without to", lambda: OutboundMessage.from_dict({"body": "x"})),
    (
        "OutboundMessage.from_dict unknown key",
        lambda: OutboundMessage.from_dict({"to": TO, "x": 1}),
    ),
    (
        "OutboundMessage.from_dict channel",
        lambda: OutboundMessage.from_dict({"to": TO, "channel": "call"}),
    ),
    (
        "SendResult channel",
        lambda: SendResult(
            communication_id="c", sid="SM1", status="queued", to=TO, from_=TO, channel="fax"
        ),
    ),  # type: ignore[arg-type]
    ("Communication channel", lambda: Communication(channel="fax", to=TO, from_=TO)),  # type: ignore[arg-type]
    ("Communication direction", lambda: _record(direction="sideways")),
    ("naive Communication timestamp", lambda: _record(timestamp=NAIVE)),
    ("naive time in replace", lambda: replace(_record(), updated_at=NAIVE)),
    ("check_history_args limit", lambda: check_history_args(0, None)),
    ("InMemoryRepository history limit", lambda: InMemoryRepository().history("p1", limit=0)),
    (
        "InMemoryRepository history channel",
        lambda: InMemoryRepository().history("p1", channel="fax"),
    ),  # type: ignore[arg-type]
    ("FirestoreRepository collection", lambda: FirestoreRepository(object(), collection="a/b")),  # type: ignore[arg-type]
    ("FirestoreRepository timeout", lambda: FirestoreRepository(object(), timeout=0)),  # type: ignore[arg-type]
    ("FakeTwilio latency", lambda: FakeTwilio(latency=-1)),
    ("FakeTwilio fail_next 0", lambda: FakeTwilio().fail_next(0, Fault.server_error())),
    (
        "FakeTwilio fail_number times 0",
        lambda: FakeTwilio().fail_number(TO, Fault.server_error(), times=0),
    ),
]


class TestInvalidArgument:
    @pytest.mark.parametrize(("what", "call"), BAD_VALUES, ids=[what for what, _ in BAD_VALUES])
    def test_bad_values_are_servio_twilio_errors_and_value_errors(
        self, what: str, call: Callable[[], object]
    ) -> None:
        """A bad argument value anywhere in the public API raises InvalidArgument: one
        ``except ServioTwilioError`` catches it, and ``except ValueError`` still does."""
        with pytest.raises(ServioTwilioError) as caught:
            call()
        assert isinstance(caught.value, ValueError), what
        assert isinstance(caught.value, InvalidArgument), what

    def test_bases(self) -> None:
        """InvalidArgument is a ServioTwilioError first, then a ValueError; exported as is."""
        assert InvalidArgument.__bases__ == (ServioTwilioError, ValueError)
        assert servio_twilio.InvalidArgument is InvalidArgument
        assert "InvalidArgument" in errors.__all__

    def test_message_is_kept(self) -> None:
        """The message is the one the builtin ValueError had, naming the argument."""
        with pytest.raises(InvalidArgument) as caught:
            InMemorySendLimiter(max_sends=0)
        assert str(caught.value) == "max_sends must be an int >= 1, got 0"

    def test_bad_channel_names_the_channels_not_the_enum(self) -> None:
        """An unknown channel says which values are accepted, with no chained enum error."""
        with pytest.raises(InvalidArgument) as caught:
            OutboundMessage(to=TO, channel="fax")  # type: ignore[arg-type]
        assert str(caught.value) == "channel must be one of sms, whatsapp, call, not 'fax'"
        assert caught.value.__cause__ is None
        assert caught.value.__suppress_context__

    @pytest.mark.parametrize(
        "call",
        [
            lambda: _client().send_sms(TO, 42),  # type: ignore[arg-type]
            lambda: _client().send_sms(TO, "hi", prospect_id=7),  # type: ignore[arg-type]
            lambda: _client().history("p1", limit="10"),  # type: ignore[arg-type]
            lambda: _client().send_batch("not a list"),  # type: ignore[arg-type]
            lambda: _client(clock=5),  # type: ignore[arg-type]
        ],
        ids=["body int", "prospect_id int", "limit str", "messages str", "clock int"],
    )
    def test_wrong_types_stay_type_errors(self, call: Callable[[], object]) -> None:
        """An argument of the wrong type is still a plain TypeError, not InvalidArgument."""
        with pytest.raises(TypeError) as caught:
            call()
        assert not isinstance(caught.value, ServioTwilioError)

    def test_nothing_is_written_or_sent(self) -> None:
        """A refused send leaves no record and sends no request."""
        fake = FakeTwilio()
        repo = InMemoryRepository()
        client = CommunicationsClient(make_settings(), repository=repo, http_client=fake)
        with pytest.raises(InvalidArgument):
            client.send_sms(TO, "")
        assert len(repo) == 0
        assert fake.requests == []


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
