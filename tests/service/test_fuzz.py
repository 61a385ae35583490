"""Fuzzing from outside: 10,000 mutated frames on logged-in td and md sessions, and 1,000
connect/login/disconnect cycles (a fifth of them ending in a TCP reset). The service must
answer bad input with error frames carrying the RequestID where there was one, never close a
connection for it, never fail internally, and give back threads, descriptors and memory."""

from __future__ import annotations

import json
import logging
import os
import random
from pathlib import Path
from typing import Any

import orjson
import pytest
import trio

from tests.conftest import replace
from webctp.config import Config
from webctp.protocol import envelope
from webctp.service import ServiceInfo, run_service

from .client import Client, connect
from .raw import Raw, text

SEED = 20261129

BASE: list[dict[str, Any]] = [
    {"MsgType": "ReqQryInstrument", "QryInstrument": {"InstrumentID": "IF"}},
    {"MsgType": "ReqQryTradingAccount", "QryTradingAccount": {}},
    {"MsgType": "ReqQryInvestorPosition", "QryInvestorPosition": {}},
    {
        "MsgType": "ReqOrderInsert",
        "InputOrder": {
            "InstrumentID": "rb",
            "Direction": "0",
            "CombOffsetFlag": "0",
            "CombHedgeFlag": "1",
            "LimitPrice": 3500.0,
            "VolumeTotalOriginal": 1,
            "OrderPriceType": "2",
            "TimeCondition": "3",
            "VolumeCondition": "1",
            "ContingentCondition": "1",
            "ForceCloseReason": "0",
        },
    },
    {
        "MsgType": "ReqOrderAction",
        "InputOrderAction": {"OrderSysID": "1", "ExchangeID": "SHFE", "ActionFlag": "0"},
    },
    {"MsgType": "SubscribeMarketData", "InstrumentID": ["rb", "IF"]},
    {"MsgType": "UnSubscribeMarketData", "InstrumentID": ["rb"]},
    {"MsgType": "ReqUserLogin", "ReqUserLogin": {"UserID": "fz", "Password": "pw"}},
    {"MsgType": "NoSuchThing", "X": 1},
]

ODD_VALUES: list[Any] = [
    None,
    True,
    -1,
    0,
    2**31,
    2**63,
    -(2**70),
    1e308,
    -0.0,
    "",
    "x" * 5000,
    "期货合约",
    "\ud800",
    "\x00\x01",
    "00",
    [],
    {},
    [[[[[]]]]],
    {"a": {"b": {"c": []}}},
    ["rb"] * 3000,
]


def mutate(rng: random.Random, message: dict[str, Any], rid: int) -> str:
    """One mutated frame (always valid UTF-8 text: the WebSocket layer is not what we fuzz)."""
    msg = orjson.loads(orjson.dumps(message))
    msg["RequestID"] = rid
    how = rng.randrange(8)
    if how == 0:  # a field's value replaced by an odd one
        payload = next((v for v in msg.values() if isinstance(v, dict)), msg)
        keys = list(payload) or ["X"]
        payload[rng.choice(keys)] = rng.choice(ODD_VALUES)
    elif how == 1:  # the RequestID itself
        msg["RequestID"] = rng.choice(ODD_VALUES)
    elif how == 2:  # MsgType
        msg["MsgType"] = rng.choice([*ODD_VALUES, "Req", "ReqQry" * 20, "RspUserLogin"])
    elif how == 3:  # payload of the wrong type
        for key in msg:
            if key not in ("MsgType", "RequestID"):
                msg[key] = rng.choice(ODD_VALUES)
    elif how == 4:  # unknown fields, many of them
        payload = next((v for v in msg.values() if isinstance(v, dict)), msg)
        for i in range(rng.randrange(1, 50)):
            payload[f"F{i}"] = rng.choice(ODD_VALUES)
    raw = json.dumps(msg, ensure_ascii=False)  # json: integers past 64 bits, lone surrogates
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:
        raw = json.dumps(msg)  # the lone surrogate as a \ud800 escape
    if how == 5:  # truncated
        raw = raw[: rng.randrange(len(raw))]
    elif how == 6:  # characters flipped / inserted
        chars = list(raw)
        for _ in range(rng.randrange(1, 6)):
            i = rng.randrange(len(chars))
            chars[i] = rng.choice('{}[]":,\\0a9 -.e期\u2028')
        raw = "".join(chars)
    elif how == 7:  # deep nesting or other JSON
        raw = rng.choice(["[" * 2000 + "]" * 2000, "null", "1", '"s"', "[]", "{}", "{" * 100])
    return raw


def expected_error(frame: str) -> tuple[bool, int | None]:
    """Whether the gateway must answer this frame with an error at once, and its RequestID."""
    env = envelope.parse(frame, max_bytes=65536)
    if isinstance(env, envelope.BadEnvelope):
        return True, env.request_id
    return False, env.request_id


async def reader(c: Client, errors: list[dict[str, Any]], done: trio.Event) -> None:
    while not done.is_set():
        with trio.move_on_after(0.5):
            frame = await c.recv(30)
            info = frame.get("RspInfo")
            if info and info.get("ErrorID", 0) < 0:
                errors.append(frame)


@pytest.mark.timeout(300)
async def test_ten_thousand_mutated_frames(
    nursery: trio.Nursery, cfg: Config, caplog: pytest.LogCaptureFixture
) -> None:
    cfg = replace(cfg, limits={"queries_per_second": 200.0, "orders_per_second": 200.0})
    info: ServiceInfo = await nursery.start(run_service, cfg)
    rng = random.Random(SEED)
    caplog.set_level(logging.WARNING)
    total = 0
    for path, count in (("/td/", 7000), ("/md/", 3000)):
        async with connect(info.ws_port, path) as c:
            login = await c.login("fz", "pw")
            assert login["MsgType"] == "RspUserLogin", login
            errors: list[dict[str, Any]] = []
            done = trio.Event()
            must: list[int | None] = []
            async with trio.open_nursery() as readers:
                readers.start_soon(reader, c, errors, done)
                for n in range(count):
                    frame = mutate(rng, rng.choice(BASE), 1000 + n)
                    bad, rid = expected_error(frame)
                    if bad:
                        must.append(rid)
                    await c.send(frame)
                    total += 1
                # a final well-formed request: answered once everything before it was
                await c.send(
                    {
                        "MsgType": "ReqQryTradingAccount",
                        "QryTradingAccount": {},
                        "RequestID": 999_999,
                    }
                )
                with trio.fail_after(120):
                    while not any(f.get("RequestID") == 999_999 for f in c.seen):
                        await trio.sleep(0.05)
                done.set()
            assert c.ws.closed is None, c.ws.closed  # never closed for bad input
            for err in errors:
                assert isinstance(err["RspInfo"]["ErrorMsg"], str) and err["RspInfo"]["ErrorMsg"]
            answered = [f.get("RequestID") for f in errors]
            missing = [rid for rid in must if rid is not None and rid not in answered]
            assert not missing, missing[:10]
            assert answered.count(None) >= must.count(None)
    assert total == 10_000
    assert info.ctx.metrics.errors[-500] == 0
    failures = [r.getMessage() for r in caplog.records if "failed" in r.getMessage()]
    assert not failures, failures[:5]


def counts() -> tuple[int, int, int]:
    """Threads, open descriptors and resident memory (KiB) of this process."""
    rss = next(
        int(line.split()[1])
        for line in Path("/proc/self/status").read_text().splitlines()
        if line.startswith("VmRSS:")
    )
    return len(os.listdir("/proc/self/task")), len(os.listdir("/proc/self/fd")), rss


async def cycle(port: int, n: int) -> None:
    path = "/td/" if n % 2 else "/md/"
    if n % 5 == 0:  # a reset in the middle of the login
        raw = await Raw.open(port)
        await raw.upgrade(path)
        await raw.send(
            text(
                {
                    "MsgType": "ReqUserLogin",
                    "ReqUserLogin": {"UserID": f"c{n % 9}", "Password": "pw"},
                    "RequestID": n,
                }
            )
        )
        if n % 10 == 0:
            await raw.read_frame()
        raw.reset()
        return
    async with connect(port, path) as c:
        frame = await c.login(f"c{n % 9}", "pw", rid=n)
        assert frame["MsgType"] == "RspUserLogin", frame


@pytest.mark.timeout(300)
async def test_thousand_cycles_give_everything_back(nursery: trio.Nursery, cfg: Config) -> None:
    info: ServiceInfo = await nursery.start(run_service, cfg)
    for n in range(20):  # warm up: worker threads, the simulator's lazy state, allocator pools
        await cycle(info.ws_port, n)

    async def settled(threads: int, fds: int) -> tuple[int, int, int]:
        with trio.move_on_after(30):  # trio's idle worker threads leave after 10 s
            while True:
                now = counts()
                quiet = not info.ctx.listener.conns and not sum(
                    info.ctx.metrics.sessions_active.values()
                )
                if quiet and now[0] <= threads and now[1] <= fds:
                    break
                await trio.sleep(0.1)
        return counts()

    base = await settled(10**6, 10**6)
    for n in range(1000):
        await cycle(info.ws_port, n)
    after = await settled(base[0], base[1])
    assert after[0] <= base[0], ("threads", base, after)
    assert after[1] <= base[1], ("fds", base, after)
    assert after[2] - base[2] < 40 * 1024, ("rss KiB", base, after)
    assert info.ctx.metrics.sessions_total["td"] + info.ctx.metrics.sessions_total["md"] >= 1000
