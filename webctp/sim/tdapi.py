"""Mirror of ``openctp_ctp.tdapi``: the trader API, its Spi, every struct and constant.

Use it exactly as the binding (``from webctp.sim import tdapi``); register the front
``exchange.td_front`` (``sim://<name>``) of a started ``webctp.sim.Exchange``.
"""

from ._api import CThostFtdcTraderApi as CThostFtdcTraderApi
from ._constants import *  # noqa: F403
from ._spi import CThostFtdcTraderSpi as CThostFtdcTraderSpi
from ._structs import *  # noqa: F403
