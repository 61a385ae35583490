"""The instrument catalogue: packaged product data + overrides → the contracts listed on a day.

``products.toml`` holds the facts (market-facts.md §2); this module applies
``SimSettings.product_overrides`` and rolls contract months with the trading day: a contract is
listed from when it enters the product's listing window until its last trading day.
"""

from __future__ import annotations

import functools
import importlib.resources
import math
import sys
from dataclasses import dataclass
from datetime import date
from typing import Any

from ._calendar import TradingCalendar, ymd
from ._settings import SimSettings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib  # type: ignore[import-not-found, unused-ignore]

EXCHANGES = ("SHFE", "INE", "DCE", "CZCE", "CFFEX", "GFEX")


@dataclass(frozen=True)
class ExchangeInfo:
    exchange_id: str
    name: str
    position_date_type: str
    """'1': today and history positions kept apart (SHFE/INE); '2': one row."""
    max_margin_side: str
    market_orders: bool
    max_limit_volume: int
    max_market_volume: int

    @property
    def splits_today(self) -> bool:
        """SHFE/INE: CloseToday/CloseYesterday matter and positions have two rows."""
        return self.position_date_type == "1"


@dataclass(frozen=True)
class Fee:
    by: str
    open: float
    close: float
    close_today: float

    def rate(self, kind: str) -> float:
        return {"open": self.open, "close": self.close, "close_today": self.close_today}[kind]


@dataclass(frozen=True)
class Product:
    product_id: str
    exchange: ExchangeInfo
    name: str
    multiplier: int
    tick: float
    price: float
    night: str
    sessions: str
    near: int
    months: tuple[int, ...]
    far_count: int
    horizon: int
    expiry: str
    price_limit: float
    margin: float
    exchange_margin: float
    margin_per_lot: float
    fee: Fee
    volatility: float
    max_limit_volume: int
    max_market_volume: int
    max_margin_side: str

    @property
    def exchange_id(self) -> str:
        return self.exchange.exchange_id

    @functools.cached_property
    def decimals(self) -> int:
        """Decimal places of the tick (prices are rounded to them to stay on the grid)."""
        text = f"{self.tick:.10f}".rstrip("0")
        return len(text.split(".")[1]) if "." in text else 0

    def instrument_id(self, year: int, month: int) -> str:
        if self.exchange_id == "CZCE":
            return f"{self.product_id}{year % 10}{month:02d}"
        return f"{self.product_id}{year % 100:02d}{month:02d}"


@dataclass(frozen=True)
class Instrument:
    instrument_id: str
    product: Product
    year: int
    month: int
    open_date: str
    expire_date: str
    rank: int
    """0 for the nearest listed month, 1 for the next, ..."""

    @property
    def exchange_id(self) -> str:
        return self.product.exchange_id

    @property
    def exchange(self) -> ExchangeInfo:
        return self.product.exchange

    @property
    def multiplier(self) -> int:
        return self.product.multiplier

    @property
    def tick(self) -> float:
        return self.product.tick

    def round(self, price: float) -> float:
        return round(price, self.decimals)

    @functools.cached_property
    def decimals(self) -> int:
        return self.product.decimals

    def to_ticks(self, price: float) -> float:
        return price / self.product.tick

    def on_tick(self, price: float) -> bool:
        n = price / self.product.tick
        return abs(n - round(n)) < 1e-6

    def floor_tick(self, price: float) -> float:
        return self.round(math.floor(price / self.tick + 1e-9) * self.tick)

    def ceil_tick(self, price: float) -> float:
        return self.round(math.ceil(price / self.tick - 1e-9) * self.tick)

    def limits(self, pre_settlement: float) -> tuple[float, float]:
        """(upper, lower): previous settlement ± limit, rounded inward to the tick."""
        p = self.product.price_limit
        return self.floor_tick(pre_settlement * (1 + p)), self.ceil_tick(pre_settlement * (1 - p))


def _load_data() -> dict[str, Any]:
    text = importlib.resources.files(__package__).joinpath("products.toml").read_text("utf-8")
    data: dict[str, Any] = tomllib.loads(text)
    return data


def load_products(settings: SimSettings) -> dict[str, Product]:
    """Products of the packaged file, filtered by ``settings.products``, with overrides."""
    data = _load_data()
    exchanges = {
        ex_id: ExchangeInfo(
            exchange_id=ex_id,
            name=str(ex["name"]),
            position_date_type=str(ex["position_date_type"]),
            max_margin_side=str(ex["max_margin_side"]),
            market_orders=bool(ex["market_orders"]),
            max_limit_volume=int(ex["max_limit_volume"]),
            max_market_volume=int(ex["max_market_volume"]),
        )
        for ex_id, ex in data["exchanges"].items()
    }
    wanted = set(settings.products)
    unknown = wanted - set(data["products"])
    if unknown:
        raise ValueError(f"unknown products in settings.products: {sorted(unknown)}")
    unknown = set(settings.product_overrides) - set(data["products"])
    if unknown:
        raise ValueError(f"unknown products in settings.product_overrides: {sorted(unknown)}")
    out: dict[str, Product] = {}
    for pid, raw in data["products"].items():
        if wanted and pid not in wanted:
            continue
        ex = exchanges[raw["exchange"]]
        ov = settings.product_overrides.get(pid)
        fee_raw = raw["fee"]
        fee = Fee(
            str(fee_raw["by"]),
            float(fee_raw["open"]),
            float(fee_raw["close"]),
            float(fee_raw["close_today"]),
        )
        if ov is not None and ov.fee is not None:
            fee = Fee(ov.fee.by, ov.fee.open, ov.fee.close, ov.fee.close_today)

        def pick(name: str, default: float, ov: Any = ov) -> float:
            value = getattr(ov, name, None) if ov is not None else None
            return float(default if value is None else value)

        out[pid] = Product(
            product_id=pid,
            exchange=ex,
            name=str(raw["name"]),
            multiplier=int(raw["multiplier"]),
            tick=float(raw["tick"]),
            price=pick("price", raw["price"]),
            night=str(raw.get("night", "")),
            sessions=str(raw.get("sessions", "commodity")),
            near=int(raw.get("near", 0)),
            months=tuple(int(m) for m in raw.get("months", ())),
            far_count=int(raw.get("far_count", 0)),
            horizon=int(raw.get("horizon", 12)),
            expiry=str(raw["expiry"]),
            price_limit=pick("price_limit", raw["price_limit"]),
            margin=pick("margin", raw["margin"]),
            exchange_margin=pick("exchange_margin", raw["exchange_margin"]),
            margin_per_lot=pick("margin_per_lot", 0.0),
            fee=fee,
            volatility=pick("volatility", settings.volatility),
            max_limit_volume=int(raw.get("max_limit_volume", ex.max_limit_volume)),
            max_market_volume=int(raw.get("max_market_volume", ex.max_market_volume)),
            max_margin_side=str(raw.get("max_margin_side", ex.max_margin_side)),
        )
    return out


def exchange_infos() -> dict[str, ExchangeInfo]:
    data = _load_data()
    return {
        ex_id: ExchangeInfo(
            ex_id,
            str(ex["name"]),
            str(ex["position_date_type"]),
            str(ex["max_margin_side"]),
            bool(ex["market_orders"]),
            int(ex["max_limit_volume"]),
            int(ex["max_market_volume"]),
        )
        for ex_id, ex in data["exchanges"].items()
    }


def _add_months(year: int, month: int, n: int) -> tuple[int, int]:
    total = year * 12 + (month - 1) + n
    return total // 12, total % 12 + 1


def listed_instruments(
    products: dict[str, Product], trading_day: date, cal: TradingCalendar
) -> dict[str, Instrument]:
    """The contracts listed on ``trading_day``, nearest month first within each product.

    A contract is listed until its last trading day (inclusive). Each product lists its ``near``
    nearest unexpired months plus those of ``months`` within ``horizon`` months (at most
    ``far_count`` of them when that is set), like the exchanges' listing rules.
    """
    out: dict[str, Instrument] = {}
    for product in products.values():
        chosen: list[tuple[int, int, date]] = []
        near_left = product.near
        far_left = product.far_count or 10**6
        for offset in range(0, product.horizon + 13):
            y, m = _add_months(trading_day.year, trading_day.month, offset)
            expire = cal.expiry(product.expiry, y, m)
            if expire < trading_day:
                continue
            if near_left > 0:
                near_left -= 1
                chosen.append((y, m, expire))
                continue
            if offset < product.horizon and m in product.months and far_left > 0:
                far_left -= 1
                chosen.append((y, m, expire))
        for rank, (y, m, expire) in enumerate(chosen):
            iid = product.instrument_id(y, m)
            open_y, open_m = _add_months(y, m, -max(product.horizon, 12))
            out[iid] = Instrument(
                instrument_id=iid,
                product=product,
                year=y,
                month=m,
                open_date=ymd(date(open_y, open_m, 1)),
                expire_date=ymd(expire),
                rank=rank,
            )
    return out
