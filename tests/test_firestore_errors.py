"""Unit tests for storage.firestore.errors: Firestore's errors translated at our boundary."""

from __future__ import annotations

import logging
import types

import grpc
import pytest
from google.api_core import exceptions as api_exceptions, retry as api_retry
from google.auth import exceptions as auth_exceptions

from servio_twilio.domain.errors import DuplicateRecord, RecordNotFound, RepositoryError
from servio_twilio.storage.firestore import errors as firestore_errors
from servio_twilio.storage.firestore.errors import (
    detail,
    read_options,
    storage_cause,
    translated,
    write_options,
)
from support.grpc_fakes import RpcCall as _RpcCall

SECRET = "ya29.secret-access-token"


def _subclasses(module: types.ModuleType, base: type[Exception]) -> list[type[Exception]]:
    return sorted(
        (
            value
            for value in vars(module).values()
            if isinstance(value, type) and issubclass(value, base)
        ),
        key=lambda cls: cls.__name__,
    )


def _api_error(cls: type[Exception], message: str) -> Exception:
    if cls is api_exceptions.RetryError:
        return cls(message, ValueError(SECRET))
    return cls(message)


API_ERRORS = _subclasses(api_exceptions, api_exceptions.GoogleAPIError)
AUTH_ERRORS = _subclasses(auth_exceptions, auth_exceptions.GoogleAuthError)


class TestTranslated:
    def test_nothing_raised(self) -> None:
        """A block that raises nothing runs through untouched."""
        ran = []
        with translated("get"):
            ran.append(True)
        assert ran == [True]

    def test_the_tables_are_complete(self) -> None:
        """The modules still export the classes these tests enumerate (the lists are real)."""
        names = {cls.__name__ for cls in API_ERRORS}
        assert {"AlreadyExists", "ServiceUnavailable", "PermissionDenied", "RetryError"} <= names
        assert {"RefreshError", "DefaultCredentialsError", "TransportError"} <= {
            cls.__name__ for cls in AUTH_ERRORS
        }

    def test_already_exists_is_duplicate_record(self) -> None:
        """AlreadyExists becomes DuplicateRecord naming the operation, from the original."""
        original = api_exceptions.AlreadyExists("Document already exists: projects/p/x")
        with pytest.raises(DuplicateRecord) as caught, translated("add"):
            raise original
        assert str(caught.value) == "Firestore add: the record already exists"
        assert caught.value.__cause__ is original

    @pytest.mark.parametrize(
        "cls",
        [c for c in API_ERRORS if not issubclass(c, api_exceptions.AlreadyExists)],
        ids=lambda c: c.__name__,
    )
    def test_every_api_error_is_repository_error(self, cls: type[Exception]) -> None:
        """Every other google.api_core error class becomes a plain RepositoryError from it."""
        original = _api_error(cls, "backend said no")
        with pytest.raises(RepositoryError) as caught, translated("history"):
            raise original
        assert type(caught.value) is RepositoryError
        assert str(caught.value).startswith(f"Firestore history failed: {cls.__name__}: ")
        assert caught.value.__cause__ is original

    @pytest.mark.parametrize("cls", AUTH_ERRORS, ids=lambda c: c.__name__)
    def test_every_auth_error_names_only_its_type(self, cls: type[Exception]) -> None:
        """Every google.auth error becomes RepositoryError naming its type, never its message."""
        original = cls(f"refresh failed for token {SECRET}")
        with pytest.raises(RepositoryError) as caught, translated("ping"):
            raise original
        assert type(caught.value) is RepositoryError
        assert str(caught.value) == f"Firestore ping failed: {cls.__name__}"
        assert caught.value.__cause__ is original

    @pytest.mark.parametrize("code", list(grpc.StatusCode), ids=lambda c: c.name)
    def test_grpc_call_errors_name_only_their_code(self, code: grpc.StatusCode) -> None:
        """A raw gRPC error becomes RepositoryError naming its status code, not its details."""
        original = _RpcCall(code, f"metadata had {SECRET}")
        with pytest.raises(RepositoryError) as caught, translated("update"):
            raise original
        assert str(caught.value) == f"Firestore update failed: gRPC error {code.name}"
        assert SECRET not in str(caught.value)

    def test_bare_rpc_error(self) -> None:
        """A gRPC error that is not a Call is named by its type."""
        with pytest.raises(RepositoryError, match=r"failed: gRPC error RpcError$"), translated("x"):
            raise grpc.RpcError(SECRET)

    def test_retry_error_names_the_storage_error_it_gave_up_on(self) -> None:
        """A RetryError over a storage error is named by that error, then the retry's note."""
        dns = api_exceptions.ServiceUnavailable(
            "DNS resolution failed for nonexistent.invalid:8080: Domain name not found"
        )
        original = api_exceptions.RetryError("Timeout of 5.0s exceeded", dns)
        with pytest.raises(RepositoryError) as caught, translated("update"):
            raise original
        assert str(caught.value) == (
            "Firestore update failed: ServiceUnavailable: DNS resolution failed for "
            "nonexistent.invalid:8080: Domain name not found (Timeout of 5.0s exceeded)"
        )
        assert caught.value.__cause__ is original

    def test_retry_error_over_another_error_names_only_its_type(self) -> None:
        """A RetryError over a non-storage error shows its own message and the type, no text."""
        original = api_exceptions.RetryError("Deadline of 5.0s exceeded", ValueError(SECRET))
        with pytest.raises(RepositoryError) as caught, translated("get"):
            raise original
        assert str(caught.value) == (
            "Firestore get failed: RetryError: Deadline of 5.0s exceeded (last error: ValueError)"
        )

    def test_retry_error_with_nothing_behind_it(self) -> None:
        """A RetryError with no cause is its own message."""
        assert detail(api_exceptions.RetryError("Unknown error", None)) == (
            "RetryError: Unknown error"
        )

    def test_our_errors_pass_unchanged(self) -> None:
        """An error of ours raised inside (even a RepositoryError subclass) is the same object."""
        ours = RecordNotFound("no record with id 'x'")
        with pytest.raises(RecordNotFound) as caught, translated("update"):
            raise ours
        assert caught.value is ours

    def test_other_exceptions_are_not_caught(self) -> None:
        """Errors that are not Firestore's (a bug, a ValueError) propagate as they are."""
        original = ValueError("not a storage error")
        with pytest.raises(ValueError, match="not a storage error") as caught, translated("get"):
            raise original
        assert caught.value is original

    def test_failure_is_logged_without_secrets(self, caplog: pytest.LogCaptureFixture) -> None:
        """Each translated failure logs one warning naming the operation, with no secret."""
        with (
            caplog.at_level(logging.WARNING, logger="servio_twilio.firestore"),
            pytest.raises(RepositoryError),
            translated("add_many"),
        ):
            raise auth_exceptions.RefreshError(SECRET)
        [record] = caplog.records
        assert record.levelno == logging.WARNING
        assert record.getMessage() == "Firestore add_many failed: RefreshError"


class TestDetail:
    def test_api_error_uses_its_message(self) -> None:
        """An API error is its type and message (without the HTTP code str() would add)."""
        assert detail(api_exceptions.NotFound("no database")) == "NotFound: no database"

    def test_long_details_are_cut(self) -> None:
        """A detail longer than 200 characters is cut to 200, ending in '...'."""
        text = detail(api_exceptions.InvalidArgument("x" * 1000))
        assert len(text) == 200
        assert text.endswith("...")
        assert text.startswith("InvalidArgument: xxx")

    def test_a_long_cause_keeps_the_retry_note(self) -> None:
        """The wrapped error's text is cut, not the retry's note: 200 characters in all."""
        cause = api_exceptions.ServiceUnavailable("y" * 1000)
        text = detail(api_exceptions.RetryError("Timeout of 2.0s exceeded", cause))
        assert len(text) == 200
        assert text.startswith("ServiceUnavailable: yyy")
        assert text.endswith("... (Timeout of 2.0s exceeded)")

    def test_other_exceptions_are_their_type(self) -> None:
        """Anything else is only its type name."""
        assert detail(OSError(SECRET)) == "OSError"


class TestStorageCause:
    def test_the_error_itself(self) -> None:
        """A storage error is its own cause."""
        error = api_exceptions.ServiceUnavailable("down")
        assert storage_cause(error) is error

    def test_found_through_cause_and_context(self) -> None:
        """The first storage error down the __cause__ / __context__ chain is found."""
        root = _RpcCall(grpc.StatusCode.UNAVAILABLE, "down")
        middle = ValueError("wrapped")
        middle.__context__ = root
        top = RuntimeError("outer")
        top.__cause__ = middle
        assert storage_cause(top) is root

    def test_looks_through_a_retry_error(self) -> None:
        """Behind a RetryError, the storage error it gave up on is the cause."""
        root = api_exceptions.ServiceUnavailable("Domain name not found")
        retry = api_exceptions.RetryError("Timeout of 2.0s exceeded", root)
        top = ValueError("wrapped")
        top.__context__ = retry
        assert storage_cause(top) is root

    def test_a_retry_error_over_nothing_of_ours_is_the_cause(self) -> None:
        """A RetryError whose last error is not a storage error is the cause itself."""
        retry = api_exceptions.RetryError("Timeout of 2.0s exceeded", ValueError(SECRET))
        assert storage_cause(retry) is retry

    def test_a_last_exc_attribute_is_followed(self) -> None:
        """An error keeping the last error in ``last_exc`` is looked through too."""
        root = _RpcCall(grpc.StatusCode.UNAVAILABLE, "down")
        gave_up = RuntimeError("gave up")
        gave_up.last_exc = root  # type: ignore[attr-defined]
        assert storage_cause(gave_up) is root

    def test_none_without_a_storage_error(self) -> None:
        """A chain with no Firestore, gRPC or auth error gives None."""
        top = ValueError("a")
        top.__cause__ = KeyError("b")
        assert storage_cause(top) is None

    def test_a_cyclic_chain_ends(self) -> None:
        """A chain that loops back on itself is walked once and gives None."""
        a, b = ValueError("a"), ValueError("b")
        a.__context__, b.__context__ = b, a
        assert storage_cause(a) is None


class _FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0

    def monotonic(self) -> float:
        return self.now


class TestCallOptions:
    def test_no_timeout_means_no_options(self) -> None:
        """Without a timeout the client's own defaults are kept: no options at all."""
        assert read_options(None) == {}
        assert write_options(None) == {}

    def test_timeout_and_retry_are_given(self) -> None:
        """With a timeout, both the call timeout and a Retry bounded by it are given."""
        options = read_options(2.5)
        assert set(options) == {"retry", "timeout"}
        assert options["timeout"] == 2.5
        assert isinstance(options["retry"], api_retry.Retry)
        assert options["retry"].timeout == 2.5

    @pytest.mark.parametrize(
        ("error", "on_read", "on_write"),
        [
            (api_exceptions.ServiceUnavailable("x"), True, True),
            (api_exceptions.ResourceExhausted("x"), True, True),
            (api_exceptions.InternalServerError("x"), True, False),
            (api_exceptions.DeadlineExceeded("x"), True, False),
            (api_exceptions.PermissionDenied("x"), False, False),
            (api_exceptions.Aborted("x"), False, False),
            (ValueError("x"), False, False),
        ],
        ids=lambda v: type(v).__name__ if isinstance(v, Exception) else str(v),
    )
    def test_which_errors_are_retried(
        self, error: Exception, on_read: bool, on_write: bool
    ) -> None:
        """Reads retry transient errors; writes only those that cannot have been applied."""
        assert read_options(5)["retry"]._predicate(error) is on_read
        assert write_options(5)["retry"]._predicate(error) is on_write

    def test_retries_stop_at_the_deadline(self, monkeypatch: pytest.MonkeyPatch) -> None:
        """Past the timeout the predicate refuses even a transient error."""
        clock = _FakeTime()
        monkeypatch.setattr(firestore_errors, "time", clock)
        predicate = read_options(3.0)["retry"]._predicate
        unavailable = api_exceptions.ServiceUnavailable("x")
        clock.now += 2.9
        assert predicate(unavailable) is True
        clock.now += 0.2
        assert predicate(unavailable) is False
