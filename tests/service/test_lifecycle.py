"""Nothing outlives its session: 100 sessions in a row leave threads and fds where they were."""

from __future__ import annotations

import os

import pytest
import trio

from webctp.config import Config
from webctp.service import ServiceInfo, run_service

from .client import connect


def counts() -> tuple[int, int]:
    return len(os.listdir("/proc/self/task")), len(os.listdir("/proc/self/fd"))


@pytest.fixture
async def service(nursery: trio.Nursery, cfg: Config) -> ServiceInfo:
    info: ServiceInfo = await nursery.start(run_service, cfg)
    return info


async def one_session(port: int, path: str, n: int) -> None:
    async with connect(port, path) as c:
        frame = await c.login(f"u{n % 7}", "pw", rid=n)
        assert frame["MsgType"] == "RspUserLogin", frame


async def test_hundred_sessions_leave_no_threads_or_fds(service: ServiceInfo) -> None:
    # warm up: trio's worker-thread cache and the simulator's lazy state
    for n in range(3):
        await one_session(service.ws_port, "/td/", n)
        await one_session(service.ws_port, "/md/", n)
    await trio.sleep(0.2)
    threads0, fds0 = counts()
    for n in range(100):
        await one_session(service.ws_port, "/td/" if n % 2 else "/md/", n)
    with trio.fail_after(10):
        while service.ctx.metrics.sessions_active["td"] + service.ctx.metrics.sessions_active["md"]:
            await trio.sleep(0.05)
    await trio.sleep(0.2)
    threads1, fds1 = counts()
    assert threads1 <= threads0, (threads0, threads1)
    assert fds1 <= fds0, (fds0, fds1)
    assert (
        service.ctx.metrics.sessions_total["td"] + service.ctx.metrics.sessions_total["md"] == 106
    )
