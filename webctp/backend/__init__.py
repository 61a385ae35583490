"""Backend selection: the embedded simulator or the real openctp-ctp binding.

Both offer the same module shape (``tdapi``/``mdapi`` with CThostFtdc* classes), so nothing
above this package knows which one it talks to.
"""

from __future__ import annotations

from dataclasses import dataclass
from types import ModuleType

from ..config import CtpConfig


@dataclass(frozen=True, slots=True)
class ApiModules:
    name: str
    td: ModuleType
    md: ModuleType


def load_backend(cfg: CtpConfig) -> ApiModules:
    """Import the configured backend's modules (the binding only when asked for)."""
    if cfg.backend == "sim":
        from ..sim import mdapi, tdapi

        return ApiModules("sim", tdapi, mdapi)
    from ._ctp import import_binding

    td, md = import_binding()
    return ApiModules("ctp", td, md)
