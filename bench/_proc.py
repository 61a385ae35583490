"""Child processes driven by JSON lines, /proc readings and small statistics helpers."""

from __future__ import annotations

import json
import math
import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Any

ROOT = Path(__file__).resolve().parent.parent
"""The repository root (holds ``bench/`` and ``webctp/``)."""

_TICK = os.sysconf("SC_CLK_TCK")


class ChildError(RuntimeError):
    pass


class Child:
    """A ``python -m <module>`` child: JSON commands on its stdin, JSON events on its stdout,
    stderr into ``log_path``."""

    def __init__(
        self,
        module: str,
        args: Sequence[str],
        log_path: Path,
        *,
        pythonpath: Sequence[str] = (),
        cwd: Path = ROOT,
    ) -> None:
        env = dict(os.environ)
        paths = [*pythonpath, str(ROOT)]
        if env.get("PYTHONPATH"):
            paths.append(env["PYTHONPATH"])
        env["PYTHONPATH"] = os.pathsep.join(paths)
        env["PYTHONUNBUFFERED"] = "1"
        self.name = module.rsplit(".", 1)[-1]
        self.log_path = log_path
        self._log: IO[bytes] = open(log_path, "ab")  # noqa: SIM115 - closed in close()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", module, *args],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=self._log,
            cwd=str(cwd),
            env=env,
            text=True,
            bufsize=1,
        )
        self.pid = self.proc.pid
        self._events: queue.Queue[dict[str, Any] | None] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            line = line.strip()
            if not line:
                continue
            try:
                obj = json.loads(line)
            except ValueError:
                obj = {"event": "text", "text": line}
            self._events.put(obj)
        self._events.put(None)

    def send(self, **command: Any) -> None:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write(json.dumps(command) + "\n")
            self.proc.stdin.flush()
        except (BrokenPipeError, OSError) as exc:
            raise ChildError(f"{self.name}: cannot send {command}: {exc}; {self.tail()}") from None

    def expect(self, event: str, timeout: float = 60.0) -> dict[str, Any]:
        """The next event named ``event`` (an ``error`` event or the child's exit raises)."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ChildError(f"{self.name}: no {event!r} within {timeout:g} s; {self.tail()}")
            try:
                obj = self._events.get(timeout=left)
            except queue.Empty:
                continue
            if obj is None:
                self._events.put(None)
                raise ChildError(f"{self.name}: exited waiting for {event!r}; {self.tail()}")
            if obj.get("event") == "error":
                raise ChildError(f"{self.name}: {obj.get('error')}; {self.tail()}")
            if obj.get("event") == event:
                return obj

    def call(self, command: str, timeout: float = 60.0, **args: Any) -> dict[str, Any]:
        """Send a command and wait for its ``<command>_done`` reply."""
        self.send(cmd=command, **args)
        return self.expect(f"{command}_done", timeout)

    def tail(self, lines: int = 15) -> str:
        try:
            text = self.log_path.read_text(errors="replace").splitlines()[-lines:]
        except OSError:
            return ""
        return f"last lines of {self.log_path.name}:\n  " + "\n  ".join(text)

    def close(self, timeout: float = 20.0) -> None:
        if self.proc.poll() is None:
            try:
                self.send(cmd="quit")
            except ChildError:
                pass
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        self._log.close()


# --- /proc readings (Linux) ------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (all its threads), in seconds."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / _TICK


def status(pid: int) -> dict[str, str]:
    out: dict[str, str] = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            out[key] = value.strip()
    return out


def rss_bytes(pid: int) -> int:
    return int(status(pid)["VmRSS"].split()[0]) * 1024


def threads(pid: int) -> int:
    return int(status(pid)["Threads"])


def loadavg() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


# --- statistics ------------------------------------------------------------------------------
def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of an unsorted sequence; nan when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(p / 100.0 * len(ordered)) - 1))
    return ordered[k]


def summary_ms(seconds: Sequence[float]) -> dict[str, float]:
    """p50/p99/max (and count) of durations given in seconds, in milliseconds."""
    return {
        "n": float(len(seconds)),
        "p50": percentile(seconds, 50) * 1e3,
        "p90": percentile(seconds, 90) * 1e3,
        "p99": percentile(seconds, 99) * 1e3,
        "max": (max(seconds) * 1e3) if seconds else float("nan"),
    }
