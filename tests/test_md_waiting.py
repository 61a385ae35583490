"""The md session's table of (un)subscriptions awaiting CTP's answer is bounded."""

from __future__ import annotations

from typing import Any

import orjson

from tests.conftest import replace
from webctp._context import ServiceContext
from webctp._md import MdSession
from webctp._session import State
from webctp.backend import load_backend
from webctp.config import Config


class SilentFront:
    """An md API that accepts every subscription and never answers."""

    def __init__(self) -> None:
        self.calls = 0

    def SubscribeMarketData(self, ids: list[bytes], n: int) -> int:
        self.calls += 1
        return 0


class Frames:
    def __init__(self) -> None:
        self.sent: list[dict[str, Any]] = []

    async def send(self, text: str) -> None:
        self.sent.append(orjson.loads(text))

    def send_nowait(self, text: str) -> None:
        self.sent.append(orjson.loads(text))


async def test_waiting_subscriptions_are_capped_and_failed_on_link_down(cfg: Config) -> None:
    cfg = replace(cfg, limits={"md_max_instruments": 2})  # at most 8 awaiting answers
    out = Frames()

    async def no_ticks(frames: list[str]) -> bool:
        return True

    session = MdSession(ServiceContext(cfg, load_backend(cfg.ctp)), out, send_ticks=no_ticks)
    session.api = SilentFront()
    session.state = State.READY
    for rid in range(1, 6):
        msg = {"MsgType": "SubscribeMarketData", "InstrumentID": ["a", "b"], "RequestID": rid}
        await session.handle(orjson.dumps(msg).decode())
    errors = [f for f in out.sent if f.get("RspInfo") and f["RspInfo"]["ErrorID"] == -429]
    assert [f["RequestID"] for f in errors] == [5]
    assert session.waiting_count == 8
    await session.on_link_down("link down (test)")
    assert session.waiting_count == 0 and not session.waiting
    down = [
        f["RequestID"] for f in out.sent if f.get("RspInfo") and f["RspInfo"]["ErrorID"] == -503
    ]
    assert down == [1, 2, 3, 4]
