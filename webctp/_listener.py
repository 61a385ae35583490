"""The WebSocket listener: accept, handshake deadline, connection cap, containment, shutdown.

Every TCP connection runs in its own task of the listener's *connection nursery*, never in the
service's nursery, and inside a containment wrapper: whatever a client does at the TCP, TLS,
HTTP or WebSocket level (a reset in the middle of the handshake, a Ping while we close, a
malformed upgrade request, a TLS error), the exception ends that connection only and is logged
as one line with its cause. Only genuine bugs are logged as ``connection_failed`` (with the
traceback folded into the line); what a client did is ``connection_ended``.

Resources a client can hold without logging in are bounded:

- ``server.handshake_timeout_s``: TLS handshake + HTTP upgrade request must complete in this
  time, else the socket is closed;
- a refused upgrade (404/401/403/503) is answered and then closed by the server at once,
  whatever the client does with its end;
- ``server.max_connections`` (capped further by the process's file-descriptor limit, see
  ``connection_cap``): past it a new connection gets ``503 too many connections`` and is
  closed, so descriptors stay free for the HTTP listener (/healthz) and the backend.

Each connection's work runs in a cancel scope shielded from the service's cancellation: on
shutdown the listener first sends every client a close frame 1001 ("service shutting down"),
waits up to ``server.close_timeout_s`` for the close handshakes, then cancels what is left.
"""

from __future__ import annotations

import errno
import logging
import resource
import ssl
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import trio
from trio_websocket import ConnectionClosed, WebSocketConnection, WebSocketRequest
from wsproto import ConnectionType, WSConnection
from wsproto.connection import ConnectionState
from wsproto.events import CloseConnection, Ping
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

log = logging.getLogger("webctp.listener")

Handler = Callable[[WebSocketRequest, "Conn"], Awaitable[None]]

FD_RESERVE = 64
"""Descriptors kept free for everything that is not a WebSocket client: the HTTP listener and
its clients (/healthz, /metrics, the demo), the simulator's database, CTP flow files, logs."""

PROTOCOL_CLOSE_TIMEOUT_S = 2.0
"""How long the close frame for a protocol violation may take to write."""

_REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\nContent-Type: text/plain\r\n"
    b"Content-Length: 21\r\nConnection: close\r\n\r\ntoo many connections\n"
)

# What a client can cause: these end its connection and are logged as connection_ended.
CLIENT_ERRORS: tuple[type[BaseException], ...] = (
    ConnectionClosed,
    trio.BrokenResourceError,
    trio.ClosedResourceError,
    ssl.SSLError,
    RemoteProtocolError,
    LocalProtocolError,  # e.g. a Pong owed to a client while the connection is closing
    OSError,  # ENOTCONN and friends on a socket the peer reset
)


class _Connection(WebSocketConnection):
    """trio-websocket's connection with two changes at the protocol edge:

    - a Ping that arrives after we started closing is not answered (wsproto refuses to send a
      Pong then, and trio-websocket would raise from its reader task);
    - a frame wsproto cannot parse (unmasked, reserved opcode or bits, bad UTF-8) is reported
      by wsproto as a close from the client (1002/1007) without a state change, and
      trio-websocket would just drop TCP (the client sees 1006): the client gets that close
      frame first.
    """

    write_timeout_s: float = 10.0
    conn: Conn | None = None

    async def _handle_ping_event(self, event: Ping) -> None:
        if self._wsproto.state is not ConnectionState.OPEN or self.conn is None:
            return
        # Like every write (``_connection.Writer``): shielded, so that no close follows half
        # a Pong, and with a deadline, so that a client that pings but never reads cannot park
        # the reader on a full socket.
        conn = self.conn
        scope = trio.CancelScope(shield=True, deadline=trio.current_time() + self.write_timeout_s)
        conn.writes.add(scope)
        try:
            with scope:
                await super()._handle_ping_event(event)
        finally:
            conn.writes.discard(scope)
        if scope.cancelled_caught and not conn.aborted:
            conn.abort(
                f"client stopped reading: a Pong made no progress in {self.write_timeout_s:g} s"
            )

    async def _handle_close_connection_event(self, event: CloseConnection) -> None:
        if self._wsproto.state is ConnectionState.OPEN:
            with trio.move_on_after(PROTOCOL_CLOSE_TIMEOUT_S):
                try:
                    await self._send(CloseConnection(code=event.code, reason=event.reason))
                except (ConnectionClosed, LocalProtocolError):
                    pass
        await super()._handle_close_connection_event(event)


@dataclass(eq=False)
class Conn:
    """One accepted TCP connection: its shielded scope and, once upgraded, its WebSocket."""

    stream: trio.abc.Stream
    remote: str
    scope: trio.CancelScope = field(default_factory=lambda: trio.CancelScope(shield=True))
    ws: WebSocketConnection | None = None
    aborted: str = ""
    """Why the server gave up on this client without a close handshake ('' otherwise)."""
    writes: set[trio.CancelScope] = field(default_factory=set)
    """Writes in progress (shielded so that a close never follows half a frame)."""

    def abort(self, reason: str) -> None:
        """End this connection now, without a close frame (the client does not read, or a
        write was interrupted mid-frame): cancel its work, writes in progress included; the
        listener closes the socket."""
        if not self.aborted:
            self.aborted = reason
        for write in self.writes:
            write.cancel()
        self.scope.cancel()


def connection_cap(configured: int, fds_per_connection: int = 1) -> int:
    """How many WebSocket connections this process accepts at once: the configured number,
    lowered so that ``FD_RESERVE`` descriptors stay free. The soft RLIMIT_NOFILE is raised to
    the hard limit first (as servers usually do)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or hard > soft:
        target = 1 << 20 if hard == resource.RLIM_INFINITY else hard
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    by_fds = max((soft - FD_RESERVE) // max(fds_per_connection, 1), 1)
    return max(1, min(configured, by_fds))


def _remote(stream: trio.abc.Stream) -> str:
    sock_stream = getattr(stream, "transport_stream", stream)
    sock = getattr(sock_stream, "socket", None)
    try:
        peer = sock.getpeername() if sock is not None else None
    except OSError:
        return "?"
    if isinstance(peer, tuple) and len(peer) >= 2:
        host = str(peer[0])
        return f"[{host}]:{peer[1]}" if ":" in host else f"{host}:{peer[1]}"
    return "?"


def describe(exc: BaseException) -> str:
    """A short cause for a log line: the exception types and messages, flattened."""
    if isinstance(exc, BaseExceptionGroup):
        return "; ".join(describe(e) for e in exc.exceptions)
    text = str(exc)
    if not text and isinstance(exc, OSError) and exc.errno:
        text = errno.errorcode.get(exc.errno, "")
    return f"{type(exc).__name__}({text!r})" if text else type(exc).__name__


def _is_client_error(exc: BaseException) -> bool:
    if isinstance(exc, BaseExceptionGroup):
        return all(_is_client_error(e) for e in exc.exceptions)
    return isinstance(exc, CLIENT_ERRORS)


class WsListener:
    def __init__(
        self,
        handler: Handler,
        *,
        ssl_context: ssl.SSLContext | None,
        max_connections: int,
        handshake_timeout_s: float,
        close_timeout_s: float,
        send_timeout_s: float,
        max_message_size: int,
    ) -> None:
        self.handler = handler
        self.ssl_context = ssl_context
        self.max_connections = max_connections
        self.handshake_timeout_s = handshake_timeout_s
        self.close_timeout_s = close_timeout_s
        self.send_timeout_s = send_timeout_s
        self.max_message_size = max_message_size
        self.conns: set[Conn] = set()
        self.refused = 0
        self.closing = False

    async def serve(
        self, host: str, port: int, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Listen until cancelled; then close every client with 1001 and return."""
        listeners: list[trio.abc.Listener[trio.abc.Stream]] = list(
            await trio.open_tcp_listeners(port, host=host)
        )
        bound = listeners[0].socket.getsockname()[1]  # type: ignore[attr-defined]
        if self.ssl_context is not None:
            listeners = [
                trio.SSLListener(listener, self.ssl_context, https_compatible=True)
                for listener in listeners
            ]
        async with trio.open_nursery() as connections:
            try:
                task_status.started(bound)
                await trio.serve_listeners(self._contained, listeners, handler_nursery=connections)
            finally:
                await self._shutdown()

    async def _shutdown(self) -> None:
        self.closing = True
        with trio.CancelScope(shield=True):
            live = [c for c in self.conns if c.ws is not None and not c.aborted]
            if live:
                log.info("event=closing_clients count=%d code=1001", len(live))
            with trio.move_on_after(self.close_timeout_s):
                async with trio.open_nursery() as nursery:
                    for conn in live:
                        nursery.start_soon(_close, conn.ws, 1001, "service shutting down")
            for conn in list(self.conns):
                conn.scope.cancel()

    async def _contained(self, stream: trio.abc.Stream) -> None:
        conn = Conn(stream, _remote(stream))
        try:
            with conn.scope:
                if self.closing:
                    return
                if len(self.conns) >= self.max_connections:
                    self.refused += 1
                    log.warning(
                        "event=connection_refused remote=%s reason=too_many_connections cap=%d",
                        conn.remote,
                        self.max_connections,
                    )
                    with trio.move_on_after(1):
                        await stream.send_all(_REFUSAL)
                    return
                self.conns.add(conn)
                await self._serve(conn)
            if conn.aborted:
                log.warning(
                    "event=connection_aborted remote=%s reason=%r", conn.remote, conn.aborted
                )
        except BaseException as exc:  # noqa: BLE001 - contain; re-raise only cancellation
            self._contain(conn, exc)
        finally:
            self.conns.discard(conn)
            await trio.aclose_forcefully(stream)

    def _contain(self, conn: Conn, exc: BaseException) -> None:
        """Log what ended a connection; let only cancellation (the service's) propagate."""
        rest: BaseException | None = None
        failures: BaseException | None
        if isinstance(exc, BaseExceptionGroup):
            failures, rest = exc.split(Exception)
            if failures is None:
                raise exc
        elif isinstance(exc, Exception):
            failures = exc
        else:
            raise exc
        assert failures is not None
        if _is_client_error(failures):
            log.info("event=connection_ended remote=%s cause=%s", conn.remote, describe(failures))
        else:
            log.error(
                "event=connection_failed remote=%s cause=%s",
                conn.remote,
                describe(failures),
                exc_info=failures,
            )
        if rest is not None:
            raise rest

    async def _serve(self, conn: Conn) -> None:
        ws = _Connection(
            conn.stream,
            WSConnection(ConnectionType.SERVER),
            message_queue_size=1,
            max_message_size=self.max_message_size,
        )
        ws.write_timeout_s = self.send_timeout_s
        ws.conn = conn
        conn.ws = ws
        handshake = trio.CancelScope(deadline=trio.current_time() + self.handshake_timeout_s)

        async def reader() -> None:
            await ws._reader_task()
            handshake.cancel()  # the client went away before its upgrade request was complete

        async with trio.open_nursery() as nursery:
            nursery.start_soon(reader)
            with handshake:
                request: WebSocketRequest = await ws._get_request()
            if handshake.cancelled_caught:
                if not handshake.deadline <= trio.current_time():
                    nursery.cancel_scope.cancel()
                    return
                log.info(
                    "event=connection_ended remote=%s cause=handshake_timeout timeout_s=%g",
                    conn.remote,
                    self.handshake_timeout_s,
                )
                nursery.cancel_scope.cancel()
                return
            try:
                await self.handler(request, conn)
            finally:
                if not conn.aborted:
                    with trio.move_on_after(self.close_timeout_s, shield=True):
                        await ws.aclose()
                nursery.cancel_scope.cancel()


async def _close(ws: WebSocketConnection | None, code: int, reason: str) -> None:
    if ws is None:
        return
    try:
        await ws.aclose(code, reason)
    except Exception as exc:  # noqa: BLE001 - the client may be gone; the socket closes anyway
        log.debug("event=close_failed cause=%s", describe(exc))
