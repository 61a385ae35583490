"""Baseline server: bare trio-websocket, no webctp, pre-encoded frames (``python -m bench.bare``).

Paths (the client picks the behaviour):

- ``/flood``: send the ~1 KiB tick frame back to back until the client goes (item 1).
- ``/paced?rate=R&seconds=S``: a producer thread makes R "ticks" per second for S seconds and
  hands them to Trio the way webctp's bridge does (a lock-protected buffer and an idempotent
  ``run_sync_soon``); a Trio task sends each as a frame carrying the producer's timestamp in
  ``CurrDelta`` (the latency floor for item 3). ``rate=0``: as fast as it can go (item 1b).
- ``/fan``: the client sends ``{"sub": [indices]}``; every ``step`` command sends each
  subscriber one pre-encoded frame per subscribed index (the fan-out baseline for item 4).
- ``/echo``: answers every message with one ~1 KiB frame (the round-trip floor for item 5).
- ``/session``: answers the first message (a "login") with one frame, then idles (item 6).
"""

from __future__ import annotations

import argparse
import collections
import os
import threading
import time
import urllib.parse
from functools import partial
from typing import Any

import orjson
import trio
from trio_websocket import ConnectionClosed, serve_websocket

from ._ws import commands, emit

TICK: dict[str, Any] = {
    "MsgType": "RtnDepthMarketData",
    "DepthMarketData": {
        "TradingDay": "20261126",
        "ExchangeID": "",
        "LastPrice": 78170.0,
        "PreSettlementPrice": 78000.0,
        "PreClosePrice": 78000.0,
        "PreOpenInterest": 101346.0,
        "OpenPrice": 78020.0,
        "HighestPrice": 78270.0,
        "LowestPrice": 77470.0,
        "Volume": 99709,
        "Turnover": 38838223500.0,
        "OpenInterest": 101804.0,
        "ClosePrice": 0.0,
        "SettlementPrice": 0.0,
        "UpperLimitPrice": 83460.0,
        "LowerLimitPrice": 72540.0,
        "PreDelta": 0.0,
        "CurrDelta": 0.0,
        "UpdateTime": "06:18:55",
        "UpdateMillisec": 500,
        "BidPrice1": 78020.0,
        "BidVolume1": 21,
        "AskPrice1": 78030.0,
        "AskVolume1": 59,
        "BidPrice2": 78010.0,
        "BidVolume2": 46,
        "AskPrice2": 78040.0,
        "AskVolume2": 16,
        "BidPrice3": 78000.0,
        "BidVolume3": 2,
        "AskPrice3": 78050.0,
        "AskVolume3": 39,
        "BidPrice4": 77990.0,
        "BidVolume4": 36,
        "AskPrice4": 78060.0,
        "AskVolume4": 10,
        "BidPrice5": 77980.0,
        "BidVolume5": 32,
        "AskPrice5": 78070.0,
        "AskVolume5": 16,
        "AveragePrice": 389515.7257619673,
        "ActionDay": "20261126",
        "InstrumentID": "cu2612",
        "ExchangeInstID": "cu2612",
        "BandingUpperPrice": 0.0,
        "BandingLowerPrice": 0.0,
    },
}
FRAME = orjson.dumps(TICK).decode()
"""A real-looking tick frame, about 1 KiB (the size webctp sends)."""
_PREFIX, _SUFFIX = FRAME.split('"CurrDelta":0.0', 1)
LOGIN_REPLY = orjson.dumps(
    {
        "MsgType": "RspUserLogin",
        "RspInfo": None,
        "RequestID": 1,
        "IsLast": True,
        "RspUserLogin": {"TradingDay": "20261126", "FrontID": 1, "SessionID": 1, "x": "y" * 400},
    }
).decode()


def stamped(ts: float) -> str:
    return f'{_PREFIX}"CurrDelta":{ts!r}{_SUFFIX}'


class Fan:
    """Subscribers of the fan-out baseline: index -> the send channels of its subscribers."""

    def __init__(self) -> None:
        self.subs: dict[str, list[trio.MemorySendChannel[str]]] = collections.defaultdict(list)
        self.sent = 0

    def step(self) -> int:
        n = 0
        for chans in self.subs.values():
            for chan in chans:
                try:
                    chan.send_nowait(FRAME)
                    n += 1
                except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
                    pass
        return n


class _Pace:
    """The paced baseline's bridge: producer thread -> Trio, as webctp's ``Sink.post_tick``
    (the latest tick per "instrument" is kept: 20 of them, round robin, as in the webctp run)."""

    def __init__(self) -> None:
        self.token = trio.lowlevel.current_trio_token()
        self.lock = threading.Lock()
        self.pending: dict[int, float] = {}
        self.ready = trio.Event()
        self.done = False

    def wake(self) -> None:
        self.ready.set()

    def produce(self, rate: float, seconds: float) -> None:
        start = time.perf_counter()
        made = 0
        if rate <= 0:  # as fast as it can go, the GIL released between ticks (item 1b)
            while time.perf_counter() - start < seconds:
                with self.lock:
                    self.pending[made % 20] = time.perf_counter()
                self.token.run_sync_soon(self.wake, idempotent=True)
                made += 1
                os.sched_yield()  # as webctp's replay: ~1 µs, where sleep(0) costs ~130 µs
            self.done = True
            self.token.run_sync_soon(self.wake, idempotent=True)
            return
        while True:
            elapsed = time.perf_counter() - start
            if elapsed >= seconds:
                break
            due = int(elapsed * rate) + 1
            while made < due:
                with self.lock:
                    self.pending[made % 20] = time.perf_counter()
                self.token.run_sync_soon(self.wake, idempotent=True)
                made += 1
            pause = start + made / rate - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        self.done = True
        self.token.run_sync_soon(self.wake, idempotent=True)

    def take(self) -> list[float]:
        with self.lock:
            batch, self.pending = self.pending, {}
            self.ready = trio.Event()
        return list(batch.values())


async def _paced(ws: Any, rate: float, seconds: float) -> None:
    pace = _Pace()
    async with trio.open_nursery() as nursery:
        nursery.start_soon(partial(trio.to_thread.run_sync, pace.produce, rate, seconds))
        while not (pace.done and not pace.pending):
            await pace.ready.wait()
            for ts in pace.take():
                await ws.send_message(stamped(ts))
    await ws.send_message('{"MsgType":"End"}')


async def handler(request: Any, fan: Fan) -> None:
    ws = await request.accept()
    url = urllib.parse.urlsplit(request.path)
    query = urllib.parse.parse_qs(url.query)
    try:
        if url.path == "/flood":
            while True:
                await ws.send_message(FRAME)
        elif url.path == "/echo":
            while True:
                await ws.get_message()
                await ws.send_message(FRAME)
        elif url.path == "/paced":
            await _paced(ws, float(query["rate"][0]), float(query["seconds"][0]))
            await ws.get_message()
        elif url.path == "/session":
            await ws.get_message()
            await ws.send_message(LOGIN_REPLY)
            while True:
                await ws.get_message()
        elif url.path == "/fan":
            sub = orjson.loads(await ws.get_message())["sub"]
            send, recv = trio.open_memory_channel[str](100_000)
            for i in sub:
                fan.subs[str(i)].append(send)
            await ws.send_message('{"MsgType":"Subscribed"}')
            async with recv:
                async for frame in recv:
                    await ws.send_message(frame)
    except ConnectionClosed:
        pass


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    fan = Fan()
    async with trio.open_nursery() as nursery:
        server = await nursery.start(
            partial(
                serve_websocket,
                partial(handler, fan=fan),
                "127.0.0.1",
                args.port,
                None,
                handler_nursery=nursery,
            )
        )
        emit("ready", port=server.port)
        async for cmd in commands():
            name = cmd.get("cmd")
            if name == "step":
                emit("step_done", frames=fan.step())
            elif name == "quit":
                break
        nursery.cancel_scope.cancel()


if __name__ == "__main__":
    trio.run(main)
