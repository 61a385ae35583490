"""webctp.client against the service and its simulator, over loopback WebSockets."""

from __future__ import annotations

from typing import Any

import pytest
import trio
from trio_websocket import serve_websocket

from webctp.client import (
    ClientError,
    ConnectionLost,
    CtpError,
    OrderRejected,
    TdClient,
    connect_md,
    connect_td,
)
from webctp.config import Config
from webctp.service import ServiceInfo, run_service


@pytest.fixture
async def service(nursery: trio.Nursery, cfg: Config) -> ServiceInfo:
    info: ServiceInfo = await nursery.start(run_service, cfg)
    return info


def url(service: ServiceInfo, path: str) -> str:
    return f"ws://127.0.0.1:{service.ws_port}{path}"


async def instrument(td: TdClient, exchange: str = "SHFE") -> dict[str, Any]:
    rows = await td.query("QryInstrument", {"ExchangeID": exchange})
    assert rows and all(r["ExchangeID"] == exchange for r in rows)
    return rows[0]


async def test_login_queries_and_typed_errors(service: ServiceInfo) -> None:
    async with connect_td(url(service, "/td/")) as td:
        with pytest.raises(CtpError) as not_logged_in:
            await td.query("QryTradingAccount")
        assert not_logged_in.value.error_id == -401
        login = await td.login("cara", "pw")
        assert login["UserID"] == "cara" and login["SessionID"] > 0
        assert td.session == login
        with trio.fail_after(10):
            assert await td.wait_state("ready") == "ready"
        (account,) = await td.query("ReqQryTradingAccount")
        assert account["Available"] == 1_000_000.0
        assert await td.query("QryOrder") == []  # empty result: null payload, no rows
        with pytest.raises(CtpError) as bad:
            await td.query("QryInstrument", {"NoSuchField": 1})
        assert bad.value.error_id == -400 and "NoSuchField" in (bad.value.detail or "")
        assert bad.value.msg_type == "RspQryInstrument"
        assert bad.value.request == "ReqQryInstrument"
        # RequestIDs are the client's: two concurrent queries get their own rows
        async with trio.open_nursery() as nursery:
            got: dict[str, int] = {}

            async def count(exchange: str) -> None:
                got[exchange] = len(await td.query("QryInstrument", {"ExchangeID": exchange}))

            nursery.start_soon(count, "SHFE")
            nursery.start_soon(count, "CFFEX")
        assert got["SHFE"] > 0 and got["CFFEX"] > 0 and got["SHFE"] != got["CFFEX"]
    async with connect_td(url(service, "/td/")) as td:
        with pytest.raises(CtpError) as wrong:
            await td.login("cara", "not the password")
        assert wrong.value.error_id == 3 and wrong.value.request_id is not None
        assert "not the password" not in str(wrong.value.frame)


async def test_order_filled_then_resting_order_cancelled(service: ServiceInfo) -> None:
    async with connect_td(url(service, "/td/")) as td:
        await td.login("dan", "pw")
        inst = await instrument(td)
        iid = inst["InstrumentID"]
        (md,) = await td.query("QryDepthMarketData", {"InstrumentID": iid})
        async with td.pushes({"RtnTrade"}) as trades:
            filled = await td.insert_order(iid, "buy", 2, md["UpperLimitPrice"])
            with trio.fail_after(10):
                await filled.wait_done()
                pushed = await trades.__anext__()
        assert filled.status == "0" and filled.volume_traded == 2 and filled.error is None
        assert filled.data is not None and filled.data["InstrumentID"] == iid
        assert pushed["Trade"] in filled.trades
        resting = await td.insert_order(iid, "buy", 1, md["LowerLimitPrice"])
        with trio.fail_after(10):
            await resting.wait_accepted()
            accepted = (resting.status, resting.done)
            await resting.cancel()
        assert accepted == ("3", False)
        assert resting.status == "5" and resting.volume_traded == 0 and resting.done
        with trio.fail_after(10):
            await resting.cancel()  # a done order: nothing to do
        closing = await td.insert_order(
            iid, "sell", 2, md["LowerLimitPrice"], offset="close_today", kind="fak"
        )
        with trio.fail_after(10):
            await closing.wait_done()
        assert closing.volume_traded == 2
        positions = await td.query("QryInvestorPosition", {"InstrumentID": iid})
        assert sum(p["Position"] for p in positions) == 0


async def test_rejected_orders_raise(service: ServiceInfo) -> None:
    async with connect_td(url(service, "/td/")) as td:
        await td.login("erin", "pw")
        unknown = await td.insert_order("zz0001", "buy", 1, 100.0, exchange_id="SHFE")
        with trio.fail_after(10), pytest.raises(OrderRejected) as info:
            await unknown.wait_done()
        assert info.value.error_id == 16 and unknown.error is info.value
        inst = await instrument(td)
        (md,) = await td.query("QryDepthMarketData", {"InstrumentID": inst["InstrumentID"]})
        below = await td.insert_order(inst["InstrumentID"], "buy", 1, md["LowerLimitPrice"] - 100)
        with trio.fail_after(10), pytest.raises(OrderRejected) as exchange:
            await below.wait_done()
        assert exchange.value.msg_type == "RtnOrder" and below.status == "5"
        bad = await td.insert_order(inst["InstrumentID"], "buy", 1, 1.0, Bogus="x")
        with trio.fail_after(10), pytest.raises(OrderRejected) as invalid:
            await bad.wait_done()
        assert invalid.value.error_id == -400 and "Bogus" in (invalid.value.detail or "")


async def subscribed_ids(service: ServiceInfo, n: int) -> list[str]:
    async with connect_td(url(service, "/td/")) as td:
        await td.login("mdq", "pw")
        rows = await td.query("QryInstrument", {"ExchangeID": "DCE"})
    return [r["InstrumentID"] for r in rows[:n]]


async def test_subscribe_ticks_and_unsubscribe(service: ServiceInfo) -> None:
    ids = await subscribed_ids(service, 2)
    async with connect_md(url(service, "/md/")) as md:
        await md.login()
        seen: set[str] = set()
        subscription = md.subscribe(ids)
        with trio.fail_after(15):
            async for tick in subscription:
                assert tick["LastPrice"] > 0
                seen.add(tick["InstrumentID"])
                if seen == set(ids):
                    break
            await subscription.aclose()
        assert md._subs == {}
        # the async-with form unsubscribes on exit
        with trio.fail_after(15):
            async with md.subscribe(ids[:1]) as ticks:
                first = await ticks.__anext__()
                assert first["InstrumentID"] == ids[0]
        assert md._subs == {}
        bars = await md.bars(ids[1], "1m", 10)
        assert bars and len(bars[-1]) == 6
        with pytest.raises(CtpError) as bad:
            await md.bars(ids[1], "7m")
        assert bad.value.error_id == -400 and "Period" in (bad.value.detail or "")
        with pytest.raises(CtpError) as empty:
            await md.subscribe([""]).start()
        assert empty.value.error_id == -400


async def test_link_loss_is_surfaced_and_session_follows_relogin(service: ServiceInfo) -> None:
    async with connect_td(url(service, "/td/")) as td:
        first = await td.login("finn", "pw")
        with trio.fail_after(10):
            await td.wait_state("ready")
        async with td.pushes({"FrontDisconnected", "FrontConnected", "SessionState"}) as events:
            await trio.to_thread.run_sync(
                lambda: service.exchange.drop_fronts(reason=4097, reconnect_after_s=0.3)
            )
            with trio.fail_after(15):
                states = []
                async for frame in events:
                    if frame["MsgType"] == "SessionState":
                        states.append(frame["SessionState"]["State"])
                        if states[-1] == "ready":
                            break
        assert "disconnected" in states and td.state == "ready"
        assert td.session["SessionID"] != first["SessionID"]
        inst = await instrument(td)
        (md,) = await td.query("QryDepthMarketData", {"InstrumentID": inst["InstrumentID"]})
        order = await td.insert_order(inst["InstrumentID"], "buy", 1, md["LowerLimitPrice"])
        with trio.fail_after(10):
            await order.wait_accepted()  # matched under the new session
        assert order.data is not None and order.data["SessionID"] == td.session["SessionID"]


async def test_connection_lost_fails_waiters(nursery: trio.Nursery) -> None:
    async def handler(request: Any) -> None:
        ws = await request.accept()
        await ws.get_message()
        await ws.aclose(code=1011, reason="boom")

    server = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, None)
    port = server.port
    async with connect_td(f"ws://127.0.0.1:{port}/td/") as td:
        with trio.fail_after(10), pytest.raises(ConnectionLost) as lost:
            await td.login("x", "y")
        assert lost.value.code == 1011 and lost.value.reason == "boom"
        with pytest.raises(ConnectionLost):
            await td.query("QryOrder")


async def test_push_listener_that_falls_behind_is_told(service: ServiceInfo) -> None:
    async with connect_td(url(service, "/td/")) as td:
        await td.login("gus", "pw")
        inst = await instrument(td)
        (md,) = await td.query("QryDepthMarketData", {"InstrumentID": inst["InstrumentID"]})
        async with td.pushes({"RtnOrder"}, buffer=2) as pushes:
            order = await td.insert_order(inst["InstrumentID"], "buy", 1, md["UpperLimitPrice"])
            with trio.fail_after(10):
                await order.wait_done()  # 3 RtnOrder: one more than the buffer holds
            got = [await pushes.__anext__(), await pushes.__anext__()]
            assert all(f["MsgType"] == "RtnOrder" for f in got)
            with pytest.raises(ClientError, match="fell behind"):
                await pushes.__anext__()


async def test_ticks_and_orders_end_with_connection_lost(service: ServiceInfo, cfg: Config) -> None:
    ids = await subscribed_ids(service, 1)
    with pytest.raises(ConnectionLost):
        async with connect_md(url(service, "/md/")) as md:
            await md.login()
            subscription = await md.subscribe(ids).start()
            await subscription.__anext__()
            await md.aclose()
            with trio.fail_after(10):
                while True:
                    await subscription.__anext__()  # what was received, then the loss
    async with connect_td(url(service, "/td/")) as td:
        await td.login("hal", "pw")
        inst = await instrument(td)
        (md_row,) = await td.query("QryDepthMarketData", {"InstrumentID": inst["InstrumentID"]})
        order = await td.insert_order(inst["InstrumentID"], "buy", 1, md_row["LowerLimitPrice"])
        with trio.fail_after(10):
            await order.wait_accepted()
        await td.aclose()
        with trio.fail_after(10), pytest.raises(ConnectionLost):
            await order.wait_done()
        with pytest.raises(ConnectionLost):
            await td.insert_order(inst["InstrumentID"], "buy", 1, md_row["LowerLimitPrice"])


async def test_token_is_sent(nursery: trio.Nursery, cfg: Config) -> None:
    from tests.conftest import replace

    info: ServiceInfo = await nursery.start(
        run_service, replace(cfg, server={"token": "s3cret&x=1"})
    )
    async with connect_td(url(info, "/td/"), token="s3cret&x=1") as td:
        assert (await td.login("ivan", "pw"))["UserID"] == "ivan"
    with pytest.raises(ConnectionLost) as refused:
        async with connect_td(url(info, "/td/"), token="wrong"):
            pass
    assert refused.value.code == 401 and refused.value.reason == "missing or wrong token"
    probe = trio.socket.socket()
    await probe.bind(("127.0.0.1", 0))
    free_port = probe.getsockname()[1]
    probe.close()  # bound, never listening, closed: nothing answers there
    with pytest.raises(ConnectionLost) as nobody:
        async with connect_td(f"ws://127.0.0.1:{free_port}/td/"):
            pass
    assert nobody.value.code is None and "cannot connect" in (nobody.value.reason or "")
