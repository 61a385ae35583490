"""One WebSocket to webctp: the receive task, RequestIDs, answers, link state and pushes."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from typing import Any

import orjson
import trio
from trio_websocket import ConnectionClosed, WebSocketConnection

from ._errors import ClientError, ConnectionLost, error_of

Frame = dict[str, Any]

LINK_EVENTS = frozenset({"FrontConnected", "FrontDisconnected", "HeartBeatWarning"})
_MAX_ROWS = 1_000_000  # rows one answer may hold before the client gives up on it


class _Pending:
    """The answer to one request: frames with its RequestID, complete at the first frame with
    IsLast true, or after ``count`` frames when given (subscriptions: one answer per
    instrument, whatever their IsLast), or at the first error."""

    def __init__(self, count: int | None = None) -> None:
        self.count = count
        self.rows: list[Frame] = []
        self.error: ClientError | None = None
        self.done = trio.Event()

    def feed(self, frame: Frame) -> None:
        if self.done.is_set():
            return
        if len(self.rows) >= _MAX_ROWS:
            self.fail(ClientError(f"answer over {_MAX_ROWS} rows"))
            return
        self.rows.append(frame)
        error = error_of(frame)
        if error is not None:
            self.fail(error)
        elif len(self.rows) == self.count or (self.count is None and frame.get("IsLast")):
            self.done.set()

    def fail(self, error: ClientError) -> None:
        if not self.done.is_set():
            self.error = error
            self.done.set()


class Connection:
    """The shared core of :class:`~webctp.client.TdClient` and ``MdClient``.

    Frames are read by one task and dispatched at once (nothing blocks it): answers to the
    request they name, link state to :attr:`state`, the rest to the handlers of the subclass
    and to :meth:`pushes` listeners.
    """

    def __init__(self, ws: WebSocketConnection, *, send_timeout: float = 10.0) -> None:
        self._ws = ws
        self._send_timeout = send_timeout
        self._next_rid = 0
        self._pending: dict[int, _Pending] = {}
        self._listeners: list[PushStream] = []
        self._state_changed = trio.Event()
        self._send_lock = trio.Lock()
        self.closed: ConnectionLost | None = None
        self.state = "new"
        """The last ``SessionState.State`` webctp pushed (``connecting``, ``ready``,
        ``disconnected``, ``relogging``, ``login_failed``...); ``new`` before any."""
        self.state_detail = ""
        self.session: Frame = {}
        """The ``RspUserLogin`` payload of the current CTP session (updated after a re-login)."""

    # -- requests ------------------------------------------------------------------------

    def request_id(self) -> int:
        """A fresh RequestID (int32, never 0, wraps around)."""
        self._next_rid = self._next_rid % 2_147_483_647 + 1
        while self._next_rid in self._pending:
            self._next_rid = self._next_rid % 2_147_483_647 + 1
        return self._next_rid

    async def send(self, frame: Frame) -> None:
        """Send one frame (within the send timeout; a stuck socket is a lost connection)."""
        if self.closed is not None:
            raise self.closed
        text = orjson.dumps(frame).decode()
        try:
            with trio.fail_after(self._send_timeout):
                async with self._send_lock:
                    await self._ws.send_message(text)
        except ConnectionClosed as exc:
            raise self._lost(exc) from None
        except trio.TooSlowError:
            await self._ws.aclose(1001, "send timed out")
            raise ConnectionLost(None, "send timed out") from None

    async def call(self, frame: Frame, *, count: int | None = None) -> list[Frame]:
        """Send ``frame`` with a fresh RequestID; its answer frames, up to IsLast (or
        ``count`` frames). Raises :class:`CtpError` on an error answer."""
        rid = self.request_id()
        pending = _Pending(count)
        self._pending[rid] = pending
        try:
            await self.send({**frame, "RequestID": rid})
            await pending.done.wait()
        finally:
            del self._pending[rid]
        if pending.error is not None:
            raise pending.error
        return pending.rows

    def expect_answer(self, rid: int) -> _Pending:
        """Register for the answer of a request sent with ``rid`` (drop it with
        :meth:`forget_answer`): for requests that CTP answers only on failure."""
        pending = _Pending()
        self._pending[rid] = pending
        return pending

    def forget_answer(self, rid: int) -> None:
        self._pending.pop(rid, None)

    # -- link state ------------------------------------------------------------------------

    async def wait_state(self, *states: str) -> str:
        """Wait until :attr:`state` is one of ``states``; returns it."""
        while self.state not in states:
            if self.closed is not None:
                raise self.closed
            await self._state_changed.wait()
        return self.state

    @asynccontextmanager
    async def pushes(
        self, msg_types: Iterable[str] | None = None, *, buffer: int = 256
    ) -> AsyncIterator[PushStream]:
        """Receive the frames of these MsgTypes (default: every frame that is not an answer
        to a request of this client: pushes, link events, ``SessionState``)::

            async with td.pushes({"RtnInstrumentStatus"}) as pushes:
                async for frame in pushes: ...

        Overflow: at most ``buffer`` frames wait; a reader that falls further behind gets
        :class:`ClientError` once the waiting frames are read, so it never silently misses an
        event. Iteration ends when the connection closes.
        """
        stream = PushStream(None if msg_types is None else frozenset(msg_types), buffer)
        self._listeners.append(stream)
        try:
            yield stream
        finally:
            self._listeners.remove(stream)
            stream.close()

    # -- receive task ----------------------------------------------------------------------

    async def run(self) -> None:
        """Read and dispatch frames until the socket closes."""
        try:
            while True:
                text = await self._ws.get_message()
                try:
                    frame = orjson.loads(text)
                except orjson.JSONDecodeError:
                    continue  # not webctp's: nothing can be done with it
                if isinstance(frame, dict):
                    self.dispatch(frame)
        except ConnectionClosed as exc:
            self._lost(exc)
        finally:
            if self.closed is None:
                self.closed = ConnectionLost(None, "client closed")
            for pending in self._pending.values():
                pending.fail(self.closed)
            for stream in self._listeners:
                stream.close()
            self._state_changed.set()
            self.on_closed()

    def _lost(self, exc: ConnectionClosed) -> ConnectionLost:
        if self.closed is None:
            reason = exc.reason
            self.closed = ConnectionLost(
                getattr(reason, "code", None), getattr(reason, "reason", None)
            )
        return self.closed

    def dispatch(self, frame: Frame) -> None:
        msg_type = frame.get("MsgType")
        rid = frame.get("RequestID")
        if msg_type == "SessionState":
            body = frame.get("SessionState") or {}
            self.state = str(body.get("State", ""))
            self.state_detail = str(body.get("Detail", ""))
            self._state_changed.set()
            self._state_changed = trio.Event()
        elif msg_type == "RspUserLogin" and rid is None and error_of(frame) is None:
            self.session = frame.get("RspUserLogin") or {}  # a re-login after a reconnect
            self.on_login(self.session)
        if isinstance(rid, int) and rid in self._pending:
            self._pending[rid].feed(frame)
            return
        if self.on_frame(frame):
            return
        self._publish(frame)

    def _publish(self, frame: Frame) -> None:
        msg_type = frame.get("MsgType")
        for stream in self._listeners:
            if stream.types is None or msg_type in stream.types:
                stream.put(frame)

    def on_frame(self, frame: Frame) -> bool:
        """Subclass hook: handle a frame; True when it was consumed."""
        return False

    def on_login(self, login: Frame) -> None:
        """Subclass hook: a (re-)login's RspUserLogin payload."""

    def on_closed(self) -> None:
        """Subclass hook: the connection is gone (wake whoever waits)."""

    async def aclose(self) -> None:
        await self._ws.aclose()


class PushStream:
    """Frames for one :meth:`Connection.pushes` listener (bounded; see there)."""

    def __init__(self, types: frozenset[str] | None, buffer: int) -> None:
        self.types = types
        self._send, self._receive = trio.open_memory_channel[Frame](buffer)
        self._overflowed = False

    def put(self, frame: Frame) -> None:
        try:
            self._send.send_nowait(frame)
        except trio.WouldBlock:
            self._overflowed = True
            self._send.close()
        except trio.ClosedResourceError:
            pass

    def close(self) -> None:
        self._send.close()

    def __aiter__(self) -> PushStream:
        return self

    async def __anext__(self) -> Frame:
        try:
            return await self._receive.receive()
        except (trio.EndOfChannel, trio.ClosedResourceError):
            if self._overflowed:
                raise ClientError("push listener fell behind: frames were dropped") from None
            raise StopAsyncIteration from None


def payload_of(frame: Frame) -> Frame | None:
    """The payload of an answer: the value of its one non-envelope key (None when null)."""
    for key, value in frame.items():
        if key not in _ENVELOPE:
            return value if isinstance(value, dict) else None
    return None


_ENVELOPE = frozenset({"MsgType", "RspInfo", "RequestID", "IsLast", "Request", "Detail"})
