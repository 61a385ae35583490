"""Structured one-line logs on stderr: ``<time> <LEVEL> <logger> event=... key=value ...``.

The CTP library writes to the C-level stdout/stderr (fd 1 and 2) on its own; see
``webctp.backend._ctp`` for how the service keeps fd 1 clean.
"""

from __future__ import annotations

import logging
import sys
import time


class _Formatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        ts = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        msg = record.getMessage().replace("\n", "\\n")
        line = f"{ts}.{int(record.msecs):03d}Z {record.levelname} {record.name} {msg}"
        if record.exc_info:
            line += " exc=" + self.formatException(record.exc_info).replace("\n", "\\n")
        return line


def setup(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_Formatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in ("hypercorn.access", "hypercorn.error", "trio-websocket", "quart.app"):
        logging.getLogger(noisy).setLevel(max(logging.WARNING, root.level))
