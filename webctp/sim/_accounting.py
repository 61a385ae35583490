"""Derived figures: InvestorPosition rows and TradingAccount funds, from lots and counters.

Nothing here is stored: every figure is recomputed from the lots (``Detail``), the row
counters, the working orders and the current market, so the queries, the funds check and the
settlement all use one set of formulas (see ``_ledger``'s docstring).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._instruments import Instrument
from ._ledger import HISTORY, LONG, SHORT, TODAY, Account, RowKey, money, row_date
from ._market import DBL_MAX
from ._state import EngineState


@dataclass
class RowFigures:
    """One InvestorPosition row, computed."""

    key: RowKey
    inst: Instrument | None
    position: int
    today_position: int
    yd_position: int
    position_cost: float
    open_cost: float
    use_margin: float
    exchange_margin: float
    position_profit: float
    frozen_margin: float
    frozen_commission: float
    long_frozen: int
    short_frozen: int
    pre_settlement: float
    settlement: float


@dataclass
class Funds:
    pre_balance: float
    deposit: float
    withdraw: float
    pre_margin: float
    close_profit: float
    position_profit: float
    commission: float
    curr_margin: float
    exchange_margin: float
    frozen_margin: float
    frozen_commission: float
    balance: float
    available: float
    withdraw_quota: float


class Accounting(EngineState):
    """Position rows and account funds of an investor."""

    def mark_price(self, instrument_id: str, fallback: float) -> float:
        if instrument_id not in self.markets:
            return fallback
        return self.touch(instrument_id).mark_price()

    def pre_settlement(self, instrument_id: str, fallback: float) -> float:
        st = self.markets.get(instrument_id)
        return st.pre_settlement if st is not None else fallback

    def row_keys(self, acc: Account) -> list[RowKey]:
        """Every row with lots or with activity today, in a stable order."""
        keys: dict[RowKey, None] = {}
        for d in acc.details:
            if d.volume <= 0:
                continue
            inst = self.instruments.get(d.instrument_id)
            split = inst.exchange.splits_today if inst else False
            keys[
                (d.instrument_id, d.posi_direction, d.hedge, row_date(split, self._is_today(d)))
            ] = None
        for key in acc.rows:
            keys[key] = None
        return sorted(keys)

    def _is_today(self, d: Any) -> bool:
        return bool(d.open_date == self.trading_day)

    def row_figures(self, acc: Account, key: RowKey) -> RowFigures:
        iid, posi, hedge, pdate = key
        inst = self.instruments.get(iid)
        split = inst.exchange.splits_today if inst else False
        direction = "0" if posi == LONG else "1"
        lots = [
            d
            for d in acc.details
            if d.instrument_id == iid
            and d.direction == direction
            and d.hedge == hedge
            and d.volume > 0
            and row_date(split, self._is_today(d)) == pdate
        ]
        m = inst.multiplier if inst else 1
        position = sum(d.volume for d in lots)
        today_position = sum(d.volume for d in lots if self._is_today(d))
        cost = sum(d.volume * d.basis * m for d in lots)
        open_cost = sum(d.volume * d.open_price * m for d in lots)
        stats = acc.rows.get(key)
        if inst is not None:
            r_money = inst.product.margin
            r_vol = inst.product.margin_per_lot
            use_margin = money(cost * r_money + position * r_vol)
            exch_margin = money(cost * inst.product.exchange_margin)
            pre_settle = self.pre_settlement(iid, lots[0].last_settlement if lots else 0.0)
            mark = self.mark_price(iid, pre_settle)
        else:  # an instrument no longer listed (expired): keep the books, no market
            use_margin = exch_margin = 0.0
            pre_settle = mark = lots[0].basis if lots else 0.0
        value = mark * position * m
        profit = value - cost if posi == LONG else cost - value
        frozen_margin = frozen_commission = 0.0
        long_frozen = short_frozen = 0
        for o in self.working_orders(acc.user_id):
            if o.instrument_id != iid:
                continue
            if o.offset == "0":
                opens = LONG if o.buy else SHORT
                if (opens, TODAY) == (posi, pdate) and hedge == o.fields["CombHedgeFlag"][:1]:
                    frozen_margin += o.frozen_margin
                    frozen_commission += o.frozen_commission
            else:
                for akey, n in o.close_alloc:
                    if akey == key:
                        frozen_commission += o.frozen_commission
                        if o.buy:
                            long_frozen += n
                        else:
                            short_frozen += n
        return RowFigures(
            key=key,
            inst=inst,
            position=position,
            today_position=today_position,
            yd_position=stats.yd_position if stats else 0,
            position_cost=money(cost),
            open_cost=money(open_cost),
            use_margin=use_margin,
            exchange_margin=exch_margin,
            position_profit=money(profit),
            frozen_margin=money(frozen_margin),
            frozen_commission=money(frozen_commission),
            long_frozen=long_frozen,
            short_frozen=short_frozen,
            pre_settlement=pre_settle,
            settlement=mark,
        )

    def funds(self, acc: Account) -> Funds:
        rows = [self.row_figures(acc, key) for key in self.row_keys(acc)]
        close_profit = sum(s.close_profit_by_date for s in acc.rows.values())
        commission = sum(s.commission for s in acc.rows.values())
        position_profit = sum(r.position_profit for r in rows)
        # large-side margin: per product, only the larger of long and short is charged
        by_product: dict[str, list[float]] = {}
        curr_margin = 0.0
        exch_margin = 0.0
        for r in rows:
            exch_margin += r.exchange_margin
            inst = r.inst
            if (
                inst is not None
                and self.settings.large_side_margin
                and inst.product.max_margin_side == "1"
            ):
                side = by_product.setdefault(inst.product.product_id, [0.0, 0.0])
                side[0 if r.key[1] == LONG else 1] += r.use_margin
            else:
                curr_margin += r.use_margin
        for long_m, short_m in by_product.values():
            curr_margin += max(long_m, short_m)
        frozen_margin = 0.0
        frozen_commission = 0.0
        for o in self.working_orders(acc.user_id):
            frozen_margin += o.frozen_margin
            frozen_commission += o.frozen_commission
        balance = (
            acc.pre_balance
            + acc.deposit
            - acc.withdraw
            + close_profit
            + position_profit
            - commission
        )
        available = balance - curr_margin - frozen_margin - frozen_commission
        algo = self.settings.available_algorithm
        if algo == "2":
            available -= max(position_profit, 0.0)
        elif algo == "3":
            available -= min(position_profit, 0.0)
        elif algo == "4":
            available -= position_profit
        quota = max(
            0.0,
            available
            - (max(position_profit, 0.0) if algo in ("1", "3") else 0.0)
            - max(close_profit, 0.0)
            - self.settings.reserve,
        )
        return Funds(
            pre_balance=money(acc.pre_balance),
            deposit=money(acc.deposit),
            withdraw=money(acc.withdraw),
            pre_margin=money(acc.pre_margin),
            close_profit=money(close_profit),
            position_profit=money(position_profit),
            commission=money(commission),
            curr_margin=money(curr_margin),
            exchange_margin=money(exch_margin),
            frozen_margin=money(frozen_margin),
            frozen_commission=money(frozen_commission),
            balance=money(balance),
            available=money(available),
            withdraw_quota=money(quota),
        )

    def closable(self, acc: Account, inst: Instrument, posi: str, hedge: str, which: str) -> int:
        """Lots that a new close order may still take from the position rows of ``which``."""
        split = inst.exchange.splits_today
        iid = inst.instrument_id
        if not split:
            key = (iid, posi, hedge, TODAY)
            stats = acc.rows.get(key)
            return acc.volume(iid, posi, hedge, self.trading_day, "all") - (
                stats.frozen if stats else 0
            )
        total = 0
        for part, pdate in (("today", TODAY), ("history", HISTORY)):
            if which not in (part, "all"):
                continue
            stats = acc.rows.get((iid, posi, hedge, pdate))
            total += acc.volume(iid, posi, hedge, self.trading_day, part) - (
                stats.frozen if stats else 0
            )
        return total


__all__ = ["DBL_MAX", "Accounting", "Funds", "RowFigures"]
