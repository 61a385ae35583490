"""Order types, callback sequences per exchange, CTP-side and exchange-side rejections, cancels.

The book is deterministic: ``set_market(id, P)`` puts the best bid one tick below P and the
best ask one tick above, five lots on each level (settings book_volume_min/max = 5).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from webctp.sim import Exchange, tdapi

from .sim_helpers import TdClient

RB = "rb2601"  # SHFE, tick 1, multiplier 10
M = "m2601"  # DCE, tick 1
SR = "SR601"  # CZCE, tick 1
IF = "IF2512"  # CFFEX, tick 0.2


def seq(orders: list[Any]) -> list[tuple[str, str, str]]:
    return [(o.OrderStatus, o.OrderSubmitStatus, o.StatusMsg) for o in orders]


def errors(c: TdClient, rid: int) -> tuple[int, int]:
    (rsp,) = c.rec.wait_rsp("OnRspOrderInsert", rid)
    errs = c.rec.wait_count("OnErrRtnOrderInsert")
    return rsp[1].ErrorID, errs[-1][1].ErrorID


def test_limit_order_rests_then_fills_when_market_trades_through(
    exchange: Exchange, td: Callable[..., TdClient]
) -> None:
    c = td().ready()
    exchange.set_market(RB, 3100)
    ref = c.order(RB, "0", 2, 3095)
    orders = c.wait_order(ref, lambda o: o.OrderStatus == "3")
    assert seq(orders) == [("a", "0", "报单已提交"), ("3", "3", "未成交")]
    assert orders[0].OrderSysID == "" and orders[1].OrderSysID == f"{1:>12}"
    assert len(orders[1].OrderSysID) == 12 and orders[1].OrderSysID.strip() == "1"
    assert orders[1].FrontID == c.front_id and orders[1].SessionID == c.session_id
    exchange.set_market(RB, 3096)  # not through 3095 yet
    exchange.set_market(RB, 3094)
    orders = c.wait_final(ref)
    assert seq(orders)[-1] == ("0", "3", "全部成交")
    assert orders[-1].VolumeTraded == 2 and orders[-1].VolumeTotal == 0
    (trade,) = c.rec.wait_count("OnRtnTrade")
    t = trade[0]
    assert (t.Price, t.Volume, t.Direction, t.OffsetFlag) == (3095.0, 2, "0", "0")
    assert t.OrderSysID == orders[-1].OrderSysID and t.ExchangeID == "SHFE"
    names = c.rec.names()
    assert names.index("OnRtnTrade") > len(names) - 2  # Rtn(all traded) → RtnTrade


def test_immediate_fill_shfe_vs_dce_sequences(
    exchange: Exchange, td: Callable[..., TdClient]
) -> None:
    c = td().ready()
    exchange.set_market(RB, 3100)
    exchange.set_market(M, 3000)
    ref = c.order(RB, "0", 3, 3101)
    shfe = c.wait_final(ref)
    assert seq(shfe) == [
        ("a", "0", "报单已提交"),
        ("a", "0", "报单已提交"),
        ("0", "0", "全部成交报单已提交"),
    ]
    assert shfe[0].OrderSysID == "" and shfe[1].OrderSysID.strip()
    ref = c.order(M, "0", 2, 3001)
    dce = c.wait_final(ref)
    # DCE acknowledges "not traded" first; CTP synthesises the all-traded return
    assert seq(dce) == [("a", "0", "报单已提交"), ("3", "3", "未成交"), ("0", "3", "全部成交")]
    trades = c.rec.wait_count("OnRtnTrade", 2)
    assert [(t[0].InstrumentID, t[0].Price, t[0].Volume) for t in trades] == [
        (RB, 3101.0, 3),
        (M, 3001.0, 2),
    ]
    # order → trade order on the wire: each trade right after its all-traded return
    events = [(n, a[0]) for n, a in c.rec.of_all() if n in ("OnRtnOrder", "OnRtnTrade")]
    kinds = [(n, getattr(o, "OrderStatus", "")) for n, o in events]
    assert kinds.index(("OnRtnTrade", "")) == kinds.index(("OnRtnOrder", "0")) + 1


def test_partial_fills_at_book_prices_then_rest_and_cancel(
    exchange: Exchange, td: Callable[..., TdClient]
) -> None:
    c = td().ready()
    exchange.set_market(RB, 3100)
    # asks: 3101 x5, 3102 x5, ...: 12 lots up to 3102 → 5 @3101, 5 @3102, 2 rest at 3102
    ref = c.order(RB, "0", 12, 3102)
    c.wait_order(ref, lambda o: o.VolumeTraded == 10)
    trades = [t[0] for t in c.rec.wait_count("OnRtnTrade", 2)]
    assert [(t.Price, t.Volume) for t in trades] == [(3101.0, 5), (3102.0, 5)]
    orders = c.orders_for(ref)
    assert [o.OrderStatus for o in orders] == ["a", "a", "1", "1"]
    assert orders[-1].StatusMsg == "部分成交" and orders[-1].VolumeTotal == 2
    c.cancel(ref=ref)
    orders = c.wait_final(ref)
    assert seq(orders[-2:]) == [("1", "1", "部分成交"), ("5", "3", "已撤单")]
    last = orders[-1]
    assert (last.VolumeTraded, last.VolumeTotal) == (10, 2)  # VolumeTotal keeps the rest
    assert last.CancelTime == "10:00:00" and orders[-2].ActiveUserID == "alice"


def test_fak_partial_shfe_cancel_return_precedes_trade(
    exchange: Exchange, td: Callable[..., TdClient]
) -> None:
    c = td().ready()
    exchange.set_market(RB, 3100)
    ref = c.order(RB, "0", 8, 3101, tc="1")  # FAK: IOC + any volume; 5 lots at 3101
    orders = c.wait_final(ref)
    assert seq(orders) == [
        ("a", "0", "报单已提交"),
        ("a", "0", "报单已提交"),
        ("5", "0", "已撤单报单已提交"),
    ]
    assert (orders[-1].VolumeTraded, orders[-1].VolumeTotal) == (5, 3)
    c.rec.wait_count("OnRtnTrade")
    names = [n for n in c.rec.names() if n in ("OnRtnOrder", "OnRtnTrade")]
    assert names == ["OnRtnOrder", "OnRtnOrder", "OnRtnOrder", "OnRtnTrade"]


def test_fak_partial_dce_trade_then_cancel(exchange: Exchange, td: Callable[..., TdClient]) -> None:
    c = td().ready()
    exchange.set_market(M, 3000)
    ref = c.order(M, "0", 8, 3001, tc="1")
    orders = c.wait_final(ref)
    assert seq(orders) == [
        ("a", "0", "报单已提交"),
        ("3", "3", "未成交"),
        ("1", "3", "部分成交"),
        ("5", "3", "已撤单"),
    ]
    names = [n for n in c.rec.names() if n in ("OnRtnOrder", "OnRtnTrade")]
    assert names == ["OnRtnOrder", "OnRtnOrder", "OnRtnOrder", "OnRtnTrade", "OnRtnOrder"]


def test_fak_min_volume_and_fok(exchange: Exchange, td: Callable[..., TdClient]) -> None:
    c = td().ready()
    exchange.set_market(RB, 3100)
    # FOK (IOC + CV): 8 lots but only 5 at <= 3101 → nothing trades
    ref = c.order(RB, "0", 8, 3101, tc="1", vc="3")
    orders = c.wait_final(ref)
    assert seq(orders)[-1] == ("5", "0", "已撤单报单已提交") and orders[-1].VolumeTraded == 0
    # FOK with enough book through 3102 → fills completely over two levels
    ref = c.order(RB, "0", 8, 3102, tc="1", vc="3")
    assert c.wait_final(ref)[-1].OrderStatus == "0"
    # FAK with MinVolume 6 > 5 available at <= 3101 (book refilled by set_market)
    exchange.set_market(RB, 3100)
    ref = c.order(RB, "0", 8, 3101, tc="1", vc="2", min_volume=6)
    assert c.wait_final(ref)[-1].VolumeTraded == 0
    ref = c.order(RB, "0", 8, 3101, tc="1", vc="2", min_volume=5)
    assert c.wait_final(ref)[-1].VolumeTraded == 5


def test_market_orders(exchange: Exchange, td: Callable[..., TdClient]) -> None:
    c = td().ready()
    exchange.set_market(RB, 3100)
    exchange.set_market(M, 3000)
    c.order(RB, "0", 1, 0.0, price_type="1", tc="1")
    assert errors(c, c._rid) == (15, 15)  # SHFE takes no market orders (SimNow answers 15)
    ref = c.order(M, "0", 7, 0.0, price_type="1", tc="1")
    orders = c.wait_final(ref)
    assert orders[-1].OrderStatus == "0"
    trades = c.rec.wait_count("OnRtnTrade", 2)
    assert [(t[0].Price, t[0].Volume) for t in trades] == [(3001.0, 5), (3002.0, 2)]


def test_price_limits_rejected_by_exchange(exchange: Exchange, td: Callable[..., TdClient]) -> None:
    c = td().ready()
    mk = exchange.market(RB)
    ref = c.order(RB, "0", 1, mk["upper"] + 1)
    orders = c.wait_final(ref)
    assert seq(orders) == [
        ("a", "0", "报单已提交"),
        ("5", "4", "已撤单报单被拒绝SHFE:价格超出涨停板"),
    ]
    ref = c.order(RB, "1", 1, mk["lower"] - 1)
    assert c.wait_final(ref)[-1].StatusMsg == "已撤单报单被拒绝SHFE:价格跌破跌停板"
    assert c.rec.of("OnErrRtnOrderInsert") == []  # only the order return carries the reason
    acc = c.account()
    assert acc.FrozenMargin == 0 and acc.Available == 1_000_000.0  # nothing stays frozen


def test_ctp_side_field_errors(exchange: Exchange, td: Callable[..., TdClient]) -> None:
    c = td().ready()
    exchange.set_market(RB, 3100)
    c.order(RB, "0", 1, 3100.5)  # off the tick grid
    assert errors(c, c._rid) == (15, 15)
    c.order("zz9999", "0", 1, 100.0)
    rid = c._rid
    (rsp,) = c.rec.wait_rsp("OnRspOrderInsert", rid)
    assert (rsp[1].ErrorID, rsp[1].ErrorMsg) == (16, "CTP:找不到合约")
    c.order(RB, "0", 0, 3100.0)  # zero volume
    assert errors(c, c._rid)[0] == 15
    c.order(RB, "0", 1, 3100.0, tc="4")  # GTD: CTP takes only IOC and GFD
    assert errors(c, c._rid)[0] == 15


def test_czce_truncates_off_tick_price(exchange: Exchange, td: Callable[..., TdClient]) -> None:
    c = td().ready()
    exchange.set_market(SR, 5800)
    ref = c.order(SR, "0", 1, 5790.7)
    orders = c.wait_order(ref, lambda o: o.OrderStatus == "3")
    assert orders[-1].LimitPrice == 5790.0


def test_order_ref_rules(exchange: Exchange, td: Callable[..., TdClient]) -> None:
    c = td().ready()
    exchange.set_market(RB, 3100)
    c.order(RB, "0", 1, 3090, ref="5")
    c.wait_order("5", lambda o: o.OrderStatus == "3")
    c.order(RB, "0", 1, 3090, ref="5")
    (rsp,) = c.rec.wait_rsp("OnRspOrderInsert", c._rid)
    assert (rsp[1].ErrorID, rsp[1].ErrorMsg) == (22, "CTP:报单错误：不允许重复报单")
    c.order(RB, "0", 1, 3090, ref="3")
    assert c.rec.wait_rsp("OnRspOrderInsert", c._rid)[0][1].ErrorID == 22
    c.order(RB, "0", 1, 3090, ref="")  # empty: the front assigns the next number
    orders = c.wait_order("6", lambda o: o.OrderStatus == "3")
    assert orders[-1].OrderRef == "6"


def test_cancel_by_both_keys_and_errors(exchange: Exchange, td: Callable[..., TdClient]) -> None:
    c = td().ready()
    exchange.set_market(RB, 3100)
    a = c.order(RB, "0", 1, 3090)
    b = c.order(RB, "0", 1, 3091)
    sysid_b = c.wait_order(b, lambda o: o.OrderStatus == "3")[-1].OrderSysID
    c.cancel(ref=a)
    assert c.wait_final(a)[-1].OrderStatus == "5"
    c.cancel(sysid=sysid_b, exchange_id="SHFE")  # with its leading spaces, as received
    assert c.wait_final(b)[-1].StatusMsg == "已撤单"
    rid = c.cancel(ref=a)  # already cancelled
    (rsp,) = c.rec.wait_rsp("OnRspOrderAction", rid)
    assert (rsp[1].ErrorID, rsp[1].ErrorMsg) == (26, "CTP:报单已全成交或已撤销，不能再撤")
    (err,) = c.rec.wait_count("OnErrRtnOrderAction")
    assert err[1].ErrorID == 26 and err[0].OrderRef == a
    rid = c.cancel(sysid="      999999", exchange_id="SHFE")
    (rsp,) = c.rec.wait_rsp("OnRspOrderAction", rid)
    assert (rsp[1].ErrorID, rsp[1].ErrorMsg) == (25, "CTP:撤单找不到相应报单")


def test_cancel_races(exchange: Exchange, td: Callable[..., TdClient]) -> None:
    c = td().ready()
    exchange.set_market(RB, 3100)
    # cancel sent before any response has arrived (by the session triple): it wins
    ref = c.order(RB, "0", 1, 3090)
    c.cancel(ref=ref)
    assert [o.OrderStatus for o in c.wait_final(ref)][-1] == "5"
    # an order that fills at once, cancelled right behind it: too late → 26
    ref = c.order(RB, "0", 1, 3101)
    rid = c.cancel(ref=ref)
    (rsp,) = c.rec.wait_rsp("OnRspOrderAction", rid)
    assert rsp[1].ErrorID == 26
    assert c.wait_final(ref)[-1].OrderStatus == "0"
    # cancelling an order reference that was never sent → 25
    rid = c.cancel(ref="99")
    assert c.rec.wait_rsp("OnRspOrderAction", rid)[0][1].ErrorID == 25
    # another investor cannot cancel it
    other = td("mallory").ready()
    resting = c.order(RB, "0", 1, 3090)
    sysid = c.wait_order(resting, lambda o: o.OrderStatus == "3")[-1].OrderSysID
    rid = other.cancel(sysid=sysid, exchange_id="SHFE")
    assert other.rec.wait_rsp("OnRspOrderAction", rid)[0][1].ErrorID == 25


def test_private_flow_reaches_every_session_and_restart_replays(
    exchange: Exchange, td: Callable[..., TdClient]
) -> None:
    first = td().ready()
    second = td().ready()
    exchange.set_market(RB, 3100)
    ref = first.order(RB, "0", 1, 3101)
    first.wait_final(ref)
    second.wait_final(ref)  # the other session of the investor sees it too
    second.rec.wait_count("OnRtnTrade")
    assert second.rec.of("OnRspOrderInsert") == []
    restart = td(resume=tdapi.THOST_TERT_RESTART)
    restart.authenticate()
    restart.login()
    restart.rec.wait_count("OnRtnTrade")
    replayed = [a[0].OrderStatus for a in restart.rec.of("OnRtnOrder")]
    assert replayed == ["a", "a", "0"]
    quick = td(resume=tdapi.THOST_TERT_QUICK)
    quick.authenticate()
    quick.login()
    exchange.wait_idle()
    assert quick.rec.of("OnRtnOrder") == [] and quick.rec.of("OnRtnTrade") == []


def test_order_and_trade_queries_honour_filters(
    exchange: Exchange, td: Callable[..., TdClient]
) -> None:
    c = td().ready()
    exchange.set_market(RB, 3100)
    exchange.set_market(M, 3000)
    c.wait_final(c.order(RB, "0", 1, 3101))
    c.wait_final(c.order(M, "0", 1, 3001))
    c.rec.wait_count("OnRtnTrade", 2)
    assert len(c.query("ReqQryOrder")) == 2
    (o,) = c.query("ReqQryOrder", InstrumentID=M)
    assert o.ExchangeID == "DCE" and o.InsertDate == "20251120"
    (t,) = c.query("ReqQryTrade", ExchangeID="SHFE")
    assert t.InstrumentID == RB and t.TradeDate == "20251120"
    assert c.query("ReqQryTrade", InstrumentID="cu2601") == [None]
