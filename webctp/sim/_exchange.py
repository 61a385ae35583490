"""``Exchange``: the public handle of one simulated CTP front (trading + market data).

It owns two threads — the engine (all state and work) and the dispatcher (all callbacks of all
its API objects) — and the SQLite connection. Everything it offers beyond starting and
stopping is for tests and demos: fault injection (``drop_fronts``, ``set_front_down``,
``set_response_delay``), settlement on demand, moving the market, and a tick-burst benchmark.
"""

from __future__ import annotations

import threading
import time
import traceback
from types import TracebackType
from typing import Any

from . import _registry
from ._calendar import Clock, beijing_now
from ._dispatcher import Dispatcher
from ._engine import BurstResult, Engine
from ._ports import FrontClient
from ._settings import SimSettings


class Exchange:
    """A simulated CTP exchange, reachable at ``sim://<settings.name>`` once started.

    ``clock`` returns the current Beijing time as a naive datetime; tests pass a fixed one so
    trading days, sessions and timestamps are deterministic.
    """

    def __init__(self, settings: SimSettings | None = None, *, clock: Clock | None = None) -> None:
        self.settings = settings or SimSettings()
        self._clock = clock or beijing_now
        self._dispatcher = Dispatcher(self.settings.name)
        self._engine = Engine(self.settings, self._clock, self._dispatcher)
        self._state = "new"
        self._lock = threading.Lock()
        self._apis: set[FrontClient] = set()
        self._front_months: tuple[object, dict[str, str]] | None = None
        """(the listing it was built from, ProductID → front-month contract)."""

    # ---------------------------------------------------------------- lifecycle

    def start(self) -> Exchange:
        """Start the threads and register the fronts; waiting APIs connect now."""
        with self._lock:
            if self._state != "new":
                raise RuntimeError(f"exchange already {self._state}")
            self._state = "running"
        self._dispatcher.start()
        self._engine.start()
        for api in _registry.register(self):
            self.attach(api)
        return self

    def close(self) -> None:
        """Disconnect every API, stop both threads (joined) and close the database."""
        with self._lock:
            if self._state == "closed":
                return
            was_running = self._state == "running"
            self._state = "closed"
        _registry.unregister(self)
        if was_running:
            apis = list(self._apis)
            self._engine.call(self._engine.drop_all, 4097, None)
            self._engine.stop()
            self._dispatcher.stop()
            for api in apis:
                if not api._sim_released:
                    api._sim_engine = None
                    api._sim_exchange = None
                    _registry.wait_again(api, api._sim_front_names)
        else:
            self._engine.store.close()
        self._apis.clear()

    def __enter__(self) -> Exchange:
        if self._state == "new":
            self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    @property
    def running(self) -> bool:
        return self._state == "running"

    def health(self) -> str | None:
        """None while the exchange works; otherwise one line saying what is wrong (its
        engine thread stopped, its database cannot be written: trading requests get -1 and
        nothing is lost meanwhile). Cheap and safe from any thread, for /healthz."""
        if self._state != "running":
            return f"simulator exchange {self._state}"
        return self._engine.health()

    # ---------------------------------------------------------------- fronts

    @property
    def td_front(self) -> str:
        """The address to pass to ``CThostFtdcTraderApi.RegisterFront``."""
        return f"{_registry.SCHEME}{self.settings.name}"

    @property
    def md_front(self) -> str:
        """The address to pass to ``CThostFtdcMdApi.RegisterFront``."""
        return f"{_registry.SCHEME}{self.settings.name}"

    @property
    def name(self) -> str:
        """The registry name (``sim://<name>``)."""
        return self.settings.name

    def attach(self, api: FrontClient) -> None:
        """Internal: connect an API object (called by ``Init`` or when the exchange starts)."""
        with self._lock:
            if self._state != "running":
                _registry.wait_again(api, api._sim_front_names)
                return
            self._apis.add(api)
        api._sim_exchange = self
        api._sim_engine = self._engine
        self._engine.post("call", self._engine.connect, (api,), _NullFuture())

    def detach(self, api: FrontClient) -> None:
        """Internal: ``Release`` — end the session silently and forget the API."""
        with self._lock:
            self._apis.discard(api)
            running = self._state == "running"
        if running:
            self._engine.call(self._engine.disconnect, api, None, None)
        self._dispatcher.release(api)

    @property
    def dispatcher(self) -> Dispatcher:
        return self._dispatcher

    # ---------------------------------------------------------------- state

    @property
    def trading_day(self) -> str:
        return self._engine.trading_day

    def instrument_ids(self) -> list[str]:
        """Listed contracts of the current trading day."""
        return list(self._engine.call(lambda: list(self._engine.instruments)))

    def front_month(self, product_id: str) -> str | None:
        """The product's nearest listed contract on the current trading day (the one the
        alias ``<product>.front`` stands for), None when no such product is listed.

        Read without the engine thread: a new trading day replaces the listing whole, and
        the product index is rebuilt once per listing (a dict lookup per alias after that).
        """
        listed = self._engine.instruments
        cached = self._front_months
        if cached is None or cached[0] is not listed:
            index = {i.product.product_id: iid for iid, i in listed.items() if i.rank == 0}
            cached = self._front_months = (listed, index)
        return cached[1].get(product_id)

    def last_price(self, instrument_id: str) -> float:
        return float(self._engine.call(lambda: self._engine.markets[instrument_id].last))

    def market(self, instrument_id: str) -> dict[str, Any]:
        """A snapshot of one instrument's market: last, limits, book (for tests and demos)."""

        def snap() -> dict[str, Any]:
            st = self._engine.touch(instrument_id)
            return {
                "last": st.last,
                "pre_settlement": st.pre_settlement,
                "upper": st.upper,
                "lower": st.lower,
                "bids": st.depth(True),
                "asks": st.depth(False),
            }

        result: dict[str, Any] = self._engine.call(snap)
        return result

    # ---------------------------------------------------------------- market control

    def set_market(
        self,
        instrument_id: str,
        price: float,
        *,
        bid: float | None = None,
        ask: float | None = None,
    ) -> None:
        """Move the market to ``price`` as if it traded there: the book is rebuilt around it
        (bid one tick below, ask one tick above unless given), resting orders the move went
        through fill, and subscribers get a tick."""
        self._engine.call(self._engine.set_market, instrument_id, price, bid, ask)

    def market_trade(self, instrument_id: str, price: float, volume: int) -> float:
        """The market's own participants trade ``volume`` lots at ``price``: resting orders
        the price went through fill first, then, at ``price`` itself, the queue ahead of an
        order is consumed before it fills; fills never exceed ``volume``. The market stops at
        a resting order it cannot go through; returns the price it reached."""
        result: float = self._engine.call(self._engine.market_trade, instrument_id, price, volume)
        return result

    def replay_step(self, n: int = 1) -> int:
        """Apply the next ``n`` rows of the replayed tick file now (with ``replay_speed = 0``
        this is the only way rows advance); returns how many rows there were."""
        result: int = self._engine.call(self._engine.replay_step, n)
        return result

    def step_market(self, instrument_ids: list[str] | None = None) -> None:
        """Run one market-clock step now (useful with ``tick_interval_s=0``)."""
        self._engine.call(self._engine.step_market, instrument_ids)

    def burst_ticks(
        self,
        n: int,
        instruments: list[str] | None = None,
        *,
        prepared: bool = False,
        rate: float = 0.0,
    ) -> BurstResult:
        """Benchmark hook: ``n`` ticks back to back from the engine thread to the subscribed md
        APIs (round robin over ``instruments``, default: every subscribed instrument); returns
        once every callback has run. Also kept as ``last_burst``.

        ``prepared``: the n ticks (each a market step, as otherwise) are built first, then the
        callback thread emits them back to back (about 1.6 KB of memory per tick meanwhile),
        or, with ``rate``, that many per second."""
        t0, cpu0 = time.perf_counter(), time.process_time()
        ticks, calls = self._engine.call(
            self._engine.burst, n, instruments, prepared, rate, timeout=600.0
        )
        # emission starts when the built ticks are handed over; otherwise with the building
        t1, cpu1 = (time.perf_counter(), time.process_time()) if prepared else (t0, cpu0)
        self._dispatcher.drained().wait(600.0)
        t2, cpu2 = time.perf_counter(), time.process_time()
        self.last_burst = BurstResult(ticks, calls, t2 - t0, t2 - t1, cpu2 - cpu1)
        return self.last_burst

    last_burst: BurstResult | None = None

    # ---------------------------------------------------------------- settlement

    def settle(self) -> str:
        """Run the daily settlement now; returns the new trading day."""
        day: str = self._engine.call(self._engine.settle, None)
        return day

    # ---------------------------------------------------------------- fault injection

    def drop_fronts(self, reason: int = 4097, reconnect_after_s: float = 1.0) -> None:
        """Every connected API gets OnFrontDisconnected(reason), then OnFrontConnected again
        after ``reconnect_after_s`` with a new session (authenticate and log in again)."""
        self._engine.call(self._engine.drop_all, reason, reconnect_after_s)

    def set_front_down(self, down: bool) -> None:
        """Down: connected APIs are disconnected (4097) and nothing answers (Req* → -1) until
        it is up again, when they reconnect."""

        def apply() -> None:
            eng = self._engine
            eng.set_front_down(down)
            if not down:
                for api in list(self._apis):
                    eng.connect(api)

        self._engine.call(apply)

    def set_response_delay(self, seconds: float) -> None:
        """Delay the processing of every later request by ``seconds`` (slow front)."""

        def apply() -> None:
            self._engine.delay_s = max(0.0, float(seconds))

        self._engine.call(apply)

    def wait_idle(self, timeout: float = 10.0) -> bool:
        """Wait until the engine has processed what was sent so far and every callback it
        produced has run (test helper)."""
        self._engine.call(lambda: None, timeout=timeout)
        return self._dispatcher.drained().wait(timeout)


class _NullFuture:
    """A fire-and-forget stand-in for the engine's call protocol."""

    def set_result(self, value: Any) -> None:
        pass

    def set_exception(self, exc: BaseException) -> None:
        traceback.print_exception(type(exc), exc, exc.__traceback__)


def get_exchange(name: str = "default") -> Exchange | None:
    """The running exchange registered under ``name``, if any."""
    found = _registry.get(name)
    return found if isinstance(found, Exchange) else None


def front_month(front: str, product_id: str) -> str | None:
    """The front-month contract of ``product_id`` on the exchange that the front address
    ``front`` (``sim://<name>``) names; None when no exchange runs there or it lists no such
    product."""
    name = _registry.front_name(front)
    exchange = get_exchange(name) if name else None
    return exchange.front_month(product_id) if exchange is not None else None
