"""The service under test, in-process, with benchmark-only hooks (``python -m bench.service``).

Runs the real ``webctp.service.run_service`` (same code path as ``python -m webctp``) and adds,
without touching ``webctp/``:

- a JSON-lines control channel on stdin/stdout (``burst``, ``pace``, ``step``, ``stats``,
  ``orders``, ``quit``) to drive the embedded exchange;
- a subclass of the Spi classes webctp builds (``webctp._session.spi_class`` is wrapped):
  with ``--stamp``, ``OnRtnDepthMarketData`` writes ``time.perf_counter()`` into the tick's
  ``CurrDelta`` before webctp sees it (CLOCK_MONOTONIC is system-wide, so the client process
  compares it with its own receive time); ``OnRtnOrder`` records when the first callback for
  each OrderRef ran;
- a wrapper of the simulator's ``ReqOrderInsert`` recording when webctp called it, so the
  simulator's own time (call -> first OnRtnOrder) can be subtracted from the round trip.

Experiment knobs (environment, off by default, not used by ``python -m bench``; to pin the
service to CPUs use its own ``server.cpu_affinity``, and ``server.switch_interval_ms`` for the
GIL switch interval): ``BENCH_GC_TRACE=1`` reports garbage-collection pauses in ``stats``,
``BENCH_CPROFILE=path`` profiles the Trio thread with cProfile.
"""

from __future__ import annotations

import argparse
import functools
import gc
import inspect
import os
import re
import threading
import time
from functools import partial
from typing import Any

import trio

from ._ws import commands, emit

_ORDER_REF = re.compile(r'"OrderRef":"\s*(\d+)\s*"')


class Hooks:
    def __init__(self, stamp: bool) -> None:
        self.stamp = stamp
        self.md_callbacks = 0
        self.md_spi: Any = None
        self.last_ticks: dict[str, Any] = {}
        self.req_times: dict[str, float] = {}
        self.rtn_times: dict[str, float] = {}
        self.handle_times: dict[str, float] = {}
        self.send_times: dict[str, float] = {}
        self.lock = threading.Lock()

    def install(self) -> None:
        import webctp._session as session_mod
        from webctp._bridge import spi_class as webctp_spi_class
        from webctp.sim._api import CThostFtdcTraderApi

        hooks = self

        @functools.cache
        def spi_class(base: type, api: Any) -> type:
            cls = webctp_spi_class(base, api)
            namespace: dict[str, Any] = {}
            if api == "md":
                on_tick = getattr(cls, "OnRtnDepthMarketData")  # noqa: B009

                def OnRtnDepthMarketData(self: Any, data: Any) -> None:
                    if data is not None and hooks.stamp:
                        object.__setattr__(data, "CurrDelta", time.perf_counter())
                    hooks.md_callbacks += 1
                    if data is not None:  # kept for ``replay``
                        hooks.md_spi = self
                        hooks.last_ticks[data.InstrumentID] = data
                    on_tick(self, data)

                namespace["OnRtnDepthMarketData"] = OnRtnDepthMarketData
            else:
                on_order = getattr(cls, "OnRtnOrder")  # noqa: B009

                def OnRtnOrder(self: Any, order: Any) -> None:
                    t = time.perf_counter()
                    if order is not None:
                        hooks.rtn_times.setdefault(order.OrderRef.strip(), t)
                    on_order(self, order)

                namespace["OnRtnOrder"] = OnRtnOrder
            return type(cls.__name__, (cls,), namespace)

        setattr(session_mod, "spi_class", spi_class)  # noqa: B010 - patching on purpose

        # where an order's time goes inside the gateway: frame handed to the td session, and
        # RtnOrder frame handed to trio-websocket (first per OrderRef)
        from trio_websocket import WebSocketConnection

        from webctp._td import TdSession

        handle = TdSession.handle

        async def handle_frame(self: Any, text: str | bytes) -> None:
            if isinstance(text, str) and '"ReqOrderInsert"' in text:
                m = _ORDER_REF.search(text)
                if m:
                    hooks.handle_times.setdefault(m.group(1), time.perf_counter())
            await handle(self, text)

        setattr(TdSession, "handle", handle_frame)  # noqa: B010
        send_message = WebSocketConnection.send_message

        async def send_frame(self: Any, message: str | bytes) -> None:
            if isinstance(message, str) and message.startswith('{"MsgType":"RtnOrder"'):
                m = _ORDER_REF.search(message)
                if m:
                    hooks.send_times.setdefault(m.group(1), time.perf_counter())
            await send_message(self, message)

        setattr(WebSocketConnection, "send_message", send_frame)  # noqa: B010

        insert = CThostFtdcTraderApi.ReqOrderInsert

        def ReqOrderInsert(self: Any, order: Any, request_id: int, /) -> int:
            t = time.perf_counter()
            code: int = insert(self, order, request_id)
            hooks.req_times[order.OrderRef.strip()] = t
            return code

        CThostFtdcTraderApi.ReqOrderInsert = ReqOrderInsert  # type: ignore[method-assign]


class _NullFuture:
    def set_result(self, value: Any) -> None:
        pass

    def set_exception(self, exc: BaseException) -> None:
        emit("error", error=f"exchange call failed: {exc!r}")


def pace(exchange: Any, rate: float, seconds: float, instruments: list[str]) -> dict[str, Any]:
    """Ticks at ``rate`` per second for ``seconds`` (engine thread, round robin over
    ``instruments``), without waiting for each: the schedule is kept even when behind."""
    engine: Any = getattr(exchange, "_engine", None)
    direct = engine is not None and hasattr(engine, "post") and hasattr(engine, "burst")
    null = _NullFuture()
    n = len(instruments)
    start = time.perf_counter()
    made = 0
    while True:
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            break
        due = int(elapsed * rate) + 1
        k = due - made
        if k > 0:
            r = made % n
            order = instruments[r:] + instruments[:r]
            if direct:  # fire and forget: the schedule does not wait for the callbacks
                engine.post("call", engine.burst, (k, order), null)
            else:  # the public hook waits until the callbacks ran
                exchange.burst_ticks(k, order)
            made = due
        pause = start + made / rate - time.perf_counter()
        if pause > 0:
            time.sleep(pause)
    exchange.wait_idle(30.0)
    return {"ticks": made, "seconds": time.perf_counter() - start}


def replay(hooks: Hooks, n: int, rate: float = 0.0) -> dict[str, Any]:
    """The tick path without the simulator's cost: the last tick struct of each subscribed
    instrument is passed to webctp's md Spi ``n`` times, round robin, from this thread, with
    the GIL released between callbacks (``sleep``) as the C++ library's thread does; back to
    back, or ``rate`` per second."""
    spi = hooks.md_spi
    ticks = list(hooks.last_ticks.values())
    if spi is None or not ticks:
        return {"ticks": 0, "seconds": 0.0}
    callback = spi.OnRtnDepthMarketData
    m = len(ticks)
    pause = time.sleep
    yield_gil = getattr(os, "sched_yield", lambda: time.sleep(0))
    clock = time.perf_counter
    start = clock()
    if rate <= 0:
        for i in range(n):
            callback(ticks[i % m])
            yield_gil()
        return {"ticks": n, "seconds": clock() - start}
    for i in range(n):
        wait = start + i / rate - clock()
        if wait > 0:
            pause(wait)
        callback(ticks[i % m])
    return {"ticks": n, "seconds": clock() - start}


async def run(cfg: Any, hooks: Hooks) -> None:
    from webctp.service import run_service

    async with trio.open_nursery() as nursery:
        info = await nursery.start(run_service, cfg)
        exchange = info.exchange
        metrics = info.ctx.metrics
        gc_times: list[tuple[int, float]] = []
        gc_start = [0.0]

        def gc_cb(phase: str, info_: dict[str, int]) -> None:
            if phase == "start":
                gc_start[0] = time.perf_counter()
            else:
                gc_times.append((info_["generation"], time.perf_counter() - gc_start[0]))

        if os.environ.get("BENCH_GC_TRACE"):
            gc.callbacks.append(gc_cb)
        emit("ready", ws_port=info.ws_port, http_port=info.http_port)
        async for cmd in commands():
            name = cmd.get("cmd")
            try:
                if name == "quit":
                    break
                if name == "instruments":
                    ids = await trio.to_thread.run_sync(exchange.instrument_ids)
                    emit("instruments_done", ids=ids)
                elif name == "market":
                    iid = cmd["instrument"]
                    snap = await trio.to_thread.run_sync(exchange.market, iid)
                    try:
                        exchange_id = exchange._engine.instruments[iid].exchange_id
                    except (AttributeError, KeyError):
                        exchange_id = ""
                    emit("market_done", exchange_id=exchange_id, **snap)
                elif name == "burst":
                    prepared = bool(cmd.get("prepared", False))
                    rate = float(cmd.get("rate", 0.0))
                    if (
                        prepared
                        and "prepared" not in inspect.signature(exchange.burst_ticks).parameters
                    ):
                        # an older tree (--compare): no prepared mode; the engine builds on the go
                        if rate > 0:
                            n, ids = int(cmd["n"]), cmd["instruments"]
                            out = await trio.to_thread.run_sync(pace, exchange, rate, n / rate, ids)
                            emit("burst_done", prepared=False, **out)
                            continue
                        prepared = False
                    result = await trio.to_thread.run_sync(
                        partial(
                            exchange.burst_ticks,
                            int(cmd["n"]),
                            cmd.get("instruments"),
                            **({"prepared": True, "rate": rate} if prepared else {}),
                        )
                    )
                    emit(
                        "burst_done",
                        prepared=prepared,
                        ticks=result.ticks,
                        deliveries=result.deliveries,
                        seconds=getattr(result, "emit_seconds", result.seconds),
                        cpu_seconds=getattr(result, "emit_cpu_seconds", None),
                        build_seconds=result.seconds
                        - getattr(result, "emit_seconds", result.seconds),
                    )
                elif name == "replay":
                    out = await trio.to_thread.run_sync(
                        replay, hooks, int(cmd["n"]), float(cmd.get("rate", 0.0))
                    )
                    emit("replay_done", **out)
                elif name == "pace":
                    out = await trio.to_thread.run_sync(
                        pace,
                        exchange,
                        float(cmd["rate"]),
                        float(cmd["seconds"]),
                        cmd["instruments"],
                    )
                    emit("pace_done", **out)
                elif name == "step":
                    t0 = time.perf_counter()
                    await trio.to_thread.run_sync(exchange.step_market)
                    emit("step_done", seconds=time.perf_counter() - t0)
                elif name == "idle":
                    await trio.to_thread.run_sync(exchange.wait_idle, 30.0)
                    emit("idle_done")
                elif name == "stats":
                    emit(
                        "stats_done",
                        md_callbacks=hooks.md_callbacks,
                        ticks_out=metrics.ticks_out,
                        ticks_conflated=metrics.ticks_conflated,
                        frames_out=metrics.frames_out,
                        sessions=dict(metrics.sessions_active),
                        overflows=metrics.overflows,
                        gc=[
                            (
                                g,
                                len([t for gg, t in gc_times if gg == g]),
                                max([t for gg, t in gc_times if gg == g] or [0.0]),
                            )
                            for g in (0, 1, 2)
                        ],
                    )
                elif name == "orders":
                    emit(
                        "orders_done",
                        req=hooks.req_times,
                        rtn=hooks.rtn_times,
                        handle=hooks.handle_times,
                        send=hooks.send_times,
                    )
                    hooks.req_times, hooks.rtn_times = {}, {}
                    hooks.handle_times, hooks.send_times = {}, {}
                elif name == "stamp":
                    hooks.stamp = bool(cmd.get("on", True))
                    emit("stamp_done")
                elif name == "gc":
                    gc.collect()
                    emit("gc_done")
                else:
                    emit("error", error=f"unknown command {name!r}")
            except Exception as exc:  # noqa: BLE001 - reported to the orchestrator
                emit("error", error=f"{name}: {exc!r}")
        nursery.cancel_scope.cancel()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--config", required=True)
    parser.add_argument("--stamp", action="store_true", help="timestamp ticks in CurrDelta")
    args = parser.parse_args()
    from webctp import _log
    from webctp.config import load_config

    cfg = load_config(args.config)
    _log.setup(cfg.log.level)
    hooks = Hooks(stamp=args.stamp)
    hooks.install()
    prof_path = os.environ.get("BENCH_CPROFILE")  # experiment knob: profile the Trio thread
    if prof_path:
        import cProfile

        cProfile.runctx("trio.run(run, cfg, hooks)", globals(), locals(), prof_path)
        return
    trio.run(run, cfg, hooks)


if __name__ == "__main__":
    main()
