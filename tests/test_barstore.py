"""Bars kept across restarts: BarBook.changes/restore and the SQLite store (webctp/_barstore.py)."""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

from webctp._bars import BarBook
from webctp._barstore import BarStore

from .test_bars import NINE, T0, rows, tick


def saved_rows(path: Path) -> list[tuple[str, int, int]]:
    with sqlite3.connect(path) as db:
        return db.execute(
            "SELECT instrument, period, time FROM bars ORDER BY instrument, period, time"
        ).fetchall()


def test_changes_hand_over_each_bar_once_and_the_newest_again_while_it_grows() -> None:
    book = BarBook()
    book.add_tick(tick(NINE + 1, 10.0, 100), NINE + 1)
    book.add_tick(tick(NINE + 61, 11.0, 104), NINE + 61)
    (first,) = book.changes()
    assert first.instrument == "rb2601" and first.day == "20261127"
    assert rows(first.minutes) == [
        [NINE, 10.0, 10.0, 10.0, 10.0, 0],
        [NINE + 60, 11.0, 11.0, 11.0, 11.0, 4],
    ]
    assert [b.time for b in first.days] == [T0]
    assert book.changes() == []  # nothing new
    book.add_tick(tick(NINE + 62, 12.0, 106), NINE + 62)  # the newest minute grows
    (second,) = book.changes()
    assert rows(second.minutes) == [[NINE + 60, 11.0, 12.0, 11.0, 12.0, 6]]
    assert second.oldest_minute == NINE


def test_store_round_trip_and_volume_after_restart(tmp_path: Path) -> None:
    path = tmp_path / "data" / "bars.sqlite3"
    book = BarBook()
    book.add_tick(tick(NINE + 1, 10.0, 100, OpenPrice=9.0), NINE + 1)
    book.add_tick(tick(NINE + 61, 11.0, 104, OpenPrice=9.0), NINE + 61)
    store = BarStore(str(path))
    store.save(book.changes())
    store.close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700

    # a restart: a new book gets the bars back before any tick
    again = BarBook()
    store = BarStore(str(path))
    again.restore(store.load(again.max_instruments))
    assert rows(again.bars("rb2601", "1m")) == rows(book.bars("rb2601", "1m"))
    assert rows(again.bars("rb2601", "1d")) == rows(book.bars("rb2601", "1d"))
    assert again.changes() == []  # restored bars are not written back
    # the first tick after the restart: 500 lots traded meanwhile are not put in one minute
    again.add_tick(tick(NINE + 600, 12.0, 604, OpenPrice=9.0), NINE + 600)
    again.add_tick(tick(NINE + 610, 12.5, 610, OpenPrice=9.0), NINE + 610)
    minutes = rows(again.bars("rb2601", "1m"))
    assert minutes[-1] == [NINE + 600, 12.0, 12.5, 12.0, 12.5, 6]
    assert minutes[:2] == rows(book.bars("rb2601", "1m"))
    assert rows(again.bars("rb2601", "1d")) == [[T0, 9.0, 12.5, 10.0, 12.5, 610]]
    store.save(again.changes())
    assert saved_rows(path) == [
        ("rb2601", 60, NINE),
        ("rb2601", 60, NINE + 60),
        ("rb2601", 60, NINE + 600),
        ("rb2601", 86400, T0),
    ]
    store.close()


def test_store_keeps_only_what_the_book_keeps(tmp_path: Path) -> None:
    path = tmp_path / "bars.sqlite3"
    store = BarStore(str(path))
    book = BarBook(max_instruments=2, max_minutes=2)
    for i in range(4):
        book.add_tick(tick(NINE + 60 * i, 1.0 + i, i), NINE + 60 * i)
        store.save(book.changes())
    assert [t for _, p, t in saved_rows(path) if p == 60] == [NINE + 120, NINE + 180]
    for name in ("a", "b", "c"):  # three more instruments, saved one after the other
        book.add_tick({**tick(NINE, 1.0, 1), "InstrumentID": name}, NINE)
        store.save(book.changes())
    # the file still holds all four; a restart with room for two reads the newest two only
    small = BarBook(max_instruments=2)
    small.restore(store.load(small.max_instruments))
    assert len(small) == 2 and "c" in small and "b" in small
    assert {i for i, _, _ in saved_rows(path)} == {"b", "c"}
    store.close()


def test_restore_never_replaces_live_bars() -> None:
    book = BarBook()
    book.add_tick(tick(NINE + 1, 10.0, 100), NINE + 1)
    saved = book.changes()
    live = BarBook()
    live.add_tick(tick(NINE + 5, 20.0, 100), NINE + 5)
    live.restore(saved)
    assert rows(live.bars("rb2601", "1m")) == [[NINE, 20.0, 20.0, 20.0, 20.0, 0]]


def test_restored_instrument_on_a_new_trading_day() -> None:
    book = BarBook()
    book.add_tick(tick(NINE + 1, 10.0, 100, OpenPrice=9.0), NINE + 1)
    again = BarBook()
    again.restore(book.changes())
    nxt = "20261130"
    start = T0 + 3 * 86400
    at = start + 9 * 3600
    again.add_tick({**tick(at, 12.0, 40), "TradingDay": nxt}, at)
    again.add_tick({**tick(at + 5, 12.0, 45), "TradingDay": nxt}, at + 5)
    assert rows(again.bars("rb2601", "1m"))[-1] == [at, 12.0, 12.0, 12.0, 12.0, 5]
    assert rows(again.bars("rb2601", "1d")) == [
        [T0, 9.0, 10.0, 10.0, 10.0, 100],
        [start, 12.0, 12.0, 12.0, 12.0, 45],
    ]
