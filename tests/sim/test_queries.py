"""Reference-data and investor queries: CTP structures, filters, product overrides, sessions."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from webctp.sim import Exchange, tdapi
from webctp.sim._settings import FeeOverride, ProductOverride

from .sim_helpers import FakeClock, TdClient, running, settings


def test_instrument_product_exchange_queries(
    exchange: Exchange, td: Callable[..., TdClient]
) -> None:
    c = td().ready()
    (rb,) = c.query("ReqQryInstrument", InstrumentID="rb2601")
    assert (rb.ExchangeID, rb.ProductID, rb.VolumeMultiple, rb.PriceTick) == ("SHFE", "rb", 10, 1.0)
    assert (rb.DeliveryYear, rb.DeliveryMonth, rb.ExpireDate) == (2026, 1, "20260115")
    assert (rb.PositionDateType, rb.MaxMarginSideAlgorithm, rb.ProductClass) == ("1", "1", "1")
    assert rb.LongMarginRatio == 0.16 and rb.MaxLimitOrderVolume == 500
    assert rb.InstrumentName == "螺纹钢2601"
    (sr,) = c.query("ReqQryInstrument", InstrumentID="SR601")
    assert sr.ExchangeID == "CZCE" and sr.PositionDateType == "2"
    dce = [i.InstrumentID for i in c.query("ReqQryInstrument", ExchangeID="DCE")]
    assert dce and all(i[0] in "mi" for i in dce)
    assert c.query("ReqQryInstrument", InstrumentID="rb2001") == [None]
    (prod,) = c.query("ReqQryProduct", ProductID="IF")
    assert (prod.ExchangeID, prod.VolumeMultiple, prod.PriceTick) == ("CFFEX", 300, 0.2)
    exchanges = {e.ExchangeID for e in c.query("ReqQryExchange")}
    assert exchanges == {"SHFE", "INE", "DCE", "CZCE", "CFFEX", "GFEX"}
    (gfex,) = c.query("ReqQryExchange", ExchangeID="GFEX")
    assert gfex.ExchangeName == "广州期货交易所"


def test_rates_investor_trading_code_depth(exchange: Exchange, td: Callable[..., TdClient]) -> None:
    c = td().ready()
    (mr,) = c.query("ReqQryInstrumentMarginRate", InstrumentID="m2601", HedgeFlag="1")
    assert (mr.LongMarginRatioByMoney, mr.ShortMarginRatioByMoney, mr.InvestorID) == (
        0.14,
        0.14,
        "alice",
    )
    (cr,) = c.query("ReqQryInstrumentCommissionRate", InstrumentID="m2601")
    assert cr.InstrumentID == "m" and (cr.OpenRatioByVolume, cr.OpenRatioByMoney) == (1.5, 0.0)
    (cr,) = c.query("ReqQryInstrumentCommissionRate", InstrumentID="IF2512")
    assert (cr.OpenRatioByMoney, cr.CloseTodayRatioByMoney) == (0.000023, 0.00023)
    (inv,) = c.query("ReqQryInvestor")
    assert inv.InvestorID == "alice" and inv.BrokerID == "9999"
    codes = c.query("ReqQryTradingCode")
    assert len(codes) == 6 and len({x.ClientID for x in codes}) == 1
    exchange.set_market("i2601", 720)
    (md,) = c.query("ReqQryDepthMarketData", InstrumentID="i2601")
    assert (md.LastPrice, md.BidPrice1, md.AskPrice1, md.ExchangeID) == (720.0, 719.5, 720.5, "DCE")
    (params,) = c.query("ReqQryBrokerTradingParams")
    assert params.Algorithm == "1"


def test_queries_need_login(exchange: Exchange, td: Callable[..., TdClient]) -> None:
    c = td()
    rid = c.call("ReqQryInstrument", tdapi.CThostFtdcQryInstrumentField())
    ((info, got, last),) = c.rec.wait_count("OnRspError")
    assert (info.ErrorID, got, last) == (6, rid, True)


def test_product_overrides(tmp_path: Path) -> None:
    fee = FeeOverride(by="volume", open=1.0, close=1.0, close_today=0.0)
    s = settings(
        products=("rb",),
        product_overrides={"rb": ProductOverride(price=4000.0, margin=0.1, fee=fee)},
    )
    with running(s) as ex:
        c = TdClient(ex, tmp_path).ready()
        try:
            assert ex.market("rb2512")["pre_settlement"] == 4000.0
            ex.set_market("rb2601", 4000)
            c.wait_final(c.order("rb2601", "0", 1, 4001))
            (p,) = c.positions()
            # margin 4001 × 10 × 0.10 = 4,001.00; fee 1 CNY per lot
            assert (p.UseMargin, p.Commission) == (4_001.0, 1.0)
        finally:
            c.release()


def test_enforced_sessions_reject_orders_outside_trading_hours(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2025, 11, 20, 12, 0))  # lunch break
    with running(settings(enforce_sessions=True), clock) as ex:
        c = TdClient(ex, tmp_path).ready()
        try:
            ref = c.order("rb2601", "0", 1, 3100)
            (last,) = c.wait_final(ref)[-1:]
            assert (last.OrderStatus, last.OrderSubmitStatus) == ("5", "4")
            assert last.StatusMsg == "已撤单报单被拒绝SHFE:当前状态禁止此项操作"
            clock.now = datetime(2025, 11, 20, 13, 45)
            ref = c.order("rb2601", "0", 1, 3000)
            assert c.wait_order(ref, lambda o: o.OrderStatus == "3")
            ref = c.order("IF2512", "0", 1, 3800)  # index futures: 13:00-15:00, open
            assert c.wait_order(ref, lambda o: o.OrderStatus == "3")
        finally:
            c.release()


def test_resume_continues_after_the_last_delivered_message(
    exchange: Exchange, td: Callable[..., TdClient]
) -> None:
    other = td().ready()
    c = td(resume=tdapi.THOST_TERT_RESUME).ready()
    exchange.set_market("rb2601", 3100)
    other.wait_order(other.order("rb2601", "0", 1, 3000), lambda o: o.OrderStatus == "3")
    c.rec.wait_count("OnRtnOrder", 2)
    exchange.drop_fronts(reconnect_after_s=0.05)
    c.rec.wait_count("OnFrontConnected")
    other2 = td().ready()  # another session places an order while c is logged out
    other2.wait_order(other2.order("rb2601", "0", 1, 3001), lambda o: o.OrderStatus == "3")
    c.rec.clear()
    c.login()
    c.rec.wait_count("OnRtnOrder", 2)
    exchange.wait_idle()
    assert [o[0].LimitPrice for o in c.rec.of("OnRtnOrder")] == [3001.0, 3001.0]
