"""The market-data (md) client: login, subscriptions, ticks, bars."""

from __future__ import annotations

from collections.abc import Iterable
from types import TracebackType
from typing import Any

import trio

from ._conn import Connection, Frame, payload_of
from ._errors import ClientError

ALIAS_SUFFIX = ".front"


class Subscription:
    """Ticks of some instruments: ``async for tick in md.subscribe([...])``.

    The subscription is sent on the first iteration (or on ``async with``); ``async with``
    also unsubscribes on exit, as does :meth:`aclose`. Ticks are ``DepthMarketData`` dicts.

    Overflow: one tick per instrument waits; a newer tick of an instrument replaces the
    unread one (as webctp itself conflates), so a slow reader gets each instrument's latest
    tick and the memory held is bounded by the number of instruments.

    An alias (``rb.front``, resolved by webctp under the simulator) delivers the ticks of the
    contract it stands for; ``resolved`` maps it to that contract (from webctp's answer).
    """

    def __init__(self, md: MdClient, instruments: list[str]) -> None:
        self._md = md
        self.instruments = instruments
        self.resolved: dict[str, str] = {}
        """alias → the contract webctp subscribed for it (ticks name the contract)."""
        self._latest: dict[str, Frame] = {}
        self._wake = trio.Event()
        self._started = False
        self._closed = False
        self.conflated = 0
        """Ticks replaced by a newer one of the same instrument before they were read."""

    def put(self, tick: Frame) -> None:
        instrument = str(tick.get("InstrumentID", ""))
        if self._latest.pop(instrument, None) is not None:
            self.conflated += 1
        self._latest[instrument] = tick
        self._wake.set()

    def close_wake(self) -> None:
        self._wake.set()

    async def start(self) -> Subscription:
        """Subscribe (waits for webctp's acknowledgement of every instrument)."""
        if not self._started:
            self._started = True
            await self._md._subscribe(self)
        return self

    async def aclose(self) -> None:
        """Unsubscribe (the instruments no other subscription of this client wants)."""
        if self._started and not self._closed:
            self._closed = True
            self._wake.set()
            await self._md._unsubscribe(self)
        self._closed = True

    async def __aenter__(self) -> Subscription:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._md.closed is None:
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await self.aclose()

    def __aiter__(self) -> Subscription:
        return self

    async def __anext__(self) -> Frame:
        await self.start()
        while not self._latest:
            if self._closed:
                raise StopAsyncIteration
            if self._md.closed is not None:
                raise self._md.closed
            await self._wake.wait()
            self._wake = trio.Event()
        instrument = next(iter(self._latest))
        return self._latest.pop(instrument)


class MdClient(Connection):
    """A market-data session. Create it with :func:`webctp.client.connect_md`."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._subs: dict[str, set[Subscription]] = {}
        self._alias_requests = 0
        """Subscriptions naming an alias that await their answers: till then the latest tick
        of each contract is kept in ``_recent`` (the alias's contract is only known from
        the answer, and its first tick may come first)."""
        self._recent: dict[str, Frame] = {}
        """Overflow: one tick per contract, replaced by the next; webctp only sends ticks
        of contracts this session subscribed, so it is bounded by its subscriptions."""

    async def login(self, user_id: str = "", password: str = "") -> Frame:
        """Log in (most fronts, and the simulator, accept empty credentials)."""
        rows = await self.call(
            {
                "MsgType": "ReqUserLogin",
                "ReqUserLogin": {"UserID": user_id, "Password": password},
            },
        )
        self.session = payload_of(rows[-1]) or {}
        return self.session

    def subscribe(self, instruments: Iterable[str]) -> Subscription:
        """Ticks of these instruments (see :class:`Subscription`)."""
        ids = list(dict.fromkeys(instruments))
        if not ids:
            raise ValueError("subscribe needs at least one instrument")
        return Subscription(self, ids)

    async def _subscribe(self, sub: Subscription) -> None:
        for instrument in sub.instruments:  # before the request: ticks may precede the acks
            self._subs.setdefault(instrument, set()).add(sub)
        aliases = any(i.endswith(ALIAS_SUFFIX) for i in sub.instruments)
        self._alias_requests += aliases
        try:
            rows = await self.call(
                {"MsgType": "SubscribeMarketData", "InstrumentID": sub.instruments},
                count=len(sub.instruments),
            )
            if aliases:  # one answer per item, in order: each names the contract
                for requested, row in zip(sub.instruments, rows):
                    contract = str((payload_of(row) or {}).get("InstrumentID", ""))
                    if requested.endswith(ALIAS_SUFFIX) and contract:
                        sub.resolved[requested] = contract
                        self._subs.setdefault(contract, set()).add(sub)
                        tick = self._recent.get(contract)
                        if tick is not None and contract not in sub.instruments:
                            sub.put(tick)
        except BaseException:
            self._drop(sub)
            raise
        finally:
            self._alias_requests -= aliases
            if not self._alias_requests:
                self._recent.clear()

    def _drop(self, sub: Subscription) -> list[str]:
        """Forget ``sub``; the instruments no other subscription wants (a resolved alias by
        its contract only: both names are the same subscription at webctp)."""
        unused = []
        for instrument in sub.instruments:
            keys = (
                [instrument, sub.resolved[instrument]]
                if instrument in sub.resolved
                else [instrument]
            )
            for key in keys:
                subs = self._subs.get(key, set())
                subs.discard(sub)
                if not subs:
                    self._subs.pop(key, None)
            if keys[-1] not in self._subs:
                unused.append(keys[-1])
        return list(dict.fromkeys(unused))

    async def _unsubscribe(self, sub: Subscription) -> None:
        unused = self._drop(sub)
        if unused and self.closed is None:
            await self.call(
                {"MsgType": "UnSubscribeMarketData", "InstrumentID": unused}, count=len(unused)
            )

    async def bars(
        self, instrument_id: str, period: str = "1m", count: int = 500
    ) -> list[list[float]]:
        """``GetBars`` (webctp's extension): ``[time, open, high, low, close, volume]`` rows."""
        rows = await self.call(
            {"MsgType": "GetBars", "InstrumentID": instrument_id, "Period": period, "Count": count}
        )
        body = payload_of(rows[-1])
        if body is None:
            raise ClientError("GetBars answered without bars")
        bars: list[list[float]] = body.get("Bars", [])
        return bars

    def on_closed(self) -> None:
        for subs in self._subs.values():
            for sub in subs:
                sub.close_wake()

    def on_frame(self, frame: Frame) -> bool:
        if frame.get("MsgType") != "RtnDepthMarketData":
            return False
        tick = frame.get("DepthMarketData") or {}
        instrument = str(tick.get("InstrumentID", ""))
        if self._alias_requests:
            self._recent[instrument] = tick
        subs = self._subs.get(instrument)
        if not subs:
            return False
        for sub in subs:
            sub.put(tick)
        return True
