"""Backend selection: the embedded simulator or the real openctp-ctp binding.

Both offer the same module shape (``tdapi``/``mdapi`` with CThostFtdc* classes), so nothing
above this package knows which one it talks to.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import TYPE_CHECKING

from webctp.protocol.catalogue import Catalogue, load

if TYPE_CHECKING:  # importing the config pulls in the simulator; the locale check needs neither
    from webctp.config import CtpConfig


@dataclass(frozen=True, slots=True)
class ApiModules:
    name: str
    td: ModuleType
    md: ModuleType
    catalogue: Catalogue = dataclasses.field(default_factory=load)
    """The message catalogue restricted to what this backend has (``_adapt``)."""
    version: str | None = None
    """The loaded binding's version (``openctp-ctp`` 6.7.x), None for the simulator."""
    front_month: Callable[[str, str], str | None] | None = None
    """(front address, ProductID) → the product's front-month contract, for the instrument
    alias ``<product>.front`` (``webctp/_aliases.py``); None: the backend has no aliases."""


def load_backend(cfg: CtpConfig) -> ApiModules:
    """Import the configured backend's modules (the binding only when asked for).

    For ``ctp`` this may raise ``webctp.backend._ctp.BindingUnavailable`` with a message for the
    user (missing package or locale); it never lets the binding abort the process.
    """
    if cfg.backend == "sim":
        from webctp.sim import front_month, mdapi, tdapi

        return ApiModules("sim", tdapi, mdapi, front_month=front_month)
    from ._ctp import import_binding, loaded_catalogue

    td, md = import_binding()
    catalogue, version = loaded_catalogue()
    return ApiModules("ctp", td, md, catalogue, version)
