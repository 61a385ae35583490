"""ReqQry* handlers: CTP's response structures, honouring the query's filter fields.

Every handler returns the rows; the engine sends one callback per row with IsLast on the
last, or one callback with ``None`` when nothing matches (as CTP does).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ._accounting import DBL_MAX, Accounting
from ._ledger import LONG, Account, money
from ._session import Conn
from ._struct_base import Struct
from ._structs import (
    CThostFtdcBrokerTradingParamsField,
    CThostFtdcExchangeField,
    CThostFtdcExchangeMarginRateField,
    CThostFtdcInstrumentCommissionRateField,
    CThostFtdcInstrumentField,
    CThostFtdcInstrumentMarginRateField,
    CThostFtdcInstrumentOrderCommRateField,
    CThostFtdcInvestorField,
    CThostFtdcInvestorPositionDetailField,
    CThostFtdcInvestorPositionField,
    CThostFtdcOrderField,
    CThostFtdcProductField,
    CThostFtdcQryMaxOrderVolumeField,
    CThostFtdcSettlementInfoConfirmField,
    CThostFtdcSettlementInfoField,
    CThostFtdcTradeField,
    CThostFtdcTradingAccountField,
    CThostFtdcTradingCodeField,
)
from ._trading import client_id

SETTLEMENT_CHUNK_BYTES = 500
"""SettlementInfo.Content capacity; the statement is sent in chunks of at most this size."""


def _match(value: str, wanted: str) -> bool:
    return not wanted or value == wanted


def chunk_text(text: str, size: int) -> list[str]:
    """Split into pieces of at most ``size`` UTF-8 bytes without splitting a character.

    (Real CTP cuts GBK bytes blindly, so a character can straddle two chunks; a str-based
    struct cannot carry half a character, so the simulator cuts at character boundaries.)
    """
    out: list[str] = []
    cur: list[str] = []
    used = 0
    for ch in text:
        n = len(ch.encode("utf-8"))
        if used + n > size:
            out.append("".join(cur))
            cur, used = [], 0
        cur.append(ch)
        used += n
    if cur:
        out.append("".join(cur))
    return out


class Queries(Accounting):
    """One method per supported ReqQry*, each returning the response rows."""

    def query_handlers(self) -> dict[str, Callable[[Conn, Any], list[Struct]]]:
        return {
            "ReqQryInstrument": self.qry_instrument,
            "ReqQryProduct": self.qry_product,
            "ReqQryExchange": self.qry_exchange,
            "ReqQryDepthMarketData": self.qry_depth_market_data,
            "ReqQryTradingAccount": self.qry_trading_account,
            "ReqQryInvestorPosition": self.qry_investor_position,
            "ReqQryInvestorPositionDetail": self.qry_investor_position_detail,
            "ReqQryOrder": self.qry_order,
            "ReqQryTrade": self.qry_trade,
            "ReqQryInstrumentMarginRate": self.qry_margin_rate,
            "ReqQryInstrumentCommissionRate": self.qry_commission_rate,
            "ReqQryInvestor": self.qry_investor,
            "ReqQryTradingCode": self.qry_trading_code,
            "ReqQrySettlementInfo": self.qry_settlement_info,
            "ReqQrySettlementInfoConfirm": self.qry_settlement_info_confirm,
            "ReqQryMaxOrderVolume": self.qry_max_order_volume,
            "ReqQryBrokerTradingParams": self.qry_broker_trading_params,
            "ReqQryExchangeMarginRate": self.qry_exchange_margin_rate,
            "ReqQryInstrumentOrderCommRate": self.qry_order_comm_rate,
            # No options are listed: these answer with CTP's empty result.
            "ReqQryOptionInstrTradeCost": lambda conn, q: [],
            "ReqQryOptionInstrCommRate": lambda conn, q: [],
        }

    # ---------------------------------------------------------------- reference data

    def qry_instrument(self, conn: Conn, q: Any) -> list[Struct]:
        rows: list[Struct] = []
        for inst in self.instruments.values():
            p = inst.product
            if not (
                _match(inst.instrument_id, q.InstrumentID)
                and _match(inst.exchange_id, q.ExchangeID)
                and _match(inst.instrument_id, q.ExchangeInstID)
                and _match(p.product_id, q.ProductID)
            ):
                continue
            rows.append(
                CThostFtdcInstrumentField._sim_make(
                    ExchangeID=inst.exchange_id,
                    InstrumentName=f"{p.name}{inst.instrument_id[len(p.product_id) :]}",
                    ProductClass="1",
                    DeliveryYear=inst.year,
                    DeliveryMonth=inst.month,
                    MaxMarketOrderVolume=p.max_market_volume,
                    MinMarketOrderVolume=1,
                    MaxLimitOrderVolume=p.max_limit_volume,
                    MinLimitOrderVolume=1,
                    VolumeMultiple=p.multiplier,
                    PriceTick=p.tick,
                    CreateDate=inst.open_date,
                    OpenDate=inst.open_date,
                    ExpireDate=inst.expire_date,
                    StartDelivDate=inst.expire_date,
                    EndDelivDate=inst.expire_date,
                    InstLifePhase="1",
                    IsTrading=1,
                    PositionType="2",
                    PositionDateType=inst.exchange.position_date_type,
                    LongMarginRatio=p.margin,
                    ShortMarginRatio=p.margin,
                    MaxMarginSideAlgorithm=p.max_margin_side,
                    StrikePrice=DBL_MAX,
                    OptionsType="",
                    UnderlyingMultiple=1.0,
                    CombinationType="0",
                    InstrumentID=inst.instrument_id,
                    ExchangeInstID=inst.instrument_id,
                    ProductID=p.product_id,
                    UnderlyingInstrID="",
                )
            )
        return rows

    def qry_product(self, conn: Conn, q: Any) -> list[Struct]:
        rows: list[Struct] = []
        for p in self.products.values():
            if not (
                _match(p.product_id, q.ProductID)
                and _match("1", q.ProductClass)
                and _match(p.exchange_id, q.ExchangeID)
            ):
                continue
            rows.append(
                CThostFtdcProductField._sim_make(
                    ProductName=p.name,
                    ExchangeID=p.exchange_id,
                    ProductClass="1",
                    VolumeMultiple=p.multiplier,
                    PriceTick=p.tick,
                    MaxMarketOrderVolume=p.max_market_volume,
                    MinMarketOrderVolume=1,
                    MaxLimitOrderVolume=p.max_limit_volume,
                    MinLimitOrderVolume=1,
                    PositionType="2",
                    PositionDateType=p.exchange.position_date_type,
                    CloseDealType="0",
                    TradeCurrencyID="CNY",
                    MortgageFundUseRange="0",
                    UnderlyingMultiple=1.0,
                    ProductID=p.product_id,
                    ExchangeProductID=p.product_id,
                    OpenLimitControlLevel="0",
                    OrderFreqControlLevel="0",
                )
            )
        return rows

    def qry_exchange(self, conn: Conn, q: Any) -> list[Struct]:
        return [
            CThostFtdcExchangeField._sim_make(
                ExchangeID=ex.exchange_id, ExchangeName=ex.name, ExchangeProperty="0"
            )
            for ex in self.exchange_infos.values()
            if _match(ex.exchange_id, q.ExchangeID)
        ]

    def qry_depth_market_data(self, conn: Conn, q: Any) -> list[Struct]:
        now = self.now()
        rows: list[Struct] = []
        for iid, st in self.markets.items():
            if _match(iid, q.InstrumentID) and _match(st.instrument.exchange_id, q.ExchangeID):
                tick = self.touch(iid).tick(self.trading_day, now)
                object.__setattr__(tick, "ExchangeID", st.instrument.exchange_id)
                rows.append(tick)
        return rows

    def qry_margin_rate(self, conn: Conn, q: Any) -> list[Struct]:
        acc = self.account_of(conn)
        rows: list[Struct] = []
        for inst in self.instruments.values():
            if not (
                _match(inst.instrument_id, q.InstrumentID)
                and _match(inst.exchange_id, q.ExchangeID)
            ):
                continue
            p = inst.product
            rows.append(
                CThostFtdcInstrumentMarginRateField._sim_make(
                    InvestorRange="1",
                    BrokerID=self.settings.broker_id,
                    InvestorID=acc.user_id if acc else "",
                    HedgeFlag=q.HedgeFlag or "1",
                    LongMarginRatioByMoney=p.margin,
                    LongMarginRatioByVolume=p.margin_per_lot,
                    ShortMarginRatioByMoney=p.margin,
                    ShortMarginRatioByVolume=p.margin_per_lot,
                    IsRelative=0,
                    ExchangeID=inst.exchange_id,
                    InstrumentID=inst.instrument_id,
                )
            )
        return rows

    def qry_exchange_margin_rate(self, conn: Conn, q: Any) -> list[Struct]:
        """The exchange's own margin ratios (before the broker's add-on)."""
        rows: list[Struct] = []
        for inst in self.instruments.values():
            if not (
                _match(inst.instrument_id, q.InstrumentID)
                and _match(inst.exchange_id, q.ExchangeID)
            ):
                continue
            ratio = inst.product.exchange_margin
            rows.append(
                CThostFtdcExchangeMarginRateField._sim_make(
                    BrokerID=self.settings.broker_id,
                    HedgeFlag=q.HedgeFlag or "1",
                    LongMarginRatioByMoney=ratio,
                    LongMarginRatioByVolume=0.0,
                    ShortMarginRatioByMoney=ratio,
                    ShortMarginRatioByVolume=0.0,
                    ExchangeID=inst.exchange_id,
                    InstrumentID=inst.instrument_id,
                )
            )
        return rows

    def qry_order_comm_rate(self, conn: Conn, q: Any) -> list[Struct]:
        """Per-order and per-cancel fees: the simulator charges none, and says so per
        instrument (one row for the instrument asked for; CTP needs an InstrumentID here)."""
        acc = self.account_of(conn)
        inst = self.instruments.get(q.InstrumentID) if q.InstrumentID else None
        if inst is None:
            return []
        return [
            CThostFtdcInstrumentOrderCommRateField._sim_make(
                InvestorRange="1",
                BrokerID=self.settings.broker_id,
                InvestorID=acc.user_id if acc else "",
                HedgeFlag="1",
                OrderCommByVolume=0.0,
                OrderActionCommByVolume=0.0,
                ExchangeID=inst.exchange_id,
                InstrumentID=inst.instrument_id,
                OrderCommByTrade=0.0,
                OrderActionCommByTrade=0.0,
            )
        ]

    def qry_commission_rate(self, conn: Conn, q: Any) -> list[Struct]:
        """Product-level records (InstrumentID = product code), as brokers often answer."""
        acc = self.account_of(conn)
        wanted_product = ""
        if q.InstrumentID:
            inst = self.instruments.get(q.InstrumentID)
            if inst is None and q.InstrumentID not in self.products:
                return []
            wanted_product = inst.product.product_id if inst else q.InstrumentID
        rows: list[Struct] = []
        for p in self.products.values():
            if not (_match(p.product_id, wanted_product) and _match(p.exchange_id, q.ExchangeID)):
                continue
            money_mode = p.fee.by == "money"
            rows.append(
                CThostFtdcInstrumentCommissionRateField._sim_make(
                    InvestorRange="1",
                    BrokerID=self.settings.broker_id,
                    InvestorID=acc.user_id if acc else "",
                    OpenRatioByMoney=p.fee.open if money_mode else 0.0,
                    OpenRatioByVolume=0.0 if money_mode else p.fee.open,
                    CloseRatioByMoney=p.fee.close if money_mode else 0.0,
                    CloseRatioByVolume=0.0 if money_mode else p.fee.close,
                    CloseTodayRatioByMoney=p.fee.close_today if money_mode else 0.0,
                    CloseTodayRatioByVolume=0.0 if money_mode else p.fee.close_today,
                    ExchangeID=p.exchange_id,
                    BizType="1",
                    InstrumentID=p.product_id,
                )
            )
        return rows

    # ---------------------------------------------------------------- the investor

    def qry_investor(self, conn: Conn, q: Any) -> list[Struct]:
        acc = self.account_of(conn)
        if acc is None:
            return []
        return [
            CThostFtdcInvestorField._sim_make(
                InvestorID=acc.user_id,
                BrokerID=self.settings.broker_id,
                InvestorGroupID="sim",
                InvestorName=acc.user_id,
                IdentifiedCardType="1",
                IsActive=1,
                OpenDate=acc.open_date,
                CommModelID="",
                MarginModelID="",
                IsOrderFreq="0",
                IsOpenVolLimit="0",
            )
        ]

    def qry_trading_code(self, conn: Conn, q: Any) -> list[Struct]:
        acc = self.account_of(conn)
        if acc is None:
            return []
        return [
            CThostFtdcTradingCodeField._sim_make(
                InvestorID=acc.user_id,
                BrokerID=self.settings.broker_id,
                ExchangeID=ex,
                ClientID=client_id(acc.user_id),
                IsActive=1,
                ClientIDType=q.ClientIDType or "1",
                BizType="1",
            )
            for ex in self.exchange_infos
            if _match(ex, q.ExchangeID)
        ]

    def trading_account(self, acc: Account) -> CThostFtdcTradingAccountField:
        f = self.funds(acc)
        return CThostFtdcTradingAccountField._sim_make(
            BrokerID=self.settings.broker_id,
            AccountID=acc.user_id,
            PreBalance=f.pre_balance,
            PreMargin=f.pre_margin,
            Deposit=f.deposit,
            Withdraw=f.withdraw,
            FrozenMargin=f.frozen_margin,
            FrozenCash=0.0,
            FrozenCommission=f.frozen_commission,
            CurrMargin=f.curr_margin,
            CashIn=0.0,
            Commission=f.commission,
            CloseProfit=f.close_profit,
            PositionProfit=f.position_profit,
            Balance=f.balance,
            Available=f.available,
            WithdrawQuota=f.withdraw_quota,
            Reserve=self.settings.reserve,
            TradingDay=self.trading_day,
            SettlementID=self.settlement_id,
            ExchangeMargin=f.exchange_margin,
            CurrencyID="CNY",
            BizType="1",
        )

    def qry_trading_account(self, conn: Conn, q: Any) -> list[Struct]:
        acc = self.account_of(conn)
        return [self.trading_account(acc)] if acc else []

    def qry_investor_position(self, conn: Conn, q: Any) -> list[Struct]:
        acc = self.account_of(conn)
        if acc is None:
            return []
        rows: list[Struct] = []
        for key in self.row_keys(acc):
            iid, posi, hedge, pdate = key
            r = self.row_figures(acc, key)
            ex = r.inst.exchange_id if r.inst else ""
            if not (_match(iid, q.InstrumentID) and _match(ex, q.ExchangeID)):
                continue
            s = acc.rows.get(key)
            close_profit = s.close_profit_by_date if s else 0.0
            rows.append(
                CThostFtdcInvestorPositionField._sim_make(
                    BrokerID=self.settings.broker_id,
                    InvestorID=acc.user_id,
                    PosiDirection=posi,
                    HedgeFlag=hedge,
                    PositionDate=pdate,
                    YdPosition=r.yd_position,
                    Position=r.position,
                    LongFrozen=r.long_frozen,
                    ShortFrozen=r.short_frozen,
                    OpenVolume=s.open_volume if s else 0,
                    CloseVolume=s.close_volume if s else 0,
                    OpenAmount=money(s.open_amount) if s else 0.0,
                    CloseAmount=money(s.close_amount) if s else 0.0,
                    PositionCost=r.position_cost,
                    PreMargin=s.pre_margin if s else 0.0,
                    UseMargin=r.use_margin,
                    FrozenMargin=r.frozen_margin,
                    FrozenCommission=r.frozen_commission,
                    Commission=s.commission if s else 0.0,
                    CloseProfit=close_profit,
                    PositionProfit=r.position_profit,
                    PreSettlementPrice=r.pre_settlement,
                    SettlementPrice=r.settlement,
                    TradingDay=self.trading_day,
                    SettlementID=self.settlement_id,
                    OpenCost=r.open_cost,
                    ExchangeMargin=r.exchange_margin,
                    CloseProfitByDate=close_profit,
                    CloseProfitByTrade=s.close_profit_by_trade if s else 0.0,
                    TodayPosition=r.today_position,
                    MarginRateByMoney=r.inst.product.margin if r.inst else 0.0,
                    MarginRateByVolume=r.inst.product.margin_per_lot if r.inst else 0.0,
                    ExchangeID=ex,
                    InstrumentID=iid,
                )
            )
        return rows

    def qry_investor_position_detail(self, conn: Conn, q: Any) -> list[Struct]:
        acc = self.account_of(conn)
        if acc is None:
            return []
        rows: list[Struct] = []
        for d in acc.position_details():
            inst = self.instruments.get(d.instrument_id)
            ex = inst.exchange_id if inst else ""
            if not (_match(d.instrument_id, q.InstrumentID) and _match(ex, q.ExchangeID)):
                continue
            if d.volume == 0 and d.close_volume == 0:
                continue
            m = inst.multiplier if inst else 1
            mark = self.mark_price(d.instrument_id, d.basis)
            sign = 1.0 if d.posi_direction == LONG else -1.0
            rate = inst.product.margin if inst else 0.0
            rows.append(
                CThostFtdcInvestorPositionDetailField._sim_make(
                    BrokerID=self.settings.broker_id,
                    InvestorID=acc.user_id,
                    HedgeFlag=d.hedge,
                    Direction=d.direction,
                    OpenDate=d.open_date,
                    TradeID=d.trade_id,
                    Volume=d.volume,
                    OpenPrice=d.open_price,
                    TradingDay=self.trading_day,
                    SettlementID=self.settlement_id,
                    TradeType="0",
                    ExchangeID=ex,
                    CloseProfitByDate=money(d.close_profit_by_date),
                    CloseProfitByTrade=money(d.close_profit_by_trade),
                    PositionProfitByDate=money(sign * (mark - d.basis) * d.volume * m),
                    PositionProfitByTrade=money(sign * (mark - d.open_price) * d.volume * m),
                    Margin=money(d.basis * d.volume * m * rate),
                    ExchMargin=money(
                        d.basis * d.volume * m * (inst.product.exchange_margin if inst else 0)
                    ),
                    MarginRateByMoney=rate,
                    MarginRateByVolume=inst.product.margin_per_lot if inst else 0.0,
                    LastSettlementPrice=d.last_settlement,
                    SettlementPrice=mark,
                    CloseVolume=d.close_volume,
                    CloseAmount=money(d.close_amount),
                    TimeFirstVolume=d.volume,
                    SpecPosiType="#",
                    InstrumentID=d.instrument_id,
                )
            )
        return rows

    def qry_order(self, conn: Conn, q: Any) -> list[Struct]:
        acc = self.account_of(conn)
        if acc is None:
            return []
        rows: list[Struct] = []
        for o in self.user_orders.get(acc.user_id, ()):
            f = o.fields
            if not (
                _match(f["InstrumentID"], q.InstrumentID)
                and _match(f["ExchangeID"], q.ExchangeID)
                and _match(str(f["OrderSysID"]).strip(), q.OrderSysID.strip())
                and (not q.InsertTimeStart or f["InsertTime"] >= q.InsertTimeStart)
                and (not q.InsertTimeEnd or f["InsertTime"] <= q.InsertTimeEnd)
            ):
                continue
            rows.append(CThostFtdcOrderField._sim_make(**f))
        return rows

    def qry_trade(self, conn: Conn, q: Any) -> list[Struct]:
        acc = self.account_of(conn)
        if acc is None:
            return []
        rows: list[Struct] = []
        for user, t in self.trades:
            if user != acc.user_id:
                continue
            if not (
                _match(t["InstrumentID"], q.InstrumentID)
                and _match(t["ExchangeID"], q.ExchangeID)
                and _match(str(t["TradeID"]).strip(), q.TradeID.strip())
                and (not q.TradeTimeStart or t["TradeTime"] >= q.TradeTimeStart)
                and (not q.TradeTimeEnd or t["TradeTime"] <= q.TradeTimeEnd)
            ):
                continue
            rows.append(CThostFtdcTradeField._sim_make(**t))
        return rows

    def qry_settlement_info(self, conn: Conn, q: Any) -> list[Struct]:
        acc = self.account_of(conn)
        if acc is None:
            return []
        found = self.store.statement(acc.user_id, q.TradingDay or None)
        if found is None:
            return []
        day, content = found
        return [
            CThostFtdcSettlementInfoField._sim_make(
                TradingDay=day,
                SettlementID=self.settlement_id,
                BrokerID=self.settings.broker_id,
                InvestorID=acc.user_id,
                SequenceNo=i + 1,
                Content=chunk,
                AccountID=acc.user_id,
                CurrencyID="CNY",
            )
            for i, chunk in enumerate(chunk_text(content, SETTLEMENT_CHUNK_BYTES))
        ]

    def qry_settlement_info_confirm(self, conn: Conn, q: Any) -> list[Struct]:
        acc = self.account_of(conn)
        if acc is None or not acc.confirm_date:
            return []
        return [self.confirm_struct(acc)]

    def confirm_struct(self, acc: Account) -> CThostFtdcSettlementInfoConfirmField:
        return CThostFtdcSettlementInfoConfirmField._sim_make(
            BrokerID=self.settings.broker_id,
            InvestorID=acc.user_id,
            ConfirmDate=acc.confirm_date,
            ConfirmTime=acc.confirm_time,
            SettlementID=self.settlement_id,
            AccountID=acc.user_id,
            CurrencyID="CNY",
        )

    def qry_max_order_volume(self, conn: Conn, q: Any) -> list[Struct]:
        """Openable lots at the previous settlement price, ignoring fees (market-facts §4.2);
        for a close, the closable lots."""
        acc = self.account_of(conn)
        inst = self.instruments.get(q.InstrumentID)
        if acc is None or inst is None:
            return []
        buy = q.Direction == "0"
        if q.OffsetFlag in ("", "0"):
            per_lot = (
                inst.product.margin
                * inst.multiplier
                * self.pre_settlement(inst.instrument_id, inst.product.price)
                + inst.product.margin_per_lot
            )
            avail = self.funds(acc).available
            volume = int(max(avail, 0.0) // per_lot) if per_lot > 0 else 0
        else:
            posi = "3" if buy else "2"
            which = "all"
            if inst.exchange.splits_today:
                which = "today" if q.OffsetFlag == "3" else "history"
            volume = max(0, self.closable(acc, inst, posi, q.HedgeFlag or "1", which))
        return [
            CThostFtdcQryMaxOrderVolumeField._sim_make(
                BrokerID=q.BrokerID,
                InvestorID=q.InvestorID,
                Direction=q.Direction,
                OffsetFlag=q.OffsetFlag,
                HedgeFlag=q.HedgeFlag,
                MaxVolume=volume,
                ExchangeID=inst.exchange_id,
                InvestUnitID=q.InvestUnitID,
                InstrumentID=inst.instrument_id,
            )
        ]

    def qry_broker_trading_params(self, conn: Conn, q: Any) -> list[Struct]:
        acc = self.account_of(conn)
        if acc is None:
            return []
        return [
            CThostFtdcBrokerTradingParamsField._sim_make(
                BrokerID=self.settings.broker_id,
                InvestorID=acc.user_id,
                MarginPriceType="4",
                Algorithm=self.settings.available_algorithm,
                AvailIncludeCloseProfit="0",
                CurrencyID="CNY",
                OptionRoyaltyPriceType="1",
                AccountID=acc.user_id,
            )
        ]
