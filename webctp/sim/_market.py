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

import math
import random
from dataclasses import dataclass, field
from datetime import datetime

from ._book import EPS, Fill, OrderBook
from ._calendar import ymd
from ._instruments import Instrument
from ._rules import SETTLEMENT_LAST_HOUR
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
    book: OrderBook = field(default_factory=OrderBook)
    """Every account's resting orders (the crowd's volume is ``bids``/``asks``)."""
    pending: list[Fill] = field(default_factory=list)
    """Fills of resting orders by the market's own trades, not booked by the engine yet."""
    vwap: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0, 0.0])
    """[day turnover, day lots, last-hour turnover, last-hour lots] in price × lots (for the
    settlement price; see ``settlement_price``)."""
    last_hour: bool = False
    """Trades now count in the last-hour average (the engine sets it from the clock)."""
    replayed: bool = False
    """Driven by a tick file (``_replay``): no random walk, the crowd's book is the file's."""
    last_hour_rule: bool = False
    """The exchange settles on the last hour's average (``_rules.SETTLEMENT_LAST_HOUR``)."""

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
            last_hour_rule=instrument.exchange_id in SETTLEMENT_LAST_HOUR,
        )
        state.last = min(max(instrument.round(pre_close), lower), upper)
        state.rebuild_book(rng, vol_range)
        return state

    # ---------------------------------------------------------------- price moves

    def _clamp(self, price: float) -> float:
        return min(max(self.instrument.round(float(price)), self.lower), self.upper)

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
        oi = int(rng.random() * (2 * traded + 1)) - traded if traded else 0
        if self.book.by_seq:
            self.market_trade(self.last, traded, oi)
        elif traded:
            self._record_trade(self.last, traded, open_interest_delta=oi)
        self.book_stale = True
        return moved

    def market_trade(self, price: float, volume: int, open_interest_delta: int = 0) -> float:
        """The market's participants trade ``volume`` lots at ``price`` against the book:
        resting orders fill as ``OrderBook.market_trade`` says (queued in ``pending`` for the
        engine to book), and the price stops at the first resting order the volume could not
        go through. Returns the price the market traded at."""
        fills, reached = self.book.market_trade(self._clamp(price), volume)
        self.pending.extend(fills)
        self.last = reached
        if volume:
            self._record_trade(reached, volume, open_interest_delta)
        return reached

    def _record_trade(self, price: float, volume: int, open_interest_delta: int = 0) -> None:
        self.last = price
        w = self.vwap
        w[0] += price * volume
        w[1] += volume
        if self.last_hour:
            w[2] += price * volume
            w[3] += volume
        if self.open == DBL_MAX:
            self.open = self.high = self.low = price
        self.high = max(self.high, price)
        self.low = min(self.low, price)
        self.volume += volume
        self.turnover += price * volume * self.instrument.multiplier
        self.open_interest = max(0.0, self.open_interest + open_interest_delta)

    def set_last(self, price: float) -> None:
        """Move the market to ``price`` as if it had traded there (test and demo hook): the
        resting orders it went through fill completely (the volume it takes, plus one lot)."""
        price = self._clamp(price)
        through = 1
        for bids in (True, False):
            for p, level in self.book.side(bids).items():
                if (p > price + EPS) if bids else (p < price - EPS):
                    through += sum(o.book_left for o in level)
        self.market_trade(price, through)

    def replay(self, last: float, volume: int, bids: list[Level], asks: list[Level]) -> None:
        """One recorded tick: the crowd quotes the recorded book and ``volume`` lots trade at
        ``last`` (through the users' orders, as ``market_trade``). Recorded levels that would
        cross a user's resting order are not shown (the crowd does not cross them)."""
        self.bids, self.asks = bids, asks
        self.book_stale = False
        self.market_trade(last, volume)
        user_bid, user_ask = self.book.best(True), self.book.best(False)
        if user_bid is not None:
            self.asks = [lv for lv in self.asks if lv.price > user_bid + EPS]
        if user_ask is not None:
            self.bids = [lv for lv in self.bids if lv.price < user_ask - EPS]

    def settlement_price(self) -> float:
        """The day's volume-weighted average price (of the last hour's trades where the
        exchange says so and there were any), rounded to the tick; the last price when
        nothing traded. Halves round up, as the exchanges round (四舍五入)."""
        tu, lots, hour_tu, hour_lots = self.vwap
        if self.last_hour_rule and hour_lots:
            tu, lots = hour_tu, hour_lots
        if not lots:
            return self.instrument.round(self.last)
        tick = self.instrument.tick
        return self.instrument.round(math.floor(tu / lots / tick + 0.5 + 1e-9) * tick)

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
        user_bid, user_ask = self.book.best(True), self.book.best(False)
        if user_bid is not None and ask1 <= user_bid + EPS:
            ask1 = user_bid + tick  # the crowd does not cross the users' orders
        if user_ask is not None and bid1 >= user_ask - EPS:
            bid1 = user_ask - tick
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

    def _reachable(self, buy: bool, limit: float | None, price: float) -> bool:
        return limit is None or (price <= limit + EPS if buy else price >= limit - EPS)

    def fillable(self, buy: bool, limit: float | None) -> int:
        """Volume an order could take now at prices no worse than ``limit`` (None: any): the
        crowd's visible levels and every resting order on the other side."""
        crowd = {lv.price: lv.volume for lv in (self.asks if buy else self.bids)}
        prices = set(crowd) | set(self.book.side(not buy))
        return sum(
            self.book.available(not buy, p, crowd.get(p, 0))
            for p in prices
            if self._reachable(buy, limit, p)
        )

    def depth(self, bids: bool, levels: int = LEVELS) -> list[tuple[float, int]]:
        """The published levels of one side, best first: the crowd's volume plus the users'
        resting orders at each price."""
        crowd = self.bids if bids else self.asks
        users = self.book.side(bids)
        if users and len(crowd) >= levels:  # orders behind the crowd's last level don't show
            edge = crowd[levels - 1].price
            if bids:
                users = {p: o for p, o in users.items() if p >= edge - EPS}
            else:
                users = {p: o for p, o in users.items() if p <= edge + EPS}
        if not users:
            return [(lv.price, lv.volume) for lv in crowd[:levels]]
        merged = {lv.price: lv.volume for lv in crowd}
        for p, level in users.items():
            merged[p] = merged.get(p, 0) + sum(o.book_left for o in level)
        return sorted(merged.items(), reverse=bids)[:levels]

    def take(
        self,
        buy: bool,
        limit: float | None,
        volume: int,
        rng: random.Random,
        vol_range: tuple[int, int],
        open_interest_sign: int,
    ) -> list[Fill]:
        """Trade up to ``volume`` against the book in price-time priority: the crowd's levels
        and the resting orders of every account (``Fill.maker``). A crowd level used up is
        replaced by a new far level. ``open_interest_sign`` is +1 when the order opens, -1
        when it closes (a trade between two users: their signs together)."""
        crowd = self.asks if buy else self.bids
        users = self.book.side(not buy)
        fills: list[Fill] = []
        left = volume
        tick = self.instrument.tick
        while left > 0:
            candidates = [p for p in users if self._reachable(buy, limit, p)]
            if crowd and self._reachable(buy, limit, crowd[0].price):
                candidates.append(crowd[0].price)
            if not candidates:
                break
            price = min(candidates) if buy else max(candidates)
            lv = crowd[0] if crowd and abs(crowd[0].price - price) <= EPS else None
            got, taken = self.book.take_level(not buy, price, left, lv.volume if lv else 0)
            left -= sum(f.lots for f in got)
            fills.extend(got)
            if lv is not None:
                lv.volume = max(0, lv.volume - taken)
                if lv.volume == 0:
                    crowd.pop(0)
                    far = crowd[-1].price if crowd else lv.price
                    nxt = self.instrument.round(far + tick if buy else far - tick)
                    if (buy and nxt <= self.upper + EPS) or (not buy and nxt >= self.lower - EPS):
                        crowd.append(Level(nxt, rng.randint(*vol_range)))
            if not got:
                break
        for f in fills:
            oi = open_interest_sign * f.lots
            if f.maker is not None:
                maker_sign = 1 if f.maker.offset == "0" else -1
                oi = f.lots * (open_interest_sign + maker_sign) // 2
            self._record_trade(f.price, f.lots, oi)
        return fills

    def queue_ahead(self, buy: bool, price: float, vol_range: tuple[int, int]) -> int:
        """Crowd lots already quoted at ``price`` on side ``buy`` (a new order queues behind
        them): the visible level's volume; none when the price improves on the crowd's best;
        a typical level's volume beyond the visible levels."""
        crowd = self.bids if buy else self.asks
        for lv in crowd:
            if abs(lv.price - price) <= EPS:
                return lv.volume
        if not crowd:
            return 0
        worst = crowd[-1].price
        beyond = price < worst - EPS if buy else price > worst + EPS
        return (vol_range[0] + vol_range[1]) // 2 if beyond else 0

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
        if self.book.by_seq:
            bids = self.depth(True)
            asks = self.depth(False)
            for i in range(LEVELS):
                book.extend(bids[i] if i < len(bids) else _EMPTY_LEVEL)
                book.extend(asks[i] if i < len(asks) else _EMPTY_LEVEL)
        else:
            cb, ca = self.bids, self.asks
            for i in range(LEVELS):
                book.extend((cb[i].price, cb[i].volume) if i < len(cb) else _EMPTY_LEVEL)
                book.extend((ca[i].price, ca[i].volume) if i < len(ca) else _EMPTY_LEVEL)
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

    def best(self, bids: bool) -> float | None:
        """Best published price of one side (crowd or resting orders)."""
        levels = self.depth(bids, 1)
        return levels[0][0] if levels else None

    def mark_price(self) -> float:
        """Price positions are marked to: the settlement once published, else the last."""
        return self.settlement if self.settlement != DBL_MAX else self.last
