"""Order state from RtnOrder/RtnTrade pushes (pure: no I/O, no Trio).

An order is first known by the RequestID of its ReqOrderInsert (webctp copies the envelope's
RequestID into ``InputOrder.RequestID``, so CTP's ``Order.RequestID`` echoes it), then by its
``FrontID``/``SessionID``/``OrderRef`` and, once the exchange accepted it, by
``ExchangeID``/``OrderSysID``, which is how its trades (``RtnTrade``) are matched.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._errors import CtpError, OrderRejected

# CTP OrderStatus: 0 all traded, 1 part traded queueing, 2 part traded not queueing,
# 3 not traded queueing, 4 not traded not queueing, 5 cancelled, a unknown, b/c conditional.
FINAL_STATUSES = frozenset("0245")
SUBMIT_INSERT_REJECTED = "4"

Frame = dict[str, Any]


@dataclass
class OrderState:
    """What is known of one order; ``version`` grows with every change."""

    request_id: int
    input: Frame
    order: Frame | None = None
    trades: list[Frame] = field(default_factory=list)
    error: CtpError | None = None
    version: int = 0

    @property
    def status(self) -> str | None:
        """CTP's OrderStatus character, None before the first RtnOrder."""
        return None if self.order is None else str(self.order.get("OrderStatus", ""))

    @property
    def volume_traded(self) -> int:
        return sum(int(t.get("Volume", 0)) for t in self.trades)

    @property
    def done(self) -> bool:
        """Final (rejected, cancelled or filled) and every trade the order reports is here."""
        if self.error is not None:
            return True
        if self.order is None or self.status not in FINAL_STATUSES:
            return False
        return self.volume_traded >= int(self.order.get("VolumeTraded", 0))

    @property
    def key(self) -> tuple[int, int, str] | None:
        if self.order is None:
            return None
        o = self.order
        return (int(o.get("FrontID", 0)), int(o.get("SessionID", 0)), str(o.get("OrderRef", "")))

    @property
    def sys_key(self) -> tuple[str, str] | None:
        if self.order is None or not str(self.order.get("OrderSysID", "")).strip():
            return None
        return (str(self.order.get("ExchangeID", "")), str(self.order["OrderSysID"]))


class OrderBook:
    """Routes the pushes of one trader session to the orders it placed."""

    def __init__(self) -> None:
        self.front_session: tuple[int, int] = (0, 0)
        self._by_rid: dict[int, OrderState] = {}
        self._by_key: dict[tuple[int, int, str], OrderState] = {}
        self._by_sys: dict[tuple[str, str], OrderState] = {}
        # Trades of this investor not (yet) matched to an order: those of other sessions, or
        # ones that overtook their RtnOrder. Bounded: the oldest are forgotten past the cap.
        self._stray: dict[tuple[str, str], list[Frame]] = {}
        self._stray_cap = 1024

    def placed(self, state: OrderState) -> None:
        self._by_rid[state.request_id] = state

    def waiting(self, request_id: int) -> OrderState | None:
        """The order placed with this RequestID that has no RtnOrder yet."""
        return self._by_rid.get(request_id)

    def on_insert_error(self, frame: Frame, error: CtpError) -> OrderState | None:
        """RspOrderInsert (or ErrRtnOrderInsert) with an error for one of our RequestIDs."""
        rid = frame.get("RequestID")
        if not isinstance(rid, int):
            payload = frame.get("InputOrder") or {}
            rid = payload.get("RequestID")
        state = self._by_rid.pop(rid, None) if isinstance(rid, int) else None
        if state is None or state.error is not None:
            return None
        state.error = OrderRejected(
            error.error_id,
            error.error_msg,
            detail=error.detail,
            msg_type=error.msg_type,
            request=error.request,
            request_id=error.request_id,
            frame=error.frame,
        )
        state.version += 1
        return state

    def on_order(self, order: Frame) -> OrderState | None:
        key = (
            int(order.get("FrontID", 0)),
            int(order.get("SessionID", 0)),
            str(order.get("OrderRef", "")),
        )
        state = self._by_key.get(key)
        if state is None:
            rid = order.get("RequestID")
            if key[:2] != self.front_session or not isinstance(rid, int):
                return None
            state = self._by_rid.pop(rid, None)
            if state is None:
                return None
            self._by_key[key] = state
        state.order = order
        if (
            str(order.get("OrderSubmitStatus", "")) == SUBMIT_INSERT_REJECTED
            and state.error is None
            and state.status == "5"
        ):
            state.error = OrderRejected(
                0, str(order.get("StatusMsg", "")), msg_type="RtnOrder", frame=order
            )
        sys_key = state.sys_key
        if sys_key is not None and sys_key not in self._by_sys:
            self._by_sys[sys_key] = state
            state.trades.extend(self._stray.pop(sys_key, []))
        state.version += 1
        return state

    def on_trade(self, trade: Frame) -> OrderState | None:
        sys_key = (str(trade.get("ExchangeID", "")), str(trade.get("OrderSysID", "")))
        state = self._by_sys.get(sys_key)
        if state is None:
            if len(self._stray) >= self._stray_cap:
                del self._stray[next(iter(self._stray))]
            self._stray.setdefault(sys_key, []).append(trade)
            return None
        state.trades.append(trade)
        state.version += 1
        return state

    def forget(self, state: OrderState) -> None:
        """Stop tracking a finished order."""
        self._by_rid.pop(state.request_id, None)
        if state.key is not None:
            self._by_key.pop(state.key, None)
        if state.sys_key is not None:
            self._by_sys.pop(state.sys_key, None)
