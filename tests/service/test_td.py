"""End-to-end over WebSocket against the simulator: login, queries, orders, errors, link loss."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from tests.conftest import replace
from webctp.client import OrderRejected, TdClient, connect_md, connect_td
from webctp.config import Config
from webctp.service import ServiceInfo, run_service

from .client import Client, connect, http_get


@pytest.fixture
async def service(nursery: trio.Nursery, cfg: Config) -> ServiceInfo:
    info: ServiceInfo = await nursery.start(run_service, cfg)
    return info


def url(service: ServiceInfo, path: str = "/td/") -> str:
    return f"ws://127.0.0.1:{service.ws_port}{path}"


async def ready(client: Client, user: str = "alice", password: str = "pw") -> dict[str, Any]:
    frame = await client.login(user, password)
    assert frame["MsgType"] == "RspUserLogin", frame
    assert frame["RspInfo"] is None or frame["RspInfo"]["ErrorID"] == 0, frame
    return frame


async def test_login_echoes_request_id(service: ServiceInfo) -> None:
    async with connect(service.ws_port) as c:
        frame = await c.login("alice", "pw", rid=41)
        assert frame["MsgType"] == "RspUserLogin"
        assert frame["RequestID"] == 41 and frame["IsLast"] is True
        login = frame["RspUserLogin"]
        assert login["UserID"] == "alice" and login["BrokerID"] == "9999"
        assert isinstance(login["FrontID"], int) and isinstance(login["SessionID"], int)
        assert "Password" not in str(frame)
        state = await c.expect("SessionState")
        assert state["SessionState"]["State"] == "ready"


async def test_bad_password_then_retry(service: ServiceInfo) -> None:
    async with connect(service.ws_port) as c:
        await ready(c, "bob", "right")
    async with connect(service.ws_port) as c:
        bad = await c.login("bob", "wrong", rid=5)
        assert bad["RequestID"] == 5 and bad["IsLast"] is True
        assert bad["RspInfo"]["ErrorID"] == 3, bad
        assert "wrong" not in str(bad)
        # the session stays usable: not logged in, then a retry with the right password works
        await c.send({"MsgType": "ReqQryTradingAccount", "RequestID": 6})
        err = await c.expect(lambda f: f.get("RequestID") == 6)
        assert err["RspInfo"]["ErrorID"] == -401
        ok = await c.login("bob", "right", rid=7)
        assert (ok["MsgType"] == "RspUserLogin" and ok["RspInfo"] is None) or (
            ok["RspInfo"]["ErrorID"] == 0
        )


async def test_query_with_several_rows(service: ServiceInfo) -> None:
    async with connect(service.ws_port) as c:
        await ready(c)
        rows = await c.query("ReqQryInstrument", {"ExchangeID": "SHFE"}, rid=9)
        assert len(rows) > 5
        assert all(r["MsgType"] == "RspQryInstrument" and r["RequestID"] == 9 for r in rows)
        assert [r["IsLast"] for r in rows] == [False] * (len(rows) - 1) + [True]
        assert {r["Instrument"]["ExchangeID"] for r in rows} == {"SHFE"}
        account = await c.query("ReqQryTradingAccount", rid=10)
        assert len(account) == 1
        assert account[0]["TradingAccount"]["Available"] == pytest.approx(1_000_000.0)


async def test_empty_query_is_one_null_row(service: ServiceInfo) -> None:
    async with connect(service.ws_port) as c:
        await ready(c, "carol")
        rows = await c.query("ReqQryTrade", rid=11)
        assert rows == [
            {
                "MsgType": "RspQryTrade",
                "RspInfo": None,
                "RequestID": 11,
                "IsLast": True,
                "Trade": None,
            }
        ]


async def best_prices(td: TdClient, instrument: str) -> dict[str, float]:
    (md,) = await td.query("QryDepthMarketData", {"InstrumentID": instrument})
    return {
        "ask": md["AskPrice1"],
        "bid": md["BidPrice1"],
        "upper": md["UpperLimitPrice"],
        "lower": md["LowerLimitPrice"],
    }


async def first_instrument(c: Client, exchange: str) -> str:
    rows = await c.query("ReqQryInstrument", {"ExchangeID": exchange}, rid=78)
    return str(rows[0]["Instrument"]["InstrumentID"])


async def test_order_round_trip_and_cancel(service: ServiceInfo) -> None:
    async with connect_td(url(service)) as td:
        await td.login("dave", "pw")
        inst = str((await td.query("QryInstrument", {"ExchangeID": "DCE"}))[0]["InstrumentID"])
        prices = await best_prices(td, inst)
        bought = await td.insert_order(inst, "buy", 1, prices["ask"], exchange_id="DCE")
        with trio.fail_after(10):
            await bought.wait_done()
        (trade,) = bought.trades
        assert trade["InstrumentID"] == inst and trade["Volume"] == 1
        assert bought.data is not None and bought.status == "0"
        assert bought.data["RequestID"] == bought.request_id  # the client's RequestID, not ours
        assert bought.data["OrderRef"].strip() != ""
        # a resting order far from the market, then cancel it
        resting = await td.insert_order(inst, "buy", 1, prices["lower"], exchange_id="DCE")
        with trio.fail_after(10):
            await resting.wait_accepted()
            while resting.status != "3":  # rests with its OrderSysID
                await resting.changed()
            assert resting.data is not None
            sys_id = resting.data["OrderSysID"]
            await resting.cancel()
        assert resting.status == "5" and resting.data["OrderSysID"] == sys_id
        positions = await td.query("QryInvestorPosition")
        assert any(p["Position"] == 1 for p in positions)


async def test_rejection_carries_ctp_error(service: ServiceInfo) -> None:
    async with connect(service.ws_port) as c:
        await ready(c, "erin")
        await c.send(
            {
                "MsgType": "ReqOrderInsert",
                "RequestID": 31,
                "InputOrder": {
                    "InstrumentID": "nosuch999",
                    "Direction": "0",
                    "CombOffsetFlag": "0",
                    "CombHedgeFlag": "1",
                    "OrderPriceType": "2",
                    "LimitPrice": 1.0,
                    "VolumeTotalOriginal": 1,
                    "TimeCondition": "3",
                    "VolumeCondition": "1",
                    "ContingentCondition": "1",
                },
            }
        )
        rsp = await c.expect("RspOrderInsert")
        assert rsp["RequestID"] == 31 and rsp["RspInfo"]["ErrorID"] == 16
        err = await c.expect("ErrRtnOrderInsert")
        assert err["RspInfo"]["ErrorID"] == 16


async def test_gateway_error_codes(service: ServiceInfo) -> None:
    async with connect(service.ws_port) as c:
        await c.send("{not json")
        f = await c.recv()
        assert f["RspInfo"]["ErrorID"] == -400 and f["MsgType"] == "RspError"
        await c.send(b"\x00binary")
        assert (await c.recv())["RspInfo"]["ErrorID"] == -400
        await c.send("[1, 2]")
        assert (await c.recv())["RspInfo"]["ErrorID"] == -400
        await c.send({"RequestID": 4})
        f = await c.recv()
        assert f["RspInfo"]["ErrorID"] == -400 and f["RequestID"] == 4
        await c.send({"MsgType": "ReqQryOrder", "RequestID": 5, "Pad": "x" * 70000})
        f = await c.recv()
        assert f["RspInfo"]["ErrorID"] == -400 and "limit" in f["Detail"]
        await c.send({"MsgType": "ReqTrade", "RequestID": 6})
        f = await c.recv()
        assert (f["RspInfo"]["ErrorID"], f["RequestID"], f["Request"]) == (-404, 6, "ReqTrade")
        assert f["MsgType"] == "RspError"
        await c.send({"MsgType": "ReqQryOrder", "RequestID": 7, "QryOrder": {}})
        f = await c.recv()
        assert (f["MsgType"], f["RspInfo"]["ErrorID"], f["RequestID"]) == ("RspQryOrder", -401, 7)
        await c.send(
            {
                "MsgType": "ReqUserLogin",
                "RequestID": 8,
                "ReqUserLogin": {"UserID": "frank", "Password": "p" * 41},
            }
        )
        f = await c.recv()
        assert f["RspInfo"]["ErrorID"] == -400 and "Password" in f["Detail"]
        assert "ppppp" not in str(f)
        await ready(c, "frank")
        await c.send(
            {"MsgType": "ReqOrderInsert", "RequestID": 9, "InputOrder": {"LimitPrice": "3500"}}
        )
        f = await c.expect(lambda f: f.get("RequestID") == 9)
        assert f["MsgType"] == "RspOrderInsert" and f["RspInfo"]["ErrorID"] == -400
        assert f["Detail"] == "InputOrder.LimitPrice: expected a number, got string"
        # the connection survived all of it
        rows = await c.query("ReqQryTradingAccount", rid=10)
        assert rows[-1]["IsLast"] is True


async def test_queue_full_gives_429(nursery: trio.Nursery, cfg: Config) -> None:
    cfg = replace(cfg, limits={"max_queued_requests": 3, "queries_per_second": 1.0})
    info: ServiceInfo = await nursery.start(run_service, cfg)
    async with connect(info.ws_port) as c:
        await ready(c)
        for rid in range(1, 11):
            await c.send({"MsgType": "ReqQryInstrument", "QryInstrument": {}, "RequestID": rid})
        refused = await c.expect(
            lambda f: f.get("RspInfo") is not None and f["RspInfo"]["ErrorID"] == -429
        )
        assert refused["MsgType"] == "RspQryInstrument" and refused["RequestID"] >= 4


async def test_query_burst_completes_in_order(service: ServiceInfo) -> None:
    async with connect(service.ws_port) as c:
        await ready(c, "gina")
        names = [
            "ReqQryTradingAccount",
            "ReqQryInvestorPosition",
            "ReqQryOrder",
            "ReqQryTrade",
            "ReqQryInvestor",
        ] * 4
        for rid, name in enumerate(names, start=1):
            await c.send({"MsgType": name, name[3:]: {}, "RequestID": rid})
        finished: list[int] = []
        with trio.fail_after(30):
            while len(finished) < len(names):
                f = await c.recv()
                assert f.get("RspInfo") is None or f["RspInfo"]["ErrorID"] == 0, f
                if f.get("IsLast") and isinstance(f.get("RequestID"), int):
                    finished.append(f["RequestID"])
        assert finished == list(range(1, len(names) + 1))


async def test_front_drop_and_recovery(service: ServiceInfo) -> None:
    async with connect(service.ws_port) as c:
        first = await ready(c, "hank")
        await trio.to_thread.run_sync(
            lambda: service.exchange.drop_fronts(reason=4097, reconnect_after_s=0.5)
        )
        down = await c.expect("FrontDisconnected")
        assert down["FrontDisconnected"]["Reason"] == 4097
        assert down["RspInfo"]["ErrorID"] == 4097
        await c.send({"MsgType": "ReqOrderInsert", "RequestID": 50, "InputOrder": {}})
        refused = await c.expect(lambda f: f.get("RequestID") == 50)
        assert refused["RspInfo"]["ErrorID"] == -503
        await c.expect("FrontConnected")
        again = await c.expect("RspUserLogin")
        assert again["RequestID"] is None
        assert again["RspUserLogin"]["SessionID"] != first["RspUserLogin"]["SessionID"]
        await c.expect(
            lambda f: f.get("MsgType") == "SessionState" and f["SessionState"]["State"] == "ready"
        )
        rows = await c.query("ReqQryTradingAccount", rid=51)
        assert rows[-1]["IsLast"] is True


async def test_password_change_and_logout(service: ServiceInfo) -> None:
    async with connect(service.ws_port) as c:
        await ready(c, "ivy", "old")
        await c.send(
            {
                "MsgType": "ReqUserPasswordUpdate",
                "RequestID": 60,
                "UserPasswordUpdate": {"OldPassword": "old", "NewPassword": "new"},
            }
        )
        rsp = await c.expect("RspUserPasswordUpdate")
        assert rsp["RequestID"] == 60 and (rsp["RspInfo"] is None or rsp["RspInfo"]["ErrorID"] == 0)
        assert "old" not in str(rsp["UserPasswordUpdate"]).lower().replace("hold", "")
        assert "NewPassword" not in rsp["UserPasswordUpdate"]
        # the re-login after a link drop uses the new password
        await trio.to_thread.run_sync(
            lambda: service.exchange.drop_fronts(reason=4097, reconnect_after_s=0.3)
        )
        await c.expect("FrontDisconnected")
        again = await c.expect("RspUserLogin")
        assert again["RspInfo"] is None or again["RspInfo"]["ErrorID"] == 0
        await c.send({"MsgType": "ReqUserLogout", "ReqUserLogout": {}, "RequestID": 61})
        bye = await c.expect("RspUserLogout")
        assert bye["RequestID"] == 61
        await c.send({"MsgType": "ReqQryOrder", "RequestID": 62})
        f = await c.expect(lambda f: f.get("RequestID") == 62)
        assert f["RspInfo"]["ErrorID"] == -401
    async with connect(service.ws_port) as c:
        assert (await c.login("ivy", "old"))["RspInfo"]["ErrorID"] == 3
        ok = await c.login("ivy", "new", rid=2)
        assert ok["MsgType"] == "RspUserLogin"


async def test_http_endpoints(service: ServiceInfo) -> None:
    status, _, body = await http_get(service.http_port, "/healthz")
    assert status == 200 and b'"status":"ok"' in body.replace(b" ", b"")
    status, _, body = await http_get(service.http_port, "/api/endpoints")
    assert status == 200
    assert f"ws://127.0.0.1:{service.ws_port}/td/".encode() in body
    status, _, body = await http_get(service.http_port, "/metrics")
    assert status == 200 and b"webctp_sessions_active" in body
    status, _, body = await http_get(service.http_port, "/")
    assert status == 200 and b"<html" in body.lower()
    status, _, _ = await http_get(service.http_port, "/web/../config.toml")
    assert status == 404


REFERENCE_QUERIES = [
    ("ReqQryInstrument", {"InstrumentID": ""}, "Instrument"),
    ("ReqQryExchange", {}, "Exchange"),
    ("ReqQryProduct", {}, "Product"),
    ("ReqQryDepthMarketData", {}, "DepthMarketData"),
    ("ReqQryInvestorPositionDetail", {}, "InvestorPositionDetail"),
    ("ReqQryExchangeMarginRate", {"HedgeFlag": "1"}, "ExchangeMarginRate"),
    ("ReqQryInstrumentOrderCommRate", {}, "InstrumentOrderCommRate"),
    ("ReqQryOptionInstrTradeCost", {}, "OptionInstrTradeCost"),
    ("ReqQryOptionInstrCommRate", {}, "OptionInstrCommRate"),
    (
        "ReqQryMaxOrderVolume",
        {"Direction": "0", "OffsetFlag": "0", "HedgeFlag": "1"},
        "QryMaxOrderVolume",
    ),
    ("ReqQryOrder", {}, "Order"),
    ("ReqQryTrade", {}, "Trade"),
    ("ReqQryInvestorPosition", {}, "InvestorPosition"),
    ("ReqQryTradingAccount", {}, "TradingAccount"),
    ("ReqQryInvestor", {}, "Investor"),
    ("ReqQryTradingCode", {}, "TradingCode"),
    ("ReqQryInstrumentMarginRate", {"HedgeFlag": "1"}, "InstrumentMarginRate"),
    ("ReqQryInstrumentCommissionRate", {}, "InstrumentCommissionRate"),
]


async def test_every_reference_query_answers(service: ServiceInfo) -> None:
    """Each reference query MsgType gets its response name, payload key and RequestID."""
    async with connect(service.ws_port) as c:
        await ready(c, "quinn")
        inst = await first_instrument(c, "SHFE")
        for rid, (name, payload, key) in enumerate(REFERENCE_QUERIES, start=200):
            body = dict(payload)
            if name in (
                "ReqQryMaxOrderVolume",
                "ReqQryInstrumentMarginRate",
                "ReqQryInstrumentCommissionRate",
                "ReqQryDepthMarketData",
            ):
                body["InstrumentID"] = inst
            await c.send({"MsgType": name, name[3:]: body, "RequestID": rid})
            rows = await c.collect("Rsp" + name[3:], rid)
            last = rows[-1]
            assert last["IsLast"] is True and last["RequestID"] == rid
            assert last["MsgType"] == "Rsp" + name[3:], last
            assert key in last, last
            assert last["RspInfo"] is None or last["RspInfo"]["ErrorID"] == 0, last


async def test_token_origin_and_paths(nursery: trio.Nursery, cfg: Config) -> None:
    from trio_websocket import ConnectionRejected, open_websocket_url

    cfg = replace(cfg, server={"token": "s3cret", "allowed_origins": ("http://good.example",)})
    info: ServiceInfo = await nursery.start(run_service, cfg)
    base = f"ws://127.0.0.1:{info.ws_port}"
    for url, status in [
        (f"{base}/td/", 401),
        (f"{base}/td/?token=wrong", 401),
        (f"{base}/nope/?token=s3cret", 404),
    ]:
        try:
            async with open_websocket_url(url):
                raise AssertionError(f"{url} was accepted")
        except ConnectionRejected as exc:
            assert exc.status_code == status
    try:
        async with open_websocket_url(
            f"{base}/td/?token=s3cret", extra_headers=[(b"Origin", b"http://evil.example")]
        ):
            raise AssertionError("bad origin accepted")
    except ConnectionRejected as exc:
        assert exc.status_code == 403
    async with open_websocket_url(
        f"{base}/md?token=s3cret", extra_headers=[(b"Origin", b"http://good.example")]
    ) as ws:
        client = Client(ws)
        await client.send({"MsgType": "ReqUserLogin", "RequestID": 3})
        login = await client.expect("RspUserLogin")
        assert login["RequestID"] == 3
    status, _, _ = await http_get(info.http_port, "/metrics")
    assert status == 401
    status, _, _ = await http_get(info.http_port, "/metrics?token=s3cret")
    assert status == 200


async def test_query_timeout_is_408(nursery: trio.Nursery, cfg: Config) -> None:
    cfg = replace(cfg, ctp={"request_timeout_s": 1.0})
    info: ServiceInfo = await nursery.start(run_service, cfg)
    async with connect(info.ws_port) as c:
        await ready(c, "rita")
        await trio.to_thread.run_sync(info.exchange.set_response_delay, 3.0)
        await c.send({"MsgType": "ReqQryTradingAccount", "RequestID": 70})
        f = await c.expect(lambda f: f.get("RequestID") == 70)
        assert (f["MsgType"], f["RspInfo"]["ErrorID"]) == ("RspQryTradingAccount", -408)
        await trio.to_thread.run_sync(info.exchange.set_response_delay, 0.0)
        # the late answer is not forwarded after the final -408; the next query works
        rows = await c.query("ReqQryInvestor", rid=71)
        assert rows[-1]["IsLast"] is True
        await trio.sleep(2.5)
        await c.send({"MsgType": "ReqQryInvestor", "RequestID": 72})
        nxt = await c.expect(lambda f: isinstance(f.get("RequestID"), int))
        assert nxt["RequestID"] == 72, nxt


async def test_front_down_login_is_503(nursery: trio.Nursery, cfg: Config) -> None:
    cfg = replace(cfg, ctp={"login_timeout_s": 1.0})
    info: ServiceInfo = await nursery.start(run_service, cfg)
    await trio.to_thread.run_sync(info.exchange.set_front_down, True)
    async with connect(info.ws_port) as c:
        f = await c.login("sam", "pw", rid=12)
        assert (f["RspInfo"]["ErrorID"], f["RequestID"]) == (-503, 12)
        assert "no answer from sim://" in f["Detail"]


async def test_internal_error_is_reported_not_silent(
    service: ServiceInfo, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from trio_websocket import ConnectionClosed

    from webctp._td import TdSession

    async def broken(self: TdSession, text: str | bytes) -> None:
        raise RuntimeError("boom")

    monkeypatch.setattr(TdSession, "handle", broken)
    async with connect(service.ws_port) as c:
        await c.send({"MsgType": "ReqQryOrder", "RequestID": 1})
        with pytest.raises(ConnectionClosed) as info:
            await c.recv()
        assert info.value.reason is not None and info.value.reason.code == 1011
    assert any("event=session_failed" in r.getMessage() for r in caplog.records)
    monkeypatch.undo()
    async with connect_td(url(service)) as td:  # the service keeps serving
        assert (await td.login("tom", "pw"))["UserID"] == "tom"


async def test_demo_is_revalidated_and_proxy_aware(service: ServiceInfo) -> None:
    status, headers, _ = await http_get(service.http_port, "/")
    assert status == 200 and "no-cache" in headers.get("cache-control", "")
    status, headers, _ = await http_get(service.http_port, "/web/app.js")
    assert status == 200 and "no-cache" in headers.get("cache-control", "")
    _, _, body = await http_get(service.http_port, "/api/endpoints", "X-Forwarded-Proto: https\r\n")
    assert f"wss://127.0.0.1:{service.ws_port}/td/".encode() in body


async def test_manual_settlement_confirm(nursery: trio.Nursery, cfg: Config) -> None:
    """With auto_confirm off the client confirms itself; an order before that is ErrorID 42."""
    cfg = replace(cfg, ctp={"auto_confirm": False})
    info: ServiceInfo = await nursery.start(run_service, cfg)
    async with connect_td(url(info)) as td:
        await td.login("uma", "pw")
        inst = str((await td.query("QryInstrument", {"ExchangeID": "DCE"}))[0]["InstrumentID"])
        price = (await best_prices(td, inst))["lower"]
        early = await td.insert_order(inst, "buy", 1, price, exchange_id="DCE")
        with pytest.raises(OrderRejected) as rejected, trio.fail_after(10):
            await early.wait_accepted()
        assert rejected.value.error_id == 42 and rejected.value.msg_type == "RspOrderInsert"
        assert rejected.value.request_id == early.request_id
        await td.query("QrySettlementInfo")  # the statement (rows up to IsLast)
        (confirmed,) = await td.query("SettlementInfoConfirm")
        assert confirmed["InvestorID"] == "uma"
        accepted = await td.insert_order(inst, "buy", 1, price, exchange_id="DCE")
        with trio.fail_after(10):
            await accepted.wait_accepted()
        assert accepted.error is None and accepted.data is not None


async def test_event_overflow_closes_loudly(nursery: trio.Nursery, cfg: Config) -> None:
    """A client that stops reading while CTP events pile up is closed with 1011 and a reason;
    events are never dropped silently."""
    from trio_websocket import ConnectionClosed

    cfg = replace(
        cfg,
        limits={"event_queue_bytes": 5000, "queries_per_second": 50.0},
        server={"send_queue": 1},
    )
    info: ServiceInfo = await nursery.start(run_service, cfg)
    async with connect(info.ws_port) as c:
        await ready(c, "vera")
        with pytest.raises(ConnectionClosed) as closed, trio.fail_after(60):
            for rid in range(1, 31):  # ~630 instrument rows each; nobody reads them
                await c.send({"MsgType": "ReqQryInstrument", "QryInstrument": {}, "RequestID": rid})
            while True:
                await c.ws.get_message()
        assert info.ctx.metrics.overflows == 1
        assert closed.value.reason is not None
        if closed.value.reason.code != 1006:  # 1006: the close frame found the socket full
            assert closed.value.reason.code == 1011
            assert "overflow" in (closed.value.reason.reason or "")


async def test_session_limit(nursery: trio.Nursery, cfg: Config) -> None:
    from trio_websocket import ConnectionRejected, open_websocket_url

    cfg = replace(cfg, server={"max_sessions": 2})
    info: ServiceInfo = await nursery.start(run_service, cfg)
    async with connect_td(url(info)) as a, connect_md(url(info, "/md/")) as b:
        await a.login("w1", "pw")
        await b.login()
        try:
            async with open_websocket_url(url(info)):
                raise AssertionError("a third session was accepted")
        except ConnectionRejected as exc:
            assert exc.status_code == 503
    with trio.fail_after(10):
        while sum(info.ctx.metrics.sessions_active.values()):
            await trio.sleep(0.05)
    async with connect_td(url(info)) as td:  # room again once they closed
        assert (await td.login("w1", "pw"))["UserID"] == "w1"
