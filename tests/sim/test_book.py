"""One order book per instrument: accounts trade with each other, queue position, order types
by exchange, settlement prices. Every expected number is worked out by hand in a comment.

``set_market(id, P)`` rebuilds the crowd's book: bids P-1 … P-5 and asks P+1 … P+5 (rb tick 1),
five lots each (book_volume_min = max = 5).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from webctp.sim import Exchange

from .sim_helpers import FakeClock, TdClient, running, settings
from .test_orders import IF, RB, SR, M, seq

UNSUPPORTED = "79:已撤单报单被拒绝{}:不被支持的报单类型"


def trades_of(c: TdClient) -> list[tuple[str, float, int]]:
    return [(a[0].Direction, a[0].Price, a[0].Volume) for a in c.rec.of("OnRtnTrade")]


def test_accounts_trade_with_each_other_at_the_resting_price(
    exchange: Exchange, td: Callable[..., TdClient]
) -> None:
    alice, bob = td("alice").ready(), td("bob").ready()
    exchange.set_market(RB, 3100)  # bid 3099, ask 3101
    ref = alice.order(RB, "0", 4, 3100)  # improves the bid: first at 3100, nothing ahead
    alice.wait_order(ref, lambda o: o.OrderStatus == "3")
    mk = exchange.market(RB)
    assert mk["bids"][:2] == [(3100.0, 4), (3099.0, 5)]  # her order is in the published book
    assert mk["asks"][0] == (3101.0, 5)
    volume_before = exchange.market(RB)
    bref = bob.order(RB, "1", 3, 3100)  # meets alice's bid
    assert seq(bob.wait_final(bref)) == [
        ("a", "0", "报单已提交"),
        ("a", "0", "报单已提交"),
        ("0", "0", "全部成交报单已提交"),
    ]
    bob.rec.wait_count("OnRtnTrade")
    assert trades_of(bob) == [("1", 3100.0, 3)]
    alice.wait_order(ref, lambda o: o.VolumeTraded == 3)
    alice.rec.wait_count("OnRtnTrade")
    # the resting side: "not traded" again, then part traded and the trade at its own price
    assert seq(alice.orders_for(ref)) == [
        ("a", "0", "报单已提交"),
        ("3", "3", "未成交"),
        ("3", "3", "未成交"),
        ("1", "3", "部分成交"),
    ]
    assert trades_of(alice) == [("0", 3100.0, 3)]
    assert exchange.market(RB)["bids"][0] == (3100.0, 1)
    assert volume_before["last"] == 3100.0 and exchange.last_price(RB) == 3100.0
    # bob sells 2 at 3099: alice's last lot at 3100 first (better price), then the crowd
    bref = bob.order(RB, "1", 2, 3099)
    bob.wait_final(bref)
    bob.rec.wait_count("OnRtnTrade", 3)
    assert trades_of(bob)[1:] == [("1", 3100.0, 1), ("1", 3099.0, 1)]
    assert alice.wait_final(ref)[-1].OrderStatus == "0"
    (alice_long,) = alice.positions(RB)
    (bob_short,) = bob.positions(RB)
    assert (alice_long.PosiDirection, alice_long.Position) == ("2", 4)
    assert (bob_short.PosiDirection, bob_short.Position) == ("3", 5)


def test_queue_position_and_fills_bounded_by_traded_volume(
    exchange: Exchange, td: Callable[..., TdClient]
) -> None:
    c = td().ready()
    exchange.set_market(RB, 3100)
    ref = c.order(RB, "0", 10, 3099)  # joins the crowd's 5 lots at 3099: 5 ahead
    c.wait_order(ref, lambda o: o.OrderStatus == "3")
    assert exchange.market(RB)["bids"][0] == (3099.0, 15)
    assert exchange.market_trade(RB, 3099, 3) == 3099.0  # 3 of the 5 ahead
    assert c.rec.of("OnRtnTrade") == []
    exchange.market_trade(RB, 3099, 4)  # the last 2 ahead, then 2 for us
    orders = c.wait_order(ref, lambda o: o.VolumeTraded == 2)
    assert trades_of(c) == [("0", 3099.0, 2)]
    # a resting order's first fill repeats the not-traded return before it
    assert [(o.OrderStatus, o.VolumeTraded) for o in orders] == [
        ("a", 0),
        ("3", 0),
        ("3", 0),
        ("1", 2),
    ]
    # the market trades below us: nothing is ahead any more, but only 6 lots traded
    assert exchange.market_trade(RB, 3097, 6) == 3099.0  # it stops at our remaining 2 lots
    c.wait_order(ref, lambda o: o.VolumeTraded == 8)
    assert trades_of(c) == [("0", 3099.0, 2), ("0", 3099.0, 6)]
    assert exchange.last_price(RB) == 3099.0


def test_a_big_passive_order_fills_only_what_trades(
    exchange: Exchange, td: Callable[..., TdClient]
) -> None:
    c = td().ready()
    exchange.set_market(RB, 3100)
    ref = c.order(RB, "0", 200, 3100)  # a new best bid: nothing ahead
    c.wait_order(ref, lambda o: o.OrderStatus == "3")
    exchange.market_trade(RB, 3100, 110)  # the rest of the market trades 110 lots there
    orders = c.wait_order(ref, lambda o: o.VolumeTraded == 110)
    assert (orders[-1].OrderStatus, orders[-1].VolumeTotal) == ("1", 90)
    assert trades_of(c) == [("0", 3100.0, 110)]
    price, volume = exchange.market(RB)["bids"][0]
    assert price == 3100.0 and volume in (90, 95)  # the crowd may requote 5 lots behind it


def test_market_steps_feed_the_queue(exchange: Exchange, td: Callable[..., TdClient]) -> None:
    """The random walk's own trades go through the book too: a resting order never fills
    more than the market traded, and the published book never crosses it."""
    c = td().ready()
    exchange.set_market(RB, 3100)
    ref = c.order(RB, "0", 150, 3100)
    c.wait_order(ref, lambda o: o.OrderStatus == "3")
    for _ in range(40):
        exchange.step_market([RB])
    exchange.wait_idle(5.0)
    mk = exchange.market(RB)
    traded = sum(t[2] for t in trades_of(c))
    assert traded <= 150
    (last,) = [o for o in c.orders_for(ref)][-1:]
    assert last.VolumeTraded == traded
    if last.VolumeTotal:  # still resting: no ask at or below it (the book never crosses)
        assert mk["asks"][0][0] > 3100.0
        assert any(p == 3100.0 and v >= last.VolumeTotal for p, v in mk["bids"]) or (
            mk["bids"][-1][0] > 3100.0  # below the five published levels
        )


def test_order_types_each_exchange_refuses(exchange: Exchange, td: Callable[..., TdClient]) -> None:
    c = td().ready()
    exchange.set_market(M, 3000)
    exchange.set_market(IF, 4000)
    exchange.set_market(RB, 3100)
    ref = c.order(M, "0", 1, 0.0, price_type="1", tc="3")  # DCE market order, GFD
    assert seq(c.wait_final(ref)) == [
        ("a", "0", "报单已提交"),
        ("5", "4", UNSUPPORTED.format("DCE")),
    ]
    ref = c.order(IF, "0", 1, 0.0, price_type="1", tc="1")  # CFFEX has no AnyPrice
    assert c.wait_final(ref)[-1].StatusMsg == UNSUPPORTED.format("CFFEX")
    ref = c.order(RB, "0", 1, 3101, tc="3", vc="3")  # GFD with "all volume"
    assert c.wait_final(ref)[-1].StatusMsg == UNSUPPORTED.format("SHFE")
    assert c.rec.of("OnRtnTrade") == []
    acc = c.account()
    assert acc.FrozenMargin == 0 and acc.FrozenCommission == 0
    for bad in (float("inf"), float("nan")):  # a clumsy client: answered, not lost
        c.order(RB, "0", 1, bad)
        (rsp,) = c.rec.wait_rsp("OnRspOrderInsert", c._rid)
        assert rsp[1].ErrorID == 15
    # CFFEX best price (IOC): the best ask, 4000.2, 5 lots there
    ref = c.order(IF, "0", 2, 0.0, price_type="3", tc="1")
    assert c.wait_final(ref)[-1].OrderStatus == "0"
    c.rec.wait_count("OnRtnTrade")
    assert trades_of(c) == [("0", 4000.2, 2)]


def test_czce_off_tick_sell_truncated_and_fak_acknowledged(
    exchange: Exchange, td: Callable[..., TdClient]
) -> None:
    c = td().ready()
    exchange.set_market(SR, 5800)  # bid 5799, ask 5801
    ref = c.order(SR, "1", 1, 5803.5)  # truncated to 5803 (not 5804) and rests
    assert c.wait_order(ref, lambda o: o.OrderStatus == "3")[-1].LimitPrice == 5803.0
    ref = c.order(SR, "0", 8, 5801, tc="1")  # FAK: 5 lots at 5801
    assert seq(c.wait_final(ref)) == [
        ("a", "0", "报单已提交"),
        ("3", "3", "未成交"),
        ("1", "3", "部分成交"),
        ("5", "3", "已撤单"),
    ]


@pytest.fixture
def strict(tmp_path: Path) -> Iterator[Exchange]:
    with running(settings(self_trade="reject", name="strict"), FakeClock()) as ex:
        yield ex


def test_self_trade_setting(
    exchange: Exchange, strict: Exchange, td: Callable[..., TdClient], tmp_path: Path
) -> None:
    c = td().ready()  # default "allow": the exchange matches them
    exchange.set_market(RB, 3100)
    buy = c.order(RB, "0", 2, 3100)
    c.wait_order(buy, lambda o: o.OrderStatus == "3")
    sell = c.order(RB, "1", 2, 3100)
    assert c.wait_final(sell)[-1].OrderStatus == "0"
    assert c.wait_final(buy)[-1].OrderStatus == "0"
    assert sorted(trades_of(c)) == [("0", 3100.0, 2), ("1", 3100.0, 2)]
    s = TdClient(strict, tmp_path / "strict").ready()
    try:
        strict.set_market(RB, 3100)
        buy = s.order(RB, "0", 2, 3100)
        s.wait_order(buy, lambda o: o.OrderStatus == "3")
        s.order(RB, "1", 2, 3099)
        (rsp,) = s.rec.wait_rsp("OnRspOrderInsert", s._rid)
        assert rsp[1].ErrorID == 15 and "自成交" in rsp[1].ErrorMsg
        s.order(RB, "1", 2, 3101)  # not crossing its own bid: fine
        assert s.rec.wait_count("OnRtnOrder", 4)
    finally:
        s.release()


def test_settlement_price_is_volume_weighted(tmp_path: Path) -> None:
    clock = FakeClock(datetime(2025, 11, 20, 10, 0))
    with running(settings(), clock) as ex:
        # rb (SHFE): the whole day. 1 @3100 (set_market), 10 @3100, 30 @3104:
        # (1 × 3100 + 10 × 3100 + 30 × 3104) / 41 = 127212 / 41 = 3102.73 → 3103
        ex.set_market(RB, 3100)
        ex.market_trade(RB, 3100, 10)
        ex.market_trade(RB, 3104, 30)
        # IF (CFFEX): the last hour (14:00-15:00) only. Morning: 1 @4000 and 50 @4010; at
        # 14:30: 1 @4020 (set_market) and 3 @4021.4 → (4020 + 3 × 4021.4) / 4 = 4021.05 →
        # 4021.0 on the 0.2 tick (4021.05 / 0.2 = 20105.25 → 20105)
        ex.set_market(IF, 4000)
        ex.market_trade(IF, 4010, 50)
        clock.now = datetime(2025, 11, 20, 14, 30)
        ex.set_market(IF, 4020)
        ex.market_trade(IF, 4021.4, 3)
        ex.market_trade(RB, 3104, 0)  # the clock moved: nothing traded
        clock.now = datetime(2025, 11, 20, 15, 30)
        ex.settle()
        ids: dict[str, Any] = {RB: 3103.0, IF: 4021.0}
        for iid, price in ids.items():
            assert ex.market(iid)["pre_settlement"] == price, iid


def test_docs_order_type_table_is_the_code_table() -> None:
    from webctp.sim._rules import table_rows

    doc = (Path(__file__).resolve().parents[2] / "docs" / "simulator.md").read_text("utf-8")
    for exchange_id, accepted, close in table_rows():
        assert f"| {exchange_id} | {accepted} | {close} |" in doc


def test_rules_agree_with_the_exchange_catalogue() -> None:
    """products.toml's exchange attributes say the same as the rules table."""
    from webctp.sim._instruments import exchange_infos
    from webctp.sim._rules import CLOSE_FLAGS, CTP_REFUSES_MARKET, LIMIT, ORDER_TYPES

    for exchange_id, info in exchange_infos().items():
        has_market = any(t[0] != LIMIT for t in ORDER_TYPES[exchange_id])
        assert info.market_orders == has_market == (exchange_id not in CTP_REFUSES_MARKET)
        assert info.splits_today == (exchange_id in CLOSE_FLAGS)


def test_docs_book_and_replay_examples_run() -> None:
    """The python examples of docs/simulator.md's book and replay sections, as printed."""
    import contextlib
    import io
    import re

    doc = (Path(__file__).resolve().parents[2] / "docs" / "simulator.md").read_text("utf-8")
    section = doc[doc.index("## The order book") : doc.index("## Differences from a real front")]
    blocks = re.findall(r"```python\n(.*?)```", section, re.S)
    assert len(blocks) == 2
    outputs = []
    for code in blocks:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(compile(code, "simulator.md", "exec"), {})
        outputs.append(out.getvalue().split())
    assert outputs == [["3099.0"], ["8", "3098.0"]]


def test_book_and_queue_survive_a_restart(tmp_path: Path) -> None:
    s = settings(tmp_path)
    with running(s) as ex:
        alice = TdClient(ex, tmp_path / "a1").ready()
        ex.set_market(RB, 3100)
        first = alice.order(RB, "0", 2, 3099)  # behind the crowd's 5 lots at 3099
        second = alice.order(RB, "0", 3, 3099)  # behind those and the first order
        alice.wait_order(second, lambda o: o.OrderStatus == "3")
        ex.market_trade(RB, 3099, 4)  # 4 of the 5 lots ahead of both orders trade
        alice.release()
    with running(s) as ex:
        alice = TdClient(ex, tmp_path / "a2").ready()
        bob = TdClient(ex, tmp_path / "b2", user="bob").ready()
        try:
            # bob sells 6 at 3099. The queue there, as stored: 1 crowd lot, alice's first
            # order (2), her second (3): 1 + 2 + 3 = 6
            ex.set_market(RB, 3100, bid=3099, ask=3101)
            bob.wait_final(bob.order(RB, "1", 6, 3099))
            bob.rec.wait_count("OnRtnTrade", 3)
            assert [(a[0].Price, a[0].Volume) for a in bob.rec.of("OnRtnTrade")] == [
                (3099.0, 1),
                (3099.0, 2),
                (3099.0, 3),
            ]
            trades = alice.rec.wait_count("OnRtnTrade", 2)
            assert [(a[0].Price, a[0].Volume, a[0].OrderRef) for a in trades] == [
                (3099.0, 2, first),
                (3099.0, 3, second),
            ]
        finally:
            alice.release()
            bob.release()


def test_cffex_best_and_five_level_prices(tmp_path: Path) -> None:
    s = settings(name="cffex", book_volume_min=1, book_volume_max=1, starting_balance=1e8)
    with running(s, FakeClock()) as ex:
        c = TdClient(ex, tmp_path / "c").ready()
        try:
            ex.set_market(IF, 4000)  # asks 4000.2 … 4001.0, one lot each (tick 0.2)
            # best price GFD (best-to-limit): 1 lot at the best ask 4000.2, the other rests
            # there as a limit order
            ref = c.order(IF, "0", 2, 0.0, price_type="3", tc="3")
            orders = c.wait_order(ref, lambda o: o.OrderStatus == "1")
            assert (orders[-1].LimitPrice, orders[-1].VolumeTotal) == (4000.2, 1)
            assert ex.market(IF)["bids"][0] == (4000.2, 1)
            # five-level price IOC: the asks left are 4000.4 … 4001.0 plus the new far level
            # 4001.2 (the crowd replaces a level it lost): five levels, 5 of the 7 lots
            ref = c.order(IF, "0", 7, 0.0, price_type="G", tc="1")
            last = c.wait_final(ref)[-1]
            assert (last.OrderStatus, last.VolumeTraded) == ("5", 5)
            trades = c.rec.wait_count("OnRtnTrade", 6)  # 1 of the first order, 5 of this one
            prices = [a[0].Price for a in trades if a[0].OrderRef == ref]
            assert prices == [4000.4, 4000.6, 4000.8, 4001.0, 4001.2]
        finally:
            c.release()
