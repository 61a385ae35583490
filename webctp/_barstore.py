"""The bar book kept across restarts: ``[md] bars_path``, an SQLite file.

The md side keeps OHLCV bars in memory (webctp/_bars.py) for the ``GetBars`` extension; this
module writes what changed to SQLite every ``[md] bars_save_interval_s`` and when the service
stops, and reads it back at start-up, so a chart opened after a restart still shows the
history. Bars are derived from ticks (nothing a client is told depends on them being saved
first): a crash loses at most the last interval's changes, and the minutes the service was
down have no bars (a gap on the chart, as for any minute without ticks).

The file is created owner-only (0600, its folder 0700). Several processes may share one file
(SQLite serialises their writes; the newest write of a bar wins). What is kept is bounded as
in memory: per instrument the bars the book still holds (older rows are deleted as the book
drops them), and at start-up only the ``max_instruments`` most recently updated instruments
are read; the others are deleted. A file that cannot be read or written is logged and the
service goes on with bars in memory only.

Blocking: every method here does file I/O; the service calls them in a worker thread.
"""

from __future__ import annotations

import logging
import sqlite3
import time
from pathlib import Path

from ._bars import Bar, Saved
from ._private import private_dir, private_file

log = logging.getLogger("webctp.bars")

SCHEMA = """
CREATE TABLE IF NOT EXISTS series (
    instrument TEXT PRIMARY KEY,
    day TEXT NOT NULL,
    base_volume INTEGER NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS bars (
    instrument TEXT NOT NULL,
    period INTEGER NOT NULL,  -- 60 or 86400
    time INTEGER NOT NULL,
    open REAL NOT NULL, high REAL NOT NULL, low REAL NOT NULL, close REAL NOT NULL,
    volume INTEGER NOT NULL,
    PRIMARY KEY (instrument, period, time)
) WITHOUT ROWID;
"""

MINUTE, DAY = 60, 86400


class BarStore:
    """One SQLite file of bars (see the module docstring). Not thread-safe: one thread at a
    time (the service's calls are sequential)."""

    def __init__(self, path: str, *, busy_timeout_s: float = 5.0) -> None:
        self.path = path
        p = Path(path)
        private_dir(p.resolve().parent)
        private_file(p)
        self._db = sqlite3.connect(path, timeout=busy_timeout_s, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        for side in (p.with_name(p.name + "-wal"), p.with_name(p.name + "-shm")):
            if side.exists():
                private_file(side)

    def close(self) -> None:
        self._db.close()

    def load(self, max_instruments: int) -> list[Saved]:
        """The kept bars of the ``max_instruments`` most recently updated instruments, the
        least recent first (the order ``BarBook.restore`` wants); the rest are deleted."""
        db = self._db
        rows = db.execute(
            "SELECT instrument, day, base_volume FROM series ORDER BY updated DESC, instrument"
        ).fetchall()
        keep, drop = rows[:max_instruments], rows[max_instruments:]
        if drop:
            with db:
                for instrument, _, _ in drop:
                    db.execute("DELETE FROM series WHERE instrument = ?", (instrument,))
                    db.execute("DELETE FROM bars WHERE instrument = ?", (instrument,))
        out = []
        for instrument, day, base_volume in reversed(keep):
            bars: dict[int, list[Bar]] = {MINUTE: [], DAY: []}
            for period, *row in db.execute(
                "SELECT period, time, open, high, low, close, volume FROM bars"
                " WHERE instrument = ? ORDER BY period, time",
                (instrument,),
            ):
                if period in bars:
                    bars[period].append(Bar(*row))
            out.append(Saved(instrument, day, base_volume, bars[MINUTE], bars[DAY]))
        return out

    def save(self, changes: list[Saved]) -> None:
        """Write the book's changes in one transaction; drop rows the book no longer keeps."""
        if not changes:
            return
        now = time.time()
        db = self._db
        with db:
            for s in changes:
                db.execute(
                    "INSERT INTO series (instrument, day, base_volume, updated)"
                    " VALUES (?, ?, ?, ?) ON CONFLICT (instrument) DO UPDATE SET"
                    " day = excluded.day, base_volume = excluded.base_volume,"
                    " updated = excluded.updated",
                    (s.instrument, s.day, s.base_volume, now),
                )
                for period, bars, oldest in (
                    (MINUTE, s.minutes, s.oldest_minute),
                    (DAY, s.days, s.oldest_day),
                ):
                    db.executemany(
                        "INSERT OR REPLACE INTO bars VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        [(s.instrument, period, *b.row()) for b in bars],
                    )
                    db.execute(
                        "DELETE FROM bars WHERE instrument = ? AND period = ? AND time < ?",
                        (s.instrument, period, oldest),
                    )
