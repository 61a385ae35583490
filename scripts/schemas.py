"""JSON Schemas of every webctp message and the AsyncAPI 3 document, from the catalogue.

Used by ``scripts/gen_docs.py``, which writes ``docs/schemas/webctp.schema.json`` (JSON Schema
2020-12: one ``$defs`` entry per MsgType, ``In.<Struct>``/``Out.<Struct>`` for the payloads
a client sends/receives) and ``docs/asyncapi.yaml`` (AsyncAPI 3.0.0, the same schemas under
``components.schemas``).

Request payloads follow ``webctp/protocol/validate.py``: ASCII strings of at most the field's
size (null means empty), one-character flags, int32 integers (booleans count as 0/1), finite
numbers, no unknown fields. Response payloads have every field of the struct but the
``reserve*`` slots and the password fields, which are never sent; a double may be null
(NaN/infinity).
"""

from __future__ import annotations

from typing import Any

from webctp.protocol.catalogue import INT32_MAX, INT32_MIN, Api, StructSpec, load

Schema = dict[str, Any]

SESSION_STATES = [
    "new",
    "connecting",
    "connected",
    "logging_in",
    "ready",
    "disconnected",
    "relogging",
    "login_failed",
]
BAR_PERIODS = ["1m", "5m", "15m", "30m", "1h", "1d"]
MD_SUBSCRIPTIONS = {
    "SubscribeMarketData": "RspSubMarketData",
    "UnSubscribeMarketData": "RspUnSubMarketData",
    "SubscribeForQuoteRsp": "RspSubForQuoteRsp",
    "UnSubscribeForQuoteRsp": "RspUnSubForQuoteRsp",
}
INT32: Schema = {"type": "integer", "minimum": INT32_MIN, "maximum": INT32_MAX}
RSP_INFO: Schema = {
    "oneOf": [
        {"type": "null"},
        {
            "type": "object",
            "required": ["ErrorID", "ErrorMsg"],
            "properties": {"ErrorID": {"type": "integer"}, "ErrorMsg": {"type": "string"}},
            "additionalProperties": False,
        },
    ]
}


def _sent(spec: StructSpec) -> list[str]:
    return [
        f.name for f in spec.fields if not f.name.startswith("reserve") and "Password" not in f.name
    ]


def in_struct(spec: StructSpec) -> Schema:
    props: Schema = {}
    for f in spec.fields:
        if f.kind in ("s", "c"):
            props[f.name] = {
                "type": ["string", "null"],
                "maxLength": 1 if f.kind == "c" else f.size,
                "pattern": "^[\\u0001-\\u007f]*$",
            }
        elif f.kind == "i":
            props[f.name] = {"type": ["integer", "boolean"]} | {
                "minimum": INT32_MIN,
                "maximum": INT32_MAX,
            }
        else:
            props[f.name] = {"type": "number"}
    return {
        "type": "object",
        "description": spec.doc,
        "properties": props,
        "additionalProperties": False,
    }


def out_struct(spec: StructSpec) -> Schema:
    kinds = {"s": {"type": "string"}, "c": {"type": "string"}, "i": {"type": "integer"}}
    fields = {f.name: f for f in spec.fields}
    props = {
        name: kinds.get(fields[name].kind, {"type": ["number", "null"]}) for name in _sent(spec)
    }
    return {
        "type": "object",
        "description": spec.doc,
        "properties": props,
        "additionalProperties": False,
    }


def _ref(prefix: str, name: str) -> Schema:
    return {"$ref": prefix + name}


def _frame(msg_type: str, props: Schema, required: list[str], doc: str = "") -> Schema:
    schema: Schema = {
        "type": "object",
        "required": ["MsgType", *required],
        "properties": {"MsgType": {"const": msg_type}, **props},
        "additionalProperties": False,
    }
    if doc:
        schema["description"] = " ".join(doc.split(":type")[0].split())
    return schema


def _nullable(ref: Schema) -> Schema:
    return {"oneOf": [{"type": "null"}, ref]}


def messages(prefix: str) -> tuple[dict[str, Schema], dict[str, Schema], dict[str, list[str]]]:
    """``(message schemas, struct schemas, {api: [MsgTypes a client sends]} + received)``.

    ``prefix`` is where the schemas are referenced from (``#/$defs/`` or
    ``#/components/schemas/``)."""
    cat = load()
    msgs: dict[str, Schema] = {}
    structs: dict[str, Schema] = {}
    directions: dict[str, list[str]] = {}
    rid_in = {"RequestID": INT32}
    rsp_common: Schema = {
        "RspInfo": RSP_INFO,
        "RequestID": {"type": ["integer", "null"]},
        "IsLast": {"type": "boolean"},
        "Request": {"type": ["string", "null"]},
        "Detail": {"type": "string"},
    }
    rsp_required = ["RspInfo", "RequestID", "IsLast"]

    def struct_in(name: str) -> Schema:
        structs.setdefault(f"In.{name}", in_struct(cat.structs[name]))
        return _ref(prefix, f"In.{name}")

    def struct_out(name: str) -> Schema:
        structs.setdefault(f"Out.{name}", out_struct(cat.structs[name]))
        return _ref(prefix, f"Out.{name}")

    api: Api
    for api in ("td", "md"):
        spec = cat.api(api)
        sent, received = [], []
        for name, req in sorted(spec.requests.items()):
            msgs[name] = _frame(
                name,
                {req.payload_key: _nullable(struct_in(req.struct)), **rid_in},
                [],
                req.doc,
            )
            sent.append(name)
        for _, cb in sorted(spec.callbacks.items()):
            name = cb.msg_type
            received.append(name)
            if name == "FrontConnected":
                msgs[name] = _frame(
                    name,
                    {"RspInfo": {"type": "null"}, name: {"type": "object", "maxProperties": 0}},
                    ["RspInfo", name],
                    cb.doc,
                )
            elif name == "FrontDisconnected":
                body = {
                    "type": "object",
                    "required": ["Reason", "Hex", "Description"],
                    "properties": {
                        "Reason": {"type": "integer"},
                        "Hex": {"type": "string", "pattern": "^0x[0-9a-f]{4,}$"},
                        "Description": {"type": "string"},
                    },
                    "additionalProperties": False,
                }
                msgs[name] = _frame(name, {"RspInfo": RSP_INFO, name: body}, ["RspInfo", name])
            elif cb.kind == "rsp":
                props = dict(rsp_common)
                if cb.payload_key:
                    props[cb.payload_key] = _nullable(struct_out(cb.payload_key))
                msgs[name] = _frame(name, props, rsp_required, cb.doc)
            else:
                props = {"RspInfo": RSP_INFO}
                required = []
                if cb.payload_key:
                    props[cb.payload_key] = _nullable(struct_out(cb.payload_key))
                    required.append(cb.payload_key)
                msgs[name] = _frame(name, props, required, cb.doc)
        directions[f"{api}.send"] = sent
        directions[f"{api}.receive"] = received

    # the gateway's own messages
    alias = (
        "an instrument ID; under the simulator also the alias <ProductID>.front, the "
        "product's front-month contract (docs/td_protocol.md, Instrument aliases)"
    )
    ids = {
        "type": "array",
        "minItems": 1,
        "items": {
            "type": "string",
            "minLength": 1,
            "maxLength": 80,
            "pattern": "^[!-~]+$",
            "description": alias,
        },
    }
    for name, rsp in MD_SUBSCRIPTIONS.items():
        msgs[name] = _frame(name, {"InstrumentID": ids, **rid_in}, ["InstrumentID"])
        directions["md.send"].append(name)
        assert rsp in msgs
    msgs["GetBars"] = _frame(
        "GetBars",
        {
            "InstrumentID": {
                "type": "string",
                "minLength": 1,
                "maxLength": 80,
                "description": alias,
            },
            "Period": {"enum": BAR_PERIODS},
            "Count": {"type": "integer", "minimum": 1, "maximum": 2000},
            **rid_in,
        },
        ["InstrumentID"],
        "webctp extension: OHLCV bars built from the ticks the service forwarded",
    )
    directions["md.send"].append("GetBars")
    bar = {
        "type": "array",
        "prefixItems": [
            {"type": "integer"},
            {"type": "number"},
            {"type": "number"},
            {"type": "number"},
            {"type": "number"},
            {"type": "integer"},
        ],
        "minItems": 6,
        "maxItems": 6,
    }
    msgs["Bars"] = _frame(
        "Bars",
        {
            **rsp_common,
            "Bars": {
                "oneOf": [
                    {"type": "null"},
                    {
                        "type": "object",
                        "required": ["InstrumentID", "Period", "Bars"],
                        "properties": {
                            "InstrumentID": {"type": "string"},
                            "Period": {"enum": BAR_PERIODS},
                            "Bars": {"type": "array", "items": bar},
                        },
                        "additionalProperties": False,
                    },
                ]
            },
        },
        rsp_required,
        "The answer to GetBars",
    )
    msgs["SessionState"] = _frame(
        "SessionState",
        {
            "RspInfo": {"type": "null"},
            "SessionState": {
                "type": "object",
                "required": ["State", "Detail"],
                "properties": {"State": {"enum": SESSION_STATES}, "Detail": {"type": "string"}},
                "additionalProperties": False,
            },
        },
        ["SessionState"],
        "webctp: the state of the session's CTP link changed",
    )
    msgs["RspError"]["properties"]["Request"] = {"type": ["string", "null"]}
    for api in ("td", "md"):
        directions[f"{api}.receive"] += ["SessionState"]
    directions["md.receive"].append("Bars")
    return msgs, structs, directions


def json_schema() -> Schema:
    msgs, structs, directions = messages("#/$defs/")
    cat = load()
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "webctp messages",
        "description": (
            f"Every frame of the webctp protocol, generated from {cat.binding} by "
            "scripts/gen_docs.py. $defs has one schema per MsgType; a frame is valid when it "
            "is valid against the schema of its MsgType."
        ),
        "x-directions": directions,
        "oneOf": [_ref("#/$defs/", name) for name in sorted(msgs)],
        "$defs": dict(sorted(msgs.items())) | dict(sorted(structs.items())),
    }


def asyncapi(version: str) -> Schema:
    msgs, structs, directions = messages("#/components/schemas/")
    # AsyncAPI's default schema format is a superset of JSON Schema draft-07:
    # prefixItems (2020-12) is written as draft-07's array form of items.
    bars = msgs["Bars"]["properties"]["Bars"]["oneOf"][1]["properties"]["Bars"]["items"]
    bars["items"] = bars.pop("prefixItems")
    channels: Schema = {}
    operations: Schema = {}
    for api, path in (("td", "/td/"), ("md", "/md/")):
        names = sorted(set(directions[f"{api}.send"]) | set(directions[f"{api}.receive"]))
        channels[api] = {
            "address": path,
            "title": "trader (td) session" if api == "td" else "market-data (md) session",
            "description": (
                "One WebSocket = one CTP session. Text frames, one JSON object each. See "
                f"docs/{api}_protocol.md."
            ),
            "messages": {n: {"$ref": f"#/components/messages/{n}"} for n in names},
        }
        for direction, action in (("send", "receive"), ("receive", "send")):
            operations[f"{api}.{direction}"] = {
                "action": action,
                "channel": {"$ref": f"#/channels/{api}"},
                "summary": (
                    "Requests the client sends" if direction == "send" else "Frames webctp sends"
                ),
                "messages": [
                    {"$ref": f"#/channels/{api}/messages/{n}"}
                    for n in sorted(set(directions[f"{api}.{direction}"]))
                ],
            }
    components_messages = {
        name: {
            "name": name,
            "contentType": "application/json",
            **({"summary": schema["description"][:200]} if schema.get("description") else {}),
            "payload": {"$ref": f"#/components/schemas/{name}"},
        }
        for name, schema in sorted(msgs.items())
    }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "webctp",
            "version": version,
            "description": (
                "China's CTP futures trading API over WebSocket + JSON. Generated from "
                f"{load().binding} by scripts/gen_docs.py; the prose is in docs/td_protocol.md "
                "and docs/md_protocol.md. JSON Schemas of the same messages: "
                "docs/schemas/webctp.schema.json."
            ),
            "license": {"name": "BSD-3-Clause"},
        },
        "defaultContentType": "application/json",
        "servers": {
            "local": {
                "host": "127.0.0.1:8081",
                "protocol": "ws",
                "description": "the default configuration (server.ws_port); wss with TLS",
            }
        },
        "channels": channels,
        "operations": operations,
        "components": {
            "messages": components_messages,
            "schemas": dict(sorted(msgs.items())) | dict(sorted(structs.items())),
        },
    }
