"""The bar book (webctp/_bars.py): ticks -> OHLCV bars per timeframe, without sockets."""

from __future__ import annotations

from typing import Any

import pytest

from webctp._bars import (
    MAX_COUNT,
    Bar,
    BarBook,
    aggregate,
    day_stamp,
    parse_request,
    response,
    tick_stamp,
)

DAY = "20261127"
_T0 = day_stamp(DAY)
assert _T0 is not None
T0: int = _T0
NINE = T0 + 9 * 3600  # 09:00:00 on the trading day, naive epoch seconds


def hms(stamp: int) -> str:
    s = stamp % 86400
    return f"{s // 3600:02d}:{s % 3600 // 60:02d}:{s % 60:02d}"


def tick(at: int, price: float, volume: int, **more: Any) -> dict[str, Any]:
    return {
        "InstrumentID": "rb2601",
        "LastPrice": price,
        "Volume": volume,
        "UpdateTime": hms(at),
        "TradingDay": DAY,
        **more,
    }


def feed(book: BarBook, *ticks: tuple[int, float, int]) -> None:
    for at, price, volume in ticks:
        book.add_tick(tick(at, price, volume), at + 1)


def rows(bars: list[Bar]) -> list[list[float | int]]:
    return [b.row() for b in bars]


def test_minute_bars_from_ticks() -> None:
    book = BarBook()
    feed(
        book,
        (NINE + 1, 3500, 100),  # first tick: the day's earlier volume is not ours
        (NINE + 20, 3504, 103),
        (NINE + 40, 3498, 110),
        (NINE + 59, 3501, 111),
        (NINE + 61, 3502, 115),
    )
    assert rows(book.bars("rb2601", "1m")) == [
        [NINE, 3500, 3504, 3498, 3501, 11],
        [NINE + 60, 3502, 3502, 3502, 3502, 4],
    ]


def test_gap_has_no_bar_and_late_or_repeated_ticks_change_nothing() -> None:
    book = BarBook()
    feed(book, (NINE, 10.0, 5), (NINE + 300, 11.0, 9))
    feed(book, (NINE + 300, 11.0, 9))  # a second session delivers the same tick
    feed(book, (NINE + 120, 99.0, 7))  # an older tick arriving late
    assert rows(book.bars("rb2601", "1m")) == [
        [NINE, 10.0, 10.0, 10.0, 10.0, 0],
        [NINE + 300, 11.0, 11.0, 11.0, 11.0, 4],
    ]


def test_aggregated_timeframes_align_to_their_period() -> None:
    book = BarBook()
    feed(book, *[(NINE + 60 * i, 100.0 + i, 10 * i) for i in range(12)])
    five = rows(book.bars("rb2601", "5m"))
    assert [r[0] for r in five] == [NINE, NINE + 300, NINE + 600]
    assert five[0] == [NINE, 100.0, 104.0, 100.0, 104.0, 40]
    assert five[1][5] == 50 and five[2][4] == 111.0
    hour = rows(book.bars("rb2601", "1h"))
    assert hour == [[NINE, 100.0, 111.0, 100.0, 111.0, 110]]
    assert rows(book.bars("rb2601", "5m", 1)) == [five[-1]]


def test_day_bar_uses_the_exchange_fields() -> None:
    book = BarBook()
    book.add_tick(
        tick(NINE + 5, 3500, 1200, OpenPrice=3480.0, HighestPrice=3520.0, LowestPrice=3470.0),
        NINE + 5,
    )
    book.add_tick(tick(NINE + 9, 3530, 1250, OpenPrice=3480.0), NINE + 9)
    assert rows(book.bars("rb2601", "1d")) == [[T0, 3480.0, 3530, 3470.0, 3530, 1250]]


def test_new_trading_day_starts_new_volume() -> None:
    book = BarBook()
    feed(book, (NINE, 10.0, 500), (NINE + 60, 10.0, 520))
    nxt = "20261130"
    start = day_stamp(nxt)
    assert start is not None
    at = start + 9 * 3600
    book.add_tick({**tick(at, 12.0, 3), "TradingDay": nxt}, at)
    minutes = rows(book.bars("rb2601", "1m"))
    assert minutes[-1] == [at, 12.0, 12.0, 12.0, 12.0, 3]
    assert [r[0] for r in rows(book.bars("rb2601", "1d"))] == [T0, start]


def test_memory_is_bounded() -> None:
    book = BarBook(max_instruments=2, max_minutes=3, max_days=1)
    for i in range(10):
        book.add_tick(tick(NINE + 60 * i, 1.0 + i, i), NINE + 60 * i)
    assert [b.time for b in book.bars("rb2601", "1m")] == [NINE + 420, NINE + 480, NINE + 540]
    book.add_tick({**tick(NINE, 1.0, 1), "InstrumentID": "a"}, NINE)
    book.add_tick({**tick(NINE + 600, 1.0, 1)}, NINE + 600)  # rb2601 used again
    book.add_tick({**tick(NINE, 1.0, 1), "InstrumentID": "b"}, NINE)
    assert len(book) == 2 and "a" not in book and "rb2601" in book and "b" in book


def test_ticks_without_price_or_time_are_ignored() -> None:
    book = BarBook()
    book.add_tick(tick(NINE, 0.0, 1), NINE)  # the gateway sends 0 for an unset price
    book.add_tick({**tick(NINE, 5.0, 1), "UpdateTime": "9:00"}, NINE)
    book.add_tick({**tick(NINE, 5.0, 1), "InstrumentID": ""}, NINE)
    assert len(book) == 0
    assert book.bars("rb2601", "1m") == []


def test_tick_stamp_around_midnight() -> None:
    midnight = T0 + 86400
    assert tick_stamp("23:59:59", midnight + 1) == midnight - 1
    assert tick_stamp("00:00:01", midnight - 1) == midnight + 1
    assert tick_stamp("21:00:00", T0 + 21 * 3600 + 5) == T0 + 21 * 3600
    assert tick_stamp("25:00:00", T0) is None
    assert tick_stamp("", T0) is None
    assert day_stamp("2026113") is None and day_stamp("20261332") is None


def test_history_goes_in_front_once() -> None:
    calls: list[tuple[str, int, float, str]] = []

    def history(
        instrument: str, first_minute: int, first_price: float, trading_day: str
    ) -> tuple[list[Bar], list[Bar]]:
        calls.append((instrument, first_minute, first_price, trading_day))
        minutes = [Bar(NINE - 120, 90.0, 95.0, 89.0, 94.0, 7), Bar(NINE - 60, 94, 99, 93, 98, 8)]
        return minutes, [Bar(T0 - 86400, 80.0, 90.0, 70.0, 85.0, 1000)]

    book = BarBook(history=history)
    feed(book, (NINE + 3, 100.0, 50), (NINE + 30, 101.0, 52))
    assert calls == []  # not on the tick path: asked when the bars are first read
    assert [b.time for b in book.bars("rb2601", "1m")] == [NINE - 120, NINE - 60, NINE]
    assert calls == [("rb2601", NINE, 100.0, DAY)]
    feed(book, (NINE + 40, 102.0, 53))
    days = rows(book.bars("rb2601", "1d"))
    assert len(calls) == 1
    # today's bar covers the generated minutes and the live ticks; volume 15 + 3 live lots
    assert days == [[T0 - 86400, 80.0, 90.0, 70.0, 85.0, 1000], [T0, 90.0, 102.0, 89.0, 102.0, 18]]


def test_history_read_late_gives_the_same_bars() -> None:
    """History asked for after several ticks gives the bars it gave when asked at once."""

    def history(
        instrument: str, first_minute: int, first_price: float, trading_day: str
    ) -> tuple[list[Bar], list[Bar]]:
        minutes = [Bar(NINE - 120, 90.0, 95.0, 89.0, 94.0, 7), Bar(NINE - 60, 94, 99, 93, 98, 8)]
        return minutes, [Bar(T0 - 86400, 80.0, 90.0, 70.0, 85.0, 1000)]

    ticks = ((NINE + 3, 100.0, 50), (NINE + 30, 88.0, 52), (NINE + 130, 103.0, 60))
    early, late = BarBook(history=history), BarBook(history=history)
    feed(early, ticks[0])
    early.bars("rb2601", "1m")  # history at the first tick
    feed(early, *ticks[1:])
    feed(late, *ticks)
    for period in ("1m", "5m", "1d"):
        assert rows(late.bars("rb2601", period)) == rows(early.bars("rb2601", period))


def test_aggregate_keeps_order() -> None:
    bars = [Bar(NINE + 60 * i, 1.0, 2.0, 0.5, 1.5, 1) for i in range(4)]
    assert [b.time for b in aggregate(bars, 120)] == [NINE, NINE + 120]


@pytest.mark.parametrize(
    ("body", "fault"),
    [
        ({}, "InstrumentID"),
        ({"InstrumentID": ["rb2601"]}, "InstrumentID"),
        ({"InstrumentID": "x" * 81}, "InstrumentID"),
        ({"InstrumentID": "rb2601", "Period": "2m"}, "Period"),
        ({"InstrumentID": "rb2601", "Period": ["1m"]}, "Period"),
        ({"InstrumentID": "rb2601", "Period": {"a": 1}}, "Period"),
        ({"InstrumentID": "rb2601", "Period": None}, "Period"),
        ({"InstrumentID": "rb2601", "Count": 0}, "Count"),
        ({"InstrumentID": "rb2601", "Count": MAX_COUNT + 1}, "Count"),
        ({"InstrumentID": "rb2601", "Count": True}, "Count"),
        ({"InstrumentID": "rb2601", "Count": 1.5}, "Count"),
    ],
)
def test_bad_requests(body: dict[str, Any], fault: str) -> None:
    with pytest.raises(ValueError, match=fault):
        parse_request(body)


def test_request_defaults_and_response() -> None:
    assert parse_request({"InstrumentID": "rb2601"}) == ("rb2601", "1m", 500)
    frame = response(5, "rb2601", "5m", [Bar(NINE, 1.0, 2.0, 0.5, 1.5, 3)])
    assert frame == {
        "MsgType": "Bars",
        "RspInfo": None,
        "RequestID": 5,
        "IsLast": True,
        "Bars": {"InstrumentID": "rb2601", "Period": "5m", "Bars": [[NINE, 1.0, 2.0, 0.5, 1.5, 3]]},
    }
