"""Orders and cancels: CTP-side checks, the exchange's matching, and the callback sequences.

CTP-side rejections (ctp-domain.md §5.1) answer OnRspOrderInsert to the sender and
OnErrRtnOrderInsert on the private flow. An accepted order goes to the "exchange", which may
reject it (order types it does not support, ``_rules``; price limits; closed session: status
'5' + OrderSubmitStatus '4' and the reason in StatusMsg only, market-facts §5), match it
against the instrument's book (``_book``: the crowd's levels and every account's resting
orders, price-time priority), and/or rest it there.

Callback sequences (ctp-domain.md §5.2):

- rests:             Rtn(a) → Rtn(3); when it trades later: Rtn(3) again → Rtn(0|1) → RtnTrade
- fills at once:     Rtn(a) → Rtn(a, with OrderSysID) → Rtn(0) → RtnTrade; on DCE the exchange
                     always acknowledges first: Rtn(a) → Rtn(3) → Rtn(0, synthesised) → RtnTrade
                     (CZCE too for FAK/FOK)
- partial fills:     Rtn(1) → RtnTrade per fill
- FAK/FOK remainder: Rtn(5 "已撤单报单已提交"); on SHFE/INE/CFFEX a partly filled FAK sends the
                     cancelled return (VolumeTraded already set) **before** its trades
- cancel:            Rtn(same status, OrderSubmitStatus '1') → Rtn(5 "已撤单")
- between accounts:  the incoming order as above; the resting one as "rests" (its investor's
                     sessions get them)
"""

from __future__ import annotations

import zlib
from collections import deque
from typing import Any

from . import _errors as E
from ._accounting import Accounting
from ._book import Fill
from ._calendar import in_session
from ._instruments import Instrument
from ._ledger import HISTORY, LONG, SHORT, TODAY, Account, Detail, fee_for, margin_for, money
from ._market import MarketState
from ._orders import OrderRec
from ._rules import BEST, CTP_REFUSES_MARKET, FIVE, LIMIT, UNSUPPORTED, UNSUPPORTED_CODE, supported
from ._session import Conn
from ._structs import (
    CThostFtdcInputOrderActionField,
    CThostFtdcInputOrderField,
    CThostFtdcOrderActionField,
    CThostFtdcTradeField,
)

SHFE_STYLE_FAK = frozenset({"SHFE", "INE", "CFFEX"})
"""Exchanges whose partly filled FAK sends the cancelled return before the trades."""

INPUT_ORDER_COPY = (
    "BrokerID",
    "InvestorID",
    "OrderRef",
    "UserID",
    "OrderPriceType",
    "Direction",
    "CombOffsetFlag",
    "CombHedgeFlag",
    "LimitPrice",
    "VolumeTotalOriginal",
    "TimeCondition",
    "GTDDate",
    "VolumeCondition",
    "MinVolume",
    "ContingentCondition",
    "StopPrice",
    "ForceCloseReason",
    "IsAutoSuspend",
    "BusinessUnit",
    "RequestID",
    "UserForceClose",
    "IsSwapOrder",
    "InvestUnitID",
    "AccountID",
    "CurrencyID",
    "MacAddress",
    "InstrumentID",
    "IPAddress",
    "OrderMemo",
    "SessionReqSeq",
)


def rate_ok(times: deque[float], t: float, per_second: int) -> bool:
    """Sliding one-second window: record ``t`` unless ``per_second`` are already in it."""
    if per_second <= 0:
        return True
    while times and times[0] <= t - 1.0:
        times.popleft()
    if len(times) >= per_second:
        return False
    times.append(t)
    return True


def client_id(user_id: str) -> str:
    """A stable 8-digit exchange trading code (ClientID) for an investor."""
    return f"{zlib.crc32(user_id.encode()) % 10**8:08d}"


class Trading(Accounting):
    """ReqOrderInsert / ReqOrderAction and the matching engine."""

    # ---------------------------------------------------------------- helpers

    def _date_fields(self, ex: str) -> tuple[str, str]:
        """(InsertDate/TradeDate for orders, for trades) by exchange (market-facts §5)."""
        natural = self.calendar_day()
        insert = self.trading_day if ex == "DCE" else natural
        trade = self.trading_day if ex in ("DCE", "CZCE") else natural
        return insert, trade

    def _push_order(self, order: OrderRec) -> None:
        order.fields["NotifySequence"] = int(order.fields["NotifySequence"]) + 1
        order.fields["UpdateTime"] = self.now_hms()
        self.dirty_orders[order.seq] = order
        self.push_private(order.user_id, "OnRtnOrder", order.snapshot())

    def _set_status(
        self, order: OrderRec, status: str, submit: str, reason: str = "", prefix: str = ""
    ) -> None:
        order.fields["OrderStatus"] = status
        order.fields["OrderSubmitStatus"] = submit
        order.fields["StatusMsg"] = E.fit(prefix + E.status_msg(status, submit, reason), 80)

    def _reject_insert(
        self,
        conn: Conn,
        req: CThostFtdcInputOrderField,
        rid: int,
        error_id: int,
        message: str | None = None,
    ) -> None:
        info = E.rsp_info(error_id, message)
        self.emit(conn, "OnRspOrderInsert", req, info, rid, True)
        if conn.user_id:
            self.push_private(conn.user_id, "OnErrRtnOrderInsert", req._sim_copy(), info)

    # ---------------------------------------------------------------- ReqOrderInsert

    def req_order_insert(
        self, conn: Conn, req: CThostFtdcInputOrderField, rid: int, t: float
    ) -> None:
        acc = self.account_of(conn)
        if acc is None:
            self.emit(conn, "OnRspOrderInsert", req, E.rsp_info(E.NOT_LOGGED_IN), rid, True)
            return
        if not rate_ok(conn.order_times, t, self.settings.orders_per_second):
            self._reject_insert(conn, req, rid, E.ORDER_FREQ_LIMIT)
            return
        if self.settings.require_settlement_confirm and acc.confirm_day != self.trading_day:
            self._reject_insert(conn, req, rid, E.SETTLEMENT_NOT_CONFIRMED)
            return
        ref = req.OrderRef.strip()
        if ref == "":
            ref = str(conn.last_order_ref + 1)
            object.__setattr__(req, "OrderRef", ref)
        elif not ref.isdigit():
            self._reject_insert(conn, req, rid, E.BAD_FIELD)
            return
        if int(ref) <= conn.last_order_ref:
            self._reject_insert(conn, req, rid, E.DUPLICATE_ORDER_REF)
            return
        conn.last_order_ref = int(ref)
        inst = self.instruments.get(req.InstrumentID)
        if inst is None:
            self._reject_insert(conn, req, rid, E.INSTRUMENT_NOT_FOUND)
            return
        error = self._check_fields(acc, req, inst)
        if error:
            self._reject_insert(conn, req, rid, error)
            return
        if self.settings.self_trade == "reject":
            limit_or_none = req.LimitPrice if req.OrderPriceType == LIMIT else None
            st = self.markets[inst.instrument_id]
            if st.book.crosses_own(acc.user_id, req.Direction == "0", limit_or_none):
                self._reject_insert(conn, req, rid, E.BAD_FIELD, E.SELF_TRADE_MSG)
                return
        offset = req.CombOffsetFlag[:1]
        hedge = req.CombHedgeFlag[:1]
        buy = req.Direction == "0"
        volume = req.VolumeTotalOriginal
        market = req.OrderPriceType != "2"
        st = self.markets[inst.instrument_id]
        limit: float | None = None
        if not market:
            limit = req.LimitPrice
            if not inst.on_tick(limit):
                # CZCE truncates an off-tick price to the tick whatever the side (1500.9 →
                # 1500, market-facts §5); the others reject it (15)
                limit = inst.floor_tick(limit)
        alloc: list[tuple[tuple[str, str, str, str], int]] = []
        if offset == "0":
            freeze_price = limit if limit is not None else (st.upper if buy else st.lower)
            margin_per_lot = margin_for(inst, freeze_price, 1)
            fee_per_lot = fee_for(inst, freeze_price, 1, "open")
        else:
            posi = SHORT if buy else LONG
            split = inst.exchange.splits_today
            if split:
                which = "today" if offset == "3" else "history"
                total = self.closable(acc, inst, posi, hedge, "all")
                avail = self.closable(acc, inst, posi, hedge, which)
                if volume > total and offset != "3":
                    self._reject_insert(conn, req, rid, E.OVER_CLOSE_POSITION)
                    return
                if volume > avail:  # CloseToday beyond today's lots: 50, even beyond all
                    code = (
                        E.OVER_CLOSETODAY_POSITION
                        if offset == "3"
                        else (E.OVER_CLOSEYESTERDAY_POSITION)
                    )
                    self._reject_insert(conn, req, rid, code)
                    return
                pdate = TODAY if offset == "3" else HISTORY
            else:
                if volume > self.closable(acc, inst, posi, hedge, "all"):
                    self._reject_insert(conn, req, rid, E.OVER_CLOSE_POSITION)
                    return
                pdate = TODAY
            alloc = [((inst.instrument_id, posi, hedge, pdate), volume)]
            margin_per_lot = 0.0
            price = limit if limit is not None else (st.upper if buy else st.lower)
            fee_per_lot = fee_for(inst, price, 1, "close")
        frozen_margin = money(margin_per_lot * volume)
        frozen_commission = money(fee_per_lot * volume)
        funds = self.funds(acc)
        if funds.available - frozen_margin - frozen_commission < -1e-9:
            self._reject_insert(conn, req, rid, E.INSUFFICIENT_MONEY)
            return
        order = self._new_order(conn, acc, req, inst, buy, offset, limit, ref)
        order.margin_per_lot = margin_per_lot
        order.fee_per_lot = fee_per_lot
        order.frozen_margin = frozen_margin
        order.frozen_commission = frozen_commission
        order.close_alloc = alloc
        for key, n in alloc:
            acc.row(key).frozen += n
        if offset == "0":  # like CTP, a working open order shows as a (zero) position row
            acc.row((inst.instrument_id, LONG if buy else SHORT, hedge, TODAY))
        self.mark_dirty(acc.user_id)
        self._push_order(order)
        self._exchange_accept(order, inst)

    def _check_fields(self, acc: Account, req: CThostFtdcInputOrderField, inst: Instrument) -> int:
        """CTP's field checks; returns an ErrorID or 0."""
        ex = inst.exchange
        if req.BrokerID != self.settings.broker_id or req.InvestorID != acc.user_id:
            return E.BAD_FIELD
        if req.Direction not in ("0", "1"):
            return E.BAD_FIELD
        if req.CombOffsetFlag[:1] not in ("0", "1", "3", "4"):
            return E.BAD_FIELD
        if req.CombHedgeFlag[:1] not in ("1", "2", "3"):
            return E.BAD_FIELD
        if req.VolumeTotalOriginal <= 0:
            return E.BAD_FIELD
        if req.TimeCondition not in ("1", "3"):  # CTP supports only IOC and GFD
            return E.BAD_FIELD
        if req.VolumeCondition not in ("1", "2", "3"):
            return E.BAD_FIELD
        if req.VolumeCondition == "2" and not 0 < req.MinVolume <= req.VolumeTotalOriginal:
            return E.BAD_FIELD
        if req.ContingentCondition != "1":  # conditional orders are not modelled
            return E.BAD_FIELD
        if req.ForceCloseReason != "0":
            return E.BAD_FIELD
        opt = req.OrderPriceType
        if opt == "2":
            if not 0 < req.LimitPrice < float("inf"):  # NaN and inf too
                return E.BAD_FIELD
            if not inst.on_tick(req.LimitPrice) and ex.exchange_id != "CZCE":
                return E.BAD_FIELD
        elif opt == "1":
            if ex.exchange_id in CTP_REFUSES_MARKET:  # no market orders (SimNow answers 15)
                return E.BAD_FIELD
        elif opt not in (BEST, FIVE):  # the exchange table (_rules) decides the rest
            return E.BAD_FIELD
        return 0

    def _new_order(
        self,
        conn: Conn,
        acc: Account,
        req: CThostFtdcInputOrderField,
        inst: Instrument,
        buy: bool,
        offset: str,
        limit: float | None,
        ref: str,
    ) -> OrderRec:
        ex = inst.exchange_id
        seq = self.next_id("broker_order_seq")
        local_id = self.next_id(f"local:{ex}")
        insert_date, _ = self._date_fields(ex)
        now = self.now_hms()
        fields: dict[str, Any] = {}
        for name in INPUT_ORDER_COPY:
            fields[name] = getattr(req, name)
        fields.update(
            OrderRef=ref,
            LimitPrice=limit if limit is not None else req.LimitPrice,
            OrderLocalID=f"{local_id:>12}",
            ExchangeID=ex,
            ParticipantID=self.settings.broker_id,
            ClientID=client_id(acc.user_id),
            ExchangeInstID=inst.instrument_id,
            TraderID=f"{self.settings.broker_id}{ex.lower()}01",
            InstallID=1,
            OrderSubmitStatus="0",
            NotifySequence=0,
            TradingDay=self.trading_day,
            SettlementID=self.settlement_id,
            OrderSysID="",
            OrderSource="0",
            OrderStatus="a",
            OrderType="0",
            VolumeTraded=0,
            VolumeTotal=req.VolumeTotalOriginal,
            InsertDate=insert_date,
            InsertTime=now,
            ActiveTime="",
            SuspendTime="",
            UpdateTime=now,
            CancelTime="",
            ActiveTraderID="",
            ClearingPartID="",
            SequenceNo=0,
            FrontID=conn.front_id,
            SessionID=conn.session_id,
            UserProductInfo=conn.user_product_info,
            StatusMsg=E.status_msg("a", "0"),
            UserForceClose=0,
            ActiveUserID="",
            BrokerOrderSeq=seq,
            RelativeOrderSysID="",
            ZCETotalTradedVolume=0,
            BranchID="",
        )
        order = OrderRec(
            user_id=acc.user_id,
            fields=fields,
            buy=buy,
            offset=offset,
            limit=limit,
            ioc=req.TimeCondition == "1" or req.OrderPriceType == "1",
            seq=seq,
        )
        self.add_order(order)
        self.orders_by_key[(conn.front_id, conn.session_id, ref)] = order
        return order

    # ---------------------------------------------------------------- the exchange

    def _exchange_reject(self, order: OrderRec, inst: Instrument, reason: str) -> None:
        self._set_status(order, "5", "4", f"{inst.exchange_id}:{reason}")
        self._release(order)
        self._push_order(order)

    def _exchange_accept(self, order: OrderRec, inst: Instrument) -> None:
        ex = inst.exchange_id
        st = self.touch(inst.instrument_id)
        self.book_market_fills(inst.instrument_id)
        self.mark_hour(st)
        f = order.fields
        volume = int(f["VolumeTotalOriginal"])
        if not supported(ex, f["OrderPriceType"], f["TimeCondition"], f["VolumeCondition"]):
            self._set_status(order, "5", "4", f"{ex}:{UNSUPPORTED}", prefix=UNSUPPORTED_CODE)
            self._release(order)
            self._push_order(order)
            return
        if self.settings.enforce_sessions and not in_session(
            self.now(), inst.product.sessions, inst.product.night, self.cal
        ):
            self._exchange_reject(order, inst, "当前状态禁止此项操作")
            return
        if order.limit is not None:
            if order.limit > st.upper + 1e-9:
                self._exchange_reject(order, inst, "价格超出涨停板")
                return
            if order.limit < st.lower - 1e-9:
                self._exchange_reject(order, inst, "价格跌破跌停板")
                return
            cap = inst.product.max_limit_volume
        else:
            cap = inst.product.max_market_volume
        if cap and volume > cap:
            self._exchange_reject(order, inst, "报单数量超过最大下单量")
            return
        sysid = f"{self.next_id(f'sysid:{ex}'):>12}"
        f["OrderSysID"] = sysid
        f["SequenceNo"] = self.next_id(f"seq:{ex}")
        self.orders_by_sysid[(ex, sysid.strip())] = order

        opt = f["OrderPriceType"]
        gfd_convert = opt in (BEST, FIVE) and not order.ioc
        if opt == BEST:  # the best opposite price becomes the order's limit
            order.limit = st.best(not order.buy)
        elif opt == FIVE:  # up to five opposite levels
            levels = st.depth(not order.buy)
            order.limit = levels[-1][0] if levels else None
        if opt in (BEST, FIVE):
            order.ioc = True  # the matching below; a GFD remainder rests afterwards
            if order.limit is not None and opt == BEST:
                f["LimitPrice"] = order.limit
        # how much the book gives the order now
        no_price = opt in (BEST, FIVE) and order.limit is None  # nothing on the other side
        fillable = 0 if no_price else st.fillable(order.buy, order.limit)
        vc = f["VolumeCondition"]
        if order.ioc and vc == "3":
            take = volume if fillable >= volume else 0
        elif order.ioc and vc == "2":
            take = min(volume, fillable) if fillable >= int(f["MinVolume"]) else 0
        else:
            take = min(volume, fillable)
        fills = (
            st.take(
                order.buy,
                order.limit,
                take,
                self.rng,
                (self.settings.book_volume_min, self.settings.book_volume_max),
                1 if order.offset == "0" else -1,
            )
            if take
            else []
        )
        self._store_queue_moves(st)
        if gfd_convert and fills and take < volume:
            # best-to-limit / five-level-to-limit: the remainder rests at the last fill price
            order.limit = fills[-1].price
            f["LimitPrice"] = order.limit
            order.ioc = False
        rests = not order.ioc and take < volume
        # DCE always acknowledges first; CZCE does so for FAK/FOK too
        ack = ex == "DCE" or (ex == "CZCE" and order.ioc) or (take == 0 and rests)
        if ack:
            self._set_status(order, "3", "3")
            f["ActiveTime"] = self.now_hms()
            self._push_order(order)
            submit = "3"
        else:
            self._push_order(order)  # still 'a', now carrying the OrderSysID
            submit = "0"
        if rests and fills:
            submit = "3"
        traded_total = sum(fl.lots for fl in fills)
        killed = order.ioc and traded_total < volume
        if killed and fills and ex in SHFE_STYLE_FAK:
            # the cancelled return, with VolumeTraded already set, precedes the trades
            trades = []
            for fl in fills:
                trades.append(self._fill(order, inst, fl.price, fl.lots, push=False))
                self._fill_maker(fl, inst)
            self._set_status(order, "5", submit)
            self._release(order)
            self._push_order(order)
            for trade in trades:
                self.push_private(order.user_id, "OnRtnTrade", trade)
            return
        for fl in fills:
            self._fill_maker(fl, inst)
            self._fill(order, inst, fl.price, fl.lots, submit=submit)
        if killed:
            self._set_status(order, "5", submit)
            self._release(order)
            self._push_order(order)
        elif rests:
            assert order.limit is not None
            vol = (self.settings.book_volume_min, self.settings.book_volume_max)
            st.book.add(order, st.queue_ahead(order.buy, order.limit, vol))

    def _fill_maker(self, fill: Fill, inst: Instrument) -> None:
        """The resting side of a trade between two orders of the book."""
        if fill.maker is not None:
            self._fill_resting(fill.maker, inst, fill.price, fill.lots)

    def _fill_resting(self, order: OrderRec, inst: Instrument, price: float, lots: int) -> None:
        """A resting order trades: a first fill repeats the "not traded" return before the
        fill (CTP: Rtn(3) → Rtn(3) → Rtn(0) → RtnTrade), then the fill at the order's price."""
        if order.is_final:
            return
        if order.status == "3":
            self._push_order(order)
        self._fill(order, inst, price, lots, submit="3")

    def _fill(
        self,
        order: OrderRec,
        inst: Instrument,
        price: float,
        lots: int,
        submit: str | None = None,
        push: bool = True,
    ) -> CThostFtdcTradeField:
        """Book one fill: order volumes, position, money; push Rtn(order) then RtnTrade."""
        f = order.fields
        f["VolumeTraded"] = int(f["VolumeTraded"]) + lots
        f["VolumeTotal"] = int(f["VolumeTotal"]) - lots
        if inst.exchange_id == "CZCE":
            f["ZCETotalTradedVolume"] = f["VolumeTraded"]
        if submit is None:
            submit = str(f["OrderSubmitStatus"])
        done = f["VolumeTotal"] == 0
        if push:
            self._set_status(order, "0" if done else "1", submit)
        acc = self.accounts[order.user_id]
        trade_id = f"{self.next_id(f'trade:{inst.exchange_id}'):>12}"
        self._apply_fill(acc, order, inst, price, lots, trade_id)
        if done:
            self._release(order)
        _, trade_date = self._date_fields(inst.exchange_id)
        offset = order.offset
        if offset != "0" and not inst.exchange.splits_today:
            offset = "1"  # CTP converts CloseToday/CloseYesterday to Close off SHFE/INE
        trade = CThostFtdcTradeField._sim_make(
            BrokerID=f["BrokerID"],
            InvestorID=f["InvestorID"],
            OrderRef=f["OrderRef"],
            UserID=f["UserID"],
            ExchangeID=inst.exchange_id,
            TradeID=trade_id,
            Direction=f["Direction"],
            OrderSysID=f["OrderSysID"],
            ParticipantID=f["ParticipantID"],
            ClientID=f["ClientID"],
            TradingRole="1",
            OffsetFlag=offset,
            HedgeFlag=f["CombHedgeFlag"][:1],
            Price=price,
            Volume=lots,
            TradeDate=trade_date,
            TradeTime=self.now_hms(),
            TradeType="0",
            PriceSource="0",
            TraderID=f["TraderID"],
            OrderLocalID=f["OrderLocalID"],
            ClearingPartID=f["ParticipantID"],
            BusinessUnit=f["BusinessUnit"],
            SequenceNo=self.next_id(f"tradeseq:{inst.exchange_id}"),
            TradingDay=self.trading_day,
            SettlementID=self.settlement_id,
            BrokerOrderSeq=f["BrokerOrderSeq"],
            TradeSource="0",
            InvestUnitID=f["InvestUnitID"],
            InstrumentID=inst.instrument_id,
            ExchangeInstID=inst.instrument_id,
        )
        self.trades.append((order.user_id, trade._sim_dict()))
        self.store.put_trade(
            self.trading_day,
            trade_id.strip() + ":" + inst.exchange_id,
            order.user_id,
            trade._sim_dict(),
        )
        if push:
            self._push_order(order)
            self.push_private(order.user_id, "OnRtnTrade", trade)
        return trade

    def _apply_fill(
        self,
        acc: Account,
        order: OrderRec,
        inst: Instrument,
        price: float,
        lots: int,
        trade_id: str,
    ) -> None:
        """Positions, lots and money of one fill (market-facts §4.6)."""
        m = inst.multiplier
        hedge = str(order.fields["CombHedgeFlag"])[:1]
        iid = inst.instrument_id
        td = self.trading_day
        if order.offset == "0":
            posi = LONG if order.buy else SHORT
            acc.add_lot(
                Detail(
                    instrument_id=iid,
                    direction="0" if order.buy else "1",
                    hedge=hedge,
                    open_date=td,
                    trade_id=trade_id,
                    open_price=price,
                    volume=lots,
                    basis=price,
                    last_settlement=self.pre_settlement(iid, price),
                )
            )
            row = acc.row((iid, posi, hedge, TODAY))
            row.open_volume += lots
            row.open_amount += price * lots * m
            row.commission = money(row.commission + fee_for(inst, price, lots, "open"))
            release_m = min(order.frozen_margin, money(order.margin_per_lot * lots))
            order.frozen_margin = money(order.frozen_margin - release_m)
        else:
            posi = SHORT if order.buy else LONG
            sign = 1.0 if posi == LONG else -1.0
            split = inst.exchange.splits_today
            if split:
                which = "today" if order.offset == "3" else "history"
                lots_list = acc.lots(iid, posi, hedge, td, which)
            else:
                today_lots = acc.lots(iid, posi, hedge, td, "today")
                old_lots = acc.lots(iid, posi, hedge, td, "history")
                fee = inst.product.fee
                if fee.close_today < fee.close:
                    lots_list = list(reversed(today_lots)) + old_lots
                else:
                    lots_list = old_lots + today_lots
            left = lots
            fees: dict[tuple[str, str, str, str], float] = {}
            for lot in lots_list:
                if left == 0:
                    break
                n = min(left, lot.volume)
                left -= n
                is_today = lot.open_date == td
                pnl_date = sign * (price - lot.basis) * n * m
                pnl_trade = sign * (price - lot.open_price) * n * m
                lot.volume -= n
                lot.close_volume += n
                lot.close_amount += price * n * m
                lot.close_profit_by_date += pnl_date
                lot.close_profit_by_trade += pnl_trade
                acc.lot_changed(lot)
                pdate = TODAY if (not split or is_today) else HISTORY
                key = (iid, posi, hedge, pdate)
                row = acc.row(key)
                row.close_volume += n
                row.close_amount += price * n * m
                row.close_profit_by_date = money(row.close_profit_by_date + pnl_date)
                row.close_profit_by_trade = money(row.close_profit_by_trade + pnl_trade)
                kind = "close_today" if is_today else "close"
                fees[key] = fees.get(key, 0.0) + fee_for(inst, price, n, kind)
            acc.prune_closed()
            for key, amount in fees.items():
                row = acc.row(key)
                row.commission = money(row.commission + amount)
            # release the frozen close volume of these lots
            left = lots
            new_alloc = []
            for key, n in order.close_alloc:
                take = min(n, left)
                left -= take
                acc.row(key).frozen -= take
                if n - take:
                    new_alloc.append((key, n - take))
            order.close_alloc = new_alloc
        release_c = min(order.frozen_commission, money(order.fee_per_lot * lots))
        order.frozen_commission = money(order.frozen_commission - release_c)
        self.mark_dirty(acc.user_id)

    def _release(self, order: OrderRec) -> None:
        """An order ended (filled, cancelled, rejected, killed): release what it still froze."""
        order.frozen_margin = 0.0
        order.frozen_commission = 0.0
        if order.close_alloc:
            acc = self.accounts[order.user_id]
            for key, n in order.close_alloc:
                acc.row(key).frozen -= n
            order.close_alloc = []
        st = self.markets.get(order.instrument_id)
        if st is not None and order in st.book:
            st.book.remove(order)
        self.mark_dirty(order.user_id)
        self.dirty_orders[order.seq] = order

    # ---------------------------------------------------------------- resting orders

    def book_market_fills(self, instrument_id: str) -> None:
        """Book the fills the market's own trades gave resting orders (``MarketState.pending``)."""
        self.unbooked.discard(instrument_id)
        st = self.markets.get(instrument_id)
        if st is None:
            return
        self._store_queue_moves(st)
        if not st.pending:
            return
        fills, st.pending = st.pending, []
        inst = self.instruments[instrument_id]
        for fl in fills:
            if fl.maker is not None:
                self._fill_resting(fl.maker, inst, fl.price, fl.lots)

    def _store_queue_moves(self, st: MarketState) -> None:
        """Orders whose place in the queue moved are written with the batch (a restart puts
        them back where they were)."""
        if st.book.moved:
            for order in st.book.moved:
                self.dirty_orders[order.seq] = order
            st.book.moved.clear()

    def resting_instruments(self) -> list[str]:
        """Instruments with resting orders in their book."""
        return [iid for iid, st in self.markets.items() if st.book or st.pending]

    # ---------------------------------------------------------------- ReqOrderAction

    def req_order_action(
        self, conn: Conn, req: CThostFtdcInputOrderActionField, rid: int, t: float
    ) -> None:
        acc = self.account_of(conn)
        if acc is None:
            self.emit(conn, "OnRspOrderAction", req, E.rsp_info(E.NOT_LOGGED_IN), rid, True)
            return

        def reject(error_id: int) -> None:
            info = E.rsp_info(error_id)
            self.emit(conn, "OnRspOrderAction", req, info, rid, True)
            action = self._order_action(conn, req, info.ErrorMsg)
            self.push_private(acc.user_id, "OnErrRtnOrderAction", action, info)

        if not rate_ok(conn.order_times, t, self.settings.orders_per_second):
            reject(E.ORDER_FREQ_LIMIT)
            return
        if self.settings.require_settlement_confirm and acc.confirm_day != self.trading_day:
            reject(E.SETTLEMENT_NOT_CONFIRMED)
            return
        if req.ActionFlag != "0":
            reject(E.BAD_ACTION_FIELD)
            return
        order: OrderRec | None = None
        if req.OrderSysID.strip():
            order = self.orders_by_sysid.get((req.ExchangeID, req.OrderSysID.strip()))
        elif req.OrderRef.strip():
            front = req.FrontID or conn.front_id
            session = req.SessionID or conn.session_id
            order = self.orders_by_key.get((front, session, req.OrderRef.strip()))
        if order is None or order.user_id != acc.user_id:
            reject(E.ORDER_NOT_FOUND)
            return
        self.touch(order.instrument_id)
        self.book_market_fills(order.instrument_id)  # fills the market already gave it first
        if order.is_final:
            reject(E.INSUITABLE_ORDER_STATUS)
            return
        f = order.fields
        f["ActiveUserID"] = conn.user_id
        self._set_status(order, order.status, "1")
        self._push_order(order)
        f["CancelTime"] = self.now_hms()
        self._set_status(order, "5", "3")
        self._release(order)
        self._push_order(order)

    def _order_action(
        self, conn: Conn, req: CThostFtdcInputOrderActionField, status_msg: str
    ) -> CThostFtdcOrderActionField:
        return CThostFtdcOrderActionField._sim_make(
            BrokerID=req.BrokerID,
            InvestorID=req.InvestorID,
            OrderActionRef=req.OrderActionRef,
            OrderRef=req.OrderRef,
            RequestID=req.RequestID,
            FrontID=req.FrontID,
            SessionID=req.SessionID,
            ExchangeID=req.ExchangeID,
            OrderSysID=req.OrderSysID,
            ActionFlag=req.ActionFlag,
            LimitPrice=req.LimitPrice,
            VolumeChange=req.VolumeChange,
            ActionDate=self.calendar_day(),
            ActionTime=self.now_hms(),
            OrderActionStatus="c",
            UserID=req.UserID,
            StatusMsg=status_msg,
            InvestUnitID=req.InvestUnitID,
            MacAddress=req.MacAddress,
            InstrumentID=req.InstrumentID,
            IPAddress=req.IPAddress,
        )
