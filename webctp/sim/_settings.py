"""Settings of the embedded exchange: one frozen dataclass built from the ``[sim]`` config table.

Only plain types (str/int/float/bool, tuples, nested frozen dataclasses, dicts of them) so the
service's TOML loader can build it field by field; lists from TOML are accepted and frozen into
tuples, and dicts of plain tables into ``ProductOverride`` objects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

USER_ID_RE = re.compile(r"^[A-Za-z0-9_]{1,15}$")


@dataclass(frozen=True)
class FeeOverride:
    """Commission rates per side; ``by`` is ``"volume"`` (CNY per lot) or ``"money"`` (ratio)."""

    by: str = "volume"
    open: float = 0.0
    close: float = 0.0
    close_today: float = 0.0


@dataclass(frozen=True)
class ProductOverride:
    """Per-product overrides of ``products.toml``; ``None`` keeps the packaged value."""

    price: float | None = None
    """Seed price of the dominant contract (other months are spread around it)."""
    price_limit: float | None = None
    """Daily limit as a fraction of the previous settlement price (0.07 = 7 %)."""
    margin: float | None = None
    """Broker's final margin ratio by money, long and short (what CTP reports to investors)."""
    exchange_margin: float | None = None
    margin_per_lot: float | None = None
    """Additional margin by volume (CNY per lot); 0 by default."""
    fee: FeeOverride | None = None
    volatility: float | None = None
    """Probability that a market step moves the price (0–1); see SimSettings.volatility."""


def _override(value: Any) -> ProductOverride:
    if isinstance(value, ProductOverride):
        return value
    data = dict(value)
    fee = data.pop("fee", None)
    if fee is not None and not isinstance(fee, FeeOverride):
        fee = FeeOverride(**fee)
    return ProductOverride(fee=fee, **data)


@dataclass(frozen=True)
class SimSettings:
    """Everything configurable about the simulated exchange. Every field has a default."""

    name: str = "default"
    """Registry name: the fronts are ``sim://<name>`` (``Exchange.td_front``/``md_front``)."""
    db_path: str = "data/sim.sqlite3"
    """SQLite file for accounts, orders, trades, positions; ``":memory:"`` keeps nothing.
    Created owner-only; ``<db_path>.lock`` keeps a second process off it."""
    db_synchronous: str = "normal"
    """SQLite ``synchronous`` in WAL mode. ``"normal"``: a batch is committed before its
    callbacks are sent and survives the process being killed (kill -9, OOM, a crash); an OS
    crash or power cut can lose the last commits. ``"full"``: each commit is also synced to
    disk first (survives a power cut; ~1 ms or more per commit on the engine thread)."""
    db_busy_timeout_s: float = 0.2
    """How long one commit waits for a write lock held by another connection before it is
    rolled back and retried later (docs/simulator.md, "Durability")."""
    seed: int = -1
    """Random seed of the market; negative = a fresh seed from the OS each start."""
    tick_interval_s: float = 0.5
    """Market clock period (CTP sends two snapshots a second); 0 = no clock (tests drive it)."""
    products: tuple[str, ...] = ()
    """Product IDs to list (``("rb", "IF")``); empty = the whole packaged catalogue."""
    product_overrides: dict[str, ProductOverride] = field(default_factory=dict, hash=False)
    volatility: float = 0.35
    """Probability that an instrument's price moves on a market step."""
    max_step_ticks: int = 2
    """Largest price move per market step, in ticks."""
    book_volume_min: int = 1
    book_volume_max: int = 60
    """Volume of each synthetic book level is drawn from [min, max]."""

    broker_id: str = "9999"
    starting_balance: float = 1_000_000.0
    auto_open_accounts: bool = True
    """Any valid UserID is opened on first login with the password given then."""
    fixed_accounts: dict[str, str] = field(default_factory=dict, hash=False)
    """UserID → password, created at start; with auto_open_accounts=False the only accounts.
    (TOML: a ``[sim.fixed_accounts]`` table, ``alice = "secret"``.)"""
    password_scrypt_n: int = 1024
    """scrypt cost N of stored password hashes (a power of two, 2–32768; r = 8, p = 1):
    ~4 ms per login of an account not yet seen by this process at 1024; a stored hash of
    another cost is replaced at its next login."""
    app_id: str = ""
    auth_code: str = ""
    """When either is set, ReqAuthenticate checks it (ErrorID 63) and login needs it (64)."""
    require_settlement_confirm: bool = True
    """Orders before the day's ReqSettlementInfoConfirm fail with ErrorID 42."""
    max_sessions_per_user: int = 0
    """0 = unlimited; otherwise a further login fails with ErrorID 60."""

    query_per_second: int = 2
    """Queries per session per second; more → OnRspError ErrorID 90."""
    orders_per_second: int = 6
    """Orders + cancels per session per second; more → ErrorID 116."""
    replay_path: str = ""
    """A tick file (CSV of DepthMarketData columns, see docs/simulator.md "Replay") whose rows
    drive the markets of the instruments it names instead of the random walk; "sample" is the
    small file shipped with the package. Empty: no replay."""
    replay_speed: float = 1.0
    """1 = the recorded pace, 10 = ten times faster; 0 = rows only advance through
    ``Exchange.replay_step`` (tests)."""
    replay_rename: dict[str, str] = field(default_factory=dict)
    """Recorded InstrumentID → the listed instrument it drives (a recorded month that is not
    listed on the simulator's trading day)."""
    self_trade: str = "allow"
    """An order meeting the same investor's resting order: "allow" trades it, as the
    exchanges' matching does (they only monitor self-trades); "reject" refuses the incoming
    order at the counter (OnRspOrderInsert + OnErrRtnOrderInsert), as a broker's self-trade
    check does."""
    enforce_sessions: bool = False
    """Reject orders outside the product's trading sessions (and freeze its prices)."""
    holidays: tuple[str, ...] = ()
    """Extra non-trading days (YYYYMMDD) besides weekends."""
    auto_settle: bool = True
    """Settle automatically when the wall clock enters a new trading day."""

    available_algorithm: str = "1"
    """Broker Algorithm: '1' floating P&L counts in Available, '2' only losses, '3' only gains,
    '4' neither (market-facts §4.2)."""
    large_side_margin: bool = True
    """Charge only the larger side per product where MaxMarginSideAlgorithm is '1'."""
    reserve: float = 0.0
    """Broker-held base reserve (TradingAccount.Reserve), subtracted from WithdrawQuota."""
    system_name: str = "webctp-sim"
    response_delay_s: float = 0.0
    """Initial artificial delay before each request is processed (set_response_delay)."""

    def __post_init__(self) -> None:
        # TOML gives lists and plain tables: freeze them so the settings stay immutable.
        set_ = object.__setattr__
        set_(self, "products", tuple(str(p) for p in self.products))
        set_(self, "fixed_accounts", {str(k): str(v) for k, v in dict(self.fixed_accounts).items()})
        set_(self, "holidays", tuple(str(h) for h in self.holidays))
        set_(self, "replay_rename", {str(k): str(v) for k, v in dict(self.replay_rename).items()})
        if not self.replay_speed >= 0:
            raise ValueError("replay_speed must be >= 0")
        set_(
            self,
            "product_overrides",
            {str(k): _override(v) for k, v in dict(self.product_overrides).items()},
        )
        if self.available_algorithm not in ("1", "2", "3", "4"):
            raise ValueError("available_algorithm must be '1', '2', '3' or '4'")
        n = self.password_scrypt_n
        if not 2 <= n <= 1 << 15 or n & (n - 1):
            raise ValueError("password_scrypt_n must be a power of two from 2 to 32768")
        if self.self_trade not in ("allow", "reject"):
            raise ValueError("self_trade must be 'allow' or 'reject'")
        if self.db_synchronous not in ("full", "normal"):
            raise ValueError("db_synchronous must be 'full' or 'normal'")
        if not 0 <= self.db_busy_timeout_s <= 60:
            raise ValueError("db_busy_timeout_s must be between 0 and 60")
        if self.book_volume_min < 1 or self.book_volume_max < self.book_volume_min:
            raise ValueError("need 1 <= book_volume_min <= book_volume_max")
        for user in self.fixed_accounts:
            if not USER_ID_RE.match(user):
                raise ValueError(f"fixed account {user!r}: UserID must be 1-15 [A-Za-z0-9_]")
