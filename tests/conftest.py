"""Shared fixtures: a configuration on loopback port 0 with a temporary simulator database."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

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
