"""OHLCV bars kept from ticks: the history behind the ``GetBars`` extension message.

Pure code, no I/O and no clock: the caller passes each tick's fields and the exchange-local
time it belongs to. The md sessions feed every tick they forward into one ``BarBook`` per
service, so any client can ask for the bars of an instrument the service has seen ticks for.

Times are **exchange-local wall time as naive epoch seconds** (Beijing time written as if it
were UTC: 09:00:00 Beijing on 2026-11-27 is ``1795770000``), so a chart that shows UTC shows
exchange time. A minute bar starts at its minute; a day bar is the trading day at 00:00.

What is kept, per instrument:

- one-minute bars (``max_minutes``, oldest dropped first): open/high/low/close from the last
  prices seen, volume from the growth of the tick's cumulative ``Volume``. Ticks are conflated
  per client before they reach the book (docs/md_protocol.md), so a high or low that lasted
  less than one delivery can be missed; volume is exact because it is cumulative. A minute
  without ticks has no bar (charts show a gap, not a bridge).
- one bar per trading day (``max_days``), from the tick's own OpenPrice/HighestPrice/
  LowestPrice/Volume when the exchange fills them, so it is exact from the first tick on.
- 5m, 15m, 30m and 1h bars are aggregated from the minute bars when asked for.

Memory is bounded: at most ``max_instruments`` instruments (the one updated least recently is
forgotten first) × (``max_minutes`` + ``max_days``) bars of six numbers each. With the
defaults (512 × (1,500 + 400)) the worst case is about 1M bars, ~150 MB; a typical session of a
few dozen instruments holds a few MB.

A ``history`` source (the simulator offers one) is asked once per instrument for the bars
before its first tick; its bars go in front of the live ones. It is asked when the bars are
first read (``bars``, a ``GetBars`` request), not on the tick path: a source may take
milliseconds per instrument (the simulator generates the day's minutes so far and 120 days:
2-5 ms with two hours of minutes, more later in the day), and a shared upstream
seeing hundreds of instruments at once must not stall every client's ticks for that.
"""

from __future__ import annotations

import functools
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, TypeGuard

from .protocol.errors import Code, ProtocolError

PERIODS: dict[str, int] = {
    "1m": 60,
    "5m": 300,
    "15m": 900,
    "30m": 1800,
    "1h": 3600,
    "1d": 86400,
}
"""Timeframes ``GetBars`` serves, in seconds."""

MAX_COUNT = 2000
"""Most bars one answer carries."""

_HALF_DAY = 12 * 3600


@dataclass(slots=True)
class Bar:
    time: int
    open: float
    high: float
    low: float
    close: float
    volume: int

    def row(self) -> list[float | int]:
        """``[time, open, high, low, close, volume]``: the wire form."""
        return [self.time, self.open, self.high, self.low, self.close, self.volume]


History = Callable[[str, int, float, str], tuple[list[Bar], list[Bar]]]
"""``(instrument, first_minute, first_price, trading_day) -> (minute bars, day bars)`` before
the first tick, oldest first."""


def valid_price(x: Any) -> TypeGuard[float]:
    """CTP marks unset prices with DBL_MAX (the gateway sends 0)."""
    return isinstance(x, (int, float)) and 0 < x < 1e300


def day_stamp(trading_day: str) -> int | None:
    """``YYYYMMDD`` -> naive epoch seconds of its 00:00, None when malformed."""
    if len(trading_day) != 8 or not trading_day.isdigit():
        return None
    try:
        d = datetime(int(trading_day[:4]), int(trading_day[4:6]), int(trading_day[6:]))
    except ValueError:
        return None
    return int(d.replace(tzinfo=timezone.utc).timestamp())


@functools.lru_cache(maxsize=4096)
def _second_of_day(update_time: str) -> int:
    """``HH:MM:SS`` -> seconds since midnight, -1 when malformed (cached: the tick path sees the
    same few strings over and over)."""
    if len(update_time) != 8 or update_time[2] != ":" or update_time[5] != ":":
        return -1
    try:
        h, m, s = int(update_time[:2]), int(update_time[3:5]), int(update_time[6:])
    except ValueError:
        return -1
    if not (0 <= h < 24 and 0 <= m < 60 and 0 <= s < 61):
        return -1
    return h * 3600 + m * 60 + s


def tick_stamp(update_time: str, now: int) -> int | None:
    """The naive epoch second of a tick's ``UpdateTime`` (``HH:MM:SS``), on the day of
    ``now`` (naive epoch seconds, exchange time) or the one before/after when that is nearer:
    a tick stamped 23:59:59 that arrives at 00:00:01 belongs to the day before."""
    second = _second_of_day(update_time)
    if second < 0:
        return None
    stamp = now - now % 86400 + second
    if stamp - now > _HALF_DAY:
        stamp -= 86400
    elif now - stamp > _HALF_DAY:
        stamp += 86400
    return stamp


class _Series:
    __slots__ = (
        "base_volume",
        "day",
        "day_time",
        "days",
        "first",
        "last_stamp",
        "last_volume",
        "minutes",
        "saved_day",
        "saved_minute",
    )

    def __init__(self, max_minutes: int, max_days: int) -> None:
        self.minutes: deque[Bar] = deque(maxlen=max_minutes)
        self.days: deque[Bar] = deque(maxlen=max_days)
        self.day = ""  # trading day of the last tick
        self.day_time: int | None = None  # its naive epoch seconds (day_stamp)
        self.last_volume = 0  # cumulative Volume of the last tick
        self.last_stamp = 0
        self.base_volume = 0  # generated history's volume, added to the day's Volume
        self.first: tuple[int, float, str, int] | None = None
        """History not asked for yet: the first tick's (minute, price, trading day,
        cumulative volume)."""
        # The newest bar of each kind written to the store (it may have changed since).
        self.saved_minute = -1
        self.saved_day = -1


@dataclass(slots=True)
class Saved:
    """One instrument's bars as the store keeps them (``BarBook.changes``/``restore``)."""

    instrument: str
    day: str  # trading day of the last tick
    base_volume: int
    minutes: list[Bar]  # oldest first
    days: list[Bar]
    oldest_minute: int = 0  # bars older than these are no longer kept (store: delete them)
    oldest_day: int = 0


class BarBook:
    """Bars per instrument and timeframe from a stream of ticks (see the module docstring)."""

    def __init__(
        self,
        *,
        max_instruments: int = 512,
        max_minutes: int = 1500,
        max_days: int = 400,
        history: History | None = None,
    ) -> None:
        if max_instruments < 1 or max_minutes < 1 or max_days < 1:
            raise ValueError("BarBook limits must be at least 1")
        self.max_instruments = max_instruments
        self.max_minutes = max_minutes
        self.max_days = max_days
        self.history = history
        self._series: OrderedDict[str, _Series] = OrderedDict()
        self._changed: set[str] = set()  # instruments with bars not yet handed to the store

    def __len__(self) -> int:
        return len(self._series)

    def __contains__(self, instrument: object) -> bool:
        return instrument in self._series

    def add_tick(self, tick: dict[str, Any], now: int) -> None:
        """Feed one DepthMarketData dict (as the gateway sends it); ``now`` is the current
        exchange-local time in naive epoch seconds. Ticks without a price or time are ignored;
        so is a tick older than the newest one seen (two sessions may deliver the same tick)."""
        price = tick.get("LastPrice")
        if not valid_price(price):
            return
        stamp = tick_stamp(str(tick.get("UpdateTime") or ""), now)
        if stamp is None:
            return
        volume = tick.get("Volume")
        self.add(
            str(tick.get("InstrumentID") or ""),
            float(price),
            volume if isinstance(volume, int) and volume >= 0 else 0,
            stamp,
            str(tick.get("TradingDay") or ""),
            tick,
        )

    def add(
        self,
        instrument: str,
        price: float,
        cum_volume: int,
        stamp: int,
        trading_day: str,
        fields: dict[str, Any] | None = None,
    ) -> None:
        """One trade price at ``stamp`` with the day's cumulative volume so far."""
        if not instrument:
            return
        series = self._series.get(instrument)
        if series is None:
            series = self._new_series(instrument, price, stamp, trading_day, cum_volume)
        else:
            self._series.move_to_end(instrument)
        if stamp < series.last_stamp:
            return  # late (conflated elsewhere, or a second session's copy)
        self._changed.add(instrument)
        if series.last_volume < 0:
            # Restored from the store: what traded while the service was down is not spread
            # over this one minute (as for a new series).
            series.last_volume = cum_volume
            if trading_day and trading_day != series.day:
                series.base_volume = 0
                series.day = trading_day
                series.day_time = day_stamp(trading_day)
        if trading_day and trading_day != series.day:
            if series.day:
                series.last_volume = 0  # a new trading day: Volume counts from 0 again
                series.base_volume = 0
            series.day = trading_day
            series.day_time = day_stamp(trading_day)
        delta = cum_volume - series.last_volume
        if delta < 0:
            delta = 0  # an out-of-order copy within the same second
        else:
            series.last_volume = cum_volume
        series.last_stamp = stamp
        _update(series.minutes, stamp - stamp % 60, price, delta)
        self._update_day(series, price, delta, fields or {})

    def _new_series(
        self, instrument: str, price: float, stamp: int, trading_day: str, cum_volume: int
    ) -> _Series:
        series = _Series(self.max_minutes, self.max_days)
        # What the day traded before we saw it is not spread over our bars.
        series.last_volume = cum_volume
        series.day = trading_day
        series.day_time = day_stamp(trading_day)
        if self.history is not None:
            series.first = (stamp - stamp % 60, price, trading_day, cum_volume)
        self._keep(instrument, series)
        return series

    def _keep(self, instrument: str, series: _Series) -> None:
        self._series[instrument] = series
        while len(self._series) > self.max_instruments:
            gone, _ = self._series.popitem(last=False)
            self._changed.discard(gone)

    def changes(self) -> list[Saved]:
        """The bars changed since the last call, for the store (webctp/_barstore.py): per
        instrument, every bar from the newest one handed over before (it may have grown) on."""
        out = []
        for instrument in self._changed:
            series = self._series[instrument]
            minutes = _since(series.minutes, series.saved_minute)
            days = _since(series.days, series.saved_day)
            if minutes:
                series.saved_minute = minutes[-1].time
            if days:
                series.saved_day = days[-1].time
            out.append(
                Saved(
                    instrument,
                    series.day,
                    series.base_volume,
                    minutes,
                    days,
                    series.minutes[0].time if series.minutes else 0,
                    series.days[0].time if series.days else 0,
                )
            )
        self._changed.clear()
        return out

    def restore(self, saved: Iterable[Saved]) -> None:
        """Put back what the store kept (oldest instrument first); instruments that already
        have ticks are left as they are. The first live tick of a restored instrument starts
        its volume count afresh, as for an instrument seen for the first time; no history
        source is asked for it (its earlier bars are the ones kept)."""
        for s in saved:
            if s.instrument in self._series:
                continue
            series = _Series(self.max_minutes, self.max_days)
            series.minutes.extend(s.minutes)
            series.days.extend(s.days)
            series.day = s.day
            series.day_time = day_stamp(s.day)
            series.base_volume = s.base_volume
            series.last_volume = -1  # unknown until the next tick
            series.saved_minute = s.minutes[-1].time if s.minutes else -1
            series.saved_day = s.days[-1].time if s.days else -1
            self._keep(s.instrument, series)

    def _load_history(self, instrument: str, series: _Series) -> None:
        """Put the history before the first tick in front of the live bars (once)."""
        first, series.first = series.first, None
        if first is None or self.history is None:
            return
        first_minute, price, trading_day, cum_volume = first
        minutes, days = self.history(instrument, first_minute, price, trading_day)
        live = list(series.minutes)
        series.minutes.clear()
        series.minutes.extend(b for b in minutes if b.time < first_minute)
        series.minutes.extend(live)
        today = day_stamp(trading_day)
        before = [b for b in days if today is None or b.time < today]
        kept = [b for b in series.days if not before or b.time > before[-1].time]
        if minutes and today is not None:
            vol = sum(b.volume for b in minutes)
            base = vol - cum_volume  # the day bar shows history + live
            hist = Bar(
                today,
                minutes[0].open,
                max(b.high for b in minutes),
                min(b.low for b in minutes),
                minutes[-1].close,
                vol,
            )
            bar = next((b for b in kept if b.time == today), None)
            if bar is None:
                kept = sorted([*kept, hist], key=lambda b: b.time)
            else:  # the live day bar: history's open, extremes and volume added
                bar.open = hist.open
                bar.high = max(bar.high, hist.high)
                bar.low = min(bar.low, hist.low)
                bar.volume += base
            if series.day == trading_day:
                series.base_volume = base
        series.days.clear()
        series.days.extend([*before, *kept])
        # the history went in front of what the store has: hand all of it over again
        series.saved_minute = series.saved_day = -1
        self._changed.add(instrument)

    def _update_day(
        self, series: _Series, price: float, delta: int, fields: dict[str, Any]
    ) -> None:
        today = series.day_time
        if today is None:
            return
        days = series.days
        bar = days[-1] if days and days[-1].time == today else None
        if bar is None:
            if days and days[-1].time > today:
                return
            open_ = fields.get("OpenPrice")
            bar = Bar(today, open_ if valid_price(open_) else price, price, price, price, 0)
            days.append(bar)
        bar.close = price
        high, low = fields.get("HighestPrice"), fields.get("LowestPrice")
        bar.high = max(bar.high, price, high if valid_price(high) else price)
        bar.low = min(bar.low, price, low if valid_price(low) else price)
        cum = fields.get("Volume")
        if isinstance(cum, int) and cum >= 0:
            bar.volume = series.base_volume + cum
        else:
            bar.volume += delta

    def bars(self, instrument: str, period: str, count: int = 500) -> list[Bar]:
        """The newest ``count`` bars of ``period`` (a key of ``PERIODS``), oldest first; empty
        for an instrument without ticks. Raises KeyError for an unknown period."""
        seconds = PERIODS[period]
        series = self._series.get(instrument)
        if series is None or count <= 0:
            return []
        if series.first is not None:
            self._load_history(instrument, series)
        count = min(count, MAX_COUNT)
        if period == "1d":
            return [_copy(b) for b in list(series.days)[-count:]]
        if seconds == 60:
            return [_copy(b) for b in list(series.minutes)[-count:]]
        return aggregate(series.minutes, seconds)[-count:]


def _copy(b: Bar) -> Bar:
    return Bar(b.time, b.open, b.high, b.low, b.close, b.volume)


def _since(bars: deque[Bar], time: int) -> list[Bar]:
    """Copies of the bars from ``time`` on, oldest first (walked from the newest end)."""
    out = []
    for b in reversed(bars):
        if b.time < time:
            break
        out.append(_copy(b))
    out.reverse()
    return out


def _update(bars: deque[Bar], start: int, price: float, volume: int) -> None:
    last = bars[-1] if bars else None
    if last is not None and last.time == start:
        last.high = max(last.high, price)
        last.low = min(last.low, price)
        last.close = price
        last.volume += volume
    elif last is None or last.time < start:
        bars.append(Bar(start, price, price, price, price, volume))


def aggregate(bars: Iterable[Bar], seconds: int) -> list[Bar]:
    """Group bars (oldest first) into bars of ``seconds``, aligned to multiples of it."""
    out: list[Bar] = []
    for b in bars:
        start = b.time - b.time % seconds
        last = out[-1] if out else None
        if last is not None and last.time == start:
            last.high = max(last.high, b.high)
            last.low = min(last.low, b.low)
            last.close = b.close
            last.volume += b.volume
        else:
            out.append(Bar(start, b.open, b.high, b.low, b.close, b.volume))
    return out


def parse_request(body: dict[str, Any]) -> tuple[str, str, int]:
    """Validate a ``GetBars`` body: ``(instrument, period, count)``; ValueError names the
    fault."""
    instrument = body.get("InstrumentID")
    if not isinstance(instrument, str) or not 0 < len(instrument) <= 80:
        raise ValueError("InstrumentID must be a string of 1-80 characters")
    period = body.get("Period", "1m")
    if not isinstance(period, str) or period not in PERIODS:
        raise ValueError(f"Period must be one of {', '.join(PERIODS)}")
    count = body.get("Count", 500)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise ValueError(f"Count must be a whole number from 1 to {MAX_COUNT}")
    return instrument, str(period), count


def response(
    request_id: int | None, instrument: str, period: str, bars: list[Bar]
) -> dict[str, Any]:
    """The ``Bars`` answer frame."""
    return {
        "MsgType": "Bars",
        "RspInfo": None,
        "RequestID": request_id,
        "IsLast": True,
        "Bars": {
            "InstrumentID": instrument,
            "Period": period,
            "Bars": [b.row() for b in bars],
        },
    }


def answer(book: BarBook, body: dict[str, Any], request_id: int) -> dict[str, Any]:
    """The ``Bars`` frame answering a ``GetBars`` request (a bad request: ProtocolError -400)."""
    try:
        instrument, period, count = parse_request(body)
    except ValueError as exc:
        raise ProtocolError(Code.BAD_REQUEST, str(exc)) from None
    return response(request_id, instrument, period, book.bars(instrument, period, count))


def history_from_rows(
    source: Callable[[str, int, float, str], tuple[list[Any], list[Any]]],
) -> History:
    """Adapt a source of ``(time, open, high, low, close, volume)`` rows (the simulator's
    ``generated_history`` with its exchange bound) to a ``BarBook`` history."""

    def history(
        instrument: str, first_minute: int, first_price: float, trading_day: str
    ) -> tuple[list[Bar], list[Bar]]:
        minutes, days = source(instrument, first_minute, first_price, trading_day)
        return [Bar(*r) for r in minutes], [Bar(*r) for r in days]

    return history


def exchange_now(epoch: float, utc_offset_s: int = 8 * 3600) -> int:
    """Naive epoch seconds of exchange-local (default Beijing, UTC+8) wall time at ``epoch``."""
    return int(epoch) + utc_offset_s
