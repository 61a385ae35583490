"""Replay mode: the shipped sample tick file drives rb2601; orders match against the replayed
book with queue position. Expected numbers are read off webctp/sim/replay_sample.csv by hand.

Rows used (LastPrice, cumulative Volume, bid1 x vol, bid2 x vol, ask1 x vol, ask2 x vol):

1  09:00:00.000  3100  1000  3100x8  3099x13  3101x6  3102x9
2  09:00:00.500  3100  1006
3  09:00:01.000  3101  1010
4  09:00:01.500  3101  1020
5  09:00:02.000  3100  1023
6  09:00:02.500  3099  1035   (12 lots at 3099)
7  09:00:03.000  3099  1035   (nothing traded)
8  09:00:03.500  3098  1055   (20 lots at 3098)
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from webctp.sim import Exchange, ReplayFileError
from webctp.sim._replay import load, sample_path

from .sim_helpers import FakeClock, MdClient, TdClient, running, settings

RB = "rb2601"


@pytest.fixture
def replay(tmp_path: Path) -> Iterator[Exchange]:
    s = settings(replay_path="sample", replay_speed=0.0, name="replay")
    with running(s, FakeClock()) as ex:
        yield ex


def test_replayed_ticks_and_queue_position(replay: Exchange, tmp_path: Path) -> None:
    md = MdClient(replay, tmp_path / "md")
    md.login()
    md.subscribe(RB)
    assert replay.replay_step(1) == 1
    md.rec.wait(lambda: any(t.UpdateTime == "09:00:00" for t in md.ticks(RB)))
    t = md.ticks(RB)[-1]
    assert (t.LastPrice, t.BidPrice1, t.BidVolume1, t.AskPrice1, t.AskVolume1) == (
        3100.0,
        3100.0,
        8,
        3101.0,
        6,
    )
    assert (t.UpperLimitPrice, t.LowerLimitPrice, t.PreSettlementPrice) == (3317, 2883, 3100)
    alice = TdClient(replay, tmp_path / "a").ready()
    bob = TdClient(replay, tmp_path / "b", user="bob").ready()
    try:
        ref = alice.order(RB, "0", 5, 3099)  # behind the recorded 13 lots at 3099
        alice.wait_order(ref, lambda o: o.OrderStatus == "3")
        # an aggressive order takes the recorded asks: 6 @3101, then 2 @3102
        bref = bob.order(RB, "0", 8, 3102, tc="1")
        bob.wait_final(bref)
        bob.rec.wait_count("OnRtnTrade", 2)
        assert [(a[0].Price, a[0].Volume) for a in bob.rec.of("OnRtnTrade")] == [
            (3101.0, 6),
            (3102.0, 2),
        ]
        assert replay.replay_step(5) == 5  # rows 2-6: 12 lots at 3099 leave 1 ahead of her
        assert alice.rec.of("OnRtnTrade") == []
        assert replay.replay_step(1) == 1  # row 7: nothing traded
        assert replay.replay_step(1) == 1  # row 8: 20 lots at 3098 go through her bid
        orders = alice.wait_final(ref)
        assert orders[-1].OrderStatus == "0"
        trades = alice.rec.wait_count("OnRtnTrade")
        assert [(a[0].Price, a[0].Volume) for a in trades] == [(3099.0, 5)]
        assert replay.last_price(RB) == 3098.0
        assert replay.replay_step(100) == 12  # 20 rows in all
        assert replay.replay_step(1) == 0
    finally:
        alice.release()
        bob.release()
        md.api.Release()


def test_replay_file_errors(tmp_path: Path) -> None:
    rows = load(sample_path())
    assert len(rows) == 20 and rows[0].bids[0] == (3100.0, 8)
    bad = tmp_path / "bad.csv"
    bad.write_text("InstrumentID,LastPrice\nrb2601,3100\n")
    with pytest.raises(ReplayFileError, match="missing column"):
        load(bad)
    bad.write_text("InstrumentID,UpdateTime,LastPrice,Volume\nrb2601,09:00:00,3100,1\nrb,9h,1,1\n")
    with pytest.raises(ReplayFileError, match=":3: "):
        load(bad)
    renamed = load(sample_path(), {"rb2601": "rb2705"})
    assert {r.instrument_id for r in renamed} == {"rb2705"}


def test_replay_at_speed_runs_by_itself(tmp_path: Path) -> None:
    s = settings(replay_path="sample", replay_speed=100.0, name="fast")
    with running(s, FakeClock()) as ex:
        md = MdClient(ex, tmp_path / "md")
        md.login()
        md.subscribe(RB)
        # 20 rows 0.5 s apart at 100x: about 0.1 s; the last row's time arrives
        md.rec.wait(lambda: any(t.UpdateTime == "09:00:09" for t in md.ticks(RB)))
        md.api.Release()
