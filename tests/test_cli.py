"""The command line: configuration errors are one clear line; SIGTERM stops the service."""

from __future__ import annotations

import errno
import importlib.util
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.processes import listening, service_command
from webctp._bind_errors import advice
from webctp.config import ConfigError, load_config, with_overrides

ROOT = Path(__file__).resolve().parent.parent


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "webctp", *args],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=cwd,
        check=False,
    )


def test_repo_config_loads() -> None:
    cfg = load_config(ROOT / "config.toml")
    assert cfg.server.host == "127.0.0.1"
    assert cfg.ctp.backend == "sim"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[server]\nprot = 1\n", "server: unknown key 'prot'"),
        ("[server]\nport = 'x'\n", "server.port: expected an integer"),
        ("[ctp]\nbackend = 'zmq'\n", "ctp.backend: must be one of"),
        ("[nope]\n", "top level: unknown key 'nope'"),
        ("[server\n", "not valid TOML"),
        ("[sim]\nstarting_balance = true\n", "sim.starting_balance: expected a number"),
        ("[ctp]\nbackend = 'ctp'\n", "CTP fronts look like tcp://"),
        ("[server]\ncpu_affinity = [100000]\n", "cpu_affinity: CPU 100000 is not available"),
        ("[server]\ncpu_affinity = ['0']\n", "server.cpu_affinity[0]: expected an integer"),
        ("[server]\nswitch_interval_ms = 0.001\n", "switch_interval_ms: 0, or from 0.01 to 100"),
        ("[server]\nswitch_interval_ms = 500\n", "switch_interval_ms: 0, or from 0.01 to 100"),
    ],
)
def test_config_errors(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(path) in str(info.value)
    assert message in str(info.value)


def test_cli_reports_config_error_without_traceback(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[limits]\nqueries_per_second = 'fast'\n")
    result = run("--config", str(path))
    assert result.returncode == 2
    assert "configuration error" in result.stderr and "queries_per_second" in result.stderr
    assert "Traceback" not in result.stderr
    missing = run("--config", str(tmp_path / "missing.toml"))
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def write_config(tmp_path: Path, server: str = "") -> Path:
    """A configuration with the simulator's files under ``tmp_path``."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f"[server]\n{server}\n"
        f'[ctp]\nflow_dir = "{tmp_path / "flow"}"\n[sim]\ndb_path = "{tmp_path / "s.db"}"\n'
    )
    return cfg


def start_service(tmp_path: Path, server: str = "", *args: str) -> subprocess.Popen[str]:
    """``python -m webctp`` on free ports with the simulator, its files under ``tmp_path``."""
    cfg = write_config(tmp_path, server)
    return subprocess.Popen(
        service_command(cfg, *args),
        stderr=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        cwd=ROOT,
    )


def test_sigterm_stops_within_5s(tmp_path: Path) -> None:
    proc = start_service(tmp_path)
    assert proc.stderr is not None
    try:
        ports: dict[str, int] = {}
        deadline = time.monotonic() + 30
        while len(ports) < 2 and time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line, "service exited early"
            if found := listening(line):
                ports[found[0]] = found[1]
        assert set(ports) == {"http", "ws"}
        start = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
        assert time.monotonic() - start < 5
        rest = proc.stderr.read()
        assert "Traceback" not in rest and "event=stopped" in rest
        assert proc.stdout is not None and proc.stdout.read() == ""
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="CPU affinity is Linux-only")
def test_cpu_affinity_pins_every_thread(tmp_path: Path) -> None:
    cpu = min(os.sched_getaffinity(0))
    proc = start_service(tmp_path, f"cpu_affinity = [{cpu}]")
    assert proc.stderr is not None
    try:
        listening = 0
        logged = False
        deadline = time.monotonic() + 30
        while listening < 2 and time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line, "service exited early"
            logged = logged or f"event=cpu_affinity cpus={cpu}" in line
            listening += "event=listening" in line
        assert listening == 2 and logged
        allowed = {}
        for task in Path(f"/proc/{proc.pid}/task").iterdir():
            status = (task / "status").read_text()
            name = next(x for x in status.splitlines() if x.startswith("Name:")).split()[1]
            cpus = next(x for x in status.splitlines() if x.startswith("Cpus_allowed_list:"))
            allowed[f"{task.name} {name}"] = cpus.split()[1]
        # the main (Trio) thread and the simulator's engine and callback threads at least
        assert len(allowed) >= 3
        assert set(allowed.values()) == {str(cpu)}, allowed
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_port_out_of_range_blames_the_command_line_option() -> None:
    result = run("--port", "70000")
    assert result.returncode == 2
    assert "--port: 70000 is not a port" in result.stderr and "<defaults>" not in result.stderr
    cfg = load_config(ROOT / "config.toml")
    with pytest.raises(ConfigError, match=r"command line --ws-port 8080: server.port and"):
        with_overrides(cfg, ws_port=cfg.server.port)
    with pytest.raises(ConfigError, match=r"^command line: --ws-port 65536: must be 0-65535$"):
        with_overrides(cfg, ws_port=65536)


@pytest.mark.parametrize(
    ("busy", "free", "setting"),
    [
        ("--ws-port", "--port", "server.ws_port (--ws-port)"),
        ("--port", "--ws-port", "server.port (--port)"),
    ],
)
def test_busy_port_names_the_port_and_the_setting(
    tmp_path: Path, busy: str, free: str, setting: str
) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        cfg = write_config(tmp_path)
        result = run("--config", str(cfg), busy, str(port), free, "0")
    assert result.returncode == 1, result.stderr
    assert f"127.0.0.1:{port}" in result.stderr and setting in result.stderr, result.stderr
    assert "Address already in use" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (OSError(errno.EADDRNOTAVAIL, "Cannot assign requested address"), "server.host (--host)"),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), "server.host (--host)"),
        (OSError(errno.EACCES, "Permission denied"), "set server.port (--port) to 1024"),
        (
            OSError(errno.EMFILE, "Too many open files"),
            "check server.host (--host) and server.port",
        ),
    ],
)
def test_listen_advice_names_the_setting(error: OSError, expected: str) -> None:
    text = advice("HTTP", "::1", 80, "port", error)
    assert text.startswith(f"cannot listen for HTTP on [::1]:80: {error.strerror}; ")
    assert expected in text


def test_td_mode_lists_only_the_td_path(tmp_path: Path) -> None:
    proc = start_service(tmp_path, "", "--mode", "td")
    assert proc.stderr is not None
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            assert line, "service exited early"
            if "event=listening service=ws" in line:
                assert " paths=/td/ mode=td" in line, line
                break
        else:
            raise AssertionError("no listening line")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_missing_binding_names_a_package_that_exists(monkeypatch: pytest.MonkeyPatch) -> None:
    from webctp.backend import _ctp

    monkeypatch.setattr(_ctp, "_modules", None)
    real_find_spec = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util,
        "find_spec",
        lambda name, *a: None if name == "openctp_ctp" else real_find_spec(name, *a),
    )
    with pytest.raises(_ctp.BindingUnavailable) as info:
        _ctp.import_binding()
    message = str(info.value)
    assert 'pip install "openctp-ctp>=6.7.2,<6.8"' in message and "'.[ctp]'" in message
    assert "webctp[ctp]" not in message
