"""Envelope parsing and validation: pure, no sockets, no trio."""

from __future__ import annotations

import sys

import pytest

from webctp.protocol import envelope
from webctp.protocol.catalogue import load
from webctp.protocol.errors import Code, ProtocolError, error_message, response_name
from webctp.protocol.validate import check_field, instrument_list, validate

STRUCTS = load().structs


def test_protocol_package_is_pure() -> None:
    import webctp.protocol.codec
    import webctp.protocol.validate

    for banned in ("openctp_ctp", "trio_websocket", "quart"):
        assert banned not in sys.modules or not any(
            getattr(m, "__name__", "").startswith("webctp.protocol") for m in [sys.modules[banned]]
        )
    source = "".join(
        open(m.__file__, encoding="utf-8").read()  # noqa: SIM115
        for m in (webctp.protocol.codec, webctp.protocol.validate, envelope)
        if m.__file__
    )
    assert "import trio" not in source and "openctp_ctp" not in source


def test_parse_ok() -> None:
    env = envelope.parse('{"MsgType":"ReqQryOrder","QryOrder":{},"RequestID":7}', max_bytes=1000)
    assert isinstance(env, envelope.Envelope)
    assert env.msg_type == "ReqQryOrder" and env.request_id == 7


def test_missing_request_id_is_zero() -> None:
    env = envelope.parse('{"MsgType":"ReqQryOrder"}', max_bytes=1000)
    assert isinstance(env, envelope.Envelope) and env.request_id == 0


@pytest.mark.parametrize(
    ("frame", "msg_type", "rid", "detail"),
    [
        (b'{"MsgType":"ReqQryOrder"}', None, None, "binary"),
        ("{nope", None, None, "invalid JSON"),
        ("[1,2]", None, None, "not list"),
        ("42", None, None, "not int"),
        ('{"RequestID":3}', None, 3, "MsgType"),
        ('{"MsgType":"","RequestID":3}', None, 3, "MsgType"),
        ('{"MsgType":"ReqQryOrder","RequestID":"7"}', "ReqQryOrder", None, "RequestID"),
        ('{"MsgType":"ReqQryOrder","RequestID":1.5}', "ReqQryOrder", None, "RequestID"),
        ('{"MsgType":"ReqQryOrder","RequestID":99999999999}', "ReqQryOrder", None, "int32"),
        ('{"MsgType":"ReqQryOrder","RequestID":1,"x":"' + "a" * 600 + '"}', None, None, "limit"),
    ],
)
def test_parse_refused(
    frame: str | bytes, msg_type: str | None, rid: int | None, detail: str
) -> None:
    bad = envelope.parse(frame, max_bytes=512)
    assert isinstance(bad, envelope.BadEnvelope)
    assert bad.error.code == Code.BAD_REQUEST
    assert bad.msg_type == msg_type and bad.request_id == rid
    assert detail in bad.error.detail


def test_error_frame_names_request_and_response() -> None:
    frame = error_message(Code.NOT_LOGGED_IN, request="ReqQryOrder", request_id=9)
    assert frame["MsgType"] == "RspQryOrder"
    assert frame["Request"] == "ReqQryOrder"
    assert frame["RequestID"] == 9 and frame["IsLast"] is True
    assert frame["RspInfo"]["ErrorID"] == -401
    assert response_name(None) == "RspError" and response_name("Bogus") == "RspError"


def test_validate_types_and_lengths() -> None:
    order = STRUCTS["InputOrder"]
    ok = dict(
        validate(
            order,
            {
                "InstrumentID": "rb2601",
                "LimitPrice": 3500,
                "Direction": "0",
                "VolumeTotalOriginal": 1,
                "IsAutoSuspend": False,
                "BrokerID": None,
            },
            key="InputOrder",
        )
    )
    assert ok == {
        "InstrumentID": "rb2601",
        "LimitPrice": 3500.0,
        "Direction": "0",
        "VolumeTotalOriginal": 1,
        "IsAutoSuspend": 0,
        "BrokerID": "",
    }
    cases = {
        "LimitPrice": ("3500", "expected a number"),
        "VolumeTotalOriginal": ("1", "expected an integer"),
        "Direction": ("01", "single character"),
        "InstrumentID": ("x" * 81, "at most 80"),
        "OrderRef": (12, "expected a string"),
        "Nope": (1, "unknown field"),
    }
    for field, (value, reason) in cases.items():
        with pytest.raises(ProtocolError) as info:
            validate(order, {field: value}, key="InputOrder")
        assert info.value.code == Code.BAD_REQUEST
        assert info.value.detail.startswith(f"InputOrder.{field}: ")
        assert reason in info.value.detail


def test_validate_never_echoes_values() -> None:
    login = STRUCTS["ReqUserLogin"]
    secret = "hunter2" * 10
    with pytest.raises(ProtocolError) as info:
        validate(login, {"UserID": "u1", "Password": secret}, key="ReqUserLogin")
    assert "hunter2" not in info.value.detail
    assert "ReqUserLogin.Password" in info.value.detail


def test_validate_non_ascii_and_specials() -> None:
    spec = STRUCTS["InputOrder"].by_name
    with pytest.raises(ValueError, match="ASCII"):
        check_field(spec["OrderMemo"], "中文")
    with pytest.raises(ValueError, match="finite"):
        check_field(spec["LimitPrice"], float("inf"))
    with pytest.raises(ValueError, match="int32"):
        check_field(spec["VolumeTotalOriginal"], 2**31)
    with pytest.raises(ProtocolError, match="expected an object"):
        validate(STRUCTS["InputOrder"], [1], key="InputOrder")
    assert validate(STRUCTS["InputOrder"], None, key="InputOrder") == ()


def test_instrument_list() -> None:
    assert instrument_list(["rb2601", "IF2512", "rb2601"], max_items=10) == ["rb2601", "IF2512"]
    for bad, reason in [
        ("rb2601", "not a string"),
        ([], "empty"),
        ([1], "expected a string"),
        ([""], "not a valid"),
        (["a b"], "not a valid"),
        (["x" * 81], "at most 80"),
        (None, "expected an array"),
        (["a"] * 11, "at most 10"),
    ]:
        with pytest.raises(ProtocolError) as info:
            instrument_list(bad, max_items=10)
        assert reason in info.value.detail
