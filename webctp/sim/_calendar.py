"""Trading calendar: business days, the trading day of a wall-clock time, sessions, expiry dates.

All times are Beijing time, naive ``datetime`` objects (China has no daylight saving). The wall
clock is injectable (``Clock``) so tests can fix the time; the simulator never reads
``datetime.now()`` directly.
"""

from __future__ import annotations

import calendar
import functools
from collections.abc import Callable, Iterable
from datetime import date, datetime, time, timedelta, timezone

Clock = Callable[[], datetime]
"""Returns the current Beijing time as a naive datetime."""

BEIJING = timezone(timedelta(hours=8))

NIGHT_START = time(21, 0)
SETTLEMENT_HOUR = 17
"""From 17:00 the next trading day begins (settlement has run; the night session follows)."""


def beijing_now() -> datetime:
    """The default clock."""
    return datetime.now(BEIJING).replace(tzinfo=None)


@functools.lru_cache(maxsize=64)
def ymd(d: date) -> str:
    """YYYYMMDD (cached: the tick path formats the same day thousands of times a second)."""
    return d.strftime("%Y%m%d")


def parse_ymd(text: str) -> date:
    return datetime.strptime(text, "%Y%m%d").date()


class TradingCalendar:
    """Weekends plus configured holidays are closed; everything else is a business day."""

    def __init__(self, holidays: Iterable[str] = ()) -> None:
        self._holidays = {parse_ymd(h) for h in holidays}

    def is_business_day(self, d: date) -> bool:
        return d.weekday() < 5 and d not in self._holidays

    def next_business_day(self, d: date) -> date:
        d += timedelta(days=1)
        while not self.is_business_day(d):
            d += timedelta(days=1)
        return d

    def prev_business_day(self, d: date) -> date:
        d -= timedelta(days=1)
        while not self.is_business_day(d):
            d -= timedelta(days=1)
        return d

    def trading_day(self, now: datetime) -> date:
        """The trading day ``now`` belongs to: evenings and nights count for the next one.

        From 17:00 (after the day's settlement) the next business day is the trading day, so the
        night session (21:00–02:30) and the small hours belong to it; weekend and holiday times
        belong to the next business day (Friday night counts for Monday).
        """
        d = now.date()
        if now.hour >= SETTLEMENT_HOUR:
            return self.next_business_day(d)
        if self.is_business_day(d):
            return d
        return self.next_business_day(d)

    def business_days_of_month(self, year: int, month: int) -> list[date]:
        days = calendar.monthrange(year, month)[1]
        out = []
        for day in range(1, days + 1):
            d = date(year, month, day)
            if self.is_business_day(d):
                out.append(d)
        return out

    def expiry(self, rule: str, year: int, month: int) -> date:
        """Last trading day of the contract for ``year``/``month`` under an expiry rule."""
        if rule == "day15":
            d = date(year, month, 15)
            return d if self.is_business_day(d) else self.next_business_day(d)
        if rule == "prev_month_last":
            py, pm = (year, month - 1) if month > 1 else (year - 1, 12)
            return self.business_days_of_month(py, pm)[-1]
        if rule == "last_monday":
            last = date(year, month, calendar.monthrange(year, month)[1])
            while last.weekday() != 0:
                last -= timedelta(days=1)
            return last if self.is_business_day(last) else self.next_business_day(last)
        if rule == "td10":
            return self.business_days_of_month(year, month)[9]
        if rule == "td4_last":
            return self.business_days_of_month(year, month)[-4]
        if rule in ("friday3", "friday2"):
            nth = 3 if rule == "friday3" else 2
            d = date(year, month, 1)
            while d.weekday() != 4:
                d += timedelta(days=1)
            d += timedelta(weeks=nth - 1)
            return d if self.is_business_day(d) else self.next_business_day(d)
        raise ValueError(f"unknown expiry rule {rule!r}")


def _t(text: str) -> time:
    h, m = text.split(":")
    return time(int(h), int(m))


DAY_SESSIONS = {
    "commodity": [("09:00", "10:15"), ("10:30", "11:30"), ("13:30", "15:00")],
    "index": [("09:30", "11:30"), ("13:00", "15:00")],
    "bond": [("09:30", "11:30"), ("13:00", "15:15")],
}


def has_night_session(d: date, cal: TradingCalendar) -> bool:
    """Whether the evening of ``d`` holds a night session.

    Only business days have one, and not the evening before a holiday: the next weekday must be
    a business day (Friday night exists and counts for Monday; the night before a holiday week
    does not).
    """
    if not cal.is_business_day(d):
        return False
    nxt = d + timedelta(days=1)
    while nxt.weekday() >= 5:
        nxt += timedelta(days=1)
    return cal.is_business_day(nxt)


def in_session(now: datetime, sessions: str, night_end: str, cal: TradingCalendar) -> bool:
    """Whether ``now`` falls inside one of the product's continuous-trading sessions."""
    t = now.time()
    d = now.date()
    if cal.is_business_day(d):
        for start, end in DAY_SESSIONS[sessions]:
            if _t(start) <= t < _t(end):
                return True
    if not night_end:
        return False
    night_end_t = _t(night_end)
    crosses_midnight = night_end_t < NIGHT_START
    if t >= NIGHT_START:
        return has_night_session(d, cal) and (crosses_midnight or t < night_end_t)
    if crosses_midnight and t < night_end_t:
        return has_night_session(d - timedelta(days=1), cal)
    return False
