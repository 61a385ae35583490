"""A raw WebSocket client over a plain loopback socket, for tests that misbehave on purpose:
resets (SO_LINGER 0), half-done handshakes, hand-made frames, clients that never read."""

from __future__ import annotations

import base64
import os
import socket
import struct

import orjson
import trio

UPGRADE = (
    "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\n"
    "Connection: Upgrade\r\nSec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
)


def frame(payload: bytes, opcode: int = 0x1, *, fin: bool = True, mask: bool = True) -> bytes:
    """One client frame (masked, as RFC 6455 requires of clients, unless ``mask=False``)."""
    head = bytes([(0x80 if fin else 0) | opcode])
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + bytes(b ^ key[i % 4] for i, b in enumerate(payload))


def text(message: dict[str, object]) -> bytes:
    return frame(orjson.dumps(message))


class Raw:
    def __init__(self, sock: trio.socket.SocketType, port: int) -> None:
        self.sock = sock
        self.port = port
        self.buffer = b""

    @classmethod
    async def open(cls, port: int, *, rcvbuf: int = 0) -> Raw:
        sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        await sock.connect(("127.0.0.1", port))
        return cls(sock, port)

    async def send(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = await self.sock.send(view)
            view = view[n:]

    async def upgrade(self, path: str = "/td/", *, read: bool = True) -> bytes:
        key = base64.b64encode(os.urandom(16)).decode()
        await self.send(UPGRADE.format(path=path, port=self.port, key=key).encode())
        if not read:
            return b""
        return await self.read_head()

    async def read_head(self) -> bytes:
        with trio.fail_after(10):
            while b"\r\n\r\n" not in self.buffer:
                chunk = await self.sock.recv(65536)
                if not chunk:
                    break
                self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(b"\r\n\r\n")
        return head

    async def read_frame(self, timeout: float = 10.0) -> tuple[int, bytes] | None:
        """The next server frame (opcode, payload); None when the server closed TCP."""
        with trio.fail_after(timeout):
            while True:
                parsed = _parse(self.buffer)
                if parsed is not None:
                    opcode, payload, used = parsed
                    self.buffer = self.buffer[used:]
                    return opcode, payload
                chunk = await self.sock.recv(65536)
                if not chunk:
                    return None
                self.buffer += chunk

    async def close_code(self, timeout: float = 10.0) -> int | None:
        """Read until the server's close frame; its code (None: TCP closed without one)."""
        while True:
            got = await self.read_frame(timeout)
            if got is None:
                return None
            opcode, payload = got
            if opcode == 0x8:
                return int(struct.unpack("!H", payload[:2])[0]) if len(payload) >= 2 else 1005

    async def eof(self, timeout: float = 10.0) -> bool:
        """Whether the server closes TCP within ``timeout`` (data before that is discarded)."""
        with trio.move_on_after(timeout):
            while True:
                try:
                    chunk = await self.sock.recv(65536)
                except OSError:
                    return True
                if not chunk:
                    return True
        return False

    def reset(self) -> None:
        """Close with an RST instead of a FIN."""
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.sock.close()

    def close(self) -> None:
        self.sock.close()


def _parse(data: bytes) -> tuple[int, bytes, int] | None:
    if len(data) < 2:
        return None
    opcode = data[0] & 0x0F
    n = data[1] & 0x7F
    i = 2
    if n == 126:
        if len(data) < 4:
            return None
        n = struct.unpack("!H", data[2:4])[0]
        i = 4
    elif n == 127:
        if len(data) < 10:
            return None
        n = struct.unpack("!Q", data[2:10])[0]
        i = 10
    if len(data) < i + n:
        return None
    return opcode, data[i : i + n], i + n
