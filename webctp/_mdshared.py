"""An md client session served from the process's shared hub (``[md] upstream = "shared"``
and md edges): no CTP API of its own.

Same protocol as ``_md.MdSession`` (docs/md_protocol.md), answered locally:

- ``ReqUserLogin`` is answered as soon as the shared link is up (the credentials are not
  checked: real md fronts do not check them either); ``ReqUserLogout`` locally;
- ``SubscribeMarketData`` / ``UnSubscribeMarketData`` take or drop references in the hub
  (``_fanout.Hub``); ``RspSubMarketData`` comes at once for instruments already delivered,
  else when the upstream answers; then the latest tick of each instrument;
- link state (``FrontConnected``, ``FrontDisconnected``, ``SessionState``) is pushed by the
  hub to every session.

Control frames go through the connection's ``Outbox``; a session whose outbox is full when the
hub tells it something (``server.send_queue`` frames waiting) is closed with 1011 (it reads
too slowly) rather than making the hub wait. Ticks go through ``tick_sender``: every pending
frame in one write, each write with the ``Writer``'s deadline.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from . import _aliases, _bars
from ._context import ServiceContext
from ._fanout import Hub, Subscriber
from ._frames import FrameOut, Frames
from ._session import State
from .protocol import codec, envelope
from .protocol.catalogue import Catalogue, load
from .protocol.codec import RspInfo
from .protocol.errors import Code, ProtocolError, error_message
from .protocol.validate import instrument_list, validate

log = logging.getLogger("webctp.md")

_ids = itertools.count(1_000_000_001)

_SUBSCRIBE = {"SubscribeMarketData": True, "UnSubscribeMarketData": False}
_QUOTES = ("SubscribeForQuoteRsp", "UnSubscribeForQuoteRsp")

SendWire = Callable[[list[bytes], list[bytes]], Awaitable[bool]]


class SharedMdSession(Frames):
    kind = "md"

    def __init__(self, ctx: ServiceContext, out: FrameOut, hub: Hub, send_wire: SendWire) -> None:
        self.ctx = ctx
        self.cfg = ctx.cfg
        self.catalogue: Catalogue = load()
        self.out = out
        self.hub = hub
        self.send_wire = send_wire
        self.id = next(_ids)
        self.sink = Subscriber()
        self.state = State.CONNECTED
        self.logged_in = False
        self.nursery: trio.Nursery | None = None
        # (Un)subscription answers, sent in order by ``reply_sender``. Bounded: a request that
        # would queue more than ``max_replies`` answers gets -429 at once (a client that
        # sends requests faster than it reads their answers).
        self._replies: list[tuple[dict[str, Any], str | None]] = []
        self.max_replies = 2 * self.cfg.limits.md_max_instruments
        self._replies_ready = trio.Event()
        self.front_month = _aliases.for_fronts(ctx.backend.front_month, self.cfg.ctp.md_fronts)
        """ProductID → front-month contract, for aliases (None: the backend has none)."""

    # --- frames ---------------------------------------------------------------------------
    def tell(self, text: str) -> None:
        """Queue a frame without waiting (the hub calls this for every session)."""
        try:
            self.out.send_nowait(text)
        except trio.WouldBlock:
            self.sink.overflowed.set()  # _connection closes it with 1011
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    def _state_frame(self, detail: str) -> str:
        return codec.dumps(
            {
                "MsgType": "SessionState",
                "RspInfo": None,
                "SessionState": {"State": self.state.value, "Detail": detail},
            }
        )

    def on_link(self) -> None:
        """The hub's link went up or down (called by ``Hub.set_link``)."""
        if not self.logged_in:
            self.state = State.CONNECTED if self.hub.link_up else State.CONNECTING
            return
        self.state = State.READY if self.hub.link_up else State.DISCONNECTED
        self.tell(self._state_frame(self.hub.link_detail))

    # --- lifetime -------------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        hub = self.hub
        hub.sessions.add(self)
        try:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                nursery.start_soon(self.tick_sender)
                nursery.start_soon(self.reply_sender)
                if hub.link_up:
                    self.tell(
                        codec.dumps(
                            {"MsgType": "FrontConnected", "RspInfo": None, "FrontConnected": {}}
                        )
                    )
                else:
                    self.state = State.CONNECTING
                task_status.started()
        finally:
            hub.sessions.discard(self)
            hub.leave(self.sink)

    async def tick_sender(self) -> None:
        """All pending frames (the latest per instrument) in one write per lap."""
        sink = self.sink
        metrics = self.ctx.metrics
        pull = self.hub.pull
        while True:
            await sink.ready.wait()
            # After each write, the ticks the upstream got meanwhile are pulled through the hub
            # at once (``Upstream.pump_once``) instead of waiting for the upstream's task to
            # come round the event loop: under a flood each lap is then one socket write.
            while frames := sink.take():
                sent = await self.send_wire([f.wire for f in frames], [f.text for f in frames])
                if not sent:
                    return  # the socket closed; the receive task ends the connection
                metrics.ticks_out += len(frames)
                pull()

    def reply(self, frame: dict[str, Any], latest_of: str | None = None) -> None:
        """Queue an answer; after it, the latest tick of ``latest_of`` (a new subscription)."""
        self._replies.append((frame, latest_of))
        self._replies_ready.set()

    async def reply_sender(self) -> None:
        while True:
            await self._replies_ready.wait()
            self._replies_ready = trio.Event()
            replies, self._replies = self._replies, []
            for frame, latest_of in replies:
                await self.send(frame)
                if latest_of is not None and latest_of in self.sink.instruments:
                    latest = self.hub.latest.get(latest_of)
                    if latest is not None:
                        self.sink.offer(latest_of, latest)

    # --- requests -------------------------------------------------------------------------
    async def handle(self, text: str | bytes) -> None:
        env = await self.parse(text)
        if env is None:
            return
        msg_type = env.msg_type
        try:
            if msg_type in _SUBSCRIBE:
                await self.subscribe(msg_type, env)
            elif msg_type in ("ReqUserLogin", "ReqUserLogout"):
                spec = self.catalogue.md.requests[msg_type]
                validate(
                    self.catalogue.struct(spec.struct),
                    env.body.get(spec.payload_key),
                    key=spec.payload_key,
                )
                if msg_type == "ReqUserLogin":
                    await self.login(env.request_id)
                else:
                    await self.logout(env.request_id)
            elif msg_type == "GetBars":  # a webctp extension (webctp/_bars.py), not CTP
                if not self.logged_in:
                    raise ProtocolError(Code.NOT_LOGGED_IN, "send ReqUserLogin first")
                body = _aliases.resolve_body(env.body, self.front_month)
                await self.send(_bars.answer(self.ctx.bars, body, env.request_id))
            elif msg_type in self.catalogue.md.requests or msg_type in _QUOTES:
                await self.send_error(
                    Code.BAD_REQUEST,
                    request=msg_type,
                    request_id=env.request_id,
                    detail=f"{msg_type} is not available on a shared md upstream (docs/scaling.md)",
                )
            else:
                await self.send_error(
                    Code.UNKNOWN_MSGTYPE,
                    request=msg_type,
                    request_id=env.request_id,
                    detail=f"{msg_type} is not a market-data request (see docs/md_protocol.md)",
                )
        except ProtocolError as exc:
            await self.send_error(
                exc.code,
                request=msg_type,
                request_id=env.request_id,
                detail=exc.detail,
                msg_type="RspSubMarketData"
                if msg_type == "SubscribeMarketData"
                else "RspUnSubMarketData"
                if msg_type == "UnSubscribeMarketData"
                else None,
            )

    async def login(self, rid: int) -> None:
        if self.logged_in:
            raise ProtocolError(Code.BAD_REQUEST, "already logged in; send ReqUserLogout first")
        hub = self.hub
        if not hub.link_up:
            with trio.move_on_after(self.cfg.ctp.login_timeout_s):
                while not hub.link_up:
                    await hub.link_changed.wait()
        if not hub.link_up:
            raise ProtocolError(Code.LINK_DOWN, f"market data link down: {hub.link_detail}")
        self.logged_in = True
        row = dict(getattr(hub.source, "login_row", None) or {})
        await self.send(codec.response("RspUserLogin", "RspUserLogin", row, None, rid, True))
        self.state = State.READY
        self.tell(self._state_frame("logged in"))

    async def logout(self, rid: int) -> None:
        if not self.logged_in:
            raise ProtocolError(Code.NOT_LOGGED_IN, "send ReqUserLogin first")
        self.logged_in = False
        self.hub.leave(self.sink)
        await self.send(codec.response("RspUserLogout", "UserLogout", {}, None, rid, True))
        self.state = State.CONNECTED
        self.tell(self._state_frame("logged out"))

    def _check_ready(self) -> None:
        if not self.logged_in:
            raise ProtocolError(Code.NOT_LOGGED_IN, "send ReqUserLogin first")
        if not self.hub.link_up:
            raise ProtocolError(
                Code.LINK_DOWN, f"the market data link is down: {self.hub.link_detail}"
            )

    async def subscribe(self, msg_type: str, env: envelope.Envelope) -> None:
        add = _SUBSCRIBE[msg_type]
        limit = self.cfg.limits.md_max_instruments
        ids = instrument_list(env.body.get("InstrumentID"), max_items=limit)
        self._check_ready()
        rid = env.request_id
        mine = self.sink.instruments
        if add and len(mine) + len([i for i in ids if i not in mine]) > limit:
            raise ProtocolError(
                Code.BAD_REQUEST, f"at most {limit} subscribed instruments per session"
            )
        ids = list(dict.fromkeys(ids))
        ids = _aliases.resolve_ids(ids, self.front_month)
        if len(self._replies) + len(ids) > self.max_replies:
            raise ProtocolError(
                Code.QUEUE_FULL,
                f"{len(self._replies)} answers are still waiting for your socket "
                f"(at most {self.max_replies}); read them first",
            )
        if not add:
            self.hub.unsubscribe(self.sink, ids)
            for instrument in ids:
                self.reply(_specific("RspUnSubMarketData", instrument, None, rid))
            return
        down_told = False

        def answer(instrument: str, info: RspInfo | None) -> None:
            nonlocal down_told
            if info is not None and info[0] < 0:  # a gateway code: the link went down
                if not down_told:  # once per request, as the per-session path does
                    down_told = True
                    self.ctx.metrics.errors[int(info[0])] += 1
                    self.reply(
                        error_message(
                            info[0],
                            request=msg_type,
                            request_id=rid,
                            detail=info[1],
                            msg_type="RspSubMarketData",
                        )
                    )
                return
            ok = info is None or info[0] == 0
            self.reply(
                _specific("RspSubMarketData", instrument, info, rid),
                instrument if ok else None,
            )

        self.hub.subscribe(self.sink, ids, answer)


def _specific(
    msg_type: str, instrument: str, info: RspInfo | None, rid: int | None
) -> dict[str, Any]:
    return codec.response(
        msg_type, "SpecificInstrument", {"InstrumentID": instrument}, info, rid, True
    )
