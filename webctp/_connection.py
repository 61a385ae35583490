"""One WebSocket client: a nursery holding the receive task, the send task and the session.

socket -> receive task -> session (-> limiter -> CTP) ; CTP -> bridge -> session -> ``out``
channel -> send task -> socket. When the socket closes (or the session fails), the nursery is
cancelled and the session releases its CTP API; nothing outlives the connection.
"""

from __future__ import annotations

import hmac
import logging
import urllib.parse

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest

from ._context import ServiceContext
from ._md import MdSession
from ._session import Session
from ._td import TdSession

log = logging.getLogger("webctp.connection")


def route(path: str, mode: str) -> str | None:
    """Map a request path to 'td' or 'md' (None: not served)."""
    clean = urllib.parse.urlsplit(path).path.rstrip("/")
    if clean in ("/td", "/md"):
        kind = clean[1:]
        return kind if mode in (kind, "all") else None
    if clean == "" and mode in ("td", "md"):
        return mode
    return None


def _query(path: str) -> dict[str, list[str]]:
    return urllib.parse.parse_qs(urllib.parse.urlsplit(path).query)


async def handle_request(request: WebSocketRequest, ctx: ServiceContext) -> None:
    server = ctx.cfg.server
    kind = route(request.path, server.mode)
    if kind is None:
        await request.reject(404, body=b"unknown path: use /td/ or /md/\n")
        return
    if server.token:
        given = (_query(request.path).get("token") or [""])[0]
        if not hmac.compare_digest(given.encode(), server.token.encode()):
            await request.reject(401, body=b"missing or wrong token\n")
            return
    if server.allowed_origins:
        origin = next(
            (v.decode("latin-1") for k, v in request.headers if k.lower() == b"origin"), None
        )
        if origin is not None and origin not in server.allowed_origins:
            await request.reject(403, body=b"origin not allowed\n")
            return
    active = sum(ctx.metrics.sessions_active.values())
    if active >= server.max_sessions:
        await request.reject(503, body=b"too many sessions\n")
        return
    ws = await request.accept()
    await serve_connection(ws, kind, ctx)


async def serve_connection(ws: WebSocketConnection, kind: str, ctx: ServiceContext) -> None:
    metrics = ctx.metrics
    metrics.sessions_active[kind] += 1
    metrics.sessions_total[kind] += 1
    out_send, out_recv = trio.open_memory_channel[str](ctx.cfg.server.send_queue)
    session: Session
    if kind == "td":
        session = TdSession(ctx, out_send)
    else:
        session = MdSession(ctx, out_send, send_tick=ws.send_message)
    log.info("event=session_open session=%d kind=%s remote=%s", session.id, kind, ws.remote)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_sender, ws, out_recv, ctx)
            await nursery.start(session.run)
            nursery.start_soon(_watch_overflow, ws, session, ctx)
            await _receiver(ws, session, ctx)
            nursery.cancel_scope.cancel()
    except Exception:
        # A bug must not pass silently (trio-websocket would close with 1000 and say
        # nothing): log it with the traceback, tell the client, keep the service running.
        log.exception("event=session_failed session=%d kind=%s", session.id, kind)
        ctx.metrics.errors[-500] += 1
        with trio.move_on_after(1, shield=True):
            await ws.aclose(code=1011, reason="internal gateway error (see the service log)")
    finally:
        metrics.sessions_active[kind] -= 1
        log.info("event=session_closed session=%d kind=%s", session.id, kind)


async def _watch_overflow(ws: WebSocketConnection, session: Session, ctx: ServiceContext) -> None:
    """Order and trade events are never dropped silently: a client too slow to take them is
    closed with a reason instead (1011), and the session is released."""
    await session.sink.overflowed.wait()
    ctx.metrics.overflows += 1
    log.error(
        "event=event_overflow session=%d kind=%s capacity=%d",
        session.id,
        session.kind,
        ctx.cfg.limits.event_queue,
    )
    await ws.aclose(code=1011, reason="event queue overflow: client reads too slowly")


async def _receiver(ws: WebSocketConnection, session: Session, ctx: ServiceContext) -> None:
    while True:
        try:
            message = await ws.get_message()
        except ConnectionClosed:
            return
        ctx.metrics.frames_in += 1
        await session.handle(message)


async def _sender(
    ws: WebSocketConnection, frames: trio.MemoryReceiveChannel[str], ctx: ServiceContext
) -> None:
    metrics = ctx.metrics
    async for text in frames:
        try:
            await ws.send_message(text)
        except ConnectionClosed:
            return
        metrics.frames_out += 1
