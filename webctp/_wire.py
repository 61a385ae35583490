"""WebSocket frames onto one client's socket: the last step of the data path.

Every write of the service goes through here (``_connection.Writer`` adds the deadline):

- text frames are built by ``text_frame`` when the connection's frames are plain (see
  ``plain_server_frames``), else by the connection's own wsproto object;
- several frames go out in one socket write (``BATCH_FRAMES`` at most per write);
- ``write_now`` writes ready-made frames synchronously when the socket takes them whole.

Why batches and a synchronous write: every socket write, lock and checkpoint of the event loop
releases the GIL or goes round the scheduler, and while CTP's callback thread wants the GIL
each release can cost a hand-off, so the number of those per tick is what caps a Python tick
path. trio-websocket's ``send_message`` frames through wsproto, takes the stream lock and
goes round the scheduler twice per frame.

The frames are written under the connection's stream lock as ``send_message`` does
(trio-websocket internals, checked at run time: without them every frame goes through
``send_message``).
"""

from __future__ import annotations

import os

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection
from wsproto.connection import ConnectionState
from wsproto.events import TextMessage
from wsproto.utilities import LocalProtocolError

BATCH_FRAMES = 256
"""At most this many frames per socket write."""


def frame_header(n: int) -> bytes:
    """The header of an unmasked, final text frame of ``n`` bytes (RFC 6455 §5.2)."""
    if n < 126:
        return bytes((0x81, n))
    if n < 65536:
        return b"\x81\x7e" + n.to_bytes(2, "big")
    return b"\x81\x7f" + n.to_bytes(8, "big")


def text_frame(text: str) -> bytes:
    """One unmasked, final text frame."""
    data = text.encode("utf-8")
    return frame_header(len(data)) + data


def has_internals(ws: WebSocketConnection) -> bool:
    return all(
        hasattr(ws, name) for name in ("_wsproto", "_stream", "_stream_lock", "_close_reason")
    ) and hasattr(ws, "_abort_web_socket")


def plain_server_frames(proto: object) -> bool:
    """Whether frames for this wsproto connection can be built by ``text_frame``: an open
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


def tcp_socket(ws: WebSocketConnection) -> trio.socket.SocketType | None:
    """The connection's socket for ``write_now``: None unless it is a plain TCP stream (no
    TLS) and the trio-websocket internals the writes rely on are there (checked once)."""
    stream = getattr(ws, "_stream", None)
    if type(stream) is not trio.SocketStream or not has_internals(ws):
        return None
    return stream.socket


def plain(ws: WebSocketConnection) -> bool:
    """Whether frames of a connection ``tcp_socket`` accepted can be written as ready-made
    bytes now (it is open, and its frames are plain)."""
    return ws._close_reason is None and plain_server_frames(ws._wsproto)


def write_now(ws: WebSocketConnection, sock: trio.socket.SocketType, data: bytes) -> int:
    """Write ready-made frames without waiting: the number of bytes the socket took (0 when
    its buffer is full), or -1 when this write must go the usual way (another task holds
    the stream lock, the socket is closed or failed: the usual way reports it). Only from a
    task, and the caller writes any rest before anything else runs (``Writer``).

    The descriptor is read from the socket at each write, never kept: once the socket is
    closed it reads -1, where a number kept from before could by then name another
    client's socket."""
    fd = sock.fileno()
    if fd < 0 or ws._stream_lock.locked():
        return -1
    try:
        return os.write(fd, data)
    except BlockingIOError:
        return 0
    except OSError:
        return -1


async def write_rest(ws: WebSocketConnection, rest: memoryview) -> bool:
    """The rest of a ``write_now``, under the stream lock the caller already holds (taken
    before anything else could write); False (the connection aborted) when the socket is
    gone."""
    try:
        return await _send_all(ws, rest)
    finally:
        ws._stream_lock.release()


async def send_batch(ws: WebSocketConnection, texts: list[str]) -> bool:
    """Write text frames with one socket write per ``BATCH_FRAMES``; False once closed."""
    try:
        if len(texts) == 1 or not has_internals(ws):
            for text in texts:
                await ws.send_message(text)
            return True
        for start in range(0, len(texts), BATCH_FRAMES):
            if ws._close_reason is not None:
                return False
            proto = ws._wsproto
            chunk = texts[start : start + BATCH_FRAMES]
            if plain_server_frames(proto):
                data = b"".join([text_frame(t) for t in chunk])
            else:
                data = b"".join([proto.send(TextMessage(data=t)) for t in chunk])
            if not await write_locked(ws, data):
                return False
    except (ConnectionClosed, LocalProtocolError):
        return False
    return True


async def send_wire_batch(ws: WebSocketConnection, wires: list[bytes], texts: list[bytes]) -> bool:
    """Like ``send_batch`` for frames encoded once for every client (``_fanout``): their
    bytes are written as they are when this connection's frames are plain, else each text
    goes through wsproto."""
    if not has_internals(ws) or not plain_server_frames(ws._wsproto):
        return await send_batch(ws, [t.decode("utf-8") for t in texts])
    try:
        for start in range(0, len(wires), BATCH_FRAMES):
            if ws._close_reason is not None:
                return False
            data = b"".join(wires[start : start + BATCH_FRAMES])
            if not await write_locked(ws, data):
                return False
    except (ConnectionClosed, LocalProtocolError):
        return False
    return True


async def write_locked(ws: WebSocketConnection, data: bytes) -> bool:
    """Write ready-made frames under the connection's stream lock, as trio-websocket's own
    sends do; False (and the connection aborted) when the socket is gone."""
    async with ws._stream_lock:
        return await _send_all(ws, data)


async def _send_all(ws: WebSocketConnection, data: bytes | memoryview) -> bool:
    """The write itself, with the stream lock held; False (and the connection aborted)
    when the socket is gone."""
    try:
        await ws._stream.send_all(data)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        await ws._abort_web_socket()
        return False
    return True
