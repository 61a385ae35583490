"""Keep the CTP library's console output out of everything a user parses.

The library writes to the C-level stdout and stderr (file descriptors 1 and 2), outside Python:
``CThostFtdcUserApiImplBase::OnSessionDisconnected[...][ 4097]`` on fd 1 at every disconnect,
``Invalid port: Success`` on fd 2, SWIG's "detected a memory leak" notes on fd 1 at exit, and
its last words before a crash. Left alone, these land on our stdout and
between (or inside) our one-line logs on stderr.

``capture()`` (called by ``python -m webctp`` when ``backend = "ctp"``):

- moves Python's ``sys.stdout``/``sys.stderr``, and the logging handlers that wrote to them, onto
  duplicates of the original descriptors: our logs keep going to the real stderr, one line per
  event, and anything Python prints to stdout on purpose still reaches stdout;
- points descriptors 1 and 2 at two pipes;
- starts a small relay process that reads both pipes, splits them into lines and writes each
  line to the real stderr as one structured log line::

    2025-06-17T08:00:00.123Z INFO webctp.ctp event=ctp_output stream=stdout text="CThost..."

  (level INFO for fd 1, WARNING for fd 2; dropped below the configured log level).

Why a process rather than a thread: the library writes its crash message to fd 2 a moment
before SIGABRT or SIGSEGV kills the process, and a reader thread would die with it, losing the
one line that explains the crash. The relay outlives the service: it sees end-of-file only when
every writer is gone, drains what is left and exits. It runs in its own session (a terminal's
Ctrl-C does not reach it), ignores SIGINT/SIGTERM, and never blocks the writers: if its own
stderr fails it keeps reading and discards. Each relayed line is one ``write`` of less than
PIPE_BUF bytes and our logging handler writes each record with one ``write`` too, so lines from
the two never mix mid-line; a partial line is held until its newline arrives (or 0.2 s pass).

The relay limits each stream to 50 lines a second (bursts of 200): openctp-ctp 6.7.2.x prints a
line per reconnect, hundreds a second against a front that hangs up at once. Lines beyond the
limit are counted (``event=ctp_output_suppressed stream=... lines=N``, once a second) and the
last 20 of them are relayed when the stream ends, so a crash message is never among the lost.
"""

from __future__ import annotations

import ctypes
import io
import logging
import os
import subprocess
import sys
from typing import TextIO

log = logging.getLogger("webctp.ctp")

LOGGER = "webctp.ctp"

_RELAY = r"""
import collections, json, os, selectors, signal, sys, time
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGTERM, signal.SIG_IGN)
levels = {"stdout": sys.argv[1], "stderr": sys.argv[2]}
logger = sys.argv[3]
streams = {0: "stdout", int(sys.argv[4]): "stderr"}
CHUNK = 512      # raw bytes per relayed line: the escaped line stays below PIPE_BUF (4096)
IDLE = 0.2       # a partial line is relayed after this long without its newline
RATE, BURST = 50.0, 200   # lines per second per stream; beyond it lines are counted, not relayed
TAIL = 20        # the last suppressed lines, relayed at the end (a crash message comes last)
pending = {fd: b"" for fd in streams}
since = {fd: 0.0 for fd in streams}
tokens = {name: float(BURST) for name in streams.values()}
refilled = {name: time.monotonic() for name in streams.values()}
dropped = {name: 0 for name in streams.values()}
reported = {name: 0.0 for name in streams.values()}
tail = {name: collections.deque(maxlen=TAIL) for name in streams.values()}
broken = False

def write(level, text):
    global broken
    if broken:
        return
    now = time.time()
    stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
    data = ("%s.%03dZ %s %s %s\n" % (stamp, int(now % 1 * 1000), level, logger, text)).encode(
        "utf-8", "backslashreplace")
    try:
        while data:
            data = data[os.write(2, data):]
    except OSError:
        broken = True   # keep draining so the service never blocks on a full pipe

def emit(name, raw):
    for start in range(0, len(raw), CHUNK):
        piece = raw[start:start + CHUNK]
        try:
            text = piece.decode("utf-8")
        except UnicodeDecodeError:
            text = piece.decode("gb18030", "replace")
        write(levels[name], "event=ctp_output stream=%s text=%s" % (
            name, json.dumps(text, ensure_ascii=False)))

def summary(name, count):
    if count > 0:
        write("WARNING", "event=ctp_output_suppressed stream=%s lines=%d limit=%g/s" % (
            name, count, RATE))

def relay(name, raw):
    raw = raw.rstrip(b"\r")
    if not levels[name] or not raw.strip():
        return
    now = time.monotonic()
    tokens[name] = min(BURST, tokens[name] + (now - refilled[name]) * RATE)
    refilled[name] = now
    if tokens[name] < 1:
        dropped[name] += 1
        tail[name].append(raw)
        return
    tokens[name] -= 1
    emit(name, raw)

def report(name, final=False):
    count = dropped[name]
    if final:
        shown = list(tail[name])
        summary(name, count - len(shown))
        for raw in shown:
            emit(name, raw)
    elif count:
        summary(name, count)
    dropped[name] = 0
    tail[name].clear()
    reported[name] = time.monotonic()

selector = selectors.DefaultSelector()
for fd, name in streams.items():
    selector.register(fd, selectors.EVENT_READ, name)
while streams:
    now = time.monotonic()
    deadlines = [since[fd] + IDLE for fd in streams if pending[fd]]
    deadlines += [reported[n] + 1.0 for n in streams.values() if dropped[n]]
    timeout = max(0.0, min(deadlines) - now) if deadlines else None
    for key, _ in selector.select(timeout):
        fd, name = key.fd, key.data
        try:
            chunk = os.read(fd, 65536)
        except OSError:
            chunk = b""
        if not chunk:
            selector.unregister(fd)
            del streams[fd]
            relay(name, pending.pop(fd))
            report(name, final=True)
            continue
        if not pending[fd]:
            since[fd] = time.monotonic()
        *lines, rest = (pending[fd] + chunk).split(b"\n")
        for line in lines:
            relay(name, line)
        if lines and rest:
            since[fd] = time.monotonic()
        pending[fd] = rest
    now = time.monotonic()
    for fd, name in streams.items():
        if pending[fd] and (now - since[fd] >= IDLE or len(pending[fd]) >= 65536):
            relay(name, pending[fd])
            pending[fd] = b""
        if dropped[name] and now - reported[name] >= 1.0:
            report(name)
"""

_relay: subprocess.Popen[bytes] | None = None


def captured() -> bool:
    return _relay is not None


def _reopen(fd: int, like: TextIO | None) -> TextIO:
    """A text stream on ``fd`` with the encoding and error policy of ``like``."""
    return io.TextIOWrapper(
        io.FileIO(fd, "w", closefd=True),
        encoding=getattr(like, "encoding", None) or "utf-8",
        errors=getattr(like, "errors", None) or "backslashreplace",
        line_buffering=True,
    )


def _retarget_handlers(moves: dict[int, TextIO]) -> None:
    """Point stream handlers that wrote to an old stream (by id) at its replacement."""
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [
        obj for obj in logging.Logger.manager.loggerDict.values() if isinstance(obj, logging.Logger)
    ]
    for logger in loggers:
        for handler in logger.handlers:
            if (
                isinstance(handler, logging.StreamHandler)
                and not isinstance(handler, logging.FileHandler)
                and id(handler.stream) in moves
            ):
                handler.setStream(moves[id(handler.stream)])


def _line_buffer_c_stdout() -> None:
    """C's stdout on a pipe is fully buffered (4 KB): the library's short lines would wait there
    for minutes, or be lost in a crash. Make it line-buffered, as on a terminal. (Python's -u or
    PYTHONUNBUFFERED unbuffer it too, which is why this only shows without them.)"""
    try:
        libc = ctypes.CDLL(None)
        setvbuf = libc.setvbuf
        stdout = ctypes.c_void_p.in_dll(libc, "stdout")
    except (OSError, ValueError, AttributeError):  # not glibc/musl-like: leave it as it is
        return
    setvbuf.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int, ctypes.c_size_t]
    setvbuf(stdout, None, _IOLBF, 0)


_IOLBF = 1  # <stdio.h>, glibc and musl


def capture() -> bool:
    """Route fd 1 and fd 2 through the relay; False when already done or not possible."""
    global _relay
    if _relay is not None or os.name != "posix":
        return False
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    level = logging.getLogger().getEffectiveLevel()
    out_level = "INFO" if level <= logging.INFO else ""
    err_level = "WARNING" if level <= logging.WARNING else ""
    try:
        real_out, real_err = os.dup(1), os.dup(2)
    except OSError:
        return False  # no stdout/stderr at all: nothing to protect
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    try:
        relay = subprocess.Popen(
            [sys.executable, "-I", "-S", "-c", _RELAY, out_level, err_level, LOGGER, str(err_r)],
            stdin=out_r,
            stdout=subprocess.DEVNULL,
            stderr=real_err,
            pass_fds=(err_r,),
            start_new_session=True,
        )
    except OSError as exc:
        for fd in (real_out, real_err, out_r, out_w, err_r, err_w):
            os.close(fd)
        log.warning("event=console_capture_failed error=%r", str(exc))
        return False
    os.close(out_r)
    os.close(err_r)
    new_out, new_err = _reopen(real_out, sys.stdout), _reopen(real_err, sys.stderr)
    moves = {id(s): new_out for s in (sys.stdout, sys.__stdout__) if s is not None}
    moves.update({id(s): new_err for s in (sys.stderr, sys.__stderr__) if s is not None})
    _retarget_handlers(moves)
    sys.stdout, sys.stderr = new_out, new_err
    os.dup2(out_w, 1)
    os.dup2(err_w, 2)
    os.close(out_w)
    os.close(err_w)
    _line_buffer_c_stdout()
    _relay = relay
    log.info("event=console_captured relay_pid=%d fds=1,2", relay.pid)
    return True
