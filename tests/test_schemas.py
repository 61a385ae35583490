"""docs/asyncapi.yaml and docs/schemas/webctp.schema.json: valid documents that say what the
service does (the end-to-end tests check every frame they receive against them too)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from jsonschema import Draft7Validator, Draft202012Validator

from webctp.protocol.catalogue import load

from .schema_check import frame_errors, schema

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def asyncapi() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load((ROOT / "docs" / "asyncapi.yaml").read_text("utf-8"))
    return doc


def test_json_schema_is_a_valid_2020_12_schema() -> None:
    Draft202012Validator.check_schema(schema())


def test_asyncapi_document_is_valid_asyncapi_3(asyncapi: dict[str, Any]) -> None:
    meta = json.loads((ROOT / "tests" / "vendor" / "asyncapi-3.0.0.schema.json").read_text())
    errors = sorted(Draft7Validator(meta).iter_errors(asyncapi), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message}"[:300] for e in errors[:5]]
    assert asyncapi["asyncapi"] == "3.0.0"
    for name, message_schema in asyncapi["components"]["schemas"].items():
        Draft7Validator.check_schema(message_schema)  # AsyncAPI's schema format is draft-07's
        assert name


def test_asyncapi_refs_resolve(asyncapi: dict[str, Any]) -> None:
    def walk(node: Any) -> None:
        if isinstance(node, dict):
            ref = node.get("$ref")
            if isinstance(ref, str):
                target: Any = asyncapi
                for part in ref.removeprefix("#/").split("/"):
                    target = target[part]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(asyncapi)


def test_every_catalogue_message_has_a_schema(asyncapi: dict[str, Any]) -> None:
    cat = load()
    defs = schema()["$defs"]
    for api in (cat.td, cat.md):
        for name in api.requests:
            assert name in defs and name in asyncapi["components"]["messages"]
        for cb in api.callbacks.values():
            assert cb.msg_type in defs
    for extra in ("SubscribeMarketData", "GetBars", "Bars", "SessionState"):
        assert extra in defs
    td = asyncapi["channels"]["td"]["messages"]
    assert "ReqOrderInsert" in td and "RtnOrder" in td and "GetBars" not in td


def test_schemas_accept_what_the_protocol_accepts_and_refuse_the_rest() -> None:
    order = {
        "MsgType": "ReqOrderInsert",
        "RequestID": 21,
        "InputOrder": {"InstrumentID": "rb2705", "LimitPrice": 3132, "VolumeTotalOriginal": 1},
    }
    assert frame_errors(order) == []
    assert frame_errors(order | {"InputOrder": None}) == []
    assert frame_errors(order | {"InputOrder": {"Bogus": 1}})
    assert frame_errors(order | {"InputOrder": {"LimitPrice": "3132"}})
    assert frame_errors(order | {"InputOrder": {"InstrumentID": "螺纹钢"}})  # ASCII only
    assert frame_errors(order | {"InputOrder": {"Direction": "01"}})  # one character
    assert frame_errors(order | {"RequestID": 2**31})
    assert frame_errors({"MsgType": "NoSuchThing"})
    login = {
        "MsgType": "RspUserLogin",
        "RspInfo": None,
        "RequestID": 1,
        "IsLast": True,
        "RspUserLogin": {"UserID": "demo", "SessionID": 5},
    }
    assert frame_errors(login) == []
    assert frame_errors(login | {"RspInfo": {"ErrorID": 0, "ErrorMsg": "CTP:正确"}}) == []
    assert frame_errors({k: v for k, v in login.items() if k != "IsLast"})
    update = {
        "MsgType": "RspUserPasswordUpdate",
        "RspInfo": None,
        "RequestID": 1,
        "IsLast": True,
        "UserPasswordUpdate": {"OldPassword": "x"},
    }
    assert frame_errors(update), "a password field in a response must not validate"
    subscribe = {"MsgType": "SubscribeMarketData", "InstrumentID": ["rb2705"], "RequestID": 3}
    assert frame_errors(subscribe) == []
    assert frame_errors(subscribe | {"InstrumentID": "rb2705"})
    assert frame_errors(subscribe | {"InstrumentID": []})
    bars = {
        "MsgType": "Bars",
        "RspInfo": None,
        "RequestID": 9,
        "IsLast": True,
        "Bars": {"InstrumentID": "rb2705", "Period": "5m", "Bars": [[1, 2.0, 3.0, 1.0, 2.0, 7]]},
    }
    assert frame_errors(bars) == []
    assert frame_errors(bars | {"Bars": {"InstrumentID": "x", "Period": "7m", "Bars": []}})
