"""Test helpers: a recording Spi, thin td/md clients, a settable clock.

Every wait is on a condition with a timeout, never a bare sleep: callbacks arrive on the
exchange's dispatcher thread.
"""

from __future__ import annotations

import itertools
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

from webctp.protocol.catalogue import load
from webctp.sim import Exchange, SimSettings, mdapi, tdapi

_instances = itertools.count()
TIMEOUT = 5.0
THURSDAY_10AM = datetime(2025, 11, 20, 10, 0, 0)
"""A trading day (2025-11-20, Thursday) inside the commodity day session."""


class FakeClock:
    """A wall clock tests can set and move."""

    def __init__(self, now: datetime = THURSDAY_10AM) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


Event = tuple[str, tuple[Any, ...]]


def _copy(arg: Any) -> Any:
    return arg._sim_copy() if hasattr(arg, "_sim_copy") else arg


class Recorder:
    """Records every callback (struct arguments copied, as a real consumer must)."""

    def __init__(self) -> None:
        self.events: list[Event] = []
        self.cv = threading.Condition()
        self.threads: set[str] = set()

    def add(self, name: str, args: tuple[Any, ...]) -> None:
        with self.cv:
            self.events.append((name, tuple(_copy(a) for a in args)))
            self.threads.add(threading.current_thread().name)
            self.cv.notify_all()

    def names(self) -> list[str]:
        with self.cv:
            return [n for n, _ in self.events]

    def of(self, name: str) -> list[tuple[Any, ...]]:
        with self.cv:
            return [a for n, a in self.events if n == name]

    def wait(self, pred: Callable[[], bool], timeout: float = TIMEOUT) -> None:
        with self.cv:
            ok = self.cv.wait_for(pred, timeout)
        assert ok, f"timed out; last events: {[n for n, _ in self.events[-12:]]}"

    def wait_count(self, name: str, n: int = 1, timeout: float = TIMEOUT) -> list[tuple[Any, ...]]:
        self.wait(lambda: sum(1 for e, _ in self.events if e == name) >= n, timeout)
        return self.of(name)

    def wait_rsp(self, method: str, rid: int, timeout: float = TIMEOUT) -> list[tuple[Any, ...]]:
        """All callbacks of ``method`` for request ``rid``, once the IsLast one arrived."""

        def done() -> bool:
            return any(n == method and a[-2] == rid and a[-1] is True for n, a in self.events)

        self.wait(done, timeout)
        return [a for n, a in self.of_all() if n == method and a[-2] == rid]

    def of_all(self) -> list[Event]:
        with self.cv:
            return list(self.events)

    def clear(self) -> None:
        with self.cv:
            self.events.clear()


def _recording_class(base: type[Any], api: str) -> type[Any]:
    def make(name: str) -> Callable[..., None]:
        def method(self: Any, *args: Any) -> None:
            self.rec.add(name, args)

        method.__name__ = name
        return method

    ns: dict[str, Any] = {}
    for name in load().api("td" if api == "td" else "md").callbacks:
        ns[name] = make(name)

    def __init__(self: Any, rec: Recorder) -> None:
        base.__init__(self)
        self.rec = rec

    ns["__init__"] = __init__
    return type(f"Recording{base.__name__}", (base,), ns)


RecordingTraderSpi = _recording_class(tdapi.CThostFtdcTraderSpi, "td")
RecordingMdSpi = _recording_class(mdapi.CThostFtdcMdSpi, "md")


class TdClient:
    """A trader API + recording Spi with helpers for the common requests."""

    def __init__(
        self,
        exchange: Exchange,
        flow_dir: Path,
        user: str = "alice",
        password: str = "pw",
        resume: int = tdapi.THOST_TERT_QUICK,
        connect: bool = True,
    ) -> None:
        self.exchange = exchange
        self.user = user
        self.password = password
        self.rec = Recorder()
        self.spi = RecordingTraderSpi(self.rec)
        flow_dir.mkdir(parents=True, exist_ok=True)
        # one flow-path prefix per API object, as CTP requires (RESUME keys on it)
        prefix = f"{flow_dir}/{user}_{next(_instances)}_td_"
        self.api = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi(prefix)
        self.api.RegisterSpi(self.spi)
        self.api.SubscribePrivateTopic(resume)
        self.api.SubscribePublicTopic(tdapi.THOST_TERT_QUICK)
        self.api.RegisterFront(exchange.td_front)
        self._rid = 0
        self.order_ref = 0
        if connect:
            self.api.Init()
            self.rec.wait_count("OnFrontConnected")

    def rid(self) -> int:
        self._rid += 1
        return self._rid

    def call(self, method: str, struct: Any) -> int:
        rid = self.rid()
        ret = getattr(self.api, method)(struct, rid)
        assert ret == 0, f"{method} returned {ret}"
        return rid

    def request(self, method: str, struct: Any, callback: str | None = None) -> list[Any]:
        """Send and wait for every response row; returns the rows (None for empty)."""
        rid = self.call(method, struct)
        rows = self.rec.wait_rsp(callback or "OnRsp" + method[3:], rid)
        return [r[0] for r in rows]

    def request_info(self, method: str, struct: Any) -> tuple[Any, Any]:
        rid = self.call(method, struct)
        (row,) = self.rec.wait_rsp("OnRsp" + method[3:], rid)
        return row[0], row[1]

    def authenticate(self, app_id: str = "app", auth_code: str = "code") -> Any:
        req = tdapi.CThostFtdcReqAuthenticateField()
        req.BrokerID, req.UserID, req.AppID, req.AuthCode = "9999", self.user, app_id, auth_code
        return self.request_info("ReqAuthenticate", req)[1]

    def login(self, password: str | None = None) -> tuple[Any, Any]:
        req = tdapi.CThostFtdcReqUserLoginField()
        req.BrokerID, req.UserID = "9999", self.user
        req.Password = self.password if password is None else password
        return self.request_info("ReqUserLogin", req)

    def confirm(self) -> Any:
        req = tdapi.CThostFtdcSettlementInfoConfirmField()
        req.BrokerID, req.InvestorID = "9999", self.user
        return self.request_info("ReqSettlementInfoConfirm", req)

    def ready(self) -> TdClient:
        """Authenticate, log in and confirm the statement: ready to trade."""
        self.authenticate()
        rsp, info = self.login()
        assert info.ErrorID == 0, info.ErrorMsg
        self.front_id, self.session_id = rsp.FrontID, rsp.SessionID
        self.confirm()
        self.rec.clear()
        return self

    def query(self, method: str, **fields: Any) -> list[Any]:
        struct = getattr(tdapi, f"CThostFtdc{method[3:]}Field")()
        for k, v in fields.items():
            setattr(struct, k, v)
        return self.request(method, struct)

    def account(self) -> Any:
        (acc,) = self.query("ReqQryTradingAccount")
        return acc

    def positions(self, instrument: str = "") -> list[Any]:
        return [p for p in self.query("ReqQryInvestorPosition", InstrumentID=instrument) if p]

    def order(
        self,
        instrument: str,
        direction: str,
        volume: int,
        price: float = 0.0,
        offset: str = "0",
        price_type: str = "2",
        tc: str = "3",
        vc: str = "1",
        min_volume: int = 1,
        ref: str | None = None,
    ) -> str:
        """Send ReqOrderInsert; returns the OrderRef used."""
        o = tdapi.CThostFtdcInputOrderField()
        o.BrokerID = "9999"
        o.InvestorID = self.user
        o.UserID = self.user
        o.InstrumentID = instrument
        if ref is None:
            self.order_ref += 1
            ref = str(self.order_ref)
        o.OrderRef = ref
        o.Direction = direction
        o.CombOffsetFlag = offset
        o.CombHedgeFlag = "1"
        o.OrderPriceType = price_type
        o.LimitPrice = price
        o.VolumeTotalOriginal = volume
        o.TimeCondition = tc
        o.VolumeCondition = vc
        o.MinVolume = min_volume
        o.ContingentCondition = "1"
        o.ForceCloseReason = "0"
        o.IsAutoSuspend = 0
        self.call("ReqOrderInsert", o)
        return ref

    def cancel(
        self, ref: str = "", sysid: str = "", exchange_id: str = "", instrument: str = ""
    ) -> int:
        a = tdapi.CThostFtdcInputOrderActionField()
        a.BrokerID, a.InvestorID, a.UserID = "9999", self.user, self.user
        a.ActionFlag = "0"
        a.InstrumentID = instrument
        if ref:
            a.OrderRef, a.FrontID, a.SessionID = ref, self.front_id, self.session_id
        if sysid:
            a.OrderSysID, a.ExchangeID = sysid, exchange_id
        return self.call("ReqOrderAction", a)

    def orders_for(self, ref: str) -> list[Any]:
        return [a[0] for a in self.rec.of("OnRtnOrder") if a[0].OrderRef == ref]

    def wait_order(self, ref: str, pred: Callable[[Any], bool]) -> list[Any]:
        self.rec.wait(lambda: any(pred(o) for o in self.orders_for(ref)))
        return self.orders_for(ref)

    def wait_final(self, ref: str) -> list[Any]:
        return self.wait_order(ref, lambda o: o.OrderStatus in "05" and o.OrderStatus != "")

    def release(self) -> None:
        self.api.Release()


class MdClient:
    def __init__(self, exchange: Exchange, flow_dir: Path, name: str = "md") -> None:
        self.rec = Recorder()
        self.spi = RecordingMdSpi(self.rec)
        flow_dir.mkdir(parents=True, exist_ok=True)
        self.api = mdapi.CThostFtdcMdApi.CreateFtdcMdApi(f"{flow_dir}/{name}_")
        self.api.RegisterSpi(self.spi)
        self.api.RegisterFront(exchange.md_front)
        self.api.Init()
        self.rec.wait_count("OnFrontConnected")

    def login(self) -> None:
        req = mdapi.CThostFtdcReqUserLoginField()
        req.BrokerID, req.UserID = "9999", "anyone"
        assert self.api.ReqUserLogin(req, 1) == 0
        self.rec.wait_count("OnRspUserLogin")

    def subscribe(self, *ids: str) -> None:
        n = len(self.rec.of("OnRspSubMarketData"))
        assert self.api.SubscribeMarketData([i.encode() for i in ids], len(ids)) == 0
        self.rec.wait_count("OnRspSubMarketData", n + len(ids))

    def ticks(self, instrument: str | None = None) -> list[Any]:
        return [
            a[0]
            for a in self.rec.of("OnRtnDepthMarketData")
            if instrument is None or a[0].InstrumentID == instrument
        ]


def settings(tmp_path: Path | None = None, **kw: Any) -> SimSettings:
    """Quiet, deterministic defaults for tests: no market clock, a fixed seed and book."""
    base: dict[str, Any] = {
        "db_path": ":memory:" if tmp_path is None else str(tmp_path / "sim.sqlite3"),
        "tick_interval_s": 0.0,
        "seed": 7,
        "products": ("rb", "cu", "au", "m", "i", "SR", "MA", "IF", "lc"),
        "book_volume_min": 5,
        "book_volume_max": 5,
        "name": "test",
        "query_per_second": 1000,
        "orders_per_second": 1000,
    }
    base.update(kw)
    return SimSettings(**base)


@contextmanager
def running(s: SimSettings, clock: FakeClock | None = None) -> Iterator[Exchange]:
    exchange = Exchange(s, clock=clock or FakeClock()).start()
    try:
        yield exchange
    finally:
        exchange.close()


def front(ex: Exchange, product: str, rank: int = 1) -> str:
    """The instrument of ``product`` at listing rank ``rank`` (1 = second nearest month)."""
    ids = [
        i for i in ex.instrument_ids() if i[: len(product)] == product and i[len(product)].isdigit()
    ]
    return ids[rank]
