"""Encode-once tick fan-out: one frame per tick, whatever the number of subscribers.

Used by the shared md upstream (``_upstream``) and by md edges (``_bus``); the per-session
path (``_md.MdSession.tick_sender``) is unchanged.

- ``encode_tick`` turns a tick into JSON once; ``TickFrame`` holds it with the complete
  WebSocket frame bytes (unmasked, final text frame), built once too.
- ``Hub`` keeps, per instrument, the set of subscribed clients (reference counting: the first
  subscriber asks the ``Source`` for the instrument, the last one leaving releases it after
  ``grace_s``), the latest frame (a new subscriber gets it at once), and the clients waiting
  for the first ``RspSubMarketData`` of an instrument being subscribed upstream.
- ``Subscriber`` is one client's pending frames: the latest frame per instrument. Overflow
  policy: a newer frame replaces the pending one (counted in ``ticks_conflated``); memory is
  bounded by the number of instruments the client subscribed. Its sender takes all pending
  frames at once and writes them with one socket write (``_connection.Writer.send_wire``).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple, Protocol

import orjson
import trio

from ._wire import frame_header
from .protocol import codec
from .protocol.codec import RspInfo, Values

log = logging.getLogger("webctp.fanout")

_to_dict = codec.codec("DepthMarketData").to_dict
_INSTRUMENT = codec.codec("DepthMarketData").names.index("InstrumentID")


class TickFrame(NamedTuple):
    text: bytes
    """The frame's JSON (UTF-8): what goes over the bus."""
    wire: bytes
    """The complete WebSocket frame (header + text)."""


def tick_frame(text: bytes) -> TickFrame:
    return TickFrame(text, frame_header(len(text)) + text)


def encode_tick(values: Values) -> TickFrame:
    """A tick (captured struct values) as a frame: struct -> dict -> JSON -> frame, once."""
    return encode_tick_dict(_to_dict(values))


def tick_dict(values: Values) -> dict[str, Any]:
    return _to_dict(values)


def encode_tick_dict(tick: dict[str, Any]) -> TickFrame:
    """A tick already made a dict (``tick_dict``) as a frame."""
    message = {"MsgType": "RtnDepthMarketData", "DepthMarketData": tick}
    try:
        text = orjson.dumps(message)
    except orjson.JSONEncodeError:
        text = codec.dumps(message).encode("utf-8")
    return tick_frame(text)


def tick_instrument(values: Values) -> str:
    return str(values[_INSTRUMENT])


class Subscriber:
    """One client's pending tick frames (see the module docstring for the overflow policy).

    Also what ``_connection`` and ``_metrics`` expect of a session's ``sink``: the
    ``overflowed`` event (set when a control frame could not be queued for this client: it
    is closed with 1011) and ``ticks_conflated``."""

    def __init__(self) -> None:
        self.pending: dict[str, TickFrame] = {}
        self.ready = trio.Event()
        self.ticks_conflated = 0
        self.overflowed = trio.Event()
        self.queued_bytes = 0
        self.instruments: dict[str, None] = {}
        """Instruments this client subscribed (its references in the hub)."""

    async def wait_overflow(self) -> None:
        """Return once this client has overflowed (what ``_connection`` waits on)."""
        await self.overflowed.wait()

    def offer(self, instrument: str, frame: TickFrame) -> None:
        pending = self.pending
        if instrument in pending:
            self.ticks_conflated += 1
        elif not pending:
            self.ready.set()
        pending[instrument] = frame

    def take(self) -> list[TickFrame]:
        frames = list(self.pending.values())
        self.pending = {}
        self.ready = trio.Event()
        return frames

    def drop(self, instrument: str) -> None:
        self.pending.pop(instrument, None)


class Conflation:
    """Deliveries that did not happen because a newer tick replaced one before it reached
    the hub (counted once per subscriber of its instrument); watched by ``_metrics``."""

    def __init__(self) -> None:
        self.ticks_conflated = 0


class Source(Protocol):
    """Where a hub's ticks come from: the shared CTP upstream, or the bus (edges)."""

    def want(self, instruments: list[str]) -> None:
        """Start delivering these instruments (answer with ``Hub.confirm``)."""

    def drop(self, instruments: list[str]) -> None:
        """Nobody wants these any more."""


class Control(Protocol):
    """A client session as the hub sees it: it can take control frames without waiting."""

    sink: Subscriber

    def tell(self, text: str) -> None: ...

    def on_link(self) -> None: ...


def _nothing() -> None:
    return None


class Hub:
    def __init__(self, grace_s: float) -> None:
        self.grace_s = grace_s
        self.source: Source | None = None
        self.subscribers: dict[str, set[Subscriber]] = {}
        self.latest: dict[str, TickFrame] = {}
        self.active: set[str] = set()
        """Instruments the source confirmed (RspSubMarketData answered locally for these)."""
        self.waiting: dict[str, list[Callable[[RspInfo | None], None]]] = {}
        self.releasing: dict[str, float] = {}
        """Instrument -> when it is released (its last subscriber left; grace period)."""
        self.sessions: set[Control] = set()
        self.link_up = False
        self.link_detail = "starting"
        self.link_changed = trio.Event()
        self._release_due = trio.Event()
        self.frames_published = 0
        self.pull: Callable[[], object] = _nothing
        """Takes what the source holds now into the hub, synchronously (the shared
        upstream's ``pump_once``); client senders call it between their writes."""

    # --- ticks ----------------------------------------------------------------------------
    def publish(self, instrument: str, frame: TickFrame) -> None:
        """One tick for every subscriber of ``instrument`` (never blocks)."""
        self.latest[instrument] = frame
        self.frames_published += 1
        subs = self.subscribers.get(instrument)
        if subs:
            for sub in subs:
                sub.offer(instrument, frame)

    # --- subscriptions --------------------------------------------------------------------
    def subscribe(
        self,
        sub: Subscriber,
        instruments: Iterable[str],
        answer: Callable[[str, RspInfo | None], None],
    ) -> None:
        """Add references; ``answer(instrument, info)`` is called once per instrument, at once
        for instruments already delivered, else when the source confirms (then the session
        sends the latest frame, ``latest``)."""
        new: list[str] = []
        for instrument in instruments:
            if instrument in sub.instruments:
                answer(instrument, None)
                continue
            sub.instruments[instrument] = None
            subs = self.subscribers.setdefault(instrument, set())
            subs.add(sub)
            self.releasing.pop(instrument, None)
            if instrument in self.active:
                answer(instrument, None)
                continue
            waiters = self.waiting.setdefault(instrument, [])
            if not waiters and len(subs) == 1:
                new.append(instrument)
            waiters.append(functools.partial(answer, instrument))
        if new and self.source is not None:
            self.source.want(new)

    def unsubscribe(self, sub: Subscriber, instruments: Iterable[str]) -> None:
        now = trio.current_time()
        for instrument in instruments:
            if instrument not in sub.instruments:
                continue  # not subscribed by this client
            del sub.instruments[instrument]
            sub.drop(instrument)
            subs = self.subscribers.get(instrument)
            if subs is None:
                continue
            subs.discard(sub)
            if not subs:
                del self.subscribers[instrument]
                self.releasing[instrument] = now + self.grace_s
                self._release_due.set()

    def confirm(self, instrument: str, info: RspInfo | None) -> None:
        """The source's answer to ``want`` for one instrument."""
        if info is None or info[0] == 0:
            self.active.add(instrument)
        for waiter in self.waiting.pop(instrument, []):
            waiter(info)
        if info is not None and info[0] != 0:
            # refused upstream: the references go, and the source forgets it
            for sub in self.subscribers.pop(instrument, set()):
                sub.instruments.pop(instrument, None)
            if self.source is not None:
                self.source.drop([instrument])

    def fail_waiting(self, info: RspInfo) -> None:
        """The link went down: answers in flight will not come (the references stay and are
        re-subscribed with the union once the link is back)."""
        waiting, self.waiting = self.waiting, {}
        for waiters in waiting.values():
            for waiter in waiters:
                waiter(info)

    async def run_releases(self) -> None:
        """Release instruments whose grace period ended (runs for the hub's lifetime)."""
        while True:
            if not self.releasing:
                self._release_due = trio.Event()
                await self._release_due.wait()
                continue
            now = trio.current_time()
            due = [i for i, t in self.releasing.items() if t <= now]
            if due:
                for instrument in due:
                    del self.releasing[instrument]
                    self.active.discard(instrument)
                    self.latest.pop(instrument, None)
                if self.source is not None:
                    self.source.drop(due)
                log.info("event=md_released instruments=%d", len(due))
                continue
            with trio.move_on_at(min(self.releasing.values())):
                self._release_due = trio.Event()
                await self._release_due.wait()

    def leave(self, sub: Subscriber) -> None:
        """A client went away: drop all its references."""
        self.unsubscribe(sub, list(sub.instruments))

    # --- link state -----------------------------------------------------------------------
    def set_link(self, up: bool, detail: str) -> None:
        """The source's link went up or down: every session is told (``on_link``)."""
        changed = up != self.link_up
        self.link_up, self.link_detail = up, detail
        if changed:
            event, self.link_changed = self.link_changed, trio.Event()
            event.set()
            for session in list(self.sessions):
                session.on_link()

    def broadcast(self, frame: dict[str, Any]) -> None:
        text = codec.dumps(frame)
        for session in list(self.sessions):
            session.tell(text)
