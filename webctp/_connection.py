"""One WebSocket client: a nursery holding the receive task, the send task and the session.

The listener (``_listener``) accepts the socket, contains every failure and closes it.

socket -> receive task -> session (-> limiter -> CTP) ; CTP -> bridge -> session -> ``out``
channel -> send task -> socket. When the socket closes (or the session fails), the nursery is
cancelled and the session releases its CTP API; nothing outlives the connection.
"""

from __future__ import annotations

import hmac
import logging
import urllib.parse
from collections.abc import Awaitable, Callable
from functools import partial

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest

from . import _wire
from ._context import ServiceContext
from ._listener import Conn
from ._md import MdSession
from ._mdshared import SharedMdSession
from ._session import Session
from ._td import TdSession

log = logging.getLogger("webctp.connection")


def route(path: str, mode: str) -> str | None:
    """Map a request path to 'td' or 'md' (None: not served)."""
    clean = urllib.parse.urlsplit(path).path.rstrip("/")
    if mode == "md-edge":
        mode = "md"
    if clean in ("/td", "/md"):
        kind = clean[1:]
        return kind if mode in (kind, "all") else None
    if clean == "" and mode in ("td", "md"):
        return mode
    return None


def _query(path: str) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)


async def handle_request(request: WebSocketRequest, conn: Conn, ctx: ServiceContext) -> None:
    kind = route(request.path, ctx.cfg.server.mode)
    ws: WebSocketConnection | None = None
    with trio.move_on_after(ctx.cfg.server.handshake_timeout_s):  # answering is bounded too
        ws = await _answer_upgrade(request, kind, ctx)
    if ws is not None and kind is not None:
        await serve_connection(ws, conn, kind, ctx)


async def _answer_upgrade(
    request: WebSocketRequest, kind: str | None, ctx: ServiceContext
) -> WebSocketConnection | None:
    """Refuse the upgrade (None) or accept it."""
    server = ctx.cfg.server
    if kind is None:
        await request.reject(404, body=b"unknown path: use /td/ or /md/\n")
        return None
    if server.token:
        given = (_query(request.path).get("token") or [""])[0]
        if not hmac.compare_digest(given.encode(), server.token.encode()):
            await request.reject(401, body=b"missing or wrong token\n")
            return None
    if server.allowed_origins:
        origin = next(
            (v.decode("latin-1") for k, v in request.headers if k.lower() == b"origin"), None
        )
        if origin is not None and origin not in server.allowed_origins:
            await request.reject(403, body=b"origin not allowed\n")
            return None
    active = sum(ctx.metrics.sessions_active.values())
    if active >= server.max_sessions:
        await request.reject(503, body=b"too many sessions\n")
        return None
    accepted: WebSocketConnection = await request.accept()
    return accepted


async def serve_connection(
    ws: WebSocketConnection, conn: Conn, kind: str, ctx: ServiceContext
) -> None:
    metrics = ctx.metrics
    metrics.sessions_active[kind] += 1
    metrics.sessions_total[kind] += 1
    writer = Writer(ws, conn, ctx.cfg.server.send_timeout_s)
    out = Outbox(writer, ctx)
    session: Session | SharedMdSession
    if kind == "td":
        session = TdSession(ctx, out)
    elif ctx.md_hub is not None:
        session = SharedMdSession(ctx, out, ctx.md_hub, writer.send_wire)
    else:
        session = MdSession(ctx, out, send_ticks=writer.send_many)
    metrics.watch_sink(session.sink)
    log.info("event=session_open session=%d kind=%s remote=%s", session.id, kind, conn.remote)
    ending: list[tuple[int, str]] = []
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_sender, out, ctx)
            await nursery.start(session.run)
            nursery.start_soon(_watch_overflow, session, ctx, ending, nursery.cancel_scope)
            await _receiver(ws, session, ctx)
            nursery.cancel_scope.cancel()
    except Exception:
        # A bug must not pass silently (trio-websocket would close with 1000 and say
        # nothing): log it with the traceback, tell the client, keep the service running.
        log.exception("event=session_failed session=%d kind=%s", session.id, kind)
        ctx.metrics.errors[-500] += 1
        ending.append((1011, "internal gateway error (see the service log)"))
    finally:
        metrics.sessions_active[kind] -= 1
        metrics.unwatch_sink(session.sink)
        if conn.aborted:
            metrics.aborted += 1
        log.info("event=session_closed session=%d kind=%s", session.id, kind)
    if ending and not conn.aborted:
        code, reason = ending[0]
        with trio.move_on_after(ctx.cfg.server.close_timeout_s, shield=True) as deadline:
            await ws.aclose(code=code, reason=reason)
        if deadline.cancelled_caught:
            metrics.aborted += 1
            conn.abort(f"no close handshake within {ctx.cfg.server.close_timeout_s:g} s")


async def _watch_overflow(
    session: Session | SharedMdSession,
    ctx: ServiceContext,
    ending: list[tuple[int, str]],
    scope: trio.CancelScope,
) -> None:
    """Order and trade events are never dropped silently: a client too slow to take them is
    closed with a reason instead (1011), and the session is released."""
    await session.sink.wait_overflow()
    ctx.metrics.overflows += 1
    log.error(
        "event=event_overflow session=%d kind=%s queued_bytes=%d limit_bytes=%d",
        session.id,
        session.kind,
        session.sink.queued_bytes,
        ctx.cfg.limits.event_queue_bytes,
    )
    ending.append((1011, "event queue overflow: client reads too slowly"))
    scope.cancel()


async def _receiver(
    ws: WebSocketConnection, session: Session | SharedMdSession, ctx: ServiceContext
) -> None:
    while True:
        try:
            message = await ws.get_message()
        except ConnectionClosed:
            return
        ctx.metrics.frames_in += 1
        await session.handle(message)


class Writer:
    """Every write to one client's socket, each with a deadline.

    A write runs shielded from the connection's own cancellation, so that a close (1011 after
    an overflow, 1001 at shutdown) never follows half a frame on the wire: a closing
    connection lets the write in progress finish first. A write that makes no progress within
    ``send_timeout_s`` (the client stopped reading and the socket buffers are full) aborts the
    connection: its tasks are cancelled, the session releases its CTP API, and the listener
    closes the socket without a close frame (the interrupted write may have left half a frame,
    and the client is not reading anyway).
    """

    def __init__(self, ws: WebSocketConnection, conn: Conn, send_timeout_s: float) -> None:
        self.ws = ws
        self.conn = conn
        self.timeout = send_timeout_s
        self.sock = _wire.tcp_socket(ws)
        """The socket for ``_wire.write_now`` (None: TLS, every write goes the usual way)."""

    async def _write(self, write: Callable[[], Awaitable[bool]]) -> bool:
        scope = trio.CancelScope(shield=True, deadline=trio.current_time() + self.timeout)
        self.conn.writes.add(scope)
        try:
            with scope:
                return await write()
        finally:
            self.conn.writes.discard(scope)
            if scope.cancelled_caught and not self.conn.aborted:
                self.conn.abort(
                    f"client stopped reading: a write made no progress in {self.timeout:g} s"
                )
        return False  # the deadline passed (or the connection was aborted)

    async def _write_now(self, sock: trio.socket.SocketType, data: bytes) -> bool | None:
        """Frames written at once when the socket takes them whole (then one checkpoint, and
        no deadline is needed); the rest of a partial write goes out under the stream lock,
        taken before anything else can write, with the deadline. None: not possible now
        (the caller goes the usual way)."""
        n = _wire.write_now(self.ws, sock, data)
        if n < 0:
            return None
        if n == len(data):
            await trio.lowlevel.cancel_shielded_checkpoint()
            return True
        self.ws._stream_lock.acquire_nowait()
        return await self._write(partial(_wire.write_rest, self.ws, memoryview(data)[n:]))

    async def send_one(self, text: str) -> bool:
        """False once the connection is closed or aborted."""
        return await self.send_many([text])

    def _now(self, frames: int) -> trio.socket.SocketType | None:
        """The socket when ``frames`` frames can be tried with ``_write_now``."""
        sock = self.sock
        if sock is not None and frames <= _wire.BATCH_FRAMES and _wire.plain(self.ws):
            return sock
        return None

    async def send_many(self, texts: list[str]) -> bool:
        if (sock := self._now(len(texts))) is not None:
            sent = await self._write_now(sock, b"".join([_wire.text_frame(t) for t in texts]))
            if sent is not None:
                return sent
        return await self._write(partial(_wire.send_batch, self.ws, texts))

    async def send_wire(self, wires: list[bytes], texts: list[bytes]) -> bool:
        """Ready-made frames (``_fanout.TickFrame``: ``wires`` the frame bytes, ``texts``
        their JSON) in one socket write, with the deadline."""
        if (sock := self._now(len(wires))) is not None:
            sent = await self._write_now(sock, b"".join(wires))
            if sent is not None:
                return sent
        return await self._write(partial(_wire.send_wire_batch, self.ws, wires, texts))


class Outbox:
    """Frames for one client, in order. A frame that finds nothing queued and nothing being
    sent goes to the socket at once from the producing task; otherwise it waits in the
    bounded channel drained by the send task (one task switch less on the usual path).

    Overflow policy: the channel holds ``server.send_queue`` frames; a producer that finds it
    full waits (back-pressure on the session's event dispatch, whose own queue is bounded in
    bytes, see ``_bridge.Sink``). Every write has the ``Writer``'s deadline."""

    def __init__(self, writer: Writer, ctx: ServiceContext) -> None:
        self.writer = writer
        self.metrics = ctx.metrics
        self._send, self.frames = trio.open_memory_channel[str](ctx.cfg.server.send_queue)
        self.queued = 0
        """Frames in the channel or taken by the send task and not yet written."""
        self.sending = 0

    async def send(self, text: str) -> None:
        if self.queued == 0 and self.sending == 0:
            self.sending += 1
            try:
                sent = await self.writer.send_one(text)
            finally:
                self.sending -= 1
            if sent:
                self.metrics.frames_out += 1
            return  # when not sent the receive task sees the close and ends the connection
        self.queued += 1
        try:
            await self._send.send(text)
        except BaseException:
            self.queued -= 1
            raise

    def send_nowait(self, text: str) -> None:
        self._send.send_nowait(text)
        self.queued += 1


async def _sender(out: Outbox, ctx: ServiceContext) -> None:
    """Drain the outbox; frames that queued up meanwhile go out in one write."""
    metrics = ctx.metrics
    async for text in out.frames:
        batch = [text]
        while len(batch) < _wire.BATCH_FRAMES:
            try:
                batch.append(out.frames.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                break
        out.sending += 1
        out.queued -= len(batch)
        try:
            sent = await out.writer.send_many(batch)
        finally:
            out.sending -= 1
        if not sent:
            return
        metrics.frames_out += len(batch)
