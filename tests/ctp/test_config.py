"""config.simnow.toml is a valid configuration for the real backend (it is only read here:
nothing connects to SimNow)."""

from __future__ import annotations

import pytest

from webctp.config import load_config

from .conftest import ROOT

pytestmark = pytest.mark.ctp


def test_simnow_config_loads() -> None:
    cfg = load_config(ROOT / "config.simnow.toml")
    assert cfg.ctp.backend == "ctp"
    assert cfg.ctp.td_fronts == ("tcp://182.254.243.31:40001",)
    assert cfg.ctp.md_fronts == ("tcp://182.254.243.31:40011",)
    assert (cfg.ctp.broker_id, cfg.ctp.app_id, cfg.ctp.auth_code) == (
        "9999",
        "simnow_client_test",
        "0" * 16,
    )
    assert cfg.server.host == "127.0.0.1"
    # Release can block ~5 s while a connect attempt is pending: the bound must allow for it
    assert cfg.ctp.release_timeout_s > 5.0
