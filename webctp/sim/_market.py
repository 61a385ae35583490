"""The simulated market of one instrument: a random walk on the tick grid and a 5-level book.

Prices move by whole ticks, drift back towards the previous settlement, and never leave the
day's price limits. The book is synthetic: best bid and ask one tick apart around the last
price, five levels a side with random volumes. Orders that trade against it consume its volume
(partial fills at book prices); a consumed level is replaced by a new far level.

DepthMarketData is filled as CTP fills it (ctp-domain.md §10): DBL_MAX for unset Close/
Settlement prices and empty book levels, UpdateMillisec 0 or 500, AveragePrice = Turnover /
Volume (so it includes the multiplier, except on CZCE), TradingDay/ActionDay per exchange.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import datetime

from ._calendar import ymd
from ._instruments import Instrument
from ._structs import CThostFtdcDepthMarketDataField

DBL_MAX = 1.7976931348623157e308
LEVELS = 5

# The fields ``MarketState.tick`` fills, in the order it passes them (the rest keep defaults).
_TICK_HEAD = (
    "TradingDay",
    "LastPrice",
    "PreSettlementPrice",
    "PreClosePrice",
    "PreOpenInterest",
    "OpenPrice",
    "HighestPrice",
    "LowestPrice",
    "Volume",
    "Turnover",
    "OpenInterest",
    "ClosePrice",
    "SettlementPrice",
    "UpperLimitPrice",
    "LowerLimitPrice",
    "PreDelta",
    "CurrDelta",
    "UpdateTime",
    "UpdateMillisec",
    "AveragePrice",
    "ActionDay",
    "InstrumentID",
    "BandingUpperPrice",
    "BandingLowerPrice",
)
_TICK_BOOK = tuple(
    f"{side}{what}{n}"
    for n in range(1, LEVELS + 1)
    for side in ("Bid", "Ask")
    for what in ("Price", "Volume")
)
_make_tick = CThostFtdcDepthMarketDataField._sim_maker(_TICK_HEAD + _TICK_BOOK)
_EMPTY_LEVEL = (DBL_MAX, 0)


@dataclass(slots=True)
class Level:
    price: float
    volume: int


@dataclass
class MarketState:
    """Everything the exchange knows about one instrument's market on the current trading day."""

    instrument: Instrument
    pre_settlement: float
    pre_close: float
    pre_open_interest: float
    last: float
    upper: float
    lower: float
    open: float = DBL_MAX
    high: float = DBL_MAX
    low: float = DBL_MAX
    volume: int = 0
    turnover: float = 0.0
    open_interest: float = 0.0
    settlement: float = DBL_MAX
    close: float = DBL_MAX
    bids: list[Level] = field(default_factory=list)
    asks: list[Level] = field(default_factory=list)
    update_time: str = ""
    update_ms: int = 0
    book_stale: bool = False
    """The price moved since the book was built (rebuilt lazily, only when someone looks)."""
    clock_at: int = 0
    """The market-clock step this state has been advanced to (see Engine.touch)."""

    # ---------------------------------------------------------------- construction

    @classmethod
    def start_of_day(
        cls,
        instrument: Instrument,
        pre_settlement: float,
        pre_close: float,
        pre_open_interest: float,
        rng: random.Random,
        vol_range: tuple[int, int],
    ) -> MarketState:
        upper, lower = instrument.limits(pre_settlement)
        state = cls(
            instrument=instrument,
            pre_settlement=pre_settlement,
            pre_close=pre_close,
            pre_open_interest=pre_open_interest,
            last=pre_close,
            upper=upper,
            lower=lower,
            open_interest=pre_open_interest,
        )
        state.last = min(max(instrument.round(pre_close), lower), upper)
        state.rebuild_book(rng, vol_range)
        return state

    # ---------------------------------------------------------------- price moves

    def _clamp(self, price: float) -> float:
        return min(max(self.instrument.round(price), self.lower), self.upper)

    def step(self, rng: random.Random, volatility: float, max_ticks: int) -> bool:
        """One market step: maybe move the price, trade some volume, refresh the book.

        Returns whether the price moved. The move is biased back towards the previous
        settlement in proportion to how far the price has drifted inside the limit band, so
        the walk stays plausible for days.
        """
        moved = False
        inst = self.instrument
        if rng.random() < volatility:
            band = max(self.upper - self.pre_settlement, inst.tick)
            drift = (self.last - self.pre_settlement) / band  # -1 … 1
            p_up = 0.5 - 0.4 * drift
            ticks = 1 + int(rng.random() * max(1, max_ticks))
            direction = 1 if rng.random() < p_up else -1
            new = self._clamp(self.last + direction * ticks * inst.tick)
            moved = new != self.last
            self.last = new
        traded = int(rng.random() * 21) * (2 if inst.rank == 1 else 1)
        if traded:
            oi = int(rng.random() * (2 * traded + 1)) - traded
            self._record_trade(self.last, traded, open_interest_delta=oi)
        self.book_stale = True
        return moved

    def _record_trade(self, price: float, volume: int, open_interest_delta: int = 0) -> None:
        self.last = price
        if self.open == DBL_MAX:
            self.open = self.high = self.low = price
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.volume += volume
        self.turnover += price * volume * self.instrument.multiplier
        self.open_interest = max(0.0, self.open_interest + open_interest_delta)

    def set_last(self, price: float) -> None:
        """Move the market to ``price`` as if it had traded there (test and demo hook)."""
        self._record_trade(self._clamp(price), 1)

    def rebuild_book(
        self,
        rng: random.Random,
        vol_range: tuple[int, int],
        bid1: float | None = None,
        ask1: float | None = None,
    ) -> None:
        """Five levels a side around the last price (one tick spread unless given)."""
        tick = self.instrument.tick
        if bid1 is None or ask1 is None:
            if rng.random() < 0.5:
                bid1, ask1 = self.last, self.last + tick
            else:
                bid1, ask1 = self.last - tick, self.last
        digits = self.instrument.decimals
        bid1 = round(bid1, digits)
        ask1 = round(ask1, digits)
        lo, hi = vol_range
        span = hi - lo + 1
        r = rng.random
        lower, upper = self.lower - 1e-9, self.upper + 1e-9
        self.bids = [
            Level(round(p, digits), lo + int(r() * span))
            for p in [bid1 - i * tick for i in range(LEVELS)]
            if p >= lower
        ]
        self.asks = [
            Level(round(p, digits), lo + int(r() * span))
            for p in [ask1 + i * tick for i in range(LEVELS)]
            if p <= upper
        ]
        self.book_stale = False

    def ensure_book(self, rng: random.Random, vol_range: tuple[int, int]) -> None:
        if self.book_stale:
            self.rebuild_book(rng, vol_range)

    # ---------------------------------------------------------------- matching support

    def fillable(self, buy: bool, limit: float | None) -> int:
        """Book volume an order could take at prices no worse than ``limit`` (None: any)."""
        levels = self.asks if buy else self.bids
        total = 0
        for lv in levels:
            if limit is not None and (lv.price > limit + 1e-9 if buy else lv.price < limit - 1e-9):
                break
            total += lv.volume
        return total

    def take(
        self,
        buy: bool,
        limit: float | None,
        volume: int,
        rng: random.Random,
        vol_range: tuple[int, int],
        open_interest_sign: int,
    ) -> list[tuple[float, int]]:
        """Trade up to ``volume`` against the book; returns (price, lots) per level hit.

        ``open_interest_sign`` is +1 when the order opens (open interest grows by the lots
        traded), -1 when it closes."""
        levels = self.asks if buy else self.bids
        fills: list[tuple[float, int]] = []
        left = volume
        tick = self.instrument.tick
        while left > 0 and levels:
            lv = levels[0]
            if limit is not None and (lv.price > limit + 1e-9 if buy else lv.price < limit - 1e-9):
                break
            n = min(left, lv.volume)
            fills.append((lv.price, n))
            left -= n
            lv.volume -= n
            if lv.volume == 0:
                levels.pop(0)
                far = levels[-1].price if levels else lv.price
                nxt = self.instrument.round(far + tick if buy else far - tick)
                if (buy and nxt <= self.upper + 1e-9) or (not buy and nxt >= self.lower - 1e-9):
                    levels.append(Level(nxt, rng.randint(*vol_range)))
        for price, n in fills:
            self._record_trade(price, n, open_interest_sign * n)
        return fills

    def record_fill(self, price: float, volume: int, open_interest_delta: int) -> None:
        """A resting order filled at its own price: it shows in the last price and volume."""
        self._record_trade(price, volume, open_interest_delta)

    # ---------------------------------------------------------------- ticks

    def stamp(self, now: datetime, hms: str | None = None) -> None:
        self.update_time = hms or now.strftime("%H:%M:%S")
        self.update_ms = 0 if now.microsecond < 500_000 else 500

    def tick(self, trading_day: str, now: datetime) -> CThostFtdcDepthMarketDataField:
        """The DepthMarketData CTP would push for the current state."""
        inst = self.instrument
        ex = inst.exchange_id
        calendar_day = ymd(now.date())
        if ex == "CZCE":
            td, action = calendar_day, calendar_day
        elif ex == "DCE":
            td, action = trading_day, trading_day
        else:
            td, action = trading_day, calendar_day
        if self.volume:
            avg = self.turnover / self.volume
            if ex == "CZCE":
                avg /= inst.multiplier
        else:
            avg = 0.0
        book: list[float] = []
        bids, asks = self.bids, self.asks
        for i in range(LEVELS):
            book.extend((bids[i].price, bids[i].volume) if i < len(bids) else _EMPTY_LEVEL)
            book.extend((asks[i].price, asks[i].volume) if i < len(asks) else _EMPTY_LEVEL)
        return _make_tick(
            td,
            self.last,
            self.pre_settlement,
            self.pre_close,
            self.pre_open_interest,
            self.open,
            self.high,
            self.low,
            self.volume,
            self.turnover,
            self.open_interest,
            self.close,
            self.settlement,
            self.upper,
            self.lower,
            0.0,
            DBL_MAX,
            self.update_time,
            self.update_ms,
            avg,
            action,
            inst.instrument_id,
            DBL_MAX,
            DBL_MAX,
            *book,
        )

    @property
    def bid1(self) -> float | None:
        return self.bids[0].price if self.bids else None

    @property
    def ask1(self) -> float | None:
        return self.asks[0].price if self.asks else None

    def mark_price(self) -> float:
        """Price positions are marked to: the settlement once published, else the last."""
        return self.settlement if self.settlement != DBL_MAX else self.last
