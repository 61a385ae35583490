"""Nothing outlives its session: 100 sessions in a row leave threads and fds where they were."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from webctp.client import connect_md, connect_td
from webctp.config import Config
from webctp.service import ServiceInfo, run_service


def thread_names() -> list[str]:
    """The OS name of every thread of this process (C threads included)."""
    names = []
    for tid in os.listdir("/proc/self/task"):
        try:
            names.append(Path(f"/proc/self/task/{tid}/comm").read_text().strip())
        except FileNotFoundError:  # the thread ended meanwhile
            pass
    return names


def counts() -> tuple[int, int]:
    """Threads, not counting Trio's idle cached workers, and open file descriptors.

    ``trio.to_thread`` keeps a finished worker thread for 10 s for the next call, and starts a
    second one when two calls overlap (two sessions releasing their API at once, which a loaded
    machine makes likely). An idle worker holds nothing of a session and carries the OS name
    Trio gives it, ``Trio thread <n>``; a worker still running a job (say an abandoned
    ``Release``) is named after the job and counts.
    """
    threads = [n for n in thread_names() if not n.startswith("Trio thread")]
    return len(threads), len(os.listdir("/proc/self/fd"))


@pytest.fixture
async def service(nursery: trio.Nursery, cfg: Config) -> ServiceInfo:
    info: ServiceInfo = await nursery.start(run_service, cfg)
    return info


async def one_session(port: int, path: str, n: int) -> None:
    url = f"ws://127.0.0.1:{port}{path}"
    if path == "/td/":
        async with connect_td(url) as td:
            assert (await td.login(f"u{n % 7}", "pw"))["UserID"] == f"u{n % 7}"
    else:
        async with connect_md(url) as md:
            assert "TradingDay" in await md.login(f"u{n % 7}", "pw")


async def all_closed(service: ServiceInfo) -> None:
    with trio.fail_after(10):
        while sum(service.ctx.metrics.sessions_active.values()):
            await trio.sleep(0.05)


async def test_hundred_sessions_leave_no_threads_or_fds(service: ServiceInfo) -> None:
    # warm up: trio's worker-thread cache and the simulator's lazy state
    for n in range(3):
        await one_session(service.ws_port, "/td/", n)
        await one_session(service.ws_port, "/md/", n)
    await all_closed(service)
    threads0, fds0 = counts()
    for n in range(100):
        await one_session(service.ws_port, "/td/" if n % 2 else "/md/", n)
    await all_closed(service)
    # A session's socket is closed just after its handler returns: wait (bounded) for the
    # counts to come back rather than for a fixed time; a leak fails the asserts below.
    with trio.move_on_after(10):
        while (counts()[0] > threads0) or (counts()[1] > fds0):
            await trio.sleep(0.05)
    threads1, fds1 = counts()
    assert threads1 <= threads0, (threads0, threads1, thread_names())
    assert fds1 <= fds0, (fds0, fds1)
    assert sum(service.ctx.metrics.sessions_total.values()) == 106
