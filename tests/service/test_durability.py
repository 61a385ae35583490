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

import pytest
import trio

from .client import Client, Frame, connect, http_get

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
            [
                sys.executable,
                "-m",
                "webctp",
                "--config",
                str(config),
                "--port",
                "0",
                "--ws-port",
                "0",
            ],
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
            if "event=listening" in line:
                fields = dict(p.split("=", 1) for p in line.split() if "=" in p)
                self.ports[fields["service"]] = int(fields["port"])
                if len(self.ports) == 2:
                    self._ready.set()
        self._ready.set()  # exited

    async def started(self) -> None:
        ok = await trio.to_thread.run_sync(self._ready.wait, 60.0)
        assert ok and len(self.ports) == 2, "".join(self.lines[-20:])

    @property
    def ws_port(self) -> int:
        return self.ports["ws"]

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


async def login(c: Client, user: str = "alice") -> None:
    frame = await c.login(user, "pw-durable")
    assert frame["MsgType"] == "RspUserLogin", frame
    assert not frame["RspInfo"] or frame["RspInfo"]["ErrorID"] == 0, frame


async def dce_instrument(c: Client) -> tuple[str, float, float]:
    rows = await c.query("ReqQryInstrument", {"ExchangeID": "DCE"}, rid=90)
    inst = str(rows[0]["Instrument"]["InstrumentID"])
    md = (await c.query("ReqQryDepthMarketData", {"InstrumentID": inst}, rid=91))[0]
    limits = md["DepthMarketData"]
    return inst, float(limits["UpperLimitPrice"]), float(limits["LowerLimitPrice"])


def order(inst: str, buy: bool, price: float, offset: str = "0") -> Frame:
    """A limit order at the daily limit: it trades at once against the book."""
    return {
        "InstrumentID": inst,
        "ExchangeID": "DCE",
        "Direction": "0" if buy else "1",
        "CombOffsetFlag": offset,
        "CombHedgeFlag": "1",
        "OrderPriceType": "2",
        "LimitPrice": price,
        "VolumeTotalOriginal": 1,
        "TimeCondition": "3",
        "VolumeCondition": "1",
        "ContingentCondition": "1",
        "ForceCloseReason": "0",
    }


def trade_key(frame: Frame) -> tuple[str, str]:
    t = frame["Trade"]
    return str(t["TradeID"]).strip(), str(t["OrderSysID"]).strip()


async def query_trades(c: Client, rid: int) -> list[tuple[str, str]]:
    rows = await c.query("ReqQryTrade", {}, rid=rid)
    return [trade_key(r) for r in rows if r.get("Trade")]


async def test_kill_9_during_trading_loses_no_trade_the_client_saw(tmp_path: Path) -> None:
    seen: list[tuple[str, str]] = []
    async with service(tmp_path) as svc, connect(svc.ws_port) as c:
        await login(c)
        inst, upper, lower = await dce_instrument(c)
        for i in range(40):  # pipelined: the kill lands while orders are in flight
            buy = i % 2 == 0
            await c.send(
                {
                    "MsgType": "ReqOrderInsert",
                    "RequestID": 1000 + i,
                    "InputOrder": order(inst, buy, upper if buy else lower),
                }
            )
        with trio.fail_after(30):
            while len(seen) < 12:
                frame = await c.recv()
                if frame.get("MsgType") == "RtnTrade":
                    seen.append(trade_key(frame))
        # kill -9 right after the 12th RtnTrade arrived (the rest still trading)
        await trio.to_thread.run_sync(svc.kill)
    assert len(set(seen)) == len(seen) == 12
    async with service(tmp_path) as svc, connect(svc.ws_port) as c:
        await login(c)
        stored = await query_trades(c, 2000)
        missing = [t for t in seen if t not in stored]
        assert not missing, f"trades told to the client but lost: {missing}"
        assert len(set(stored)) == len(stored)
        # new fills get fresh numbers, never one given out before the crash
        inst, upper, _ = await dce_instrument(c)
        await c.send(
            {
                "MsgType": "ReqOrderInsert",
                "RequestID": 3000,
                "InputOrder": order(inst, True, upper),
            }
        )
        new = trade_key(await c.expect("RtnTrade", timeout=20))
        assert new[0] not in {t for t, _ in stored}, (new, stored)
        assert new[1] not in {o for _, o in stored}, (new, stored)
        assert new[0] not in {t for t, _ in seen} and new[1] not in {o for _, o in seen}
        # the positions agree with the stored trades: nothing half applied
        positions = await c.query("ReqQryInvestorPosition", {}, rid=3001)
        net = sum(
            (1 if p["InvestorPosition"]["PosiDirection"] == "2" else -1)
            * p["InvestorPosition"]["Position"]
            for p in positions
            if p.get("InvestorPosition")
        )
        trades = await c.query("ReqQryTrade", {}, rid=3002)
        expected = sum(
            (1 if t["Trade"]["Direction"] == "0" else -1) * t["Trade"]["Volume"]
            for t in trades
            if t.get("Trade")
        )
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


async def lock_then_fill(svc: Service, c: Client, db: Path, fill: Frame) -> subprocess.Popen[str]:
    """Another process takes the write lock; then an order that fills at once is sent (the
    exchange books it in memory and cannot commit it); returns once the exchange has said so
    (its event=sim_store_error line). The caller releases the lock (``release_lock``)."""
    locker = start_locker(db)
    assert locker.stdout is not None
    assert (await trio.to_thread.run_sync(locker.stdout.readline)).strip() == "locked"
    await c.send({"MsgType": "ReqOrderInsert", "RequestID": 2, "InputOrder": fill})
    with trio.fail_after(10):
        while not any("event=sim_store_error" in line for line in svc.lines):
            await trio.sleep(0.05)
    return locker


async def release_lock(locker: subprocess.Popen[str]) -> None:
    # the newline ends the lock; communicate() also closes the pipes
    await trio.to_thread.run_sync(locker.communicate, "\n", 10)


async def test_write_lock_held_by_another_process(tmp_path: Path) -> None:
    """Another process holds the database's write lock for seconds (many retry windows): the
    client gets a clear error or a delayed, correct answer; the engine stays alive; nothing
    is half applied; later orders work."""
    async with service(tmp_path) as svc, connect(svc.ws_port) as c:
        await login(c)
        inst, upper, lower = await dce_instrument(c)
        await c.send(
            {
                "MsgType": "ReqOrderInsert",
                "RequestID": 1,
                "InputOrder": order(inst, True, upper),
            }
        )
        first = trade_key(await c.expect("RtnTrade", timeout=20))
        # the order (RequestID 2) is accepted before the exchange notices the lock: held
        locker = await lock_then_fill(
            svc, c, tmp_path / "data" / "sim.sqlite3", order(inst, True, upper)
        )
        try:
            frames: list[Frame] = []

            async def receive() -> None:
                while True:
                    frames.append(await c.recv(timeout=60))

            async with trio.open_nursery() as nursery:
                nursery.start_soon(receive)
                for rid in range(11, 24):  # queries while the lock is held (~4 s)
                    await c.send(
                        {
                            "MsgType": "ReqQryTradingAccount",
                            "RequestID": rid,
                            "QryTradingAccount": {},
                        }
                    )
                    await trio.sleep(0.3)
                nursery.cancel_scope.cancel()
            # while the lock is held, the held order is not told, and queries are
            # refused with a clear error instead of answered from untold state
            assert not [f for f in frames if f.get("MsgType") in ("RtnTrade", "RtnOrder")]
            errors = [f for f in frames if f.get("RspInfo") and f["RspInfo"]["ErrorID"]]
            assert len(errors) >= 5, frames
            assert all(e["RspInfo"]["ErrorID"] == -1 for e in errors), errors
            assert all(e["RequestID"] in range(11, 24) for e in errors)
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
        second = trade_key(await c.expect("RtnTrade", timeout=20))
        assert second != first
        # later orders work, and position = trades (nothing half applied)
        await c.send(
            {
                "MsgType": "ReqOrderInsert",
                "RequestID": 3,
                "InputOrder": order(inst, False, lower, "1"),
            }
        )
        await c.expect("RtnTrade", timeout=20)
        with trio.fail_after(20):
            while True:
                positions = await c.query("ReqQryInvestorPosition", {}, rid=40)
                rows = [p["InvestorPosition"] for p in positions if p.get("InvestorPosition")]
                if rows:
                    break
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
    async with service(tmp_path) as svc, connect(svc.ws_port) as c:
        await login(c)
        inst, upper, _ = await dce_instrument(c)
        await c.send(
            {"MsgType": "ReqOrderInsert", "RequestID": 1, "InputOrder": order(inst, True, upper)}
        )
        seen.append(trade_key(await c.expect("RtnTrade", timeout=20)))
        locker = await lock_then_fill(
            svc, c, tmp_path / "data" / "sim.sqlite3", order(inst, True, upper)
        )
        try:
            with trio.move_on_after(1.0):
                while True:
                    frame = await c.recv()
                    if frame.get("MsgType") == "RtnTrade":
                        seen.append(trade_key(frame))
            await trio.to_thread.run_sync(svc.kill)
        finally:
            await release_lock(locker)
    assert len(seen) == 1, seen  # the second fill was held, not told
    async with service(tmp_path) as svc, connect(svc.ws_port) as c:
        await login(c)
        stored = await query_trades(c, 20)
        assert stored == seen
        inst, upper, _ = await dce_instrument(c)
        await c.send(
            {"MsgType": "ReqOrderInsert", "RequestID": 3, "InputOrder": order(inst, True, upper)}
        )
        new = trade_key(await c.expect("RtnTrade", timeout=20))
        assert new[0] != seen[0][0] and new[1] != seen[0][1]
