"""Writes to a client's socket (``_wire`` through ``_connection.Writer``) over loopback:
frames written at once when the socket takes them, the rest of a partial write under the
stream lock, nothing interleaved with it, the deadline on a client that stops reading."""

from __future__ import annotations

import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from types import SimpleNamespace
from typing import Any

import pytest
import trio
import trio.testing
from trio_websocket import WebSocketConnection, serve_websocket

from webctp import _wire
from webctp._connection import Writer
from webctp._fanout import tick_frame
from webctp._listener import Conn

from .service.raw import Raw


@asynccontextmanager
async def _pair(sndbuf: int = 0) -> AsyncIterator[tuple[WebSocketConnection, Writer, Raw]]:
    """A server-side connection with its ``Writer`` and a client connected to it."""
    accepted: trio.abc.SendChannel[tuple[WebSocketConnection, Writer]]
    accepted, take = trio.open_memory_channel(1)

    async def handler(request: Any) -> None:
        ws = await request.accept()
        if sndbuf:
            ws._stream.socket.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, sndbuf)
        conn = Conn(stream=ws._stream, remote="test")
        await accepted.send((ws, Writer(ws, conn, send_timeout_s=2.0)))
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        server = await nursery.start(serve_websocket, handler, "127.0.0.1", 0, None)
        client = await Raw.open(server.port, rcvbuf=sndbuf)
        await client.upgrade("/")
        ws, writer = await take.receive()
        try:
            yield ws, writer, client
        finally:
            client.close()
            nursery.cancel_scope.cancel()


async def _messages(client: Raw, n: int) -> list[str]:
    out = []
    for _ in range(n):
        got = await client.read_frame()
        assert got is not None and got[0] == 0x1  # whole text frames, nothing in between
        out.append(got[1].decode())
    return out


async def test_frames_written_at_once_arrive() -> None:
    async with _pair() as (ws, writer, client):
        assert writer.sock is not None  # plain TCP: the synchronous write is used
        frames = [tick_frame(f'{{"n":{i}}}'.encode()) for i in range(50)]
        assert await writer.send_wire([f.wire for f in frames], [f.text for f in frames])
        assert await writer.send_many(["a", "b"])
        assert await writer.send_one("c")
        assert not ws._stream_lock.locked()
        got = await _messages(client, 53)
        assert got == [f'{{"n":{i}}}' for i in range(50)] + ["a", "b", "c"]


async def test_partial_write_keeps_the_lock_until_its_rest_is_written() -> None:
    """The socket takes part of a big batch; its rest goes out under the stream lock, and a
    frame sent meanwhile waits for it (it must not land inside the batch's frames)."""
    async with _pair(sndbuf=16384) as (ws, writer, client), trio.open_nursery() as nursery:
        big = ["x" * 60000 + str(i) for i in range(40)]  # ~2.4 MB: more than the buffers take
        done: list[str] = []

        async def batch() -> None:
            assert await writer.send_many(big)
            done.append("batch")

        async def control() -> None:
            assert await writer.send_one('{"MsgType":"control"}')
            done.append("control")

        nursery.start_soon(batch)
        await trio.testing.wait_all_tasks_blocked()
        assert ws._stream_lock.locked()  # the rest of the partial write holds it
        nursery.start_soon(control)
        await trio.testing.wait_all_tasks_blocked()
        assert done == []
        got = await _messages(client, 41)
        assert got == [*big, '{"MsgType":"control"}']
        await trio.testing.wait_all_tasks_blocked()
        assert done == ["batch", "control"]


async def test_a_client_that_stops_reading_is_aborted_after_the_deadline() -> None:
    async with _pair(sndbuf=16384) as (ws, writer, _client):
        big = ["y" * 60000 for _ in range(40)]
        with trio.fail_after(30):
            assert not await writer.send_many(big)  # nobody reads: the deadline (2 s) passes
        assert writer.conn.aborted.startswith("client stopped reading")
        assert not ws._stream_lock.locked()


async def test_no_synchronous_write_once_the_socket_is_closed() -> None:
    """The descriptor is read at each write: once the connection's socket is closed (its
    number may already belong to another client's socket), nothing is written to it and
    the write reports the connection gone."""
    async with _pair() as (ws, writer, _client):
        sock = writer.sock
        assert sock is not None
        number = sock.fileno()
        await ws._stream.aclose()
        assert sock.fileno() == -1
        # the lowest free descriptor goes to the next socket opened: most likely this one
        other, peer = socket.socketpair()
        with other, peer:
            peer.setblocking(False)
            assert _wire.write_now(ws, sock, b"x") == -1
            assert not await writer.send_one("after the close")
            got = b""
            for end in (other, peer):
                end.setblocking(False)
                try:
                    got += end.recv(100)
                except BlockingIOError:
                    pass
            assert got == b"", (number, other.fileno(), peer.fileno())


@pytest.mark.parametrize("stream", [object(), None])
def test_no_synchronous_write_without_a_plain_tcp_stream(stream: object) -> None:
    """TLS streams (and anything but trio's SocketStream) take every write the usual way."""
    assert _wire.tcp_socket(SimpleNamespace(_stream=stream)) is None  # type: ignore[arg-type]
