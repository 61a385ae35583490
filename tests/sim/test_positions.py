"""Positions and funds against hand-computed figures (market-facts.md §4), and the close rules.

Reference data used below (products.toml): rb SHFE multiplier 10, margin 16 %, fee 1‱ of
turnover on open/close/close-today; m DCE multiplier 10, margin 14 %, fee 1.5 CNY/lot;
MA CZCE multiplier 10, fee 2 CNY/lot, close-today 6 CNY/lot; IF CFFEX multiplier 300,
margin 15 %, fee 0.23‱, close-today 2.3‱.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from webctp.sim import Exchange

from .sim_helpers import TdClient, running, settings

RB, M, MA, IF = "rb2601", "m2601", "MA601", "IF2512"


def close_ok(c: TdClient, ref: str) -> None:
    assert c.wait_final(ref)[-1].OrderStatus == "0"


def test_open_fill_margin_fee_and_marking(exchange: Exchange, td: Callable[..., TdClient]) -> None:
    c = td().ready()
    exchange.set_market(RB, 3100)  # ask 3101
    close_ok(c, c.order(RB, "0", 2, 3101))
    # commission = 3101 × 2 lots × 10 × 0.0001 = 6.202 → 6.20
    # margin     = 3101 × 2 × 10 × 0.16          = 9,923.20
    exchange.set_market(RB, 3150)
    # position profit (long) = (3150 − 3101) × 2 × 10 = 980.00
    (p,) = c.positions(RB)
    assert (p.PosiDirection, p.PositionDate, p.Position, p.TodayPosition, p.YdPosition) == (
        "2",
        "1",
        2,
        2,
        0,
    )
    assert p.OpenVolume == 2 and p.OpenAmount == 62_020.0 and p.PositionCost == 62_020.0
    assert p.UseMargin == 9_923.20 and p.Commission == 6.20
    assert p.PositionProfit == 980.0 and p.SettlementPrice == 3150.0
    acc = c.account()
    # Balance = 1,000,000 + 980 − 6.20 = 1,000,973.80; Available = Balance − 9,923.20
    assert acc.Commission == 6.20 and acc.PositionProfit == 980.0 and acc.CurrMargin == 9_923.20
    assert acc.Balance == 1_000_973.80
    assert acc.Available == 991_050.60
    (d,) = [x for x in c.query("ReqQryInvestorPositionDetail", InstrumentID=RB) if x]
    assert (d.Direction, d.Volume, d.OpenPrice, d.OpenDate) == ("0", 2, 3101.0, "20251120")
    assert d.PositionProfitByTrade == 980.0 and d.Margin == 9_923.20


def test_working_orders_freeze_margin_and_fee(
    exchange: Exchange, td: Callable[..., TdClient]
) -> None:
    c = td().ready()
    exchange.set_market(RB, 3100)
    ref = c.order(RB, "0", 1, 3000)  # rests
    c.wait_order(ref, lambda o: o.OrderStatus == "3")
    acc = c.account()
    # frozen margin = 3000 × 10 × 0.16 = 4,800.00; frozen fee = 3000 × 10 × 0.0001 = 3.00
    assert (acc.FrozenMargin, acc.FrozenCommission) == (4_800.0, 3.0)
    assert acc.Available == 1_000_000 - 4_800 - 3
    (p,) = c.positions(RB)
    assert p.Position == 0 and p.FrozenMargin == 4_800.0
    c.cancel(ref=ref)
    c.wait_final(ref)
    acc = c.account()
    assert (acc.FrozenMargin, acc.FrozenCommission, acc.Available) == (0.0, 0.0, 1_000_000.0)


def test_insufficient_funds_is_31(exchange: Exchange, td: Callable[..., TdClient]) -> None:
    c = td().ready()
    exchange.set_market(IF, 3900)
    # one IF lot freezes 3900 × 300 × 0.15 = 175,500: six lots need more than 1,000,000
    c.order(IF, "0", 6, 3900.0)
    (rsp,) = c.rec.wait_rsp("OnRspOrderInsert", c._rid)
    assert (rsp[1].ErrorID, rsp[1].ErrorMsg) == (31, "CTP:资金不足")
    (mx,) = c.query(
        "ReqQryMaxOrderVolume", InstrumentID=IF, Direction="0", OffsetFlag="0", HedgeFlag="1"
    )
    pre = exchange.market(IF)["pre_settlement"]
    assert mx.MaxVolume == int(1_000_000 // (pre * 300 * 0.15))


def test_shfe_close_today_rules(exchange: Exchange, td: Callable[..., TdClient]) -> None:
    c = td().ready()
    exchange.set_market(RB, 3100)
    close_ok(c, c.order(RB, "0", 2, 3101))  # long 2 today
    c.order(RB, "1", 1, 3099, offset="1")  # Close = close yesterday on SHFE: none
    assert c.rec.wait_rsp("OnRspOrderInsert", c._rid)[0][1].ErrorID == 51
    c.order(RB, "1", 3, 3099, offset="3")  # CloseToday beyond today's lots (and all lots)
    (rsp,) = c.rec.wait_rsp("OnRspOrderInsert", c._rid)
    assert (rsp[1].ErrorID, rsp[1].ErrorMsg) == (50, "CTP:平今仓位不足")  # as CTP, not 30
    c.order(RB, "1", 3, 3099, offset="1")  # a plain Close beyond all lots
    (rsp,) = c.rec.wait_rsp("OnRspOrderInsert", c._rid)
    assert (rsp[1].ErrorID, rsp[1].ErrorMsg) == (30, "CTP:平仓量超过持仓量")
    exchange.set_market(RB, 3150)  # bid 3149
    close_ok(c, c.order(RB, "1", 1, 3149, offset="3"))
    (t,) = [a[0] for a in c.rec.of("OnRtnTrade") if a[0].Direction == "1"]
    assert t.OffsetFlag == "3"
    (p,) = c.positions(RB)
    # close profit = (3149 − 3101) × 1 × 10 = 480; close-today fee = 3149 × 10 × 0.0001 = 3.149
    assert p.Position == 1 and p.CloseVolume == 1 and p.CloseProfit == 480.0
    assert p.Commission == round(6.20 + 3.15, 2)
    # yesterday's position: settle, then 2 lots become history
    exchange.settle()
    c2 = td("alice").ready()
    exchange.set_market(RB, 3150)
    close_ok(c2, c2.order(RB, "0", 1, 3151))  # plus 1 today
    rows = {p.PositionDate: p for p in c2.positions(RB)}
    assert (rows["2"].Position, rows["2"].YdPosition, rows["2"].TodayPosition) == (1, 1, 0)
    assert (rows["1"].Position, rows["1"].TodayPosition) == (1, 1)
    c2.order(RB, "1", 2, 3149, offset="3")  # only 1 today
    (rsp,) = c2.rec.wait_rsp("OnRspOrderInsert", c2._rid)
    assert (rsp[1].ErrorID, rsp[1].ErrorMsg) == (50, "CTP:平今仓位不足")
    c2.order(RB, "1", 2, 3149, offset="4")  # only 1 yesterday
    (rsp,) = c2.rec.wait_rsp("OnRspOrderInsert", c2._rid)
    assert (rsp[1].ErrorID, rsp[1].ErrorMsg) == (51, "CTP:平昨仓位不足")
    close_ok(c2, c2.order(RB, "1", 1, 3149, offset="1"))  # Close takes the history lot
    rows = {p.PositionDate: p for p in c2.positions(RB)}
    assert rows["2"].Position == 0 and rows["2"].YdPosition == 1  # YdPosition stays
    assert rows["1"].Position == 1


def test_dce_close_accepts_close_for_today_lots(
    exchange: Exchange, td: Callable[..., TdClient]
) -> None:
    c = td().ready()
    exchange.set_market(M, 3000)
    close_ok(c, c.order(M, "0", 3, 3001))
    close_ok(c, c.order(M, "1", 1, 2999, offset="1"))  # plain Close works on DCE
    close_ok(c, c.order(M, "1", 1, 2999, offset="3"))  # CloseToday is converted to Close
    trades = [a[0] for a in c.rec.of("OnRtnTrade") if a[0].Direction == "1"]
    assert [t.OffsetFlag for t in trades] == ["1", "1"]
    c.order(M, "1", 2, 2999, offset="1")
    assert c.rec.wait_rsp("OnRspOrderInsert", c._rid)[0][1].ErrorID == 30
    (p,) = c.positions(M)
    # one row (PositionDate '1'); fees 1.5/lot: 3 opens + 2 closes = 7.50
    # close profit: 2 × (2999 − 3001) × 10 = −40
    assert (p.PositionDate, p.Position, p.TodayPosition) == ("1", 1, 1)
    assert p.Commission == 7.5 and p.CloseProfit == -40.0
    # margin of the remaining lot: 3001 × 10 × 0.14 = 4,201.40
    assert p.UseMargin == 4_201.40


def test_close_pending_freezes_volume(exchange: Exchange, td: Callable[..., TdClient]) -> None:
    c = td().ready()
    exchange.set_market(M, 3000)
    close_ok(c, c.order(M, "0", 2, 3001))
    ref = c.order(M, "1", 2, 3100, offset="1")  # rests above the market
    c.wait_order(ref, lambda o: o.OrderStatus == "3")
    (p,) = c.positions(M)
    assert p.ShortFrozen == 2 and p.LongFrozen == 0  # sell-to-close freezes the long row
    assert p.FrozenCommission == 3.0  # 2 lots × 1.5 at the close rate
    c.order(M, "1", 1, 3100, offset="1")
    assert c.rec.wait_rsp("OnRspOrderInsert", c._rid)[0][1].ErrorID == 30
    (mx,) = c.query(
        "ReqQryMaxOrderVolume", InstrumentID=M, Direction="1", OffsetFlag="1", HedgeFlag="1"
    )
    assert mx.MaxVolume == 0


def test_close_today_fee_by_lot_on_czce(exchange: Exchange, td: Callable[..., TdClient]) -> None:
    c = td().ready()
    exchange.set_market(MA, 2400)
    close_ok(c, c.order(MA, "0", 2, 2401))
    close_ok(c, c.order(MA, "1", 1, 2399, offset="1"))
    (p,) = c.positions(MA)
    # opens 2 × 2.00 + one today lot closed at the close-today rate 6.00 = 10.00
    assert p.Commission == 10.0


def test_cffex_money_fees_and_close_today(exchange: Exchange, td: Callable[..., TdClient]) -> None:
    c = td().ready()
    exchange.set_market(IF, 3900)  # ask 3900.2, bid 3899.8
    close_ok(c, c.order(IF, "0", 1, 3900.2))
    close_ok(c, c.order(IF, "1", 1, 3899.8, offset="1"))
    (p,) = c.positions(IF)
    # open:  3900.2 × 300 × 0.000023 = 26.91138 → 26.91
    # close (today lot): 3899.8 × 300 × 0.00023 = 269.0862 → 269.09
    # close profit: (3899.8 − 3900.2) × 300 = −120.00
    assert p.Commission == round(26.91 + 269.09, 2)
    assert p.CloseProfit == -120.0 and p.Position == 0
    acc = c.account()
    assert acc.Balance == round(1_000_000 - 120 - 296.0, 2)
    assert acc.CurrMargin == 0.0


def test_large_side_margin_shfe(exchange: Exchange, td: Callable[..., TdClient]) -> None:
    c = td().ready()
    exchange.set_market(RB, 3100)
    close_ok(c, c.order(RB, "0", 2, 3101))  # long 2 @3101: 9,923.20
    close_ok(c, c.order(RB, "1", 1, 3099))  # short 1 @3099 (open): 3099 × 10 × 0.16 = 4,958.40
    rows = {p.PosiDirection: p for p in c.positions(RB)}
    assert rows["2"].UseMargin == 9_923.20 and rows["3"].UseMargin == 4_958.40
    assert c.account().CurrMargin == 9_923.20  # only the larger side is charged


def test_floating_profit_excluded_with_algorithm_2(tmp_path: Path) -> None:
    with running(settings(available_algorithm="2")) as ex:
        c = TdClient(ex, tmp_path).ready()
        try:
            ex.set_market(RB, 3100)
            close_ok(c, c.order(RB, "0", 2, 3101))
            ex.set_market(RB, 3150)
            acc = c.account()
            # Algorithm '2' (losses only): the +980 floating profit cannot fund new positions
            # Available = 1,000,973.80 − 9,923.20 − 980 = 990,070.60
            assert acc.Balance == 1_000_973.80 and acc.Available == 990_070.60
        finally:
            c.release()
