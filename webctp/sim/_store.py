"""SQLite persistence of the paper accounts: accounts, orders, trades, positions, statements.

Rows are small JSON documents keyed by what the exchange looks them up by. The engine thread is
the only writer: what a batch of work changes is queued here (``pending``) and written by
``commit`` in one ``BEGIN IMMEDIATE … COMMIT`` transaction, and the engine hands the batch's
callbacks to the clients only after that returned (docs/simulator.md, "Durability"). A failed
commit is rolled back and keeps its writes queued, so the next ``commit`` retries all of them.

Positions are one row per lot (``lots``) and one per position row (``position_rows``), so a
fill rewrites the few rows it touched, never an account's whole history.

The file is created owner-only (0600; a folder it creates, 0700) and is locked for the
lifetime of the store through ``<db>.lock``: a second process (or ``Exchange``) on the same
file is refused with ``DatabaseInUse`` instead of running a second, diverging exchange on it.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import sys
from pathlib import Path
from typing import Any

from webctp._private import private_dir, private_file

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS accounts (user_id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS positions (user_id TEXT PRIMARY KEY, data TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS lots (
    user_id TEXT NOT NULL, lot_id INTEGER NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (user_id, lot_id));
CREATE TABLE IF NOT EXISTS position_rows (
    user_id TEXT NOT NULL, row_key TEXT NOT NULL, data TEXT NOT NULL,
    PRIMARY KEY (user_id, row_key));
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
# ``positions`` holds one document per account written by older versions; it is read once
# and emptied by the first commit after a start (see Engine._restore).

SYNCHRONOUS = ("full", "normal")
OPEN_TIMEOUT_S = 5.0
"""How long opening waits for another connection's write lock (schema creation)."""

Op = tuple[str, tuple[Any, ...]]

log = logging.getLogger("webctp.sim")


class DatabaseError(OSError):
    """The simulator database cannot be opened (the message names the file and the cause)."""


class DatabaseInUse(DatabaseError):
    """Another process (or exchange) has the database open; the message says what to do."""


def _dump(data: Any) -> str:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def _try_lock(fd: int) -> bool:
    if sys.platform == "win32":
        import msvcrt

        try:
            msvcrt.locking(fd, msvcrt.LK_NBLCK, 1)
        except OSError:
            return False
        return True
    import fcntl

    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return False
    return True


def lock_path(db_path: str) -> Path:
    return Path(db_path + ".lock")


def _acquire(db_path: str) -> int:
    """Hold ``<db>.lock`` exclusively (released when the fd closes, also by a crash)."""
    path = lock_path(db_path)
    private_file(path)
    fd = os.open(path, os.O_RDWR)
    if not _try_lock(fd):
        try:
            holder = os.read(fd, 32).decode("ascii", "replace").strip() or "?"
        except OSError:  # Windows: the holder's lock covers the bytes
            holder = "?"
        finally:
            os.close(fd)
        raise DatabaseInUse(
            f"simulator database {db_path} is in use by another webctp process "
            f"(pid {holder}, lock file {path}); give each service its own [sim] db_path "
            "(or working directory), or stop the other one first"
        )
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    return fd


class Store:
    """One SQLite connection, used by one thread at a time (the engine's)."""

    def __init__(
        self, path: str, *, busy_timeout_s: float = 0.2, synchronous: str = "normal"
    ) -> None:
        if synchronous not in SYNCHRONOUS:
            raise ValueError(f"synchronous must be one of {SYNCHRONOUS}")
        self.path = path
        self._lock_fd: int | None = None
        if path != ":memory:":
            private_dir(Path(path).resolve().parent)
            self._lock_fd = _acquire(path)
            try:
                private_file(Path(path))
                for suffix in ("-wal", "-shm"):  # SQLite gives them the database's mode
                    side = Path(path + suffix)
                    if side.exists():
                        private_file(side)
            except BaseException:
                self._release_lock()
                raise
        try:
            # check_same_thread=False: opened by the constructor's thread, used by the engine
            # thread (never concurrently). isolation_level=None: transactions are explicit.
            self._db = sqlite3.connect(
                path, timeout=OPEN_TIMEOUT_S, check_same_thread=False, isolation_level=None
            )
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute(f"PRAGMA synchronous={synchronous.upper()}")
            # freed pages (a clear-text password replaced by its hash) are overwritten
            self._db.execute("PRAGMA secure_delete=ON")
            self._db.executescript(SCHEMA)
            self._busy_ms = int(busy_timeout_s * 1000)
            self._db.execute(f"PRAGMA busy_timeout={self._busy_ms}")
        except sqlite3.Error as exc:
            self._release_lock()
            raise DatabaseError(f"cannot open simulator database {path}: {exc}") from exc
        except BaseException:
            self._release_lock()
            raise
        self._pending: list[Op] = []
        self._closed = False
        self.commits = 0
        """Transactions committed."""
        self.rows_written = 0
        """Statements executed by committed transactions (each writes or deletes rows)."""
        self.bytes_written = 0
        """Bytes of the text values those statements wrote."""

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # releases the lock
            self._lock_fd = None

    # ---------------------------------------------------------------- transactions

    @property
    def pending(self) -> int:
        """Writes queued since the last successful commit."""
        return len(self._pending)

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        self._pending.append((sql, params))

    def commit(self, wait_s: float | None = None) -> None:
        """Write everything queued in one transaction; nothing queued: no I/O.

        Raises ``sqlite3.Error`` (after a rollback, with the writes still queued) when the
        database cannot be written: locked by another connection longer than the busy
        timeout (``wait_s`` instead, when given), disk full, read-only, damaged."""
        ops = self._pending
        if not ops:
            return
        db = self._db
        try:
            if wait_s is not None:
                db.execute(f"PRAGMA busy_timeout={int(wait_s * 1000)}")
            try:
                db.execute("BEGIN IMMEDIATE")
            finally:
                if wait_s is not None:
                    db.execute(f"PRAGMA busy_timeout={self._busy_ms}")
            for sql, params in ops:
                db.execute(sql, params)
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                try:
                    db.execute("ROLLBACK")
                except sqlite3.Error:
                    pass  # the transaction is gone either way
            raise
        self._pending = []
        self.commits += 1
        self.rows_written += len(ops)
        self.bytes_written += sum(len(p) for _, ps in ops for p in ps if isinstance(p, str))

    def close(self) -> None:
        """Commit what is queued (if the database lets us) and close; idempotent. Writes that
        cannot be committed now are dropped: nothing of them was told to anyone."""
        if self._closed:
            return
        self._closed = True
        try:
            self.commit()
        except sqlite3.Error as exc:
            log.error(
                "event=sim_store_close_failed db=%s error=%r dropped_writes=%d",
                self.path,
                str(exc),
                len(self._pending),
            )
        finally:
            self._db.close()
            self._release_lock()

    # ---------------------------------------------------------------- meta

    def get_meta(self, key: str) -> Any:
        row = self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def set_meta(self, key: str, value: Any) -> None:
        self._write("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, _dump(value)))

    # ---------------------------------------------------------------- keyed documents

    def put(self, table: str, key: str, data: Any) -> None:
        col = "instrument_id" if table == "market" else "user_id"
        self._write(
            f"INSERT OR REPLACE INTO {table} ({col}, data) VALUES (?, ?)", (key, _dump(data))
        )

    def all(self, table: str) -> dict[str, Any]:
        col = "instrument_id" if table == "market" else "user_id"
        rows = self._db.execute(f"SELECT {col}, data FROM {table}").fetchall()
        return {k: json.loads(v) for k, v in rows}

    def clear_market(self) -> None:
        self._write("DELETE FROM market", ())

    # ---------------------------------------------------------------- positions

    def put_lot(self, user_id: str, lot_id: int, data: Any) -> None:
        self._write(
            "INSERT OR REPLACE INTO lots (user_id, lot_id, data) VALUES (?, ?, ?)",
            (user_id, lot_id, _dump(data)),
        )

    def put_position_row(self, user_id: str, row_key: str, data: Any) -> None:
        self._write(
            "INSERT OR REPLACE INTO position_rows (user_id, row_key, data) VALUES (?, ?, ?)",
            (user_id, row_key, _dump(data)),
        )

    def clear_positions(self, user_id: str) -> None:
        """Drop every lot and position row of ``user_id`` (rewritten after a settlement)."""
        for table in ("lots", "position_rows", "positions"):
            self._write(f"DELETE FROM {table} WHERE user_id=?", (user_id,))

    def lots(self) -> dict[str, list[Any]]:
        out: dict[str, list[Any]] = {}
        for user, data in self._db.execute("SELECT user_id, data FROM lots ORDER BY lot_id"):
            out.setdefault(user, []).append(json.loads(data))
        return out

    def position_rows(self) -> dict[str, list[tuple[str, Any]]]:
        out: dict[str, list[tuple[str, Any]]] = {}
        for user, key, data in self._db.execute(
            "SELECT user_id, row_key, data FROM position_rows ORDER BY rowid"
        ):
            out.setdefault(user, []).append((key, json.loads(data)))
        return out

    # ---------------------------------------------------------------- orders and trades

    def put_order(self, trading_day: str, seq: int, user_id: str, data: Any) -> None:
        self._write(
            "INSERT OR REPLACE INTO orders (trading_day, seq, user_id, data) VALUES (?, ?, ?, ?)",
            (trading_day, seq, user_id, _dump(data)),
        )

    def orders(self, trading_day: str) -> list[tuple[str, Any]]:
        rows = self._db.execute(
            "SELECT user_id, data FROM orders WHERE trading_day=? ORDER BY seq", (trading_day,)
        ).fetchall()
        return [(u, json.loads(d)) for u, d in rows]

    def put_trade(self, trading_day: str, trade_id: str, user_id: str, data: Any) -> None:
        self._write(
            "INSERT OR REPLACE INTO trades (trading_day, trade_id, user_id, data) "
            "VALUES (?, ?, ?, ?)",
            (trading_day, trade_id, user_id, _dump(data)),
        )

    def trades(self, trading_day: str) -> list[tuple[str, Any]]:
        rows = self._db.execute(
            "SELECT user_id, data FROM trades WHERE trading_day=? ORDER BY rowid", (trading_day,)
        ).fetchall()
        return [(u, json.loads(d)) for u, d in rows]

    # ---------------------------------------------------------------- statements

    _PUT_STATEMENT = (
        "INSERT OR REPLACE INTO statements (user_id, trading_day, content) VALUES (?, ?, ?)"
    )

    def put_statement(self, user_id: str, trading_day: str, content: str) -> None:
        self._write(self._PUT_STATEMENT, (user_id, trading_day, content))

    def statement(self, user_id: str, trading_day: str | None) -> tuple[str, str] | None:
        """(trading_day, content) of the given day, or of the latest one when None (a
        statement not committed yet included)."""
        queued = [
            (p[1], p[2])
            for sql, p in self._pending
            if sql == self._PUT_STATEMENT and p[0] == user_id and trading_day in (None, p[1])
        ]
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
        found = [(row[0], row[1])] if row is not None else []
        # max() keeps the first of equals: the latest queued one before the committed one
        return max(queued[::-1] + found, key=lambda s: s[0], default=None)
