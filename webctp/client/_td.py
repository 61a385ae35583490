"""The trader (td) client: login, queries, requests, orders."""

from __future__ import annotations

from typing import Any, Literal

import trio

from webctp.protocol.catalogue import load

from ._conn import Connection, Frame, payload_of
from ._errors import ClientError, ConnectionLost, CtpError
from ._orders import OrderBook, OrderState

Direction = Literal["buy", "sell"]
Offset = Literal["open", "close", "close_today", "close_yesterday"]
OrderKind = Literal["limit", "fak", "fok", "market"]

_DIRECTIONS = {"buy": "0", "sell": "1"}
_OFFSETS = {"open": "0", "close": "1", "close_today": "3", "close_yesterday": "4"}
# (OrderPriceType, TimeCondition, VolumeCondition); docs/td_protocol.md "Orders"
_KINDS = {
    "limit": ("2", "3", "1"),
    "fak": ("2", "1", "1"),
    "fok": ("2", "1", "3"),
    "market": ("1", "1", "1"),
}


def _request_name(name: str) -> str:
    return name if name.startswith("Req") else "Req" + name


class Order:
    """The handle :meth:`TdClient.insert_order` returns; its state follows RtnOrder/RtnTrade.

    ``status`` is CTP's OrderStatus (None until the first RtnOrder), ``data`` the last Order
    pushed, ``trades`` its RtnTrade payloads.
    """

    def __init__(self, client: TdClient, state: OrderState) -> None:
        self._client = client
        self._state = state
        self._changed = trio.Event()

    @property
    def request_id(self) -> int:
        return self._state.request_id

    @property
    def status(self) -> str | None:
        return self._state.status

    @property
    def data(self) -> Frame | None:
        return self._state.order

    @property
    def trades(self) -> list[Frame]:
        return list(self._state.trades)

    @property
    def volume_traded(self) -> int:
        return self._state.volume_traded

    @property
    def error(self) -> CtpError | None:
        """Why the order was rejected (:class:`OrderRejected`), if it was."""
        return self._state.error

    @property
    def done(self) -> bool:
        """Rejected, cancelled or completely filled, with all its trades received."""
        return self._state.done

    def _finished(self) -> bool:  # a call, not a property: mypy narrows those across awaits
        return self._state.done

    def _lost(self) -> ConnectionLost | None:
        return self._client.closed

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def changed(self) -> None:
        """Wait for the next RtnOrder/RtnTrade/rejection of this order; raises
        :class:`ConnectionLost` once the connection is gone."""
        if self._client.closed is not None:
            raise self._client.closed
        await self._changed.wait()
        lost = self._lost()
        if lost is not None and not self._finished():
            raise lost

    async def wait_done(self) -> Order:
        """Wait until the order is filled or cancelled; raises :class:`OrderRejected` when it
        was refused (by CTP or the exchange)."""
        while not self._finished():
            await self.changed()
        if self._state.error is not None:
            raise self._state.error
        return self

    async def wait_accepted(self) -> Order:
        """Wait for the exchange's acceptance (an OrderSysID) or the end of the order."""
        while self._state.sys_key is None and not self._finished():
            await self.changed()
        if self._state.error is not None:
            raise self._state.error
        return self

    async def cancel(self) -> Order:
        """Cancel the order and wait until it is done (cancelled, or filled meanwhile).

        Raises :class:`CtpError` when the cancel is refused (e.g. 26: already filled or
        cancelled, when the order completed before the cancel arrived)."""
        if self._state.order is None:
            await self.wait_accepted()
        if self._finished():
            return self
        order = self._state.order or {}
        action: Frame = {
            "ActionFlag": "0",
            "InstrumentID": order.get("InstrumentID", ""),
            "ExchangeID": order.get("ExchangeID", ""),
        }
        if self._state.sys_key is not None:
            action["OrderSysID"] = order["OrderSysID"]
        else:
            action.update(
                FrontID=order.get("FrontID", 0),
                SessionID=order.get("SessionID", 0),
                OrderRef=order.get("OrderRef", ""),
            )
        conn = self._client
        rid = conn.request_id()
        answer = conn.expect_answer(rid)
        try:
            await conn.send(
                {"MsgType": "ReqOrderAction", "InputOrderAction": action, "RequestID": rid}
            )
            async with trio.open_nursery() as nursery:

                async def refused() -> None:
                    await answer.done.wait()
                    nursery.cancel_scope.cancel()

                nursery.start_soon(refused)
                while not self._finished():
                    await self.changed()
                nursery.cancel_scope.cancel()
        finally:
            conn.forget_answer(rid)
        if answer.error is not None and not self._finished():
            raise answer.error
        return self

    def __repr__(self) -> str:
        return (
            f"<Order rid={self.request_id} status={self.status!r} "
            f"traded={self.volume_traded} done={self.done}>"
        )


class TdClient(Connection):
    """A trader session. Create it with :func:`webctp.client.connect_td`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._book = OrderBook()
        self._orders: dict[int, Order] = {}  # by id(OrderState): orders not done yet
        self._exchanges: dict[str, str] = {}

    async def login(
        self,
        user_id: str,
        password: str,
        *,
        broker_id: str = "",
        **fields: Any,
    ) -> Frame:
        """Log in (webctp connects, authenticates, logs in and confirms the settlement);
        the RspUserLogin payload. Raises :class:`CtpError` naming the step that failed."""
        payload = {"UserID": user_id, "Password": password, **fields}
        if broker_id:
            payload["BrokerID"] = broker_id
        rows = await self.call({"MsgType": "ReqUserLogin", "ReqUserLogin": payload})
        login = payload_of(rows[-1]) or {}
        self.session = login
        self.on_login(login)
        return login

    def on_login(self, login: Frame) -> None:
        self._book.front_session = (int(login.get("FrontID", 0)), int(login.get("SessionID", 0)))

    async def logout(self) -> None:
        await self.call({"MsgType": "ReqUserLogout", "UserLogout": {}})

    async def request(self, msg_type: str, payload: Frame | None = None) -> list[Frame]:
        """Any trader request (``"ReqQryOrder"`` or ``"QryOrder"``); its answer frames up to
        IsLast. Raises :class:`CtpError` on an error answer."""
        name = _request_name(msg_type)
        spec = load().td.requests.get(name)
        key = spec.payload_key if spec is not None else name[3:]
        return await self.call({"MsgType": name, key: payload or {}})

    async def query(self, msg_type: str, payload: Frame | None = None) -> list[Frame]:
        """A query's rows (payloads; ``[]`` for an empty result), collected until IsLast."""
        rows = await self.request(msg_type, payload)
        return [p for p in map(payload_of, rows) if p is not None]

    async def exchange_of(self, instrument_id: str) -> str:
        """The ExchangeID of an instrument (asked once, then remembered)."""
        if instrument_id not in self._exchanges:
            rows = await self.query("QryInstrument", {"InstrumentID": instrument_id})
            if not rows:
                raise ClientError(f"no instrument {instrument_id!r}")
            self._exchanges[instrument_id] = str(rows[0].get("ExchangeID", ""))
        return self._exchanges[instrument_id]

    async def insert_order(
        self,
        instrument_id: str,
        direction: Direction,
        volume: int,
        price: float = 0.0,
        *,
        offset: Offset = "open",
        kind: OrderKind = "limit",
        exchange_id: str = "",
        **fields: Any,
    ) -> Order:
        """Place an order; returns its :class:`Order` handle at once (no answer is awaited:
        CTP answers an accepted order only with RtnOrder). ``fields`` are further
        ``InputOrder`` fields (CTP names), which win over the ones built here."""
        price_type, time_cond, volume_cond = _KINDS[kind]
        order: Frame = {
            "InstrumentID": instrument_id,
            "ExchangeID": exchange_id or await self.exchange_of(instrument_id),
            "Direction": _DIRECTIONS[direction],
            "CombOffsetFlag": _OFFSETS[offset],
            "CombHedgeFlag": "1",
            "OrderPriceType": price_type,
            "LimitPrice": price,
            "VolumeTotalOriginal": volume,
            "TimeCondition": time_cond,
            "VolumeCondition": volume_cond,
            "MinVolume": 1,
            "ContingentCondition": "1",
            "ForceCloseReason": "0",
            **fields,
        }
        rid = self.request_id()
        state = OrderState(rid, order)
        handle = Order(self, state)
        self._book.placed(state)
        self._orders[id(state)] = handle
        try:
            await self.send({"MsgType": "ReqOrderInsert", "InputOrder": order, "RequestID": rid})
        except BaseException:
            self._book.forget(state)
            del self._orders[id(state)]
            raise
        return handle

    def on_frame(self, frame: Frame) -> bool:
        msg_type = frame.get("MsgType")
        state: OrderState | None = None
        if msg_type == "RtnOrder":
            state = self._book.on_order(frame.get("Order") or {})
        elif msg_type == "RtnTrade":
            state = self._book.on_trade(frame.get("Trade") or {})
        elif msg_type in ("RspOrderInsert", "ErrRtnOrderInsert"):
            error = CtpError.from_frame(frame)
            if error.error_id != 0:
                state = self._book.on_insert_error(frame, error)
        if state is None:
            return False  # not one of ours: still offered to push listeners
        handle = self._orders.get(id(state))
        if handle is not None:
            if state.done:
                self._book.forget(state)
                del self._orders[id(state)]
            handle._notify()
        self._publish(frame)
        return True

    def on_closed(self) -> None:
        for handle in list(self._orders.values()):
            handle._notify()
