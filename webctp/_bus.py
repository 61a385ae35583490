"""The md bus over Redis: feeders publish encoded ticks, edges serve /md/ from them.

Needs the ``bus`` extra: coredis (a maintained asyncio/Trio Redis client built on anyio) for
demand, heartbeats and state, and hiredis for the two hot paths, the feeder's publishing and
the edge's reading of its channel, each on a connection of its own (``_resp``: a tick's trip
through coredis cost more than the rest of the bus, docs/benchmarks.md 8c).
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
disconnected); its reader subscribes its channel again when Redis is back, and the next
heartbeat rewrites the demand.

Queues: the feeder's publisher holds the latest frame per instrument (conflated, counted),
written as one batch of commands per lap without waiting for Redis's answers, at most
``IN_FLIGHT_LAPS`` laps unanswered (then it waits, and ticks conflate meanwhile). An edge
reads whatever its connection has at each lap and keeps only the latest tick per instrument,
so a backlog costs one cheap pass; the backlog itself waits in Redis's output buffer for that
connection, which Redis bounds (``client-output-buffer-limit pubsub``): past it Redis drops
the connection, the edge subscribes again and counts the ticks it missed (below).

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
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
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
from ._resp import RespConnection
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
        decode_components=True,  # user and password percent-decoded, as ``_busurl`` does
        stream_timeout=bus.timeout_s,
        connect_timeout=bus.timeout_s,
        decode_responses=False,
    )


def _fresh_connections(client: coredis.Redis[bytes], exc: BaseException) -> None:
    """After a command got no answer in time, the next ones go on new connections: coredis
    keeps using a connection whose answers stopped coming (a path to Redis that went silent
    without a reset), and every later command would time out on it too."""
    if isinstance(exc, (trio.TooSlowError, TimeoutError)):
        client.connection_pool.disconnect()


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


IN_FLIGHT_LAPS = 32
"""Laps the feeder has written to Redis without their answers yet. Past it the publisher waits
(the ticks meanwhile conflate in ``Publisher.pending``, counted, as while Redis is down);
an answer overdue by ``timeout_s`` drops the connection."""


class InFlight:
    """The feeder's unanswered commands, bounded in laps (``IN_FLIGHT_LAPS``)."""

    def __init__(self) -> None:
        self.laps: deque[int] = deque()
        """Unanswered commands of each lap, oldest first (none is ever 0)."""
        self._sent = trio.Event()
        self._answered = trio.Event()

    def sent(self, commands: int) -> None:
        self.laps.append(commands)
        self._sent.set()

    def answered(self, n: int) -> None:
        laps = self.laps
        while laps and n >= laps[0]:
            n -= laps.popleft()
        if laps:
            laps[0] -= n
        self._answered.set()

    async def room(self) -> None:
        """Until fewer than ``IN_FLIGHT_LAPS`` laps wait for answers (the publisher)."""
        while len(self.laps) >= IN_FLIGHT_LAPS:
            self._answered = trio.Event()
            await self._answered.wait()

    async def awaiting(self) -> None:
        """Until some command waits for its answer (the reader of the answers)."""
        while not self.laps:
            self._sent = trio.Event()
            await self._sent.wait()


def publish_commands(
    prefix: str, routes: dict[str, set[str]], frames: dict[str, tuple[TickFrame, int]]
) -> list[tuple[bytes | str, ...]]:
    """One lap of the feeder: a ``PUBLISH`` per edge of the ticks it wants (one batch), and
    the latest ticks into ``P:last``."""
    packed = {i: pack(i, f.text, seq) for i, (f, seq) in frames.items()}
    commands: list[tuple[bytes | str, ...]] = []
    for edge, wanted in routes.items():
        batch = [data for i, data in packed.items() if i in wanted]
        if batch:
            commands.append(("PUBLISH", f"{prefix}:edge:{edge}", b"".join(batch)))
    latest = [x for i, (f, _) in frames.items() for x in (i, f.text)]
    commands.append(("HSET", f"{prefix}:last", *latest))
    return commands


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

    async def publish() -> None:
        """Ticks out on a connection of their own (``_resp``): each lap's commands are written
        at once, their answers read by ``confirm`` meanwhile (see ``IN_FLIGHT_LAPS``)."""
        while True:
            try:
                with trio.fail_after(bus.timeout_s):
                    conn = await RespConnection.open(bus.url)
                async with conn:
                    await publish_on(conn)
            except BUS_ERRORS as exc:
                report(False, exc)  # the ticks not published are lost for the edges (stale)
                await trio.sleep(bus.heartbeat_s)

    async def publish_on(conn: RespConnection) -> None:
        failed: list[BaseException] = []
        window = InFlight()

        async def write() -> None:
            while True:
                await publisher.ready.wait()
                await window.room()
                publisher.ready = trio.Event()
                frames, publisher.pending = publisher.pending, {}
                if not frames:
                    continue
                commands = publish_commands(prefix, routes, frames)
                window.sent(len(commands))
                with trio.fail_after(bus.timeout_s):
                    await conn.send(commands)

        async def confirm() -> None:
            """Read the answers: one overdue by ``timeout_s`` is a lost bus."""
            while True:
                await window.awaiting()
                with trio.fail_after(bus.timeout_s):
                    replies = await conn.read()
                window.answered(len(replies))
                report(True)

        async def guarded(task: Callable[[], Awaitable[None]]) -> None:
            try:
                await task()
            except BUS_ERRORS as exc:  # the first failure ends both (no exception group)
                failed.append(exc)
                nursery.cancel_scope.cancel()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(guarded, write)
            nursery.start_soon(guarded, confirm)
        raise failed[0]

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
                _fresh_connections(client, exc)
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
        nursery.start_soon(publish)
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
        self.subscribed = False
        """Whether ``read_feed`` is subscribed to this edge's channel now."""
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
        if not self.subscribed:
            raise trio.TooSlowError  # not subscribed to our channel now: the bus counts as down
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
                _fresh_connections(client, exc)
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

    async def read_feed(self) -> None:
        """The feeder's batches for this edge, on a connection of their own (``_resp``),
        subscribed again after any failure. A connection silent for a heartbeat is asked
        (``PING``) and must answer within ``timeout_s``: a half-open connection is found."""
        bus = self.ctx.cfg.bus
        channel = f"{self.prefix}:edge:{self.id}"
        while True:
            try:
                with trio.fail_after(bus.timeout_s):
                    conn = await RespConnection.open(bus.url)
                async with conn:
                    with trio.fail_after(bus.timeout_s):
                        await conn.send([("SUBSCRIBE", channel)])
                        replies = await conn.read()
                    self.subscribed = True
                    self.changed.set()  # the heartbeat fetches what was missed meanwhile
                    while True:
                        self._on_replies(replies)
                        with trio.move_on_after(bus.heartbeat_s):
                            replies = await conn.read()
                            continue
                        with trio.fail_after(bus.timeout_s):
                            await conn.send([("PING",)])
                            replies = await conn.read()
            except BUS_ERRORS as exc:
                if self.subscribed:
                    log.warning("event=bus_feed_lost role=edge cause=%r", repr(exc))
                self.subscribed = False
                self.changed.set()
                await trio.sleep(bus.heartbeat_s)

    def _on_replies(self, replies: list[Any]) -> None:
        batches = [
            r[2] for r in replies if isinstance(r, list) and len(r) == 3 and r[0] == b"message"
        ]
        if batches:
            self.on_batches(batches)


async def run_edge(ctx: ServiceContext, hub: Hub, *, task_status: trio.TaskStatus[None]) -> None:
    source = EdgeSource(ctx, hub)
    ctx.metrics.watch_sink(source.conflation)
    hub.set_link(False, "connecting to the market-data bus")
    client = _client(ctx)
    log.info("event=bus_started role=edge id=%s url=%s", source.id, _safe_url(ctx.cfg.bus.url))
    task_status.started()
    async with client, trio.open_nursery() as nursery:
        nursery.start_soon(source.heartbeat, client)
        nursery.start_soon(source.read_feed)


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
