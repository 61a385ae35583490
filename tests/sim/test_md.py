"""Market data: login, subscriptions, tick contents as CTP fills them, shared structs, bursts."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

import pytest

from webctp.sim import Exchange, mdapi

from .sim_helpers import FakeClock, MdClient, running, settings

DBL_MAX = 1.7976931348623157e308


def test_subscribe_one_response_per_instrument_and_ticks_only_subscribed(
    exchange: Exchange, md: Callable[..., MdClient]
) -> None:
    c = md()
    c.login()
    c.subscribe("rb2601", "zz9999", "m2601")
    subs = c.rec.of("OnRspSubMarketData")
    assert [(s[0].InstrumentID, s[1].ErrorID, s[3]) for s in subs] == [
        ("rb2601", 0, False),
        ("zz9999", 0, False),  # unknown: success, but it never ticks
        ("m2601", 0, True),
    ]
    exchange.wait_idle()
    assert {t.InstrumentID for t in c.ticks()} == {"rb2601", "m2601"}  # snapshots at once
    exchange.step_market()
    exchange.wait_idle()
    assert {t.InstrumentID for t in c.ticks()} == {"rb2601", "m2601"}
    assert len(c.ticks("rb2601")) == 2
    assert c.api.UnSubscribeMarketData([b"rb2601"], 1) == 0
    c.rec.wait_count("OnRspUnSubMarketData")
    exchange.step_market()
    exchange.wait_idle()
    assert len(c.ticks("rb2601")) == 2 and len(c.ticks("m2601")) == 3


def test_tick_fields_day_session(exchange: Exchange, md: Callable[..., MdClient]) -> None:
    c = md()
    c.login()
    exchange.set_market("rb2601", 3100)
    c.subscribe("rb2601")
    exchange.wait_idle()
    t = c.ticks()[-1]
    assert (t.TradingDay, t.ActionDay, t.UpdateTime, t.UpdateMillisec) == (
        "20251120",
        "20251120",
        "10:00:00",
        0,
    )
    assert t.ClosePrice == DBL_MAX and t.SettlementPrice == DBL_MAX and t.CurrDelta == DBL_MAX
    assert (t.LastPrice, t.BidPrice1, t.AskPrice1) == (3100.0, 3099.0, 3101.0)
    assert (t.BidVolume1, t.AskVolume5, t.AskPrice5) == (5, 5, 3105.0)
    assert t.LowerLimitPrice <= t.LastPrice <= t.UpperLimitPrice
    assert t.ExchangeID == ""  # empty on ordinary futures fronts
    # AveragePrice = Turnover / Volume, so it carries the multiplier (10) outside CZCE
    assert abs(t.AveragePrice - t.Turnover / t.Volume) < 1e-6
    assert 25_000 < t.AveragePrice < 40_000


def test_night_session_dates_and_millis(
    exchange: Exchange, clock: FakeClock, md: Callable[..., MdClient]
) -> None:
    c = md()
    c.login()
    c.subscribe("rb2601", "m2601", "SR601")
    clock.now = datetime(2025, 11, 20, 21, 30, 0, 600_000)  # Thursday night → Friday's day
    exchange.step_market()
    exchange.wait_idle()
    latest = {t.InstrumentID: t for t in c.ticks()}
    rb, m, sr = latest["rb2601"], latest["m2601"], latest["SR601"]
    assert (rb.TradingDay, rb.ActionDay) == ("20251121", "20251120")  # SHFE
    assert (m.TradingDay, m.ActionDay) == ("20251121", "20251121")  # DCE: trading day twice
    assert (sr.TradingDay, sr.ActionDay) == ("20251120", "20251120")  # CZCE: calendar day
    assert rb.UpdateTime == "21:30:00" and rb.UpdateMillisec == 500
    assert sr.AveragePrice < 10_000  # CZCE: no multiplier in AveragePrice


class _IdSpi(mdapi.CThostFtdcMdSpi):
    def __init__(self) -> None:
        super().__init__()
        self.ids: list[int] = []
        self.threads: set[int | None] = set()
        self.ev = threading.Event()
        self.logged = threading.Event()

    def OnFrontConnected(self) -> None:
        self.ev.set()

    def OnRspUserLogin(self, *args: Any) -> None:
        self.logged.set()

    def OnRtnDepthMarketData(self, pDepthMarketData: Any) -> None:
        self.ids.append(id(pDepthMarketData))
        self.threads.add(threading.get_ident())


def test_one_tick_struct_shared_by_all_subscribers_on_the_exchange_thread(
    exchange: Exchange, tmp_path: Any
) -> None:
    spis = [_IdSpi() for _ in range(3)]
    apis = []
    for i, spi in enumerate(spis):
        api = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(f"{tmp_path}/s{i}_")
        api.RegisterSpi(spi)
        api.RegisterFront(exchange.md_front)
        api.Init()
        assert spi.ev.wait(5)
        api.ReqUserLogin(mdapi.CThostFtdcReqUserLoginField(), 1)
        assert spi.logged.wait(5)
        if i < 2:
            assert api.SubscribeMarketData([b"rb2601"], 1) == 0
        apis.append(api)
    exchange.wait_idle()
    for spi in spis:
        spi.ids.clear()
    result = exchange.burst_ticks(200, ["rb2601"])
    assert (result.ticks, result.deliveries) == (200, 400)
    assert spis[0].ids == spis[1].ids and len(spis[0].ids) == 200  # the same objects
    assert spis[2].ids == []  # not subscribed
    assert threading.get_ident() not in spis[0].threads
    assert spis[0].threads == spis[1].threads and len(spis[0].threads) == 1
    for api in apis:
        api.Release()


def test_prepared_burst_emits_every_tick_after_building_them(
    exchange: Exchange, md: Callable[..., MdClient]
) -> None:
    c = md()
    c.login()
    c.subscribe("rb2601", "cu2601")
    exchange.wait_idle()
    before = len(c.ticks())
    result = exchange.burst_ticks(300, ["rb2601", "cu2601"], prepared=True)
    assert (result.ticks, result.deliveries) == (300, 300)
    assert 0 < result.emit_seconds <= result.seconds
    ticks = c.ticks()[before:]
    assert len(ticks) == 300
    assert [t.InstrumentID for t in ticks[:4]] == ["rb2601", "cu2601", "rb2601", "cu2601"]
    assert len({id(t) for t in ticks}) == 300  # each a market step of its own
    volumes = [t.Volume for t in ticks if t.InstrumentID == "rb2601"]
    assert volumes == sorted(volumes) and volumes[-1] > volumes[0]


def test_paced_prepared_burst_keeps_its_schedule(
    exchange: Exchange, md: Callable[..., MdClient]
) -> None:
    c = md()
    c.login()
    c.subscribe("rb2601")
    c.rec.wait_count("OnRtnDepthMarketData", 1)  # the snapshot: the subscription is in place
    exchange.wait_idle()
    stamps: list[float] = []
    c.spi.OnRtnDepthMarketData = lambda data: stamps.append(time.perf_counter())
    result = exchange.burst_ticks(50, ["rb2601"], prepared=True, rate=500.0)
    assert (result.ticks, result.deliveries) == (50, 50) and len(stamps) == 50
    # 50 ticks at 500/s: 98 ms from the first to the last (back to back would take ~1 ms);
    # a little less when the first one was late, never much less
    assert stamps[-1] - stamps[0] >= 0.09
    assert 0.09 <= result.emit_seconds < 2.0


def test_subscription_argument_rules(exchange: Exchange, md: Callable[..., MdClient]) -> None:
    c = md()
    api: Any = c.api
    with pytest.raises(TypeError, match=r"^list must contain strings$"):
        api.SubscribeMarketData(["rb2601"], 1)
    with pytest.raises(TypeError, match=r"^not a list$"):
        api.SubscribeMarketData((b"rb2601",), 1)
    with pytest.raises(TypeError):
        api.SubscribeMarketData([b"rb2601"])
    with pytest.raises(TypeError):
        api.SubscribeMarketData([bytearray(b"x")], 1)
    with pytest.raises(ValueError):
        api.SubscribeMarketData([b"rb2601"], 50)  # segfaults the real library
    assert api.SubscribeMarketData([b"rb2601"], 2) == 0  # len + 1 is tolerated


def test_market_clock_ticks_on_its_own(tmp_path: Any) -> None:
    with running(settings(tick_interval_s=0.02)) as ex:
        c = MdClient(ex, tmp_path)
        try:
            c.login()
            c.subscribe("rb2601")
            c.rec.wait_count("OnRtnDepthMarketData", 5)  # the snapshot, then clock ticks
        finally:
            c.api.Release()
