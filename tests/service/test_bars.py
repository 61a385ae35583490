"""The GetBars extension message end-to-end on the md socket (simulator)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import trio

from tests.conftest import replace
from webctp.config import Config
from webctp.service import ServiceInfo, run_service

from .client import connect
from .test_md import instruments, md_login


@pytest.fixture
async def service(nursery: trio.Nursery, cfg: Config) -> ServiceInfo:
    info: ServiceInfo = await nursery.start(run_service, cfg)
    return info


def answer_to(rid: int) -> Callable[[dict[str, Any]], bool]:
    return lambda f: f.get("RequestID") == rid


async def test_bars_after_ticks_with_generated_history(service: ServiceInfo) -> None:
    (inst,) = await instruments(service.ws_port, "SHFE", 1)
    async with connect(service.ws_port, "/md/") as c:
        await c.send({"MsgType": "GetBars", "InstrumentID": inst, "RequestID": 2})
        f = await c.expect(lambda f: f.get("RequestID") == 2)
        assert f["RspInfo"]["ErrorID"] == -401
        await md_login(c)
        await c.send({"MsgType": "GetBars", "InstrumentID": inst, "RequestID": 3})
        f = await c.expect("Bars")
        assert f["RequestID"] == 3 and f["IsLast"] is True and f["RspInfo"] is None
        assert f["Bars"] == {"InstrumentID": inst, "Period": "1m", "Bars": []}  # no ticks yet
        await c.send({"MsgType": "SubscribeMarketData", "InstrumentID": [inst], "RequestID": 4})
        with trio.fail_after(10):
            tick = (await c.expect("RtnDepthMarketData"))["DepthMarketData"]
        for rid, period in enumerate(("1m", "5m", "1h", "1d"), start=10):
            await c.send(
                {"MsgType": "GetBars", "InstrumentID": inst, "Period": period, "RequestID": rid}
            )
            f = await c.expect(answer_to(rid))
            assert f["MsgType"] == "Bars", f
            bars = f["Bars"]["Bars"]
            assert bars, period
            times = [b[0] for b in bars]
            assert times == sorted(times) and len(set(times)) == len(times)
            assert all(b[3] <= min(b[1], b[4]) and max(b[1], b[4]) <= b[2] for b in bars)
            if period == "1d":
                assert len(bars) > 100  # the simulator's earlier days
            elif period == "1m":
                assert bars[-1][4] == tick["LastPrice"] or len(bars) > 1
        await c.send(
            {
                "MsgType": "GetBars",
                "InstrumentID": inst,
                "Period": "1m",
                "Count": 2,
                "RequestID": 20,
            }
        )
        f = await c.expect(lambda f: f.get("RequestID") == 20)
        assert len(f["Bars"]["Bars"]) == 2
        for rid, bad in enumerate(("7m", ["1m"], {"p": 1}), start=21):
            await c.send(
                {"MsgType": "GetBars", "InstrumentID": inst, "Period": bad, "RequestID": rid}
            )
            f = await c.expect(answer_to(rid))
            assert f["RspInfo"]["ErrorID"] == -400 and "Period" in f["Detail"]
        # the session is still fine after bad requests
        await c.send({"MsgType": "GetBars", "InstrumentID": inst, "Count": 1, "RequestID": 30})
        f = await c.expect(answer_to(30))
        assert f["MsgType"] == "Bars" and len(f["Bars"]["Bars"]) == 1


async def bars_of(port: int, inst: str, rid: int) -> list[list[float]]:
    async with connect(port, "/md/") as c:
        await md_login(c)
        await c.send({"MsgType": "GetBars", "InstrumentID": inst, "RequestID": rid})
        f = await c.expect(answer_to(rid))
        assert f["MsgType"] == "Bars", f
        bars: list[list[float]] = f["Bars"]["Bars"]
        return bars


async def test_bars_survive_a_restart(cfg: Config, tmp_path: Path) -> None:
    cfg = replace(cfg, md={"bars_path": str(tmp_path / "bars.sqlite3")})
    async with trio.open_nursery() as nursery:
        info: ServiceInfo = await nursery.start(run_service, cfg)
        (inst,) = await instruments(info.ws_port, "SHFE", 1)
        async with connect(info.ws_port, "/md/") as c:
            await md_login(c)
            await c.send({"MsgType": "SubscribeMarketData", "InstrumentID": [inst], "RequestID": 4})
            with trio.fail_after(10):
                await c.expect("RtnDepthMarketData")
        before = await bars_of(info.ws_port, inst, 5)
        assert before
        nursery.cancel_scope.cancel()  # the service stops: the bars are written
    async with trio.open_nursery() as nursery:
        info = await nursery.start(run_service, cfg)
        after = await bars_of(info.ws_port, inst, 6)  # no tick of it in this run yet
        # the minute that was still open may have grown before the stop; the rest is equal
        assert after[:-1] == before[:-1] and after[-1][0] == before[-1][0]
        nursery.cancel_scope.cancel()


async def test_a_broken_bar_file_leaves_bars_in_memory(
    cfg: Config, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "bars.sqlite3"
    path.write_bytes(b"this is not an SQLite database" * 100)
    cfg = replace(cfg, md={"bars_path": str(path)})
    async with trio.open_nursery() as nursery:
        info: ServiceInfo = await nursery.start(run_service, cfg)
        (inst,) = await instruments(info.ws_port, "SHFE", 1)
        assert await bars_of(info.ws_port, inst, 5) == []  # served all the same
        nursery.cancel_scope.cancel()
    assert "event=bars_store_failed" in caplog.text and "action=open" in caplog.text
