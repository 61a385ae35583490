"""Instrument aliases (``rb.front``) end to end, through webctp.client: the service resolves
them under the simulator, every answer names the contract, and bad aliases are -400s."""

from __future__ import annotations

from datetime import datetime

import pytest
import trio

from tests.conftest import replace
from webctp import _aliases
from webctp.client import CtpError, connect_md, connect_td
from webctp.config import Config
from webctp.protocol.errors import ProtocolError
from webctp.service import ServiceInfo, run_service
from webctp.sim import Exchange, SimSettings, front_month, get_exchange


def test_resolve_is_pure_and_names_the_fault() -> None:
    fronts = {"rb": "rb2612"}.get
    assert _aliases.resolve("rb2701", fronts, "X") == "rb2701"  # not an alias: untouched
    assert _aliases.resolve("rb.front", fronts, "X") == "rb2612"
    with pytest.raises(ProtocolError) as unknown:
        _aliases.resolve("zz.front", fronts, "InputOrder.InstrumentID")
    assert unknown.value.code == -400
    assert unknown.value.detail.startswith("InputOrder.InstrumentID: 'zz.front'")
    with pytest.raises(ProtocolError, match="only the simulator resolves"):
        _aliases.resolve("rb.front", None, "X")
    with pytest.raises(ProtocolError, match="no product ''"):
        _aliases.resolve(".front", fronts, "X")
    ids = ["rb2701", "rb2612"]
    assert _aliases.resolve_ids(ids, None) is ids  # no alias: nothing to resolve or copy
    assert _aliases.resolve_ids(["rb.front", "rb2612", "rb2701"], fronts) == [
        "rb2612",
        "rb2612",
        "rb2701",
    ]
    with pytest.raises(ProtocolError, match=r"^InstrumentID\[1\]: 'zz.front'"):
        _aliases.resolve_ids(["rb2701", "zz.front"], fronts)
    body = {"InstrumentID": "rb2701", "Period": "1m"}
    assert _aliases.resolve_body(body, None) is body
    assert _aliases.resolve_body(body | {"InstrumentID": "rb.front"}, fronts) == {
        "InstrumentID": "rb2612",
        "Period": "1m",
    }
    assert _aliases.resolve_body({"InstrumentID": ["rb.front"]}, fronts) == {
        "InstrumentID": ["rb.front"]  # not GetBars' shape: _bars refuses it
    }
    assert _aliases.for_fronts(None, ["sim://a"]) is None
    both = _aliases.for_fronts(
        lambda front, p: "x1" if front == "sim://b" else None, ["a", "sim://b"]
    )
    assert both is not None and both("x") == "x1"


def test_the_front_month_rolls_with_the_trading_day() -> None:
    """rb2612's last trading day is 2026-12-15: its settlement makes rb2701 the front."""
    exchange = Exchange(
        SimSettings(db_path=":memory:", tick_interval_s=0, products=("rb", "IF"), name="roll"),
        clock=lambda: datetime(2026, 12, 15, 10, 0),
    ).start()
    try:
        assert exchange.front_month("rb") == "rb2612" and exchange.front_month("IF") == "IF2612"
        assert exchange.front_month("cu") is None  # not among the products listed
        assert exchange.settle() == "20261216"
        assert exchange.front_month("rb") == "rb2701" and exchange.front_month("IF") == "IF2612"
        assert front_month("sim://roll", "rb") == "rb2701"
        assert front_month("sim://nothing-runs-here", "rb") is None
    finally:
        exchange.close()


@pytest.mark.parametrize("upstream", ["session", "shared"])
async def test_aliases_resolve_to_the_front_month(
    nursery: trio.Nursery, cfg: Config, upstream: str
) -> None:
    # no market clock: the only ticks are the snapshots sent on subscription, so an aliased
    # subscription gets its first tick however it races with the answer naming the contract
    cfg = replace(cfg, sim={"tick_interval_s": 0.0}, md={"upstream": upstream})
    service: ServiceInfo = await nursery.start(run_service, cfg)
    exchange = get_exchange(cfg.sim.name)
    assert exchange is not None
    rb = min(
        (i for i in exchange.instrument_ids() if i.startswith("rb")),
        key=lambda i: int(i[2:]),
    )
    assert exchange.front_month("rb") == rb and exchange.front_month("zz") is None
    base = f"ws://127.0.0.1:{service.ws_port}"
    with trio.fail_after(30):
        async with connect_td(f"{base}/td/") as td, connect_md(f"{base}/md/") as md:
            await td.login("ali", "pw")
            await md.login()
            (row,) = await td.query("QryInstrument", {"InstrumentID": "rb.front"})
            assert row["InstrumentID"] == rb
            order = await td.insert_order("rb.front", "buy", 1, exchange.last_price(rb) - 20)
            await order.wait_accepted()
            assert order.data is not None and order.data["InstrumentID"] == rb
            await order.cancel()
            with pytest.raises(CtpError) as bad:
                await (await td.insert_order("zz.front", "buy", 1, 1.0)).wait_accepted()
            assert bad.value.error_id == -400
            assert "'zz.front': no product 'zz' is listed" in (bad.value.detail or "")

            async with md.subscribe(["rb.front", "IF.front"]) as ticks:
                seen = {(await ticks.__anext__())["InstrumentID"] for _ in range(2)}
                assert seen == {rb, exchange.front_month("IF")}
                assert ticks.resolved == {"rb.front": rb, "IF.front": exchange.front_month("IF")}
            bars = await md.bars("rb.front")
            assert bars and bars == await md.bars(rb)
            with pytest.raises(CtpError) as bad_md:
                await md.subscribe(["zz.front"]).start()
            assert bad_md.value.error_id == -400 and "InstrumentID[0]" in (
                bad_md.value.detail or ""
            )
            # the unsubscribe of the resolved alias went out by contract: subscribing again works
            async with md.subscribe(["rb.front"]) as again:
                assert (await again.__anext__())["InstrumentID"] == rb
            # an alias listed with its own contract: one answer each, one stream of ticks
            async with md.subscribe(["rb.front", rb]) as both:
                assert (await both.__anext__())["InstrumentID"] == rb
                assert both.resolved == {"rb.front": rb}
            # the contract subscribed first, then its alias by another subscription
            async with md.subscribe([rb]) as plain, md.subscribe(["rb.front"]) as aliased:
                assert (await plain.__anext__())["InstrumentID"] == rb
                assert (await aliased.__anext__())["InstrumentID"] == rb
