"""SQLite persistence across a restart, and the daily settlement roll."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

from webctp.sim import Exchange, tdapi

from .sim_helpers import FakeClock, TdClient, running, settings

RB, M = "rb2601", "m2601"


def test_accounts_orders_trades_positions_survive_a_restart(tmp_path: Path) -> None:
    s = settings(tmp_path)
    with running(s) as ex:
        c = TdClient(ex, tmp_path / "f1", password="pw1").ready()
        ex.set_market(RB, 3100)
        c.wait_final(c.order(RB, "0", 2, 3101))
        resting = c.order(RB, "0", 1, 3000)
        c.wait_order(resting, lambda o: o.OrderStatus == "3")
        before = c.account()
        c.release()
    assert (tmp_path / "sim.sqlite3").exists()
    with running(s) as ex:
        wrong = TdClient(ex, tmp_path / "f2", password="other")
        assert wrong.login()[1].ErrorID == 3  # the stored password still rules
        wrong.release()
        c = TdClient(ex, tmp_path / "f3", password="pw1").ready()
        try:
            (p,) = c.positions(RB)
            assert (p.Position, p.OpenVolume, p.Commission) == (2, 2, 6.20)
            orders = c.query("ReqQryOrder")
            assert [o.OrderStatus for o in orders] == ["0", "3"]
            (t,) = c.query("ReqQryTrade")
            assert (t.Price, t.Volume) == (3101.0, 2)
            acc = c.account()
            assert acc.FrozenMargin == before.FrozenMargin == 4_800.0
            assert acc.Commission == before.Commission
            # the resting order still works after the restart
            ex.set_market(RB, 2999)
            sysid = orders[1].OrderSysID
            c.rec.wait(
                lambda: any(
                    o[0].OrderSysID == sysid and o[0].OrderStatus == "0"
                    for o in c.rec.of("OnRtnOrder")
                )
            )
            # RESTART after a restart replays the day's orders (latest state) and trades
            r = TdClient(ex, tmp_path / "f4", password="pw1", resume=tdapi.THOST_TERT_RESTART)
            r.authenticate()
            r.login()
            r.rec.wait_count("OnRtnTrade", 2)
            assert sorted(o[0].OrderStatus for o in r.rec.of("OnRtnOrder"))[:2] == ["0", "0"]
            r.release()
        finally:
            c.release()


def test_settlement_rolls_positions_and_writes_statement(
    exchange: Exchange, td: Callable[..., TdClient]
) -> None:
    c = td().ready()
    exchange.set_market(RB, 3100)
    exchange.set_market(M, 3000)
    c.wait_final(c.order(RB, "0", 2, 3101))
    c.wait_final(c.order(M, "1", 1, 2999))
    exchange.set_market(RB, 3120)
    before = c.account()
    assert exchange.settle() == "20251121"
    assert exchange.trading_day == "20251121"
    c2 = td()
    c2.authenticate()
    rsp, _ = c2.login()
    assert rsp.TradingDay == "20251121"
    rows = c2.query("ReqQrySettlementInfo")
    text = "".join(r.Content for r in rows)
    assert rows[0].TradingDay == "20251120"
    assert "资金状况" in text and "成交记录" in text and RB in text
    assert all(len(r.Content.encode()) <= 500 for r in rows)
    # confirmation does not carry over to the new day
    c2.front_id, c2.session_id = rsp.FrontID, rsp.SessionID
    c2.order(RB, "1", 1, 3119, offset="1")
    assert c2.rec.wait_rsp("OnRspOrderInsert", c2._rid)[0][1].ErrorID == 42
    c2.confirm()
    acc = c2.account()
    # settlement prices are the day's volume-weighted average (SHFE, DCE: whole day), not the
    # last price. rb traded 1 @3100, 2 @3101, 1 @3120 → 12422 / 4 = 3105.5 → 3106 (half up);
    # m traded 1 @3000, 1 @2999 → 2999.5 → 3000. Marked there instead of the last prices
    # (3120; 2999): long 2 rb lose (3120 - 3106) × 2 × 10 = 280, short 1 m loses 1 × 10 = 10
    assert acc.PreBalance == round(before.Balance - 290, 2)
    assert acc.Commission == 0 and acc.CloseProfit == 0
    # the new day marks to the last prices again (3120, 2999): the 290 come back as P&L
    assert acc.Balance == round(acc.PreBalance + 290, 2)
    rows_by = {(p.InstrumentID, p.PositionDate): p for p in c2.positions()}
    shfe = rows_by[(RB, "2")]  # SHFE lots are now history
    assert (shfe.Position, shfe.YdPosition, shfe.TodayPosition) == (2, 2, 0)
    assert shfe.PreSettlementPrice == 3106.0 and shfe.PositionCost == 3106 * 2 * 10
    assert rows_by[(M, "1")].PreSettlementPrice == 3000.0
    dce = rows_by[(M, "1")]
    assert (dce.PosiDirection, dce.Position, dce.YdPosition) == ("3", 1, 1)
    # a plain Close now takes yesterday's SHFE lots
    exchange.set_market(RB, 3120)
    c2.wait_final(c2.order(RB, "1", 2, 3119, offset="1"))


def test_day_rolls_automatically_with_the_clock(
    exchange: Exchange, clock: FakeClock, td: Callable[..., TdClient]
) -> None:
    c = td().ready()
    exchange.set_market(RB, 3100)
    c.wait_final(c.order(RB, "0", 1, 3101))
    clock.now = datetime(2025, 11, 21, 21, 5)  # Friday night: Monday's trading day
    exchange.step_market()
    assert exchange.trading_day == "20251124"
    (p,) = [p for p in c.positions(RB)]
    assert p.YdPosition == 1 and p.PositionDate == "2"


def test_restart_after_days_settles_on_start(tmp_path: Path) -> None:
    s = settings(tmp_path)
    clock = FakeClock()
    with running(s, clock) as ex:
        c = TdClient(ex, tmp_path / "a").ready()
        ex.set_market(RB, 3100)
        c.wait_final(c.order(RB, "0", 1, 3101))
        c.release()
    clock.now = datetime(2025, 11, 25, 10, 0)
    with running(s, clock) as ex:
        assert ex.trading_day == "20251125"
        c = TdClient(ex, tmp_path / "b").ready()
        try:
            (p,) = c.positions(RB)
            assert p.YdPosition == 1 and p.Position == 1
            assert c.query("ReqQryOrder") == [None]  # orders live only for their day
            info = c.query("ReqQrySettlementInfo", TradingDay="20251120")
            assert info[0] is not None and info[0].TradingDay == "20251120"
        finally:
            c.release()


def test_qry_settlement_info_without_statement_is_one_empty_callback(
    exchange: Exchange, td: Callable[..., TdClient]
) -> None:
    c = td().ready()
    rid = c.call("ReqQrySettlementInfo", tdapi.CThostFtdcQrySettlementInfoField())
    assert c.rec.wait_rsp("OnRspQrySettlementInfo", rid) == [(None, None, rid, True)]
