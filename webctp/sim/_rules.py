"""Which order types each exchange accepts: one table, read by the matching and the docs.

An order type is (OrderPriceType, TimeCondition, VolumeCondition). CTP itself only checks the
fields (ErrorID 15 for values it does not know, and SimNow's 15 for market orders on
SHFE/INE); a combination the exchange does not support reaches the exchange and comes back as
OnRtnOrder status '5', OrderSubmitStatus '4', StatusMsg
``79:已撤单报单被拒绝<EXCH>:不被支持的报单类型`` (market-facts §5, openctp-ctp-python#28).
docs/simulator.md "Order types by exchange" prints the same table.
"""

from __future__ import annotations

LIMIT, ANY, BEST, FIVE = "2", "1", "3", "G"
IOC, GFD = "1", "3"
AV, MV, CV = "1", "2", "3"

_LIMIT_TYPES = frozenset(
    {
        (LIMIT, GFD, AV),  # limit order
        (LIMIT, IOC, AV),  # FAK
        (LIMIT, IOC, MV),  # FAK with a minimum volume
        (LIMIT, IOC, CV),  # FOK
    }
)

ORDER_TYPES: dict[str, frozenset[tuple[str, str, str]]] = {
    "SHFE": _LIMIT_TYPES,
    "INE": _LIMIT_TYPES,
    # market orders: IOC, any volume or all of it; never GFD
    "DCE": _LIMIT_TYPES | {(ANY, IOC, AV), (ANY, IOC, CV)},
    "GFEX": _LIMIT_TYPES | {(ANY, IOC, AV), (ANY, IOC, CV)},
    # market orders, also GFD (the remainder is cancelled at once all the same)
    "CZCE": _LIMIT_TYPES | {(ANY, IOC, AV), (ANY, IOC, CV), (ANY, GFD, AV), (ANY, GFD, CV)},
    # no AnyPrice: best price (IOC, or GFD = best-to-limit) and five-level price (IOC, or GFD:
    # the remainder rests at the last fill price)
    "CFFEX": _LIMIT_TYPES
    | {(BEST, IOC, AV), (BEST, IOC, CV), (BEST, GFD, AV), (FIVE, IOC, AV), (FIVE, IOC, CV)}
    | {(FIVE, GFD, AV)},
}

CTP_REFUSES_MARKET = frozenset({"SHFE", "INE"})
"""Exchanges without market orders, where the front itself answers ErrorID 15 (SimNow)."""

_SPLIT = (
    "CloseToday: today's lots (else 50); Close and CloseYesterday: older lots (else 51, or 30"
    " beyond the whole position)"
)
CLOSE_FLAGS = {"SHFE": _SPLIT, "INE": _SPLIT}
"""Offset flags where the exchange tells today's lots from older ones (the position has two
rows, ``products.toml`` position_date_type '1'). Elsewhere Close, CloseToday and
CloseYesterday all close any lots (more than held: 30), trades report Close, and today's lots
go first where closing them is cheaper."""
CLOSE_ANY = "Close, CloseToday, CloseYesterday: any lots (else 30); trades say Close"

SETTLEMENT_LAST_HOUR = frozenset({"CFFEX"})
"""Settlement price = volume-weighted average of the last trading hour (CFFEX); elsewhere of
the whole day (SHFE, INE, DCE, CZCE, GFEX). Rounded to the tick; no trade: the last price."""

UNSUPPORTED = "不被支持的报单类型"
UNSUPPORTED_CODE = "79:"


def supported(
    exchange_id: str, price_type: str, time_condition: str, volume_condition: str
) -> bool:
    return (price_type, time_condition, volume_condition) in ORDER_TYPES.get(exchange_id, ())


def table_rows() -> list[tuple[str, str, str]]:
    """(exchange, accepted types, close flags) in words, for the docs."""
    names = {
        (LIMIT, GFD, AV): "limit GFD",
        (LIMIT, IOC, AV): "FAK",
        (LIMIT, IOC, MV): "FAK + MinVolume",
        (LIMIT, IOC, CV): "FOK",
        (ANY, IOC, AV): "AnyPrice IOC",
        (ANY, IOC, CV): "AnyPrice IOC+CV",
        (ANY, GFD, AV): "AnyPrice GFD",
        (ANY, GFD, CV): "AnyPrice GFD+CV",
        (BEST, IOC, AV): "BestPrice IOC",
        (BEST, IOC, CV): "BestPrice IOC+CV",
        (BEST, GFD, AV): "BestPrice GFD",
        (FIVE, IOC, AV): "FiveLevelPrice IOC",
        (FIVE, IOC, CV): "FiveLevelPrice IOC+CV",
        (FIVE, GFD, AV): "FiveLevelPrice GFD",
    }
    order = list(names)
    return [
        (ex, ", ".join(names[t] for t in order if t in types), CLOSE_FLAGS.get(ex, CLOSE_ANY))
        for ex, types in ORDER_TYPES.items()
    ]
