"""Request envelope parsing: text frame -> ``Envelope``, or a ``ProtocolError``.

``{"MsgType": "ReqQryOrder", "QryOrder": {...}, "RequestID": 7}``
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from .catalogue import INT32_MAX, INT32_MIN
from .errors import Code, ProtocolError


@dataclass(frozen=True, slots=True)
class Envelope:
    msg_type: str
    request_id: int
    body: dict[str, Any]
    """The whole request object (payload keys are looked up in it by the handler)."""


@dataclass(frozen=True, slots=True)
class BadEnvelope:
    """What could be read of a refused request, so that the error frame can name it."""

    error: ProtocolError
    msg_type: str | None
    request_id: int | None


def _request_id(obj: dict[str, Any]) -> int | None:
    rid = obj.get("RequestID", 0)
    if rid is None:
        return 0
    if isinstance(rid, bool) or not isinstance(rid, int):
        return None
    if not INT32_MIN <= rid <= INT32_MAX:
        return None
    return rid


def parse(frame: str | bytes, *, max_bytes: int) -> Envelope | BadEnvelope:
    """Parse one WebSocket message. Never raises."""
    if isinstance(frame, bytes):
        return BadEnvelope(
            ProtocolError(Code.BAD_REQUEST, "binary frames are not supported; send JSON text"),
            None,
            None,
        )
    size = len(frame)
    if size > max_bytes or len(frame.encode("utf-8", "surrogatepass")) > max_bytes:
        return BadEnvelope(
            ProtocolError(Code.BAD_REQUEST, f"message larger than the {max_bytes}-byte limit"),
            None,
            None,
        )
    try:
        obj = orjson.loads(frame)
    except orjson.JSONDecodeError as exc:
        return BadEnvelope(ProtocolError(Code.BAD_REQUEST, f"invalid JSON: {exc}"), None, None)
    if not isinstance(obj, dict):
        return BadEnvelope(
            ProtocolError(
                Code.BAD_REQUEST, f"a request is a JSON object, not {type(obj).__name__}"
            ),
            None,
            None,
        )
    msg_type = obj.get("MsgType")
    rid = _request_id(obj)
    if not isinstance(msg_type, str) or not msg_type:
        return BadEnvelope(
            ProtocolError(Code.BAD_REQUEST, "MsgType is missing or not a non-empty string"),
            None,
            rid,
        )
    if len(msg_type) > 64:
        return BadEnvelope(ProtocolError(Code.BAD_REQUEST, "MsgType is too long"), None, rid)
    if rid is None:
        return BadEnvelope(
            ProtocolError(Code.BAD_REQUEST, "RequestID must be an integer in the int32 range"),
            msg_type,
            None,
        )
    return Envelope(msg_type, rid, obj)
