"""The request limiter under virtual time (autojump_clock): pacing, serialisation, bounds."""

from __future__ import annotations

import itertools

import trio
import trio.lowlevel
import trio.testing

from webctp._limiter import Job, Lane, RequestLimiter
from webctp.protocol.errors import Code


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[float, str]] = []
        self.failed: list[tuple[str, int]] = []
        self.codes: dict[str, list[int]] = {}

    def job(self, limiter: RequestLimiter, lane: Lane, name: str) -> Job:
        job = Job(lane, send=lambda: 0, fail=lambda c, d: None)

        def send() -> int:
            self.sent.append((trio.current_time(), name))
            job.rid = len(self.sent)
            codes = self.codes.get(name)
            return codes.pop(0) if codes else 0

        job.send = send
        job.fail = lambda code, detail: self.failed.append((name, code))
        return job


def make(**kw: float) -> RequestLimiter:
    args = {
        "queries_per_second": 2.0,
        "orders_per_second": 5.0,
        "max_queued": 5,
        "query_timeout_s": 30.0,
        "retry_delay_s": 1.0,
    }
    args.update(kw)
    return RequestLimiter(**args)  # type: ignore[arg-type]


async def answer_queries(limiter: RequestLimiter, after: float, count: int) -> None:
    """Play CTP: answer each in-flight query ``after`` seconds after it was sent."""
    previous = None
    for _ in range(count):
        while limiter.inflight is None or limiter.inflight is previous:
            await trio.sleep(0.001)
        job = previous = limiter.inflight
        await trio.sleep(after)
        limiter.query_answered(job.rid)
        await trio.lowlevel.checkpoint()


async def test_queries_serialised_and_paced(autojump_clock: trio.testing.MockClock) -> None:
    limiter = make()
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(limiter.run)
        start = trio.current_time()
        for i in range(4):
            assert limiter.submit(rec.job(limiter, Lane.QUERY, f"q{i}"))
        # each query takes 1.2 s to answer: the next starts only after the answer
        await answer_queries(limiter, 1.2, 4)
        nursery.cancel_scope.cancel()
    times = [t - start for t, _ in rec.sent]
    assert [n for _, n in rec.sent] == ["q0", "q1", "q2", "q3"]
    for a, b in itertools.pairwise(times):
        assert b - a >= 1.2 - 1e-9  # one in flight
    assert not rec.failed


async def test_query_rate_when_answers_are_fast(autojump_clock: trio.testing.MockClock) -> None:
    limiter = make(queries_per_second=2.0)
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(limiter.run)
        for i in range(5):
            assert limiter.submit(rec.job(limiter, Lane.QUERY, f"q{i}"))
        await answer_queries(limiter, 0.01, 5)
        nursery.cancel_scope.cancel()
    times = [t for t, _ in rec.sent]
    for a, b in itertools.pairwise(times):
        assert b - a >= 0.5 - 1e-9  # 2 per second


async def test_orders_paced_and_independent_of_queries(
    autojump_clock: trio.testing.MockClock,
) -> None:
    limiter = make(orders_per_second=5.0, max_queued=20)
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(limiter.run)
        assert limiter.submit(rec.job(limiter, Lane.QUERY, "slow-query"))  # never answered
        for i in range(10):
            assert limiter.submit(rec.job(limiter, Lane.ORDER, f"o{i}"))
        await trio.sleep(3)
        nursery.cancel_scope.cancel()
    orders = [t for t, n in rec.sent if n.startswith("o")]
    assert len(orders) == 10  # not blocked behind the unanswered query
    for a, b in itertools.pairwise(orders):
        assert abs((b - a) - 0.2) < 1e-6


async def test_queue_bound_refuses_at_once(autojump_clock: trio.testing.MockClock) -> None:
    limiter = make(max_queued=3)
    rec = Recorder()
    # not running: nothing drains the lane
    results = [limiter.submit(rec.job(limiter, Lane.ORDER, f"o{i}")) for i in range(5)]
    assert results == [True, True, True, False, False]
    assert limiter.queued() == 3


async def test_retry_on_minus_2_minus_3_and_90(autojump_clock: trio.testing.MockClock) -> None:
    limiter = make(max_queued=10)
    rec = Recorder()
    rec.codes = {"q": [-2, -3, 0, 0], "o": [-3, 0]}
    async with trio.open_nursery() as nursery:
        await nursery.start(limiter.run)
        limiter.submit(rec.job(limiter, Lane.QUERY, "q"))
        limiter.submit(rec.job(limiter, Lane.ORDER, "o"))
        while len([n for _, n in rec.sent if n == "q"]) < 3:
            await trio.sleep(0.01)
        # third attempt was sent (code 0); CTP answers ErrorID 90: the limiter retries
        assert limiter.inflight is not None
        assert limiter.query_answered(limiter.inflight.rid, throttled=True) is True
        while len([n for _, n in rec.sent if n == "q"]) < 4:
            await trio.sleep(0.01)
        assert limiter.inflight is not None
        assert limiter.query_answered(limiter.inflight.rid) is False
        await trio.sleep(2)
        nursery.cancel_scope.cancel()
    assert [n for _, n in rec.sent].count("q") == 4
    assert [n for _, n in rec.sent].count("o") == 2
    assert rec.failed == []
    assert limiter.retried == 4


async def test_gives_up_after_max_retries(autojump_clock: trio.testing.MockClock) -> None:
    limiter = make(max_queued=10)
    rec = Recorder()
    rec.codes = {"o": [-3] * 10}
    async with trio.open_nursery() as nursery:
        await nursery.start(limiter.run)
        limiter.submit(rec.job(limiter, Lane.ORDER, "o"))
        await trio.sleep(30)
        nursery.cancel_scope.cancel()
    assert rec.failed == [("o", -3)]
    assert len(rec.sent) == limiter.max_retries + 1


async def test_query_timeout(autojump_clock: trio.testing.MockClock) -> None:
    limiter = make(query_timeout_s=5.0)
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(limiter.run)
        limiter.submit(rec.job(limiter, Lane.QUERY, "lost"))
        limiter.submit(rec.job(limiter, Lane.QUERY, "next"))
        await trio.sleep(5.5)
        assert rec.failed == [("lost", Code.TIMEOUT)]
        assert [n for _, n in rec.sent] == ["lost", "next"]
        nursery.cancel_scope.cancel()


async def test_fail_all(autojump_clock: trio.testing.MockClock) -> None:
    limiter = make(max_queued=10)
    rec = Recorder()
    async with trio.open_nursery() as nursery:
        await nursery.start(limiter.run)
        for i in range(3):
            limiter.submit(rec.job(limiter, Lane.QUERY, f"q{i}"))
        await trio.sleep(0.1)
        assert limiter.inflight is not None
        assert limiter.fail_all(Code.LINK_DOWN, "down") == 2
        await trio.sleep(1)
        nursery.cancel_scope.cancel()
    assert sorted(rec.failed) == [("q1", -503), ("q2", -503)]
    assert [n for _, n in rec.sent] == ["q0"]
