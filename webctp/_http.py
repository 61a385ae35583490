"""HTTP side (quart-trio on hypercorn): the web demo, /api/endpoints, /healthz, /metrics.

WebSocket traffic does not come here: it is served by trio-websocket on its own port, the
measured fast path.
"""

from __future__ import annotations

import hmac
import time
from pathlib import Path
from typing import Any

from quart import Response, request, send_from_directory
from quart_trio import QuartTrio

from ._context import ServiceContext


def web_root(configured: str) -> Path:
    """The demo's folder: configured, installed with the package (``webctp/web``, mapped from
    the repo's top-level ``web/`` by pyproject), or the source checkout's ``web/``."""
    if configured:
        return Path(configured)
    here = Path(__file__).resolve().parent
    installed = here / "web"
    if (installed / "index.html").exists():
        return installed
    return here.parent / "web"


def create_app(ctx: ServiceContext, ports: dict[str, int]) -> QuartTrio:
    app = QuartTrio("webctp", static_folder=None)
    cfg = ctx.cfg
    root = web_root(cfg.server.web_root)
    started = time.time()

    def _authorised() -> bool:
        if not cfg.server.token:
            return True
        given = request.args.get("token", "")
        return hmac.compare_digest(given.encode(), cfg.server.token.encode())

    # no-cache: browsers revalidate (ETag) so an upgraded service never runs a stale page
    @app.route("/")
    async def index() -> Any:
        response = await send_from_directory(root, "index.html")
        response.cache_control.no_cache = True
        return response

    @app.route("/web/<path:name>")
    async def web_file(name: str) -> Any:
        response = await send_from_directory(root, name)
        response.cache_control.no_cache = True
        if name == "webctp.js":
            # the browser client is a public library: pages served elsewhere may import it
            # (the WebSockets have their own checks: server.allowed_origins, server.token)
            response.headers["Access-Control-Allow-Origin"] = "*"
        return response

    @app.route("/api/endpoints")
    async def endpoints() -> Any:
        host = request.host.rsplit(":", 1)[0] if request.host else cfg.server.host
        if host.startswith("[") is False and ":" in host:
            host = f"[{host}]"
        # behind a proxy that terminates TLS the page is https: the sockets must be wss
        forwarded = request.headers.get("X-Forwarded-Proto", "").lower() == "https"
        scheme = "wss" if cfg.server.tls_cert or forwarded else "ws"
        base = f"{scheme}://{host}:{ports['ws']}"
        mode = cfg.server.mode
        sim = ctx.backend.name == "sim"
        return {
            "td": f"{base}/td/" if mode in ("td", "all") else None,
            "md": f"{base}/md/" if mode in ("md", "all", "md-edge") else None,
            "mode": mode,
            "backend": ctx.backend.name,
            "binding": ctx.backend.version,  # openctp-ctp's version; null for the simulator
            "broker_id": cfg.ctp.broker_id,
            "token_required": bool(cfg.server.token),
            "login_hint": (
                "Simulator: any UserID of 1-15 letters, digits or _ opens an account with "
                "1,000,000 CNY; the first password you use becomes its password."
                if sim
                else "Log in with your broker account."
            ),
        }

    @app.route("/healthz")
    async def healthz() -> Any:
        m = ctx.metrics
        problem = ctx.health()
        body = {
            "status": "ok" if problem is None else "failing",
            "backend": ctx.backend.name,
            "mode": cfg.server.mode,
            "uptime_s": round(time.time() - started, 3),
            "sessions": dict(m.sessions_active),
        }
        if problem is not None:
            body["problem"] = problem
            return body, 503
        return body

    @app.route("/metrics")
    async def metrics() -> Any:
        if not _authorised():
            return Response("missing or wrong token\n", status=401)
        return Response(ctx.metrics.render(), content_type="text/plain; version=0.0.4")

    return app
