"""examples/bot.py runs as a user would run it, against the service on the simulator."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import trio

from webctp.config import Config
from webctp.service import ServiceInfo, run_service

BOT = Path(__file__).resolve().parents[2] / "examples" / "bot.py"


async def test_the_example_bot_trades_and_cancels(nursery: trio.Nursery, cfg: Config) -> None:
    service: ServiceInfo = await nursery.start(run_service, cfg)
    with trio.fail_after(60):
        result = await trio.run_process(
            [sys.executable, str(BOT), f"ws://127.0.0.1:{service.ws_port}"],
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    out = result.stdout.decode()
    assert result.returncode == 0, result.stderr.decode()
    assert re.search(r"^rb\d{4}: last [\d.]+ bid [\d.]+ ask [\d.]+$", out, re.M), out
    assert re.search(r"^order \d+: status 5 \(5 = cancelled\)$", out, re.M), out
    assert re.search(r"^filled: bought 1 rb\d{4} @ [\d.]+$", out, re.M), out
    assert re.search(r"^filled: sold 1 rb\d{4} @ [\d.]+$", out, re.M), out
