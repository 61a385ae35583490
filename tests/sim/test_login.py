"""Login sequence: authenticate, login (new account, bad password → 3, retry), confirm (42)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from webctp.sim import Exchange, tdapi

from .sim_helpers import FakeClock, TdClient, running, settings


def test_first_login_opens_account_and_reports_session(td: Callable[..., TdClient]) -> None:
    c = td("alice")
    assert c.api.GetTradingDay() == "19800100"
    assert c.authenticate().ErrorID == 0
    rsp, info = c.login()
    assert (info.ErrorID, info.ErrorMsg) == (0, "CTP:正确")
    assert rsp.TradingDay == "20251120"
    assert rsp.BrokerID == "9999" and rsp.UserID == "alice"
    assert rsp.FrontID > 0 and rsp.SessionID != 0 and rsp.MaxOrderRef == "1"
    assert rsp.LoginTime == "10:00:00" and rsp.SHFETime == "10:00:00"
    assert rsp.SystemName
    assert c.api.GetTradingDay() == "20251120"
    acc = c.account()
    assert acc.Balance == 1_000_000.0 and acc.Available == 1_000_000.0
    assert acc.AccountID == "alice" and acc.CurrencyID == "CNY"


def test_bad_password_is_error_3_and_retry_succeeds(td: Callable[..., TdClient]) -> None:
    first = td("bob", password="secret")
    assert first.login()[1].ErrorID == 0
    other = td("bob", password="wrong")
    rsp, info = other.login()
    assert rsp is None
    assert (info.ErrorID, info.ErrorMsg) == (3, "CTP:不合法的登录")
    rsp, info = other.login(password="secret")
    assert info.ErrorID == 0 and rsp.UserID == "bob"


def test_invalid_user_id_and_broker(td: Callable[..., TdClient]) -> None:
    assert td("bad-name").login()[1].ErrorID == 3
    assert td("a.b").login()[1].ErrorID == 3
    c = td("carol")
    req = tdapi.CThostFtdcReqUserLoginField()
    req.BrokerID, req.UserID, req.Password = "1234", "carol", "pw"
    assert c.request_info("ReqUserLogin", req)[1].ErrorID == 3


def test_duplicate_login_on_one_session(td: Callable[..., TdClient]) -> None:
    c = td()
    assert c.login()[1].ErrorID == 0
    assert c.login()[1].ErrorID == 5


def test_authentication_checked_when_configured(tmp_path: Path) -> None:
    s = settings(app_id="client_app_1.0", auth_code="0000000000000000")
    with running(s) as ex:
        c = TdClient(ex, tmp_path)
        try:
            _, info = c.login()
            assert (info.ErrorID, info.ErrorMsg) == (64, "CTP:客户端未认证")
            info = c.authenticate("client_app_1.0", "bad")
            assert (info.ErrorID, info.ErrorMsg) == (63, "CTP:客户端认证失败")
            assert c.login()[1].ErrorID == 64
            assert c.authenticate("client_app_1.0", "0000000000000000").ErrorID == 0
            assert c.login()[1].ErrorID == 0
        finally:
            c.release()


def test_fixed_accounts_only(tmp_path: Path) -> None:
    s = settings(fixed_accounts={"trader1": "pw1"}, auto_open_accounts=False)
    with running(s) as ex:
        a = TdClient(ex, tmp_path, user="trader1", password="pw1")
        b = TdClient(ex, tmp_path, user="stranger", password="pw")
        try:
            assert a.login()[1].ErrorID == 0
            assert b.login()[1].ErrorID == 3
        finally:
            a.release()
            b.release()


def test_settlement_confirm_gate(td: Callable[..., TdClient], exchange: Exchange) -> None:
    c = td()
    c.authenticate()
    c.login()
    rid = c.call("ReqQrySettlementInfo", tdapi.CThostFtdcQrySettlementInfoField())
    rows = c.rec.wait_rsp("OnRspQrySettlementInfo", rid)
    assert rows == [(None, None, rid, True)]  # no statement yet: one empty callback
    assert c.query("ReqQrySettlementInfoConfirm") == [None]
    c.front_id, c.session_id = 0, 0
    ref = c.order("rb2601", "0", 1, 3100.0)
    (rsp,) = c.rec.wait_rsp("OnRspOrderInsert", c._rid)
    assert rsp[0].OrderRef == ref
    assert (rsp[1].ErrorID, rsp[1].ErrorMsg) == (42, "CTP:结算结果未确认")
    (err,) = c.rec.wait_count("OnErrRtnOrderInsert")
    assert err[1].ErrorID == 42
    confirm, info = c.confirm()
    assert info.ErrorID == 0
    assert confirm.ConfirmDate == "20251120" and confirm.ConfirmTime == "10:00:00"
    (row,) = c.query("ReqQrySettlementInfoConfirm")
    assert row.ConfirmDate == "20251120" and row.InvestorID == "alice"
    c.order("rb2601", "0", 1, 3100.0)
    c.rec.wait_count("OnRtnOrder")


def test_password_update_and_logout(td: Callable[..., TdClient]) -> None:
    c = td()
    c.login()
    upd = tdapi.CThostFtdcUserPasswordUpdateField()
    upd.BrokerID, upd.UserID, upd.OldPassword, upd.NewPassword = "9999", "alice", "nope", "new"
    assert c.request_info("ReqUserPasswordUpdate", upd)[1].ErrorID == 14
    upd.OldPassword = "pw"
    assert c.request_info("ReqUserPasswordUpdate", upd)[1].ErrorID == 0
    out = tdapi.CThostFtdcUserLogoutField()
    out.BrokerID, out.UserID = "9999", "alice"
    rsp, info = c.request_info("ReqUserLogout", out)
    assert info.ErrorID == 0 and rsp.UserID == "alice"
    assert td().login(password="pw")[1].ErrorID == 3
    assert td().login(password="new")[1].ErrorID == 0


def test_unmodelled_request_answers_on_rsp_error(td: Callable[..., TdClient]) -> None:
    c = td()
    c.login()
    rid = c.call("ReqExecOrderInsert", tdapi.CThostFtdcInputExecOrderField())
    ((info, got_rid, last),) = c.rec.wait_count("OnRspError")
    assert (info.ErrorID, got_rid, last) == (9, rid, True)
    assert info.ErrorMsg.startswith("CTP:无此权限") and "ReqExecOrderInsert" in info.ErrorMsg


def test_clock_fixture_is_a_trading_day(clock: FakeClock, exchange: Exchange) -> None:
    assert exchange.trading_day == "20251120"
    assert clock().weekday() == 3
