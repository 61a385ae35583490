"""The catalogue fitted to a binding that lacks some of it (pure: no binding imported)."""

from __future__ import annotations

import types
from typing import Any

import pytest

from webctp.backend._adapt import adapt, summary
from webctp.protocol import codec
from webctp.protocol.catalogue import load
from webctp.protocol.errors import ProtocolError
from webctp.protocol.validate import validate
from webctp.sim import mdapi, tdapi


class _Missing:
    """A class attribute that reads as missing (``hasattr`` is False), as in an older binding."""

    def __get__(self, obj: object, owner: type | None = None) -> Any:
        raise AttributeError("not in this binding")


def _without(cls: type, name: str) -> type:
    """``cls`` as an older binding has it: without ``name``."""
    return type(cls.__name__, (cls,), {name: _Missing()})


def _struct_without(short: str, name: str) -> type:
    """A struct class with the catalogue's fields of ``short`` (defaults as the binding reads
    them) except ``name``."""
    spec = load().struct(short)
    defaults = {"c": "", "s": "", "i": 0, "f": 0.0}
    attrs = {f.name: defaults[f.kind] for f in spec.fields if f.name != name}
    return type(spec.class_name, (), attrs)


def _old_binding() -> tuple[types.ModuleType, types.ModuleType]:
    """The simulator's modules with 6.7.2.8's gaps: no OrderMemo, no LastLoginTime, no
    CThostFtdcFrontInfoField, no ReqQryUserSession."""
    td = types.ModuleType("old_td")
    td.__dict__.update(vars(tdapi))
    for short, field in (("InputOrder", "OrderMemo"), ("RspUserLogin", "LastLoginTime")):
        setattr(td, f"CThostFtdc{short}Field", _struct_without(short, field))
    td.__dict__["CThostFtdcTraderApi"] = _without(tdapi.CThostFtdcTraderApi, "ReqQryUserSession")
    delattr(td, "CThostFtdcFrontInfoField")
    return td, mdapi


def test_the_simulator_has_the_whole_catalogue() -> None:
    full = load()
    assert adapt(full, tdapi, mdapi, "sim") is full


def test_an_older_binding_loses_fields_and_requests_with_reasons() -> None:
    td, md = _old_binding()
    full = load()
    cat = adapt(full, td, md, "openctp-ctp 6.7.2.8")
    order = cat.struct("InputOrder")
    assert "OrderMemo" not in order.by_name and "InstrumentID" in order.by_name
    assert order.unavailable == {
        "OrderMemo": "not in openctp-ctp 6.7.2.8's CThostFtdcInputOrderField "
        "(the catalogue is from openctp-ctp 6.7.11.0)"
    }
    assert cat.struct("FrontInfo").fields == ()
    assert "has no CThostFtdcFrontInfoField" in cat.struct("FrontInfo").unavailable["FrontAddr"]
    assert list(cat.unavailable) == ["ReqQryUserSession"]
    fields, requests = summary(cat)
    assert requests == 1 and fields == 2 + len(full.struct("FrontInfo").fields)
    assert full.struct("InputOrder").unavailable == {}  # the shared catalogue is untouched

    with pytest.raises(ProtocolError) as refused:
        validate(order, {"InstrumentID": "rb2506", "OrderMemo": "x"}, key="InputOrder")
    assert refused.value.code == -400
    assert refused.value.detail == "InputOrder.OrderMemo: " + order.unavailable["OrderMemo"]
    with pytest.raises(ProtocolError) as unknown:
        validate(order, {"Nonsense": "x"}, key="InputOrder")
    assert unknown.value.detail == "InputOrder.Nonsense: unknown field"


def test_capture_leaves_out_what_the_struct_class_lacks() -> None:
    td, _ = _old_binding()
    c = codec.codec("RspUserLogin")
    old = td.CThostFtdcRspUserLoginField()
    old.TradingDay = "20250102"
    values = c.capture(old)
    assert len(values) == len(c.names)  # catalogue positions are kept
    row = c.to_dict(values)
    assert "LastLoginTime" not in row and row["TradingDay"] == "20250102"
    assert set(row) == set(c.names) - {"LastLoginTime"}
    # the full class on the same codec still gets everything (the getter is per class)
    new = tdapi.CThostFtdcRspUserLoginField()
    assert set(c.to_dict(c.capture(new))) == set(c.names)
    assert c.missing(td.CThostFtdcRspUserLoginField) == ("LastLoginTime",)


def test_depth_market_data_rule_still_applies_to_a_partial_capture() -> None:
    c = codec.codec("DepthMarketData")
    tick = _struct_without("DepthMarketData", "BandingUpperPrice")()
    tick.LastPrice = 1.7976931348623157e308
    row = c.to_dict(c.capture(tick))
    assert "BandingUpperPrice" not in row and row["LastPrice"] == 0.0


def test_settlement_content_bytes_become_text() -> None:
    frame = codec.push(
        "RspQrySettlementInfo", "SettlementInfo", {"Content": "结算单".encode("gbk")}, None
    )
    assert '"Content":"结算单"' in codec.dumps(frame)
