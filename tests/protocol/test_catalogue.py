"""The message catalogue reproduces every reference message name."""

from __future__ import annotations

import pytest

from webctp.protocol.catalogue import load

CAT = load()

# (request MsgType, payload key, response MsgType, response payload key) from
# ../shared/reference/webctp-protocol.md §3.1, rows 0-21.
REFERENCE_TD = [
    ("ReqUserLogin", "ReqUserLogin", "RspUserLogin", "RspUserLogin"),
    ("ReqQryInstrument", "QryInstrument", "RspQryInstrument", "Instrument"),
    ("ReqQryExchange", "QryExchange", "RspQryExchange", "Exchange"),
    ("ReqQryProduct", "QryProduct", "RspQryProduct", "Product"),
    ("ReqQryDepthMarketData", "QryDepthMarketData", "RspQryDepthMarketData", "DepthMarketData"),
    (
        "ReqQryInvestorPositionDetail",
        "QryInvestorPositionDetail",
        "RspQryInvestorPositionDetail",
        "InvestorPositionDetail",
    ),
    (
        "ReqQryExchangeMarginRate",
        "QryExchangeMarginRate",
        "RspQryExchangeMarginRate",
        "ExchangeMarginRate",
    ),
    (
        "ReqQryInstrumentOrderCommRate",
        "QryInstrumentOrderCommRate",
        "RspQryInstrumentOrderCommRate",
        "InstrumentOrderCommRate",
    ),
    (
        "ReqQryOptionInstrTradeCost",
        "QryOptionInstrTradeCost",
        "RspQryOptionInstrTradeCost",
        "OptionInstrTradeCost",
    ),
    (
        "ReqQryOptionInstrCommRate",
        "QryOptionInstrCommRate",
        "RspQryOptionInstrCommRate",
        "OptionInstrCommRate",
    ),
    ("ReqUserPasswordUpdate", "UserPasswordUpdate", "RspUserPasswordUpdate", "UserPasswordUpdate"),
    ("ReqOrderInsert", "InputOrder", "RspOrderInsert", "InputOrder"),
    ("ReqOrderAction", "InputOrderAction", "RspOrderAction", "InputOrderAction"),
    ("ReqQryMaxOrderVolume", "QryMaxOrderVolume", "RspQryMaxOrderVolume", "QryMaxOrderVolume"),
    ("ReqQryOrder", "QryOrder", "RspQryOrder", "Order"),
    ("ReqQryTrade", "QryTrade", "RspQryTrade", "Trade"),
    ("ReqQryInvestorPosition", "QryInvestorPosition", "RspQryInvestorPosition", "InvestorPosition"),
    ("ReqQryTradingAccount", "QryTradingAccount", "RspQryTradingAccount", "TradingAccount"),
    ("ReqQryInvestor", "QryInvestor", "RspQryInvestor", "Investor"),
    ("ReqQryTradingCode", "QryTradingCode", "RspQryTradingCode", "TradingCode"),
    (
        "ReqQryInstrumentMarginRate",
        "QryInstrumentMarginRate",
        "RspQryInstrumentMarginRate",
        "InstrumentMarginRate",
    ),
    (
        "ReqQryInstrumentCommissionRate",
        "QryInstrumentCommissionRate",
        "RspQryInstrumentCommissionRate",
        "InstrumentCommissionRate",
    ),
]

REFERENCE_PUSHES = [
    ("RtnOrder", "Order"),
    ("RtnTrade", "Trade"),
    ("ErrRtnOrderInsert", "InputOrder"),
    ("ErrRtnOrderAction", "OrderAction"),
]


@pytest.mark.parametrize(("req", "key", "rsp", "rsp_key"), REFERENCE_TD)
def test_reference_td_rows(req: str, key: str, rsp: str, rsp_key: str) -> None:
    spec = CAT.td.requests[req]
    assert spec.payload_key == key
    assert spec.response == rsp
    cb = CAT.td.callbacks["On" + rsp]
    assert cb.msg_type == rsp and cb.payload_key == rsp_key


@pytest.mark.parametrize(("msg", "key"), REFERENCE_PUSHES)
def test_reference_pushes(msg: str, key: str) -> None:
    cb = CAT.td.callbacks["On" + msg]
    assert cb.msg_type == msg and cb.payload_key == key


def test_md_reference_names() -> None:
    assert CAT.md.callbacks["OnRspSubMarketData"].payload_key == "SpecificInstrument"
    assert CAT.md.callbacks["OnRspUnSubMarketData"].msg_type == "RspUnSubMarketData"
    assert CAT.md.callbacks["OnRtnDepthMarketData"].payload_key == "DepthMarketData"
    assert CAT.md.callbacks["OnRspUserLogin"].payload_key == "RspUserLogin"


def test_whole_trader_api_is_covered() -> None:
    assert len(CAT.td.requests) == 118
    assert len(CAT.td.callbacks) == 164
    assert CAT.td.requests["ReqQryInstrument"].is_query
    assert not CAT.td.requests["ReqOrderInsert"].is_query
    assert not CAT.td.requests["ReqQueryCFMMCTradingAccountToken"].is_query
    for req in CAT.td.requests.values():
        assert req.struct in CAT.structs, req


def test_struct_fields_match_binding_table() -> None:
    # From openctp-ctp-api.txt: DepthMarketData has 48 fields (8 str, 12 int, 28 float).
    fields = CAT.structs["DepthMarketData"].fields
    assert len(fields) == 48
    kinds = [f.kind for f in fields]
    assert (kinds.count("s"), kinds.count("i"), kinds.count("f")) == (8, 12, 28)
    by = CAT.structs["InputOrder"].by_name
    assert by["InstrumentID"].size == 80 and by["OrderRef"].size == 12
    assert by["Direction"].kind == "c" and by["CombOffsetFlag"].size == 4
    assert CAT.constants["THOST_FTDC_D_Buy"] == "0"
