"""Load generator (``python -m bench.client MODE --host H --port P ...``), one process.

Modes (each prints JSON events on stdout, takes ``start``/``finish``/``quit`` on stdin):

- ``flood``: one connection to the bare server's /flood; frames/s over a time window.
- ``ticks``: md connections (webctp /md/ or the bare /paced or /fan), counting ticks and, with
  ``--latency``, the latency carried in ``CurrDelta``.
- ``orders``: one td session; ReqOrderInsert -> first RtnOrder round trips, each followed by a
  cancel (or the bare /echo round trip).
- ``sessions``: N td sessions connected and logged in at once (or the bare /session).

It writes and reads raw frames rather than using ``webctp.client``: the frames and their
timing are what is measured, the same code drives the bare baselines, and a full client
library would cost the 2-core machine about as much CPU per frame as the server (``_ws.py``).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import Any

import orjson
import trio

from ._ws import Closed, RawWebSocket, commands, emit

Frame = dict[str, Any]
TICK_PREFIX = b'{"MsgType":"RtnDepthMarketData"'
now = time.perf_counter


class Conn:
    def __init__(self, ws: RawWebSocket) -> None:
        self.ws = ws
        self.backlog: list[bytes] = []

    async def recv_frames(self) -> list[bytes]:
        if self.backlog:
            out, self.backlog = self.backlog, []
            return out
        return await self.ws.receive_batch()

    async def expect(self, pred: Callable[[Frame], bool], timeout: float = 60.0) -> Frame:
        with trio.fail_after(timeout):
            while True:
                frames = await self.recv_frames()
                for i, raw in enumerate(frames):
                    frame: Frame = orjson.loads(raw)
                    if pred(frame):
                        self.backlog = frames[i + 1 :] + self.backlog
                        return frame
                    info = frame.get("RspInfo")
                    if info and info.get("ErrorID") and frame.get("MsgType") != "FrontDisconnected":
                        raise RuntimeError(f"error frame: {raw[:300]!r}")

    async def login(self, user: str, password: str = "pw", rid: int = 1) -> Frame:
        await self.ws.send(
            {
                "MsgType": "ReqUserLogin",
                "ReqUserLogin": {"UserID": user, "Password": password},
                "RequestID": rid,
            }
        )
        return await self.expect(
            lambda f: f.get("MsgType") == "RspUserLogin" and f.get("RequestID") == rid
        )

    async def subscribe(self, instruments: list[str], rid: int = 2) -> None:
        await self.ws.send(
            {"MsgType": "SubscribeMarketData", "InstrumentID": instruments, "RequestID": rid}
        )
        wanted = set(instruments)
        while wanted:
            frame = await self.expect(lambda f: f.get("MsgType") == "RspSubMarketData")
            wanted.discard(frame["SpecificInstrument"]["InstrumentID"])


async def connect(args: argparse.Namespace, path: str) -> Conn:
    return Conn(await RawWebSocket.connect(args.host, args.port, path))


class Control:
    """Commands from the orchestrator: ``start`` opens the counting window, ``finish`` asks
    for the result once the stream has been idle for ``--idle`` seconds."""

    def __init__(self) -> None:
        self.started = trio.Event()
        self.finish = trio.Event()
        self.quit = trio.Event()

    async def run(self) -> None:
        async for cmd in commands():
            name = cmd.get("cmd")
            if name == "start":
                self.started.set()
            elif name == "finish":
                self.finish.set()
            elif name == "quit":
                break
        self.quit.set()
        self.finish.set()
        self.started.set()


# --- flood -----------------------------------------------------------------------------------
async def flood(args: argparse.Namespace, ctl: Control) -> None:
    conn = await connect(args, "/flood")
    counts: list[tuple[float, int]] = []
    t0 = now()
    total = 0
    while True:
        frames = await conn.recv_frames()
        t = now()
        total += len(frames)
        counts.append((t, total))
        if t - t0 >= args.seconds:
            break
    await conn.ws.close()
    w0 = t0 + args.warmup
    inside = [(t, c) for t, c in counts if t >= w0]
    if len(inside) < 2:
        inside = counts
    (ta, ca), (tb, cb) = inside[0], inside[-1]
    emit("result", frames=cb - ca, seconds=tb - ta, rate=(cb - ca) / max(tb - ta, 1e-9))


# --- ticks -----------------------------------------------------------------------------------
class TickStats:
    def __init__(self, latency: bool, stamps: bool = False) -> None:
        self.latency = latency
        self.stamps: list[float] | None = [] if stamps else None
        """With ``--stamps``: each timed tick's stamp (its callback time in the service), so
        that two clients' latencies can be paired tick by tick."""
        self.counting = False
        self.count = 0
        self.first = 0.0
        self.last = 0.0
        self.lat: list[float] = []
        self.per_conn: list[int] = []

    def feed(self, frames: list[bytes], t: float, slot: int) -> None:
        if not self.counting:
            return
        n = 0
        for raw in frames:
            if raw.startswith(TICK_PREFIX):
                n += 1
                if self.latency:
                    ts = orjson.loads(raw)["DepthMarketData"]["CurrDelta"]
                    self.lat.append(t - ts)
                    if self.stamps is not None:
                        self.stamps.append(ts)
        if n:
            if not self.count:
                self.first = t
            self.last = t
            self.count += n
            self.per_conn[slot] += n


async def ticks(args: argparse.Namespace, ctl: Control) -> None:
    stats = TickStats(args.latency, args.stamps)
    instruments: list[str] = json.loads(args.instruments) if args.instruments else []
    conns: list[Conn] = []
    ready = trio.Event()
    ended = [0]
    opened = [0]
    closed = [0]
    """Connections the server closed before the end (their later ticks are not counted)."""

    async def one(slot: int) -> None:
        if args.bare == "paced":
            conn = await connect(args, f"/paced?rate={args.rate}&seconds={args.seconds}")
        elif args.bare == "fan":
            conn = await connect(args, "/fan")
            # the same instrument pattern as the webctp run, as indices into the catalogue
            await conn.ws.send(json.dumps({"sub": pick(instruments, slot, args.per_conn)}))
            await conn.expect(lambda f: f.get("MsgType") == "Subscribed")
        else:
            conn = await connect(args, "/md/")
            await conn.login("", "", rid=1)
            mine = pick(instruments, slot, args.per_conn)
            await conn.subscribe(mine, rid=2)
        conns.append(conn)
        opened[0] += 1
        if opened[0] == args.connections:
            ready.set()
        while True:
            try:
                frames = await conn.recv_frames()
            except Closed:
                closed[0] += 1
                return
            t = now()
            if args.bare == "paced" and frames[-1].startswith(b'{"MsgType":"End"'):
                stats.feed(frames[:-1], t, slot)
                ended[0] += 1
                return
            stats.feed(frames, t, slot)

    stats.per_conn = [0] * args.connections
    t_open = now()
    async with trio.open_nursery() as nursery:
        for slot in range(args.connections):
            nursery.start_soon(one, slot)
        await ready.wait()
        opened_s = now() - t_open
        if args.bare == "paced":
            stats.counting = True
        else:
            # let the snapshots sent on subscription drain before the window opens
            await trio.sleep(args.settle)
        emit("ready", connections=len(conns), open_seconds=opened_s)
        await ctl.started.wait()
        stats.counting = True
        t_start = now()
        await ctl.finish.wait()
        # wait for the stream to go quiet (or the paced streams to end), or for every tick
        # expected (``--expect``: a loaded machine can pause a stream longer than ``--idle``)
        while not (args.expect and stats.count >= args.expect):
            before = stats.count
            with trio.move_on_after(args.idle):
                while not (args.expect and stats.count >= args.expect):
                    await trio.sleep(0.05)
            if stats.count == before and (args.bare != "paced" or ended[0] == len(conns)):
                break
        t_end = now()
        nursery.cancel_scope.cancel()
    for conn in conns:
        with trio.move_on_after(1):
            await conn.ws.close()
    out: dict[str, Any] = {
        "count": stats.count,
        "first": stats.first,
        "last": stats.last,
        "window": t_end - t_start,
        "rate": stats.count / max(stats.last - stats.first, 1e-9) if stats.count > 1 else 0.0,
        "per_conn_min": min(stats.per_conn) if stats.per_conn else 0,
        "per_conn_max": max(stats.per_conn) if stats.per_conn else 0,
        "closed": closed[0],
    }
    if args.latency:
        out["latency"] = stats.lat
    if stats.stamps is not None:
        out["stamps"] = stats.stamps
    emit("result", **out)


def pick(instruments: list[str], slot: int, per_conn: int) -> list[str]:
    """Connection ``slot``'s instruments: ``per_conn`` consecutive ones, shifted per slot."""
    if not instruments:
        return []
    n = len(instruments)
    start = (slot * per_conn) % n
    return [instruments[(start + k) % n] for k in range(min(per_conn, n))]


# --- orders ----------------------------------------------------------------------------------
def order_frame(
    ref: str, *msg_types: str, sys_id: bool = False, status: str = ""
) -> Callable[[Frame], bool]:
    """A predicate: a frame of one of ``msg_types`` about OrderRef ``ref``."""

    def match(f: Frame) -> bool:
        if f.get("MsgType") not in msg_types:
            return False
        body = f.get("Order") or f.get("InputOrder") or {}
        if str(body.get("OrderRef", "")).strip() != ref:
            return False
        if sys_id and not str(body.get("OrderSysID", "")).strip():
            return False
        return not status or body.get("OrderStatus") == status

    return match


async def orders(args: argparse.Namespace, ctl: Control) -> None:
    rtts: list[tuple[str, float, float]] = []
    if args.bare:
        conn = await connect(args, "/echo")
        await ctl.started.wait()
        for i in range(args.n):
            t0 = now()
            await conn.ws.send(f'{{"MsgType":"ReqOrderInsert","n":{i},"pad":"{"x" * 300}"}}')
            await conn.recv_frames()
            rtts.append((str(i), t0, now()))
            await trio.sleep(args.gap)
        await conn.ws.close()
        emit("result", rtts=rtts)
        return
    order = json.loads(args.order)
    conn = await connect(args, "/td/")
    await conn.login(args.user)
    emit("ready")
    await ctl.started.wait()
    for i in range(1, args.n + 1):
        ref = str(i)
        body = dict(order, OrderRef=ref)
        t0 = now()
        await conn.ws.send({"MsgType": "ReqOrderInsert", "InputOrder": body, "RequestID": i})
        first = await conn.expect(
            order_frame(ref, "RtnOrder", "ErrRtnOrderInsert", "RspOrderInsert")
        )
        t1 = now()
        if first["MsgType"] != "RtnOrder":
            raise RuntimeError(f"order {ref} refused: {first}")
        rtts.append((ref, t0, t1))
        resting = first
        if not first["Order"]["OrderSysID"].strip():
            resting = await conn.expect(order_frame(ref, "RtnOrder", sys_id=True))
        await conn.ws.send(
            {
                "MsgType": "ReqOrderAction",
                "RequestID": 100000 + i,
                "InputOrderAction": {
                    "ExchangeID": resting["Order"]["ExchangeID"],
                    "OrderSysID": resting["Order"]["OrderSysID"],
                    "InstrumentID": order["InstrumentID"],
                    "ActionFlag": "0",
                },
            }
        )
        await conn.expect(order_frame(ref, "RtnOrder", status="5"))
        await trio.sleep(args.gap)
    await conn.ws.close()
    emit("result", rtts=rtts)


# --- sessions --------------------------------------------------------------------------------
async def sessions(args: argparse.Namespace, ctl: Control) -> None:
    conns: list[Conn] = []
    durations: list[float] = []
    failures: list[str] = []
    limiter = trio.CapacityLimiter(args.concurrency)
    t0 = now()

    async def one(i: int) -> None:
        async with limiter:
            t = now()
            try:
                if args.bare:
                    conn = await connect(args, "/session")
                    await conn.ws.send('{"MsgType":"ReqUserLogin","RequestID":1}')
                    await conn.recv_frames()
                else:
                    conn = await connect(args, "/td/")
                    await conn.login(f"{args.user}{i:05d}")
            except (Closed, RuntimeError, OSError, trio.TooSlowError) as exc:
                failures.append(repr(exc)[:200])
                return
            conns.append(conn)
            durations.append(now() - t)

    async with trio.open_nursery() as nursery:
        for i in range(args.n):
            nursery.start_soon(one, i)
    total = now() - t0
    emit("ready", total=total, durations=durations, failures=failures, logged_in=len(conns))
    await ctl.finish.wait()
    t1 = now()
    async with trio.open_nursery() as nursery:
        for conn in conns:
            nursery.start_soon(conn.ws.close)
    emit("result", close_seconds=now() - t1)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("flood", "ticks", "orders", "sessions"))
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--bare", default="", help="baseline server behaviour (paced, fan, ...)")
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--warmup", type=float, default=0.5)
    parser.add_argument("--rate", type=float, default=1000.0)
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--per-conn", type=int, default=20)
    parser.add_argument("--instruments", default="", help="JSON list")
    parser.add_argument("--latency", action="store_true")
    parser.add_argument("--stamps", action="store_true", help="with --latency: each tick's stamp")
    parser.add_argument("--settle", type=float, default=1.0)
    parser.add_argument("--idle", type=float, default=0.5)
    parser.add_argument("--expect", type=int, default=0, help="ticks expected (0: unknown)")
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--gap", type=float, default=0.002)
    parser.add_argument("--order", default="{}", help="JSON InputOrder template")
    parser.add_argument("--user", default="bench")
    parser.add_argument("--concurrency", type=int, default=1000)
    args = parser.parse_args()
    ctl = Control()
    modes = {"flood": flood, "ticks": ticks, "orders": orders, "sessions": sessions}
    async with trio.open_nursery() as nursery:
        nursery.start_soon(ctl.run)
        try:
            await modes[args.mode](args, ctl)
        except Exception as exc:  # noqa: BLE001 - reported to the orchestrator
            emit("error", error=repr(exc))
        await ctl.quit.wait()
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main)
