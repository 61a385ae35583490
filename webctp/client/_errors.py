"""The client's exceptions."""

from __future__ import annotations

from typing import Any


class ClientError(Exception):
    """Base of every error this client raises."""


class CtpError(ClientError):
    """An error answer: CTP's ErrorID/ErrorMsg, or one of the gateway's own (-400, -401, ...).

    ``detail`` is the gateway's explanation (absent on CTP's own errors), ``request`` the
    request it answers and ``frame`` the whole frame as received.
    """

    def __init__(
        self,
        error_id: int,
        error_msg: str,
        *,
        detail: str | None = None,
        msg_type: str = "",
        request: str | None = None,
        request_id: int | None = None,
        frame: dict[str, Any] | None = None,
    ) -> None:
        self.error_id = error_id
        self.error_msg = error_msg
        self.detail = detail
        self.msg_type = msg_type
        self.request = request
        self.request_id = request_id
        self.frame = frame or {}
        text = f"{msg_type or 'error'} {error_id}: {error_msg}"
        if detail:
            text += f" ({detail})"
        super().__init__(text)

    @classmethod
    def from_frame(cls, frame: dict[str, Any]) -> CtpError:
        info = frame.get("RspInfo") or {}
        rid = frame.get("RequestID")
        return cls(
            int(info.get("ErrorID", -500)),
            str(info.get("ErrorMsg", "")),
            detail=frame.get("Detail"),
            msg_type=str(frame.get("MsgType", "")),
            request=frame.get("Request"),
            request_id=rid if isinstance(rid, int) else None,
            frame=frame,
        )


class OrderRejected(CtpError):
    """The order was refused: by CTP (RspOrderInsert) or by the exchange (status 5, submit
    status 4 "insert rejected"; ErrorID is then 0 and ErrorMsg the order's StatusMsg)."""


class ConnectionLost(ClientError):
    """The WebSocket to webctp closed (``code``/``reason`` from the close frame, if any)."""

    def __init__(self, code: int | None, reason: str | None) -> None:
        self.code = code
        self.reason = reason
        super().__init__(f"connection to webctp closed (code {code}: {reason or 'no reason'})")


def error_of(frame: dict[str, Any]) -> CtpError | None:
    """The error a response frame carries, or None when it is a success."""
    info = frame.get("RspInfo")
    if isinstance(info, dict) and info.get("ErrorID", 0) != 0:
        return CtpError.from_frame(frame)
    return None
