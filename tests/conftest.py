"""Shared fixtures: a configuration on loopback port 0 with a temporary simulator database;
every frame a test's ``webctp.client`` sends or receives is checked against docs/schemas."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.schema_check import check_frame, frame_errors
from webctp.client._conn import Connection
from webctp.config import Config, CtpConfig, LimitsConfig, ServerConfig
from webctp.sim import SimSettings

_names = iter(range(1, 1_000_000))


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    """A service configuration: ports chosen by the OS, fast limits, a private exchange."""
    name = f"t{next(_names)}"
    return Config(
        server=ServerConfig(host="127.0.0.1", port=0, ws_port=0),
        ctp=CtpConfig(
            td_fronts=(f"sim://{name}",),
            md_fronts=(f"sim://{name}",),
            flow_dir=str(tmp_path / "flow"),
            login_timeout_s=5.0,
            request_timeout_s=10.0,
            relogin_backoff_s=0.2,
        ),
        limits=LimitsConfig(queries_per_second=20.0, orders_per_second=20.0),
        sim=SimSettings(
            name=name,
            db_path=str(tmp_path / "sim.sqlite3"),
            tick_interval_s=0.1,
            query_per_second=50,
            orders_per_second=50,
            seed=7,
        ),
    )


def replace(cfg: Config, **sections: object) -> Config:
    """``replace(cfg, limits={"max_queued_requests": 2})``: change fields of sections."""
    changes = {
        name: dataclasses.replace(getattr(cfg, name), **values)  # type: ignore[arg-type]
        for name, values in sections.items()
    }
    return dataclasses.replace(cfg, **changes)


@pytest.fixture(autouse=True)
def schema_checked(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Every frame a ``webctp.client`` of a test sends or receives is checked against
    docs/schemas: a received frame must follow its schema; a sent frame that does not (tests
    send some bad input on purpose) must be answered with -400, so the schemas and the service
    agree on what is valid. (Raw frames are checked by ``tests/service/client.py``.)"""
    dispatch = Connection.dispatch
    send = Connection.send
    invalid: dict[int, list[str]] = {}  # RequestID -> why the schema refused the frame sent

    def checked_dispatch(self: Connection, frame: dict[str, Any]) -> None:
        check_frame(frame)
        rid = frame.get("RequestID")
        if isinstance(rid, int) and rid in invalid:
            info = frame.get("RspInfo") or {}
            assert info.get("ErrorID") == -400, (invalid[rid], frame)
            del invalid[rid]
        dispatch(self, frame)

    async def checked_send(self: Connection, frame: dict[str, Any]) -> None:
        errors = frame_errors(frame)
        if errors:
            invalid[frame["RequestID"]] = errors
        await send(self, frame)

    monkeypatch.setattr(Connection, "dispatch", checked_dispatch)
    monkeypatch.setattr(Connection, "send", checked_send)
    yield
