"""The command line.

``python -m webctp --config config.toml [--mode td|md|all|md-edge] [--host H] [--port P]
[--ws-port W]``
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys

import trio

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

from . import __version__, _log
from ._bind_errors import ListenError, find
from .config import ConfigError, load_config, with_overrides

log = logging.getLogger("webctp")


def _port(text: str) -> int:
    try:
        port = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= port <= 65535:
        raise argparse.ArgumentTypeError(f"{port} is not a port: use 0-65535 (0: any free port)")
    return port


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="webctp", description="CTP futures trading API over WebSocket + JSON."
    )
    parser.add_argument("--config", help="TOML configuration file (default: built-in defaults)")
    parser.add_argument(
        "--mode",
        choices=("td", "md", "all", "md-edge"),
        help="services to run (md-edge: /md/ fed through the Redis bus, no CTP)",
    )
    parser.add_argument("--host", help="listen address (overrides [server] host)")
    parser.add_argument("--port", type=_port, help="HTTP port: web demo, /healthz, /metrics")
    parser.add_argument("--ws-port", type=_port, help="WebSocket port: /td/ and /md/")
    parser.add_argument("--version", action="version", version=f"webctp {__version__}")
    return parser.parse_args(argv)


async def _main(cfg: object) -> None:
    from .config import Config
    from .service import run_service

    assert isinstance(cfg, Config)
    with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async with trio.open_nursery() as nursery:
            await nursery.start(run_service, cfg)

            async for signum in signals:
                log.info("event=shutdown signal=%s", signal.Signals(signum).name)
                nursery.cancel_scope.cancel()
                break


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        cfg = load_config(args.config)
        cfg = with_overrides(
            cfg, mode=args.mode, host=args.host, port=args.port, ws_port=args.ws_port
        )
    except ConfigError as exc:
        print(f"webctp: configuration error: {exc}", file=sys.stderr)
        return 2
    _log.setup(cfg.log.level)
    # what the service writes (flow files, the simulator's database) is the owner's alone
    os.umask(0o077)
    from .backend import load_backend
    from .backend._ctp import BindingUnavailable

    if cfg.ctp.backend == "ctp":
        from .backend._console import capture

        capture()  # the library prints on fd 1/2: relay it as log lines, keep stdout clean
    try:
        load_backend(cfg.ctp)  # fail here, with a message, rather than inside the event loop
    except BindingUnavailable as exc:
        print(f"webctp: {exc}", file=sys.stderr)
        return 2
    try:
        trio.run(_main, cfg)
    except (ListenError, OSError, BaseExceptionGroup) as exc:
        failure = find(exc, (ListenError, OSError))
        if failure is None:
            raise
        log.error("event=startup_failed error=%r", str(failure))
        return 1
    log.info("event=stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
