"""The market-data (md) session: login, subscriptions, conflated tick delivery."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from . import _bars
from ._aliases import resolve_body, resolve_ids
from ._bars import exchange_now
from ._bridge import Event
from ._session import LINK_DOWN_STATES, LoginFailed, Pending, Session, State
from .protocol import codec, envelope
from .protocol.errors import Code, ProtocolError
from .protocol.validate import instrument_list, validate

log = logging.getLogger("webctp.md")

_MAX_PENDING = 1024
"""md requests awaiting an answer (CTP's md API has few); past it the oldest is forgotten."""

# MsgType -> (CTP method, response MsgType, which subscription set)
_SUBSCRIBE = {
    "SubscribeMarketData": ("SubscribeMarketData", "RspSubMarketData", "md", True),
    "UnSubscribeMarketData": ("UnSubscribeMarketData", "RspUnSubMarketData", "md", False),
    "SubscribeForQuoteRsp": ("SubscribeForQuoteRsp", "RspSubForQuoteRsp", "quote", True),
    "UnSubscribeForQuoteRsp": ("UnSubscribeForQuoteRsp", "RspUnSubForQuoteRsp", "quote", False),
}
_RSP_TO_KIND = {
    "OnRspSubMarketData": "md",
    "OnRspUnSubMarketData": "md",
    "OnRspSubForQuoteRsp": "quote",
    "OnRspUnSubForQuoteRsp": "quote",
}


class MdSession(Session):
    kind = "md"

    def __init__(
        self, *args: Any, send_ticks: Callable[[list[str]], Awaitable[bool]], **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.send_ticks = send_ticks
        # desired subscriptions, restored after every re-login (CTP forgets them)
        self.subscribed: dict[str, dict[str, None]] = {"md": {}, "quote": {}}
        # (kind, instrument) -> client RequestIDs waiting for RspSub/RspUnSub (None: internal).
        # Bounded: past ``max_waiting`` entries a (un)subscription gets -429 at once.
        self.waiting: dict[tuple[str, str, bool], list[int | None]] = {}
        self.waiting_count = 0
        self.max_waiting = 4 * self.cfg.limits.md_max_instruments
        self.broker_id = self.cfg.ctp.broker_id

    async def start_tasks(self, nursery: trio.Nursery) -> None:
        nursery.start_soon(self.tick_sender)

    async def tick_sender(self) -> None:
        """Send the latest tick per instrument. A client that reads slowly gets conflated
        ticks: while this task waits on the socket, newer ticks replace older ones in the
        bridge's dict (bounded by the number of instruments)."""
        to_dict = codec.codec("DepthMarketData").to_dict
        dumps = codec.dumps
        metrics = self.ctx.metrics
        subscribed = self.subscribed["md"]
        bars = self.ctx.bars
        while True:
            await self.sink.ticks_ready.wait()
            # Ticks that arrived while a batch was being written are taken at once, without
            # waiting for their wake-up to go round the event loop: under a flood each lap
            # then costs one socket write instead of a write, an epoll wait and the wake-up
            # socket's reads, each a point where the callback thread can take the GIL.
            while ticks := self.sink.take_ticks():
                now = exchange_now(time.time())
                frames = []
                for instrument, values in ticks.items():
                    if instrument in subscribed:
                        tick = to_dict(values)
                        bars.add_tick(tick, now)  # chart history (GetBars), see _bars.py
                        frames.append(
                            dumps({"MsgType": "RtnDepthMarketData", "DepthMarketData": tick})
                        )
                if frames:
                    # one socket write for the batch (see _connection.send_batch)
                    if not await self.send_ticks(frames):
                        return  # the socket closed; the receive task ends the connection
                    metrics.ticks_out += len(frames)
                else:
                    await trio.lowlevel.checkpoint()

    async def handle(self, text: str | bytes) -> None:
        env = await self.parse(text)
        if env is None:
            return
        msg_type = env.msg_type
        try:
            if msg_type in _SUBSCRIBE:
                await self.subscribe(msg_type, env)
            elif msg_type == "GetBars":  # a webctp extension, not a CTP request
                await self.get_bars(env)
            elif msg_type == "ReqUserLogin":
                spec = self.catalogue.md.requests[msg_type]
                fields = dict(
                    validate(
                        self.catalogue.struct(spec.struct),
                        env.body.get(spec.payload_key),
                        key=spec.payload_key,
                    )
                )
                await self.client_login(env.request_id, fields)
            elif msg_type in self.catalogue.md.requests:
                await self.request(msg_type, env)
            else:
                await self.send_error(
                    Code.UNKNOWN_MSGTYPE,
                    request=msg_type,
                    request_id=env.request_id,
                    detail=f"{msg_type} is not a market-data request (see docs/md_protocol.md)",
                    msg_type="RspError",  # no response of that name exists (td_protocol.md)
                )
        except ProtocolError as exc:
            await self.send_error(
                exc.code,
                request=msg_type,
                request_id=env.request_id,
                detail=exc.detail,
                msg_type=_SUBSCRIBE[msg_type][1] if msg_type in _SUBSCRIBE else None,
            )

    async def get_bars(self, env: envelope.Envelope) -> None:
        """Answer from the service's bar book (webctp/_bars.py); CTP is not asked."""
        if self.login_info is None:
            raise ProtocolError(Code.NOT_LOGGED_IN, "send ReqUserLogin first")
        body = resolve_body(env.body, self.front_month)
        await self.send(_bars.answer(self.ctx.bars, body, env.request_id))

    def _check_ready(self) -> None:
        if self.state is State.READY:
            return
        if self.state in LINK_DOWN_STATES:
            raise ProtocolError(Code.LINK_DOWN, "the broker link is down; retry after RspUserLogin")
        raise ProtocolError(Code.NOT_LOGGED_IN, "send ReqUserLogin first")

    async def request(self, msg_type: str, env: envelope.Envelope) -> None:
        spec = self.catalogue.md.requests[msg_type]
        if msg_type in self.catalogue.unavailable:  # the loaded binding lacks it
            raise ProtocolError(Code.BAD_REQUEST, self.catalogue.unavailable[msg_type])
        assignments = validate(
            self.catalogue.struct(spec.struct), env.body.get(spec.payload_key), key=spec.payload_key
        )
        self._check_ready()
        fields = dict(assignments)
        by_name = self.catalogue.struct(spec.struct).by_name
        if "BrokerID" in by_name and not fields.get("BrokerID"):
            fields["BrokerID"] = self.broker_id
        if "UserID" in by_name and not fields.get("UserID"):
            fields["UserID"] = self.user_id
        rid = self.new_rid()
        self.pending[rid] = Pending(msg_type, env.request_id)
        while len(self.pending) > _MAX_PENDING:  # bounded: the oldest unanswered is forgotten
            self.pending.popitem(last=False)
        code = self.call(msg_type, spec.struct, tuple(fields.items()), rid)
        if code != 0:
            self.pending.pop(rid, None)
            await self.send_error(code, request=msg_type, request_id=env.request_id)

    async def subscribe(self, msg_type: str, env: envelope.Envelope) -> None:
        method, rsp, kind, add = _SUBSCRIBE[msg_type]
        limits = self.cfg.limits
        ids = instrument_list(env.body.get("InstrumentID"), max_items=limits.md_max_instruments)
        ids = resolve_ids(ids, self.front_month)
        self._check_ready()
        wanted = self.subscribed[kind]
        if (
            add
            and len(wanted) + len([i for i in ids if i not in wanted]) > limits.md_max_instruments
        ):
            raise ProtocolError(
                Code.BAD_REQUEST,
                f"at most {limits.md_max_instruments} subscribed instruments per session",
            )
        if self.waiting_count + len(ids) > self.max_waiting:
            raise ProtocolError(
                Code.QUEUE_FULL,
                f"{self.waiting_count} (un)subscriptions are still awaiting CTP's answer "
                f"(at most {self.max_waiting}); wait for their Rsp frames",
            )
        for instrument in ids:
            if add:
                wanted[instrument] = None
            else:
                wanted.pop(instrument, None)
            self.waiting.setdefault((kind, instrument, add), []).append(env.request_id)
            self.waiting_count += 1
        code = await self.send_batches(method, ids)
        if code != 0:
            for instrument in ids:
                self._pop_waiting(kind, instrument, add)
            await self.send_error(code, request=msg_type, request_id=env.request_id, msg_type=rsp)

    async def send_batches(self, method: str, ids: list[str]) -> int:
        """CTP can drop a session flooded with subscriptions: send them in paced batches."""
        limits = self.cfg.limits
        for start in range(0, len(ids), limits.md_subscribe_batch):
            if start:
                await trio.sleep(limits.md_subscribe_interval_s)
            if self.api is None:
                return Code.CTP_NETWORK
            batch = [i.encode("ascii") for i in ids[start : start + limits.md_subscribe_batch]]
            self.ctx.metrics.ctp_requests += 1
            code: int = getattr(self.api, method)(batch, len(batch))
            if code != 0:
                return code
        return 0

    def _pop_waiting(self, kind: str, instrument: str, add: bool) -> tuple[bool, int | None]:
        queue = self.waiting.get((kind, instrument, add))
        if not queue:
            return False, None
        rid = queue.pop(0)
        self.waiting_count -= 1
        if not queue:
            del self.waiting[(kind, instrument, add)]
        return True, rid

    async def on_response(self, ev: Event) -> None:
        cb = ev.cb
        kind = _RSP_TO_KIND.get(cb.name)
        if kind is not None:
            payload = (
                codec.codec(cb.struct).to_dict(ev.values) if (cb.struct and ev.values) else None
            )
            instrument = str(payload.get("InstrumentID", "")) if payload else ""
            add = "UnSub" not in cb.name
            found, client_rid = self._pop_waiting(kind, instrument, add)
            if found and client_rid is None:
                return  # an internal re-subscription after a reconnect
            await self.send(
                codec.response(
                    cb.msg_type, cb.payload_key, payload, ev.info, client_rid, ev.is_last
                )
            )
            return
        pending = self.pending.get(ev.request_id)
        if self.take_internal(ev, pending):
            return
        payload = codec.codec(cb.struct).to_dict(ev.values) if (cb.struct and ev.values) else None
        frame = codec.response(
            cb.msg_type,
            cb.payload_key,
            payload,
            ev.info,
            pending.client_rid if pending else None,
            ev.is_last,
        )
        if pending is not None and cb.name == "OnRspError":
            frame["Request"] = pending.request
        await self.send(frame)
        if pending is not None and (ev.is_last or cb.name == "OnRspError"):
            self.pending.pop(ev.request_id, None)
            if cb.name == "OnRspUserLogout" and (ev.info is None or ev.info[0] == 0):
                self.login_info = None
                await self.set_state(State.CONNECTED, "logged out")

    async def on_link_down(self, detail: str) -> None:
        """Answers to (un)subscriptions in flight will not come: tell each request once. The
        subscriptions themselves are kept and restored after the re-login."""
        waiting, self.waiting, self.waiting_count = self.waiting, {}, 0
        told: set[tuple[str, int]] = set()
        for (kind, _instrument, add), rids in waiting.items():
            msg_type = next(m for m, v in _SUBSCRIBE.items() if v[2] == kind and v[3] == add)
            for rid in rids:
                if rid is not None and (msg_type, rid) not in told:
                    told.add((msg_type, rid))
                    await self.send_error(
                        Code.LINK_DOWN,
                        request=msg_type,
                        request_id=rid,
                        detail=detail,
                        msg_type=_SUBSCRIBE[msg_type][1],
                    )

    # --- login ----------------------------------------------------------------------------
    def take_credentials(self, fields: dict[str, Any]) -> None:
        self.user_id = str(fields.get("UserID", ""))
        self.password = str(fields.get("Password", ""))
        self.broker_id = str(fields.get("BrokerID") or self.cfg.ctp.broker_id)

    async def ctp_login(self) -> dict[str, Any]:
        await self.wait_front()
        # Pass the client's credentials through (fronts with LoginVerify check them).
        info, rows = await self.internal(
            "ReqUserLogin",
            "ReqUserLogin",
            (("BrokerID", self.broker_id), ("UserID", self.user_id), ("Password", self.password)),
        )
        if info is not None and info[0] != 0:
            raise LoginFailed("RspUserLogin", info[0], info[1])
        values = next((ev.values for ev in rows if ev.values is not None), None)
        row = codec.codec("RspUserLogin").to_dict(values) if values is not None else {}
        self.login_info = row
        return row

    async def after_login(self, relogin: bool) -> None:
        if not relogin:
            return
        restored = 0
        for kind, method in (("md", "SubscribeMarketData"), ("quote", "SubscribeForQuoteRsp")):
            ids = list(self.subscribed[kind])
            if not ids:
                continue
            for instrument in ids:
                self.waiting.setdefault((kind, instrument, True), []).append(None)
                self.waiting_count += 1
            code = await self.send_batches(method, ids)
            if code == 0:
                restored += len(ids)
        if restored:
            log.info("event=resubscribed session=%d instruments=%d", self.id, restored)
            await self.push_state(f"re-subscribed {restored} instruments after the reconnect")
