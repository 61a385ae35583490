"""Durability, black-box: ``python -m webctp`` as a subprocess in a scratch working directory,
killed with SIGKILL during trading and restarted; a SQLite write lock held by another process;
a second service started in the same working directory.

Loopback only, ports chosen by the OS (read from the service's ``event=listening`` lines).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Literal

import pytest
import trio

from tests.processes import listening, service_command
from webctp.client import CtpError, Order, TdClient, connect_td

from .client import Frame, http_get

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL (POSIX)")

ROOT = Path(__file__).resolve().parents[2]
CONFIG = """
[server]
host = "127.0.0.1"
[ctp]
login_timeout_s = 10.0
request_timeout_s = 20.0
[limits]
queries_per_second = 50.0
orders_per_second = 200.0
[sim]
tick_interval_s = 0.2
seed = 7
query_per_second = 100
orders_per_second = 200
db_busy_timeout_s = 0.1
"""
# db_path and flow_dir keep their defaults, relative to the working directory:
# data/sim.sqlite3 and data/flow, as a user running the service from a folder gets them.


class Service:
    """One ``python -m webctp`` process; stderr is collected by a thread."""

    def __init__(self, workdir: Path) -> None:
        config = workdir / "webctp.toml"
        if not config.exists():
            config.write_text(CONFIG)
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        self.proc = subprocess.Popen(
            service_command(config),
            cwd=workdir,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.lines: list[str] = []
        self.ports: dict[str, int] = {}
        self._ready = threading.Event()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.append(line)
            if found := listening(line):
                self.ports[found[0]] = found[1]
                if len(self.ports) == 2:
                    self._ready.set()
        self._ready.set()  # exited

    async def started(self) -> None:
        ok = await trio.to_thread.run_sync(self._ready.wait, 60.0)
        assert ok and len(self.ports) == 2, "".join(self.lines[-20:])

    @property
    def td_url(self) -> str:
        return f"ws://127.0.0.1:{self.ports['ws']}/td/"

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.stop()

    def _close(self) -> None:
        self._reader.join(10)
        if self.proc.stderr is not None:
            self.proc.stderr.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._close()


@asynccontextmanager
async def service(workdir: Path) -> AsyncIterator[Service]:
    svc = Service(workdir)
    try:
        await svc.started()
        yield svc
    finally:
        await trio.to_thread.run_sync(svc.stop)


async def login(td: TdClient, user: str = "alice") -> None:
    assert (await td.login(user, "pw-durable"))["UserID"] == user


async def dce_instrument(td: TdClient) -> tuple[str, float, float]:
    rows = await td.query("QryInstrument", {"ExchangeID": "DCE"})
    inst = str(rows[0]["InstrumentID"])
    (md,) = await td.query("QryDepthMarketData", {"InstrumentID": inst})
    return inst, float(md["UpperLimitPrice"]), float(md["LowerLimitPrice"])


async def order(
    td: TdClient, inst: str, buy: bool, price: float, offset: Literal["open", "close"] = "open"
) -> Order:
    """A limit order at the daily limit: it trades at once against the book."""
    return await td.insert_order(
        inst, "buy" if buy else "sell", 1, price, offset=offset, exchange_id="DCE"
    )


async def traded(placed: Order) -> tuple[str, str]:
    """The key of the one fill of an order that trades at once."""
    with trio.fail_after(20):
        await placed.wait_done()
    (trade,) = placed.trades
    return trade_key(trade)


def trade_key(t: Frame) -> tuple[str, str]:
    return str(t["TradeID"]).strip(), str(t["OrderSysID"]).strip()


async def query_trades(td: TdClient) -> list[tuple[str, str]]:
    return [trade_key(t) for t in await td.query("QryTrade")]


async def test_kill_9_during_trading_loses_no_trade_the_client_saw(tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []
    async with service(tmp_path) as svc, connect_td(svc.td_url) as td:
        await login(td)
        inst, upper, lower = await dce_instrument(td)
        async with td.pushes({"RtnTrade"}) as fills:
            for i in range(40):  # pipelined: the kill lands while orders are in flight
                buy = i % 2 == 0
                await order(td, inst, buy, upper if buy else lower)
            with trio.fail_after(30):
                async for frame in fills:
                    seen.append(trade_key(frame["Trade"]))
                    if len(seen) == 12:
                        break
            # kill -9 right after the 12th RtnTrade arrived (the rest still trading)
            await trio.to_thread.run_sync(svc.kill)
    assert len(set(seen)) == len(seen) == 12
    async with service(tmp_path) as svc, connect_td(svc.td_url) as td:
        await login(td)
        stored = await query_trades(td)
        missing = [t for t in seen if t not in stored]
        assert not missing, f"trades told to the client but lost: {missing}"
        assert len(set(stored)) == len(stored)
        # new fills get fresh numbers, never one given out before the crash
        inst, upper, _ = await dce_instrument(td)
        new = await traded(await order(td, inst, True, upper))
        assert new[0] not in {t for t, _ in stored}, (new, stored)
        assert new[1] not in {o for _, o in stored}, (new, stored)
        assert new[0] not in {t for t, _ in seen} and new[1] not in {o for _, o in seen}
        # the positions agree with the stored trades: nothing half applied
        positions = await td.query("QryInvestorPosition")
        net = sum((1 if p["PosiDirection"] == "2" else -1) * p["Position"] for p in positions)
        trades = await td.query("QryTrade")
        expected = sum((1 if t["Direction"] == "0" else -1) * t["Volume"] for t in trades)
        assert net == expected


LOCKER = """
import sqlite3, sys
db = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=10)
db.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
db.execute("ROLLBACK")
"""


def start_locker(db: Path) -> subprocess.Popen[str]:
    """A second process that takes the database's write lock and keeps it until told."""
    return subprocess.Popen(
        [sys.executable, "-c", LOCKER, str(db)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )


async def lock_then_fill(
    svc: Service, td: TdClient, db: Path, inst: str, upper: float
) -> tuple[subprocess.Popen[str], Order]:
    """Another process takes the write lock; then an order that fills at once is sent (the
    exchange books it in memory and cannot commit it); returns once the exchange has said so
    (its event=sim_store_error line), with the order. The caller releases the lock
    (``release_lock``)."""
    locker = start_locker(db)
    assert locker.stdout is not None
    assert (await trio.to_thread.run_sync(locker.stdout.readline)).strip() == "locked"
    held = await order(td, inst, True, upper)
    with trio.fail_after(10):
        while not any("event=sim_store_error" in line for line in svc.lines):
            await trio.sleep(0.05)
    return locker, held


async def release_lock(locker: subprocess.Popen[str]) -> None:
    # the newline ends the lock; communicate() also closes the pipes
    await trio.to_thread.run_sync(locker.communicate, "\n", 10)


async def test_write_lock_held_by_another_process(tmp_path: Path) -> None:
    """Another process holds the database's write lock for seconds (many retry windows): the
    client gets a clear error or a delayed, correct answer; the engine stays alive; nothing
    is half applied; later orders work."""
    async with service(tmp_path) as svc, connect_td(svc.td_url) as td:
        await login(td)
        inst, upper, lower = await dce_instrument(td)
        first = await traded(await order(td, inst, True, upper))
        async with td.pushes({"RtnTrade", "RtnOrder"}) as told:
            # the order is accepted before the exchange notices the lock: held
            locker, held = await lock_then_fill(
                svc, td, tmp_path / "data" / "sim.sqlite3", inst, upper
            )
            try:
                errors: list[int] = []

                async def ask() -> None:
                    try:
                        await td.query("QryTradingAccount")
                    except CtpError as exc:
                        errors.append(exc.error_id)

                async with trio.open_nursery() as nursery:
                    for _ in range(13):  # queries while the lock is held (~4 s)
                        nursery.start_soon(ask)
                        await trio.sleep(0.3)
                    nursery.cancel_scope.cancel()
                # while the lock is held, the held order is not told, and queries are
                # refused with a clear error instead of answered from untold state
                with trio.move_on_after(0.2):
                    async for frame in told:
                        raise AssertionError(f"told while the lock was held: {frame}")
                assert held.data is None and not held.trades
                assert len(errors) >= 5, errors
                assert all(e == -1 for e in errors), errors
                assert svc.proc.poll() is None
                # and the service says so: /healthz is 503 with the reason
                status, _, body = await http_get(svc.ports["http"], "/healthz")
                assert status == 503, body
                assert b"database" in body and b'"status":"failing"' in body
            finally:
                await release_lock(locker)
        with trio.fail_after(20):
            while (await http_get(svc.ports["http"], "/healthz"))[0] != 200:
                await trio.sleep(0.1)
        # the delayed, correct answer: the held order's trade arrives
        second = await traded(held)
        assert second != first
        # later orders work, and position = trades (nothing half applied)
        await traded(await order(td, inst, False, lower, "close"))
        with trio.fail_after(20):
            while not (rows := await td.query("QryInvestorPosition")):
                await trio.sleep(0.05)
        assert sum(r["Position"] for r in rows if r["PosiDirection"] == "2") == 1
        assert not any("Traceback" in line for line in svc.lines), "".join(svc.lines)
    logged = "".join(svc.lines)
    assert "event=sim_store_error" in logged and "event=sim_store_recovered" in logged


async def test_second_service_in_the_same_working_directory_is_refused(tmp_path: Path) -> None:
    async with service(tmp_path):
        second = Service(tmp_path)
        code = await trio.to_thread.run_sync(second.proc.wait, 60)
        second.stop()
        text = "".join(second.lines)
        assert code != 0, text
        assert "data/sim.sqlite3" in text and "sim.sqlite3.lock" in text and "db_path" in text
        assert "Traceback" not in text, text


async def test_kill_9_while_the_database_is_locked_loses_nothing_told(tmp_path: Path) -> None:
    """A fill the exchange could not store is never told; killed in that state, the service
    comes back with exactly what the client saw."""
    seen: list[tuple[str, str]] = []
    async with service(tmp_path) as svc, connect_td(svc.td_url) as td:
        await login(td)
        inst, upper, _ = await dce_instrument(td)
        seen.append(await traded(await order(td, inst, True, upper)))
        async with td.pushes({"RtnTrade"}) as fills:
            locker, _ = await lock_then_fill(
                svc, td, tmp_path / "data" / "sim.sqlite3", inst, upper
            )
            try:
                with trio.move_on_after(1.0):
                    async for frame in fills:
                        seen.append(trade_key(frame["Trade"]))
                await trio.to_thread.run_sync(svc.kill)
            finally:
                await release_lock(locker)
    assert len(seen) == 1, seen  # the second fill was held, not told
    async with service(tmp_path) as svc, connect_td(svc.td_url) as td:
        await login(td)
        stored = await query_trades(td)
        assert stored == seen
        inst, upper, _ = await dce_instrument(td)
        new = await traded(await order(td, inst, True, upper))
        assert new[0] != seen[0][0] and new[1] != seen[0][1]
