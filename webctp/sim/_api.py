"""``CThostFtdcTraderApi`` / ``CThostFtdcMdApi``: the binding's API objects, on the simulator.

Same factories, methods, arguments and return codes as openctp-ctp 6.7.11 (ctp-domain.md
§17, §23, §24), with one deliberate difference: misuse that crashes the real library (None
struct, Init twice, Release inside a callback, a missing flow directory, a subscription count
beyond the list) raises a Python error here instead.

``Req*`` never blocks and never calls back on the caller's thread: it validates the arguments,
copies the struct (CTP serialises it at call time), hands it to the exchange's engine and
returns 0; -1 while no front is connected (or, for the trader API, while the exchange cannot
write its database); -2 while a previous query is still answering.
"""

from __future__ import annotations

import os
import threading
import time
from typing import TYPE_CHECKING, Any

from . import _registry
from ._reqs import MdRequests, TraderRequests
from ._spi import CThostFtdcMdSpi, CThostFtdcTraderSpi
from ._struct_base import INT32_MAX, INT32_MIN, Struct
from ._structs import CThostFtdcFrontInfoField

if TYPE_CHECKING:
    from ._engine import Engine
    from ._exchange import Exchange
    from ._session import Conn

API_VERSION = "v6.7.11_20250617 16:22:00.10369"
"""What ``GetApiVersion()`` returns (the binding version the catalogue was taken from)."""

QUERY_PREFIX = "ReqQry"


def _check_flow_path(path: Any) -> str:
    if not isinstance(path, str):
        raise TypeError("in method 'CreateFtdcApi', argument 1 of type 'char const *'")
    directory = os.path.dirname(path) or "."
    if not os.path.isdir(directory) or not os.access(directory, os.W_OK):
        # the real library prints "can not open CFlow file" and then segfaults
        raise RuntimeError(
            f"can not open CFlow file: flow directory {directory!r} does not exist or is not "
            "writable (create it first; the real library crashes here)"
        )
    return path


class ApiCore:
    """Behaviour shared by the trader and market-data API objects."""

    _sim_kind = "td"
    _sim_spi_class: type[Any] = CThostFtdcTraderSpi
    _sim_class_name = "CThostFtdcTraderApi"

    def __init__(self, flow_path: str) -> None:
        self._sim_flow_path = flow_path
        self._sim_spi: Any = None
        self._sim_released = False
        self._sim_inited = False
        self._sim_fronts: list[str] = []
        self._sim_front_names: list[str] = []
        self._sim_conn: Conn | None = None
        self._sim_exchange: Exchange | None = None
        self._sim_engine: Engine | None = None
        self._sim_lock = threading.Lock()
        self._sim_query_busy = False
        self._sim_private_resume = 0  # THOST_TERT_RESTART, SFIT's documented default
        self._sim_public_resume = 0
        self._sim_trading_day = "19800100"
        self._sim_logged_in = False
        self._sim_done = threading.Event()

    # ---------------------------------------------------------------- the binding's methods

    @staticmethod
    def GetApiVersion() -> str:
        """获取API的版本信息"""
        return API_VERSION

    def RegisterSpi(self, pSpi: Any, /) -> None:
        """注册回调接口 (None unregisters: nothing is called back any more)."""
        if pSpi is not None and (
            not isinstance(pSpi, self._sim_spi_class) or not pSpi._sim_initialised
        ):
            raise TypeError(
                f"in method '{self._sim_class_name}_RegisterSpi', argument 2 of type "
                f"'{self._sim_spi_class.__name__} *'"
            )
        self._sim_spi = pSpi

    def RegisterFront(self, pszFrontAddress: str, /) -> None:
        """注册前置机网络地址 (``sim://<name>`` reaches the exchange registered as name)."""
        if not isinstance(pszFrontAddress, str):
            raise TypeError(
                f"in method '{self._sim_class_name}_RegisterFront', argument 2 of type 'char *'"
            )
        if not pszFrontAddress:
            raise ValueError("empty front address (the real library crashes on this)")
        self._sim_fronts.append(pszFrontAddress)

    def RegisterNameServer(self, pszNsAddress: str, /) -> None:
        """注册名字服务器网络地址 (accepted; the simulator has no name server)."""
        if not isinstance(pszNsAddress, str):
            raise TypeError(
                f"in method '{self._sim_class_name}_RegisterNameServer', argument 2 of type "
                "'char *'"
            )

    def RegisterFensUserInfo(self, pFensUserInfo: Any, /) -> None:
        """注册名字服务器用户信息 (accepted and ignored)."""

    def Init(self) -> None:
        """初始化: connect to the registered front (asynchronously; OnFrontConnected follows)."""
        if self._sim_released:
            raise RuntimeError("Init() after Release()")
        if self._sim_inited:
            raise RuntimeError("Init() called twice (the real library hangs or crashes later)")
        self._sim_inited = True
        names = [n for n in (_registry.front_name(a) for a in self._sim_fronts) if n]
        self._sim_front_names = names
        if not names:
            return  # no reachable front: like a refused connection, nothing ever happens
        exchange = _registry.attach(self, names)
        if exchange is not None:
            exchange.attach(self)

    def Release(self) -> None:
        """删除接口对象本身: after it returns no callback runs or will run for this API."""
        if self._sim_released:
            return
        exchange = self._sim_exchange
        if exchange is not None and exchange.dispatcher.is_callback_thread():
            raise RuntimeError(
                "Release() inside a callback (the real library crashes): release from "
                "another thread"
            )
        _registry.detach(self)
        if exchange is not None:
            exchange.detach(self)
        self._sim_released = True
        self._sim_conn = None
        self._sim_exchange = None
        self._sim_engine = None
        self._sim_done.set()

    def Join(self) -> int:
        """等待接口线程结束运行: returns once the API is released."""
        self._sim_done.wait()
        return 0

    def GetTradingDay(self) -> str:
        """获取当前交易日 ('19800100' before login, as the binding)."""
        return self._sim_trading_day

    def GetFrontInfo(self, pFrontInfo: CThostFtdcFrontInfoField, /) -> None:
        """获取已连接的前置的信息"""
        if not isinstance(pFrontInfo, CThostFtdcFrontInfoField):
            raise TypeError(
                f"in method '{self._sim_class_name}_GetFrontInfo', argument 2 of type "
                "'CThostFtdcFrontInfoField *'"
            )
        conn = self._sim_conn
        exchange = self._sim_exchange
        if conn is None or exchange is None:
            return
        object.__setattr__(pFrontInfo, "FrontAddr", exchange.td_front)
        if self._sim_logged_in:
            object.__setattr__(pFrontInfo, "QryFreq", exchange.settings.query_per_second)
            object.__setattr__(pFrontInfo, "FTDPkgFreq", 0)

    # ---------------------------------------------------------------- plumbing

    def _sim_query_done(self) -> None:
        self._sim_query_busy = False

    def _sim_check_request_id(self, name: str, request_id: Any) -> int:
        if not isinstance(request_id, int):
            raise TypeError(f"in method '{self._sim_class_name}_{name}', argument 3 of type 'int'")
        if not INT32_MIN <= request_id <= INT32_MAX:
            raise OverflowError(
                f"in method '{self._sim_class_name}_{name}', argument 3 of type 'int'"
            )
        return int(request_id)

    def _sim_request(self, name: str, struct_cls: type[Any], struct: Any, request_id: Any) -> int:
        if not isinstance(struct, Struct) or type(struct).__name__ != struct_cls.__name__:
            # a None struct segfaults the real library; a wrong type is its TypeError
            raise TypeError(
                f"in method '{self._sim_class_name}_{name}', argument 2 of type "
                f"'{struct_cls.__name__} *'"
            )
        rid = self._sim_check_request_id(name, request_id)
        conn = self._sim_conn
        engine = self._sim_engine
        if conn is None or engine is None or not conn.alive:
            return -1
        if self._sim_kind == "td" and not engine.accepting:
            return -1  # the exchange cannot store anything just now (Engine._flush)
        if name.startswith(QUERY_PREFIX) and self._sim_kind == "td":
            with self._sim_lock:
                if self._sim_query_busy:
                    return -2
                self._sim_query_busy = True
        engine.post("req", conn, name, struct._sim_copy(), rid, time.monotonic())
        return 0

    def _sim_post(self, name: str, payload: Any) -> int:
        conn = self._sim_conn
        engine = self._sim_engine
        if conn is None or engine is None or not conn.alive:
            return -1
        engine.post("req", conn, name, payload, 0, time.monotonic())
        return 0


class CThostFtdcTraderApi(ApiCore, TraderRequests):
    """The trading API (mirror of ``openctp_ctp.tdapi.CThostFtdcTraderApi``)."""

    _sim_kind = "td"
    _sim_spi_class = CThostFtdcTraderSpi
    _sim_class_name = "CThostFtdcTraderApi"

    @staticmethod
    def CreateFtdcTraderApi(
        pszFlowPath: str = "", bIsProductionMode: bool = True
    ) -> CThostFtdcTraderApi:
        """创建TraderApi (the flow directory must exist, as for the real library)."""
        return CThostFtdcTraderApi(_check_flow_path(pszFlowPath))

    def SubscribePrivateTopic(self, nResumeType: int, /) -> None:
        """订阅私有流 (RESTART replays the day's returns at login; QUICK sends only new ones)."""
        if not isinstance(nResumeType, int):
            raise TypeError(
                "in method 'CThostFtdcTraderApi_SubscribePrivateTopic', argument 2 of type "
                "'THOST_TE_RESUME_TYPE'"
            )
        self._sim_private_resume = int(nResumeType)

    def SubscribePublicTopic(self, nResumeType: int, /) -> None:
        """订阅公共流 (accepted; the simulator publishes nothing on the public flow)."""
        if not isinstance(nResumeType, int):
            raise TypeError(
                "in method 'CThostFtdcTraderApi_SubscribePublicTopic', argument 2 of type "
                "'THOST_TE_RESUME_TYPE'"
            )
        self._sim_public_resume = int(nResumeType)

    def RegisterUserSystemInfo(self, pUserSystemInfo: Any, /) -> int:
        """注册用户终端信息 (relay mode; -1 when the system information is empty)."""
        return 0 if getattr(pUserSystemInfo, "ClientSystemInfoLen", 0) > 0 else -1

    def SubmitUserSystemInfo(self, pUserSystemInfo: Any, /) -> int:
        """上报用户终端信息 (relay mode; -1 when the system information is empty)."""
        return 0 if getattr(pUserSystemInfo, "ClientSystemInfoLen", 0) > 0 else -1

    def RegisterWechatUserSystemInfo(self, pUserSystemInfo: Any, /) -> int:
        """注册用户终端信息 (WeChat relay mode)."""
        return 0 if getattr(pUserSystemInfo, "ClientSystemInfoLen", 0) > 0 else -1

    def SubmitWechatUserSystemInfo(self, pUserSystemInfo: Any, /) -> int:
        """上报用户终端信息 (WeChat relay mode)."""
        return 0 if getattr(pUserSystemInfo, "ClientSystemInfoLen", 0) > 0 else -1


def _instrument_list(method: str, ids: Any, count: Any) -> list[str]:
    """The binding's argument rules for the subscription calls (ctp-domain.md §23)."""
    if not isinstance(ids, list):
        raise TypeError("not a list")
    if not all(type(i) is bytes for i in ids):
        raise TypeError("list must contain strings")
    if not isinstance(count, int):
        raise TypeError(f"in method 'CThostFtdcMdApi_{method}', argument 3 of type 'int'")
    if count > len(ids) + 1 or count < 0:
        raise ValueError(
            f"{method}: nCount={count} but the list has {len(ids)} entries (the real library "
            "reads past the array and crashes)"
        )
    return [i.decode("utf-8", "replace") for i in ids[: min(count, len(ids))]]


class CThostFtdcMdApi(ApiCore, MdRequests):
    """The market-data API (mirror of ``openctp_ctp.mdapi.CThostFtdcMdApi``)."""

    _sim_kind = "md"
    _sim_spi_class = CThostFtdcMdSpi
    _sim_class_name = "CThostFtdcMdApi"

    @staticmethod
    def CreateFtdcMdApi(
        pszFlowPath: str = "",
        bIsUsingUdp: bool = False,
        bIsMulticast: bool = False,
        bIsProductionMode: bool = True,
    ) -> CThostFtdcMdApi:
        """创建MdApi (the flow directory must exist, as for the real library)."""
        return CThostFtdcMdApi(_check_flow_path(pszFlowPath))

    def SubscribeMarketData(self, ppInstrumentID: list[bytes], nCount: int, /) -> int:
        """订阅行情: one OnRspSubMarketData per instrument, then its ticks."""
        ids = _instrument_list("SubscribeMarketData", ppInstrumentID, nCount)
        return self._sim_post("SubscribeMarketData", ids)

    def UnSubscribeMarketData(self, ppInstrumentID: list[bytes], nCount: int, /) -> int:
        """退订行情"""
        ids = _instrument_list("UnSubscribeMarketData", ppInstrumentID, nCount)
        return self._sim_post("UnSubscribeMarketData", ids)

    def SubscribeForQuoteRsp(self, ppInstrumentID: list[bytes], nCount: int, /) -> int:
        """订阅询价 (acknowledged; the simulator sends no quote requests)."""
        ids = _instrument_list("SubscribeForQuoteRsp", ppInstrumentID, nCount)
        return self._sim_post("SubscribeForQuoteRsp", ids)

    def UnSubscribeForQuoteRsp(self, ppInstrumentID: list[bytes], nCount: int, /) -> int:
        """退订询价"""
        ids = _instrument_list("UnSubscribeForQuoteRsp", ppInstrumentID, nCount)
        return self._sim_post("UnSubscribeForQuoteRsp", ids)
