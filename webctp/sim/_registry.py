"""Process-wide registry: ``sim://<name>`` front addresses → running ``Exchange`` objects.

An API whose registered front names no running exchange behaves like one facing a front that
is down: its ``Req*`` calls return -1 and no callback arrives; it waits here and connects as
soon as an exchange of that name starts (as the real library keeps retrying a refused connect).
"""

from __future__ import annotations

import threading

from ._ports import FrontClient as ApiCore
from ._ports import FrontServer as Exchange

_lock = threading.Lock()
_exchanges: dict[str, Exchange] = {}
_waiting: dict[str, list[ApiCore]] = {}

SCHEME = "sim://"


def front_name(address: str) -> str | None:
    """``sim://name`` (optionally with a trailing path) → ``name``; other schemes → None."""
    if not address.startswith(SCHEME):
        return None
    name = address[len(SCHEME) :].split("/", 1)[0]
    return name or None


def register(exchange: Exchange) -> list[ApiCore]:
    """Make ``exchange`` reachable; returns the APIs that were waiting for it."""
    name = exchange.name
    with _lock:
        current = _exchanges.get(name)
        if current is not None and current is not exchange:
            raise RuntimeError(f"an exchange named {name!r} is already running")
        _exchanges[name] = exchange
        waiting = _waiting.pop(name, [])
    return [api for api in waiting if not api._sim_released]


def unregister(exchange: Exchange) -> None:
    with _lock:
        if _exchanges.get(exchange.name) is exchange:
            del _exchanges[exchange.name]


def get(name: str) -> Exchange | None:
    with _lock:
        return _exchanges.get(name)


def attach(api: ApiCore, names: list[str]) -> Exchange | None:
    """The running exchange for the first reachable name, else wait for any of them."""
    with _lock:
        for name in names:
            exchange = _exchanges.get(name)
            if exchange is not None:
                return exchange
        for name in names:
            _waiting.setdefault(name, []).append(api)
        return None


def wait_again(api: ApiCore, names: list[str]) -> None:
    """After its exchange closed, the API waits for a new one (connection refused meanwhile)."""
    with _lock:
        for name in names:
            lst = _waiting.setdefault(name, [])
            if api not in lst:
                lst.append(api)


def detach(api: ApiCore) -> None:
    with _lock:
        for lst in _waiting.values():
            while api in lst:
                lst.remove(api)
