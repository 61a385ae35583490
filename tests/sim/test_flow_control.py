"""CTP flow control: one query in flight (-2), queries per second (90), orders per second (116)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from webctp.sim import Exchange, tdapi

from .sim_helpers import TdClient, running, settings


def test_second_query_in_flight_returns_minus_2(
    exchange: Exchange, td: Callable[..., TdClient]
) -> None:
    c = td().ready()
    exchange.set_response_delay(0.2)
    q = tdapi.CThostFtdcQryTradingAccountField()
    assert c.api.ReqQryTradingAccount(q, 1) == 0
    assert c.api.ReqQryInvestorPosition(tdapi.CThostFtdcQryInvestorPositionField(), 2) == -2
    c.rec.wait_rsp("OnRspQryTradingAccount", 1)
    exchange.set_response_delay(0)
    assert c.api.ReqQryTradingAccount(q, 3) == 0  # the previous answer arrived: allowed again
    c.rec.wait_rsp("OnRspQryTradingAccount", 3)


def test_non_query_requests_are_not_limited_by_queries_in_flight(
    exchange: Exchange, td: Callable[..., TdClient]
) -> None:
    c = td().ready()
    exchange.set_response_delay(0.2)
    assert c.api.ReqQryTradingAccount(tdapi.CThostFtdcQryTradingAccountField(), 1) == 0
    req = tdapi.CThostFtdcSettlementInfoConfirmField()
    req.BrokerID, req.InvestorID = "9999", "alice"
    assert c.api.ReqSettlementInfoConfirm(req, 2) == 0
    c.rec.wait_rsp("OnRspSettlementInfoConfirm", 2)


def test_query_rate_limit_is_error_90(tmp_path: Path) -> None:
    with running(settings(query_per_second=2)) as ex:
        c = TdClient(ex, tmp_path).ready()
        try:
            q = tdapi.CThostFtdcQryTradingAccountField()
            c.request("ReqQryTradingAccount", q)
            c.request("ReqQryTradingAccount", q)
            rid = c.call("ReqQryTradingAccount", q)  # third within one second
            (err,) = c.rec.wait_count("OnRspError")
            info, got_rid, last = err
            assert (info.ErrorID, info.ErrorMsg) == (90, "CTP：查询未就绪，请稍后重试")
            assert (got_rid, last) == (rid, True)
            assert c.rec.of("OnRspQryTradingAccount")[-1][2] != rid
            # the limited query is over: the next call is accepted (not -2)
            assert c.api.ReqQryTradingAccount(q, 99) == 0
        finally:
            c.release()


def test_order_rate_limit_is_error_116(tmp_path: Path) -> None:
    with running(settings(orders_per_second=6)) as ex:
        c = TdClient(ex, tmp_path).ready()
        try:
            ex.set_market("rb2601", 3100)
            refs = [c.order("rb2601", "0", 1, 3000) for _ in range(6)]
            c.wait_order(refs[-1], lambda o: o.OrderStatus == "3")
            c.order("rb2601", "0", 1, 3000)
            (rsp,) = c.rec.wait_rsp("OnRspOrderInsert", c._rid)
            assert (rsp[1].ErrorID, rsp[1].ErrorMsg) == (116, "CTP:下单频率限制")
            (err,) = c.rec.wait_count("OnErrRtnOrderInsert")
            assert err[1].ErrorID == 116
            rid = c.cancel(ref=refs[0])  # cancels count in the same budget
            assert c.rec.wait_rsp("OnRspOrderAction", rid)[0][1].ErrorID == 116
        finally:
            c.release()
