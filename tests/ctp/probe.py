"""Run in a child process by test_versions.py: the installed binding against the catalogue.

Imports the binding the way the service does, then (1) calls every catalogue callback that the
binding's Spi classes have, through webctp's own Spi subclass, with default-constructed structs
of this binding (the capture runs exactly as on the callback thread), and (2) fills every
request struct this binding has with the largest values the validator lets through. Prints
one JSON report on stdout.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

from webctp._bridge import Event, spi_class
from webctp.backend import load_backend
from webctp.config import CtpConfig
from webctp.protocol import codec
from webctp.protocol.catalogue import INT32_MAX, Catalogue, FieldSpec, load


class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))


class _Sink:
    def __init__(self) -> None:
        self.events: list[Event] = []
        self.ticks: list[tuple[str, tuple[Any, ...]]] = []

    def post(self, event: Event) -> None:
        self.events.append(event)

    def post_tick(self, instrument: str, values: tuple[Any, ...]) -> None:
        self.ticks.append((instrument, values))


def _largest(spec: FieldSpec) -> object:
    return {"s": "x" * spec.size, "c": "1", "i": INT32_MAX, "f": 1.5}[spec.kind]


def _callbacks(module: Any, api: str, base: type, report: dict[str, Any]) -> None:
    sink = _Sink()
    spi = spi_class(base, api)(sink)
    full = load()
    called: list[str] = []
    for name, cb in full.api(api).callbacks.items():  # type: ignore[arg-type]
        if not hasattr(base, name):
            report["callbacks_absent"].append(name)
            continue
        args: list[object] = []
        for param in cb.params:
            if param == "pRspInfo":
                info = module.CThostFtdcRspInfoField()
                info.ErrorID = 0
                args.append(info)
            elif param.startswith("p"):
                args.append(getattr(module, f"CThostFtdc{cb.struct}Field")())
            elif param == "nRequestID":
                args.append(7)
            elif param == "bIsLast":
                args.append(True)
            else:
                args.append(0)
        getattr(spi, name)(*args)
        called.append(name)
    report["callbacks_called"] += len(called)
    posted = len(sink.events) + len(sink.ticks)
    if posted != len(called):
        report["failed"].append(f"{api}: {len(called)} callbacks, {posted} events")
    for ev in sink.events:
        cb = ev.cb
        if not cb.struct or ev.values is None:
            continue
        c = codec.codec(cb.struct)
        row = c.to_dict(ev.values)
        lacks = set(c.missing(getattr(module, f"CThostFtdc{cb.struct}Field")))
        if set(row) != set(c.names) - lacks:
            report["failed"].append(f"{cb.name}: fields {sorted(set(row) ^ set(c.names))}")
        if lacks:
            report["absent"][cb.struct] = sorted(lacks)
        codec.dumps(codec.push(cb.msg_type, cb.payload_key, row, ev.info))
    for _instrument, values in sink.ticks:
        codec.dumps(codec.codec("DepthMarketData").to_dict(values))


def _requests(module: Any, api: str, adapted: Catalogue, report: dict[str, Any]) -> None:
    for msg_type, spec in adapted.api(api).requests.items():  # type: ignore[arg-type]
        if msg_type in adapted.unavailable:
            continue
        struct = adapted.struct(spec.struct)
        obj = getattr(module, struct.class_name)()
        for f in struct.fields:
            value = _largest(f)
            try:
                setattr(obj, f.name, value)
            except Exception as exc:
                report["failed"].append(f"{msg_type}: {struct.name}.{f.name} = {value!r}: {exc}")
                continue
            if f.name in vars(obj) or getattr(obj, f.name) != value:
                report["failed"].append(f"{msg_type}: {struct.name}.{f.name} did not stick")
        report["requests_filled"] += 1


def main() -> None:
    errors = _Errors()
    logging.getLogger().addHandler(errors)
    backend = load_backend(CtpConfig(backend="ctp"))
    report: dict[str, Any] = {
        "version": backend.version,
        "api_version": backend.td.CThostFtdcTraderApi.GetApiVersion(),
        "callbacks_called": 0,
        "callbacks_absent": [],
        "requests_filled": 0,
        "requests_unavailable": sorted(backend.catalogue.unavailable),
        "absent": {},
        "failed": [],
    }
    for api, module, base in (
        ("td", backend.td, backend.td.CThostFtdcTraderSpi),
        ("md", backend.md, backend.md.CThostFtdcMdSpi),
    ):
        _callbacks(module, api, base, report)
        _requests(module, api, backend.catalogue, report)
    report["failed"] += errors.lines
    json.dump(report, sys.stdout)


if __name__ == "__main__":
    main()
