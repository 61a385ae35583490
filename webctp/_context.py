"""What every session gets from the service: configuration, backend modules, metrics."""

from __future__ import annotations

from dataclasses import dataclass, field

from ._metrics import Metrics
from .backend import ApiModules
from .config import Config


@dataclass
class ServiceContext:
    cfg: Config
    backend: ApiModules
    metrics: Metrics = field(default_factory=Metrics)
