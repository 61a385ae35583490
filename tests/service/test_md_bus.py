"""Feeder -> Redis -> md edge, with a real ``redis-server`` started here (Debian's package):
end to end, demand flowing back, and recovery from Redis, feeder and edge restarts and a
network blip without any client action."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.conftest import replace
from webctp.config import Config
from webctp.service import ServiceInfo, run_service

from .client import Client, connect
from .test_md import md_login
from .test_md_shared import subscribe, ticks_of


class Redis:
    """A private redis-server on a free loopback port, no persistence, in a temp dir."""

    def __init__(self, folder: Path, *extra: str) -> None:
        if shutil.which("redis-server") is None:  # never skipped: the bus needs a real Redis
            pytest.fail(
                "redis-server is not installed: apt-get install redis-server (.ci/run does)"
            )
        self.folder = folder
        self.extra = list(extra)
        """More redis-server arguments (``--requirepass``, ``--unixsocket``)."""
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        self.port = sock.getsockname()[1]
        sock.close()
        self.proc: trio.Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.proc = await trio.lowlevel.open_process(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.folder),
                *self.extra,
            ],
            stdout=subprocess.DEVNULL,
        )
        with trio.fail_after(10):
            while True:
                try:
                    stream = await trio.open_tcp_stream("127.0.0.1", self.port)
                except OSError:
                    await trio.sleep(0.05)
                    continue
                await stream.aclose()
                return

    @property
    def password(self) -> str:
        if "--requirepass" not in self.extra:
            return ""
        return self.extra[self.extra.index("--requirepass") + 1]

    async def stop(self) -> None:
        if self.proc is not None:
            self.proc.kill()
            await self.proc.wait()
            self.proc = None

    async def command(self, *args: str) -> str:
        """A command through redis-cli (part of the redis-server package's dependencies)."""
        done = await trio.run_process(
            ["redis-cli", "-h", "127.0.0.1", "-p", str(self.port), *args],
            capture_stdout=True,
            env={**os.environ, **({"REDISCLI_AUTH": self.password} if self.password else {})},
        )
        return done.stdout.decode()


@pytest.fixture
async def redis(tmp_path: Path) -> AsyncIterator[Redis]:
    server = Redis(tmp_path)
    await server.start()
    try:
        yield server
    finally:
        await server.stop()


BUS = {"heartbeat_s": 0.2, "expiry_s": 1.0, "timeout_s": 0.5}


def feeder_cfg(cfg: Config, redis: Redis) -> Config:
    return replace(
        cfg,
        md={"upstream": "shared", "release_grace_s": 0.3},
        bus={"url": redis.url, "publish": True, **BUS},
    )


def edge_cfg(cfg: Config, redis: Redis) -> Config:
    return replace(
        cfg,
        server={"mode": "md-edge"},
        md={"release_grace_s": 0.3},
        bus={"url": redis.url, **BUS},
    )


@asynccontextmanager
async def running(cfg: Config) -> AsyncIterator[ServiceInfo]:
    async with trio.open_nursery() as nursery:
        info: ServiceInfo = await nursery.start(run_service, cfg)
        yield info
        nursery.cancel_scope.cancel()


async def some_instruments(feeder: ServiceInfo, n: int) -> list[str]:
    return sorted(feeder.exchange.instrument_ids())[:n]


async def state(c: Client, value: str) -> dict[str, Any]:
    frame = await c.expect(
        lambda f: f.get("MsgType") == "SessionState" and f["SessionState"]["State"] == value,
        timeout=15,
    )
    return frame


@asynccontextmanager
async def ticking(port: int, wanted: list[str]) -> AsyncIterator[Client]:
    """A client of the /md/ on ``port``, logged in, subscribed to ``wanted`` and getting
    ticks of each."""
    async with connect(port, "/md/") as c:
        await md_login(c)
        await subscribe(c, wanted, 1)
        await ticks_of(c, wanted)
        yield c


async def until(condition: Any, timeout: float = 10) -> None:
    with trio.fail_after(timeout):
        while not condition():
            await trio.sleep(0.05)


async def test_edge_serves_md_from_the_feeder(cfg: Config, redis: Redis) -> None:
    async with running(feeder_cfg(cfg, redis)) as feeder, running(edge_cfg(cfg, redis)) as edge:
        assert edge.exchange is None and edge.ctx.backend.name == "none"
        wanted = await some_instruments(feeder, 3)
        upstream = feeder.ctx.md_hub.source
        async with connect(edge.ws_port, "/md/") as a, connect(edge.ws_port, "/md/") as b:
            await md_login(a)
            await subscribe(a, wanted, 1)
            await ticks_of(a, wanted)  # demand went to the feeder through Redis
            assert sorted(upstream.subscribed["md"]) == wanted
            await md_login(b)
            await subscribe(b, wanted[:1], 2)
            await ticks_of(b, wanted[:1])
            # the edge keeps bars of the ticks it serves (GetBars), as any md service does
            await b.send({"MsgType": "GetBars", "InstrumentID": wanted[0], "RequestID": 3})
            bars = (await b.expect("Bars"))["Bars"]
            assert bars["InstrumentID"] == wanted[0] and bars["Bars"], bars
            # an alias needs a backend to resolve it: an edge has none
            await b.send(
                {"MsgType": "SubscribeMarketData", "InstrumentID": ["rb.front"], "RequestID": 4}
            )
            bad = await b.expect(lambda f: f.get("RequestID") == 4)
            assert bad["RspInfo"]["ErrorID"] == -400, bad
        # the edge's clients are gone: the demand is released up to the feeder's upstream
        await until(lambda: not upstream.subscribed["md"])


async def test_redis_restart_recovers_without_client_action(cfg: Config, redis: Redis) -> None:
    async with running(feeder_cfg(cfg, redis)) as feeder, running(edge_cfg(cfg, redis)) as edge:
        wanted = await some_instruments(feeder, 2)
        async with ticking(edge.ws_port, wanted) as c:
            await redis.stop()  # everything Redis held is gone (no persistence)
            down = await state(c, "disconnected")
            assert "bus" in down["SessionState"]["Detail"]
            await redis.start()
            await state(c, "ready")
            # fresh ticks again: the edge rewrote its demand, the feeder read it,
            # the edge's reader subscribed its channel again
            c.seen.clear()
            await ticks_of(c, wanted)


async def test_network_blip_recovers(cfg: Config, redis: Redis) -> None:
    async with running(feeder_cfg(cfg, redis)) as feeder, running(edge_cfg(cfg, redis)) as edge:
        wanted = await some_instruments(feeder, 2)
        async with ticking(edge.ws_port, wanted) as c:
            # every client connection of Redis dropped at once (feeder's and edge's)
            await redis.command("CLIENT", "KILL", "TYPE", "pubsub")
            await redis.command("CLIENT", "KILL", "TYPE", "normal", "SKIPME", "yes")
            await trio.sleep(0.5)
            await ticks_of(c, wanted)


async def test_stalled_redis_recovers(cfg: Config, redis: Redis) -> None:
    """Redis stops answering without closing anything (SIGSTOP: the connections stay open,
    nothing is read): the edge's client is told, and the feed comes back by itself when Redis
    answers again (the feeder's unanswered commands and the edge's silent channel are both
    caught by their deadlines)."""
    async with running(feeder_cfg(cfg, redis)) as feeder, running(edge_cfg(cfg, redis)) as edge:
        wanted = await some_instruments(feeder, 2)
        async with ticking(edge.ws_port, wanted) as c:
            assert redis.proc is not None
            redis.proc.send_signal(signal.SIGSTOP)
            try:
                down = await state(c, "disconnected")
                assert "bus" in down["SessionState"]["Detail"]
            finally:
                redis.proc.send_signal(signal.SIGCONT)
            await state(c, "ready")
            c.seen.clear()
            await ticks_of(c, wanted)


class Blackhole:
    """A TCP relay to Redis that can go silent: ``silence()`` makes every connection through it
    stop passing bytes either way while staying open (a half-open path: no reset, no close),
    including any made until ``restore()``; connections made after that pass again."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.port = 0
        self.generation = 0
        self.silent = False

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def silence(self) -> None:
        self.generation += 1
        self.silent = True

    def restore(self) -> None:
        self.silent = False

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
        self.port = listeners[0].socket.getsockname()[1]
        task_status.started()
        await trio.serve_listeners(self.relay, listeners)

    async def relay(self, client: trio.SocketStream) -> None:
        generation = self.generation
        if self.silent:
            await trio.sleep_forever()
        async with client:
            server = await trio.open_tcp_stream("127.0.0.1", self.target_port)
            async with server, trio.open_nursery() as nursery:
                nursery.start_soon(self.pipe, client, server, generation)
                nursery.start_soon(self.pipe, server, client, generation)

    async def pipe(self, a: trio.SocketStream, b: trio.SocketStream, generation: int) -> None:
        while data := await a.receive_some(65536):
            if generation != self.generation:
                await trio.sleep_forever()  # silenced: hold the bytes, keep the socket open
            await b.send_all(data)


@pytest.mark.parametrize("side", ["edge", "feeder"])
async def test_silent_connection_is_replaced(cfg: Config, redis: Redis, side: str) -> None:
    """The edge's (or the feeder's) path to Redis goes silent without any reset: the edge's
    client is told, and once the path works again ticks flow again, on new connections (a
    reader or a publisher that kept waiting on the old ones would pass nothing, ever)."""
    hole = Blackhole(redis.port)
    async with trio.open_nursery() as nursery:
        await nursery.start(hole.run)
        edge, feeder_ = edge_cfg(cfg, redis), feeder_cfg(cfg, redis)
        if side == "edge":
            edge = replace(edge, bus={"url": hole.url, **BUS})
        else:
            feeder_ = replace(feeder_, bus={"url": hole.url, "publish": True, **BUS})
        async with running(feeder_) as feeder, running(edge) as info:
            wanted = await some_instruments(feeder, 2)
            async with ticking(info.ws_port, wanted) as c:
                hole.silence()
                down = await state(c, "disconnected")
                detail = down["SessionState"]["Detail"]
                assert ("bus" if side == "edge" else "feeder") in detail, detail
                hole.restore()
                await state(c, "ready")
                c.seen.clear()
                await ticks_of(c, wanted)
        nursery.cancel_scope.cancel()


async def serve(
    cfg: Config, scope: trio.CancelScope, *, task_status: trio.TaskStatus[ServiceInfo]
) -> None:
    with scope:
        await run_service(cfg, task_status=task_status)


async def test_feeder_restart_recovers(cfg: Config, redis: Redis) -> None:
    async with running(edge_cfg(cfg, redis)) as edge, trio.open_nursery() as nursery:
        first = trio.CancelScope()
        feeder: ServiceInfo = await nursery.start(serve, feeder_cfg(cfg, redis), first)
        wanted = await some_instruments(feeder, 2)
        async with ticking(edge.ws_port, wanted) as c:
            first.cancel()  # the feeder stops: its key expires, the edge's client is told
            down = await state(c, "disconnected")
            assert "feeder" in down["SessionState"]["Detail"]
            second: ServiceInfo = await nursery.start(
                serve, feeder_cfg(cfg, redis), trio.CancelScope()
            )
            await state(c, "ready")
            # the new feeder found the edge's demand in Redis and subscribed upstream
            await until(lambda: sorted(second.ctx.md_hub.source.subscribed["md"]) == wanted)
            c.seen.clear()
            await ticks_of(c, wanted)
        nursery.cancel_scope.cancel()


async def test_edge_restart_releases_and_resumes(cfg: Config, redis: Redis) -> None:
    async with running(feeder_cfg(cfg, redis)) as feeder:
        wanted = await some_instruments(feeder, 2)
        upstream = feeder.ctx.md_hub.source
        async with running(edge_cfg(cfg, redis)) as edge, ticking(edge.ws_port, wanted):
            pass  # ticks of each instrument came through this edge
        # the edge died with its client's subscriptions: its demand key expires, the feeder
        # releases the instruments
        await until(lambda: not upstream.subscribed["md"])
        async with running(edge_cfg(cfg, redis)) as edge2, ticking(edge2.ws_port, wanted):
            pass  # and through the new one, from the same feeder
