"""Base of the generated Spi classes: remembers whether ``super().__init__()`` ran.

The binding's ``RegisterSpi`` raises TypeError for a subclass that skipped
``super().__init__()`` (the SWIG director was never created); the simulator checks this flag
to raise the same error instead of silently working where the real library would not.
"""

from __future__ import annotations


class SpiBase:
    """Marks an instance as properly initialised for ``RegisterSpi``."""

    _sim_initialised: bool = False

    def __init__(self) -> None:
        self._sim_initialised = True
