"""Fixtures of the simulator's binding-level tests (no WebSocket, no trio needed)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from webctp.sim import Exchange

from .sim_helpers import FakeClock, MdClient, TdClient, running, settings


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def exchange(clock: FakeClock) -> Iterator[Exchange]:
    with running(settings(), clock) as ex:
        yield ex


@pytest.fixture
def td(exchange: Exchange, tmp_path: Path) -> Iterator[Callable[..., TdClient]]:
    """Factory of connected trader clients, released at the end of the test."""
    made: list[TdClient] = []

    def make(user: str = "alice", **kw: Any) -> TdClient:
        client = TdClient(exchange, tmp_path / "flow", user=user, **kw)
        made.append(client)
        return client

    yield make
    for c in made:
        c.release()


@pytest.fixture
def md(exchange: Exchange, tmp_path: Path) -> Iterator[Callable[..., MdClient]]:
    made: list[MdClient] = []

    def make(name: str = "md") -> MdClient:
        client = MdClient(exchange, tmp_path / "flow", name)
        made.append(client)
        return client

    yield make
    for c in made:
        c.api.Release()


@pytest.fixture(autouse=True)
def no_thread_leak() -> Iterator[None]:
    before = {t.ident for t in threading.enumerate()}
    yield
    leaked = [t for t in threading.enumerate() if t.ident not in before and t.is_alive()]
    for t in leaked:
        t.join(2.0)
    names = [t.name for t in leaked if t.is_alive()]
    assert not names, f"threads left running: {names}"
