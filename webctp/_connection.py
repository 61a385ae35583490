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
from wsproto.connection import ConnectionState
from wsproto.events import TextMessage
from wsproto.utilities import LocalProtocolError

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

    async def send_one(self, text: str) -> bool:
        """False once the connection is closed or aborted."""
        return await self._write(partial(send_batch, self.ws, [text]))

    async def send_many(self, texts: list[str]) -> bool:
        return await self._write(partial(send_batch, self.ws, texts))

    async def send_wire(self, wires: list[bytes], texts: list[bytes]) -> bool:
        """Ready-made frames (``_fanout.TickFrame``: ``wires`` the frame bytes, ``texts``
        their JSON) in one socket write, with the deadline."""
        return await self._write(partial(send_wire_batch, self.ws, wires, texts))


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
        while len(batch) < BATCH_FRAMES:
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


BATCH_FRAMES = 256
"""At most this many frames per socket write."""


async def send_batch(ws: WebSocketConnection, texts: list[str]) -> bool:
    """Write text frames with one socket write per ``BATCH_FRAMES``; False once closed.

    Why: every socket write releases the GIL, and while CTP's callback thread wants it each
    release can cost a GIL hand-off, so a write per tick is what caps a Python tick path. The
    frames are framed by the connection's own wsproto object and written under its stream lock,
    exactly as ``send_message`` does one at a time (trio-websocket internals, checked at run
    time; without them it falls back to ``send_message``).
    """
    try:
        if len(texts) == 1 or not _has_internals(ws):
            for text in texts:
                await ws.send_message(text)
            return True
        for start in range(0, len(texts), BATCH_FRAMES):
            if ws._close_reason is not None:
                return False
            proto = ws._wsproto
            chunk = texts[start : start + BATCH_FRAMES]
            if _plain_server_frames(proto):
                data = b"".join([_text_frame(t) for t in chunk])
            else:
                data = b"".join([proto.send(TextMessage(data=t)) for t in chunk])
            if not await _write_raw(ws, data):
                return False
    except (ConnectionClosed, LocalProtocolError):
        return False
    return True


async def send_wire_batch(ws: WebSocketConnection, wires: list[bytes], texts: list[bytes]) -> bool:
    """Like ``send_batch`` for frames encoded once for every client (``_fanout``): their
    bytes are written as they are when this connection's frames are plain (see
    ``_plain_server_frames``), else each text goes through wsproto."""
    if not _has_internals(ws) or not _plain_server_frames(ws._wsproto):
        return await send_batch(ws, [t.decode("utf-8") for t in texts])
    try:
        for start in range(0, len(wires), BATCH_FRAMES):
            if ws._close_reason is not None:
                return False
            data = b"".join(wires[start : start + BATCH_FRAMES])
            if not await _write_raw(ws, data):
                return False
    except (ConnectionClosed, LocalProtocolError):
        return False
    return True


async def _write_raw(ws: WebSocketConnection, data: bytes) -> bool:
    """Write ready-made frames under the connection's stream lock, as trio-websocket's own
    sends do; False (and the connection aborted) when the socket is gone."""
    async with ws._stream_lock:
        try:
            await ws._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            await ws._abort_web_socket()
            return False
    return True


def _plain_server_frames(proto: object) -> bool:
    """Whether frames for this wsproto connection can be built by ``_text_frame``: an open
    server-side connection (no masking), no extension (no permessage-deflate) and no
    fragmented message in progress. wsproto would build the same bytes, ten times slower
    (~6 µs a tick frame here, the largest single cost on the tick path); anything else
    (another wsproto version, a negotiated extension) goes through wsproto."""
    conn = getattr(proto, "connection", None)
    frames = getattr(conn, "_proto", None)
    return (
        conn is not None
        and getattr(conn, "state", None) is ConnectionState.OPEN
        and getattr(conn, "client", True) is False
        and getattr(frames, "extensions", None) == []
        and hasattr(frames, "_outbound_opcode")
        and getattr(frames, "_outbound_opcode", 0) is None
    )


def _text_frame(text: str) -> bytes:
    """One unmasked, final text frame (RFC 6455 §5.2)."""
    data = text.encode("utf-8")
    n = len(data)
    if n < 126:
        return bytes((0x81, n)) + data
    if n < 65536:
        return b"\x81\x7e" + n.to_bytes(2, "big") + data
    return b"\x81\x7f" + n.to_bytes(8, "big") + data


def _has_internals(ws: WebSocketConnection) -> bool:
    return all(
        hasattr(ws, name) for name in ("_wsproto", "_stream", "_stream_lock", "_close_reason")
    ) and hasattr(ws, "_abort_web_socket")
