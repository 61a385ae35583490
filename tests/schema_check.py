"""Check frames against docs/schemas/webctp.schema.json (the schema of their MsgType)."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

from jsonschema import Draft202012Validator

SCHEMA_PATH = Path(__file__).resolve().parent.parent / "docs" / "schemas" / "webctp.schema.json"


@functools.cache
def schema() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(SCHEMA_PATH.read_text(encoding="utf-8"))
    return doc


@functools.cache
def _validator(msg_type: str) -> Draft202012Validator:
    doc = schema()
    return Draft202012Validator({"$ref": f"#/$defs/{msg_type}", "$defs": doc["$defs"]})


def frame_errors(frame: Any) -> list[str]:
    """Why ``frame`` does not follow its MsgType's schema (empty when it does)."""
    if not isinstance(frame, dict) or not isinstance(frame.get("MsgType"), str):
        return ["not a frame with a MsgType"]
    msg_type = frame["MsgType"]
    if msg_type not in schema()["$defs"]:
        return [f"no schema for MsgType {msg_type!r}"]
    return [
        f"{'/'.join(map(str, e.absolute_path)) or '(frame)'}: {e.message}"
        for e in _validator(msg_type).iter_errors(frame)
    ]


def check_frame(frame: Any) -> None:
    errors = frame_errors(frame)
    assert not errors, f"frame does not follow its schema: {errors[:3]}\n{str(frame)[:500]}"
