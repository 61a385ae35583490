"""The exchange's state, shared by the engine's parts (trading, queries, settlement).

Everything here is owned by the engine thread: no locks, no other thread touches it. Output
goes to ``outbox`` (callbacks, flushed to the dispatcher after each batch of work) and to
``dirty_*`` sets (flushed to SQLite at the same moment).
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from datetime import date, datetime
from typing import Any

from ._calendar import DAY_SESSIONS, Clock, TradingCalendar, in_session, ymd
from ._dispatcher import Job
from ._errors import rsp_info
from ._instruments import ExchangeInfo, Instrument, Product
from ._ledger import Account
from ._market import MarketState
from ._orders import OrderRec
from ._session import Conn
from ._settings import SimSettings
from ._store import Store
from ._struct_base import Struct
from ._structs import CThostFtdcRspInfoField

_LAST_HOUR = {
    name: (int(end[:2]) * 60 + int(end[3:5]) - 60, int(end[:2]) * 60 + int(end[3:5]))
    for name, sessions in DAY_SESSIONS.items()
    for end in [sessions[-1][1]]
}
"""Session kind → (first, last + 1) minute of the day session's last hour."""

FlowEntry = tuple[int, str, tuple[Any, ...]]
"""(sequence, Spi method, args) of the private flow."""


class EngineState:
    """Attributes and small helpers every part of the engine uses."""

    settings: SimSettings
    clock: Clock
    cal: TradingCalendar
    rng: random.Random
    store: Store
    products: dict[str, Product]
    exchange_infos: dict[str, ExchangeInfo]
    trading_day: str
    instruments: dict[str, Instrument]
    markets: dict[str, MarketState]
    accounts: dict[str, Account]
    orders: list[OrderRec]
    user_orders: dict[str, list[OrderRec]]
    user_working: dict[str, dict[int, OrderRec]]
    """Each user's orders that were not final when last looked at (see working_orders)."""
    orders_by_key: dict[tuple[int, int, str], OrderRec]
    orders_by_sysid: dict[tuple[str, str], OrderRec]
    trades: list[tuple[str, dict[str, Any]]]
    flows: dict[str, list[FlowEntry]]
    sessions: dict[str, set[Conn]]
    counters: dict[str, int]
    outbox: list[Job]
    dirty_accounts: set[str]
    dirty_orders: dict[int, OrderRec]
    """Orders changed since the last commit, by sequence number."""
    settlement_id: int
    flow_marks: dict[tuple[str, str], int]
    market_clock: int
    unbooked: set[str]
    """Instruments whose market trades filled resting orders not booked yet."""
    """Market-clock steps so far; each MarketState catches up to it when looked at."""
    """(flow path, investor) → last private-flow sequence delivered (THOST_TERT_RESUME)."""

    # ---------------------------------------------------------------- time

    def now(self) -> datetime:
        return self.clock()

    def now_hms(self) -> str:
        return self.clock().strftime("%H:%M:%S")

    def today(self) -> date:
        return self.clock().date()

    def calendar_day(self) -> str:
        return ymd(self.clock().date())

    # ---------------------------------------------------------------- market

    CATCH_UP_STEPS = 64
    """Most steps replayed at once for an instrument nobody watched (bounded work)."""

    def touch(self, instrument_id: str) -> MarketState:
        """The instrument's market, brought up to the market clock with a current book.

        Instruments nobody subscribes to and nobody has orders in are not stepped on every
        clock tick (hundreds of them would cost CPU for nothing); their random walk is caught
        up here, when an order, a query or a position valuation looks at them.
        """
        st = self.markets[instrument_id]
        behind = self.market_clock - st.clock_at
        if behind > 0 and not st.replayed:
            self.mark_hour(st)
            st.clock_at = self.market_clock
            p = st.instrument.product
            s = self.settings
            if not s.enforce_sessions or in_session(self.now(), p.sessions, p.night, self.cal):
                for _ in range(min(behind, self.CATCH_UP_STEPS)):
                    st.step(self.rng, p.volatility, s.max_step_ticks)
                if st.pending or st.book.moved:  # booked before this batch's commit
                    self.unbooked.add(instrument_id)
        st.ensure_book(self.rng, (self.settings.book_volume_min, self.settings.book_volume_max))
        return st

    def mark_hour(self, st: MarketState) -> None:
        """Before trades are recorded: do they count in the last-hour settlement average?"""
        if st.last_hour_rule:
            now = self.clock()
            start, end = _LAST_HOUR[st.instrument.product.sessions]
            st.last_hour = start <= now.hour * 60 + now.minute < end

    def working_orders(self, user_id: str) -> list[OrderRec]:
        """The user's orders that are not final. An order only ever becomes final, so the set
        is pruned here, lazily, and the funds and position figures never walk the whole day's
        orders (they did: O(orders) per order insert)."""
        working = self.user_working.get(user_id)
        if not working:
            return []
        for seq in [seq for seq, o in working.items() if o.is_final]:
            del working[seq]
        return list(working.values())

    def add_order(self, order: OrderRec) -> None:
        """Index a new (or restored) order by user."""
        self.orders.append(order)
        self.user_orders.setdefault(order.user_id, []).append(order)
        if not order.is_final:
            self.user_working.setdefault(order.user_id, {})[order.seq] = order

    # ---------------------------------------------------------------- counters

    def next_id(self, name: str) -> int:
        value = self.counters.get(name, 0) + 1
        self.counters[name] = value
        return value

    # ---------------------------------------------------------------- output

    def emit(self, conn: Conn, method: str, *args: Any, ends_query: bool = False) -> None:
        """Queue one callback for one session (dropped if the session has ended meanwhile)."""
        if conn.alive:
            self.outbox.append(Job(conn.api, method, args, ends_query))

    def respond(
        self,
        conn: Conn,
        method: str,
        rows: Iterable[Struct | None],
        request_id: int,
        info: CThostFtdcRspInfoField | None = None,
        is_query: bool = True,
    ) -> None:
        """One callback per row, IsLast on the last; none → one callback with None (CTP)."""
        items = list(rows)
        if not items:
            items = [None]
        last = len(items) - 1
        for i, row in enumerate(items):
            self.emit(
                conn, method, row, info, request_id, i == last, ends_query=is_query and i == last
            )

    def rsp_error(self, conn: Conn, request_id: int, error_id: int, msg: str | None = None) -> None:
        self.emit(conn, "OnRspError", rsp_info(error_id, msg), request_id, True)

    def push_private(self, user_id: str, method: str, *args: Any) -> None:
        """A private-flow message: recorded for RESTART replay and sent to every session."""
        flow = self.flows.setdefault(user_id, [])
        seq = len(flow) + 1
        flow.append((seq, method, args))
        for conn in self.sessions.get(user_id, ()):
            if conn.alive:
                self.outbox.append(Job(conn.api, method, args))
                self.flow_marks[(conn.api._sim_flow_path, user_id)] = seq

    def account_of(self, conn: Conn) -> Account | None:
        return self.accounts.get(conn.user_id) if conn.user_id else None

    def mark_dirty(self, user_id: str) -> None:
        self.dirty_accounts.add(user_id)
