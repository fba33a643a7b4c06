"""Tests for servio_twilio.sending.shared_limits: limits shared through Redis (and memory://).

Against a real ``redis-server`` (the ``redis_server`` fixture): four processes
(multiprocessing's ``spawn``) sending to one prospect share one cap; four
processes taking from one `SharedRateLimit` share one rate; Redis stopped
mid-run makes every call fail closed with `LimiterUnavailable`.
"""

from __future__ import annotations

import asyncio
import math
import multiprocessing
import socket
import uuid
from collections import Counter
from typing import Any

import pytest
import redis

from servio_twilio.domain.errors import (
    ConfigurationError,
    InvalidArgument,
    LimiterUnavailable,
    SendLimitExceeded,
)
from servio_twilio.sending.limiter import AsyncSendLimiter, SendLimiter
from servio_twilio.sending.ratelimit import RateLimit, TokenBucket
from servio_twilio.sending.shared_limits import SharedRateLimit, SharedSendLimiter
from support import limit_workers
from support.redis_server import RedisServer

PROCESSES = 4
NUMBER_KEY = "to:+5511999999999"


@pytest.fixture(params=["memory", "redis"])
def storage_uri(request: pytest.FixtureRequest) -> str:
    """``memory://`` and the session's real Redis."""
    if request.param == "memory":
        return "memory://"
    server: RedisServer = request.getfixturevalue("redis_server")
    return server.url


def unique(prefix: str) -> str:
    """A key no other test uses (tests share one Redis)."""
    return f"{prefix}-{uuid.uuid4().hex[:12]}"


def _run_processes(target: Any, args: tuple[Any, ...], timeout: float = 120) -> list[Any]:
    """Start PROCESSES spawned workers on ``target(*args, barrier, queue)``; their results."""
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(PROCESSES)
    queue = context.Queue()
    workers = [
        context.Process(target=target, args=(*args, barrier, queue)) for _ in range(PROCESSES)
    ]
    for worker in workers:
        worker.start()
    try:
        results = [queue.get(timeout=timeout) for _ in workers]
    finally:
        for worker in workers:
            worker.join(timeout=30)
            if worker.is_alive():
                worker.kill()
    assert [worker.exitcode for worker in workers] == [0] * PROCESSES
    return results


class TestSharedSendLimiter:
    def test_allows_max_sends_then_refuses_with_the_wait(self, storage_uri: str) -> None:
        """The first max_sends pass; the next is refused with about per_seconds to wait."""
        limiter = SharedSendLimiter(storage_uri, max_sends=3, per_seconds=60)
        key = unique("p")
        assert [limiter.try_acquire(key) for _ in range(3)] == [None, None, None]
        wait = limiter.try_acquire(key)
        assert wait is not None
        assert 50 < wait <= 60
        assert limiter.remaining(key) == 0

    def test_refusals_are_not_counted_and_keys_are_independent(self, storage_uri: str) -> None:
        """Refused attempts leave the count as it was; another key has its own window."""
        limiter = SharedSendLimiter(storage_uri, max_sends=2, per_seconds=60)
        key, other = unique("p"), unique("p")
        for _ in range(10):
            limiter.try_acquire(key)
        assert limiter.remaining(key) == 0
        assert limiter.try_acquire(other) is None
        assert limiter.remaining(other) == 1

    def test_async_and_sync_share_one_count(self, storage_uri: str) -> None:
        """try_acquire_async counts in the same window as try_acquire."""
        limiter = SharedSendLimiter(storage_uri, max_sends=3, per_seconds=60)
        key = unique("p")

        async def three() -> list[float | None]:
            try:
                return [await limiter.try_acquire_async(key) for _ in range(3)]
            finally:
                await limiter.aclose()

        assert limiter.try_acquire(key) is None
        results = asyncio.run(three())
        assert results[:2] == [None, None]
        assert results[2] is not None
        assert limiter.try_acquire(key) is not None
        limiter.close()

    def test_is_a_send_limiter_of_both_kinds(self) -> None:
        """It satisfies SendLimiter and AsyncSendLimiter."""
        limiter = SharedSendLimiter("memory://")
        assert isinstance(limiter, SendLimiter)
        assert isinstance(limiter, AsyncSendLimiter)
        assert (limiter.max_sends, limiter.per_seconds) == (10, 60)

    def test_threads_get_exactly_max_sends(self, storage_uri: str) -> None:
        """Twenty threads racing for one key in one process get exactly max_sends."""
        import threading

        limiter = SharedSendLimiter(storage_uri, max_sends=10, per_seconds=60)
        key = unique("p")
        results: list[float | None] = []
        lock = threading.Lock()
        barrier = threading.Barrier(20)

        def worker() -> None:
            barrier.wait()
            for _ in range(5):
                result = limiter.try_acquire(key)
                with lock:
                    results.append(result)

        threads = [threading.Thread(target=worker) for _ in range(20)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert sum(1 for r in results if r is None) == 10
        assert len(results) == 100

    def test_no_phone_number_is_written_to_redis(self, redis_server: RedisServer) -> None:
        """Keys are stored hashed: Redis never holds the number a key names."""
        limiter = SharedSendLimiter(redis_server.url, max_sends=1)
        limiter.try_acquire(NUMBER_KEY)
        client = redis.Redis.from_url(redis_server.url)
        try:
            keys = [key.decode() for key in client.keys("*")]
        finally:
            client.close()
        assert keys
        assert not [key for key in keys if "5511" in key]


class TestFourProcesses:
    def test_one_prospect_capped_at_ten_per_minute(self, redis_server: RedisServer) -> None:
        """Four processes x 10 attempts on one prospect, cap 10/min: exactly 10 allowed in all."""
        key = unique("prospect")
        results = _run_processes(limit_workers.send_attempts, (redis_server.url, key, 10, 10))
        allowed = sum(r[0] for r in results)
        refused = sum(r[1] for r in results)
        errors = sum(r[2] for r in results)
        print(f"per process (allowed, refused, errors): {results}")
        assert (allowed, refused, errors) == (10, 30, 0)

    def test_one_rate_of_fifty_per_second(self, redis_server: RedisServer) -> None:
        """Four processes x 60 takes from SharedRateLimit(50/s): each full second holds 50 +-5%."""
        stamps = sorted(
            stamp
            for taken in _run_processes(
                limit_workers.rate_takes, (redis_server.url, 50, 60, unique("rate"))
            )
            for stamp in taken
        )
        assert len(stamps) == 240
        per_second = Counter(math.floor(stamp) for stamp in stamps)
        full = range(math.floor(stamps[0]) + 1, math.floor(stamps[-1]))
        counts = [per_second[second] for second in full]
        rate = sum(counts) / len(counts)
        print(f"takes per full second: {counts}; combined rate {rate:.1f}/s")
        assert len(counts) >= 3
        assert all(47.5 <= count <= 52.5 for count in counts), counts
        assert 47.5 <= rate <= 52.5


class TestSharedRateLimit:
    def test_paces_takes_one_per_interval(self) -> None:
        """With a frozen clock, successive reservations are 1/rate apart after the burst."""
        clock = [1000.5]  # halfway through a second: its first half is the burst allowance
        rate = SharedRateLimit("memory://", per_second=10, name=unique("r"), clock=lambda: clock[0])
        waits = [rate.reserve() for _ in range(10)]
        assert waits[:5] == [0.0] * 5  # slots 1000.0 to 1000.4 are past: taken at once
        assert waits[5:] == pytest.approx([0.0, 0.1, 0.2, 0.3, 0.4])
        assert rate.reserve() == pytest.approx(0.5)  # the next second's first slot

    def test_rate_below_one_per_second(self) -> None:
        """0.5/s: one slot every two seconds."""
        clock = [2000.0]
        rate = SharedRateLimit(
            "memory://", per_second=0.5, name=unique("r"), clock=lambda: clock[0]
        )
        assert [rate.reserve() for _ in range(3)] == pytest.approx([0.0, 2.0, 4.0])

    def test_acquire_sleeps_until_the_slot(self) -> None:
        """acquire and acquire_async sleep the reserved wait and return it."""
        clock = [3000.0]
        slept: list[float] = []

        async def async_sleep(seconds: float) -> None:
            slept.append(seconds)

        rate = SharedRateLimit(
            "memory://",
            per_second=4,
            name=unique("r"),
            clock=lambda: clock[0],
            sleep=slept.append,
            async_sleep=async_sleep,
        )
        assert rate.acquire() == 0.0
        assert rate.acquire() == pytest.approx(0.25)
        assert asyncio.run(rate.acquire_async()) == pytest.approx(0.5)
        assert slept == pytest.approx([0.25, 0.5])

    def test_async_on_redis_shares_the_slots(self, redis_server: RedisServer) -> None:
        """Sync and async takes on Redis get distinct slots of one grid."""
        clock = [4000.0]
        name = unique("r")
        rate = SharedRateLimit(redis_server.url, per_second=5, name=name, clock=lambda: clock[0])
        other = SharedRateLimit(redis_server.url, per_second=5, name=name, clock=lambda: clock[0])

        async def alternate() -> list[float]:
            try:
                return [
                    rate.reserve(),
                    await other.reserve_async(),
                    rate.reserve(),
                    await other.reserve_async(),
                ]
            finally:
                await other.aclose()

        assert asyncio.run(alternate()) == pytest.approx([0.0, 0.2, 0.4, 0.6])
        rate.close()

    def test_is_a_rate_limit_as_a_token_bucket_is(self) -> None:
        """SharedRateLimit and TokenBucket both satisfy RateLimit."""
        assert isinstance(SharedRateLimit("memory://", per_second=5), RateLimit)
        assert isinstance(TokenBucket(5), RateLimit)

    def test_token_bucket_acquire_async(self) -> None:
        """TokenBucket.acquire_async reserves like acquire and awaits the wait."""
        now = [0.0]
        slept: list[float] = []

        async def async_sleep(seconds: float) -> None:
            slept.append(seconds)
            now[0] += seconds

        bucket = TokenBucket(10, clock=lambda: now[0], async_sleep=async_sleep)

        async def three() -> list[float]:
            return [await bucket.acquire_async() for _ in range(3)]

        assert asyncio.run(three()) == pytest.approx([0.0, 0.1, 0.1])
        assert slept == pytest.approx([0.1, 0.1])


class TestRedisDown:
    def test_fails_closed_and_recovers(self, private_redis_server: RedisServer) -> None:
        """Redis stopped mid-run: every call raises LimiterUnavailable (no redis error escapes);
        started again, sends are counted again."""
        server = private_redis_server
        limiter = SharedSendLimiter(server.url, max_sends=1000)
        rate = SharedRateLimit(server.url, per_second=1000, name=unique("r"))
        loop = asyncio.new_event_loop()
        outcomes: list[str] = []
        try:
            for i in range(20):
                if i == 10:
                    server.stop()
                for call in (
                    lambda: limiter.try_acquire(NUMBER_KEY),
                    lambda: loop.run_until_complete(limiter.try_acquire_async(NUMBER_KEY)),
                    rate.reserve,
                    lambda: loop.run_until_complete(rate.reserve_async()),
                ):
                    try:
                        call()
                    except SendLimitExceeded as error:
                        outcomes.append(f"{type(error).__name__}: {error}")
                    else:
                        outcomes.append("counted")
            assert outcomes[:40] == ["counted"] * 40
            assert all(o.startswith("LimiterUnavailable: ") for o in outcomes[40:]), outcomes
            assert not [o for o in outcomes if "+5511999999999" in o]
            assert len(outcomes) == 80
            server.start()
            assert limiter.try_acquire(NUMBER_KEY) is None
            assert loop.run_until_complete(limiter.try_acquire_async(NUMBER_KEY)) is None
            assert rate.reserve() >= 0.0
            assert loop.run_until_complete(rate.reserve_async()) >= 0.0
        finally:
            loop.run_until_complete(limiter.aclose())
            loop.run_until_complete(rate.aclose())
            loop.close()
            limiter.close()
            rate.close()

    def test_a_silent_server_times_out_into_limiter_unavailable(self) -> None:
        """A host that accepts but never answers: LimiterUnavailable once the read times out."""
        with socket.socket() as listener:
            listener.bind(("127.0.0.1", 0))
            listener.listen(8)
            port = listener.getsockname()[1]
            limiter = SharedSendLimiter(
                f"redis://127.0.0.1:{port}/0",
                storage_options={"socket_timeout": 0.3, "retry_on_timeout": False},
            )
            with pytest.raises(LimiterUnavailable, match="Timeout"):
                limiter.try_acquire("p")


class TestArguments:
    @pytest.mark.parametrize(
        ("arguments", "match"),
        [
            ({"max_sends": 0}, "max_sends"),
            ({"max_sends": 1.5}, "max_sends"),
            ({"per_seconds": 0}, "per_seconds"),
            ({"per_seconds": 0.5}, "per_seconds"),
            ({"per_seconds": True}, "per_seconds"),
        ],
    )
    def test_bad_limits(self, arguments: dict[str, Any], match: str) -> None:
        """Limits that make no sense, or windows of part of a second, are InvalidArgument."""
        with pytest.raises(InvalidArgument, match=match):
            SharedSendLimiter("memory://", **arguments)

    @pytest.mark.parametrize("per_second", [0, -1, math.inf, math.nan, True, "5"])
    def test_bad_rate(self, per_second: Any) -> None:
        """A rate that is not a positive finite number is InvalidArgument."""
        with pytest.raises(InvalidArgument, match="per_second"):
            SharedRateLimit("memory://", per_second=per_second)

    def test_unknown_scheme(self) -> None:
        """A storage scheme limits does not know is a ConfigurationError naming the URI."""
        with pytest.raises(ConfigurationError, match="nosuch://host"):
            SharedSendLimiter("nosuch://host")

    def test_uri_type(self) -> None:
        """A storage URI that is not a str is a TypeError."""
        with pytest.raises(TypeError, match="storage_uri"):
            SharedSendLimiter(None)  # type: ignore[arg-type]

    def test_repr_hides_the_password(self) -> None:
        """The repr shows scheme, host and path, never the URI's credentials."""
        limiter = SharedSendLimiter("redis://:s3cret@10.0.0.3:6379/0")
        rate = SharedRateLimit("rediss://user:s3cret@10.0.0.3:6379/1", per_second=5)
        assert "s3cret" not in repr(limiter)
        assert "s3cret" not in repr(rate)
        assert "redis://10.0.0.3:6379/0" in repr(limiter)
