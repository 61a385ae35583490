"""Durability and storage: commit before telling, database errors, bounded per-order writes,
password hashes, file permissions and the lock file."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from webctp.sim import DatabaseError, DatabaseInUse, Exchange, tdapi

from .sim_helpers import TIMEOUT, FakeClock, MdClient, TdClient, running, settings

RB = "rb2601"


def wait_for(pred: Callable[[], bool], timeout: float = TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def db_rows(path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    db = sqlite3.connect(path)
    try:
        return list(db.execute(sql, params))
    finally:
        db.close()


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# ---------------------------------------------------------------- nothing told before stored


def test_every_callback_finds_its_trade_and_order_already_committed(tmp_path: Path) -> None:
    db = tmp_path / "sim.sqlite3"
    seen: list[tuple[str, str, bool]] = []
    with running(settings(tmp_path)) as ex:
        c = TdClient(ex, tmp_path / "f").ready()
        real_trade, real_order = c.spi.OnRtnTrade, c.spi.OnRtnOrder

        def on_trade(trade: Any) -> None:
            # runs on the callback thread: a second connection sees only committed data
            key = f"{trade.TradeID.strip()}:{trade.ExchangeID}"
            found = db_rows(db, "SELECT 1 FROM trades WHERE trade_id=?", key)
            seen.append(("trade", key, bool(found)))
            real_trade(trade)

        def on_order(order: Any) -> None:
            rows = db_rows(db, "SELECT data FROM orders WHERE seq=?", order.BrokerOrderSeq)
            stored = json.loads(rows[0][0])["fields"] if rows else {}
            fresh = (
                stored.get("OrderStatus") == order.OrderStatus
                and stored.get("VolumeTraded") == order.VolumeTraded
            )
            seen.append(("order", order.OrderStatus, fresh or order.OrderStatus == "a"))
            real_order(order)

        c.spi.OnRtnTrade, c.spi.OnRtnOrder = on_trade, on_order
        ex.set_market(RB, 3100)
        for _ in range(3):
            c.wait_final(c.order(RB, "0", 1, 3101))
        c.wait_final(c.order(RB, "1", 3, 3099, offset="3"))
        c.rec.wait_count("OnRtnTrade", 4)
        c.release()
    assert [s for s in seen if s[0] == "trade"] and all(ok for _, _, ok in seen), seen


def test_counters_survive_a_restart_no_number_is_given_twice(tmp_path: Path) -> None:
    s = settings(tmp_path)
    ids: list[tuple[str, str]] = []
    for round_ in range(2):
        with running(s) as ex:
            c = TdClient(ex, tmp_path / f"f{round_}").ready()
            ex.set_market(RB, 3100)
            for _ in range(2):
                c.wait_final(c.order(RB, "0", 1, 3101))
            c.rec.wait_count("OnRtnTrade", 2)
            ids += [(t[0].TradeID, t[0].OrderSysID) for t in c.rec.of("OnRtnTrade")]
            c.release()
    assert len({t for t, _ in ids}) == 4 and len({o for _, o in ids}) == 4, ids


# ---------------------------------------------------------------- a database that cannot be written


def test_held_write_lock_holds_callbacks_refuses_requests_and_loses_nothing(
    tmp_path: Path,
) -> None:
    db = tmp_path / "sim.sqlite3"
    with running(settings(tmp_path, db_busy_timeout_s=0.05)) as ex:
        c = TdClient(ex, tmp_path / "f").ready()
        md = MdClient(ex, tmp_path / "f")
        md.login()
        md.subscribe(RB)
        ex.set_market(RB, 3100)
        assert ex.health() is None
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")  # another connection holds the write lock
        try:
            ref = c.order(RB, "0", 2, 3101)  # fills at once, in memory
            wait_for(lambda: ex.health() is not None)
            health = ex.health()
            assert health is not None and "database writes failing" in health, health
            ex.step_market()  # the engine still works ...
            ticks = len(md.ticks(RB))
            ex.set_market(RB, 3102)
            md.rec.wait(lambda: len(md.ticks(RB)) > ticks)  # ... and market data still flows
            # nobody has been told of the order or its fill
            assert c.orders_for(ref) == [] and c.rec.of("OnRtnTrade") == []
            # trading requests are refused at once (-1) instead of waiting or half-answering
            q = tdapi.CThostFtdcQryInvestorPositionField()
            assert c.api.ReqQryInvestorPosition(q, 900) == -1
            o = tdapi.CThostFtdcInputOrderField()
            assert c.api.ReqOrderInsert(o, 901) == -1
            time.sleep(4 * 0.25)  # several retries fail meanwhile
            assert c.rec.of("OnRtnTrade") == []
            assert db_rows(db, "SELECT count(*) FROM trades") == [(0,)]
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        # the held batch is committed and told, in order, and trading resumes
        c.wait_final(ref)
        (trade,) = c.rec.wait_count("OnRtnTrade")
        assert trade[0].Volume == 2
        wait_for(lambda: ex.health() is None)
        assert db_rows(db, "SELECT count(*) FROM trades") == [(1,)]
        (p,) = c.positions(RB)
        assert p.Position == 2
        c.wait_final(c.order(RB, "1", 2, 3100, offset="3"))
        assert [p.Position for p in c.positions(RB)] == [0]
        c.release()
        md.api.Release()


def test_close_while_the_database_is_locked_keeps_only_what_was_told(tmp_path: Path) -> None:
    db = tmp_path / "sim.sqlite3"
    s = settings(tmp_path, db_busy_timeout_s=0.05)
    with running(s) as ex:
        c = TdClient(ex, tmp_path / "f").ready()
        ex.set_market(RB, 3100)
        c.wait_final(c.order(RB, "0", 1, 3101))
        told = [t[0].TradeID for t in c.rec.wait_count("OnRtnTrade")]
        blocker = sqlite3.connect(db, isolation_level=None)
        blocker.execute("BEGIN IMMEDIATE")
        c.order(RB, "0", 1, 3101)  # filled in memory, never told
        wait_for(lambda: ex.health() is not None)
        c.release()
    blocker.execute("ROLLBACK")
    blocker.close()
    with running(s) as ex:
        c = TdClient(ex, tmp_path / "g").ready()
        (p,) = c.positions(RB)
        assert p.Position == 1  # the untold fill is gone, the told one is there
        assert [t.TradeID for t in c.query("ReqQryTrade")] == told
        ex.set_market(RB, 3100)
        c.wait_final(c.order(RB, "0", 1, 3101))
        (new,) = c.rec.wait_count("OnRtnTrade")
        assert new[0].TradeID not in told
        c.release()


def test_engine_survives_a_bug_in_one_batch(exchange: Exchange) -> None:
    def boom() -> None:
        raise RuntimeError("bug")

    with pytest.raises(RuntimeError):
        exchange._engine.call(boom)
    exchange._engine.post("call", None, (), None)  # a malformed item: the batch fails
    assert exchange.wait_idle()
    assert exchange.health() is None
    assert exchange.instrument_ids()


# ---------------------------------------------------------------- bounded per-order cost


def test_per_order_storage_is_bounded_and_closed_lots_leave(tmp_path: Path) -> None:
    db = tmp_path / "sim.sqlite3"
    with running(settings(tmp_path)) as ex:
        c = TdClient(ex, tmp_path / "f").ready()
        ex.set_market(RB, 3100)
        store = ex._engine.store
        costs = []
        for _ in range(40):
            ex.set_market(RB, 3100)  # a fresh book each time
            rows0, bytes0 = store.rows_written, store.bytes_written
            c.wait_final(c.order(RB, "0", 1, 3101))
            c.wait_final(c.order(RB, "1", 1, 3099, offset="3"))
            assert ex.wait_idle()
            costs.append((store.rows_written - rows0, store.bytes_written - bytes0))
        acc = ex._engine.accounts["alice"]
        assert acc.details == [] and len(acc.closed) == 40
        # the 40th round trip writes as many rows as the 10th and, but for a few more digits
        # in the counters, as many bytes: nothing grows with the day (one account document
        # holding every lot grew by ~300 bytes per round trip)
        assert costs[-1][0] == costs[9][0], costs
        assert costs[-1][1] <= costs[9][1] + 32, costs
        details = c.query("ReqQryInvestorPositionDetail", InstrumentID=RB)
        assert len(details) == 40 and all(d.Volume == 0 and d.CloseVolume == 1 for d in details)
        c.release()
    biggest = db_rows(
        db,
        "SELECT max(length(data)) FROM lots UNION ALL SELECT max(length(data)) FROM "
        "position_rows UNION ALL SELECT max(length(data)) FROM accounts",
    )
    assert all(n < 600 for (n,) in biggest), biggest


def test_settlement_drops_closed_lots_and_keeps_open_ones(tmp_path: Path) -> None:
    s = settings(tmp_path)
    with running(s) as ex:
        c = TdClient(ex, tmp_path / "f").ready()
        ex.set_market(RB, 3100)
        c.wait_final(c.order(RB, "0", 3, 3101))
        c.wait_final(c.order(RB, "1", 1, 3099, offset="3"))
        ex.settle()
        c.release()
    db = tmp_path / "sim.sqlite3"
    (lot,) = [json.loads(d) for (d,) in db_rows(db, "SELECT data FROM lots")]
    assert lot["volume"] == 2
    with running(s, FakeClock()) as ex:
        c = TdClient(ex, tmp_path / "g").ready()
        (p,) = c.positions(RB)
        assert (p.Position, p.YdPosition) == (2, 2)
        c.release()


# ---------------------------------------------------------------- passwords


def test_passwords_are_stored_as_salted_hashes(tmp_path: Path) -> None:
    db = tmp_path / "sim.sqlite3"
    s = settings(tmp_path, fixed_accounts={"fixed": "fixed-secret-1"})
    with running(s) as ex:
        for user in ("alice", "bob"):
            c = TdClient(ex, tmp_path / "f", user=user, password="same-secret-2").ready()
            c.release()
        c = TdClient(ex, tmp_path / "f", user="carol", password="old-secret-3").ready()
        req = tdapi.CThostFtdcUserPasswordUpdateField()
        req.BrokerID, req.UserID = "9999", "carol"
        req.OldPassword, req.NewPassword = "old-secret-3", "new-secret-4"
        assert c.request_info("ReqUserPasswordUpdate", req)[1].ErrorID == 0
        c.release()
    docs = {u: json.loads(d) for u, d in db_rows(db, "SELECT user_id, data FROM accounts")}
    hashes = [docs[u]["password_hash"] for u in ("alice", "bob", "carol", "fixed")]
    assert all(h.startswith("scrypt$") for h in hashes)
    assert hashes[0] != hashes[1]  # salted
    assert not any("password" in d for d in docs.values())
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("sim."))
    for secret in (b"same-secret-2", b"old-secret-3", b"new-secret-4", b"fixed-secret-1"):
        assert secret not in raw
    with running(s) as ex:  # a new process: no cache, the hash decides
        carol = TdClient(ex, tmp_path / "g", user="carol", password="new-secret-4")
        assert carol.login()[1].ErrorID == 0
        bad = TdClient(ex, tmp_path / "g", user="bob", password="nope")
        assert bad.login()[1].ErrorID == 3
        carol.release()
        bad.release()


def _legacy_db(path: Path) -> None:
    """A database as the previous version wrote it: clear-text password, one positions doc."""
    db = sqlite3.connect(path)
    db.executescript(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);"
        "CREATE TABLE accounts (user_id TEXT PRIMARY KEY, data TEXT NOT NULL);"
        "CREATE TABLE positions (user_id TEXT PRIMARY KEY, data TEXT NOT NULL);"
    )
    funds = {
        "password": "legacy-secret-5",
        "pre_balance": 1_000_000.0,
        "open_date": "20251119",
    }
    lot = {
        "instrument_id": RB,
        "direction": "0",
        "hedge": "1",
        "open_date": "20251119",
        "trade_id": "           7",
        "open_price": 3000.0,
        "volume": 2,
        "basis": 3000.0,
        "last_settlement": 3000.0,
    }
    rows = [[[RB, "2", "1", "2"], {"yd_position": 2}]]
    db.execute("INSERT INTO accounts VALUES ('old', ?)", (json.dumps(funds),))
    db.execute(
        "INSERT INTO positions VALUES ('old', ?)",
        (json.dumps({"details": [lot], "rows": rows}),),
    )
    db.commit()
    db.close()
    path.chmod(0o644)


def test_clear_text_rows_of_an_older_version_are_migrated(tmp_path: Path) -> None:
    db = tmp_path / "sim.sqlite3"
    _legacy_db(db)
    s = settings(tmp_path)
    with running(s) as ex:
        assert mode(db) == 0o600  # permissions tightened on open
        wrong = TdClient(ex, tmp_path / "f", user="old", password="guess")
        assert wrong.login()[1].ErrorID == 3
        wrong.release()
        (doc,) = db_rows(db, "SELECT data FROM accounts")
        assert "password_hash" not in json.loads(doc[0])  # nothing proven yet
        c = TdClient(ex, tmp_path / "f", user="old", password="legacy-secret-5").ready()
        (p,) = c.positions(RB)
        assert (p.Position, p.YdPosition) == (2, 2)
        c.release()
    (doc,) = db_rows(db, "SELECT data FROM accounts")
    data = json.loads(doc[0])
    assert data["password_hash"].startswith("scrypt$") and "password" not in data
    assert db_rows(db, "SELECT count(*) FROM positions") == [(0,)]
    assert db_rows(db, "SELECT count(*) FROM lots") == [(1,)]
    assert b"legacy-secret-5" not in db.read_bytes()
    with running(s) as ex:
        c = TdClient(ex, tmp_path / "g", user="old", password="legacy-secret-5").ready()
        (p,) = c.positions(RB)
        assert p.Position == 2
        c.release()


# ---------------------------------------------------------------- files and the lock file


def test_database_files_are_owner_only(tmp_path: Path) -> None:
    db = tmp_path / "a" / "b" / "sim.sqlite3"
    with running(settings(db_path=str(db))) as ex:
        c = TdClient(ex, tmp_path / "f").ready()
        c.release()
        assert mode(tmp_path / "a") == 0o700 and mode(tmp_path / "a" / "b") == 0o700
        files = [p for p in db.parent.iterdir()]
        assert {p.name for p in files} >= {"sim.sqlite3", "sim.sqlite3-wal", "sim.sqlite3.lock"}
        assert all(mode(p) == 0o600 for p in files), {p.name: oct(mode(p)) for p in files}


def test_second_exchange_on_the_same_file_is_refused(tmp_path: Path) -> None:
    s = settings(tmp_path)
    with running(s):
        with pytest.raises(DatabaseInUse) as info:
            Exchange(settings(tmp_path, name="other"))
        text = str(info.value)
        assert str(tmp_path / "sim.sqlite3") in text and "db_path" in text
        assert f"pid {os.getpid()}" in text
    with running(settings(tmp_path, name="other")):  # free again once the first closed
        pass


def test_lock_is_refused_across_processes(tmp_path: Path) -> None:
    import subprocess
    import sys

    s = settings(tmp_path)
    with running(s):
        code = (
            "from webctp.sim import Exchange, SimSettings, DatabaseInUse\n"
            f"try:\n    Exchange(SimSettings(db_path={str(tmp_path / 'sim.sqlite3')!r}))\n"
            "except DatabaseInUse as e:\n    print('refused', e)\n"
        )
        out = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True
        )
        assert out.stdout.startswith("refused") and "lock file" in out.stdout


def test_password_hashing_runs_off_the_engine_thread_and_a_flood_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from webctp.sim import _passwords

    real = _passwords._scrypt
    threads: list[str] = []
    gate = threading.Event()

    def slow(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
        threads.append(threading.current_thread().name)
        gate.wait(TIMEOUT)
        return real(password, salt, n, r, p)

    monkeypatch.setattr(_passwords, "_scrypt", slow)
    monkeypatch.setattr(_passwords.KdfWorker, "MAX_WAITING", 2)
    with running(settings(tmp_path)) as ex:
        clients = [TdClient(ex, tmp_path / "f", user=f"u{i}") for i in range(6)]
        rids = []
        for c in clients:
            c.authenticate()
            req = tdapi.CThostFtdcReqUserLoginField()
            req.BrokerID, req.UserID, req.Password = "9999", c.user, "pw"
            rids.append(c.call("ReqUserLogin", req))
        # one hash runs, two wait; the other logins are refused at once, "try again"
        refused = []
        for c, rid in zip(clients[3:], rids[3:]):
            (row,) = c.rec.wait_rsp("OnRspUserLogin", rid)
            refused.append(row[1].ErrorID)
        assert refused == [90, 90, 90]
        assert ex.last_price(RB) > 0  # the engine answers while the hash is stuck
        gate.set()
        for c, rid in zip(clients[:3], rids[:3]):
            (row,) = c.rec.wait_rsp("OnRspUserLogin", rid)
            assert row[1].ErrorID == 0
        again = clients[3].login()[1]  # the queue is free again
        assert again.ErrorID == 0
        for c in clients:
            c.release()
    assert threads and all(name == "sim-test-kdf" for name in threads), threads


def test_a_file_that_is_not_a_database_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "sim.sqlite3").write_bytes(b"not a database, just some text" * 100)
    with pytest.raises(DatabaseError) as info:
        Exchange(settings(tmp_path))
    assert str(tmp_path / "sim.sqlite3") in str(info.value)
    with running(settings(db_path=str(tmp_path / "other.sqlite3"))):
        pass  # and the lock of the failed one was released: nothing leaks
    (tmp_path / "sim.sqlite3").unlink()
    with running(settings(tmp_path)):
        pass


def test_a_hash_of_another_cost_is_replaced_at_the_next_login(tmp_path: Path) -> None:
    db = tmp_path / "sim.sqlite3"

    def stored() -> str:
        ((doc,),) = db_rows(db, "SELECT data FROM accounts WHERE user_id='alice'")
        return str(json.loads(doc)["password_hash"])

    with running(settings(tmp_path, password_scrypt_n=16)) as ex:
        TdClient(ex, tmp_path / "f").ready().release()
    assert stored().startswith("scrypt$16$8$1$")
    with running(settings(tmp_path, password_scrypt_n=32)) as ex:
        wrong = TdClient(ex, tmp_path / "g", password="wrong")
        assert wrong.login()[1].ErrorID == 3
        wrong.release()
        assert stored().startswith("scrypt$16$")  # a failed login changes nothing
        TdClient(ex, tmp_path / "g").ready().release()
    assert stored().startswith("scrypt$32$8$1$")
    with pytest.raises(ValueError, match="power of two"):
        settings(password_scrypt_n=1000)


@pytest.mark.parametrize(("setting", "pragma"), [("normal", 1), ("full", 2)])
def test_synchronous_setting_is_applied_in_wal_mode(
    tmp_path: Path, setting: str, pragma: int
) -> None:
    with running(settings(tmp_path, db_synchronous=setting)) as ex:
        db = ex._engine.store._db
        assert db.execute("PRAGMA journal_mode").fetchone() == ("wal",)
        assert db.execute("PRAGMA synchronous").fetchone() == (pragma,)
        c = TdClient(ex, tmp_path / "f").ready()
        ex.set_market(RB, 3100)
        c.wait_final(c.order(RB, "0", 1, 3101))
        c.release()
    with pytest.raises(ValueError, match="db_synchronous"):
        settings(db_synchronous="off")
