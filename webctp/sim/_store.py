"""SQLite persistence of the paper accounts: accounts, orders, trades, positions, statements.

Rows are small JSON documents keyed by what the exchange looks them up by; the engine thread is
the only writer and commits once per batch of work, so a crash loses at most the last batch.
WAL mode and ``synchronous=NORMAL`` keep commits cheap under many sessions.
"""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (user_id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS positions (user_id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS orders (
    trading_day TEXT NOT NULL, seq INTEGER NOT NULL, user_id TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (trading_day, seq));
CREATE TABLE IF NOT EXISTS trades (
    trading_day TEXT NOT NULL, trade_id TEXT NOT NULL, user_id TEXT NOT NULL,
    data TEXT NOT NULL, PRIMARY KEY (trading_day, trade_id));
CREATE TABLE IF NOT EXISTS market (instrument_id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS statements (
    user_id TEXT NOT NULL, trading_day TEXT NOT NULL, content TEXT NOT NULL,
    PRIMARY KEY (user_id, trading_day));
"""


class Store:
    """A thin typed wrapper over one SQLite connection (used from the engine thread only)."""

    def __init__(self, path: str) -> None:
        if path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # check_same_thread=False: opened by the constructor's thread, used by the engine thread
        # (never concurrently).
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(SCHEMA)
        self._db.execute("BEGIN")
        self._committed_changes = self._db.total_changes

    def commit(self) -> None:
        """Commit what was written since the last commit (nothing written: no I/O)."""
        changes = self._db.total_changes
        if changes == self._committed_changes:
            return
        self._db.execute("COMMIT")
        self._db.execute("BEGIN")
        self._committed_changes = changes

    def close(self) -> None:
        try:
            self._db.execute("COMMIT")
        except sqlite3.Error:
            pass
        self._db.close()

    # ---------------------------------------------------------------- meta

    def get_meta(self, key: str) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, json.dumps(value))
        )

    # ---------------------------------------------------------------- keyed documents

    def put(self, table: str, key: str, data: Any) -> None:
        col = "instrument_id" if table == "market" else "user_id"
        self._db.execute(
            f"INSERT OR REPLACE INTO {table} ({col}, data) VALUES (?, ?)",
            (key, json.dumps(data, ensure_ascii=False)),
        )

    def all(self, table: str) -> dict[str, Any]:
        col = "instrument_id" if table == "market" else "user_id"
        rows = self._db.execute(f"SELECT {col}, data FROM {table}").fetchall()
        return {k: json.loads(v) for k, v in rows}

    def clear_market(self) -> None:
        self._db.execute("DELETE FROM market")

    # ---------------------------------------------------------------- orders and trades

    def put_order(self, trading_day: str, seq: int, user_id: str, data: Any) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO orders (trading_day, seq, user_id, data) VALUES (?, ?, ?, ?)",
            (trading_day, seq, user_id, json.dumps(data, ensure_ascii=False)),
        )

    def orders(self, trading_day: str) -> list[tuple[str, Any]]:
        rows = self._db.execute(
            "SELECT user_id, data FROM orders WHERE trading_day=? ORDER BY seq", (trading_day,)
        ).fetchall()
        return [(u, json.loads(d)) for u, d in rows]

    def put_trade(self, trading_day: str, trade_id: str, user_id: str, data: Any) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO trades (trading_day, trade_id, user_id, data) "
            "VALUES (?, ?, ?, ?)",
            (trading_day, trade_id, user_id, json.dumps(data, ensure_ascii=False)),
        )

    def trades(self, trading_day: str) -> list[tuple[str, Any]]:
        rows = self._db.execute(
            "SELECT user_id, data FROM trades WHERE trading_day=? ORDER BY rowid", (trading_day,)
        ).fetchall()
        return [(u, json.loads(d)) for u, d in rows]

    # ---------------------------------------------------------------- statements

    def put_statement(self, user_id: str, trading_day: str, content: str) -> None:
        self._db.execute(
            "INSERT OR REPLACE INTO statements (user_id, trading_day, content) VALUES (?, ?, ?)",
            (user_id, trading_day, content),
        )

    def statement(self, user_id: str, trading_day: str | None) -> tuple[str, str] | None:
        """(trading_day, content) of the given day, or of the latest one when None."""
        if trading_day:
            row = self._db.execute(
                "SELECT trading_day, content FROM statements WHERE user_id=? AND trading_day=?",
                (user_id, trading_day),
            ).fetchone()
        else:
            row = self._db.execute(
                "SELECT trading_day, content FROM statements WHERE user_id=? "
                "ORDER BY trading_day DESC LIMIT 1",
                (user_id,),
            ).fetchone()
        return None if row is None else (row[0], row[1])
