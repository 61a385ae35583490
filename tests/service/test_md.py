"""Market data end-to-end: login, subscriptions, ticks, bad input, reconnect, slow clients."""

from __future__ import annotations

import pytest
import trio

from webctp.client import connect_td
from webctp.config import Config
from webctp.service import ServiceInfo, run_service

from .client import Client, connect


@pytest.fixture
async def service(nursery: trio.Nursery, cfg: Config) -> ServiceInfo:
    info: ServiceInfo = await nursery.start(run_service, cfg)
    return info


async def md_login(c: Client) -> None:
    await c.send(
        {"MsgType": "ReqUserLogin", "ReqUserLogin": {"UserID": "", "Password": ""}, "RequestID": 1}
    )
    frame = await c.expect("RspUserLogin")
    assert frame["RequestID"] == 1 and frame["IsLast"] is True
    assert frame["RspInfo"] is None or frame["RspInfo"]["ErrorID"] == 0


async def instruments(port: int, exchange: str, n: int) -> list[str]:
    """The first ``n`` contracts the service lists on ``exchange`` (through webctp.client)."""
    async with connect_td(f"ws://127.0.0.1:{port}/td/") as td:
        await td.login("mdq", "pw")
        rows = await td.query("QryInstrument", {"ExchangeID": exchange})
    assert len(rows) >= n and all(r["ExchangeID"] == exchange for r in rows)
    return [r["InstrumentID"] for r in rows[:n]]


async def test_subscribe_ticks_unsubscribe(service: ServiceInfo) -> None:
    wanted = await instruments(service.ws_port, "SHFE", 2) + await instruments(
        service.ws_port, "CFFEX", 1
    )
    async with connect(service.ws_port, "/md/") as c:
        await md_login(c)
        await c.send({"MsgType": "SubscribeMarketData", "InstrumentID": wanted, "RequestID": 7})
        acks = [await c.expect("RspSubMarketData") for _ in wanted]
        assert sorted(a["SpecificInstrument"]["InstrumentID"] for a in acks) == sorted(wanted)
        assert all(a["RequestID"] == 7 for a in acks)
        seen: dict[str, dict[str, object]] = {}
        with trio.fail_after(10):
            while set(seen) != set(wanted):
                f = await c.expect("RtnDepthMarketData")
                assert "RspInfo" not in f
                tick = f["DepthMarketData"]
                assert tick["InstrumentID"] in wanted
                assert tick["LastPrice"] < 1e300 and tick["AskPrice5"] < 1e300  # DBL_MAX -> 0
                seen[tick["InstrumentID"]] = tick
        gone = wanted[0]
        await c.send({"MsgType": "UnSubscribeMarketData", "InstrumentID": [gone], "RequestID": 8})
        ack = await c.expect("RspUnSubMarketData")
        assert ack["RequestID"] == 8 and ack["SpecificInstrument"]["InstrumentID"] == gone
        # after the ack, no more ticks of that instrument (a few in-flight ones may precede it)
        later = set()
        with trio.move_on_after(1.0):
            while True:
                f = await c.expect("RtnDepthMarketData")
                later.add(f["DepthMarketData"]["InstrumentID"])
        assert gone not in later and later


@pytest.mark.parametrize(
    ("payload", "detail"),
    [
        ({"InstrumentID": "rb2601"}, "not a string"),
        ({"InstrumentID": [1, 2]}, "expected a string"),
        ({"InstrumentID": [""]}, "not a valid"),
        ({"InstrumentID": ["x" * 81]}, "at most 80"),
        ({}, "expected an array"),
    ],
)
async def test_bad_subscribe_inputs(
    service: ServiceInfo, payload: dict[str, object], detail: str
) -> None:
    async with connect(service.ws_port, "/md/") as c:
        await md_login(c)
        await c.send({"MsgType": "SubscribeMarketData", "RequestID": 9, **payload})
        f = await c.expect(lambda f: f.get("RequestID") == 9)
        assert f["RspInfo"]["ErrorID"] == -400 and detail in f["Detail"]
        assert (f["MsgType"], f["Request"]) == ("RspSubMarketData", "SubscribeMarketData")


async def test_subscribe_before_login_is_401(service: ServiceInfo) -> None:
    async with connect(service.ws_port, "/md/") as c:
        await c.send({"MsgType": "SubscribeMarketData", "InstrumentID": ["rb2601"], "RequestID": 4})
        f = await c.recv()
        assert f["RspInfo"]["ErrorID"] == -401 and f["RequestID"] == 4
        assert f["MsgType"] == "RspSubMarketData"
        await c.send({"MsgType": "ReqQryOrder", "RequestID": 5})
        f = await c.recv()
        assert f["RspInfo"]["ErrorID"] == -404 and f["MsgType"] == "RspError"


async def test_reconnect_restores_subscriptions(service: ServiceInfo) -> None:
    wanted = await instruments(service.ws_port, "DCE", 2)
    async with connect(service.ws_port, "/md/") as c:
        await md_login(c)
        await c.send({"MsgType": "SubscribeMarketData", "InstrumentID": wanted, "RequestID": 2})
        await c.expect("RtnDepthMarketData")
        await trio.to_thread.run_sync(
            lambda: service.exchange.drop_fronts(reason=8193, reconnect_after_s=0.3)
        )
        down = await c.expect("FrontDisconnected")
        assert down["FrontDisconnected"]["Reason"] == 8193
        await c.expect("FrontConnected")
        await c.expect("RspUserLogin")
        state = await c.expect(
            lambda f: (
                f.get("MsgType") == "SessionState"
                and "re-subscribed" in f["SessionState"]["Detail"]
            )
        )
        assert "2 instruments" in state["SessionState"]["Detail"]
        got: set[str] = set()
        with trio.fail_after(10):
            while got != set(wanted):
                f = await c.expect("RtnDepthMarketData")
                got.add(f["DepthMarketData"]["InstrumentID"])


async def test_slow_client_gets_latest_tick_per_instrument(service: ServiceInfo) -> None:
    wanted = await instruments(service.ws_port, "SHFE", 3)
    async with connect(service.ws_port, "/md/") as c:
        await md_login(c)
        await c.send({"MsgType": "SubscribeMarketData", "InstrumentID": wanted, "RequestID": 2})
        await c.expect("RtnDepthMarketData")
        # stop reading while the exchange bursts far more ticks than a socket buffer holds
        await trio.to_thread.run_sync(lambda: service.exchange.burst_ticks(60000, wanted))
        await trio.sleep(1.0)
        metrics = service.ctx.metrics
        assert metrics.ticks_conflated > 0
        # now read for a while: what was queued for us is bounded by the socket buffers plus
        # one tick per instrument, not the 60000 ticks of the burst
        frames = 0
        instruments_seen: set[str] = set()
        with trio.move_on_after(2.0):
            while True:
                f = await c.expect("RtnDepthMarketData")
                frames += 1
                instruments_seen.add(f["DepthMarketData"]["InstrumentID"])
        assert instruments_seen == set(wanted)
        assert frames < 30000, frames
        assert metrics.ticks_conflated > 30000
