"""The shared md upstream: one CTP md API per service process (``[md] upstream = "shared"``).

It is an ``MdSession`` without a client: logged in with the credentials of ``[md]`` (real md
fronts do not check them), re-logged in after a reconnect by the usual session logic, and
re-subscribing the union of what its clients want once after each re-login. It is the
``Source`` of the process's ``_fanout.Hub``:

- ``want`` / ``drop`` (reference counts reaching one / zero after the grace period) become
  paced ``SubscribeMarketData`` / ``UnSubscribeMarketData`` calls;
- each ``RspSubMarketData`` confirms the instrument in the hub (waiting clients get it);
- each tick is encoded once (``_fanout.encode_tick``) and handed to the hub, and to the bus
  publisher when this process is a feeder (``_bus.Publisher``);
- link state changes reach every md client through the hub (``SessionState``,
  ``FrontConnected``, ``FrontDisconnected``).

It runs in the service's nursery, for the service's lifetime; it never waits on a client
(the hub queues control frames without waiting, ticks are conflated per client).
"""

from __future__ import annotations

import logging
import time
from typing import Any, Protocol

import trio

from ._bars import exchange_now
from ._bridge import Event
from ._context import ServiceContext
from ._fanout import Conflation, Hub, TickFrame, encode_tick_dict, tick_dict
from ._md import MdSession
from ._session import LoginFailed, State
from .protocol import codec
from .protocol.errors import Code

log = logging.getLogger("webctp.upstream")


class TickTap(Protocol):
    """Also gets every encoded tick (the bus publisher of a feeder), with the number of
    ticks of the instrument replaced before it (never seen by the hub)."""

    def offer(self, instrument: str, frame: TickFrame, skipped: int = 0) -> None: ...


class _NoOut:
    async def send(self, text: str, /) -> None:
        return None

    def send_nowait(self, text: str, /) -> None:
        return None


async def _no_ticks(frames: list[str]) -> bool:
    return True


LOGIN_RETRY_S = 5.0
"""Pause between login attempts of the shared upstream when its login fails."""


class Upstream(MdSession):
    def __init__(self, ctx: ServiceContext, hub: Hub, tap: TickTap | None = None) -> None:
        super().__init__(ctx, _NoOut(), send_ticks=_no_ticks)
        self.hub = hub
        self.tap = tap
        md = self.cfg.md
        self.user_id = md.user_id
        self.password = md.password
        self.broker_id = md.broker_id or self.cfg.ctp.broker_id
        self.login_row: dict[str, Any] = {}
        self._changes = trio.Event()
        self._to_subscribe: dict[str, None] = {}
        self._to_release: dict[str, None] = {}
        self.sink.replaced = {}
        self.conflation = Conflation()
        """What ``_metrics`` counts for this upstream: each tick replaced before the hub took
        it, once per subscriber of its instrument (deliveries that did not happen)."""
        hub.source = self
        hub.pull = self.pump_once
        self.sink.on_ticks = self.pump_now

    # --- Source ---------------------------------------------------------------------------
    def want(self, instruments: list[str]) -> None:
        wanted = self.subscribed["md"]
        for instrument in instruments:
            wanted[instrument] = None
            self._to_release.pop(instrument, None)
            self._to_subscribe[instrument] = None
        self._changes.set()

    def drop(self, instruments: list[str]) -> None:
        wanted = self.subscribed["md"]
        for instrument in instruments:
            wanted.pop(instrument, None)
            self._to_subscribe.pop(instrument, None)
            self._to_release[instrument] = None
        self._changes.set()

    async def apply_changes(self) -> None:
        """Send queued (un)subscriptions to CTP in paced batches (only while logged in:
        after a re-login, ``after_login`` re-subscribes the whole union)."""
        while True:
            await self._changes.wait()
            self._changes = trio.Event()
            if self.state is not State.READY:
                self._to_subscribe.clear()
                self._to_release.clear()
                continue
            subscribe, self._to_subscribe = list(self._to_subscribe), {}
            release, self._to_release = list(self._to_release), {}
            if release:
                await self.send_batches("UnSubscribeMarketData", release)
            if subscribe:
                code = await self.send_batches("SubscribeMarketData", subscribe)
                if code != 0:
                    for instrument in subscribe:
                        self.hub.confirm(instrument, (code, f"SubscribeMarketData: {code}"))

    # --- session hooks --------------------------------------------------------------------
    async def send(self, frame: dict[str, Any]) -> None:
        """What a per-client session would send its client: link facts go to every client,
        the rest (the upstream's own login answers) to the log."""
        msg_type = frame.get("MsgType")
        if msg_type in ("FrontConnected", "FrontDisconnected"):
            self.hub.broadcast(frame)
        elif frame.get("RspInfo") and frame["RspInfo"].get("ErrorID"):
            log.warning(
                "event=upstream_error msg_type=%s error_id=%s detail=%r",
                msg_type,
                frame["RspInfo"]["ErrorID"],
                frame.get("Detail", ""),
            )

    async def set_state(self, state: State, detail: str = "") -> None:
        await super().set_state(state, detail)
        self.hub.set_link(state is State.READY, detail or state.value)

    async def on_link_down(self, detail: str) -> None:
        self.hub.active.clear()
        self.hub.fail_waiting((Code.LINK_DOWN, detail))

    async def on_response(self, ev: Event) -> None:
        name = ev.cb.name
        if name in ("OnRspSubMarketData", "OnRspUnSubMarketData"):
            if name == "OnRspSubMarketData" and ev.values:
                row = codec.codec(ev.cb.struct).to_dict(ev.values)
                instrument = str(row.get("InstrumentID", ""))
                if instrument in self.subscribed["md"]:
                    self.hub.confirm(instrument, ev.info)
            return
        await super().on_response(ev)

    async def after_login(self, relogin: bool) -> None:
        ids = list(self.subscribed["md"])
        if ids:
            await self.send_batches("SubscribeMarketData", ids)
            log.info("event=resubscribed session=%d instruments=%d", self.id, len(ids))

    async def start_tasks(self, nursery: trio.Nursery) -> None:
        nursery.start_soon(self.apply_changes)
        nursery.start_soon(self.keep_logged_in)

    # --- tasks ----------------------------------------------------------------------------
    async def keep_logged_in(self) -> None:
        """The first login (and again whenever re-login gave up)."""
        while True:
            if self.state not in (State.READY, State.DISCONNECTED, State.RELOGGING):
                async with self._login_lock:
                    self.state = State.LOGGING_IN
                    try:
                        self.login_row = await self.ctp_login()
                    except LoginFailed as exc:
                        log.warning(
                            "event=upstream_login_failed code=%d message=%r detail=%r",
                            exc.code,
                            exc.message,
                            exc.detail,
                        )
                        connected = self.front_connected.is_set()
                        self.state = State.CONNECTED if connected else State.CONNECTING
                        self.hub.set_link(False, f"md login failed: {exc.message}")
                    else:
                        await self.set_state(State.READY, "logged in")
                        await self.after_login(relogin=False)
                        continue
                await trio.sleep(LOGIN_RETRY_S)
                continue
            if self.login_info is not None and self.login_row is not self.login_info:
                self.login_row = self.login_info
            await self.hub.link_changed.wait()

    def pump_now(self) -> None:
        """The bridge's wake-up (``Sink.on_ticks``, run by ``run_sync_soon``): the ticks go
        to the hub at once. Must not raise: a failure is logged and those ticks are lost
        (counted nowhere else), the next ones come through."""
        try:
            self.pump_once()
        except Exception:  # a run_sync_soon callback must not raise
            log.exception("event=tick_pump_failed")

    def pump_once(self) -> bool:
        """Take the ticks the bridge holds now, encode each once, hand them to the hub and
        the bus; False when there were none. Synchronous: a client's sender calls it right
        after its write, so that under a flood each lap costs one socket write, without a
        round of the event loop (an epoll wait and the wake-up socket's reads, each a point
        where the callback thread can take the GIL) between the bridge and the write."""
        sink = self.sink
        if not sink.has_ticks():
            return False
        ticks = sink.take_ticks()
        hub = self.hub
        tap = self.tap
        wanted = self.subscribed["md"]
        replaced = sink.take_replaced()
        for instrument, n in replaced.items():
            self.conflation.ticks_conflated += n * len(hub.subscribers.get(instrument, ()))
        now = exchange_now(time.time())
        bars = self.ctx.bars
        for instrument, values in ticks.items():
            if instrument not in wanted:
                continue
            tick = tick_dict(values)
            bars.add_tick(tick, now)  # chart history (GetBars), see _bars.py
            frame = encode_tick_dict(tick)
            hub.publish(instrument, frame)
            if tap is not None:
                tap.offer(instrument, frame, replaced.get(instrument, 0))
        return True
