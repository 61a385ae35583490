"""Mirror of ``openctp_ctp.mdapi``: the market-data API, its Spi, every struct and constant.

Use it exactly as the binding (``from webctp.sim import mdapi``); register the front
``exchange.md_front`` (``sim://<name>``) of a started ``webctp.sim.Exchange``. The struct
classes are the same objects as in ``tdapi`` (the binding's are distinct classes, but it
accepts either module's structs in either API, so nothing observable depends on it).
"""

from ._api import CThostFtdcMdApi as CThostFtdcMdApi
from ._constants import *  # noqa: F403
from ._spi import CThostFtdcMdSpi as CThostFtdcMdSpi
from ._structs import *  # noqa: F403
