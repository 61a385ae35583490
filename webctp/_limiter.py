"""Per-session request limiter that matches CTP's flow control.

CTP allows one query in flight per session (a second returns -2), a front-configured number of
queries per second (past it: OnRspError ErrorID 90) and a broker-configured number of orders
plus cancels per second (past it: ErrorID 116). Clients should never see any of that, so:

- **query lane**: FIFO, one query in flight until its last response arrives, and queries
  started no closer than ``1/queries_per_second`` apart. A query CTP still refuses with -2/-3 or
  ErrorID 90 is retried after ``retry_delay_s`` (up to ``max_retries``), invisibly to the client.
- **order lane**: FIFO, orders and cancels paced at ``orders_per_second``; -2/-3 are retried.
- **bound**: at most ``max_queued`` requests wait in each lane. ``submit`` refuses the next one
  at once (the caller answers -429) instead of letting it wait forever.

Jobs carry their own callbacks, so the limiter knows nothing about frames or CTP structs.
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from .protocol.errors import Code


class Lane(enum.Enum):
    QUERY = "query"
    ORDER = "order"


@dataclass(eq=False)
class Job:
    lane: Lane
    send: Callable[[], int]
    """Makes the CTP call; returns CTP's code (0 sent, -1/-2/-3 refused)."""
    fail: Callable[[int, str], None]
    """Tells the client the request failed (gateway code or CTP return code, and a detail)."""
    rid: int = 0
    """The internal request ID (the query lane waits for its last response)."""
    retries: int = 0
    done: trio.Event = field(default_factory=trio.Event)
    retry_requested: bool = False


_RETRYABLE = (Code.CTP_TOO_MANY_PENDING, Code.CTP_TOO_MANY_PER_SECOND)


class RequestLimiter:
    def __init__(
        self,
        *,
        queries_per_second: float,
        orders_per_second: float,
        max_queued: int,
        query_timeout_s: float,
        retry_delay_s: float = 1.0,
        max_retries: int = 5,
    ) -> None:
        self.query_interval = 1.0 / queries_per_second
        self.order_interval = 1.0 / orders_per_second
        self.query_timeout_s = query_timeout_s
        self.retry_delay_s = retry_delay_s
        self.max_retries = max_retries
        # Bounded: overflow policy is "refuse at submit" (-429), never wait forever.
        self._q_send, self._q_recv = trio.open_memory_channel[Job](max_queued)
        self._o_send, self._o_recv = trio.open_memory_channel[Job](max_queued)
        self.inflight: Job | None = None
        self._order_busy = False
        self._order_lane_running = False
        self._next_query = -float("inf")
        self._next_order = -float("inf")
        self.sent = 0
        self.retried = 0

    def submit(self, job: Job) -> bool:
        """Queue a job; False when the lane is full (answer -429).

        An order or cancel that finds its lane idle and the pacing satisfied is sent at once,
        from the caller's task, instead of waking the lane's task (one scheduler round trip
        less on the order path). FIFO order holds: the lane is empty and not sending."""
        if (
            job.lane is Lane.ORDER
            and self._order_lane_running
            and not self._order_busy
            and self._o_recv.statistics().current_buffer_used == 0
            and trio.current_time() >= self._next_order
        ):
            now = trio.current_time()
            self._next_order = now + self.order_interval
            code = job.send()
            self.sent += 1
            if code in _RETRYABLE and job.retries < self.max_retries:
                job.retries += 1
                self.retried += 1
                self._next_order = now + self.retry_delay_s
            elif code != 0:
                job.fail(code, "")
                return True
            else:
                return True
        channel = self._q_send if job.lane is Lane.QUERY else self._o_send
        try:
            channel.send_nowait(job)
        except trio.WouldBlock:
            return False
        return True

    def query_answered(self, rid: int, *, throttled: bool = False) -> bool:
        """The in-flight query ``rid`` got its last response (or ErrorID 90 when ``throttled``).

        Returns True when the limiter will retry it, in which case the caller drops the
        throttling error instead of forwarding it.
        """
        job = self.inflight
        if job is None or job.rid != rid:
            return False
        if throttled and job.retries < self.max_retries:
            job.retry_requested = True
            job.done.set()
            return True
        job.done.set()
        return False

    def fail_all(self, code: int, detail: str) -> int:
        """Fail every queued job and the in-flight query (the link went down)."""
        failed = 0
        for recv in (self._q_recv, self._o_recv):
            while True:
                try:
                    job = recv.receive_nowait()
                except trio.WouldBlock:
                    break
                job.fail(code, detail)
                failed += 1
        if self.inflight is not None and not self.inflight.done.is_set():
            self.inflight.done.set()  # the session fails its pending entry itself
        return failed

    def queued(self) -> int:
        q = self._q_recv.statistics().current_buffer_used
        return q + self._o_recv.statistics().current_buffer_used

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._query_lane)
            nursery.start_soon(self._order_lane)
            task_status.started()

    async def _query_lane(self) -> None:
        async for job in self._q_recv:
            while True:
                await trio.sleep_until(self._next_query)
                self._next_query = trio.current_time() + self.query_interval
                job.done = trio.Event()
                job.retry_requested = False
                self.inflight = job
                code = job.send()
                self.sent += 1
                if code == 0:
                    with trio.move_on_after(self.query_timeout_s) as scope:
                        await job.done.wait()
                    self.inflight = None
                    if scope.cancelled_caught:
                        job.fail(Code.TIMEOUT, f"no answer from CTP in {self.query_timeout_s:g} s")
                        break
                    if job.retry_requested:
                        job.retries += 1
                        self.retried += 1
                        await trio.sleep(self.retry_delay_s)
                        continue
                    break
                self.inflight = None
                if code in _RETRYABLE and job.retries < self.max_retries:
                    job.retries += 1
                    self.retried += 1
                    await trio.sleep(self.retry_delay_s)
                    continue
                job.fail(code, "")
                break

    async def _order_lane(self) -> None:
        self._order_lane_running = True
        try:
            await self._order_jobs()
        finally:
            self._order_lane_running = False

    async def _order_jobs(self) -> None:
        async for job in self._o_recv:
            self._order_busy = True
            try:
                while True:
                    await trio.sleep_until(self._next_order)
                    self._next_order = trio.current_time() + self.order_interval
                    code = job.send()
                    self.sent += 1
                    if code in _RETRYABLE and job.retries < self.max_retries:
                        job.retries += 1
                        self.retried += 1
                        await trio.sleep(self.retry_delay_s)
                        continue
                    if code != 0:
                        job.fail(code, "")
                    break
            finally:
                self._order_busy = False
