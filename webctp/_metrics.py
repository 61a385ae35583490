"""Process-wide counters and gauges, rendered as Prometheus text for /metrics."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol


class _Conflating(Protocol):
    ticks_conflated: int


@dataclass
class Metrics:
    sessions_active: Counter[str] = field(default_factory=Counter)
    sessions_total: Counter[str] = field(default_factory=Counter)
    frames_in: int = 0
    frames_out: int = 0
    ticks_out: int = 0
    ticks_conflated_closed: int = 0
    """Conflated ticks of sessions that have ended (live ones are read from their sinks)."""
    sinks: set[_Conflating] = field(default_factory=set)
    aborted: int = 0
    errors: Counter[int] = field(default_factory=Counter)
    ctp_requests: int = 0
    ctp_retries: int = 0
    front_disconnects: int = 0
    relogins: int = 0
    overflows: int = 0

    def watch_sink(self, sink: _Conflating) -> None:
        self.sinks.add(sink)

    def unwatch_sink(self, sink: _Conflating) -> None:
        if sink in self.sinks:
            self.sinks.discard(sink)
            self.ticks_conflated_closed += sink.ticks_conflated

    @property
    def ticks_conflated(self) -> int:
        """Counted by the CTP threads as it happens, so it moves while a sender is blocked."""
        return self.ticks_conflated_closed + sum(s.ticks_conflated for s in self.sinks)

    def render(self) -> str:
        lines: list[str] = []

        def metric(name: str, kind: str, help_: str, samples: list[tuple[str, float]]) -> None:
            lines.append(f"# HELP webctp_{name} {help_}")
            lines.append(f"# TYPE webctp_{name} {kind}")
            for labels, value in samples:
                lines.append(f"webctp_{name}{labels} {value:g}")

        kinds = ("td", "md")
        metric(
            "sessions_active",
            "gauge",
            "WebSocket sessions open now.",
            [(f'{{kind="{k}"}}', self.sessions_active[k]) for k in kinds],
        )
        metric(
            "sessions_total",
            "counter",
            "WebSocket sessions opened.",
            [(f'{{kind="{k}"}}', self.sessions_total[k]) for k in kinds],
        )
        metric(
            "frames_received_total", "counter", "Client frames received.", [("", self.frames_in)]
        )
        metric("frames_sent_total", "counter", "Frames sent to clients.", [("", self.frames_out)])
        metric("ticks_sent_total", "counter", "Market-data ticks sent.", [("", self.ticks_out)])
        metric(
            "ticks_conflated_total",
            "counter",
            "Ticks replaced by a newer tick of the same instrument before a slow client read them.",
            [("", self.ticks_conflated)],
        )
        metric(
            "errors_total",
            "counter",
            "Error frames sent by the gateway, by ErrorID.",
            [(f'{{code="{c}"}}', n) for c, n in sorted(self.errors.items())] or [("", 0)],
        )
        metric(
            "ctp_requests_total", "counter", "Req* calls made to CTP.", [("", self.ctp_requests)]
        )
        metric(
            "ctp_retries_total",
            "counter",
            "Requests retried after CTP flow control (-2/-3/ErrorID 90).",
            [("", self.ctp_retries)],
        )
        metric(
            "front_disconnects_total",
            "counter",
            "OnFrontDisconnected callbacks.",
            [("", self.front_disconnects)],
        )
        metric(
            "relogins_total",
            "counter",
            "Automatic re-logins after a reconnect.",
            [("", self.relogins)],
        )
        metric(
            "event_overflows_total",
            "counter",
            "Sessions closed because their CTP event queue overflowed.",
            [("", self.overflows)],
        )
        metric(
            "connections_aborted_total",
            "counter",
            "Connections cut off without a close handshake (client stopped reading).",
            [("", self.aborted)],
        )
        return "\n".join(lines) + "\n"
