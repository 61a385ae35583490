"""Order tracking from pushes, without sockets."""

from __future__ import annotations

from typing import Any

from webctp.client._errors import CtpError, OrderRejected
from webctp.client._orders import OrderBook, OrderState


def order(**fields: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "FrontID": 1,
        "SessionID": 7,
        "OrderRef": "5",
        "RequestID": 3,
        "ExchangeID": "SHFE",
        "OrderSysID": "",
        "OrderStatus": "a",
        "OrderSubmitStatus": "0",
        "VolumeTraded": 0,
    }
    return base | fields


def book_with_order() -> tuple[OrderBook, OrderState]:
    book = OrderBook()
    book.front_session = (1, 7)
    state = OrderState(3, {"InstrumentID": "x"})
    book.placed(state)
    return book, state


def test_first_rtnorder_matched_by_request_id_then_by_key() -> None:
    book, state = book_with_order()
    assert book.on_order(order()) is state and state.status == "a"
    # a later push no longer carries anything but the key
    assert book.on_order(order(RequestID=0, OrderStatus="3", OrderSysID="  1")) is state
    assert state.status == "3" and not state.done


def test_other_sessions_orders_are_not_ours() -> None:
    book, state = book_with_order()
    assert book.on_order(order(SessionID=8)) is None  # same RequestID, another session
    assert state.order is None


def test_trade_before_its_order_is_kept_until_the_order_names_it() -> None:
    book, state = book_with_order()
    book.on_order(order())
    trade = {"ExchangeID": "SHFE", "OrderSysID": "  1", "Volume": 2}
    assert book.on_trade(trade) is None
    book.on_order(order(OrderSysID="  1", OrderStatus="0", VolumeTraded=2))
    assert state.trades == [trade] and state.done


def test_filled_status_waits_for_its_trades() -> None:
    book, state = book_with_order()
    book.on_order(order(OrderSysID="  1", OrderStatus="0", VolumeTraded=2))
    before = state.done  # RtnOrder "all traded" precedes its RtnTrade
    book.on_trade({"ExchangeID": "SHFE", "OrderSysID": "  1", "Volume": 2})
    assert not before and state.done and state.volume_traded == 2


def test_insert_error_and_exchange_rejection() -> None:
    book, state = book_with_order()
    frame = {"MsgType": "RspOrderInsert", "RequestID": 3, "RspInfo": {"ErrorID": 16}}
    book.on_insert_error(frame, CtpError(16, "CTP:找不到合约", msg_type="RspOrderInsert"))
    assert isinstance(state.error, OrderRejected) and state.error.error_id == 16 and state.done

    book, state = book_with_order()
    book.on_order(order(OrderStatus="5", OrderSubmitStatus="4", StatusMsg="no money"))
    assert isinstance(state.error, OrderRejected) and state.error.error_msg == "no money"


def test_stray_trades_are_bounded() -> None:
    book = OrderBook()
    for i in range(5000):
        book.on_trade({"ExchangeID": "SHFE", "OrderSysID": str(i), "Volume": 1})
    assert len(book._stray) <= 1024
