"""The exchange's engine thread: owns all state and does all the work, one event at a time.

Requests from API objects, the market clock, fault injection and test hooks all arrive through
one inbox and are handled in order on this thread, so the exchange's state needs no locks.
What a batch of work changed is committed to SQLite first; only then are the callbacks it
produced handed to the dispatcher thread, so no client hears of an order or a trade that a
crash could take back. When the commit fails (another process holds the write lock, the disk
is full), the callbacks stay held, nothing is lost or half told, the commit is retried every
``RETRY_S`` and trading requests are refused (-1) until it succeeds; ``health()`` says so.
"""

from __future__ import annotations

import concurrent.futures
import heapq
import itertools
import logging
import queue
import random
import sqlite3
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

from . import _errors as E
from ._calendar import Clock, TradingCalendar, parse_ymd, ymd
from ._dispatcher import Dispatcher, Job, yield_gil
from ._instruments import exchange_infos, listed_instruments, load_products
from ._ledger import Account, row_key_text
from ._market import Level, MarketState
from ._orders import OrderRec
from ._passwords import KdfWorker, LoginCache, hash_password, verify
from ._replay import ReplayRow, load, sample_path
from ._session import Conn
from ._settings import USER_ID_RE, SimSettings
from ._settlement import Settlement
from ._store import Store
from ._structs import (
    CThostFtdcRspAuthenticateField,
    CThostFtdcRspUserLoginField,
    CThostFtdcSpecificInstrumentField,
    CThostFtdcTradeField,
    CThostFtdcUserLogoutField,
    CThostFtdcUserPasswordUpdateField,
)
from ._trading import rate_ok

THOST_TERT_RESTART, THOST_TERT_RESUME, THOST_TERT_QUICK = 0, 1, 2
FRONTS = 8
RETRY_S = 0.25
"""While commits fail, how often the held batch is tried again."""
RETRY_WAIT_S = 0.01
"""How long such a retry waits for a foreign write lock."""

log = logging.getLogger("webctp.sim")


class _Raised:
    """What a ``call`` raised, kept until its batch is flushed."""

    __slots__ = ("exc",)

    def __init__(self, exc: BaseException) -> None:
        self.exc = exc


@dataclass(frozen=True)
class BurstResult:
    """What ``Exchange.burst_ticks`` did."""

    ticks: int
    """Ticks built (one struct each, shared by all its subscribers)."""
    deliveries: int
    """OnRtnDepthMarketData calls made."""
    seconds: float
    """From the first tick built to the last callback returned."""
    emit_seconds: float = 0.0
    """With ``prepared``: from the first callback to the last (the building is not in it);
    otherwise the same as ``seconds``."""
    emit_cpu_seconds: float = 0.0
    """CPU time of the whole process (every thread) over ``emit_seconds``."""


class Engine(Settlement):
    """All of the exchange's state and behaviour; runs on its own thread."""

    def _reset_day_state(self) -> None:
        """Orders, trades and private flows belong to one trading day."""
        self.orders = []
        self.user_orders = {}
        self.user_working = {}
        self.orders_by_key = {}
        self.orders_by_sysid = {}
        self.trades = []
        self.flows = {}
        self.flow_marks = {}

    def __init__(self, settings: SimSettings, clock: Clock, dispatcher: Dispatcher) -> None:
        self.settings = settings
        self.clock = clock
        self.dispatcher = dispatcher
        self.cal = TradingCalendar(settings.holidays)
        seed = settings.seed if settings.seed >= 0 else random.SystemRandom().randrange(2**32)
        self.rng = random.Random(seed)
        self.products = load_products(settings)
        self.exchange_infos = exchange_infos()
        self.store = Store(
            settings.db_path,
            busy_timeout_s=settings.db_busy_timeout_s,
            synchronous=settings.db_synchronous,
        )
        self.logins = LoginCache()
        self.kdf = KdfWorker(settings.name)
        self._held: list[Job] = []
        """Callbacks of batches not committed yet (only while commits fail)."""
        self.store_error: str | None = None
        """Why the last commit failed; None once one succeeded."""
        self._store_failing_since = 0.0
        self._retry_due = False
        self.accepting = True
        """False while commits fail: td ``Req*`` calls return -1 (read by the API threads)."""
        self.accounts = {}
        self._reset_day_state()
        self.sessions = {}
        self.counters = {}
        self.outbox = []
        self.dirty_accounts = set()
        self.dirty_orders = {}
        self.settlement_id = 1
        self._saved_meta: tuple[Any, ...] | None = None  # what _flush last wrote to "meta"
        self.market_clock = 0
        self.unbooked = set()
        self.instruments = {}
        self.markets = {}
        self.md_subs: dict[str, dict[Conn, None]] = {}
        self._md_targets: dict[str, list[Any]] = {}
        self.conns: dict[Any, Conn] = {}  # api -> live connection
        self.front_ids = itertools.count()
        self.session_ids = itertools.count(0x10000 + self.rng.randrange(0x10000))
        self.delay_s = settings.response_delay_s
        self.front_down = False
        self._inbox: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._replies: list[tuple[concurrent.futures.Future[Any], Any]] = []
        """Results of this batch's ``call`` items, handed over after its flush."""
        self._timers: list[tuple[float, int, Callable[[], None]]] = []
        self._timer_seq = itertools.count()
        self._running = False
        self._thread = threading.Thread(target=self._run, name="sim-engine", daemon=True)
        self._td_handlers: dict[str, Callable[[Conn, Any, int, float], None]] = {
            "ReqAuthenticate": self.req_authenticate,
            "ReqUserLogin": self.req_user_login,
            "ReqUserLogout": self.req_user_logout,
            "ReqUserPasswordUpdate": self.req_user_password_update,
            "ReqSettlementInfoConfirm": self.req_settlement_info_confirm,
            "ReqOrderInsert": self.req_order_insert,
            "ReqOrderAction": self.req_order_action,
        }
        self._queries = self.query_handlers()
        self.replay_rows: list[ReplayRow] = []
        if settings.replay_path:
            path = sample_path() if settings.replay_path == "sample" else settings.replay_path
            self.replay_rows = load(path, settings.replay_rename)
        self.replay_ids = {row.instrument_id for row in self.replay_rows}
        self.replay_pos = 0
        self._replay_volume: dict[str, int] = {}
        self._replay_unknown: set[str] = set()
        self._restore()

    # ================================================================ state: load, days

    def _restore(self) -> None:
        store = self.store
        funds = store.all("accounts")
        legacy = store.all("positions")  # one document per account, from older versions
        lots = store.lots()
        rows = store.position_rows()
        for user, doc in funds.items():
            old = legacy.get(user)
            if old is not None:
                acc = Account.from_docs(user, doc, old.get("details", []), old.get("rows", []))
                acc.mark_rewrite()  # into lots/position_rows; the old document goes
                self.mark_dirty(user)
            else:
                user_rows = [(key.split("|"), data) for key, data in rows.get(user, [])]
                acc = Account.from_docs(user, doc, lots.get(user, []), user_rows)
            self.accounts[user] = acc
        self.counters = dict(store.get_meta("counters") or {})
        self.settlement_id = int(store.get_meta("settlement_id") or 1)
        clock_day = ymd(self.cal.trading_day(self.clock()))
        stored_day = store.get_meta("trading_day")
        for user, password in self.settings.fixed_accounts.items():
            if user not in self.accounts:
                self.accounts[user] = Account(
                    user,
                    hash_password(password, self.settings.password_scrypt_n),
                    self.settings.starting_balance,
                    open_date=clock_day,
                )
                self.logins.remember(user, password)
                self.mark_dirty(user)
        if stored_day is None:
            self.open_day(clock_day, {})
        else:
            market_docs = store.all("market")
            self.trading_day = stored_day
            self.open_day(stored_day, {}, market_docs)
            for user, doc in store.orders(stored_day):
                order = OrderRec.from_doc(user, doc)
                self._index_order(order)
            for user, data in store.trades(stored_day):
                self.trades.append((user, data))
            self._rebuild_flows()
            if self.settings.auto_settle and clock_day > stored_day:
                self.settle(clock_day)
        self._flush()

    def _index_order(self, order: OrderRec) -> None:
        f = order.fields
        self.add_order(order)
        self.orders_by_key[(int(f["FrontID"]), int(f["SessionID"]), str(f["OrderRef"]))] = order
        if str(f["OrderSysID"]).strip():
            self.orders_by_sysid[(str(f["ExchangeID"]), str(f["OrderSysID"]).strip())] = order
        st = self.markets.get(order.instrument_id)
        if not order.is_final and order.limit is not None and f["OrderSysID"] and st:
            st.book.restore(order)  # at its stored place in the queue

    def _rebuild_flows(self) -> None:
        """After a restart the private flow is rebuilt from what was stored: each order's
        latest state and each trade, in sequence order (the intermediate returns are gone)."""
        events: list[tuple[str, str, Any]] = []
        for order in self.orders:
            events.append((str(order.fields["InsertTime"]), "OnRtnOrder", order))
        for user, t in self.trades:
            events.append((str(t["TradeTime"]), "OnRtnTrade", (user, t)))
        events.sort(key=lambda e: e[0])
        for _, method, item in events:
            if method == "OnRtnOrder":
                self.push_private(item.user_id, method, item.snapshot())
            else:
                user, t = item
                self.push_private(user, method, CThostFtdcTradeField._sim_make(**t))
        self.outbox.clear()

    def open_day(
        self,
        day: str,
        carry: dict[str, tuple[float, float, float]],
        market_docs: dict[str, Any] | None = None,
    ) -> None:
        """Start trading day ``day``: list its contracts and open their markets."""
        self.trading_day = day
        self._reset_day_state()
        self.instruments = listed_instruments(self.products, parse_ymd(day), self.cal)
        docs = market_docs or {}
        vol = (self.settings.book_volume_min, self.settings.book_volume_max)
        markets: dict[str, MarketState] = {}
        for iid, inst in self.instruments.items():
            doc = docs.get(iid)
            if doc is not None and doc.get("day") == day:
                pre_settle = float(doc["pre_settlement"])
                pre_close = float(doc["pre_close"])
                pre_oi = float(doc["pre_oi"])
                last = float(doc.get("last", pre_close))
                vwap = [float(x) for x in doc.get("vwap", [0.0] * 4)]
            elif iid in carry:
                pre_settle, pre_close, pre_oi = carry[iid]
                last = pre_close
            else:
                # seed: the product's price level, a little contango by month, a random start
                base = inst.product.price * (1 + 0.002 * inst.rank)
                pre_settle = inst.round(round(base / inst.tick) * inst.tick)
                pre_close = pre_settle
                pre_oi = float(self.rng.randint(1000, 200_000) // (1 + inst.rank))
                last = pre_close
            st = MarketState.start_of_day(inst, pre_settle, pre_close, pre_oi, self.rng, vol)
            st.last = min(max(inst.round(last), st.lower), st.upper)
            st.rebuild_book(self.rng, vol)
            st.stamp(self.clock())
            st.clock_at = self.market_clock
            st.replayed = iid in self.replay_ids
            if doc is not None and doc.get("day") == day:
                st.vwap = vwap
            markets[iid] = st
        self.markets = markets
        self._md_targets.clear()
        for acc in self.accounts.values():
            self.mark_dirty(acc.user_id)
        self.store.set_meta("trading_day", day)
        self._save_markets()

    def _save_markets(self) -> None:
        self.store.clear_market()
        for iid, st in self.markets.items():
            self.store.put(
                "market",
                iid,
                {
                    "day": self.trading_day,
                    "pre_settlement": st.pre_settlement,
                    "pre_close": st.pre_close,
                    "pre_oi": st.pre_open_interest,
                    "last": st.last,
                    "vwap": st.vwap,
                },
            )

    def _write_dirty(self) -> None:
        """Queue what changed since the last batch for the next commit."""
        store = self.store
        if self.dirty_accounts:
            for user in self.dirty_accounts:
                acc = self.accounts.get(user)
                if acc is None:
                    continue
                store.put("accounts", user, acc.funds_doc())
                changes = acc.take_changes()
                if changes is None:
                    continue
                if changes.rewrite:
                    store.clear_positions(user)
                for lot in changes.lots:
                    store.put_lot(user, lot.lot_id, asdict(lot))
                for key, stats in changes.rows:
                    store.put_position_row(user, row_key_text(key), asdict(stats))
            self.dirty_accounts.clear()
        if self.dirty_orders:
            for seq, order in self.dirty_orders.items():
                store.put_order(self.trading_day, seq, order.user_id, order.doc())
            self.dirty_orders.clear()
        meta = (self.settlement_id, tuple(self.counters.items()))
        if meta != self._saved_meta:  # not on every batch: ticks change neither
            store.set_meta("counters", self.counters)
            store.set_meta("settlement_id", self.settlement_id)
            self._saved_meta = meta

    def _flush(self) -> None:
        """Commit the batch, then hand its callbacks to the dispatcher.

        The counters (OrderSysID, TradeID, …) are committed with the orders and trades that
        used them, so after a crash no number a client has seen is given out again. If the
        commit fails, the callbacks wait in ``_held`` (market data, which nothing stored
        depends on, goes on) and the commit is tried again every ``RETRY_S``, without waiting
        for the lock (the engine's other work never waits behind a foreign lock for longer
        than ``db_busy_timeout_s`` once).
        """
        self._write_dirty()
        if self.outbox:
            self._held.extend(self.outbox)
            self.outbox = []
        failing = self.store_error is not None
        if failing and not self._retry_due:
            self._release_market_data()
            return
        try:
            self.store.commit(wait_s=RETRY_WAIT_S if failing else None)
        except sqlite3.Error as exc:
            self._commit_failed(exc)
            return
        if failing:
            log.warning(
                "event=sim_store_recovered after_s=%.1f",
                time.monotonic() - self._store_failing_since,
            )
            self.store_error = None
            self.accepting = True
        if self._held:
            jobs, self._held = self._held, []
            self.dispatcher.post(jobs)

    def _release_market_data(self) -> None:
        held = self._held
        if any(not _needs_commit(job) for job in held):
            self.dispatcher.post([job for job in held if not _needs_commit(job)])
            self._held = [job for job in held if _needs_commit(job)]

    def _commit_failed(self, exc: sqlite3.Error) -> None:
        if self.store_error is None:
            self._store_failing_since = time.monotonic()
            log.error(
                "event=sim_store_error db=%s error=%r action=holding_callbacks_and_retrying",
                self.settings.db_path,
                str(exc),
            )
        self.store_error = f"{type(exc).__name__}: {exc}"
        self.accepting = False
        self._release_market_data()
        self._retry_due = False
        self.schedule(RETRY_S, self._retry_commit)

    def _retry_commit(self) -> None:
        self._retry_due = True  # the flush after the timers tries the commit again

    def health(self) -> str | None:
        """None while the engine works; otherwise what is wrong, for /healthz."""
        if self._running and not self._thread.is_alive():
            return "simulator engine thread has stopped"
        error = self.store_error
        if error is not None:
            since = time.monotonic() - self._store_failing_since
            return f"simulator database writes failing for {since:.1f} s ({error})"
        return None

    # ================================================================ thread, inbox, timers

    def start(self) -> None:
        self._running = True
        self.kdf.start()
        self._thread.start()
        if self.settings.tick_interval_s > 0:
            self.schedule(self.settings.tick_interval_s, self._clock_tick)
        if self.replay_rows and self.settings.replay_speed > 0:
            self.schedule(0.0, self._replay_next)

    def stop(self) -> None:
        if self._thread.is_alive():
            self._inbox.put(("stop",))
            self._thread.join(10.0)
        self._running = False
        self.kdf.stop()
        self._save_markets()
        self.store.close()  # what cannot be committed now was never told to anyone

    def is_engine_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def post(self, *item: Any) -> None:
        self._inbox.put(item)

    def call(self, fn: Callable[..., Any], *args: Any, timeout: float = 30.0) -> Any:
        """Run ``fn(*args)`` on the engine thread and return its result."""
        if self.is_engine_thread() or not self._thread.is_alive():
            result = fn(*args)
            if not self._thread.is_alive():
                self._flush()
            return result
        fut: concurrent.futures.Future[Any] = concurrent.futures.Future()
        self._inbox.put(("call", fn, args, fut))
        return fut.result(timeout)

    def schedule(self, delay: float, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the engine thread after ``delay`` seconds (engine thread only)."""
        heapq.heappush(self._timers, (time.monotonic() + delay, next(self._timer_seq), fn))

    def _run(self) -> None:
        while True:
            try:
                if self._run_once():
                    return
            except Exception:  # a bug in one batch must not stop the exchange
                log.exception("event=sim_engine_error")

    def _run_once(self) -> bool:
        """Wait for work, handle one batch, commit and post it; True once stopped."""
        inbox = self._inbox
        timeout = None
        if self._timers:
            timeout = max(0.0, self._timers[0][0] - time.monotonic())
        try:
            item = inbox.get(timeout=timeout)
        except queue.Empty:
            item = None
        batch = [] if item is None else [item]
        while len(batch) < 500:
            try:
                batch.append(inbox.get_nowait())
            except queue.Empty:
                break
        stop = False
        for it in batch:
            if it[0] == "stop":
                stop = True
                break
            try:
                self._handle(it)
            except Exception:  # a bug in one item must not cost the others
                log.exception("event=sim_engine_error item=%s", it[0])
        now = time.monotonic()
        while self._timers and self._timers[0][0] <= now:
            _, _, fn = heapq.heappop(self._timers)
            self._guard(fn)
        while self.unbooked:
            self._guard(lambda: self.book_market_fills(self.unbooked.pop()))
        self._flush()
        # answers to ``call`` only now: what the batch posted is with the callback thread, so
        # a caller's ``drained()`` waits for it (answered earlier, it could overtake them)
        replies, self._replies = self._replies, []
        for fut, outcome in replies:
            try:
                if isinstance(outcome, _Raised):
                    fut.set_exception(outcome.exc)
                else:
                    fut.set_result(outcome)
            except Exception:  # a malformed item must not cost the other callers
                log.exception("event=sim_engine_error item=call")
        return stop

    def _guard(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except Exception:  # noqa: BLE001 - a bug in one event must not stop the exchange
            traceback.print_exc()

    def _handle(self, item: tuple[Any, ...]) -> None:
        kind = item[0]
        if kind == "call":
            _, fn, args, fut = item
            try:
                self._replies.append((fut, fn(*args)))
            except BaseException as exc:  # noqa: BLE001 - handed to the caller
                self._replies.append((fut, _Raised(exc)))
        elif kind == "run":  # a continuation from another thread of the exchange
            _, fn, arg = item
            self._guard(lambda: fn(arg))
        elif kind == "req":
            _, conn, name, struct, rid, t = item
            if self.delay_s > 0:
                self.schedule(self.delay_s, lambda: self._request(conn, name, struct, rid, t))
            else:
                self._guard(lambda: self._request(conn, name, struct, rid, t))

    # ================================================================ connections

    def connect(self, api: Any) -> None:
        """A front connection for ``api`` (engine thread): OnFrontConnected follows."""
        if self.front_down or api._sim_released or api in self.conns:
            return
        # FrontID names one of a few fronts and changes on every (re)connect, like a real
        # front farm; SessionID is unique for the exchange's lifetime
        front_id = 1 + next(self.front_ids) % FRONTS
        conn = Conn(api, api._sim_kind, front_id, next(self.session_ids))
        self.conns[api] = conn
        api._sim_conn = conn
        self.emit(conn, "OnFrontConnected")

    def disconnect(self, api: Any, reason: int | None, reconnect_after: float | None) -> None:
        """End ``api``'s session; with a reason it gets OnFrontDisconnected(reason)."""
        conn = self.conns.pop(api, None)
        if conn is None:
            return
        if reason is not None:
            self.emit(conn, "OnFrontDisconnected", reason)
        self._end_conn(conn)
        if reconnect_after is not None:
            self.schedule(reconnect_after, lambda: self._reconnect(api))

    def _reconnect(self, api: Any) -> None:
        if not api._sim_released and api._sim_engine is self:
            self.connect(api)

    def _end_conn(self, conn: Conn) -> None:
        conn.alive = False
        if conn.api._sim_conn is conn:
            conn.api._sim_conn = None
        conn.api._sim_query_done()
        if conn.user_id:
            sessions = self.sessions.get(conn.user_id)
            if sessions:
                sessions.discard(conn)
        for iid in conn.subscriptions:
            subs = self.md_subs.get(iid)
            if subs is not None:
                subs.pop(conn, None)
                self._md_targets.pop(iid, None)
        conn.subscriptions.clear()

    def drop_all(self, reason: int, reconnect_after: float | None) -> None:
        for api in list(self.conns):
            self.disconnect(api, reason, reconnect_after)

    def set_front_down(self, down: bool) -> None:
        self.front_down = down
        if down:
            for api in list(self.conns):
                self.disconnect(api, 4097, None)

    # ================================================================ requests

    def _request(self, conn: Conn, name: str, struct: Any, rid: int, t: float) -> None:
        if not conn.alive:
            return
        if conn.kind == "md":
            self._md_request(conn, name, struct, rid)
            return
        handler = self._td_handlers.get(name)
        if handler is not None:
            handler(conn, struct, rid, t)
            return
        query = self._queries.get(name)
        if query is not None:
            if not rate_ok_query(conn, t, self.settings.query_per_second):
                self.emit(conn, "OnRspError", E.rsp_info(E.NEED_RETRY), rid, True, ends_query=True)
                return
            if not conn.logged_in:
                self.emit(
                    conn, "OnRspError", E.rsp_info(E.NOT_LOGGED_IN), rid, True, ends_query=True
                )
                return
            self.respond(conn, "OnRsp" + name[3:], query(conn, struct), rid)
            return
        self._not_modelled(conn, name, rid, ends_query=name.startswith("ReqQry"))

    def _not_modelled(self, conn: Conn, name: str, rid: int, *, ends_query: bool) -> None:
        self.emit(
            conn,
            "OnRspError",
            E.rsp_info(E.NO_PRIVILEGE, f"CTP:无此权限 (simulator does not model {name})"),
            rid,
            True,
            ends_query=ends_query,
        )

    # ---------------------------------------------------------------- login sequence

    def req_authenticate(self, conn: Conn, req: Any, rid: int, t: float) -> None:
        s = self.settings
        if (s.app_id and req.AppID != s.app_id) or (s.auth_code and req.AuthCode != s.auth_code):
            self.emit(conn, "OnRspAuthenticate", None, E.rsp_info(E.AUTH_FAILED), rid, True)
            return
        conn.authenticated = True
        conn.app_id = req.AppID
        rsp = CThostFtdcRspAuthenticateField._sim_make(
            BrokerID=req.BrokerID,
            UserID=req.UserID,
            UserProductInfo=req.UserProductInfo,
            AppID=req.AppID,
            AppType="1",
        )
        self.emit(conn, "OnRspAuthenticate", rsp, E.rsp_ok(), rid, True)

    def _login_rsp(self, conn: Conn, req: Any) -> CThostFtdcRspUserLoginField:
        now = self.now_hms()
        return CThostFtdcRspUserLoginField._sim_make(
            TradingDay=self.trading_day,
            LoginTime=now,
            BrokerID=req.BrokerID,
            UserID=req.UserID,
            SystemName=self.settings.system_name,
            FrontID=conn.front_id,
            SessionID=conn.session_id,
            MaxOrderRef="1",
            SHFETime=now,
            DCETime=now,
            CZCETime=now,
            FFEXTime=now,
            INETime=now,
            SysVersion="webctp-sim",
            GFEXTime=now,
        )

    def req_user_login(self, conn: Conn, req: Any, rid: int, t: float) -> None:
        s = self.settings

        def fail(error_id: int) -> None:
            self.emit(conn, "OnRspUserLogin", None, E.rsp_info(error_id), rid, True)

        if conn.logged_in or conn.login_pending:
            fail(E.DUPLICATE_LOGIN)
            return
        if (s.app_id or s.auth_code) and not conn.authenticated:
            fail(E.NOT_AUTHENTICATED)
            return
        user = req.UserID
        if req.BrokerID != s.broker_id or not USER_ID_RE.match(user):
            fail(E.INVALID_LOGIN)
            return
        acc = self.accounts.get(user)
        password = req.Password
        if acc is None:
            if not s.auto_open_accounts:
                fail(E.INVALID_LOGIN)
                return
            self._off_thread(
                conn,
                rid,
                lambda: hash_password(password, self.settings.password_scrypt_n),
                lambda h: self._open(conn, req, rid, h),
            )
        elif self.logins.matches(user, password):
            self._finish_login(conn, req, rid, acc)
        else:
            stored = acc.password_hash
            self._off_thread(
                conn,
                rid,
                lambda: verify(stored, password, self.settings.password_scrypt_n),
                lambda r: self._checked(conn, req, rid, stored, r),
            )

    def _off_thread(
        self, conn: Conn, rid: int, work: Callable[[], Any], then: Callable[[Any], None]
    ) -> None:
        """Run ``work`` (a KDF) on the KDF thread, then ``then(result)`` back here; the
        session is "logging in" meanwhile. A full KDF queue refuses the login at once."""

        def back_here(result: Any) -> None:
            conn.login_pending = False
            if not conn.alive:
                return
            if isinstance(result, Exception):
                log.error("event=sim_login_error error=%r", str(result))
                self.emit(conn, "OnRspUserLogin", None, E.rsp_info(E.INVALID_LOGIN), rid, True)
                return
            then(result)

        conn.login_pending = True
        if not self.kdf.submit(work, lambda result: self.post("run", back_here, result)):
            conn.login_pending = False
            info = E.rsp_info(E.NEED_RETRY, "CTP:登录繁忙，请稍后重试 (too many logins at once)")
            self.emit(conn, "OnRspUserLogin", None, info, rid, True)

    def _open(self, conn: Conn, req: Any, rid: int, password_hash: str) -> None:
        """First login of an auto-opened account, its password hashed."""
        user = req.UserID
        if user in self.accounts:  # opened by another session meanwhile: check against it
            self.req_user_login(conn, req, rid, 0.0)
            return
        acc = Account(
            user, password_hash, self.settings.starting_balance, open_date=self.trading_day
        )
        self.accounts[user] = acc
        self.logins.remember(user, req.Password)
        self.mark_dirty(user)
        self._finish_login(conn, req, rid, acc)

    def _checked(
        self, conn: Conn, req: Any, rid: int, stored: str, result: tuple[bool, str | None]
    ) -> None:
        """The password was checked against ``stored``; a clear-text password of an older
        version that matched is replaced by its hash."""
        acc = self.accounts.get(req.UserID)
        if acc is None or acc.password_hash != stored:  # changed meanwhile: check again
            self.req_user_login(conn, req, rid, 0.0)
            return
        ok, replacement = result
        if not ok:
            self.emit(conn, "OnRspUserLogin", None, E.rsp_info(E.INVALID_LOGIN), rid, True)
            return
        if replacement is not None:
            acc.password_hash = replacement
            self.mark_dirty(acc.user_id)
        self.logins.remember(acc.user_id, req.Password)
        self._finish_login(conn, req, rid, acc)

    def _finish_login(self, conn: Conn, req: Any, rid: int, acc: Account) -> None:
        s = self.settings
        user = acc.user_id
        if conn.logged_in:
            self.emit(conn, "OnRspUserLogin", None, E.rsp_info(E.DUPLICATE_LOGIN), rid, True)
            return
        sessions = self.sessions.setdefault(user, set())
        if s.max_sessions_per_user and len(sessions) >= s.max_sessions_per_user:
            self.emit(conn, "OnRspUserLogin", None, E.rsp_info(E.TOO_MANY_SESSIONS), rid, True)
            return
        conn.user_id = user
        conn.user_product_info = req.UserProductInfo
        sessions.add(conn)
        conn.api._sim_trading_day = self.trading_day
        conn.api._sim_logged_in = True
        self.emit(conn, "OnRspUserLogin", self._login_rsp(conn, req), E.rsp_ok(), rid, True)
        self._replay_private(conn, user)

    def _password_ok(self, acc: Account, password: str) -> bool:
        """Check on this thread (a password change, which needs a login first: rare); a
        clear-text password of an older version is replaced by its hash when it matches."""
        if self.logins.matches(acc.user_id, password):
            return True
        ok, replacement = verify(acc.password_hash, password, self.settings.password_scrypt_n)
        if replacement is not None:
            acc.password_hash = replacement
            self.mark_dirty(acc.user_id)
        if ok:
            self.logins.remember(acc.user_id, password)
        return ok

    def _replay_private(self, conn: Conn, user: str) -> None:
        """Resume the private flow on login as the subscribed resume type asks."""
        resume = conn.private_resume
        flow = self.flows.get(user, [])
        mark_key = (conn.api._sim_flow_path, user)
        if resume == THOST_TERT_RESTART:
            start = 0
        elif resume == THOST_TERT_RESUME:
            start = self.flow_marks.get(mark_key, 0)
        else:
            start = len(flow)
        for _seq, method, args in flow[start:]:
            self.emit(conn, method, *args)
        self.flow_marks[mark_key] = len(flow)

    def req_user_logout(self, conn: Conn, req: Any, rid: int, t: float) -> None:
        if not conn.logged_in:
            self.emit(conn, "OnRspUserLogout", None, E.rsp_info(E.NOT_LOGGED_IN), rid, True)
            return
        user = conn.user_id
        assert user is not None
        self.sessions.get(user, set()).discard(conn)
        conn.user_id = None
        conn.api._sim_logged_in = False
        rsp = CThostFtdcUserLogoutField._sim_make(BrokerID=self.settings.broker_id, UserID=user)
        self.emit(conn, "OnRspUserLogout", rsp, E.rsp_ok(), rid, True)

    def req_user_password_update(self, conn: Conn, req: Any, rid: int, t: float) -> None:
        acc = self.account_of(conn)
        method = "OnRspUserPasswordUpdate"
        if acc is None:
            self.emit(conn, method, None, E.rsp_info(E.NOT_LOGGED_IN), rid, True)
            return
        if req.UserID != acc.user_id or not self._password_ok(acc, req.OldPassword):
            self.emit(conn, method, None, E.rsp_info(E.OLD_PASSWORD_MISMATCH), rid, True)
            return
        acc.password_hash = hash_password(req.NewPassword, self.settings.password_scrypt_n)
        self.logins.remember(acc.user_id, req.NewPassword)
        self.mark_dirty(acc.user_id)
        echo = CThostFtdcUserPasswordUpdateField._sim_make(
            BrokerID=req.BrokerID, UserID=req.UserID, OldPassword="", NewPassword=""
        )
        self.emit(conn, method, echo, E.rsp_ok(), rid, True)

    def req_settlement_info_confirm(self, conn: Conn, req: Any, rid: int, t: float) -> None:
        acc = self.account_of(conn)
        method = "OnRspSettlementInfoConfirm"
        if acc is None:
            self.emit(conn, method, None, E.rsp_info(E.NOT_LOGGED_IN), rid, True)
            return
        acc.confirm_day = self.trading_day
        acc.confirm_date = self.calendar_day()
        acc.confirm_time = self.now_hms()
        self.mark_dirty(acc.user_id)
        self.emit(conn, method, self.confirm_struct(acc), E.rsp_ok(), rid, True)

    # ================================================================ market data

    def _md_request(self, conn: Conn, name: str, struct: Any, rid: int) -> None:
        if name == "ReqUserLogin":
            if conn.logged_in:
                self.emit(conn, "OnRspUserLogin", None, E.rsp_info(E.DUPLICATE_LOGIN), rid, True)
                return
            conn.user_id = struct.UserID
            conn.api._sim_trading_day = self.trading_day
            conn.api._sim_logged_in = True
            self.emit(conn, "OnRspUserLogin", self._login_rsp(conn, struct), E.rsp_ok(), rid, True)
        elif name == "ReqUserLogout":
            user = conn.user_id or struct.UserID
            conn.user_id = None
            conn.api._sim_logged_in = False
            rsp = CThostFtdcUserLogoutField._sim_make(BrokerID=struct.BrokerID, UserID=user)
            self.emit(conn, "OnRspUserLogout", rsp, E.rsp_ok(), rid, True)
        elif name in ("SubscribeMarketData", "UnSubscribeMarketData"):
            self._subscribe(conn, struct, name == "SubscribeMarketData")
        elif name in ("SubscribeForQuoteRsp", "UnSubscribeForQuoteRsp"):
            method = "OnRspSubForQuoteRsp" if name[0] == "S" else "OnRspUnSubForQuoteRsp"
            ids: list[str] = struct
            for i, iid in enumerate(ids):
                spec = CThostFtdcSpecificInstrumentField._sim_make(InstrumentID=iid)
                self.emit(conn, method, spec, E.rsp_ok(), 0, i == len(ids) - 1)
        else:
            self._not_modelled(conn, name, rid, ends_query=False)

    def _subscribe(self, conn: Conn, ids: list[str], subscribe: bool) -> None:
        method = "OnRspSubMarketData" if subscribe else "OnRspUnSubMarketData"
        info = E.rsp_ok() if conn.logged_in else E.rsp_info(E.NOT_LOGGED_IN)
        now = self.clock()
        for i, iid in enumerate(ids):
            spec = CThostFtdcSpecificInstrumentField._sim_make(InstrumentID=iid)
            self.emit(conn, method, spec, info, 0, i == len(ids) - 1)
            if not conn.logged_in:
                continue
            if subscribe:
                conn.subscriptions.add(iid)
                self.md_subs.setdefault(iid, {})[conn] = None
                self._md_targets.pop(iid, None)
                if iid in self.markets:  # CTP pushes the current snapshot right away
                    st = self.touch(iid)
                    self.emit(conn, "OnRtnDepthMarketData", st.tick(self.trading_day, now))
            else:
                conn.subscriptions.discard(iid)
                subs = self.md_subs.get(iid)
                if subs is not None:
                    subs.pop(conn, None)
                    self._md_targets.pop(iid, None)

    def md_targets(self, iid: str) -> list[Any]:
        targets = self._md_targets.get(iid)
        if targets is None:
            subs = self.md_subs.get(iid)
            targets = [c.api for c in subs if c.alive] if subs else []
            self._md_targets[iid] = targets
        return targets

    def _clock_tick(self) -> None:
        self.schedule(self.settings.tick_interval_s, self._clock_tick)
        self.step_market()

    def step_market(self, instrument_ids: list[str] | None = None) -> None:
        """One market-clock step; instruments someone watches move and tick now.

        "Watched" means subscribed by an md session or holding resting orders (which the
        market may now trade through); the others catch up lazily (``touch``).
        """
        now = self.clock()
        if self.settings.auto_settle:
            day = ymd(self.cal.trading_day(now))
            if day > self.trading_day:
                self.settle(day)
        self.market_clock += 1
        td = self.trading_day
        if instrument_ids is None:
            watched = set(self.resting_instruments())
            watched.update(iid for iid, subs in self.md_subs.items() if subs)
            ids = sorted(watched)
        else:
            ids = instrument_ids
        hms = now.strftime("%H:%M:%S")
        for iid in ids:
            if iid not in self.markets or self.markets[iid].replayed:
                continue  # replayed markets tick with their rows
            st = self.touch(iid)
            self.book_market_fills(iid)
            targets = self.md_targets(iid)
            st.stamp(now, hms)
            if targets:
                self.outbox.append(Job(targets, "OnRtnDepthMarketData", (st.tick(td, now),)))

    def _post_tick(self, iid: str, st: MarketState) -> None:
        """Stamp ``iid``'s market now and queue its tick for the md sessions that want it."""
        targets = self.md_targets(iid)
        now = self.clock()
        st.stamp(now)
        if targets:
            self.outbox.append(
                Job(targets, "OnRtnDepthMarketData", (st.tick(self.trading_day, now),))
            )

    def set_market(self, iid: str, price: float, bid: float | None, ask: float | None) -> None:
        st = self.touch(iid)
        self.book_market_fills(iid)
        self.mark_hour(st)
        st.set_last(price)
        self.book_market_fills(iid)
        tick = st.instrument.tick
        st.rebuild_book(
            self.rng,
            (self.settings.book_volume_min, self.settings.book_volume_max),
            bid if bid is not None else st.last - tick,
            ask if ask is not None else st.last + tick,
        )
        self._post_tick(iid, st)

    # ================================================================ replay

    def _replay_next(self) -> None:
        """Timer: apply the next row and schedule the one after it at the recorded pace."""
        if not self.replay_step(1):
            return
        if self.replay_pos < len(self.replay_rows):
            gap = self.replay_rows[self.replay_pos].at - self.replay_rows[self.replay_pos - 1].at
            self.schedule(max(0.0, gap) / self.settings.replay_speed, self._replay_next)
        else:
            log.info("event=sim_replay_done rows=%d", len(self.replay_rows))

    def replay_step(self, n: int) -> int:
        """Apply the next ``n`` rows of the tick file; returns how many there were."""
        done = 0
        while done < n and self.replay_pos < len(self.replay_rows):
            row = self.replay_rows[self.replay_pos]
            self.replay_pos += 1
            done += 1
            self._replay_row(row)
        return done

    def _replay_row(self, row: ReplayRow) -> None:
        iid = row.instrument_id
        st = self.markets.get(iid)
        if st is None:
            if iid not in self._replay_unknown:
                self._replay_unknown.add(iid)
                log.warning("event=sim_replay_unknown_instrument instrument=%s", iid)
            return
        self.book_market_fills(iid)
        self.mark_hour(st)
        inst = st.instrument
        previous = self._replay_volume.get(iid)
        if previous is None:  # the first row sets the day's reference prices
            if row.pre_settlement is not None:
                st.pre_settlement = row.pre_settlement
                st.upper, st.lower = inst.limits(row.pre_settlement)
            st.upper = row.upper if row.upper is not None else st.upper
            st.lower = row.lower if row.lower is not None else st.lower
            previous = row.volume
        self._replay_volume[iid] = row.volume
        lo, hi = st.lower - 1e-9, st.upper + 1e-9
        bids = [Level(p, v) for p, v in row.bids if lo <= p <= hi]
        asks = [Level(p, v) for p, v in row.asks if lo <= p <= hi]
        st.replay(row.last, max(0, row.volume - previous), bids, asks)
        if row.open_interest is not None:
            st.open_interest = row.open_interest
        self.book_market_fills(iid)
        st.update_time, st.update_ms = row.update_time, row.update_ms
        targets = self.md_targets(iid)
        if targets:
            tick = st.tick(self.trading_day, self.clock())
            self.outbox.append(Job(targets, "OnRtnDepthMarketData", (tick,)))

    def market_trade(self, iid: str, price: float, volume: int) -> float:
        """The market's participants trade ``volume`` lots at ``price`` (test hook); returns
        the price the market reached (it stops at a resting order it cannot go through)."""
        st = self.touch(iid)
        self.book_market_fills(iid)
        self.mark_hour(st)
        reached = st.market_trade(price, volume)
        self.book_market_fills(iid)
        st.rebuild_book(self.rng, (self.settings.book_volume_min, self.settings.book_volume_max))
        self._post_tick(iid, st)
        return reached

    def burst(
        self,
        n: int,
        instrument_ids: list[str] | None,
        prepared: bool = False,
        rate: float = 0.0,
    ) -> tuple[int, int]:
        """n ticks back to back to the subscribers (engine thread); returns (ticks, calls).

        Normally the callback thread delivers while this thread goes on building (both need
        the GIL). ``prepared`` builds all n first and hands them over at once, so the callback
        thread then emits them back to back with nothing else of the simulator running: the
        feed of a C++ library, whose thread costs the interpreter only the callbacks. With a
        ``rate`` (ticks per second, prepared only) the callback thread emits them on that
        schedule instead of back to back."""
        ids = instrument_ids or [iid for iid in self.markets if self.md_targets(iid)]
        if not ids:
            return 0, 0
        now = self.clock()
        td = self.trading_day
        calls = 0
        s = self.settings
        vol = (s.book_volume_min, s.book_volume_max)
        hms = now.strftime("%H:%M:%S")
        jobs: list[Job] = []
        for i in range(n):
            st = self.touch(ids[i % len(ids)])
            st.step(self.rng, st.instrument.product.volatility, s.max_step_ticks)
            if st.pending or st.book.moved:  # resting orders traded: booked with the batch
                self.unbooked.add(st.instrument.instrument_id)
            st.ensure_book(self.rng, vol)
            targets = self.md_targets(st.instrument.instrument_id)
            if not targets:
                continue
            st.stamp(now, hms)
            jobs.append(Job(targets, "OnRtnDepthMarketData", (st.tick(td, now),)))
            calls += len(targets)
            if not prepared and len(jobs) >= 16:
                self.outbox.extend(jobs)
                jobs = []
                self._flush()  # what the batch did before the burst is committed first
                yield_gil()  # let the callback and service threads have the GIL
        if prepared and rate > 0:
            start = time.perf_counter() + 0.001
            for k, job in enumerate(jobs):
                job.at = start + k / rate
        self.outbox.extend(jobs)  # handed to the callback thread when this event ends
        return n, calls


def _needs_commit(job: Job) -> bool:
    """Market data (tick fan-outs, md sessions) tells nothing stored: it is never held."""
    target = job.targets
    if isinstance(target, list):
        return False
    return getattr(target, "_sim_kind", "td") != "md"


def rate_ok_query(conn: Conn, t: float, per_second: int) -> bool:
    return rate_ok(conn.query_times, t, per_second)
