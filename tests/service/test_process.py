"""The service as users run it (``python -m webctp`` in a subprocess): SIGTERM tells every
client 1001 before exiting; idle sockets under a low file-descriptor limit cannot take
/healthz or the WebSocket port down."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import trio

from tests.processes import listening, service_command
from webctp.client import connect_td

from .client import connect, http_get
from .raw import Raw

ROOT = Path(__file__).resolve().parents[2]


@contextmanager
def cli_service(
    tmp_path: Path, server: str = "", nofile: int = 0
) -> Iterator[tuple[subprocess.Popen[bytes], dict[str, int], Path]]:
    """``python -m webctp`` on free ports; its log goes to a file (never a pipe that could
    fill up and block it)."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f"[server]\n{server}\n"
        f'[ctp]\nflow_dir = "{tmp_path / "flow"}"\n[sim]\ndb_path = "{tmp_path / "s.db"}"\n'
    )
    log = tmp_path / "service.log"

    def limit() -> None:
        if nofile:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    with log.open("wb") as err:
        proc = subprocess.Popen(
            service_command(cfg),
            stdout=subprocess.DEVNULL,
            stderr=err,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            preexec_fn=limit,
        )
    try:
        ports: dict[str, int] = {}
        deadline = time.monotonic() + 30
        while len(ports) < 2:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            for line in log.read_text().splitlines():
                if found := listening(line):
                    ports[found[0]] = found[1]
            time.sleep(0.05)
        yield proc, ports, log
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


async def test_sigterm_sends_1001_to_every_client(tmp_path: Path) -> None:
    with cli_service(tmp_path) as (proc, ports, log):
        async with connect(ports["ws"]) as td:
            assert (await td.login("sig", "pw"))["MsgType"] == "RspUserLogin"
            md = await Raw.open(ports["ws"])
            await md.upgrade("/md/")
            os.kill(proc.pid, signal.SIGTERM)
            assert await md.close_code(10) == 1001
            md.close()
            with trio.fail_after(10):
                while td.ws.closed is None:
                    try:
                        await td.ws.get_message()
                    except Exception:
                        break
            assert td.ws.closed is not None and td.ws.closed.code == 1001, td.ws.closed
        with trio.fail_after(10):
            while proc.poll() is None:
                await trio.sleep(0.05)
        assert proc.returncode == 0
        text = log.read_text()
        assert "event=closing_clients count=2 code=1001" in text
        assert "Traceback" not in text and "event=stopped" in text


async def test_idle_sockets_under_a_low_fd_limit(tmp_path: Path) -> None:
    """300 idle sockets against a service limited to 256 descriptors: the ones past its cap
    get 503, /healthz keeps answering, and once they go a client logs in as usual."""
    server = "handshake_timeout_s = 60.0\n"
    with cli_service(tmp_path, server, nofile=256) as (proc, ports, log):
        idle = [await Raw.open(ports["ws"]) for _ in range(300)]
        status, _, body = await http_get(ports["http"], "/healthz")
        assert status == 200, body
        extra = await Raw.open(ports["ws"])
        head = await extra.read_head()
        assert head.startswith(b"HTTP/1.1 503"), head
        extra.close()
        refused = sum([await raw.eof(0.05) for raw in idle])
        assert refused >= 300 - (256 - 64), refused
        for raw in idle:
            raw.close()
        with trio.fail_after(30):
            while True:
                try:
                    async with connect_td(f"ws://127.0.0.1:{ports['ws']}/td/") as td:
                        login = await td.login("fd", "pw")
                    break
                except Exception:  # still at the cap while the server sees the closes
                    await trio.sleep(0.1)
        assert login["UserID"] == "fd"
        assert proc.poll() is None, log.read_text()
        assert "max_connections=192" in log.read_text()
