"""Run the README's "Run it" commands as a new user would, and check that the service answers.

``python3 .ci/readme_check.py "<the shell block under '## Run it'>"`` (``.ci/run`` passes it).

In a clean clone of HEAD (in a temporary folder), the block runs verbatim except that the
service is started on ports the system picks (``--port 0 --ws-port 0``: CI never takes fixed
ports). Passes when ``GET /healthz`` answers ``"status": "ok"``, the WebSocket port accepts a
connection, and SIGTERM stops the service with status 0. Standard library only.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
START = "python -m webctp"
INSTALL_TIMEOUT_S = 480  # a fresh venv and `pip install .` with an empty pip cache


def say(text: str) -> None:
    print(f"readme_check: {text}", file=sys.stderr, flush=True)


def command_lines(block: str) -> list[str]:
    lines = [line for line in block.splitlines() if line.strip() and not line.startswith("#")]
    if not lines or START not in lines[-1]:
        raise SystemExit(f"readme_check: the Run it block must end with `{START} ...`: {block!r}")
    # the service replaces the shell (exec) so that SIGTERM reaches it; ports from the system
    lines[-1] = lines[-1].replace(START, f"exec {START}", 1) + " --port 0 --ws-port 0"
    return lines


def wait_listening(proc: subprocess.Popen[str]) -> dict[str, int]:
    assert proc.stderr is not None
    ports: dict[str, int] = {}
    deadline = time.monotonic() + INSTALL_TIMEOUT_S
    while len(ports) < 2:
        line = proc.stderr.readline()
        if not line:
            raise SystemExit(f"readme_check: exited with {proc.wait()} before listening")
        sys.stderr.write(line)
        if "event=listening" in line:
            fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
            ports[fields["service"]] = int(fields["port"])
        if time.monotonic() > deadline:
            raise SystemExit(f"readme_check: not listening after {INSTALL_TIMEOUT_S} s")
    return ports


def check(clone: Path, block: str) -> None:
    script = "\n".join(command_lines(block))
    say(f"running in {clone}:\n{script}")
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    proc = subprocess.Popen(
        ["bash", "-euo", "pipefail", "-c", script],
        cwd=clone,
        env=env,
        stdout=sys.stderr,  # pip's progress, shown
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        ports = wait_listening(proc)
        url = f"http://127.0.0.1:{ports['http']}/healthz"
        with urllib.request.urlopen(url, timeout=10) as answer:
            health = json.loads(answer.read())
        if health.get("status") != "ok":
            raise SystemExit(f"readme_check: {url} answered {health}")
        say(f"{url}: {health}")
        socket.create_connection(("127.0.0.1", ports["ws"]), timeout=10).close()
        proc.send_signal(signal.SIGTERM)
        status = proc.wait(timeout=10)
        if status != 0:
            raise SystemExit(f"readme_check: exit status {status} after SIGTERM")
        assert proc.stderr is not None
        rest = proc.stderr.read()
        if "Traceback" in rest or "event=stopped" not in rest:
            raise SystemExit(f"readme_check: unclean stop:\n{rest}")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def main() -> None:
    started = time.monotonic()
    (block,) = sys.argv[1:]
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    if dirty:
        say("uncommitted changes are not part of the clone: checking HEAD")
    work = Path(tempfile.mkdtemp(prefix="webctp-readme-"))
    try:
        clone = work / "webctp"
        subprocess.run(["git", "clone", "--quiet", str(ROOT), str(clone)], check=True)
        check(clone, block)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    say(f"passed in {time.monotonic() - started:.0f} s")


if __name__ == "__main__":
    main()
