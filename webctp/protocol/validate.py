"""Validate a request payload against the catalogue's struct fields.

The result is exactly what is assigned to the CTP struct, so nothing that passes here can make
the binding's setters raise (the reference validated, threw the result away and crashed on the
raw input). Error texts name the field and the rule, never the value: payloads carry passwords.
"""

from __future__ import annotations

import math
from typing import Any

from .catalogue import INT32_MAX, INT32_MIN, FieldSpec, StructSpec
from .errors import Code, ProtocolError

Assignments = tuple[tuple[str, Any], ...]


def _type_name(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def check_field(spec: FieldSpec, value: object) -> object:
    """Return the value to assign, or raise ``ValueError`` with the reason."""
    kind = spec.kind
    if kind == "s" or kind == "c":
        if value is None:
            return ""
        if not isinstance(value, str):
            raise ValueError(f"expected a string, got {_type_name(value)}")
        if not value.isascii():
            raise ValueError(
                "only ASCII text can be sent to CTP (it expects GBK and the binding writes UTF-8)"
            )
        if "\x00" in value:
            raise ValueError("NUL characters are not allowed")
        if kind == "c":
            if len(value) > 1:
                raise ValueError("expected a single character")
        elif len(value) > spec.size:
            raise ValueError(f"at most {spec.size} characters")
        return value
    if kind == "i":
        if isinstance(value, bool):
            return int(value)
        if not isinstance(value, int):
            raise ValueError(f"expected an integer, got {_type_name(value)}")
        if not INT32_MIN <= value <= INT32_MAX:
            raise ValueError("out of the int32 range")
        return value
    # double
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"expected a number, got {_type_name(value)}")
    result = float(value)
    if not math.isfinite(result):
        raise ValueError("expected a finite number")
    return result


def validate(struct: StructSpec, payload: object, *, key: str) -> Assignments:
    """Check ``payload`` (a JSON object, or null/missing for an empty struct).

    A field of the catalogue that the loaded binding lacks is refused with the reason recorded
    in ``struct.unavailable`` (it names the field and the binding version), never dropped.
    """
    if payload is None:
        return ()
    if not isinstance(payload, dict):
        raise ProtocolError(Code.BAD_REQUEST, f"{key}: expected an object")
    fields = struct.by_name
    out: list[tuple[str, Any]] = []
    for name, value in payload.items():
        spec = fields.get(name)
        if spec is None:
            reason = struct.unavailable.get(name, "unknown field")
            raise ProtocolError(Code.BAD_REQUEST, f"{key}.{name}: {reason}")
        try:
            out.append((name, check_field(spec, value)))
        except ValueError as exc:
            raise ProtocolError(Code.BAD_REQUEST, f"{key}.{name}: {exc}") from None
    return tuple(out)


def instrument_list(value: object, *, max_items: int, max_len: int = 80) -> list[str]:
    """The md ``InstrumentID`` list: an array of non-empty ASCII strings."""
    if isinstance(value, str):
        raise ProtocolError(
            Code.BAD_REQUEST, "InstrumentID: expected an array of instrument IDs, not a string"
        )
    if not isinstance(value, list):
        raise ProtocolError(Code.BAD_REQUEST, "InstrumentID: expected an array of instrument IDs")
    if not value:
        raise ProtocolError(Code.BAD_REQUEST, "InstrumentID: the list is empty")
    if len(value) > max_items:
        raise ProtocolError(Code.BAD_REQUEST, f"InstrumentID: at most {max_items} per request")
    seen: dict[str, None] = {}
    for i, item in enumerate(value):
        if not isinstance(item, str):
            raise ProtocolError(Code.BAD_REQUEST, f"InstrumentID[{i}]: expected a string")
        if not item or not item.isascii() or not item.isprintable() or " " in item:
            raise ProtocolError(Code.BAD_REQUEST, f"InstrumentID[{i}]: not a valid instrument ID")
        if len(item) > max_len:
            raise ProtocolError(
                Code.BAD_REQUEST, f"InstrumentID[{i}]: at most {max_len} characters"
            )
        seen[item] = None
    return list(seen)
