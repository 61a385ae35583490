"""``[md] upstream = "shared"``: one CTP md API per process, reference-counted subscriptions,
encode-once fan-out, link state pushed to every md client."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
import trio

from tests.conftest import replace
from webctp._context import ServiceContext
from webctp._fanout import Hub
from webctp._mdshared import SharedMdSession
from webctp.config import Config
from webctp.service import NO_BACKEND, ServiceInfo, run_service

from .client import Client, connect
from .test_md import instruments, md_login


@pytest.fixture
async def service(nursery: trio.Nursery, cfg: Config) -> ServiceInfo:
    # send_timeout_s: the conflation test's slow client reads nothing during a burst that can
    # outlast the default 10 s on a loaded machine, and would be cut off (as it should: that
    # is tested in test_hostile.py), which is not what this file tests
    shared = replace(
        cfg, md={"upstream": "shared", "release_grace_s": 0.3}, server={"send_timeout_s": 300.0}
    )
    info: ServiceInfo = await nursery.start(run_service, shared)
    return info


def md_apis(service: ServiceInfo) -> int:
    """CTP md API objects attached to the simulated exchange."""
    return sum(1 for api in service.exchange._apis if "Md" in type(api).__name__)


async def subscribe(c: Client, ids: list[str], rid: int) -> list[dict[str, Any]]:
    await c.send({"MsgType": "SubscribeMarketData", "InstrumentID": ids, "RequestID": rid})
    acks = [await c.expect("RspSubMarketData") for _ in ids]
    assert all(
        a["RequestID"] == rid and (a["RspInfo"] is None or a["RspInfo"]["ErrorID"] == 0)
        for a in acks
    ), acks
    assert sorted(a["SpecificInstrument"]["InstrumentID"] for a in acks) == sorted(ids)
    return acks


async def ticks_of(c: Client, ids: list[str]) -> dict[str, dict[str, Any]]:
    seen: dict[str, dict[str, Any]] = {}
    with trio.fail_after(10):
        while set(seen) != set(ids):
            f = await c.expect("RtnDepthMarketData")
            tick = f["DepthMarketData"]
            assert tick["InstrumentID"] in ids
            seen[tick["InstrumentID"]] = tick
    return seen


async def test_one_upstream_refcounted_subscriptions(service: ServiceInfo) -> None:
    wanted = await instruments(service.ws_port, "SHFE", 3)
    hub = service.ctx.md_hub
    upstream = hub.source
    async with connect(service.ws_port, "/md/") as a, connect(service.ws_port, "/md/") as b:
        await md_login(a)
        await md_login(b)
        await subscribe(a, wanted, 7)
        await ticks_of(a, wanted)
        await subscribe(b, wanted[:2], 8)
        # the second subscriber was answered locally and got the latest ticks at once
        await ticks_of(b, wanted[:2])
        assert md_apis(service) == 1  # one CTP md API whatever the number of clients
        assert sorted(upstream.subscribed["md"]) == sorted(wanted)
        # a leaves: b's instruments stay; the third goes after the grace period
        await a.send({"MsgType": "UnSubscribeMarketData", "InstrumentID": wanted, "RequestID": 9})
        acks = [await a.expect("RspUnSubMarketData") for _ in wanted]
        assert {x["RequestID"] for x in acks} == {9}
        assert wanted[2] in upstream.subscribed["md"]  # still in its grace period
        with trio.fail_after(5):
            while wanted[2] in upstream.subscribed["md"]:
                await trio.sleep(0.05)
        assert sorted(upstream.subscribed["md"]) == sorted(wanted[:2])
        await ticks_of(b, wanted[:2])
    # both gone: everything is released after the grace period
    with trio.fail_after(5):
        while upstream.subscribed["md"]:
            await trio.sleep(0.05)
    assert not hub.subscribers and not hub.sessions
    assert md_apis(service) == 1


async def test_resubscribe_within_grace_keeps_the_upstream(service: ServiceInfo) -> None:
    wanted = await instruments(service.ws_port, "DCE", 1)
    upstream = service.ctx.md_hub.source
    requests: list[int] = []
    async with connect(service.ws_port, "/md/") as a:
        await md_login(a)
        await subscribe(a, wanted, 1)
        await ticks_of(a, wanted)
        requests.append(service.ctx.metrics.ctp_requests)
        await a.send({"MsgType": "UnSubscribeMarketData", "InstrumentID": wanted, "RequestID": 2})
        await a.expect("RspUnSubMarketData")
        await subscribe(a, wanted, 3)  # answered locally: no CTP call
        await ticks_of(a, wanted)
        requests.append(service.ctx.metrics.ctp_requests)
    assert requests[0] == requests[1]
    assert wanted[0] in upstream.subscribed["md"] or not upstream.subscribed["md"]


async def test_reconnect_resubscribes_union_once_and_tells_every_client(
    service: ServiceInfo,
) -> None:
    wanted = await instruments(service.ws_port, "DCE", 2)
    async with connect(service.ws_port, "/md/") as a, connect(service.ws_port, "/md/") as b:
        await md_login(a)
        await md_login(b)
        await subscribe(a, wanted[:1], 1)
        await subscribe(b, wanted, 2)
        await ticks_of(b, wanted)
        before = service.ctx.metrics.ctp_requests
        await trio.to_thread.run_sync(
            lambda: service.exchange.drop_fronts(reason=8193, reconnect_after_s=0.3)
        )
        for c in (a, b):
            down = await c.expect("FrontDisconnected")
            assert down["FrontDisconnected"]["Reason"] == 8193
            state = await c.expect("SessionState")
            assert state["SessionState"]["State"] == "disconnected"
        for c in (a, b):
            state = await c.expect(
                lambda f: (
                    f.get("MsgType") == "SessionState" and f["SessionState"]["State"] == "ready"
                )
            )
        await ticks_of(a, wanted[:1])
        await ticks_of(b, wanted)
        # the re-login and ONE SubscribeMarketData call for the union of both clients
        after = service.ctx.metrics.ctp_requests
        assert after - before == 2, (before, after)
        assert md_apis(service) == 1


async def test_encode_once_and_conflation_per_client(service: ServiceInfo) -> None:
    wanted = await instruments(service.ws_port, "SHFE", 3)
    hub = service.ctx.md_hub
    frames: list[Any] = []
    original = hub.publish

    def spy(instrument: str, frame: Any) -> None:
        frames.append(frame)
        original(instrument, frame)

    hub.publish = spy
    async with connect(service.ws_port, "/md/") as fast, connect(service.ws_port, "/md/") as slow:
        await md_login(fast)
        await md_login(slow)
        await subscribe(fast, wanted, 1)
        await subscribe(slow, wanted, 1)
        await ticks_of(slow, wanted)
        # the slow client stops reading during a burst; the fast one keeps reading
        got: list[bytes] = []

        async def read_fast() -> None:
            while True:
                f = await fast.expect("RtnDepthMarketData")
                got.append(f["DepthMarketData"]["InstrumentID"])

        async with trio.open_nursery() as nursery:
            nursery.start_soon(read_fast)
            await trio.to_thread.run_sync(lambda: service.exchange.burst_ticks(20000, wanted))
            await trio.sleep(0.5)
            nursery.cancel_scope.cancel()
        assert service.ctx.metrics.ticks_conflated > 0
        later = 0
        with trio.move_on_after(1.0):
            while True:
                await slow.expect("RtnDepthMarketData")
                later += 1
        assert later < 10000, later
        assert got
    # every frame object was built once for all subscribers: as many frames as ticks taken
    assert frames
    assert len({id(f.wire) for f in frames}) == len(frames)


async def test_login_answered_locally_and_unsupported_requests(service: ServiceInfo) -> None:
    async with connect(service.ws_port, "/md/") as c:
        await c.send({"MsgType": "SubscribeMarketData", "InstrumentID": ["x"], "RequestID": 4})
        f = await c.expect("RspSubMarketData")
        assert f["RspInfo"]["ErrorID"] == -401 and f["RequestID"] == 4
        await md_login(c)
        await c.send({"MsgType": "ReqUserLogin", "ReqUserLogin": {"UserID": "u"}, "RequestID": 5})
        f = await c.expect(lambda f: f.get("RequestID") == 5)
        assert f["RspInfo"]["ErrorID"] == -400
        await c.send({"MsgType": "SubscribeForQuoteRsp", "InstrumentID": ["x"], "RequestID": 6})
        f = await c.expect(lambda f: f.get("RequestID") == 6)
        assert f["RspInfo"]["ErrorID"] == -400 and "shared" in f["Detail"]
        await c.send({"MsgType": "SubscribeMarketData", "InstrumentID": "x", "RequestID": 7})
        f = await c.expect(lambda f: f.get("RequestID") == 7)
        assert f["MsgType"] == "RspSubMarketData" and f["RspInfo"]["ErrorID"] == -400
        await c.send({"MsgType": "ReqUserLogout", "ReqUserLogout": {}, "RequestID": 8})
        f = await c.expect(lambda f: f.get("RequestID") == 8)
        assert f["MsgType"] == "RspUserLogout" and f["RspInfo"] is None


class _Out:
    def __init__(self) -> None:
        self.frames: list[dict[str, Any]] = []

    async def send(self, text: str, /) -> None:
        self.frames.append(orjson.loads(text))

    def send_nowait(self, text: str, /) -> None:
        self.frames.append(orjson.loads(text))


async def _no_wire(wires: list[bytes], texts: list[bytes]) -> bool:
    return True


async def test_answers_a_client_does_not_read_are_bounded(cfg: Config) -> None:
    """Subscribing the same instruments again and again while the answers are not taken
    (the session's reply task is not running here): past the bound, -429 at once."""
    small = replace(cfg, limits={"md_max_instruments": 5})
    hub = Hub(0.0)
    hub.set_link(True, "test")
    out = _Out()
    session = SharedMdSession(ServiceContext(small, NO_BACKEND), out, hub, _no_wire)
    await session.handle(
        orjson.dumps({"MsgType": "ReqUserLogin", "ReqUserLogin": {}, "RequestID": 1}).decode()
    )
    assert out.frames[0]["MsgType"] == "RspUserLogin", out.frames
    ids = [f"i{k}" for k in range(5)]
    for instrument in ids:
        hub.confirm(instrument, None)  # already flowing: answered locally, at once
    for rid in range(2, 10):
        await session.handle(
            orjson.dumps(
                {"MsgType": "SubscribeMarketData", "InstrumentID": ids, "RequestID": rid}
            ).decode()
        )
    assert len(session._replies) == session.max_replies == 10
    refused = [f for f in out.frames if f.get("RspInfo") and f["RspInfo"]["ErrorID"] == -429]
    assert [f["RequestID"] for f in refused] == list(range(4, 10))
    assert all(f["MsgType"] == "RspSubMarketData" for f in refused)


async def test_new_subscriber_gets_the_latest_tick_at_once(
    nursery: trio.Nursery, cfg: Config
) -> None:
    """The market moves only when stepped here: the second client's tick can only be the
    latest one the hub kept."""
    still = replace(cfg, md={"upstream": "shared"}, sim={"tick_interval_s": 0.0})
    service: ServiceInfo = await nursery.start(run_service, still)
    wanted = await instruments(service.ws_port, "SHFE", 1)
    async with connect(service.ws_port, "/md/") as a, connect(service.ws_port, "/md/") as b:
        await md_login(a)
        await subscribe(a, wanted, 1)
        await trio.to_thread.run_sync(lambda: service.exchange.step_market(wanted))
        await ticks_of(a, wanted)
        requests = service.ctx.metrics.ctp_requests
        await md_login(b)
        await subscribe(b, wanted, 2)
        # nothing moves the market now, and b's subscription did not reach CTP: its tick
        # is the one the hub kept
        got = (await ticks_of(b, wanted))[wanted[0]]
        latest = orjson.loads(service.ctx.md_hub.latest[wanted[0]].text)
        assert got == latest["DepthMarketData"]
        assert service.ctx.metrics.ctp_requests == requests


async def test_bars_on_a_shared_upstream(service: ServiceInfo) -> None:
    """GetBars answers on a shared upstream too: the upstream feeds the bar book once."""
    (inst,) = await instruments(service.ws_port, "SHFE", 1)
    async with connect(service.ws_port, "/md/") as c:
        await c.send({"MsgType": "GetBars", "InstrumentID": inst, "RequestID": 2})
        assert (await c.expect(lambda f: f.get("RequestID") == 2))["RspInfo"]["ErrorID"] == -401
        await md_login(c)
        await subscribe(c, [inst], 3)
        await ticks_of(c, [inst])
        await c.send({"MsgType": "GetBars", "InstrumentID": inst, "Period": "1d", "RequestID": 4})
        f = await c.expect(lambda f: f.get("RequestID") == 4)
        assert f["MsgType"] == "Bars", f
        assert len(f["Bars"]["Bars"]) > 100  # the simulator's earlier days, then today's
        await c.send({"MsgType": "GetBars", "InstrumentID": inst, "Period": 5, "RequestID": 5})
        bad = await c.expect(lambda f: f.get("RequestID") == 5)
        assert bad["RspInfo"]["ErrorID"] == -400, bad


async def test_a_sender_pulling_ticks_leaves_the_pump_awake(
    nursery: trio.Nursery, cfg: Config
) -> None:
    """Client senders pull ticks through the upstream between their writes (``Hub.pull``);
    taking them replaces the bridge's ``ticks_ready`` event. The upstream's own task, waiting
    on the replaced one, must still deliver the next tick (nobody is writing then)."""
    from webctp.protocol import codec
    from webctp.sim import mdapi

    still = replace(cfg, md={"upstream": "shared"}, sim={"tick_interval_s": 0.0})
    service: ServiceInfo = await nursery.start(run_service, still)
    wanted = await instruments(service.ws_port, "SHFE", 1)
    upstream = service.ctx.md_hub.source
    assert upstream is not None
    sink = upstream.sink

    def tick(instrument: str, price: float) -> Any:
        struct = mdapi.CThostFtdcDepthMarketDataField()
        struct.InstrumentID = instrument
        struct.LastPrice = price
        return codec.codec("DepthMarketData").capture(struct)

    async with connect(service.ws_port, "/md/") as c:
        await md_login(c)
        await subscribe(c, wanted, 1)
        await trio.sleep(0.2)  # the upstream's task now waits for the bridge's wake-up
        # a tick nobody subscribed: taken by the pull, it wakes no client's sender
        sink.post_tick("nobody", tick("nobody", 1.5))  # its wake-up is queued, not run yet
        service.ctx.md_hub.pull()  # what a sender does after a write
        assert not sink.has_ticks()
        sink.post_tick(wanted[0], tick(wanted[0], 2.5))  # only the upstream's task can take it
        with trio.fail_after(5):
            while True:
                f = await c.expect("RtnDepthMarketData")
                if f["DepthMarketData"]["LastPrice"] == 2.5:
                    break
