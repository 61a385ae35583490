"""Generated chart history (webctp/sim/_history.py): deterministic, on the tick grid, in
the product's sessions, ending at the first live price."""

from __future__ import annotations

from datetime import date, datetime, timezone

from webctp.sim import Exchange, generated_history
from webctp.sim._calendar import TradingCalendar
from webctp.sim._history import Row, session_minutes

from .sim_helpers import front, running, settings


def naive(dt: datetime) -> int:
    return int(dt.replace(tzinfo=timezone.utc).timestamp())


def test_session_minutes_of_a_monday_with_a_night_session() -> None:
    minutes = session_minutes(date(2026, 11, 30), "commodity", "23:00", TradingCalendar())
    # Friday 21:00-23:00 (the night before Monday), then 09:00-10:15, 10:30-11:30, 13:30-15:00
    assert len(minutes) == 120 + 75 + 60 + 90
    assert minutes[0] == naive(datetime(2026, 11, 27, 21, 0))
    assert minutes[119] == naive(datetime(2026, 11, 27, 22, 59))
    assert minutes[120] == naive(datetime(2026, 11, 30, 9, 0))
    assert minutes[-1] == naive(datetime(2026, 11, 30, 14, 59))
    crossing = session_minutes(date(2026, 11, 26), "commodity", "02:30", TradingCalendar())
    assert crossing[0] == naive(datetime(2026, 11, 25, 21, 0))
    assert naive(datetime(2026, 11, 26, 2, 29)) in crossing
    assert len(session_minutes(date(2026, 11, 26), "index", "", TradingCalendar())) == 240


def _history(ex: Exchange, iid: str, first: int, price: float) -> tuple[list[Row], list[Row]]:
    return generated_history(ex, iid, first, price, ex.trading_day)


def test_history_is_deterministic_and_ends_at_the_first_price() -> None:
    with running(settings()) as ex:
        iid = front(ex, "rb")
        day = ex.trading_day
        first = naive(datetime.strptime(day, "%Y%m%d").replace(hour=11, minute=0))
        m = ex.market(iid)
        price = m["last"]
        minutes, days = _history(ex, iid, first, price)
        again = _history(ex, iid, first, price)
        assert (minutes, days) == again
        assert minutes and days
        assert all(r[0] < first for r in minutes)
        assert [r[0] for r in minutes] == sorted(r[0] for r in minutes)
        assert minutes[-1][4] == price
        for _t, o, h, lo, c, v in minutes:
            assert m["lower"] <= lo <= min(o, c) <= max(o, c) <= h <= m["upper"]
            assert v > 0
            for p in (o, h, lo, c):
                assert abs(p / 1.0 - round(p)) < 1e-9  # rb ticks by 1
        assert len(days) == 120 and days[-1][0] < first
        assert all(lo <= min(o, c) and max(o, c) <= h for _, o, h, lo, c, _ in days)
        assert len({r[0] for r in days}) == len(days)
        # minutes before the first tick only, and none at or after it
        later, _ = _history(ex, iid, first + 3600, price)
        assert len(later) > len(minutes)
    with running(settings(seed=8)) as other:
        assert _history(other, iid, first, price)[0] != minutes


def test_unknown_instrument_or_day_gives_nothing() -> None:
    with running(settings()) as ex:
        assert generated_history(ex, "zz9999", 0, 1.0, ex.trading_day) == ([], [])
        assert generated_history(ex, front(ex, "rb"), 0, 1.0, "2026-11-30") == ([], [])
