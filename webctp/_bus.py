"""The md bus over Redis: feeders publish encoded ticks, edges serve /md/ from them.

Needs the ``bus`` extra (coredis, a maintained asyncio/Trio Redis client built on anyio).
What Redis holds (``P`` is ``[bus] prefix``; nothing needs persistence, everything is rebuilt
within a heartbeat after a Redis restart):

- channel ``P:edge:<edge id>``: batches of ticks (``pack``: each tick's frame JSON with its
  instrument and sequence number) holding what that edge's clients want, one message per
  feeder lap. One message
  per tick would cost each edge ~100 µs of CPU per tick in coredis (a few task switches per
  message); a batch costs that once per lap;
- hash ``P:last``: instrument -> latest tick JSON (a new subscriber on an edge gets it);
- set ``P:demand:<edge id>``: the instruments an edge's clients want, rewritten by the edge
  every heartbeat, expiring ``expiry_s`` after the edge's last one (a dead edge's demand
  goes away by itself); channel ``P:demand`` tells feeders that some demand changed;
- string ``P:feeder``: the feeder's link state (JSON), expiring ``expiry_s`` after its last
  heartbeat (edges tell their clients when no feeder is up).

The feeder subscribes upstream the union of every edge's demand (through its hub, with the
usual grace period before releasing), and keeps it while Redis is unreachable. An edge keeps
its clients' subscriptions while the bus is lost and tells them (``SessionState``
disconnected); coredis's pub/sub connection re-subscribes its channel by itself when Redis is
back, and the next heartbeat rewrites the demand.

Queues: the feeder's publisher holds the latest frame per instrument (conflated, counted),
written by one pipeline per lap. coredis reads pub/sub messages into an unbounded buffer of
its own; the edge takes everything waiting there at each lap and keeps only the latest tick
per instrument, so a backlog costs one cheap pass, and the buffer only grows while the edge's
event loop gets no turn at all.

Accounting: every tick the feeder's upstream received has a sequence number per instrument
(ticks replaced in the feeder, in its bridge or its publisher, still take one). An edge that
gets number ``n`` after ``m`` counts the ``n - m - 1`` ticks it never got, once per subscriber
of the instrument, as conflated (``ticks_conflated``): whatever the reason (replaced in the
feeder, replaced in the edge's own backlog, lost while the bus was down), each tick a client
of an edge was due is either delivered or counted. A number that goes back (a feeder restart)
starts counting afresh.
"""

from __future__ import annotations

import logging
import struct
import sys
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
import coredis
import orjson
import trio
from coredis.exceptions import RedisError

from ._bars import exchange_now
from ._context import ServiceContext
from ._fanout import Conflation, Hub, Subscriber, TickFrame, tick_frame
from .protocol.errors import Code

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

log = logging.getLogger("webctp.bus")

BUS_ERRORS = (RedisError, OSError, trio.TooSlowError)

BUSY_LAG_S = 0.05
"""A turn of this process's event loop taking this long means a slow Redis answer is this
process's slowness (a crowd of clients connecting), not Redis's."""


async def _loop_lag() -> float:
    """How long one turn of the event loop takes now."""
    start = trio.current_time()
    await trio.lowlevel.cancel_shielded_checkpoint()
    return trio.current_time() - start


def _client(ctx: ServiceContext) -> coredis.Redis[bytes]:
    bus = ctx.cfg.bus
    return coredis.Redis.from_url(
        bus.url,
        stream_timeout=bus.timeout_s,
        connect_timeout=bus.timeout_s,
        decode_responses=False,
    )


@asynccontextmanager
async def _pubsub(client: coredis.Redis[bytes], channels: list[str]) -> AsyncIterator[Any]:
    """coredis's pub/sub, minus one failure of its own: cancelled while its connection is
    already closed, its clean-up raises ClosedResourceError (seen with 6.9)."""
    try:
        async with client.pubsub(ignore_subscribe_messages=True, channels=channels) as pubsub:
            yield pubsub
    except anyio.ClosedResourceError:
        pass
    except BaseExceptionGroup as group:
        rest = group.subgroup(
            lambda e: not isinstance(e, (BaseExceptionGroup, anyio.ClosedResourceError))
        )
        if rest is not None:
            raise rest from None


class _Demand(Subscriber):
    """The feeder's references in its hub on behalf of all edges (takes no frames)."""

    def offer(self, instrument: str, frame: TickFrame) -> None:
        return None


class Publisher:
    """The feeder's tick tap: the latest frame per instrument (with its sequence number),
    published once per lap."""

    def __init__(self) -> None:
        self.pending: dict[str, tuple[TickFrame, int]] = {}
        self.seq: dict[str, int] = {}
        self.ready = trio.Event()
        self.ticks_conflated = 0
        """Ticks replaced here before publication (once each: the edges count them per
        subscriber from the sequence numbers)."""

    def offer(self, instrument: str, frame: TickFrame, skipped: int = 0) -> None:
        """The next tick of ``instrument``, after ``skipped`` ones replaced upstream."""
        seq = self.seq.get(instrument, 0) + 1 + skipped
        self.seq[instrument] = seq
        if instrument in self.pending:
            self.ticks_conflated += 1
        self.pending[instrument] = (frame, seq)
        self.ready.set()


async def run_feeder(
    ctx: ServiceContext, hub: Hub, *, task_status: trio.TaskStatus[Publisher]
) -> None:
    bus = ctx.cfg.bus
    prefix = bus.prefix
    publisher = Publisher()
    ctx.metrics.watch_sink(publisher)
    demand = _Demand()
    routes: dict[str, set[str]] = {}
    """Edge id -> the instruments it wants (what its batches hold)."""
    seen: dict[str, float] = {}
    """Instrument -> when some edge's demand last held it: released only when no edge has
    wanted it for ``expiry_s`` (a Redis restart empties the demand until edges rewrite it)."""
    state = {"up": True}

    def report(up: bool, exc: BaseException | None = None) -> None:
        if up != state["up"]:
            state["up"] = up
            if up:
                log.info("event=bus_up role=feeder")
            else:
                log.warning("event=bus_down role=feeder cause=%r", repr(exc))

    async def publish(client: coredis.Redis[bytes]) -> None:
        while True:
            await publisher.ready.wait()
            publisher.ready = trio.Event()
            frames, publisher.pending = publisher.pending, {}
            packed = {i: pack(i, f.text, seq) for i, (f, seq) in frames.items()}
            try:
                with trio.fail_after(bus.timeout_s):
                    async with client.pipeline(transaction=False) as pipe:
                        for edge, wanted in routes.items():
                            batch = [data for i, data in packed.items() if i in wanted]
                            if batch:
                                pipe.publish(f"{prefix}:edge:{edge}", b"".join(batch))
                        pipe.hset(f"{prefix}:last", {i: f.text for i, (f, _) in frames.items()})
            except BUS_ERRORS as exc:
                report(False, exc)  # these ticks are lost for the edges (they are stale)
                await trio.sleep(bus.heartbeat_s)
            else:
                report(True)

    async def heartbeat(client: coredis.Redis[bytes]) -> None:
        while True:
            row = getattr(hub.source, "login_row", None) or {}
            value = orjson.dumps({"up": hub.link_up, "detail": hub.link_detail, "login": row})
            try:
                with trio.fail_after(bus.timeout_s):
                    await client.set(f"{prefix}:feeder", value, px=int(bus.expiry_s * 1000))
                    await read_demand(client)
            except BUS_ERRORS as exc:
                report(False, exc)  # demand is kept as it was: an outage releases nothing
            else:
                report(True)
            with trio.move_on_after(bus.heartbeat_s):
                await hub.link_changed.wait()  # a link change goes out at once

    async def read_demand(client: coredis.Redis[bytes]) -> None:
        keys = [k async for k in client.scan_iter(match=f"{prefix}:demand:*", count=1000)]
        found: dict[str, set[str]] = {}
        for key in keys:
            edge = (key.decode() if isinstance(key, bytes) else str(key)).rsplit(":", 1)[1]
            found[edge] = {m.decode() for m in await client.smembers(key)}
        routes.clear()
        routes.update(found)
        wanted: set[str] = set().union(*found.values()) if found else set()
        now = trio.current_time()
        for instrument in wanted:
            seen[instrument] = now
        have = set(demand.instruments)
        gone = {i for i in have - wanted if now - seen.get(i, now) >= bus.expiry_s}
        for instrument in gone:
            seen.pop(instrument, None)
        new = wanted - have
        if gone:
            hub.unsubscribe(demand, sorted(gone))
        if new:
            hub.subscribe(demand, sorted(new), lambda _i, _info: None)
            log.info("event=bus_demand instruments=%d new=%d", len(wanted), len(new))

    async def listen_demand(client: coredis.Redis[bytes]) -> None:
        async with _pubsub(client, [f"{prefix}:demand"]) as pubsub:
            while True:
                message = await pubsub.get_message()
                if message is None or message["type"] != "message":
                    continue
                try:
                    with trio.fail_after(bus.timeout_s):
                        await read_demand(client)
                except BUS_ERRORS as exc:
                    report(False, exc)

    client = _client(ctx)
    async with client, trio.open_nursery() as nursery:
        nursery.start_soon(publish, client)
        nursery.start_soon(heartbeat, client)
        nursery.start_soon(listen_demand, client)
        log.info("event=bus_started role=feeder url=%s", _safe_url(bus.url))
        task_status.started(publisher)


class EdgeSource:
    """An edge's ``Source``: demand into Redis, ticks out of its pub/sub."""

    def __init__(self, ctx: ServiceContext, hub: Hub) -> None:
        self.ctx = ctx
        self.hub = hub
        self.id = uuid.uuid4().hex[:12]
        self.prefix = ctx.cfg.bus.prefix
        self.demand: dict[str, None] = {}
        self.to_confirm: dict[str, None] = {}
        self.changed = trio.Event()
        self.login_row: dict[str, Any] = {}
        self.bus_ok = False
        self.last_ok = float("-inf")
        self.conflation = Conflation()
        """Ticks this edge never got (sequence gaps, see the module docstring), once per
        subscriber."""
        self.seq: dict[str, int] = {}
        """Instrument -> the sequence number of the last tick handed to the hub."""
        self.feeder: dict[str, Any] | None = None
        self.pubsub: Any = None
        """coredis's pub/sub (once Redis was reachable): re-subscribes after a reconnect."""
        hub.source = self

    def want(self, instruments: list[str]) -> None:
        for instrument in instruments:
            self.demand[instrument] = None
            self.to_confirm[instrument] = None
        self.changed.set()

    def drop(self, instruments: list[str]) -> None:
        for instrument in instruments:
            self.demand.pop(instrument, None)
            self.to_confirm.pop(instrument, None)
            self.seq.pop(instrument, None)
        self.changed.set()

    def on_batches(self, batches: list[bytes]) -> None:
        """The feeder's batches that arrived since the last lap (see ``pack``); never waits.

        When the edge falls behind the feed, several batches are waiting: only the latest
        tick of each instrument goes to the hub. The work per lap is then bounded by the
        number of instruments, whatever the backlog. Every tick skipped on the way (here or
        in the feeder: a gap in the sequence numbers) is counted as conflated once per
        subscriber (the deliveries that will not happen)."""
        demand = self.demand
        hub = self.hub
        seqs = self.seq
        latest: dict[str, tuple[bytes, int]] = {}
        for data in batches:
            for instrument, seq, text in unpack(data):
                if instrument in demand:
                    if instrument not in seqs:
                        seqs[instrument] = seq - 1  # the first one seen: no gap before it
                    latest[instrument] = (text, seq)
        missed = 0
        bars = self.ctx.bars
        now = exchange_now(time.time())
        for instrument, (text, seq) in latest.items():
            last = seqs.get(instrument)
            seqs[instrument] = seq
            if last is not None and seq > last + 1:
                missed += (seq - last - 1) * len(hub.subscribers.get(instrument, ()))
            hub.publish(instrument, tick_frame(text))
            # chart history (GetBars, webctp/_bars.py) from the ticks this edge serves: one
            # decode per tick and edge, whatever the number of clients
            try:
                tick = orjson.loads(text).get("DepthMarketData")
            except (orjson.JSONDecodeError, AttributeError):
                continue
            if isinstance(tick, dict):
                bars.add_tick(tick, now)
        self.conflation.ticks_conflated += missed

    def update_link(self) -> None:
        hub = self.hub
        if not self.bus_ok:
            up, detail = False, "the market-data bus (Redis) is unreachable"
        elif self.feeder is None:
            up, detail = False, "no market-data feeder is publishing"
        else:
            up = bool(self.feeder.get("up"))
            detail = str(self.feeder.get("detail", ""))
            self.login_row = dict(self.feeder.get("login") or {})
        if up != hub.link_up:
            log.info("event=edge_link up=%s detail=%r", up, detail)
            if not up:
                hub.fail_waiting((Code.LINK_DOWN, detail))
            hub.set_link(up, detail)

    async def sync(self, client: coredis.Redis[bytes]) -> None:
        """One round trip: read the feeder's state, rewrite this edge's demand, and for
        instruments new here, fetch their latest ticks, tell the feeder, confirm them."""
        if self.pubsub is None:
            raise trio.TooSlowError  # not subscribed to our channel yet: the bus counts as down
        prefix = self.prefix
        key = f"{prefix}:demand:{self.id}"
        demand = list(self.demand)
        new = [i for i in self.to_confirm if i in self.demand]
        async with client.pipeline(transaction=True) as pipe:
            feeder = pipe.get(f"{prefix}:feeder")
            pipe.delete([key])
            if demand:
                pipe.sadd(key, demand)
                pipe.pexpire(key, int(self.ctx.cfg.bus.expiry_s * 1000))
            latest = pipe.hmget(f"{prefix}:last", new) if new else None
            if new:
                pipe.publish(f"{prefix}:demand", self.id)
        raw = await feeder
        self.feeder = orjson.loads(raw) if raw else None
        if latest is not None:
            for instrument, text in zip(new, await latest):
                if text is not None and instrument not in self.hub.latest:
                    self.hub.publish(instrument, tick_frame(text))
            for instrument in new:
                self.to_confirm.pop(instrument, None)
                self.hub.confirm(instrument, None)

    async def heartbeat(self, client: coredis.Redis[bytes]) -> None:
        bus = self.ctx.cfg.bus
        while True:
            self.changed = trio.Event()
            try:
                with trio.fail_after(bus.timeout_s):
                    await self.sync(client)
            except BUS_ERRORS as exc:
                # A refused or broken connection is a lost bus at once. A slow answer is not,
                # until nothing succeeded for ``expiry_s``, and never while this process's own
                # event loop is the slow one (a crowd of clients connecting): those clients
                # must not be told the bus is gone.
                slow = isinstance(exc, trio.TooSlowError)
                busy = await _loop_lag() >= BUSY_LAG_S
                stale = trio.current_time() - self.last_ok >= bus.expiry_s
                if not slow or (stale and not busy):
                    if self.bus_ok:
                        log.warning("event=bus_down role=edge cause=%r", repr(exc))
                    self.bus_ok = False
            else:
                if not self.bus_ok:
                    log.info("event=bus_up role=edge")
                self.bus_ok = True
                self.last_ok = trio.current_time()
            self.update_link()
            with trio.move_on_after(bus.heartbeat_s):
                await self.changed.wait()


async def run_edge(ctx: ServiceContext, hub: Hub, *, task_status: trio.TaskStatus[None]) -> None:
    source = EdgeSource(ctx, hub)
    ctx.metrics.watch_sink(source.conflation)
    hub.set_link(False, "connecting to the market-data bus")
    client = _client(ctx)
    log.info("event=bus_started role=edge id=%s url=%s", source.id, _safe_url(ctx.cfg.bus.url))
    task_status.started()
    async with client, trio.open_nursery() as nursery:
        nursery.start_soon(source.heartbeat, client)
        # entering waits (retrying) until Redis is reachable; it then reconnects by itself
        async with _pubsub(client, [f"{source.prefix}:edge:{source.id}"]) as pubsub:
            source.pubsub = pubsub
            source.changed.set()
            # Read here rather than with coredis's per-channel handlers: coredis re-subscribes
            # after a reconnect without the handlers (seen with 6.9).
            while True:
                message = await pubsub.get_message()
                batches = [message["data"]] if _is_batch(message) else []
                batches += [m["data"] for m in _waiting(pubsub) if _is_batch(m)]
                if batches:
                    source.on_batches(batches)


def _is_batch(message: Any) -> bool:
    return message is not None and message["type"] == "message"


def _waiting(pubsub: Any) -> list[Any]:
    """The messages coredis already read from Redis, without waiting (each ``get_message``
    would wait for a turn of the event loop). Uses coredis's buffer when it is there (6.9);
    else nothing, and the backlog is read one message per lap."""
    stream = getattr(pubsub, "_receive_stream", None)
    taken: list[Any] = []
    while stream is not None:
        try:
            taken.append(stream.receive_nowait())
        except (anyio.WouldBlock, anyio.EndOfStream, anyio.ClosedResourceError):
            break
    return taken


_HEAD = struct.Struct(">HIQ")


def pack(instrument: str, text: bytes, seq: int) -> bytes:
    """One tick in a batch: instrument length, text length, sequence number, instrument,
    text."""
    name = instrument.encode("utf-8")
    return _HEAD.pack(len(name), len(text), seq) + name + text


def unpack(data: bytes) -> Iterator[tuple[str, int, bytes]]:
    """The ticks of a batch: (instrument, sequence number, text); a truncated tail is
    ignored."""
    pos, end, size = 0, len(data), _HEAD.size
    while pos + size <= end:
        n_name, n_text, seq = _HEAD.unpack_from(data, pos)
        pos += size
        name = data[pos : pos + n_name].decode("utf-8", "replace")
        pos += n_name
        text = data[pos : pos + n_text]
        pos += n_text
        if len(text) == n_text:
            yield name, seq, text


def _safe_url(url: str) -> str:
    """The URL without its password (for the log)."""
    if "@" not in url:
        return url
    scheme, rest = url.split("://", 1)
    return f"{scheme}://***@{rest.split('@', 1)[1]}"
