"""Fault injection: dropped fronts, a front that is down, no exchange at all, slow responses."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from webctp.sim import Exchange, get_exchange, tdapi

from .sim_helpers import TdClient, running, settings


def test_drop_fronts_then_reconnect_with_new_session(
    exchange: Exchange, td: Callable[..., TdClient]
) -> None:
    c = td().ready()
    old_session = c.session_id
    exchange.drop_fronts(reason=4097, reconnect_after_s=0.3)
    (disc,) = c.rec.wait_count("OnFrontDisconnected")
    assert disc == (4097,)
    q = tdapi.CThostFtdcQryTradingAccountField()
    assert c.api.ReqQryTradingAccount(q, 1) == -1  # link down: nothing is sent
    c.rec.wait_count("OnFrontConnected", 1)  # OnFrontConnected again (recorder was cleared)
    rsp, info = c.login()  # a new session must log in again
    assert info.ErrorID == 0 and rsp.SessionID != old_session
    assert c.account().Available == 1_000_000.0


def test_front_down_means_no_callbacks_and_minus_1(
    exchange: Exchange, td: Callable[..., TdClient], tmp_path: Path
) -> None:
    c = td().ready()
    exchange.set_front_down(True)
    c.rec.wait_count("OnFrontDisconnected")
    late = TdClient(exchange, tmp_path / "late", user="late", connect=False)
    late.api.Init()
    req = tdapi.CThostFtdcReqUserLoginField()
    assert late.api.ReqUserLogin(req, 1) == -1
    assert c.api.ReqUserLogin(req, 1) == -1
    exchange.wait_idle()
    assert late.rec.names() == []
    exchange.set_front_down(False)
    late.rec.wait_count("OnFrontConnected")
    c.rec.wait_count("OnFrontConnected")
    late.release()


def test_no_exchange_behaves_like_refused_connection(tmp_path: Path) -> None:
    s = settings(name="later")
    c = None
    ex = Exchange(s)
    try:
        client = TdClient(ex, tmp_path, connect=False)  # td_front is sim://later; not started
        c = client
        client.api.Init()
        assert client.api.ReqUserLogin(tdapi.CThostFtdcReqUserLoginField(), 1) == -1
        assert client.rec.names() == []
        ex.start()
        client.rec.wait_count("OnFrontConnected")
        assert client.login()[1].ErrorID == 0
    finally:
        if c is not None:
            c.release()
        ex.close()


def test_response_delay(exchange: Exchange, td: Callable[..., TdClient]) -> None:
    c = td()
    exchange.set_response_delay(0.25)
    t0 = time.monotonic()
    assert c.login()[1].ErrorID == 0
    assert time.monotonic() - t0 >= 0.24


def test_exchange_close_disconnects_and_apis_wait_for_a_new_one(tmp_path: Path) -> None:
    with running(settings(name="again")) as first:
        c = TdClient(first, tmp_path)
    c.rec.wait_count("OnFrontDisconnected")
    assert c.api.ReqUserLogin(tdapi.CThostFtdcReqUserLoginField(), 1) == -1
    with running(settings(name="again")):
        c.rec.wait_count("OnFrontConnected", 2)
        c.release()


def test_close_is_idempotent_and_frees_the_name(tmp_path: Path) -> None:
    ex = Exchange(settings(name="twice", db_path=str(tmp_path / "x.sqlite3"))).start()
    assert get_exchange("twice") is ex
    ex.close()
    ex.close()
    assert get_exchange("twice") is None
    with pytest.raises(RuntimeError):
        ex.start()
