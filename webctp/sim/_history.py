"""Generated price history: the trading day's earlier minute bars and earlier daily bars.

The simulated market only walks while the service runs, so a chart opened a minute after
start-up would hold one candle. ``generated_history`` fills in what came before: one-minute
bars for every minute of the trading day's sessions (night session included where the product
has one) before the first live tick, ending exactly at the first live price, and daily bars for
the business days before, ending at the previous close. It is a pure function of the
simulator's seed (``[sim] seed``; 0 when the seed is random), the instrument and the trading
day, so every client and every restart sees the same history. The bars are illustrative: the
live ticks' Volume, OpenPrice, HighestPrice and LowestPrice count only the live market.

Rows are ``(time, open, high, low, close, volume)`` with ``time`` the bar's start in
exchange-local (Beijing) wall time as naive epoch seconds (see ``webctp._bars``).
"""

from __future__ import annotations

import random
from datetime import date, datetime, time, timedelta, timezone
from typing import TYPE_CHECKING

from ._calendar import DAY_SESSIONS, NIGHT_START, TradingCalendar, has_night_session, parse_ymd

if TYPE_CHECKING:
    from ._exchange import Exchange
    from ._instruments import Instrument

Row = tuple[int, float, float, float, float, int]

DAYS = 120
"""Daily bars generated before the trading day."""
_SUBSTEPS = 4


def _naive_epoch(dt: datetime) -> int:
    return int(dt.replace(tzinfo=timezone.utc).timestamp())


def _hm(text: str) -> time:
    h, m = text.split(":")
    return time(int(h), int(m))


def session_minutes(
    trading_day: date, sessions: str, night_end: str, cal: TradingCalendar
) -> list[int]:
    """Start of every minute of ``trading_day``'s continuous sessions, in order (naive epoch)."""
    spans: list[tuple[datetime, datetime]] = []
    if night_end:
        eve = cal.prev_business_day(trading_day)
        if has_night_session(eve, cal):
            start = datetime.combine(eve, NIGHT_START)
            end_t = _hm(night_end)
            end = datetime.combine(eve if end_t > NIGHT_START else eve + timedelta(days=1), end_t)
            spans.append((start, end))
    for a, b in DAY_SESSIONS[sessions]:
        spans.append((datetime.combine(trading_day, _hm(a)), datetime.combine(trading_day, _hm(b))))
    out: list[int] = []
    for start, end in spans:
        t, stop = _naive_epoch(start), _naive_epoch(end)
        out.extend(range(t, stop, 60))
    return out


def _walk(rng: random.Random, n: int, max_ticks: int) -> list[int]:
    """A random walk of ``n`` + 1 points in whole ticks, starting at 0."""
    out = [0]
    pos = 0
    for _ in range(n):
        pos += rng.randint(-max_ticks, max_ticks)
        out.append(pos)
    return out


def minute_rows(
    seed: int,
    instrument_id: str,
    trading_day: str,
    minutes: list[int],
    end_price: float,
    tick: float,
    lower: float,
    upper: float,
    decimals: int,
    volume: int = 40,
) -> list[Row]:
    """One bar per minute in ``minutes``; the last bar closes at ``end_price``; volumes
    around ``volume`` lots a minute."""
    if not minutes:
        return []
    rng = random.Random(f"{seed}:{instrument_id}:{trading_day}:minutes")
    steps = _walk(rng, len(minutes) * _SUBSTEPS, 2)
    end = steps[-1]

    def price(i: int) -> float:
        p = end_price + (steps[i] - end) * tick
        return round(min(max(p, lower), upper), decimals)

    rows: list[Row] = []
    for k, t in enumerate(minutes):
        pts = [price(i) for i in range(k * _SUBSTEPS, (k + 1) * _SUBSTEPS + 1)]
        lots = rng.randint(volume // 2, volume * 3 // 2 + 1)
        rows.append((t, pts[0], max(pts), min(pts), pts[-1], lots))
    return rows


def day_rows(
    seed: int,
    instrument_id: str,
    trading_day: date,
    prev_close: float,
    tick: float,
    decimals: int,
    cal: TradingCalendar,
    days: int = DAYS,
    volume: int = 200_000,
) -> list[Row]:
    """Daily bars for the ``days`` business days before ``trading_day``, the last closing at
    ``prev_close``."""
    rng = random.Random(f"{seed}:{instrument_id}:{trading_day:%Y%m%d}:days")
    dates: list[date] = []
    d = trading_day
    for _ in range(days):
        d = cal.prev_business_day(d)
        dates.append(d)
    dates.reverse()
    rows: list[Row] = []
    close = prev_close
    closes = [close]
    for _ in range(days - 1):  # walk backwards from the known last close
        close = max(tick, close * (1 + rng.gauss(0, 0.012)))
        closes.append(close)
    closes.reverse()
    prev = closes[0] * (1 + rng.gauss(0, 0.01))
    for day, c in zip(dates, closes):
        o = prev * (1 + rng.gauss(0, 0.003))
        hi = max(o, c) * (1 + abs(rng.gauss(0, 0.006)))
        lo = min(o, c) * (1 - abs(rng.gauss(0, 0.006)))

        def r(p: float) -> float:
            return round(round(p / tick) * tick, decimals)

        t = _naive_epoch(datetime.combine(day, time()))
        rows.append((t, r(o), r(hi), r(lo), r(c), rng.randint(volume // 2, volume * 3 // 2 + 1)))
        prev = c
    return rows


def generated_history(
    exchange: Exchange, instrument_id: str, first_minute: int, first_price: float, trading_day: str
) -> tuple[list[Row], list[Row]]:
    """(minute rows, day rows) before an instrument's first live tick at ``first_minute``
    (naive epoch seconds, Beijing time) and ``first_price``; empty for an instrument the
    exchange does not list or a malformed trading day. Reads only what does not change during
    a trading day, so it may be called from any thread."""
    engine = exchange._engine
    inst: Instrument | None = engine.instruments.get(instrument_id)
    market = engine.markets.get(instrument_id)
    try:
        day = parse_ymd(trading_day)
    except ValueError:
        return [], []
    if inst is None or market is None:
        return [], []
    settings = exchange.settings
    seed = max(settings.seed, 0)
    product = inst.product
    # about what the live market trades a minute: 0-20 lots per clock step, twice that for
    # the second-nearest month (MarketState.step)
    steps = 60 / (settings.tick_interval_s if settings.tick_interval_s > 0 else 0.5)
    per_minute = max(2, int(steps * 10 * (2 if inst.rank == 1 else 1)))
    minutes = [
        t
        for t in session_minutes(day, product.sessions, product.night, engine.cal)
        if t < first_minute
    ]
    rows = minute_rows(
        seed,
        instrument_id,
        trading_day,
        minutes,
        first_price,
        inst.tick,
        market.lower,
        market.upper,
        inst.decimals,
        per_minute,
    )
    days = day_rows(
        seed,
        instrument_id,
        day,
        market.pre_close,
        inst.tick,
        inst.decimals,
        engine.cal,
        volume=per_minute * 400,
    )
    return rows, days
