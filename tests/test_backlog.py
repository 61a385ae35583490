"""The event backlog's overflow policy (``_bridge.Sink``): bounded in bytes and time, not rows.

Driven from the Trio side (``_deliver`` is what ``run_sync_soon`` runs for the CTP thread)
under the autojump clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio
import trio.testing

from webctp._bridge import HARD_LIMIT_FACTOR, Event, Sink, event_size
from webctp.protocol.catalogue import load

CB = load().td.callbacks["OnRspQryInstrument"]
ROW = Event(CB, tuple("x" * 40 for _ in range(20)), None, 1, False)
SIZE = event_size(ROW)


async def consume(sink: Sink, per_event_s: float, stop_after: int | None = None) -> int:
    taken = 0
    async for _ in sink.events():
        taken += 1
        if stop_after is not None and taken >= stop_after:
            await trio.sleep_forever()
        await trio.sleep(per_event_s)
    return taken


async def watch(sink: Sink, seen: list[float]) -> None:
    await sink.wait_overflow()
    seen.append(trio.current_time())


@asynccontextmanager
async def session(*consumer: Any) -> AsyncIterator[tuple[Sink, list[float]]]:
    """A sink with a mark of 10 rows and 10 s, its overflow watched, and a consumer taking
    from it with ``consume(sink, *consumer)``; yields the sink and the overflow times."""
    sink = Sink(limit_bytes=10 * SIZE, backlog_s=10.0)
    overflowed: list[float] = []
    async with trio.open_nursery() as nursery:
        nursery.start_soon(watch, sink, overflowed)
        if consumer:
            nursery.start_soon(consume, sink, *consumer)
        yield sink, overflowed
        nursery.cancel_scope.cancel()


async def test_prompt_reader_takes_an_answer_far_above_the_mark(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with session(0.005) as (sink, overflowed):
        for _ in range(15 * 10):  # 15 x the mark, all at once (just under the hard limit)
            sink._deliver(ROW)
        assert sink.queued_bytes > sink.limit_bytes
        await trio.sleep(60)  # drained in 0.75 s: never above the mark for 10 s
        assert sink.queued_bytes == 0
    assert overflowed == []


async def test_a_reader_that_stalls_overflows_after_the_backlog_time(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with session(0.0, 5) as (sink, overflowed):
        start = trio.current_time()
        for _ in range(50):
            sink._deliver(ROW)
        await trio.sleep(30)
    assert len(overflowed) == 1 and abs(overflowed[0] - start - 10.0) < 0.01


async def test_draining_below_the_mark_restarts_the_clock(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with session(0.5) as (sink, overflowed):  # slow but steady: 2 rows a second
        for _ in range(5):  # a new burst every 8 s, each drained below the mark in time
            for _ in range(14):
                sink._deliver(ROW)
            await trio.sleep(8)
        await trio.sleep(10)
    assert overflowed == []


async def test_the_hard_limit_overflows_at_once(autojump_clock: trio.testing.MockClock) -> None:
    async with session() as (sink, overflowed):
        start = trio.current_time()
        for _ in range(HARD_LIMIT_FACTOR * 10 + 1):
            sink._deliver(ROW)
        await trio.sleep(1)
    assert overflowed == [start]
    assert sink.queued_bytes <= sink.hard_limit_bytes
