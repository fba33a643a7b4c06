"""Tests for servio_twilio.sending.ratelimit: the token bucket that caps batch sends per second."""

from __future__ import annotations

import math
import threading

import pytest
from hypothesis import given, settings, strategies as st

from servio_twilio.sending.ratelimit import TokenBucket


class _Time:
    """A fake monotonic clock; ``sleep`` moves it forward."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _release_times(bucket: TokenBucket, fake: _Time, n: int) -> list[float]:
    times = []
    for _ in range(n):
        bucket.acquire()
        times.append(fake.now)
    return times


class TestTokenBucketPacing:
    def test_new_bucket_paces_from_the_first_take(self) -> None:
        """A new bucket holds one token: the first take is immediate, then one per 1/rate."""
        fake = _Time()
        bucket = TokenBucket(5, clock=fake.clock, sleep=fake.sleep)
        times = _release_times(bucket, fake, 6)
        assert times == pytest.approx([0.0, 0.2, 0.4, 0.6, 0.8, 1.0])

    def test_no_sleep_when_a_token_is_there(self) -> None:
        """``acquire`` sleeps only when it must, and returns what it slept."""
        fake = _Time()
        bucket = TokenBucket(10, clock=fake.clock, sleep=fake.sleep)
        assert bucket.acquire() == 0.0
        assert fake.sleeps == []
        assert bucket.acquire() == pytest.approx(0.1)
        assert fake.sleeps == pytest.approx([0.1])

    def test_idle_bucket_bursts_at_most_one_second_worth(self) -> None:
        """After a long pause, ``rate`` takes go at once (one second's worth), not more."""
        fake = _Time()
        bucket = TokenBucket(4, clock=fake.clock, sleep=fake.sleep)
        bucket.acquire()
        fake.now += 60.0
        start = fake.now
        times = _release_times(bucket, fake, 6)
        assert times[:4] == [start] * 4
        assert times[4:] == pytest.approx([start + 0.25, start + 0.5])

    def test_burst_of_one_is_pure_pacing(self) -> None:
        """``burst=1``: even after a pause, sends stay 1/rate apart."""
        fake = _Time()
        bucket = TokenBucket(4, burst=1, clock=fake.clock, sleep=fake.sleep)
        fake.now = 10.0
        times = _release_times(bucket, fake, 3)
        assert times == pytest.approx([10.0, 10.25, 10.5])

    def test_rate_below_one_per_second(self) -> None:
        """A rate of 0.5/s spaces takes two seconds apart; the burst is one token."""
        fake = _Time()
        bucket = TokenBucket(0.5, clock=fake.clock, sleep=fake.sleep)
        assert bucket.burst == 1.0
        assert _release_times(bucket, fake, 3) == pytest.approx([0.0, 2.0, 4.0])

    def test_frozen_clock_reserves_successive_slots(self) -> None:
        """With no time passing, each reservation waits one interval more than the last."""
        bucket = TokenBucket(20, clock=lambda: 5.0)
        assert [bucket.reserve() for _ in range(5)] == pytest.approx([0.0, 0.05, 0.1, 0.15, 0.2])

    def test_clock_going_backwards_gives_no_tokens(self) -> None:
        """A clock that steps back does not refill the bucket."""
        times = iter([100.0, 100.0, 50.0, 50.0])
        bucket = TokenBucket(10, clock=lambda: next(times))
        assert bucket.reserve() == 0.0
        assert bucket.reserve() == pytest.approx(0.1)
        assert bucket.reserve() == pytest.approx(0.2)

    @settings(max_examples=60, deadline=None)
    @given(
        rate=st.sampled_from([0.5, 1.0, 3.0, 10.0, 50.0]),
        steps=st.lists(
            st.tuples(st.floats(min_value=0, max_value=3), st.integers(min_value=0, max_value=30)),
            min_size=1,
            max_size=12,
        ),
    )
    def test_never_more_than_burst_plus_rate_times_interval(
        self, rate: float, steps: list[tuple[float, int]]
    ) -> None:
        """For any pauses and takes: in every interval [a, b], at most burst + rate*(b-a) + 1e-9."""
        fake = _Time()
        bucket = TokenBucket(rate, clock=fake.clock, sleep=fake.sleep)
        releases: list[float] = []
        for pause, takes in steps:
            fake.now += pause
            releases.extend(_release_times(bucket, fake, takes))
        for i, a in enumerate(releases):
            for j in range(i, len(releases)):
                count = j - i + 1
                assert count <= bucket.burst + rate * (releases[j] - a) + 1e-6


class TestTokenBucketThreads:
    def test_threads_never_share_a_slot(self) -> None:
        """8 threads x 50 reservations on a frozen clock get 400 distinct, evenly spaced slots."""
        bucket = TokenBucket(100, clock=lambda: 0.0)
        waits: list[float] = []
        lock = threading.Lock()
        start = threading.Barrier(8)

        def take() -> None:
            start.wait()
            for _ in range(50):
                wait = bucket.reserve()
                with lock:
                    waits.append(wait)

        threads = [threading.Thread(target=take) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sorted(waits) == pytest.approx([k / 100 for k in range(400)])


class TestTokenBucketArguments:
    @pytest.mark.parametrize("rate", [0, -1, math.nan, math.inf, True, "5", None])
    def test_bad_rate(self, rate: object) -> None:
        """A rate that is not a positive finite number is a ValueError."""
        with pytest.raises(ValueError, match="rate must be a positive number"):
            TokenBucket(rate)  # type: ignore[arg-type]

    @pytest.mark.parametrize(("rate", "burst"), [(10, 0), (10, 0.5), (10, 11), (0.5, 2), (5, True)])
    def test_burst_out_of_range(self, rate: float, burst: float) -> None:
        """``burst`` must be between 1 and one second's worth of tokens."""
        with pytest.raises(ValueError, match="burst must be between 1 and"):
            TokenBucket(rate, burst=burst)

    def test_clock_and_sleep_must_be_callable(self) -> None:
        """A non-callable clock or sleep is refused at construction."""
        with pytest.raises(TypeError, match="callable"):
            TokenBucket(1, clock=3.0)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="callable"):
            TokenBucket(1, sleep=None)  # type: ignore[arg-type]

    def test_repr(self) -> None:
        """The repr shows the rate and burst."""
        assert repr(TokenBucket(50)) == "<TokenBucket rate=50/s burst=50>"
