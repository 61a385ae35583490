"""The composition root: one Trio process, both listeners under one nursery.

``run_service(cfg, task_status=...)`` starts the embedded exchange (sim backend), the
trio-websocket server for /td/ and /md/, and hypercorn + quart-trio for HTTP; it reports the
bound ports through ``task_status`` and runs until cancelled.
"""

from __future__ import annotations

import gc
import logging
import sqlite3
import ssl
import sys
from dataclasses import dataclass
from functools import partial
from types import ModuleType
from typing import Any

import trio
from hypercorn.config import Config as HypercornConfig
from hypercorn.trio import serve as hypercorn_serve

from . import _affinity, _flow
from ._bars import history_from_rows
from ._bind_errors import listen_errors
from ._connection import handle_request
from ._context import ServiceContext
from ._fanout import Hub
from ._http import create_app
from ._listener import WsListener, connection_cap
from .backend import ApiModules, load_backend
from .config import Config

log = logging.getLogger("webctp.service")

FDS_PER_CONNECTION = {"sim": 1, "ctp": 8, "none": 1}
"""File descriptors one WebSocket client costs: its socket, plus for a real CTP API its
sockets, epoll/event descriptors and open flow files (measured with the openctp-ctp binding)."""


@dataclass
class ServiceInfo:
    http_port: int
    ws_port: int
    ctx: ServiceContext
    exchange: Any
    """The embedded ``webctp.sim.Exchange`` (sim backend), else None."""


def _ssl_context(cfg: Config) -> ssl.SSLContext | None:
    if not cfg.server.tls_cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cfg.server.tls_cert, cfg.server.tls_key)
    return context


def _settle_heap() -> None:
    """Collect once and move what start-up built (the message catalogue, the simulator's
    products and instruments, the libraries: ~100,000 objects) out of the cyclic collector's
    reach. A full collection would otherwise walk all of it and stop every task for ~30 ms
    whenever it runs, an order or a tick waiting meanwhile; reference counting still frees
    these objects as usual."""
    gc.collect()
    gc.freeze()


FLOW_PRUNE_INTERVAL_S = 3600.0


async def _prune_flow_folders(cfg: Config) -> None:
    """Remove flow folders of users not seen for ``ctp.flow_retention_days``, now and hourly."""
    retention_s = cfg.ctp.flow_retention_days * 86400
    while True:
        await trio.to_thread.run_sync(_flow.prune, cfg.ctp.flow_dir, retention_s)
        await trio.sleep(FLOW_PRUNE_INTERVAL_S)


async def _keep_bars(ctx: ServiceContext, *, task_status: trio.TaskStatus[None]) -> None:
    """``[md] bars_path``: the bar book read back at start-up, then its changes written every
    ``bars_save_interval_s`` and once more when the service stops (webctp/_barstore.py). A
    store that fails is logged; the bars stay in memory and the service goes on."""
    from ._barstore import BarStore

    md = ctx.cfg.md
    book = ctx.bars
    try:
        store = await trio.to_thread.run_sync(BarStore, md.bars_path)
        saved = await trio.to_thread.run_sync(store.load, book.max_instruments)
    except (OSError, sqlite3.Error) as exc:
        log.warning("event=bars_store_failed path=%s action=open error=%r", md.bars_path, exc)
        task_status.started()
        return
    book.restore(saved)
    log.info("event=bars_restored path=%s instruments=%d", md.bars_path, len(saved))
    task_status.started()

    async def save() -> None:
        try:
            await trio.to_thread.run_sync(store.save, book.changes())
        except (OSError, sqlite3.Error) as exc:
            log.warning("event=bars_store_failed path=%s action=save error=%r", md.bars_path, exc)

    try:
        while True:
            await trio.sleep(md.bars_save_interval_s)
            await save()
    finally:
        with trio.CancelScope(shield=True) as scope:
            scope.deadline = trio.current_time() + ctx.cfg.server.close_timeout_s
            await save()
            await trio.to_thread.run_sync(store.close)


NO_BACKEND = ApiModules("none", ModuleType("no_td"), ModuleType("no_md"))
"""An md edge's backend: it has no CTP API at all."""


async def _md_source(ctx: ServiceContext, *, task_status: trio.TaskStatus[Hub]) -> None:
    """The process's md hub and what feeds it: the shared CTP upstream (and, with
    ``[bus] publish``, the Redis publisher), or on an edge the Redis bus."""
    cfg = ctx.cfg
    hub = Hub(cfg.md.release_grace_s)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(hub.run_releases)
        if cfg.server.mode == "md-edge":
            from ._bus import run_edge

            await nursery.start(run_edge, ctx, hub)
        else:
            from ._upstream import Upstream

            tap = None
            if cfg.bus.publish:
                from ._bus import run_feeder

                tap = await nursery.start(run_feeder, ctx, hub)
            upstream = Upstream(ctx, hub, tap)
            ctx.metrics.watch_sink(upstream.conflation)
            await nursery.start(upstream.run)
        task_status.started(hub)


async def run_service(
    cfg: Config, *, task_status: trio.TaskStatus[ServiceInfo] = trio.TASK_STATUS_IGNORED
) -> None:
    _affinity.pin(cfg.server.cpu_affinity)  # first: every thread started below inherits it
    if cfg.server.switch_interval_ms:
        sys.setswitchinterval(cfg.server.switch_interval_ms / 1000)
    edge = cfg.server.mode == "md-edge"
    backend = NO_BACKEND if edge else load_backend(cfg.ctp)
    ctx = ServiceContext(cfg, backend)
    exchange = None
    if backend.name == "sim":
        from .sim import Exchange, generated_history

        exchange = Exchange(cfg.sim)
        await trio.to_thread.run_sync(exchange.start)
        ctx.health = exchange.health
        # the chart history of the GetBars extension: the trading day before the first tick
        ctx.bars.history = history_from_rows(partial(generated_history, exchange))
    try:
        async with trio.open_nursery() as nursery:
            if cfg.md.bars_path and cfg.server.mode != "td":
                await nursery.start(_keep_bars, ctx)  # before any client can ask GetBars
            host = cfg.server.host
            server = cfg.server
            listener = WsListener(
                partial(handle_request, ctx=ctx),
                ssl_context=_ssl_context(cfg),
                max_connections=connection_cap(
                    server.max_connections, FDS_PER_CONNECTION[backend.name]
                ),
                handshake_timeout_s=server.handshake_timeout_s,
                close_timeout_s=server.close_timeout_s,
                send_timeout_s=server.send_timeout_s,
                # our own limit answers -400 below this; past it the socket closes (1009)
                max_message_size=max(4 * server.max_message_bytes, 1 << 20),
            )
            ctx.listener = listener
            if edge or (cfg.md.upstream == "shared" and cfg.server.mode in ("md", "all")):
                ctx.md_hub = await nursery.start(_md_source, ctx)
            with listen_errors("WebSocket", host, server.ws_port, "ws_port"):
                ws_port = await nursery.start(listener.serve, host, server.ws_port)
            log.info(
                "event=listening service=ws host=%s port=%d paths=%s mode=%s max_connections=%d",
                host,
                ws_port,
                {"td": "/td/", "md": "/md/", "md-edge": "/md/"}.get(server.mode, "/td/,/md/"),
                server.mode,
                listener.max_connections,
            )
            hconfig = HypercornConfig()
            bind_host = f"[{host}]" if ":" in host else host
            hconfig.bind = [f"{bind_host}:{cfg.server.port}"]
            hconfig.accesslog = None
            hconfig.errorlog = logging.getLogger("hypercorn.error")
            hconfig.graceful_timeout = 1.0
            if cfg.server.tls_cert:
                hconfig.certfile = cfg.server.tls_cert
                hconfig.keyfile = cfg.server.tls_key
            ports = {"ws": ws_port}
            app = create_app(ctx, ports)
            with listen_errors("HTTP", host, cfg.server.port, "port"):
                binds = await nursery.start(
                    partial(hypercorn_serve, app, hconfig, shutdown_trigger=trio.sleep_forever)
                )
            http_port = int(str(binds[0]).rsplit(":", 1)[1])
            ports["http"] = http_port
            log.info(
                "event=listening service=http host=%s port=%d url=%s://%s:%d/ backend=%s",
                host,
                http_port,
                "https" if cfg.server.tls_cert else "http",
                bind_host,
                http_port,
                backend.name,
            )
            nursery.start_soon(_prune_flow_folders, cfg)
            _settle_heap()
            task_status.started(ServiceInfo(http_port, ws_port, ctx, exchange))
    finally:
        if exchange is not None:
            with trio.CancelScope(shield=True):
                await trio.to_thread.run_sync(exchange.close)
