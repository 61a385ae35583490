"""CTP callback thread -> Trio.

CTP (or the simulator) calls our Spi on its own thread. Each callback copies what it needs out
of the struct (valid only during the callback) and hands it to Trio with exactly one
``TrioToken.run_sync_soon``; the callback never blocks and never raises (an exception escaping
a SWIG director is printed, and ``SystemExit`` aborts the process).

Two queues, two written policies:

- **Events** (responses, orders, trades, link state): a Trio channel bounded in *bytes* (the
  approximate JSON size of the captured values) and *time*, not in rows. The backlog may pass
  ``limits.event_queue_bytes`` while the client keeps taking it: a prompt client receives an
  answer of any number of rows, however fast CTP delivers them. A backlog that stays above that
  mark for ``limits.event_backlog_s`` without once draining below it, or that reaches
  ``HARD_LIMIT_FACTOR`` times it (memory protection), sets the session's ``overflowed`` event
  and the client is closed with 1011 (it reads too slowly for its volume of events). Events are
  never dropped silently. A client that stops reading altogether is caught sooner by the send
  deadline (``_connection.Writer``).
- **Ticks** (``OnRtnDepthMarketData``): conflated. The CTP thread stores the latest values per
  instrument in a dict under a lock and wakes Trio with an idempotent ``run_sync_soon``; the
  Trio side swaps the dict out. Memory is bounded by the number of subscribed instruments,
  whatever the tick rate or the client's speed. Replaced ticks are counted.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any, NamedTuple

import trio

from .protocol.catalogue import Api, CallbackSpec, load
from .protocol.codec import RspInfo, Values, capture_rsp_info, codec

log = logging.getLogger("webctp.bridge")


class Event(NamedTuple):
    cb: CallbackSpec
    values: Values | None
    """The struct's field values (catalogue order), None when CTP passed no struct; for
    callbacks with a scalar argument (nReason, nTimeLapse) a 1-tuple holding it."""
    info: RspInfo | None
    request_id: int
    is_last: bool


class Sink:
    """The Trio side of one session's bridge. Construct inside ``trio.run``."""

    def __init__(self, limit_bytes: int, backlog_s: float = 10.0) -> None:
        self._token = trio.lowlevel.current_trio_token()
        # unbounded in rows: bounded in bytes and time (the overflow policy above)
        self.events_send, self._events = trio.open_memory_channel[Event](math.inf)
        self.limit_bytes = limit_bytes
        self.hard_limit_bytes = HARD_LIMIT_FACTOR * limit_bytes
        self.backlog_s = backlog_s
        self.queued_bytes = 0
        self.over_since: float | None = None
        """When the backlog last rose above ``limit_bytes`` (None: below it now)."""
        self._over = trio.Event()
        self.overflowed = trio.Event()
        self.ticks_ready = trio.Event()
        self.on_ticks: Callable[[], None] | None = None
        """Instead of setting ``ticks_ready``: called on the Trio thread by the wake-up
        itself, and must not raise (the shared upstream's ``pump_now`` takes the ticks at
        once, one task switch less per tick than a task woken by the event)."""
        self._tick_lock = threading.Lock()
        self._ticks: dict[str, Values] = {}
        self.ticks_conflated = 0
        self.replaced: dict[str, int] | None = None
        """When a dict: replaced ticks per instrument too (a shared upstream weighs each by
        its number of subscribers), swapped out with the ticks by ``take_ticks``."""
        self.closed = False

    # --- called on the CTP thread: never block, never raise --------------------------------
    def post(self, event: Event) -> None:
        try:
            self._token.run_sync_soon(self._deliver, event)
        except trio.RunFinishedError:
            pass  # the service has stopped; nobody is left to tell

    def post_tick(self, instrument: str, values: Values) -> None:
        with self._tick_lock:
            ticks = self._ticks
            if instrument in ticks:
                self.ticks_conflated += 1
                if self.replaced is not None:
                    self.replaced[instrument] = self.replaced.get(instrument, 0) + 1
            # wake the sender only when the dict goes from empty to non-empty: until it swaps
            # the dict out, one wake-up is already on its way (``take_ticks`` empties it)
            wake = not ticks
            ticks[instrument] = values
        if not wake:
            return
        try:
            self._token.run_sync_soon(self._wake_ticks, idempotent=True)
        except trio.RunFinishedError:
            pass

    # --- run on the Trio thread by run_sync_soon: must not raise ---------------------------
    def _deliver(self, event: Event) -> None:
        if self.closed or self.overflowed.is_set():
            return
        size = event_size(event)
        if self.queued_bytes + size > self.hard_limit_bytes:
            self.overflowed.set()
            return
        try:
            self.events_send.send_nowait(event)
        except (trio.WouldBlock, trio.ClosedResourceError, trio.BrokenResourceError):
            return
        self.queued_bytes += size
        if self.queued_bytes > self.limit_bytes and self.over_since is None:
            self.over_since = trio.current_time()
            self._over.set()

    def _wake_ticks(self) -> None:
        hook = self.on_ticks
        if hook is None:
            self.ticks_ready.set()
        elif not self.closed:
            hook()

    # --- Trio side ------------------------------------------------------------------------
    async def events(self) -> AsyncIterator[Event]:
        """The events in order, each released from the byte budget as it is taken."""
        async for event in self._events:
            self.queued_bytes -= event_size(event)
            if self.over_since is not None and self.queued_bytes <= self.limit_bytes:
                self.over_since = None
            yield event

    async def wait_overflow(self) -> None:
        """Return once the backlog has overflowed (see the policy above)."""
        while not self.overflowed.is_set():
            since = self.over_since
            if since is None:
                await self._over.wait()
                self._over = trio.Event()
                continue
            with trio.move_on_at(since + self.backlog_s):
                await self.overflowed.wait()  # the hard limit, meanwhile
                return
            if self.over_since == since:  # above the mark the whole time
                self.overflowed.set()

    def has_ticks(self) -> bool:
        """Whether ticks are waiting (a read without the lock: a tick posted just after is
        announced by its own wake-up)."""
        return bool(self._ticks)

    def take_ticks(self) -> dict[str, Values]:
        """Swap out the latest tick per instrument (called by the sender)."""
        with self._tick_lock:
            ticks, self._ticks = self._ticks, {}
            self.ticks_ready = trio.Event()
        return ticks

    def take_replaced(self) -> dict[str, int]:
        """Swap out the replaced-tick counts per instrument (when ``replaced`` is kept)."""
        with self._tick_lock:
            replaced, self.replaced = self.replaced or {}, {}
        return replaced

    def close(self) -> None:
        self.closed = True
        self.events_send.close()


HARD_LIMIT_FACTOR = 16
"""A backlog this many times ``limits.event_queue_bytes`` overflows at once."""


def event_size(event: Event) -> int:
    """About how many bytes an event takes in JSON (field names included): what the event
    queue's budget counts."""
    values = event.values
    if not values:
        return 64
    return 64 + sum(24 + (len(v) if isinstance(v, str) else 8) for v in values)


def _report(name: str) -> None:
    # one structured line (the formatter folds the traceback), never raising into C++
    log.error("event=callback_failed callback=%s", name, exc_info=True)


def _make_method(cb: CallbackSpec) -> Callable[..., None]:
    params = cb.params
    struct_codec = codec(cb.struct) if cb.struct else None
    i_struct = next(
        (i for i, p in enumerate(params) if p.startswith("p") and p != "pRspInfo"), None
    )
    i_info = params.index("pRspInfo") if "pRspInfo" in params else None
    i_rid = params.index("nRequestID") if "nRequestID" in params else None
    i_last = params.index("bIsLast") if "bIsLast" in params else None
    i_scalar = next((i for i, p in enumerate(params) if p in ("nReason", "nTimeLapse")), None)
    name = cb.name

    def method(self: Any, *args: Any) -> None:
        try:
            values: Values | None = None
            if struct_codec is not None and i_struct is not None:
                obj = args[i_struct]
                if obj is not None:
                    values = struct_codec.capture(obj)
            elif i_scalar is not None:
                values = (args[i_scalar],)
            self._sink.post(
                Event(
                    cb,
                    values,
                    capture_rsp_info(args[i_info]) if i_info is not None else None,
                    args[i_rid] if i_rid is not None else 0,
                    bool(args[i_last]) if i_last is not None else True,
                )
            )
        except BaseException:  # noqa: BLE001 - nothing may escape into the C++ thread
            _report(name)

    method.__name__ = name
    return method


def _make_tick_method() -> Callable[..., None]:
    cb = load().md.callbacks["OnRtnDepthMarketData"]
    struct_codec = codec("DepthMarketData")
    capture = struct_codec.capture
    i_instrument = struct_codec.names.index("InstrumentID")
    del cb

    def OnRtnDepthMarketData(self: Any, data: Any) -> None:
        try:
            if data is not None:
                values = capture(data)
                self._sink.post_tick(values[i_instrument], values)
        except BaseException:  # noqa: BLE001 - nothing may escape into the C++ thread
            _report("OnRtnDepthMarketData")

    return OnRtnDepthMarketData


@functools.cache
def spi_class(base: type, api: Api) -> type:
    """A subclass of the backend's Spi base class overriding every catalogue callback."""
    namespace: dict[str, Any] = {}
    for name, cb in load().api(api).callbacks.items():
        if hasattr(base, name):
            namespace[name] = _make_method(cb)
    if api == "md":
        namespace["OnRtnDepthMarketData"] = _make_tick_method()

    base_init: Callable[[Any], None] = base.__init__  # type: ignore[misc]

    def __init__(self: Any, sink: Sink) -> None:
        base_init(self)  # the binding's Spi needs it, or RegisterSpi raises TypeError
        self._sink = sink

    namespace["__init__"] = __init__
    return type(f"Webctp{base.__name__}", (base,), namespace)
