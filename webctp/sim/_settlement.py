"""Daily settlement: mark to settlement prices, roll positions, write statements, new day.

Follows market-facts.md §4.9: settlement prices are published (the day's last price), working
orders lapse, every investor's equity at settlement becomes tomorrow's PreBalance, positions
are re-based to the settlement price (today's lots become yesterday's), expired contracts are
removed, a statement is stored for ReqQrySettlementInfo, and the day's confirmation no longer
counts (the next day's orders need a new ReqSettlementInfoConfirm).
"""

from __future__ import annotations

from ._calendar import parse_ymd, ymd
from ._ledger import HISTORY, TODAY, Account, RowStats, money
from ._market import DBL_MAX
from ._queries import Queries
from ._trading import Trading


class Settlement(Queries, Trading):
    """``settle()`` and the statement text."""

    def open_day(self, day: str, carry: dict[str, tuple[float, float, float]]) -> None:
        raise NotImplementedError  # provided by the engine

    def settle(self, new_day: str | None = None) -> str:
        """Settle the current trading day and open the next; returns the new trading day."""
        old_day = self.trading_day
        if new_day is None:
            new_day = ymd(self.cal.next_business_day(parse_ymd(old_day)))
        # 1. settlement prices (volume-weighted, by exchange: _rules.SETTLEMENT_LAST_HOUR)
        carry: dict[str, tuple[float, float, float]] = {}
        for iid in self.markets:
            st = self.touch(iid)
            self.book_market_fills(iid)
            st.settlement = st.settlement_price()
            st.close = st.last
            carry[iid] = (st.settlement, st.close, st.open_interest)
        # 2. working orders lapse with the day (they are not carried into the new day)
        for order in self.orders:
            if not order.is_final:
                order.frozen_margin = order.frozen_commission = 0.0
                order.close_alloc = []
        # 3. accounts: statement at settlement prices, then roll
        for acc in self.accounts.values():
            funds = self.funds(acc)
            text = self.statement_text(acc, old_day)
            self.store.put_statement(acc.user_id, old_day, text)
            acc.pre_balance = funds.balance
            acc.pre_margin = funds.curr_margin
            acc.deposit = 0.0
            acc.withdraw = 0.0
            self._roll_positions(acc, old_day)
            self.mark_dirty(acc.user_id)
        # 4. the next day
        self.settlement_id += 1
        self.open_day(new_day, carry)
        return new_day

    def _roll_positions(self, acc: Account, old_day: str) -> None:
        """Re-base lots to the settlement price; they become yesterday's; drop expired ones."""
        kept = []
        for d in acc.details:
            if d.volume <= 0:
                continue
            inst = self.instruments.get(d.instrument_id)
            if inst is None or inst.expire_date <= old_day:
                continue  # expired: its value is already in the balance (marked to settlement)
            st = self.markets.get(d.instrument_id)
            settle = st.settlement if st is not None and st.settlement != DBL_MAX else d.basis
            d.basis = settle
            d.last_settlement = settle
            d.close_volume = 0
            d.close_amount = 0.0
            d.close_profit_by_date = 0.0
            d.close_profit_by_trade = 0.0
            kept.append(d)
        rows: dict[tuple[str, str, str, str], RowStats] = {}
        for d in kept:
            inst = self.instruments[d.instrument_id]
            split = inst.exchange.splits_today
            key = (d.instrument_id, d.posi_direction, d.hedge, HISTORY if split else TODAY)
            stats = rows.setdefault(key, RowStats())
            stats.yd_position += d.volume
            m = inst.multiplier
            stats.pre_margin = money(
                stats.pre_margin
                + d.basis * d.volume * m * inst.product.margin
                + d.volume * inst.product.margin_per_lot
            )
        acc.set_positions(kept, rows)  # the day's closed lots go

    # ---------------------------------------------------------------- statement

    def statement_text(self, acc: Account, day: str) -> str:
        """A settlement statement laid out like SimNow's (market-facts §4.3)."""
        f = self.funds(acc)
        risk = f.curr_margin / f.balance * 100 if f.balance else 0.0
        lines = [
            f"{'':30}{self.settings.system_name} 模拟结算单 Settlement Statement",
            f"客户号 Client ID：{acc.user_id:<20}客户名称 Client Name：{acc.user_id}",
            f"日期 Date：{day}",
            "",
            f"{'':20}资金状况  币种：人民币  Account Summary  Currency：CNY",
            "-" * 100,
            f"期初结存 Balance b/f：{f.pre_balance:>18.2f}  "
            f"基础保证金 Initial Margin：{self.settings.reserve:>18.2f}",
            f"出 入 金 Deposit/Withdrawal：{f.deposit - f.withdraw:>11.2f}  "
            f"期末结存 Balance c/f：{f.balance:>24.2f}",
            f"平仓盈亏 Realized P/L：{f.close_profit:>17.2f}  质 押 金 Pledge Amount：{0.0:>22.2f}",
            f"持仓盯市盈亏 MTM P/L：{f.position_profit:>18.2f}  "
            f"客户权益 Client Equity：{f.balance:>21.2f}",
            f"手 续 费 Commission：{f.commission:>19.2f}  "
            f"保证金占用 Margin Occupied：{f.curr_margin:>17.2f}",
            f"可用资金 Fund Avail.：{f.available:>18.2f}  风 险 度 Risk Degree：{risk:>22.2f}%",
            "",
            f"{'':20}成交记录 Transaction Record",
            "-" * 100,
            "|成交日期| 交易所 |   品种   |   合约   |买/卖|投/保|  成交价  | 手数 "
            "|   成交额   |开平|",
        ]
        for user, t in self.trades:
            if user != acc.user_id:
                continue
            inst = self.instruments.get(t["InstrumentID"])
            m = inst.multiplier if inst else 1
            lines.append(
                f"|{t['TradeDate']}|{t['ExchangeID']:^8}|"
                f"{(inst.product.product_id if inst else ''):^10}|{t['InstrumentID']:^10}|"
                f"{'买' if t['Direction'] == '0' else '卖':^4}|{'投':^4}|{t['Price']:>10.3f}|"
                f"{t['Volume']:>6}|{t['Price'] * t['Volume'] * m:>12.2f}|"
                f"{'开' if t['OffsetFlag'] == '0' else '平':^3}|"
            )
        lines += [
            "",
            f"{'':20}持仓汇总 Positions",
            "-" * 100,
            "|   品种   |   合约   |买持| 买均价 |卖持| 卖均价 | 昨结算 | 今结算 "
            "|持仓盯市盈亏|保证金占用|",
        ]
        summary: dict[str, list[float]] = {}
        for d in acc.details:
            if d.volume <= 0:
                continue
            s = summary.setdefault(d.instrument_id, [0, 0.0, 0, 0.0])
            if d.direction == "0":
                s[0] += d.volume
                s[1] += d.open_price * d.volume
            else:
                s[2] += d.volume
                s[3] += d.open_price * d.volume
        rows = {key: self.row_figures(acc, key) for key in self.row_keys(acc)}
        for iid, (bl, bamt, sl, samt) in sorted(summary.items()):
            inst = self.instruments.get(iid)
            st = self.markets.get(iid)
            profit = sum(r.position_profit for k, r in rows.items() if k[0] == iid)
            margin = sum(r.use_margin for k, r in rows.items() if k[0] == iid)
            lines.append(
                f"|{(inst.product.product_id if inst else ''):^10}|{iid:^10}|{int(bl):>4}|"
                f"{(bamt / bl if bl else 0):>8.2f}|{int(sl):>4}|{(samt / sl if sl else 0):>8.2f}|"
                f"{(st.pre_settlement if st else 0):>8.2f}|{(st.mark_price() if st else 0):>8.2f}|"
                f"{profit:>12.2f}|{margin:>10.2f}|"
            )
        lines.append("")
        return "\n".join(lines)
