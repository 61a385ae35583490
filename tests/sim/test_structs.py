"""Struct classes and constants mirror the binding (rules from ctp-domain.md §19 and §22)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from webctp.protocol.catalogue import load
from webctp.sim import _codegen, mdapi, tdapi


def test_every_struct_class_with_annotations_in_declaration_order() -> None:
    cat = load()
    for spec in cat.structs.values():
        cls = getattr(tdapi, spec.class_name)
        assert getattr(mdapi, spec.class_name) is cls
        assert list(cls.__annotations__.items()) == [(f.name, f.typedef) for f in spec.fields]
    assert len(cat.structs) == 502


def test_defaults_by_kind() -> None:
    o = tdapi.CThostFtdcDepthMarketDataField()
    assert (o.TradingDay, o.LastPrice, o.Volume) == ("", 0.0, 0)
    assert type(o.LastPrice) is float and type(o.Volume) is int
    order = tdapi.CThostFtdcInputOrderField()
    assert order.Direction == "" and order.CombOffsetFlag == ""


def _raises(exc: type[Exception], obj: Any, field: str, value: Any) -> str:
    with pytest.raises(exc) as info:
        setattr(obj, field, value)
    return str(info.value)


def test_setter_rules_of_the_binding() -> None:
    o: Any = tdapi.CThostFtdcInputOrderField()
    o.Direction = "0"
    assert o.Direction == "0"
    o.Direction = 48
    assert o.Direction == "0"
    o.Direction = ""
    assert o.Direction == ""
    for bad in ("AB", b"0", "买", 1.0):
        msg = _raises(TypeError, o, "Direction", bad)
        assert msg == (
            "in method 'CThostFtdcInputOrderField_Direction_set', argument 2 of type "
            "'TThostFtdcDirectionType'"
        )
    _raises(OverflowError, o, "Direction", 128)
    o.CombOffsetFlag = "0000"
    assert o.CombOffsetFlag == "0000"
    msg = _raises(TypeError, o, "CombOffsetFlag", "00000")  # at most N-1 bytes, no truncation
    assert msg.endswith("argument 2 of type 'char [5]'")
    o.BrokerID = "x" * 10
    for bad in ("x" * 11, 9999, b"9999", "中文中文中"):  # the last is 15 UTF-8 bytes
        assert _raises(TypeError, o, "BrokerID", bad).endswith("'char [11]'")
    o.BrokerID = None
    assert o.BrokerID == ""
    o.BrokerID = "a\x00b"
    assert o.BrokerID == "a"
    o.LimitPrice = 3500
    assert o.LimitPrice == 3500.0 and type(o.LimitPrice) is float
    for bad_price in ("3500", None):
        _raises(TypeError, o, "LimitPrice", bad_price)
    o.LimitPrice = float("nan")
    assert o.LimitPrice != o.LimitPrice
    for bad_volume in (3.0, "3", None):
        _raises(TypeError, o, "VolumeTotalOriginal", bad_volume)
    o.VolumeTotalOriginal = True
    assert o.VolumeTotalOriginal == 1 and type(o.VolumeTotalOriginal) is int
    _raises(OverflowError, o, "VolumeTotalOriginal", 2**31)
    o.VolumeTotalOriginal = -(2**31)
    o.Typo_Field = 1  # like the binding: accepted, no effect
    assert "Typo_Field" not in type(o)._sim_fields


def test_reads_are_plain_slots() -> None:
    cls = tdapi.CThostFtdcDepthMarketDataField
    assert "LastPrice" in cls.__slots__
    assert type(cls.__dict__["LastPrice"]).__name__ == "member_descriptor"


def test_constants_match_the_catalogue() -> None:
    cat = load()
    for name, value in cat.constants.items():
        assert getattr(tdapi, name) == value == getattr(mdapi, name)
    assert tdapi.THOST_FTDC_D_Buy == "0" and tdapi.THOST_FTDC_OST_Unknown == "a"
    assert (tdapi.THOST_TERT_RESTART, tdapi.THOST_TERT_QUICK) == (0, 2)


def test_generated_modules_are_up_to_date() -> None:
    for filename in _codegen.GENERATORS:
        committed = (Path(_codegen.__file__).parent / filename).read_text("utf-8")
        assert committed == _codegen.render(filename), f"{filename} is stale: rerun the codegen"


def test_importing_the_simulator_does_not_import_the_binding() -> None:
    code = (
        "import sys, webctp.sim, webctp.sim.tdapi, webctp.sim.mdapi;"
        "print('openctp_ctp' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


COMPARE = r"""
import json
from webctp.backend._ctp import import_binding
tdapi, _ = import_binding()
cases = [("Direction", "0"), ("Direction", 48), ("Direction", ""), ("Direction", "AB"),
         ("Direction", "买"), ("Direction", 1.0), ("Direction", 128), ("Direction", None),
         ("CombOffsetFlag", "0000"), ("CombOffsetFlag", "00000"), ("BrokerID", "x" * 11),
         ("BrokerID", None), ("BrokerID", "a\x00b"), ("BrokerID", "中文中文中"), ("BrokerID", 9),
         ("LimitPrice", 3500), ("LimitPrice", "1"), ("VolumeTotalOriginal", True),
         ("VolumeTotalOriginal", 3.0), ("VolumeTotalOriginal", 2**31)]
out = []
for field, value in cases:
    o = tdapi.CThostFtdcInputOrderField()
    try:
        setattr(o, field, value)
        out.append(["ok", getattr(o, field)])
    except Exception as e:
        out.append([type(e).__name__, str(e)])
print(json.dumps(out))
"""


@pytest.mark.ctp
def test_setters_match_the_real_binding(tmp_path: Path) -> None:
    """Same cases through the real binding, imported the way webctp does it (which finds or
    builds the zh_CN.GB18030 locale), in a child process so it cannot abort this one."""
    env = dict(os.environ)
    real = json.loads(
        subprocess.run(
            [sys.executable, "-c", COMPARE], capture_output=True, text=True, check=True, env=env
        ).stdout
    )
    sim_code = COMPARE.replace(
        "from webctp.backend._ctp import import_binding\ntdapi, _ = import_binding()",
        "from webctp.sim import tdapi",
    )
    assert sim_code != COMPARE
    ours = json.loads(
        subprocess.run(
            [sys.executable, "-c", sim_code], capture_output=True, text=True, check=True
        ).stdout
    )
    assert ours == real
