"""A minimal WebSocket client on Trio streams, for load generation.

Why not trio-websocket or ``websockets`` on the client side: the benchmark measures the server,
and a full client library costs about as much CPU per frame as the server does (wsproto parses
every frame in Python), so on a 2-core machine the client would share the limit. This client
reads whole socket buffers and only walks frame headers; it sends masked text frames with a
zero mask (valid: RFC 6455 requires a masking key, not a random one). Server frames are
expected unfragmented (trio-websocket sends each message as one frame).

Shared with the child processes: ``emit`` (one JSON event per line on stdout) and
``commands`` (JSON commands read from stdin).
"""

from __future__ import annotations

import base64
import json
import os
import sys
import threading
from collections.abc import AsyncIterator
from typing import Any

import trio

OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 1, 2, 8, 9, 10


class Closed(Exception):
    pass


class RawWebSocket:
    def __init__(self, stream: trio.SocketStream, rest: bytes) -> None:
        self.stream = stream
        self.buf = bytearray(rest)
        self.pos = 0

    @classmethod
    async def connect(cls, host: str, port: int, path: str) -> RawWebSocket:
        stream = await trio.open_tcp_stream(host, port)
        key = base64.b64encode(os.urandom(16)).decode()
        request = (
            f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
            f"Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
        )
        await stream.send_all(request.encode())
        head = bytearray()
        while b"\r\n\r\n" not in head:
            data = await stream.receive_some(65536)
            if not data:
                raise Closed(f"{path}: closed during the handshake")
            head += data
        status, _, rest = bytes(head).partition(b"\r\n\r\n")
        if not status.startswith(b"HTTP/1.1 101"):
            await stream.aclose()
            raise Closed(f"{path}: handshake refused: {status[:80]!r}")
        return cls(stream, rest)

    async def send(self, message: str | bytes | dict[str, Any]) -> None:
        if isinstance(message, dict):
            message = json.dumps(message, separators=(",", ":"))
        payload = message.encode() if isinstance(message, str) else message
        n = len(payload)
        if n < 126:
            header = bytes((0x81, 0x80 | n))
        elif n < 65536:
            header = bytes((0x81, 0x80 | 126)) + n.to_bytes(2, "big")
        else:
            header = bytes((0x81, 0x80 | 127)) + n.to_bytes(8, "big")
        await self.stream.send_all(header + b"\0\0\0\0" + payload)

    def _parse(self) -> list[bytes]:
        """Complete frames in the buffer (payloads of text/binary frames)."""
        buf = self.buf
        pos = self.pos
        end = len(buf)
        out: list[bytes] = []
        while end - pos >= 2:
            b0 = buf[pos]
            b1 = buf[pos + 1]
            n = b1 & 0x7F
            h = 2
            if n == 126:
                if end - pos < 4:
                    break
                n = int.from_bytes(buf[pos + 2 : pos + 4], "big")
                h = 4
            elif n == 127:
                if end - pos < 10:
                    break
                n = int.from_bytes(buf[pos + 2 : pos + 10], "big")
                h = 10
            if b1 & 0x80:
                h += 4  # servers do not mask; tolerate it anyway (payload left masked)
            if end - pos < h + n:
                break
            opcode = b0 & 0x0F
            if opcode in (OP_TEXT, OP_BINARY):
                out.append(bytes(buf[pos + h : pos + h + n]))
            elif opcode == OP_CLOSE:
                self.pos = pos + h + n
                raise Closed("closed by the server")
            pos += h + n
        if pos == end:
            buf.clear()
            pos = 0
        elif pos > 1 << 20:
            del buf[:pos]
            pos = 0
        self.pos = pos
        return out

    async def receive_batch(self) -> list[bytes]:
        """One or more complete messages (blocks until at least one has arrived)."""
        while True:
            frames = self._parse()
            if frames:
                return frames
            data = await self.stream.receive_some(262144)
            if not data:
                raise Closed("connection lost")
            self.buf += data

    async def close(self) -> None:
        try:
            with trio.move_on_after(2):
                await self.stream.send_all(bytes((0x88, 0x82)) + b"\0\0\0\0" + b"\x03\xe8")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        await self.stream.aclose()


# --- child-process plumbing ----------------------------------------------------------------
_out_lock = threading.Lock()


def emit(event: str, **fields: Any) -> None:
    """One JSON event line on stdout (thread-safe)."""
    line = json.dumps({"event": event, **fields}, default=str)
    with _out_lock:
        sys.stdout.write(line + "\n")
        sys.stdout.flush()


async def commands() -> AsyncIterator[dict[str, Any]]:
    """JSON commands from stdin, one per line; ends at EOF."""
    stream = trio.lowlevel.FdStream(os.dup(sys.stdin.fileno()))
    buf = b""
    async with stream:
        while True:
            data = await stream.receive_some(65536)
            if not data:
                return
            buf += data
            while b"\n" in buf:
                line, buf = buf.split(b"\n", 1)
                if line.strip():
                    obj: dict[str, Any] = json.loads(line)
                    yield obj
