"""The md fan-out hub without sockets: reference counts, grace period, answers, conflation,
encode-once frames."""

from __future__ import annotations

import orjson
import pytest
import trio
import trio.testing

from webctp._bus import (
    IN_FLIGHT_LAPS,
    EdgeSource,
    InFlight,
    Publisher,
    pack,
    publish_commands,
    unpack,
)
from webctp._context import ServiceContext
from webctp._fanout import Hub, Subscriber, TickFrame, encode_tick, tick_frame
from webctp._wire import frame_header
from webctp.config import Config
from webctp.protocol import codec
from webctp.protocol.codec import RspInfo
from webctp.service import NO_BACKEND


class FakeSource:
    def __init__(self) -> None:
        self.wanted: list[list[str]] = []
        self.dropped: list[list[str]] = []

    def want(self, instruments: list[str]) -> None:
        self.wanted.append(instruments)

    def drop(self, instruments: list[str]) -> None:
        self.dropped.append(instruments)


def answers() -> tuple[list[tuple[str, RspInfo | None]], object]:
    got: list[tuple[str, RspInfo | None]] = []

    def answer(instrument: str, info: RspInfo | None) -> None:
        got.append((instrument, info))

    return got, answer


def frame(n: int) -> TickFrame:
    return tick_frame(b'{"n":%d}' % n)


async def test_refcount_grace_and_local_answers(autojump_clock: trio.testing.MockClock) -> None:
    hub = Hub(grace_s=5.0)
    source = FakeSource()
    hub.source = source
    a, b = Subscriber(), Subscriber()
    got_a, answer_a = answers()
    got_b, answer_b = answers()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hub.run_releases)
        hub.subscribe(a, ["x", "y"], answer_a)  # type: ignore[arg-type]
        assert source.wanted == [["x", "y"]] and got_a == []  # waiting for the source
        hub.subscribe(b, ["x"], answer_b)  # type: ignore[arg-type]
        assert source.wanted == [["x", "y"]]  # asked once
        hub.confirm("x", None)
        hub.confirm("y", (0, ""))
        assert got_a == [("x", None), ("y", (0, ""))] and got_b == [("x", None)]
        # confirmed: a third subscriber is answered at once, no new demand
        c = Subscriber()
        got_c, answer_c = answers()
        hub.subscribe(c, ["x"], answer_c)  # type: ignore[arg-type]
        assert got_c == [("x", None)] and len(source.wanted) == 1
        # ticks reach each subscriber once; a second tick before the first was taken
        # replaces it and is counted
        hub.publish("x", frame(1))
        hub.publish("x", frame(2))
        assert [f.text for f in a.take()] == [b'{"n":2}'] and a.ticks_conflated == 1
        # the last reference of y goes: released after the grace period only
        hub.unsubscribe(a, ["y"])
        await trio.sleep(4.9)
        assert source.dropped == []
        await trio.sleep(0.2)
        assert source.dropped == [["y"]]
        # x: released only when all three left; coming back within the grace keeps it
        hub.leave(a)
        hub.leave(b)
        hub.leave(c)
        await trio.sleep(3)
        hub.subscribe(b, ["x"], answer_b)  # type: ignore[arg-type]
        assert got_b[-1] == ("x", None)  # still flowing: answered locally
        await trio.sleep(10)
        assert source.dropped == [["y"]]
        hub.leave(b)
        await trio.sleep(5.1)
        assert source.dropped == [["y"], ["x"]]
        assert "x" not in hub.latest and not hub.subscribers
        nursery.cancel_scope.cancel()


async def test_refused_and_link_down() -> None:
    hub = Hub(grace_s=1.0)
    source = FakeSource()
    hub.source = source
    a = Subscriber()
    got, answer = answers()
    hub.subscribe(a, ["bad", "p", "q"], answer)  # type: ignore[arg-type]
    hub.confirm("bad", (16, "no such instrument"))
    assert got == [("bad", (16, "no such instrument"))]
    assert "bad" not in a.instruments and source.dropped == [["bad"]]
    hub.fail_waiting((-503, "link down"))
    assert got[1:] == [("p", (-503, "link down")), ("q", (-503, "link down"))]
    assert set(a.instruments) == {"p", "q"}  # references kept for the re-subscription


def test_encode_once_frame_bytes() -> None:
    values = tuple(
        "rb2601" if name == "InstrumentID" else ("" if isinstance(default, str) else 1.5)
        for name, default in zip(
            codec.codec("DepthMarketData").names,
            codec.codec("DepthMarketData").capture(_blank()),
        )
    )
    f = encode_tick(values)
    message = orjson.loads(f.text)
    assert message["MsgType"] == "RtnDepthMarketData"
    assert message["DepthMarketData"]["InstrumentID"] == "rb2601"
    assert f.wire == frame_header(len(f.text)) + f.text
    assert frame_header(5) == b"\x81\x05"
    assert frame_header(200) == b"\x81\x7e\x00\xc8"
    assert frame_header(70000) == b"\x81\x7f" + (70000).to_bytes(8, "big")


def test_bus_batch_round_trip() -> None:
    batch = pack("rb2601", b'{"a":1}', 7) + pack("中文", b"x" * 300, 2**40)
    assert list(unpack(batch)) == [("rb2601", 7, b'{"a":1}'), ("中文", 2**40, b"x" * 300)]
    assert list(unpack(batch[:-1])) == [("rb2601", 7, b'{"a":1}')]  # a truncated tail is ignored


def _blank() -> object:
    from webctp.sim import mdapi

    return mdapi.CThostFtdcDepthMarketDataField()


def test_edge_backlog_keeps_the_latest_and_counts_the_rest(cfg: Config) -> None:
    hub = Hub(grace_s=1.0)
    edge = EdgeSource(ServiceContext(cfg, NO_BACKEND), hub)
    a, b = Subscriber(), Subscriber()
    _got, answer = answers()
    hub.subscribe(a, ["x", "y"], answer)  # type: ignore[arg-type]
    hub.subscribe(b, ["x"], answer)  # type: ignore[arg-type]
    assert sorted(edge.demand) == ["x", "y"]
    other = pack("not-wanted", b"{}", 1)
    edge.on_batches(
        [pack("x", b'{"n":1}', 1) + pack("y", b'{"n":1}', 1), pack("x", b'{"n":2}', 2) + other]
    )
    assert [f.text for f in a.take()] == [b'{"n":2}', b'{"n":1}']
    assert [f.text for f in b.take()] == [b'{"n":2}']
    assert edge.conflation.ticks_conflated == 2  # x replaced once, two subscribers
    assert "not-wanted" not in hub.latest
    # ticks the feeder replaced (or the bus lost) show as gaps in the sequence numbers
    edge.on_batches([pack("x", b'{"n":5}', 5) + pack("y", b'{"n":2}', 2)])
    assert edge.conflation.ticks_conflated == 2 + 2 * 2  # x: numbers 3 and 4, two subscribers
    edge.on_batches([pack("x", b'{"n":1}', 1)])  # the feeder restarted: counting starts again
    edge.on_batches([pack("x", b'{"n":2}', 2)])
    assert edge.conflation.ticks_conflated == 6


def test_publisher_numbers_every_tick_the_upstream_saw() -> None:
    pub = Publisher()
    frame = tick_frame(b"{}")
    pub.offer("x", frame)
    pub.offer("x", frame, skipped=2)  # two replaced in the feeder's bridge
    assert pub.pending["x"][1] == 4
    assert pub.ticks_conflated == 1  # the first one, replaced here before publication


def test_the_upstream_pump_run_by_the_bridge_wake_up_never_raises(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """``Upstream.pump_now`` runs as a ``run_sync_soon`` callback (``Sink.on_ticks``): a
    failure is logged, never raised into Trio's wake-up machinery."""
    from webctp._upstream import Upstream

    upstream = Upstream.__new__(Upstream)

    def broken() -> bool:
        raise ValueError("a bad tick")

    upstream.pump_once = broken  # type: ignore[method-assign]
    with caplog.at_level("ERROR", logger="webctp.upstream"):
        upstream.pump_now()
    assert "event=tick_pump_failed" in caplog.text


async def test_the_bridge_wake_up_runs_the_tick_hook_until_the_sink_closes() -> None:
    """``Sink.on_ticks`` (the shared upstream's pump) runs on the Trio thread from the CTP
    thread's wake-up, in place of the ``ticks_ready`` event; not once the sink is closed."""
    from webctp._bridge import Sink

    sink = Sink(limit_bytes=1 << 20)
    taken: list[list[str]] = []
    woken = trio.Event()

    def on_ticks() -> None:
        taken.append(sorted(sink.take_ticks()))
        woken.set()

    sink.on_ticks = on_ticks
    await trio.to_thread.run_sync(sink.post_tick, "a", (1,))
    with trio.fail_after(5):
        await woken.wait()
    assert taken == [["a"]] and not sink.ticks_ready.is_set()
    sink.close()
    await trio.to_thread.run_sync(sink.post_tick, "b", (2,))
    await trio.testing.wait_all_tasks_blocked()
    assert taken == [["a"]]


def test_publish_commands_route_each_edge_its_batch() -> None:
    a, b = tick_frame(b'{"a":1}'), tick_frame(b'{"b":2}')
    frames = {"rb2601": (a, 7), "cu2601": (b, 3)}
    routes = {"e1": {"rb2601"}, "e2": {"rb2601", "cu2601"}, "e3": {"ag2601"}}
    commands = publish_commands("P", routes, frames)
    assert commands == [
        ("PUBLISH", "P:edge:e1", pack("rb2601", a.text, 7)),
        ("PUBLISH", "P:edge:e2", pack("rb2601", a.text, 7) + pack("cu2601", b.text, 3)),
        ("HSET", "P:last", "rb2601", a.text, "cu2601", b.text),
    ]  # nothing for e3: none of its instruments ticked


async def test_publisher_window_bounds_unanswered_laps(
    autojump_clock: trio.testing.MockClock,
) -> None:
    window = InFlight()
    for _ in range(IN_FLIGHT_LAPS):
        window.sent(2)
    got_room = trio.Event()

    async def wait_for_room() -> None:
        await window.room()
        got_room.set()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(wait_for_room)
        await trio.testing.wait_all_tasks_blocked()
        window.answered(1)  # half of the first lap: still full
        await trio.testing.wait_all_tasks_blocked()
        assert not got_room.is_set() and len(window.laps) == IN_FLIGHT_LAPS
        window.answered(1)  # the first lap fully answered: room for one
        await trio.testing.wait_all_tasks_blocked()
        assert got_room.is_set()
    assert sum(window.laps) == 2 * IN_FLIGHT_LAPS - 2
    window.answered(sum(window.laps))
    assert not window.laps
    with trio.move_on_after(60):  # nothing unanswered: the reader waits for a send
        await window.awaiting()
        raise AssertionError("awaiting returned with nothing sent")
