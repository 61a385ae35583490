"""The console relay on its own (no binding): C-level writes on fd 1/2 become log lines."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

from .conftest import LOG_LINE, ROOT, child_env

pytestmark = pytest.mark.ctp

_PROGRAM = """
import ctypes, logging, os, sys, time
from webctp import _log
from webctp.backend import _console
_log.setup("INFO")
assert _console.capture() and not _console.capture()
libc = ctypes.CDLL(None)
log = logging.getLogger("webctp.test")
libc.write(1, b"CThostFtdcUserApiImplBase::OnSessionDis", 39)   # half a line ...
log.info("event=between_halves")                              # ... our log line meanwhile ...
time.sleep(0.05)
libc.write(1, b"connected[0x1][2][ 4097]\\n", 25)              # ... and the rest
libc.write(2, b"Invalid port: Success\\n", 22)
libc.write(2, "\\u9519\\u8bef".encode("gb18030") + b"\\n", 5)
print("intended stdout")
sys.stdout.flush()
libc.write(1, b"no newline", 10)
time.sleep(0.5)
if sys.argv[1] == "flood":  # like 6.7.2.x reconnecting hundreds of times a second
    for i in range(3000):
        line = b"CThostFtdcUserApiImplBase::OnSessionDisconnected[0x1][%d][ 4097]\\n" % i
        libc.write(1, line, len(line))
if sys.argv[1] in ("abort", "flood"):
    libc.write(2, b"terminate called after throwing an instance of 'std::runtime_error'\\n", 68)
    os.abort()
"""


def _run(mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", _PROGRAM, mode],
        env=child_env(None),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_library_output_becomes_structured_lines() -> None:
    result = _run("exit")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "intended stdout\n"
    lines = result.stderr.splitlines()
    assert all(LOG_LINE.match(line) for line in lines), result.stderr
    text = [line.split(" text=", 1)[1] for line in lines if "event=ctp_output" in line]
    assert text == [
        '"CThostFtdcUserApiImplBase::OnSessionDisconnected[0x1][2][ 4097]"',
        '"Invalid port: Success"',
        '"错误"',
        '"no newline"',
    ]
    assert any(line.endswith("INFO webctp.test event=between_halves") for line in lines)
    assert " WARNING webctp.ctp event=ctp_output stream=stderr " in result.stderr
    assert " INFO webctp.ctp event=ctp_output stream=stdout " in result.stderr


def test_last_words_before_a_crash_are_not_lost() -> None:
    """Why the reader is a process: it outlives a service killed by SIGABRT."""
    result = _run("abort")
    assert result.returncode == -signal.SIGABRT
    assert result.stdout == "intended stdout\n"
    assert (
        'event=ctp_output stream=stderr text="terminate called after throwing an instance of '
        "'std::runtime_error'\"" in result.stderr
    ), result.stderr


def test_a_flood_is_rate_limited_and_counted_and_the_last_words_kept() -> None:
    result = _run("flood")
    assert result.returncode == -signal.SIGABRT
    lines = result.stderr.splitlines()
    assert all(LOG_LINE.match(line) for line in lines), result.stderr
    floods = [line for line in lines if "OnSessionDisconnected[0x1][" in line]
    suppressed = [
        int(line.rsplit("lines=", 1)[1].split()[0])
        for line in lines
        if "event=ctp_output_suppressed stream=stdout" in line
    ]
    assert 200 <= len(floods) < 400, len(floods)
    # every line relayed or counted: the flood's 3000 and the preamble's one
    assert len(floods) + sum(suppressed) == 3001
    assert "[2999][ 4097]" in floods[-1]  # the tail of the flood is relayed at the end
    assert sum("terminate called after throwing" in line for line in lines) == 1
