"""An order inside the simulated front: its CThostFtdcOrderField values plus the bookkeeping.

The visible part (``fields``) is exactly what OnRtnOrder/ReqQryOrder show; the rest records what
the order froze, so that fills and cancels release exactly what was frozen for those lots
(market-facts §4.6: keep the freeze per order, never recompute it at a later price).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._ledger import RowKey
from ._structs import CThostFtdcOrderField

FINAL_STATUSES = frozenset("0245")
"""AllTraded, PartTradedNotQueueing, NoTradeNotQueueing, Canceled (SFIT FAQ Q40)."""


@dataclass(eq=False)
class OrderRec:
    """One order of the current trading day."""

    user_id: str
    fields: dict[str, Any]
    buy: bool
    offset: str  # '0' open, '1' close, '3' close today, '4' close yesterday
    limit: float | None  # None: market order
    ioc: bool
    margin_per_lot: float = 0.0
    fee_per_lot: float = 0.0
    frozen_margin: float = 0.0
    frozen_commission: float = 0.0
    close_alloc: list[tuple[RowKey, int]] = field(default_factory=list)
    seq: int = 0  # BrokerOrderSeq, also the time priority among resting orders
    queue_ahead: int = 0
    """Market participants' lots in front of it at its price while it rests (see _book)."""
    book_left: int = field(default=0, compare=False)
    """Lots still in the book (the book's count; the fields catch up as fills are booked)."""

    @property
    def instrument_id(self) -> str:
        return str(self.fields["InstrumentID"])

    @property
    def status(self) -> str:
        return str(self.fields["OrderStatus"])

    @property
    def is_final(self) -> bool:
        return self.status in FINAL_STATUSES

    @property
    def remaining(self) -> int:
        return int(self.fields["VolumeTotal"])

    @property
    def key(self) -> tuple[int, int, str]:
        return (int(self.fields["FrontID"]), int(self.fields["SessionID"]), self.fields["OrderRef"])

    def snapshot(self) -> CThostFtdcOrderField:
        return CThostFtdcOrderField._sim_make(**self.fields)

    def doc(self) -> dict[str, Any]:
        return {
            "fields": self.fields,
            "buy": self.buy,
            "offset": self.offset,
            "limit": self.limit,
            "ioc": self.ioc,
            "margin_per_lot": self.margin_per_lot,
            "fee_per_lot": self.fee_per_lot,
            "frozen_margin": self.frozen_margin,
            "frozen_commission": self.frozen_commission,
            "close_alloc": [[list(k), n] for k, n in self.close_alloc],
            "seq": self.seq,
            "queue_ahead": self.queue_ahead,
        }

    @classmethod
    def from_doc(cls, user_id: str, doc: dict[str, Any]) -> OrderRec:
        data = dict(doc)
        alloc = [((k[0], k[1], k[2], k[3]), int(n)) for k, n in data.pop("close_alloc")]
        return cls(user_id=user_id, close_alloc=alloc, **data)
