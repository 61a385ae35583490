"""The md bus's hot path to Redis: one connection on a Trio stream, RESP through hiredis.

Every tick crosses Redis twice: the feeder's ``PUBLISH`` (with its ``HSET`` of the latest
ticks) and the edge's pub/sub read. Through coredis each of those costs a command's worth of
its machinery (a writer and a reader task, a connection pool, cancel scopes): measured on the
benchmark machine, a ``PUBLISH`` round trip took 614–684 µs at the median through coredis on
an idle Trio process and 153 µs written on a Trio socket (docs/benchmarks.md, 8c). So these
two paths use a connection of their own: commands packed and replies parsed by hiredis
(Redis's own C codec for Python, maintained with redis-py), written and read here without
any task in between. Everything else on the bus (demand, heartbeats, the feeder's state)
stays on coredis.

Failures surface as ``BusConnectionError`` (an ``OSError``, like every other lost-bus error
the bus code handles): a refused or dropped connection, a protocol error, or an error reply
(Redis answered ``-ERR ...``, ``-NOAUTH ...``, ``-OOM ...``): the caller drops the connection
and opens another. Nothing here retries.
"""

from __future__ import annotations

from typing import Any, cast

import hiredis
import trio

from ._busurl import parse_url, tls_context

READ_SIZE = 1 << 16


class BusConnectionError(ConnectionError):
    """The connection to Redis failed, or Redis answered with an error."""


class RespConnection:
    """One Redis connection. ``send`` writes commands (pipelined: no answer is awaited);
    ``read`` returns the replies (and pub/sub pushes) that arrived, in order."""

    def __init__(self, stream: trio.abc.Stream) -> None:
        self._stream = stream
        self._reader = hiredis.Reader()

    @classmethod
    async def open(cls, url: str) -> RespConnection:
        """Connect, authenticate and select the database (callers put a deadline on it)."""
        address = parse_url(url)
        stream: trio.abc.Stream | None = None
        try:
            if address.path:
                stream = await trio.open_unix_socket(address.path)
            else:
                stream = await trio.open_tcp_stream(address.host, address.port)
                if address.tls:
                    context = tls_context(address)
                    stream = trio.SSLStream(stream, context, server_hostname=address.host)
                    await stream.do_handshake()
        except (OSError, trio.BrokenResourceError) as exc:
            if stream is not None:
                await trio.aclose_forcefully(stream)
            why = exc.__cause__ or exc  # a failed TLS handshake: the ssl error is the cause
            raise BusConnectionError(f"cannot connect to Redis: {why}") from exc
        conn = cls(stream)
        try:
            setup: list[tuple[bytes | str, ...]] = []
            if address.password:
                auth: tuple[str, ...] = (address.username, address.password)
                setup.append(("AUTH", *(auth if address.username else auth[1:])))
            if address.db:
                setup.append(("SELECT", str(address.db)))
            if setup:
                await conn.send(setup)
                await conn.replies(len(setup))
        except BaseException:
            await conn.aclose()
            raise
        return conn

    async def send(self, commands: list[tuple[bytes | str, ...]]) -> None:
        """Write the commands in one go (their answers come through ``read``)."""
        # (hiredis's stub declares a 1-tuple: any number of arguments is what it packs)
        data = b"".join(hiredis.pack_command(cast(Any, command)) for command in commands)
        try:
            await self._stream.send_all(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            raise BusConnectionError(f"Redis connection lost: {exc}") from exc

    async def read(self) -> list[Any]:
        """Wait for data; every complete reply in it (at least one). An error reply raises."""
        reader = self._reader
        out: list[Any] = []
        while not out:
            try:
                data = await self._stream.receive_some(READ_SIZE)
            except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
                raise BusConnectionError(f"Redis connection lost: {exc}") from exc
            if not data:
                raise BusConnectionError("Redis closed the connection")
            reader.feed(bytes(data))
            try:
                while (reply := reader.gets()) is not False:
                    if isinstance(reply, hiredis.ReplyError):
                        raise BusConnectionError(f"Redis answered: {reply}")
                    out.append(reply)
            except hiredis.ProtocolError as exc:
                raise BusConnectionError(f"Redis protocol error: {exc}") from exc
        return out

    async def replies(self, n: int) -> list[Any]:
        """The next ``n`` replies, and any that came with them in the last read (for
        answers to commands of one's own, when nothing else is expected)."""
        out: list[Any] = []
        while len(out) < n:
            out += await self.read()
        return out

    async def aclose(self) -> None:
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(self._stream)

    async def __aenter__(self) -> RespConnection:
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.aclose()
