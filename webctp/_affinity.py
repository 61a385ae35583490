"""Pinning the service to CPUs (``server.cpu_affinity``, Linux).

Why it is offered: CTP's callback threads hand every event to the Trio thread, and both need
the interpreter lock. On different CPUs each hand-off wakes a thread on the other CPU, which on
virtual machines costs about 0.1-0.2 ms; on one CPU it is a plain context switch. Measured in
``docs/benchmarks.md``: lower order round trip and tick latency, but about a third of the
tick throughput under a flood (the threads then take turns tick by tick).
"""

from __future__ import annotations

import logging
import os

log = logging.getLogger("webctp.affinity")


def supported() -> bool:
    return hasattr(os, "sched_setaffinity") and hasattr(os, "sched_getaffinity")


def available() -> set[int]:
    """CPUs this process may use now."""
    return set(os.sched_getaffinity(0)) if supported() else set()


def pin(cpus: tuple[int, ...]) -> None:
    """Run every thread of the process on ``cpus``; threads started later inherit it from the
    thread that starts them. Nothing to do when ``cpus`` is empty."""
    if not cpus:
        return
    wanted = set(cpus)
    try:
        tids = [int(t) for t in os.listdir("/proc/self/task")]
    except OSError:  # no /proc: the calling thread only
        tids = [0]
    for tid in tids:
        try:
            os.sched_setaffinity(tid, wanted)
        except ProcessLookupError:  # the thread ended meanwhile
            pass
    log.info("event=cpu_affinity cpus=%s", ",".join(str(c) for c in sorted(wanted)))
