"""Accounts, positions and the money arithmetic, exactly as market-facts.md §4 describes CTP's.

Notation (market-facts §4.6): q lots, m multiplier, r$ margin ratio by money, rV margin by
volume, P a price.

- margin(P, q)  = P × q × m × r$ + q × rV
- fee(P, q, k)  = P × q × m × ratio_k  (by money)  or  q × ratio_k  (by volume),
  k ∈ open / close / close_today; every charge is rounded to the fen (0.01 CNY).
- PositionCost  = Σ lots × basis × m, basis = open price for today's lots and the previous
  settlement price for older lots (re-based at every settlement).
- UseMargin     = PositionCost × r$ + Position × rV
- PositionProfit (long) = mark × Position × m − PositionCost; short: the negative.
- CloseProfit(ByDate) = Σ closed lots dir × (close price − basis) × m;
  ByTrade uses the original open price instead of the basis.
- Balance   = PreBalance + Deposit − Withdraw + CloseProfit + PositionProfit − Commission
- Available = Balance − CurrMargin − FrozenMargin − FrozenCommission (− floating profit per the
  broker's Algorithm)

Positions are kept as lots (one ``Detail`` per opening trade, first-in-first-out) plus per-row
day counters; InvestorPosition rows are derived from them on demand.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from ._instruments import Instrument

LONG, SHORT = "2", "3"
TODAY, HISTORY = "1", "2"


def money(x: float) -> float:
    """Round an amount to the fen, as CTP reports charges."""
    return round(x + 0.0, 2)


def margin_for(inst: Instrument, price: float, lots: int) -> float:
    p = inst.product
    return price * lots * p.multiplier * p.margin + lots * p.margin_per_lot


def fee_for(inst: Instrument, price: float, lots: int, kind: str) -> float:
    fee = inst.product.fee
    rate = fee.rate(kind)
    if fee.by == "money":
        return price * lots * inst.multiplier * rate
    return lots * rate


@dataclass
class Detail:
    """The lots still open from one opening trade (InvestorPositionDetail)."""

    instrument_id: str
    direction: str  # of the opening trade: '0' buy (long) / '1' sell (short)
    hedge: str
    open_date: str
    trade_id: str
    open_price: float
    volume: int
    basis: float  # open price today; last settlement price after a settlement
    last_settlement: float
    close_volume: int = 0
    close_amount: float = 0.0
    close_profit_by_date: float = 0.0
    close_profit_by_trade: float = 0.0

    @property
    def posi_direction(self) -> str:
        return LONG if self.direction == "0" else SHORT


@dataclass
class RowStats:
    """Day counters of one InvestorPosition row (instrument, direction, hedge, date)."""

    yd_position: int = 0
    open_volume: int = 0
    close_volume: int = 0
    open_amount: float = 0.0
    close_amount: float = 0.0
    commission: float = 0.0
    close_profit_by_date: float = 0.0
    close_profit_by_trade: float = 0.0
    pre_margin: float = 0.0
    frozen: int = 0  # lots frozen by working close orders


RowKey = tuple[str, str, str, str]
"""(InstrumentID, PosiDirection, HedgeFlag, PositionDate)."""


@dataclass
class Account:
    """One investor: credentials, yesterday's settled funds, positions."""

    user_id: str
    password: str
    pre_balance: float
    deposit: float = 0.0
    withdraw: float = 0.0
    pre_margin: float = 0.0
    open_date: str = ""
    confirm_day: str = ""
    confirm_date: str = ""
    confirm_time: str = ""
    details: list[Detail] = field(default_factory=list)
    rows: dict[RowKey, RowStats] = field(default_factory=dict)

    # ---------------------------------------------------------------- persistence

    def funds_doc(self) -> dict[str, Any]:
        return {
            "password": self.password,
            "pre_balance": self.pre_balance,
            "deposit": self.deposit,
            "withdraw": self.withdraw,
            "pre_margin": self.pre_margin,
            "open_date": self.open_date,
            "confirm_day": self.confirm_day,
            "confirm_date": self.confirm_date,
            "confirm_time": self.confirm_time,
        }

    def positions_doc(self) -> dict[str, Any]:
        return {
            "details": [asdict(d) for d in self.details],
            "rows": [[list(k), asdict(v)] for k, v in self.rows.items()],
        }

    @classmethod
    def from_docs(cls, user_id: str, funds: dict[str, Any], pos: dict[str, Any]) -> Account:
        acc = cls(user_id=user_id, **funds)
        acc.details = [Detail(**d) for d in pos.get("details", [])]
        acc.rows = {(k[0], k[1], k[2], k[3]): RowStats(**v) for k, v in pos.get("rows", [])}
        return acc

    # ---------------------------------------------------------------- lots

    def row(self, key: RowKey) -> RowStats:
        stats = self.rows.get(key)
        if stats is None:
            stats = self.rows[key] = RowStats()
        return stats

    def lots(
        self, instrument_id: str, posi_direction: str, hedge: str, today: str, which: str
    ) -> list[Detail]:
        """Open lots, FIFO; ``which`` is 'today', 'history' or 'all'."""
        direction = "0" if posi_direction == LONG else "1"
        out = []
        for d in self.details:
            if d.instrument_id != instrument_id or d.direction != direction or d.hedge != hedge:
                continue
            if d.volume <= 0:
                continue
            is_today = d.open_date == today
            if which == "all" or (which == "today") == is_today:
                out.append(d)
        return out

    def volume(
        self, instrument_id: str, posi_direction: str, hedge: str, today: str, which: str
    ) -> int:
        return sum(d.volume for d in self.lots(instrument_id, posi_direction, hedge, today, which))


def row_date(split: bool, is_today: bool) -> str:
    """PositionDate of a lot's row: SHFE/INE keep today and history apart; others use '1'."""
    if not split:
        return TODAY
    return TODAY if is_today else HISTORY
