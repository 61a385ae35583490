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
day counters; InvestorPosition rows are derived from them on demand. A lot closed to zero
leaves ``details`` at once for ``closed`` (only ReqQryInvestorPositionDetail shows it, until
the settlement drops it), so the per-order figures walk the open lots only; the account records
which lots and rows changed since they were last stored (``take_changes``), so a fill writes
those few rows and not the account's whole position history.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._instruments import Instrument
from ._passwords import is_hashed

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
    lot_id: int = 0
    """The account's number for this lot (its storage key; also the FIFO order)."""

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


def row_key_text(key: RowKey) -> str:
    return "|".join(key)


@dataclass
class PositionChanges:
    """What ``Account.take_changes`` hands to the store."""

    rewrite: bool
    """Everything was replaced (a settlement, a migrated account): drop the stored lots and
    rows first."""
    lots: list[Detail]
    rows: list[tuple[RowKey, RowStats]]


@dataclass
class Account:
    """One investor: credentials, yesterday's settled funds, positions."""

    user_id: str
    password_hash: str
    """``_passwords`` form; a clear-text password of an older version until its next login."""
    pre_balance: float
    deposit: float = 0.0
    withdraw: float = 0.0
    pre_margin: float = 0.0
    open_date: str = ""
    confirm_day: str = ""
    confirm_date: str = ""
    confirm_time: str = ""
    details: list[Detail] = field(default_factory=list)
    """Open lots (Volume > 0), oldest first."""
    closed: list[Detail] = field(default_factory=list)
    """Lots closed to zero since the last settlement."""
    rows: dict[RowKey, RowStats] = field(default_factory=dict)
    next_lot_id: int = 1
    _dirty_lots: dict[int, Detail] = field(default_factory=dict, repr=False)
    _dirty_rows: set[RowKey] = field(default_factory=set, repr=False)
    _rewrite: bool = field(default=False, repr=False)

    # ---------------------------------------------------------------- persistence

    def funds_doc(self) -> dict[str, Any]:
        # a clear text not yet replaced by its hash keeps the old key: it is not a hash
        key = "password_hash" if is_hashed(self.password_hash) else "password"
        return {
            key: self.password_hash,
            "pre_balance": self.pre_balance,
            "deposit": self.deposit,
            "withdraw": self.withdraw,
            "pre_margin": self.pre_margin,
            "open_date": self.open_date,
            "confirm_day": self.confirm_day,
            "confirm_date": self.confirm_date,
            "confirm_time": self.confirm_time,
        }

    @classmethod
    def from_docs(
        cls,
        user_id: str,
        funds: dict[str, Any],
        lots: list[dict[str, Any]],
        rows: list[tuple[list[str], dict[str, Any]]],
    ) -> Account:
        data = dict(funds)
        secret = data.pop("password_hash", None)
        legacy = data.pop("password", None)
        acc = cls(user_id=user_id, password_hash=str(secret or legacy or ""), **data)
        acc.set_positions(
            [Detail(**d) for d in lots], {(k[0], k[1], k[2], k[3]): RowStats(**v) for k, v in rows}
        )
        acc._rewrite = False
        return acc

    def set_positions(self, lots: list[Detail], rows: dict[RowKey, RowStats]) -> None:
        """Replace every lot and row (settlement, loading); stored again as a whole."""
        numbered = [d for d in lots if d.lot_id > 0]
        self.next_lot_id = max(self.next_lot_id, max((d.lot_id for d in numbered), default=0) + 1)
        seen: set[int] = set()
        for d in lots:
            if d.lot_id <= 0 or d.lot_id in seen:  # lots of older versions had no number
                d.lot_id = self.next_lot_id
                self.next_lot_id += 1
            seen.add(d.lot_id)
        self.details = [d for d in lots if d.volume > 0]
        self.closed = [d for d in lots if d.volume <= 0]
        self.rows = rows
        self._dirty_lots.clear()
        self._dirty_rows.clear()
        self._rewrite = True

    def mark_rewrite(self) -> None:
        self._rewrite = True

    def take_changes(self) -> PositionChanges | None:
        """Lots and rows changed since the last call (None: nothing)."""
        if self._rewrite:
            changes = PositionChanges(True, self.details + self.closed, list(self.rows.items()))
        elif self._dirty_lots or self._dirty_rows:
            changes = PositionChanges(
                False,
                list(self._dirty_lots.values()),
                [(k, self.rows[k]) for k in self._dirty_rows if k in self.rows],
            )
        else:
            return None
        self._dirty_lots.clear()
        self._dirty_rows.clear()
        self._rewrite = False
        return changes

    def add_lot(self, lot: Detail) -> None:
        lot.lot_id = self.next_lot_id
        self.next_lot_id += 1
        self.details.append(lot)
        self._dirty_lots[lot.lot_id] = lot

    def lot_changed(self, lot: Detail) -> None:
        self._dirty_lots[lot.lot_id] = lot

    def prune_closed(self) -> None:
        """Move lots closed to zero out of ``details`` (call after closing lots)."""
        if any(d.volume <= 0 for d in self.details):
            self.closed.extend(d for d in self.details if d.volume <= 0)
            self.details = [d for d in self.details if d.volume > 0]

    def position_details(self) -> list[Detail]:
        """Open and today's closed lots, in the order they were opened."""
        return sorted(self.details + self.closed, key=lambda d: d.lot_id)

    # ---------------------------------------------------------------- lots

    def row(self, key: RowKey) -> RowStats:
        """The row's counters, for changing them (read-only lookups use ``rows.get``)."""
        stats = self.rows.get(key)
        if stats is None:
            stats = self.rows[key] = RowStats()
        self._dirty_rows.add(key)
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
