"""The real backend end to end against LocalCTP, a real C++ CTP counter (see localctp.py).

``python -m webctp`` (backend = "ctp") runs as a subprocess in a fresh working directory, with
a throwaway copy of the installed openctp-ctp whose trader library is LocalCTP built from the
headers of exactly that version (6.7.2.8, 6.7.7.1 or 6.7.8.0; conftest does not collect this
file for other versions). Everything goes over the WebSocket, as a client would send it: the
SWIG binding, its C++ callback thread and webctp's bridge all run for real.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import metadata
from pathlib import Path
from typing import Any

import pytest

from tests.service.client import Client, Frame, connect

from . import localctp
from .conftest import (
    LocaleCache,
    ServiceProcess,
    answer_to,
    service_process,
    unused_port,
    write_config,
)

pytestmark = [pytest.mark.ctp, pytest.mark.timeout(240)]

VERSION = metadata.version("openctp-ctp")
INSTRUMENT = {"InstrumentID": "rb2506", "ExchangeID": "SHFE"}
DAY = "20250102"


@pytest.fixture(scope="module")
def localctp_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The throwaway binding copy (to go first on PYTHONPATH) with LocalCTP inside."""
    if not (localctp.SOURCE / "LocalCTP" / "makefile").is_file():
        pytest.skip(f"no LocalCTP source at {localctp.SOURCE} (../shared/localctp)")
    if missing := localctp.missing_tools():
        problem = f"cannot build LocalCTP: missing {', '.join(missing)}"
        if os.environ.get(localctp.REQUIRE_ENV):
            pytest.fail(f"{problem} ({localctp.REQUIRE_ENV} is set; .ci/run installs them)")
        pytest.skip(problem)
    library = localctp.build(localctp.HEADERS[VERSION])
    return localctp.binding_copy(library, tmp_path_factory.mktemp("site"))


@asynccontextmanager
async def localctp_service(
    site: Path, cache: Path, tmp: Path
) -> AsyncIterator[tuple[ServiceProcess, Path]]:
    """The service with LocalCTP in a fresh working directory (LocalCTP keeps its state in
    LocalCTP.db and reads instrument.csv there)."""
    work = tmp / "work"
    work.mkdir()
    shutil.copy(localctp.SOURCE / "instrument.csv", work / "instrument.csv")
    front = f"tcp://127.0.0.1:{unused_port()}"  # LocalCTP never connects anywhere
    config = write_config(tmp, front, front, login_timeout_s=10.0, release_timeout_s=10.0)
    async with service_process(config, cache, cwd=work, env={"PYTHONPATH": str(site)}) as svc:
        line = await svc.wait_for("event=ctp_binding ")
        # the copy's metadata still names the wheel's version; the library inside is LocalCTP's
        assert f"version={VERSION} " in line and "api_version='LocalCTP " in line, line
        yield svc, work


def ok(frame: Frame) -> bool:
    info = frame.get("RspInfo")
    return info is None or info["ErrorID"] == 0


async def login(client: Client, rid: int) -> Frame:
    await client.send(
        {
            "MsgType": "ReqUserLogin",
            "ReqUserLogin": {"UserID": "u1", "Password": "pw"},
            "RequestID": rid,
        }
    )
    frame = await client.expect(answer_to(rid), timeout=20)
    assert frame["MsgType"] == "RspUserLogin" and ok(frame), frame
    return frame


async def feed(
    client: Client, rid: int, last: float, bid: float, ask: float, instrument: str = "rb2506"
) -> None:
    """A market snapshot for LocalCTP, through the generic request (its documented mapping)."""
    await client.send(
        {
            "MsgType": "ReqQuoteInsert",
            "RequestID": rid,
            "InputQuote": {
                **INSTRUMENT,
                "InstrumentID": instrument,
                "BrokerID": DAY,  # TradingDay
                "InvestorID": DAY,  # ActionDay
                "ClientID": "10:00:00",  # UpdateTime
                "UserID": f"{last:g}",  # LastPrice (above 1e12: LocalCTP stores DBL_MAX)
                "ForQuoteSysID": "3500",  # SettlementPrice (always finite)
                "BidOrderRef": "3850",  # UpperLimitPrice
                "AskOrderRef": "3150",  # LowerLimitPrice
                "QuoteRef": "3500",  # PreSettlementPrice
                "BusinessUnit": "1000",  # OpenInterest
                "BidPrice": bid,
                "AskPrice": ask,
                "BidVolume": 100,
                "AskVolume": 100,
            },
        }
    )


def order(ref: str, price: float, direction: str = "0", offset: str = "0") -> Frame:
    return {
        **INSTRUMENT,
        "OrderRef": ref,
        "Direction": direction,
        "CombOffsetFlag": offset,
        "CombHedgeFlag": "1",
        "OrderPriceType": "2",
        "LimitPrice": price,
        "VolumeTotalOriginal": 1,
        "TimeCondition": "3",
        "VolumeCondition": "1",
        "MinVolume": 1,
        "ContingentCondition": "1",
        "ForceCloseReason": "0",
    }


async def rtn_order(client: Client, ref: str, status: str) -> Frame:
    frame = await client.expect(
        lambda f: (
            f.get("MsgType") == "RtnOrder"
            and f["Order"]["OrderRef"] == ref
            and f["Order"]["OrderStatus"] == status
        )
    )
    return frame["Order"]  # type: ignore[no-any-return]


async def query(client: Client, msg_type: str, rid: int, payload: Frame | None = None) -> list[Any]:
    rows = await client.query(msg_type, payload or {}, rid=rid)
    assert all(ok(r) for r in rows), rows
    key = {
        "ReqQryOrder": "Order",
        "ReqQryTrade": "Trade",
        "ReqQryInvestorPosition": "InvestorPosition",
        "ReqQryInvestorPositionDetail": "InvestorPositionDetail",
        "ReqQryTradingAccount": "TradingAccount",
        "ReqQryInstrument": "Instrument",
        "ReqQrySettlementInfoConfirm": "SettlementInfoConfirm",
    }[msg_type]
    return [r[key] for r in rows if r.get(key) is not None]


async def test_td_flow(localctp_site: Path, locale_cache: LocaleCache, tmp_path: Path) -> None:
    async with localctp_service(localctp_site, locale_cache.folder, tmp_path) as (svc, work):
        baseline = sorted(svc.threads())
        async with connect(svc.ports["ws"], "/td/") as client:
            # login: ReqAuthenticate + ReqUserLogin + ReqSettlementInfoConfirm inside
            row = (await login(client, 1))["RspUserLogin"]
            assert row["SystemName"] == "LocalCTP" and row["UserID"] == "u1"
            assert row["FrontID"] != 0 and isinstance(row["SessionID"], int)
            # the rule for catalogue fields this binding lacks: absent, never null
            assert "LastLoginTime" not in row and None not in row.values()
            # RspUserLogin came after a successful RspSettlementInfoConfirm (auto_confirm);
            # LocalCTP does not record confirmations, so the query answers with no row
            confirm = await query(client, "ReqQrySettlementInfoConfirm", 2)
            assert all(c["InvestorID"] == "u1" for c in confirm)

            inst = await query(client, "ReqQryInstrument", 3, {"InstrumentID": "rb2506"})
            assert len(inst) == 1 and inst[0]["ExchangeID"] == "SHFE"
            assert inst[0]["PriceTick"] == 1.0 and inst[0]["VolumeMultiple"] == 10
            # doubles outside DepthMarketData pass through as CTP has them: the counter's
            # "no strike price" (1.79769e+308 in its instrument.csv) stays that number
            assert inst[0]["StrikePrice"] == 1.79769e308

            await feed(client, 4, last=3500, bid=3499, ask=3501)

            # a buy below the ask rests
            await client.send(
                {"MsgType": "ReqOrderInsert", "InputOrder": order("11", 3400), "RequestID": 5}
            )
            resting = await rtn_order(client, "11", "3")
            assert resting["StatusMsg"] == "未成交"  # GBK from the counter, UTF-8 on the wire
            assert resting["RequestID"] == 5 and resting["LimitPrice"] == 3400.0

            # a buy at the ask fills: RtnTrade and the final RtnOrder
            await client.send(
                {"MsgType": "ReqOrderInsert", "InputOrder": order("12", 3501), "RequestID": 6}
            )
            trade = (await client.expect("RtnTrade"))["Trade"]
            filled = await rtn_order(client, "12", "0")
            assert filled["StatusMsg"] == "全部成交" and filled["VolumeTraded"] == 1
            assert trade["OrderRef"] == "12" and trade["Volume"] == 1 and trade["Direction"] == "0"
            assert trade["OrderSysID"] == filled["OrderSysID"]
            fill_price = trade["Price"]
            assert 3400 < fill_price <= 3501

            # cancel the resting order
            await client.send(
                {
                    "MsgType": "ReqOrderAction",
                    "RequestID": 7,
                    "InputOrderAction": {
                        **INSTRUMENT,
                        "ActionFlag": "0",
                        "FrontID": resting["FrontID"],
                        "SessionID": resting["SessionID"],
                        "OrderRef": "11",
                    },
                }
            )
            cancelled = await rtn_order(client, "11", "5")
            assert cancelled["StatusMsg"] == "已撤单"

            # a rejection carries the counter's Chinese error text, intact
            await client.send(
                {
                    "MsgType": "ReqOrderInsert",
                    "InputOrder": {**order("13", 3500), "InstrumentID": "zz9999"},
                    "RequestID": 8,
                }
            )
            rejected = await client.expect(
                lambda f: f.get("MsgType") in ("RspOrderInsert", "ErrRtnOrderInsert")
            )
            assert rejected["RspInfo"]["ErrorMsg"] == "CTP:找不到合约", rejected

            # the queries agree with what happened
            orders = {o["OrderRef"]: o for o in await query(client, "ReqQryOrder", 9)}
            assert orders["11"]["OrderStatus"] == "5" and orders["12"]["OrderStatus"] == "0"
            trades = await query(client, "ReqQryTrade", 10)
            assert [(t["OrderRef"], t["Price"], t["Volume"]) for t in trades] == [
                ("12", fill_price, 1)
            ]
            positions = [
                p for p in await query(client, "ReqQryInvestorPosition", 11) if p["Position"]
            ]
            assert [(p["InstrumentID"], p["PosiDirection"], p["Position"]) for p in positions] == [
                ("rb2506", "2", 1)
            ]
            details = await query(client, "ReqQryInvestorPositionDetail", 12)
            assert [(d["InstrumentID"], d["Volume"], d["OpenPrice"]) for d in details] == [
                ("rb2506", 1, fill_price)
            ]
            (account,) = await query(client, "ReqQryTradingAccount", 13)
            assert account["CurrMargin"] > 0 and positions[0]["UseMargin"] == account["CurrMargin"]
            assert account["Available"] < account["Balance"]

            # in DepthMarketData an unset double (DBL_MAX) is 0
            await feed(client, 17, last=1e13, bid=5000, ask=5002, instrument="ag2506")
            await client.send(
                {
                    "MsgType": "ReqQryDepthMarketData",
                    "QryDepthMarketData": {"InstrumentID": "ag2506", "ExchangeID": "SHFE"},
                    "RequestID": 18,
                }
            )
            (depth,) = await client.collect("RspQryDepthMarketData", 18)
            tick = depth["DepthMarketData"]
            assert tick["InstrumentID"] == "ag2506" and tick["AskPrice1"] == 5002.0
            assert tick["LastPrice"] == 0.0 and tick["SettlementPrice"] == 3500.0

            # logout and log in again on the same socket
            await client.send({"MsgType": "ReqUserLogout", "UserLogout": {}, "RequestID": 14})
            out = await client.expect(answer_to(14))
            assert out["MsgType"] == "RspUserLogout" and ok(out), out
            again = (await login(client, 15))["RspUserLogin"]
            assert again["SessionID"] != row["SessionID"]  # a new CTP session
            assert len(await query(client, "ReqQryTrade", 16)) == 1
            during = sorted(svc.threads())
            assert len(during) > len(baseline)  # the API's own threads

        # closing the socket releases the API: the service is back to its threads before
        await svc.wait_for("event=ctp_released ", within=15)
        assert sorted(svc.threads()) == baseline

        # SIGTERM with a logged-in session: LocalCTP writes its database while releasing
        async with connect(svc.ports["ws"], "/td/") as client:
            await login(client, 1)
            code = await svc.stop(within=30)
        assert code == 0, svc.stderr_text()
        assert (work / "LocalCTP.db").stat().st_size > 0
        text = svc.stderr_text()
        assert "callback_failed" not in text and "Traceback" not in text, text


# What a hostile or clumsy client may send where the binding would crash, raise in a setter or
# silently drop: each must be refused with -400 and its RequestID, before reaching CTP.
REFUSED: list[tuple[str, Any]] = [
    ("InstrumentID", "x" * 81),  # over-long string (the binding raises TypeError)
    ("OrderRef", "1" * 13),
    ("InstrumentID", "螺纹钢"),  # Chinese in a string field (the setter writes UTF-8)
    ("Direction", "01"),  # a flag of two characters
    ("Direction", "买"),  # Chinese in a char field
    ("Direction", 48),  # a number for a char (the binding would take it as '0')
    ("CombOffsetFlag", "00000"),  # char[5] holds 4
    ("VolumeTotalOriginal", "1"),  # wrong types
    ("VolumeTotalOriginal", 1.5),
    ("VolumeTotalOriginal", 2**31),  # OverflowError in the binding
    ("LimitPrice", "3500"),
    ("LimitPrice", None),
    ("LimitPrice", [3500]),
    ("BrokerID", "a\x00b"),  # NUL: the binding would cut the text
    ("NoSuchField", "1"),  # a misspelt field would be a silent no-op attribute
]


async def test_hostile_input_never_reaches_the_binding_as_a_crash(
    localctp_site: Path, locale_cache: LocaleCache, tmp_path: Path
) -> None:
    async with localctp_service(localctp_site, locale_cache.folder, tmp_path) as (svc, _work):
        async with connect(svc.ports["ws"], "/td/") as client:
            await login(client, 1)
            await feed(client, 2, last=3500, bid=3499, ask=3501)
            rid = 100
            for field, value in REFUSED:
                rid += 1
                await client.send(
                    {
                        "MsgType": "ReqOrderInsert",
                        "InputOrder": {**order(str(rid), 3400), field: value},
                        "RequestID": rid,
                    }
                )
                err = await client.expect(answer_to(rid))
                assert err["RspInfo"]["ErrorID"] == -400, (field, value, err)
                assert err["Detail"].startswith(f"InputOrder.{field}: "), err
            # whole payloads of the wrong shape
            for rid, body in ((201, []), (202, "x"), (203, 7)):
                await client.send(
                    {"MsgType": "ReqOrderInsert", "InputOrder": body, "RequestID": rid}
                )
                err = await client.expect(answer_to(rid))
                assert err["RspInfo"]["ErrorID"] == -400, err
            # a request this binding does not have (ReqQryUserSession is new in 6.7.11)
            await client.send({"MsgType": "ReqQryUserSession", "RequestID": 204})
            err = await client.expect(answer_to(204))
            assert err["RspInfo"]["ErrorID"] == -400 and f"openctp-ctp {VERSION}" in err["Detail"]
            # OrderMemo exists from 6.7.7 on: refused naming the version before, sent after
            await client.send(
                {
                    "MsgType": "ReqOrderInsert",
                    "InputOrder": {**order("301", 3400), "OrderMemo": "memo"},
                    "RequestID": 301,
                }
            )
            if VERSION == "6.7.2.8":
                err = await client.expect(answer_to(301))
                assert err["RspInfo"]["ErrorID"] == -400
                assert err["Detail"] == (
                    "InputOrder.OrderMemo: not in openctp-ctp 6.7.2.8's "
                    "CThostFtdcInputOrderField (the catalogue is from openctp-ctp 6.7.11.0)"
                )
            else:
                assert (await rtn_order(client, "301", "3"))["RequestID"] == 301
            # what passes validation reaches the real binding and the counter, which answers
            # (an empty order, a snapshot the counter cannot parse): no crash, no hang
            await client.send({"MsgType": "ReqOrderInsert", "InputOrder": None, "RequestID": 302})
            rejected = await client.expect(
                lambda f: f.get("MsgType") == "RspOrderInsert" and f.get("RequestID") == 302
            )
            assert rejected["RspInfo"]["ErrorID"] != 0
            await client.send(
                {
                    "MsgType": "ReqQuoteInsert",
                    "InputQuote": {**INSTRUMENT, "UserID": "abc", "BrokerID": DAY},
                    "RequestID": 303,
                }
            )
            await svc.wait_for("some price field is not filled correctly")
            # the session still works, and no refused order ever reached the counter
            refs = {o["OrderRef"] for o in await query(client, "ReqQryOrder", 304)}
            assert not refs & {str(r) for r in range(101, 101 + len(REFUSED))}, refs
            assert ("301" in refs) is (VERSION != "6.7.2.8")
        assert svc.proc.returncode is None, svc.stderr_text()
        text = svc.stderr_text()
        assert "callback_failed" not in text and "Traceback" not in text, text
