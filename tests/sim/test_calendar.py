"""Trading calendar, sessions, expiry rules and the contract months listed on a day."""

from __future__ import annotations

from datetime import date, datetime

from webctp.sim._calendar import TradingCalendar, in_session
from webctp.sim._instruments import listed_instruments, load_products
from webctp.sim._settings import SimSettings

CAL = TradingCalendar(holidays=("20251001",))


def test_trading_day_of_wall_clock_times() -> None:
    td = CAL.trading_day
    assert td(datetime(2025, 11, 20, 10, 0)) == date(2025, 11, 20)
    assert td(datetime(2025, 11, 20, 16, 59)) == date(2025, 11, 20)
    assert td(datetime(2025, 11, 20, 21, 0)) == date(2025, 11, 21)  # night: next day
    assert td(datetime(2025, 11, 21, 21, 0)) == date(2025, 11, 24)  # Friday night: Monday
    assert td(datetime(2025, 11, 22, 1, 0)) == date(2025, 11, 24)  # Saturday small hours
    assert td(datetime(2025, 9, 30, 21, 0)) == date(2025, 10, 2)  # holiday skipped


def test_sessions() -> None:
    def ok(dt: datetime, sessions: str = "commodity", night: str = "01:00") -> bool:
        return in_session(dt, sessions, night, CAL)

    assert ok(datetime(2025, 11, 20, 9, 0)) and not ok(datetime(2025, 11, 20, 10, 20))
    assert ok(datetime(2025, 11, 20, 21, 30)) and ok(datetime(2025, 11, 21, 0, 30))
    assert not ok(datetime(2025, 11, 21, 1, 30))
    assert ok(datetime(2025, 11, 22, 0, 30))  # Friday's night session into Saturday
    assert not ok(datetime(2025, 11, 22, 10, 0))  # Saturday day
    assert not ok(datetime(2025, 11, 20, 21, 30), night="")
    assert not ok(datetime(2025, 11, 20, 23, 30), night="23:00")
    assert ok(datetime(2025, 11, 20, 9, 45), "index")
    assert not ok(datetime(2025, 11, 20, 9, 0), "index")
    assert ok(datetime(2025, 11, 20, 15, 10), "bond") and not ok(datetime(2025, 11, 20, 15, 10))
    assert not ok(datetime(2025, 9, 30, 21, 30))  # no night before a holiday


def test_expiry_rules() -> None:
    assert CAL.expiry("day15", 2025, 11) == date(2025, 11, 17)  # 15th is a Saturday
    assert CAL.expiry("friday3", 2025, 12) == date(2025, 12, 19)
    assert CAL.expiry("friday2", 2025, 12) == date(2025, 12, 12)
    assert CAL.expiry("prev_month_last", 2026, 1) == date(2025, 12, 31)
    assert CAL.expiry("td10", 2026, 1) == date(2026, 1, 14)
    assert CAL.expiry("last_monday", 2025, 12) == date(2025, 12, 29)


def test_contract_months_roll_with_the_date() -> None:
    products = load_products(SimSettings(products=("rb", "IF", "m", "SR")))
    before = listed_instruments(products, date(2025, 12, 15), TradingCalendar())
    after = listed_instruments(products, date(2025, 12, 16), TradingCalendar())
    assert "rb2512" in before and "rb2512" not in after and "rb2612" in after
    assert len([i for i in after if i.startswith("rb")]) == 12
    assert [i for i in after if i.startswith("IF")] == ["IF2512", "IF2601", "IF2603", "IF2606"]
    assert "SR601" in after and "SR602" not in after  # CZCE: 3 digits, odd months
    m = [i for i in after if i.startswith("m")]
    assert m[0] == "m2601" and "m2602" not in m
    inst = after["rb2601"]
    assert inst.limits(3100.0) == (3317.0, 2883.0)  # ±7 % of 3100 rounded inward
