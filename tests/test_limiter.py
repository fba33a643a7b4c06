"""Tests for servio_twilio.sending.limiter: the SendLimiter Protocol and InMemorySendLimiter."""

from __future__ import annotations

import threading

import pytest

from servio_twilio.sending.limiter import InMemorySendLimiter, SendLimiter


class _Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


class TestInMemorySendLimiter:
    def test_allows_max_sends_then_refuses_with_the_wait(self) -> None:
        """The first max_sends sends pass; the next gets the seconds until the oldest leaves."""
        clock = _Clock()
        limiter = InMemorySendLimiter(3, 60, clock=clock)
        results = []
        for offset in (0.0, 10.0, 20.0):
            clock.now = 1000.0 + offset
            results.append(limiter.try_acquire("p1"))
        assert results == [None, None, None]
        clock.now = 1030.0
        assert limiter.try_acquire("p1") == pytest.approx(30.0)

    def test_window_slides(self) -> None:
        """Once the oldest send is per_seconds old, one more send is allowed."""
        clock = _Clock()
        limiter = InMemorySendLimiter(2, 10, clock=clock)
        assert limiter.try_acquire("k") is None
        clock.now += 5
        assert limiter.try_acquire("k") is None
        clock.now += 4.9
        assert limiter.try_acquire("k") == pytest.approx(0.1)
        clock.now += 0.1
        assert limiter.try_acquire("k") is None
        assert limiter.try_acquire("k") is not None

    def test_refusal_is_not_counted(self) -> None:
        """A refused attempt does not extend the wait."""
        clock = _Clock()
        limiter = InMemorySendLimiter(1, 10, clock=clock)
        assert limiter.try_acquire("k") is None
        for _ in range(5):
            clock.now += 1
            limiter.try_acquire("k")
        clock.now = 1010.0
        assert limiter.try_acquire("k") is None

    def test_keys_are_independent(self) -> None:
        """One prospect at its limit does not limit another."""
        limiter = InMemorySendLimiter(1, 60, clock=_Clock())
        assert limiter.try_acquire("a") is None
        assert limiter.try_acquire("a") is not None
        assert limiter.try_acquire("b") is None
        assert limiter.remaining("a") == 0
        assert limiter.remaining("c") == 1

    def test_idle_keys_are_forgotten(self) -> None:
        """Keys whose sends all left the window are swept, so memory stays bounded."""
        clock = _Clock()
        limiter = InMemorySendLimiter(5, 10, clock=clock)
        for i in range(100):
            limiter.try_acquire(f"k{i}")
        assert "keys=100" in repr(limiter)
        clock.now += 11
        limiter.try_acquire("fresh")
        assert "keys=1>" in repr(limiter)

    def test_thread_safe_under_contention(self) -> None:
        """Many threads racing for one key get exactly max_sends slots."""
        limiter = InMemorySendLimiter(10, 60)
        granted: list[float | None] = []
        lock = threading.Lock()
        barrier = threading.Barrier(20)

        def worker() -> None:
            barrier.wait()
            for _ in range(5):
                result = limiter.try_acquire("shared")
                with lock:
                    granted.append(result)

        threads = [threading.Thread(target=worker) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sum(1 for g in granted if g is None) == 10
        assert len(granted) == 100

    @pytest.mark.parametrize(
        ("max_sends", "per_seconds"),
        [(0, 60), (-1, 60), (1.5, 60), (True, 60), (1, 0), (1, -5), (1, float("inf")), (1, "60")],
    )
    def test_bad_arguments_raise_value_error(self, max_sends: object, per_seconds: object) -> None:
        """Limits that make no sense are refused at construction."""
        with pytest.raises(ValueError, match=r"max_sends|per_seconds"):
            InMemorySendLimiter(max_sends, per_seconds)  # type: ignore[arg-type]

    def test_defaults(self) -> None:
        """The defaults are 10 sends per 60 seconds."""
        limiter = InMemorySendLimiter()
        assert (limiter.max_sends, limiter.per_seconds) == (10, 60.0)


class TestSendLimiter:
    def test_in_memory_limiter_satisfies_the_protocol(self) -> None:
        """InMemorySendLimiter is a SendLimiter; a plain object is not."""
        assert isinstance(InMemorySendLimiter(), SendLimiter)
        assert not isinstance(object(), SendLimiter)

    def test_a_custom_limiter_satisfies_the_protocol(self) -> None:
        """Any object with try_acquire(key) is a SendLimiter."""

        class Never:
            def try_acquire(self, key: str) -> float | None:
                return 5.0

        assert isinstance(Never(), SendLimiter)
