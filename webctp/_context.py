"""What every session gets from the service: configuration, backend modules, metrics."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ._bars import BarBook
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
    health: Callable[[], str | None] = lambda: None
    """What is wrong with the backend, in one line (None: nothing); /healthz answers 503
    with it. The simulator's exchange reports a stopped engine or a database it cannot write."""
    bars: BarBook = field(default_factory=BarBook)
    """Bars kept from the ticks md sessions forward (the GetBars extension message)."""
    md_hub: Any = None
    """The process's md fan-out hub (``_fanout.Hub``) in shared-upstream and edge modes."""
