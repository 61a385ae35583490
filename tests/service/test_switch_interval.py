"""``server.switch_interval_ms``: the service sets the interpreter's GIL switch interval when
it starts (0 leaves it as it is)."""

from __future__ import annotations

import sys
from collections.abc import Iterator

import pytest
import trio

from tests.conftest import replace
from webctp.config import Config
from webctp.service import run_service


@pytest.fixture
def restored() -> Iterator[None]:
    before = sys.getswitchinterval()
    yield
    sys.setswitchinterval(before)


@pytest.mark.usefixtures("restored")
@pytest.mark.parametrize(("ms", "expected_s"), [(0.5, 0.0005), (2.0, 0.002), (0.0, 0.0123)])
async def test_the_service_sets_the_switch_interval(
    cfg: Config, ms: float, expected_s: float
) -> None:
    sys.setswitchinterval(0.0123)  # what the process had before the service
    async with trio.open_nursery() as nursery:
        await nursery.start(run_service, replace(cfg, server={"switch_interval_ms": ms}))
        assert sys.getswitchinterval() == pytest.approx(expected_s)
        nursery.cancel_scope.cancel()


def test_the_shipped_default_is_half_a_millisecond(cfg: Config) -> None:
    assert cfg.server.switch_interval_ms == 0.5
