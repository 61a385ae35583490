"""Fixtures for the real-binding tests: a locale built by webctp, fake fronts, a service process.

Everything runs on loopback. The binding is only ever imported in child processes (a fresh one
per test), so whatever it does cannot poison the pytest process. The locale is built once per
test session through webctp's own mechanism into a temporary ``XDG_CACHE_HOME`` and reused.
"""

from __future__ import annotations

import importlib.util
import os
import re
import signal
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trio

from tests.processes import listening, service_command

ROOT = Path(__file__).resolve().parents[2]

LOG_LINE = re.compile(
    r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z "  # 2025-06-17T08:00:00.123Z
    r"(DEBUG|INFO|WARNING|ERROR|CRITICAL) [\w.\-]+ event=\w+"
)


def _localctp_applies() -> bool:
    from importlib import metadata

    from .localctp import HEADERS

    try:
        return metadata.version("openctp-ctp") in HEADERS
    except metadata.PackageNotFoundError:
        return False


# LocalCTP exists only for the bindings whose headers it has (6.7.2.8, 6.7.7.1, 6.7.8.0):
# with another binding installed its tests are not collected at all (``nox -s ctp_versions``
# runs them in an environment per version).
collect_ignore = [] if _localctp_applies() else ["test_localctp.py"]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    here = Path(__file__).parent
    for item in items:
        if (
            here in Path(str(item.fspath)).parents
            and importlib.util.find_spec("openctp_ctp") is None
        ):
            item.add_marker(pytest.mark.skip(reason="openctp-ctp is not installed (.[test])"))


def child_env(cache: Path | None, **extra: str) -> dict[str, str]:
    """The environment of a child process: no LOCPATH (unless given), our locale cache, and
    no PYTHONUNBUFFERED (it also unbuffers C's stdio, which a user's service does not have)."""
    dropped = ("LOCPATH", "XDG_CACHE_HOME", "PYTHONUNBUFFERED")
    env = {k: v for k, v in os.environ.items() if k not in dropped}
    if cache is not None:
        env["XDG_CACHE_HOME"] = str(cache)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env.update(extra)
    return env


@dataclass
class LocaleCache:
    folder: Path
    """The XDG_CACHE_HOME the session's children use."""
    build: subprocess.CompletedProcess[str]
    system_has_locale: bool


@pytest.fixture(scope="session")
def locale_cache(tmp_path_factory: pytest.TempPathFactory) -> LocaleCache:
    """zh_CN.GB18030 made available by webctp itself (built with localedef when missing)."""
    from webctp.backend._ctp import has_locale

    saved = os.environ.pop("LOCPATH", None)
    try:
        system = has_locale()
    finally:
        if saved is not None:
            os.environ["LOCPATH"] = saved
    folder = tmp_path_factory.mktemp("xdg-cache")
    build = subprocess.run(
        [
            sys.executable,
            "-c",
            "import logging; logging.basicConfig(level='INFO', format='%(message)s')\n"
            "from webctp.backend._ctp import ensure_locale, has_locale\n"
            "ensure_locale(); assert has_locale(); print('ok')",
        ],
        env=child_env(folder),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert build.returncode == 0, build.stderr
    return LocaleCache(folder, build, system)


# --- a fake front: a TCP listener on loopback -----------------------------------------------


@dataclass
class Front:
    """Accepts CTP's connections; records what arrives. ``close``: hang up after the first
    bytes; otherwise hold the connection open without answering."""

    port: int
    close: bool
    connections: int = 0
    first_bytes: list[bytes] = field(default_factory=list)
    closed_by_peer: int = 0
    changed: trio.Event = field(default_factory=trio.Event)

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def _notify(self) -> None:
        self.changed.set()
        self.changed = trio.Event()

    async def handle(self, stream: trio.SocketStream) -> None:
        self.connections += 1
        self._notify()
        async with stream:
            data = b""
            with trio.move_on_after(5):
                while len(data) < 47:  # the library's hello is 47 bytes, sometimes in 2 parts
                    chunk = await stream.receive_some(4096)
                    if not chunk:
                        break
                    data += chunk
            self.first_bytes.append(data)
            self._notify()
            if self.close:
                return
            while await stream.receive_some(4096):
                pass  # the API closes its socket when released
            self.closed_by_peer += 1
            self._notify()

    async def wait(self, predicate: Callable[[Front], bool], within: float = 10) -> None:
        with trio.fail_after(within):
            while not predicate(self):
                await self.changed.wait()


@asynccontextmanager
async def fake_front(*, close: bool) -> AsyncIterator[Front]:
    listeners = await trio.open_tcp_listeners(0, host="127.0.0.1")
    port = listeners[0].socket.getsockname()[1]
    front = Front(port, close)
    async with trio.open_nursery() as nursery:
        nursery.start_soon(trio.serve_listeners, front.handle, listeners)
        yield front
        nursery.cancel_scope.cancel()


def answer_to(rid: int) -> Callable[[dict[str, object]], bool]:
    """A ``Client.expect`` predicate: the frame answering RequestID ``rid``."""
    return lambda frame: frame.get("RequestID") == rid


def unused_port() -> int:
    """A loopback port with nothing listening (connections are refused)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


# --- the service in a child process ---------------------------------------------------------


def write_config(tmp: Path, td: str, md: str, **ctp: object) -> Path:
    settings = {
        "backend": "ctp",
        "td_fronts": [td],
        "md_fronts": [md],
        "flow_dir": str(tmp / "flow"),
        "app_id": "simnow_client_test",
        "auth_code": "0000000000000000",
        "login_timeout_s": 2.0,
        "release_timeout_s": 6.0,
        **ctp,
    }

    def value(v: object) -> str:
        if isinstance(v, list):
            return "[" + ", ".join(value(i) for i in v) + "]"
        if isinstance(v, str):
            return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
        return str(v).lower() if isinstance(v, bool) else str(v)

    text = (
        '[server]\nhost = "127.0.0.1"\n\n[ctp]\n'
        + "".join(f"{k} = {value(v)}\n" for k, v in settings.items())
        + '\n[log]\nlevel = "INFO"\n'
    )
    path = tmp / "webctp.toml"
    path.write_text(text)
    return path


class ServiceProcess:
    """``python -m webctp`` in a child process; stderr lines collected as they arrive."""

    def __init__(self, proc: trio.Process) -> None:
        self.proc = proc
        self.lines: list[str] = []
        self.stdout = b""
        self.ports: dict[str, int] = {}
        self.eof = False
        self._changed = trio.Event()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def read_stderr(self) -> None:
        assert self.proc.stderr is not None
        buf = b""
        async for chunk in self.proc.stderr:
            buf += chunk
            *lines, buf = buf.split(b"\n")
            self.lines.extend(line.decode("utf-8", "replace") for line in lines)
            self._notify()
        if buf:
            self.lines.append(buf.decode("utf-8", "replace"))
        self.eof = True
        self._notify()

    async def read_stdout(self) -> None:
        assert self.proc.stdout is not None
        async for chunk in self.proc.stdout:
            self.stdout += chunk

    def stderr_text(self) -> str:
        return "\n".join(self.lines)

    async def wait_for(
        self, needle: str | Callable[[str], bool], within: float = 10, start: int = 0
    ) -> str:
        """The first stderr line (from index ``start``) containing ``needle``."""
        match = (lambda line: needle in line) if isinstance(needle, str) else needle
        i = start
        with trio.move_on_after(within):
            while True:
                changed = self._changed
                while i < len(self.lines):
                    if match(self.lines[i]):
                        return self.lines[i]
                    i += 1
                if self.eof:
                    break
                await changed.wait()
        raise AssertionError(f"no stderr line matching {needle!r}; stderr:\n{self.stderr_text()}")

    def threads(self) -> list[str]:
        """Names of the service's OS threads, without trio's idle worker-thread cache."""
        names = []
        for tid in os.listdir(f"/proc/{self.pid}/task"):
            try:
                name = Path(f"/proc/{self.pid}/task/{tid}/comm").read_text().strip()
            except OSError:
                continue
            if not name.startswith("Trio thread"):
                names.append(name)
        return names

    async def stop(self, within: float = 10) -> int:
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
        with trio.move_on_after(within) as scope:
            await self.proc.wait()
        if scope.cancelled_caught:
            self.proc.kill()
            await self.proc.wait()
            raise AssertionError(f"service did not stop on SIGTERM; stderr:\n{self.stderr_text()}")
        assert self.proc.returncode is not None
        return self.proc.returncode


@asynccontextmanager
async def service_process(
    config: Path, cache: Path, *, cwd: Path = ROOT, env: dict[str, str] | None = None
) -> AsyncIterator[ServiceProcess]:
    """The service; ``cwd`` is its working directory, ``env`` added to its environment."""
    proc = await trio.lowlevel.open_process(
        service_command(config),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=child_env(cache, **(env or {})),
        cwd=cwd,
    )
    svc = ServiceProcess(proc)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(svc.read_stderr)
            nursery.start_soon(svc.read_stdout)
            for service in ("ws", "http"):
                line = await svc.wait_for(f"event=listening service={service} ", within=30)
                found = listening(line)
                assert found is not None, line
                svc.ports[service] = found[1]
            yield svc
            await svc.stop()
            # the stream readers end at EOF, once the service and its output relay are gone
            with trio.fail_after(10):
                while not svc.eof:
                    await svc._changed.wait()
    finally:
        if proc.returncode is None:
            proc.kill()
            with trio.CancelScope(shield=True):
                await proc.wait()
