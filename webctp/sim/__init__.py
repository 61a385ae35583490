"""The embedded simulated CTP exchange: the default backend, a drop-in for the binding.

``webctp.sim.tdapi`` and ``webctp.sim.mdapi`` mirror ``openctp_ctp.tdapi``/``mdapi`` (same
classes, methods, structs and constants); their API objects reach a running ``Exchange``
through the front address ``sim://<name>``::

    from webctp.sim import Exchange, SimSettings, tdapi

    exchange = Exchange(SimSettings(db_path=":memory:")).start()
    api = tdapi.CThostFtdcTraderApi.CreateFtdcTraderApi("flow/")
    api.RegisterSpi(my_spi)
    api.RegisterFront(exchange.td_front)
    api.Init()

Importing this package never imports ``openctp_ctp``.
"""

from ._exchange import Exchange, front_month, get_exchange
from ._history import generated_history
from ._replay import ReplayFileError
from ._settings import SimSettings
from ._store import DatabaseError, DatabaseInUse

__all__ = [
    "DatabaseError",
    "DatabaseInUse",
    "Exchange",
    "ReplayFileError",
    "SimSettings",
    "front_month",
    "generated_history",
    "get_exchange",
]
