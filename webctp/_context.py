"""What every session gets from the service: configuration, backend modules, metrics."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ._metrics import Metrics
from .backend import ApiModules
from .config import Config


@dataclass
class ServiceContext:
    cfg: Config
    backend: ApiModules
    metrics: Metrics = field(default_factory=Metrics)
    listener: Any = None
    """The WebSocket listener (``_listener.WsListener``) once it runs."""
    md_hub: Any = None
    """The process's md fan-out hub (``_fanout.Hub``) in shared-upstream and edge modes."""
