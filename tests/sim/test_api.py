"""API objects: the binding's factories and argument rules, threads, Release, misuse errors."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from webctp.sim import Exchange, get_exchange, mdapi, tdapi

from .sim_helpers import TdClient


def test_factories_and_version(tmp_path: Path) -> None:
    td = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(f"{tmp_path}/x_", True)
    md = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(f"{tmp_path}/y_", False, False, True)
    assert tdapi.CThostFtdcTraderApi.GetApiVersion().startswith("v6.7.11")
    assert td.GetTradingDay() == md.GetTradingDay() == "19800100"
    # before Init (no front): requests are not sent
    assert td.ReqUserLogin(tdapi.CThostFtdcReqUserLoginField(), 1) == -1
    assert md.SubscribeMarketData([b"rb2601"], 1) == -1
    td.Release()
    md.Release()


def test_missing_flow_directory_raises(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="CFlow"):
        tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(f"{tmp_path}/missing/")
    (tmp_path / "file").write_text("x")
    with pytest.raises(RuntimeError):
        mdapi.CThostFtdcMdApi.CreateFtdcMdApi(f"{tmp_path}/file/sub/")


def test_spi_without_super_init_is_rejected(tmp_path: Path) -> None:
    class Bad(tdapi.CThostFtdcTraderSpi):
        def __init__(self) -> None:
            pass

    api = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(f"{tmp_path}/")
    with pytest.raises(TypeError, match="RegisterSpi', argument 2 of type 'CThostFtdcTraderSpi"):
        api.RegisterSpi(Bad())
    with pytest.raises(TypeError):
        api.RegisterSpi(mdapi.CThostFtdcMdSpi())  # the other API's Spi
    api.RegisterSpi(None)
    api.Release()


def test_misuse_raises_instead_of_crashing(exchange: Exchange, td: Callable[..., TdClient]) -> None:
    c = td()
    api: Any = c.api
    with pytest.raises(TypeError, match="argument 2 of type 'CThostFtdcReqUserLoginField"):
        api.ReqUserLogin(None, 1)
    with pytest.raises(TypeError):
        api.ReqUserLogin(tdapi.CThostFtdcInputOrderField(), 1)
    with pytest.raises(TypeError, match="argument 3 of type 'int'"):
        api.ReqUserLogin(tdapi.CThostFtdcReqUserLoginField(), 1.0)
    with pytest.raises(TypeError):
        api.RegisterFront(b"sim://test")
    with pytest.raises(ValueError):
        api.RegisterFront("")
    with pytest.raises(TypeError):
        api.SubscribePrivateTopic("0")
    with pytest.raises(RuntimeError, match="twice"):
        api.Init()
    assert api.ReqUserLogin(mdapi.CThostFtdcReqUserLoginField(), 2) == 0  # shared struct types


def test_get_exchange_and_front_info(exchange: Exchange, td: Callable[..., TdClient]) -> None:
    assert get_exchange("test") is exchange
    assert get_exchange("nope") is None
    c = td()
    info = tdapi.CThostFtdcFrontInfoField()
    c.api.GetFrontInfo(info)
    assert info.FrontAddr == "sim://test" and info.QryFreq == 0
    c.login()
    c.api.GetFrontInfo(info)
    assert info.QryFreq == exchange.settings.query_per_second


def test_callbacks_run_on_one_exchange_thread(
    exchange: Exchange, td: Callable[..., TdClient]
) -> None:
    a, b = td("a1"), td("b1")
    a.login()
    b.login()
    assert a.rec.threads == b.rec.threads
    (name,) = a.rec.threads
    assert name != threading.current_thread().name and name.startswith("sim-test")


def test_exception_in_callback_is_printed_and_later_callbacks_arrive(
    exchange: Exchange, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    got = threading.Event()

    class Spi(tdapi.CThostFtdcTraderSpi):
        def OnFrontConnected(self) -> None:
            raise SystemExit("boom")  # the real library aborts the process on this one

        def OnRspUserLogin(self, *args: Any) -> None:
            got.set()

    spi = Spi()
    api = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(f"{tmp_path}/")
    api.RegisterSpi(spi)
    api.RegisterFront(exchange.td_front)
    api.Init()
    exchange.wait_idle()
    api.ReqUserLogin(tdapi.CThostFtdcReqUserLoginField(), 1)
    assert got.wait(5)
    assert "SystemExit: boom" in capsys.readouterr().err
    api.Release()


def test_release_inside_a_callback_raises(exchange: Exchange, tmp_path: Path) -> None:
    caught: list[BaseException] = []
    done = threading.Event()

    class Spi(tdapi.CThostFtdcTraderSpi):
        def OnFrontConnected(self) -> None:
            try:
                api.Release()
            except RuntimeError as exc:
                caught.append(exc)
            done.set()

    spi = Spi()
    api = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(f"{tmp_path}/")
    api.RegisterSpi(spi)
    api.RegisterFront(exchange.td_front)
    api.Init()
    assert done.wait(5)
    assert caught and "inside a callback" in str(caught[0])
    api.Release()


def test_release_waits_for_the_running_callback_and_silences_the_api(
    exchange: Exchange, tmp_path: Path
) -> None:
    entered, leave = threading.Event(), threading.Event()
    calls: list[str] = []

    class Spi(tdapi.CThostFtdcTraderSpi):
        def OnFrontConnected(self) -> None:
            entered.set()
            leave.wait(5)
            calls.append("connected-done")

        def OnRspUserLogin(self, *args: Any) -> None:
            calls.append("login")

    spi = Spi()
    api = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(f"{tmp_path}/")
    api.RegisterSpi(spi)
    api.RegisterFront(exchange.td_front)
    api.Init()
    assert entered.wait(5)
    api.ReqUserLogin(tdapi.CThostFtdcReqUserLoginField(), 1)  # its answer is queued behind
    released = threading.Event()

    def release() -> None:
        api.Release()
        released.set()

    t = threading.Thread(target=release)
    t.start()
    assert not released.wait(0.1)  # blocked on the running callback
    leave.set()
    t.join(5)
    assert released.is_set() and calls == ["connected-done"]
    exchange.wait_idle()
    assert calls == ["connected-done"]  # nothing after Release returned
    assert api.ReqUserLogin(tdapi.CThostFtdcReqUserLoginField(), 2) == -1


def test_thousand_apis_no_thread_or_session_leak(exchange: Exchange, tmp_path: Path) -> None:
    threads_before = threading.active_count()
    spi = tdapi.CThostFtdcTraderSpi()
    apis = []
    t0 = time.monotonic()
    for i in range(1000):
        api = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(f"{tmp_path}/{i}_")
        api.RegisterSpi(spi)
        api.RegisterFront(exchange.td_front)
        api.Init()
        apis.append(api)
    exchange.wait_idle()
    assert threading.active_count() == threads_before  # no thread per API
    assert len(exchange._engine.conns) == 1000
    for api in apis:
        api.Release()
    assert len(exchange._engine.conns) == 0
    assert threading.active_count() == threads_before
    assert time.monotonic() - t0 < 20
