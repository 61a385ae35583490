"""The two interfaces the layers meet at, so the modules import one way only.

``FrontClient`` is what the exchange, its engine and a session (``Conn``) need from an API
object; ``_api.ApiCore`` implements it. ``FrontServer`` is what the registry and an API object
need from a running exchange; ``_exchange.Exchange`` implements it. With these the imports read
API facade → registry / exchange → engine → book / accounting → store, and nothing below the
facade names it.
"""

from __future__ import annotations

from typing import Any, Protocol


class FrontClient(Protocol):
    """An API object (trader or market data) as the exchange sees it."""

    _sim_kind: str
    _sim_spi: Any
    _sim_flow_path: str
    _sim_released: bool
    _sim_front_names: list[str]
    _sim_private_resume: int
    _sim_public_resume: int
    _sim_trading_day: str
    _sim_logged_in: bool
    _sim_conn: Any
    _sim_exchange: Any
    _sim_engine: Any

    def _sim_query_done(self) -> None: ...


class FrontServer(Protocol):
    """A running exchange as the registry and the API objects see it."""

    @property
    def name(self) -> str: ...

    def attach(self, api: FrontClient) -> None: ...

    def detach(self, api: FrontClient) -> None: ...
