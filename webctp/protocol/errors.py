"""Gateway error codes and the frames that carry them.

CTP's own ErrorIDs (>= 0) pass through unchanged. The negative codes below are the gateway's;
-1/-2/-3 are the values a CTP ``Req*`` call returned (CTP's convention, not ErrorIDs).
"""

from __future__ import annotations

import enum
from typing import Any


class Code(enum.IntEnum):
    CTP_NETWORK = -1
    CTP_TOO_MANY_PENDING = -2
    CTP_TOO_MANY_PER_SECOND = -3
    BAD_REQUEST = -400
    NOT_LOGGED_IN = -401
    UNKNOWN_MSGTYPE = -404
    TIMEOUT = -408
    QUEUE_FULL = -429
    INTERNAL = -500
    LINK_DOWN = -503


MESSAGES: dict[int, str] = {
    Code.CTP_NETWORK: "CTP:请求失败 (network not connected)",
    Code.CTP_TOO_MANY_PENDING: "CTP:未处理请求超过许可数 (too many requests in flight)",
    Code.CTP_TOO_MANY_PER_SECOND: "CTP:每秒发送请求数超过许可数 (too many requests per second)",
    Code.BAD_REQUEST: "bad request",
    Code.NOT_LOGGED_IN: "not logged in",
    Code.UNKNOWN_MSGTYPE: "unknown MsgType",
    Code.TIMEOUT: "request timed out waiting for CTP",
    Code.QUEUE_FULL: "too many requests queued in this session",
    Code.INTERNAL: "internal gateway error",
    Code.LINK_DOWN: "broker link is down",
}

# OnFrontDisconnected reasons (CTP API docs, OnFrontDisconnected).
DISCONNECT_REASONS: dict[int, str] = {
    0x1001: "network read failed",
    0x1002: "network write failed",
    0x2001: "heartbeat receive timeout",
    0x2002: "heartbeat send failure",
    0x2003: "received a bad packet",
}


def disconnect_description(reason: int) -> str:
    return DISCONNECT_REASONS.get(reason, "unknown reason")


class ProtocolError(Exception):
    """A request the gateway refuses before it reaches CTP."""

    def __init__(self, code: int, detail: str = "") -> None:
        super().__init__(detail or MESSAGES.get(code, ""))
        self.code = int(code)
        self.detail = detail


def response_name(request_msg_type: str | None) -> str:
    """The MsgType an error about ``request_msg_type`` is sent under."""
    if request_msg_type and request_msg_type.startswith("Req") and len(request_msg_type) > 3:
        return "Rsp" + request_msg_type[3:]
    return "RspError"


def error_message(
    code: int,
    *,
    request: str | None,
    request_id: int | None,
    detail: str = "",
    error_msg: str | None = None,
    msg_type: str | None = None,
) -> dict[str, Any]:
    """A gateway error frame (a final response: IsLast is true)."""
    frame: dict[str, Any] = {
        "MsgType": msg_type or response_name(request),
        "RspInfo": {"ErrorID": int(code), "ErrorMsg": error_msg or MESSAGES.get(code, "error")},
        "RequestID": request_id,
        "IsLast": True,
        "Request": request,
    }
    if detail:
        frame["Detail"] = detail
    return frame
