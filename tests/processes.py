"""``python -m webctp`` as a child process in tests: its command line, and the ports it says it
listens on (its ``event=listening`` log lines)."""

from __future__ import annotations

import sys
from pathlib import Path


def service_command(config: Path | str, *args: str, port: int = 0, ws_port: int = 0) -> list[str]:
    """The service with ``config``; port 0 lets the OS choose (read it with ``listening``)."""
    return [
        sys.executable,
        *("-m", "webctp", "--config", str(config)),
        *("--port", str(port), "--ws-port", str(ws_port)),
        *args,
    ]


def listening(line: str) -> tuple[str, int] | None:
    """``(service, port)`` (service ``http`` or ``ws``) from an ``event=listening`` log line;
    None for any other line."""
    if "event=listening" not in line:
        return None
    fields = dict(p.split("=", 1) for p in line.split() if "=" in p)
    return fields["service"], int(fields["port"])
