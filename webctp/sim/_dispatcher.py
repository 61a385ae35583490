"""The exchange's callback thread: runs every Spi callback of every API attached to it.

One thread per exchange, not per API, so 1,000 sessions cost one thread (the real library
starts two OS threads per API). Callbacks are delivered in the order the engine posted them,
never on the caller's thread and never inside a ``Req*`` call.

``Release`` semantics come from here: an API marked released receives nothing more, and
``wait_idle(api)`` returns once a callback already running for it has finished.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any, Protocol


def _sleep0() -> None:
    time.sleep(0)


# Release the GIL for a moment, as the C++ library's thread does between two callbacks.
# ``sched_yield`` releases it around a ~1 µs system call; ``time.sleep(0)`` is a
# ``clock_nanosleep`` that cost ~130 µs per call on the benchmark machine (timer slack), which
# capped the simulator's tick bursts at ~2,500 ticks/s. Windows has no ``sched_yield``.
yield_gil: Callable[[], None] = getattr(os, "sched_yield", _sleep0)

PAUSE_AFTER_S = 0.002
"""A callback thread busy this long without a pause sleeps once (``time.sleep(0)``). Releasing
the GIL and asking for it straight back (``yield_gil``) lets a thread that waits for it in
only when that thread wakes in time, which a thread on another CPU seldom does: it then waits
for the interpreter's 5 ms switch interval. Without the pause, a fan-out burst (200 sessions,
4,000 callbacks in a row) can keep the service's event loop waiting that way for most of the
burst: one benchmark run of four saw 27,650 of 160,000 ticks conflated."""


class Target(Protocol):
    """What the dispatcher needs of an API object."""

    _sim_released: bool
    _sim_spi: Any

    def _sim_query_done(self) -> None: ...


class Job:
    """One callback, or one tick fanned out to many APIs (one struct shared by all)."""

    __slots__ = ("args", "at", "ends_query", "method", "targets")

    def __init__(
        self,
        targets: Target | Sequence[Target],
        method: str,
        args: tuple[Any, ...],
        ends_query: bool = False,
        at: float | None = None,
    ) -> None:
        self.targets = targets
        self.method = method
        self.args = args
        self.ends_query = ends_query
        self.at = at
        """``time.perf_counter()`` before which the job is not delivered (paced bursts)."""


class Dispatcher:
    """A FIFO of callbacks served by one daemon thread."""

    def __init__(self, name: str) -> None:
        self._jobs: deque[Job | threading.Event] = deque()
        self._cv = threading.Condition()
        self._current: Target | None = None
        self._stopping = False
        self._thread = threading.Thread(target=self._run, name=f"sim-{name}-callbacks", daemon=True)
        self.delivered = 0

    def start(self) -> None:
        self._thread.start()

    @property
    def thread(self) -> threading.Thread:
        return self._thread

    def post(self, jobs: Sequence[Job]) -> None:
        if not jobs:
            return
        with self._cv:
            self._jobs.extend(jobs)
            self._cv.notify()

    def drained(self) -> threading.Event:
        """An event set once every job posted before this call has been delivered."""
        ev = threading.Event()
        with self._cv:
            if self._stopping and not self._thread.is_alive():
                ev.set()
            else:
                self._jobs.append(ev)
                self._cv.notify()
        return ev

    def stop(self, timeout: float = 10.0) -> None:
        """Deliver what is queued, then end the thread."""
        with self._cv:
            self._stopping = True
            self._cv.notify()
        if self._thread.is_alive() and threading.current_thread() is not self._thread:
            self._thread.join(timeout)

    def is_callback_thread(self) -> bool:
        return threading.current_thread() is self._thread

    def release(self, target: Target) -> None:
        """Mark ``target`` released and wait for a callback running for it to return."""
        with self._cv:
            target._sim_released = True
            while self._current is target:
                self._cv.wait()

    def _run(self) -> None:
        cv = self._cv
        jobs = self._jobs
        clock = time.perf_counter
        busy_since = clock()
        while True:
            with cv:
                if not jobs:
                    while not jobs and not self._stopping:
                        cv.wait()
                    busy_since = clock()
                if not jobs:
                    return
                job = jobs.popleft()
            if isinstance(job, threading.Event):
                job.set()
                continue
            if job.at is not None:
                wait = job.at - clock()
                if wait > 0:
                    time.sleep(wait)
                    busy_since = clock()
            targets = job.targets if isinstance(job.targets, Sequence) else (job.targets,)
            tick = job.method == "OnRtnDepthMarketData"
            for target in targets:
                self._deliver(target, job)
                if tick:
                    # The real library's thread holds the GIL only inside a callback: release
                    # it after each, and pause now and then (PAUSE_AFTER_S).
                    if clock() - busy_since >= PAUSE_AFTER_S:
                        time.sleep(0)
                        busy_since = clock()
                    else:
                        yield_gil()

    def _deliver(self, target: Target, job: Job) -> None:
        cv = self._cv
        with cv:
            if target._sim_released:
                return
            spi = target._sim_spi
            self._current = target
        try:
            if job.ends_query:
                # cleared before the callback runs: a new query from inside the IsLast callback
                # is accepted, as with the real library (the response has fully arrived)
                target._sim_query_done()
            if spi is not None:
                getattr(spi, job.method)(*job.args)
                self.delivered += 1
        except BaseException:  # noqa: BLE001 - the binding prints and carries on, even for SystemExit
            print(f"Exception in {job.method}:", file=sys.stderr)
            traceback.print_exc()
        finally:
            with cv:
                self._current = None
                cv.notify_all()
