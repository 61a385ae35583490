"""The command line: configuration errors are one clear line; SIGTERM stops the service."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from webctp.config import ConfigError, load_config

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


def start_service(tmp_path: Path, server: str = "") -> subprocess.Popen[str]:
    """``python -m webctp`` on free ports with the simulator, its files under ``tmp_path``."""
    cfg = tmp_path / "c.toml"
    cfg.write_text(
        f"[server]\n{server}\n"
        f'[ctp]\nflow_dir = "{tmp_path / "flow"}"\n[sim]\ndb_path = "{tmp_path / "s.db"}"\n'
    )
    return subprocess.Popen(
        [sys.executable, "-m", "webctp", "--config", str(cfg), "--port", "0", "--ws-port", "0"],
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
            if "event=listening" in line:
                fields = dict(p.split("=", 1) for p in line.split() if "=" in p)
                ports[fields["service"]] = int(fields["port"])
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
