"""What td and md sessions share: the CTP worker, link state, login and teardown.

One ``Session`` per WebSocket client. It lives inside the connection's nursery and owns:

- the CTP API object and its Spi (kept referenced until ``Release``);
- the bridge ``Sink`` (CTP thread -> Trio) and the task that dispatches its events;
- the request limiter (td) and the table of requests waiting for CTP's answers;
- the client's credentials, in memory only, for re-login after a reconnect.

Frames for the client go into ``out`` (a bounded channel drained by the connection's send
task). Teardown (``release``) runs shielded and time-bounded, off the Trio thread.
"""

from __future__ import annotations

import codecs
import enum
import itertools
import logging
import os
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from . import _aliases, _flow
from ._bridge import Event, Sink, spi_class
from ._context import ServiceContext
from ._frames import FrameOut, Frames
from .protocol import codec
from .protocol.catalogue import Api, Catalogue
from .protocol.errors import Code, disconnect_description
from .protocol.validate import Assignments

log = logging.getLogger("webctp.session")

_session_ids = itertools.count(1)

# Login errors that retrying with the same credentials cannot fix (and that lock accounts or
# ban IPs when retried in a loop): invalid login, auth failures, bans, password must change.
PERMANENT_LOGIN_ERRORS = frozenset(
    {3, 4, 9, 11, 12, 13, 48, 63, 64, 75, 131, 140, 141, 143, 144, 4043, 4060}
)


class State(enum.Enum):
    NEW = "new"
    CONNECTING = "connecting"
    CONNECTED = "connected"
    LOGGING_IN = "logging_in"
    READY = "ready"
    DISCONNECTED = "disconnected"
    RELOGGING = "relogging"
    LOGIN_FAILED = "login_failed"


LOGGED_IN_STATES = (State.READY,)
LINK_DOWN_STATES = (State.DISCONNECTED, State.RELOGGING)


@dataclass(eq=False)
class Pending:
    """A request waiting for CTP's answer, keyed by the internal nRequestID."""

    request: str
    client_rid: int | None
    internal: bool = False
    rows: list[Event] = field(default_factory=list)
    done: trio.Event = field(default_factory=trio.Event)
    failure: tuple[int, str] | None = None
    text: codecs.IncrementalDecoder | None = None
    """Decodes text CTP sends as raw GB18030 bytes in chunks (settlement ``Content``), so that
    a character split between two rows comes out whole."""


class LoginFailed(Exception):
    def __init__(self, msg_type: str, code: int, message: str, detail: str = "") -> None:
        super().__init__(message)
        self.msg_type = msg_type
        self.code = code
        self.message = message
        self.detail = detail


class Session(Frames):
    kind: Api = "td"

    def __init__(self, ctx: ServiceContext, out: FrameOut) -> None:
        self.ctx = ctx
        self.cfg = ctx.cfg
        self.catalogue: Catalogue = ctx.backend.catalogue  # as far as the binding has it
        self.out = out
        self.id = next(_session_ids)
        self.sink = Sink(self.cfg.limits.event_queue_bytes, self.cfg.limits.event_backlog_s)
        self.state = State.NEW
        self.api: Any = None
        self.spi: Any = None
        self.module: Any = ctx.backend.td if self.kind == "td" else ctx.backend.md
        self.pending: OrderedDict[int, Pending] = OrderedDict()
        self._rids = itertools.count(1)
        self.front_connected = trio.Event()
        self.user_id = ""
        self.password = ""
        self.login_info: dict[str, Any] | None = None
        self.nursery: trio.Nursery | None = None
        self._relogin_scope: trio.CancelScope | None = None
        self._login_lock = trio.Lock()
        self._down_reported = float("-inf")
        self._flow_slot: _flow.Slot | None = None
        self.front_month = _aliases.for_fronts(ctx.backend.front_month, self.fronts())
        """ProductID → front-month contract, for aliases (None: the backend has none)."""

    # --- frames ---------------------------------------------------------------------------
    def send_nowait_or_spawn(self, frame: dict[str, Any]) -> None:
        """Send from sync code (limiter callbacks): in order when there is room, else by a task."""
        text = codec.dumps(frame)
        try:
            self.out.send_nowait(text)
        except trio.WouldBlock:
            assert self.nursery is not None
            self.nursery.start_soon(self.out.send, text)
        except (trio.ClosedResourceError, trio.BrokenResourceError):
            pass

    async def push_state(self, detail: str = "") -> None:
        await self.send(
            {
                "MsgType": "SessionState",
                "RspInfo": None,
                "SessionState": {"State": self.state.value, "Detail": detail},
            }
        )

    async def set_state(self, state: State, detail: str = "") -> None:
        if state is not self.state:
            self.state = state
            log.info(
                "event=session_state session=%d kind=%s state=%s", self.id, self.kind, state.value
            )
            await self.push_state(detail)

    # --- CTP API lifecycle ----------------------------------------------------------------
    def flow_path(self) -> str:
        """This session's flow-file folder (see ``_flow``)."""
        self._flow_slot = _flow.acquire(self.cfg.ctp.flow_dir, self.kind, self.user_id)
        return str(self._flow_slot.path) + os.sep

    def _free_flow_slot(self) -> None:
        if self._flow_slot is not None:
            _flow.release(self._flow_slot)
            self._flow_slot = None

    def fronts(self) -> tuple[str, ...]:
        return self.cfg.ctp.td_fronts if self.kind == "td" else self.cfg.ctp.md_fronts

    def resolve_instrument(self, instrument_id: str, where: str) -> str:
        """``instrument_id``, or the contract its alias ``<product>.front`` stands for on the
        backend's current trading day (``_aliases``); -400 naming ``where`` when it has none."""
        return _aliases.resolve(instrument_id, self.front_month, where)

    def create_api(self) -> None:
        """Create the API object, register Spi and fronts, Init (once per session)."""
        assert self.api is None
        flow = self.flow_path()
        if self.kind == "td":
            api = self.module.CThostFtdcTraderApi.CreateFtdcTraderApi(flow)
            spi = spi_class(self.module.CThostFtdcTraderSpi, "td")(self.sink)
        else:
            api = self.module.CThostFtdcMdApi.CreateFtdcMdApi(flow)
            spi = spi_class(self.module.CThostFtdcMdSpi, "md")(self.sink)
        self.api, self.spi = api, spi  # keep both referenced until Release
        api.RegisterSpi(spi)
        if self.kind == "td":
            resume = {"restart": 0, "resume": 1, "quick": 2}
            api.SubscribePrivateTopic(resume[self.cfg.ctp.private_resume])
            api.SubscribePublicTopic(resume[self.cfg.ctp.public_resume])
        for front in self.fronts():
            api.RegisterFront(front)
        self.state = State.CONNECTING
        api.Init()
        log.info(
            "event=ctp_init session=%d kind=%s fronts=%s",
            self.id,
            self.kind,
            ",".join(self.fronts()),
        )

    async def release(self) -> None:
        """Release the API off the Trio thread, bounded in time; safe to call twice."""
        api, self.api = self.api, None
        self.sink.close()
        if api is None:
            self._free_flow_slot()
            return

        spi = self.spi

        def _release() -> None:
            nonlocal spi
            api.RegisterSpi(None)
            api.Release()
            spi = None  # the Spi stays referenced until Release returned, even if abandoned

        with trio.move_on_after(self.cfg.ctp.release_timeout_s, shield=True) as scope:
            await trio.to_thread.run_sync(_release, abandon_on_cancel=True)
        if scope.cancelled_caught:
            log.warning(
                "event=release_timeout session=%d kind=%s timeout_s=%g",
                self.id,
                self.kind,
                self.cfg.ctp.release_timeout_s,
            )
        else:
            log.info("event=ctp_released session=%d kind=%s", self.id, self.kind)
            self._free_flow_slot()
        self.spi = None

    # --- requests -------------------------------------------------------------------------
    def new_rid(self) -> int:
        rid = next(self._rids)
        if rid > 2**31 - 1:  # pragma: no cover - after two billion requests
            self._rids = itertools.count(1)
            rid = next(self._rids)
        return rid

    def build(self, struct: str, assignments: Assignments) -> Any:
        obj = getattr(self.module, f"CThostFtdc{struct}Field")()
        for name, value in assignments:
            setattr(obj, name, value)
        return obj

    def call(self, method: str, struct: str, assignments: Assignments, rid: int) -> int:
        """Make a CTP Req* call now (non-blocking in CTP: it writes to a socket)."""
        if self.api is None:
            return Code.CTP_NETWORK
        self.ctx.metrics.ctp_requests += 1
        code: int = getattr(self.api, method)(self.build(struct, assignments), rid)
        return code

    async def internal(
        self, method: str, struct: str, assignments: Assignments
    ) -> tuple[codec.RspInfo | None, list[Event]]:
        """A request made by the gateway itself (login sequence); waits for all its rows."""
        rid = self.new_rid()
        pending = Pending(method, None, internal=True)
        self.pending[rid] = pending
        code = self.call(method, struct, assignments, rid)
        if code != 0:
            self.pending.pop(rid, None)
            return (code, f"CTP {method} returned {code}"), []
        try:
            with trio.move_on_after(self.cfg.ctp.request_timeout_s) as scope:
                await pending.done.wait()
        finally:
            self.pending.pop(rid, None)
        if scope.cancelled_caught:
            return (
                Code.TIMEOUT,
                f"no answer to {method} in {self.cfg.ctp.request_timeout_s:g} s",
            ), []
        if pending.failure is not None:
            return pending.failure, []
        info = next((ev.info for ev in pending.rows if ev.info and ev.info[0] != 0), None)
        return info, pending.rows

    def take_internal(self, ev: Event, pending: Pending | None) -> bool:
        """Collect a row of a gateway-made request (login sequence); True when it was one."""
        if pending is None or not pending.internal:
            return False
        pending.rows.append(ev)
        if ev.is_last or ev.cb.name == "OnRspError":
            pending.done.set()
        return True

    def fail_pending(self, code: int, detail: str) -> list[Pending]:
        """Fail every waiting request (link down); returns the client ones to report."""
        client = []
        for rid, p in list(self.pending.items()):
            p.failure = (code, detail)
            p.done.set()
            if not p.internal:
                client.append(p)
                del self.pending[rid]
        return client

    # --- login ----------------------------------------------------------------------------
    async def wait_front(self) -> None:
        if self.api is None:
            try:
                self.create_api()
            except OSError as exc:  # the flow folder: report it, do not crash the service
                log.error(
                    "event=create_api_failed session=%d kind=%s error=%r",
                    self.id,
                    self.kind,
                    str(exc),
                )
                raise LoginFailed(
                    "RspUserLogin",
                    Code.INTERNAL,
                    "cannot create the CTP API",
                    f"flow folder: {exc.strerror or exc}",
                ) from None
        with trio.move_on_after(self.cfg.ctp.login_timeout_s) as scope:
            await self.front_connected.wait()
        if scope.cancelled_caught:
            raise LoginFailed(
                "RspUserLogin",
                Code.LINK_DOWN,
                "front unreachable",
                f"no answer from {', '.join(self.fronts())} within "
                f"{self.cfg.ctp.login_timeout_s:g} s",
            )

    def login_problem(self, fields: dict[str, Any]) -> str:
        """Why these ReqUserLogin fields cannot be used ('' when they can)."""
        return ""

    def take_credentials(self, fields: dict[str, Any]) -> None:
        """Keep the client's credentials (in memory only) for this and later re-logins."""
        raise NotImplementedError

    async def client_login(self, client_rid: int, fields: dict[str, Any]) -> None:
        """A client's ReqUserLogin: refused at once, or run as a session task."""
        if self._login_lock.locked():
            problem = "a login is already in progress"
        elif self.state is State.READY:
            problem = "already logged in; send ReqUserLogout first"
        else:
            problem = self.login_problem(fields)
        if problem:
            await self.send_error(
                Code.BAD_REQUEST, request="ReqUserLogin", request_id=client_rid, detail=problem
            )
            return
        assert self.nursery is not None
        self.nursery.start_soon(self._client_login, client_rid, fields)

    async def _client_login(self, client_rid: int, fields: dict[str, Any]) -> None:
        async with self._login_lock:
            if self._relogin_scope is not None:
                self._relogin_scope.cancel()
            self.take_credentials(fields)
            previous = self.state
            self.state = State.LOGGING_IN
            try:
                row = await self.ctp_login()
            except LoginFailed as exc:
                self.password = ""
                self.login_info = None
                if previous is State.LOGIN_FAILED:
                    self.state = previous
                else:
                    connected = self.front_connected.is_set()
                    self.state = State.CONNECTED if connected else State.CONNECTING
                await self.send_error(
                    exc.code,
                    request="ReqUserLogin",
                    request_id=client_rid,
                    error_msg=exc.message,
                    detail=exc.detail,
                    msg_type=exc.msg_type,
                )
                return
            await self.send(
                codec.response("RspUserLogin", "RspUserLogin", row, None, client_rid, True)
            )
            await self.set_state(State.READY, "logged in")

    async def ctp_login(self) -> dict[str, Any]:
        """Run the login sequence with the stored credentials; returns the login row."""
        raise NotImplementedError

    async def after_login(self, relogin: bool) -> None:
        """Hook run once logged in (md re-subscribes)."""

    # --- events ---------------------------------------------------------------------------
    async def dispatch_events(self) -> None:
        async for ev in self.sink.events():
            await self.on_event(ev)

    async def on_event(self, ev: Event) -> None:
        name = ev.cb.name
        if name == "OnFrontConnected":
            await self.on_front_connected()
        elif name == "OnFrontDisconnected":
            await self.on_front_disconnected(int(ev.values[0]) if ev.values else 0)
        elif ev.cb.has_request_id:
            await self.on_response(ev)
        else:
            await self.on_push(ev)

    async def on_front_connected(self) -> None:
        self.front_connected.set()
        await self.send({"MsgType": "FrontConnected", "RspInfo": None, "FrontConnected": {}})
        log.info("event=front_connected session=%d kind=%s", self.id, self.kind)
        if self.state is State.CONNECTING:
            self.state = State.CONNECTED
        # DISCONNECTED is only reached from a logged-in state: log in again by ourselves
        if self.state is State.DISCONNECTED and self.login_info is not None:
            assert self.nursery is not None
            self.nursery.start_soon(self.relogin)
        elif self.state is State.DISCONNECTED:
            await self.set_state(State.CONNECTED)

    async def on_front_disconnected(self, reason: int) -> None:
        self.ctx.metrics.front_disconnects += 1
        if self.front_connected.is_set():
            # a fresh Event only once the old one fired: a login waiting for the first
            # OnFrontConnected (CTP reports 4097 before ever connecting) keeps waiting on it
            self.front_connected = trio.Event()
        elif trio.current_time() - self._down_reported < 1.0:
            # still down, no connect since the last report: the library retries by itself
            # (openctp-ctp 6.7.2.x hundreds of times a second), report once a second at most
            return
        self._down_reported = trio.current_time()
        text = disconnect_description(reason)
        log.warning(
            "event=front_disconnected session=%d kind=%s reason=%d", self.id, self.kind, reason
        )
        await self.send(
            {
                "MsgType": "FrontDisconnected",
                "RspInfo": {"ErrorID": reason, "ErrorMsg": text},
                "FrontDisconnected": {
                    "Reason": reason,
                    "Hex": f"0x{reason:04x}",
                    "Description": text,
                },
            }
        )
        if self._relogin_scope is not None:
            self._relogin_scope.cancel()
        detail = f"broker link down: {text} ({reason})"
        for p in self.fail_pending(Code.LINK_DOWN, detail):
            await self.send_error(
                Code.LINK_DOWN, request=p.request, request_id=p.client_rid, detail=detail
            )
        await self.on_link_down(detail)
        if self.state in (State.READY, State.RELOGGING, State.DISCONNECTED):
            await self.set_state(State.DISCONNECTED, detail)
        elif self.state in (State.CONNECTED, State.LOGGING_IN):
            self.state = State.CONNECTING

    async def on_link_down(self, detail: str) -> None:
        """Hook: fail queued requests (td)."""

    async def relogin(self) -> None:
        """Log in again after a reconnect, with backoff; stop on errors retrying cannot fix."""
        ctp = self.cfg.ctp
        delay = ctp.relogin_backoff_s
        with trio.CancelScope() as scope:
            self._relogin_scope = scope
            try:
                await self._relogin_attempts(delay)
            finally:
                self._relogin_scope = None

    async def _relogin_attempts(self, delay: float) -> None:
        ctp = self.cfg.ctp
        async with self._login_lock:
            for attempt in range(1, ctp.relogin_max_attempts + 1):
                await self.set_state(State.RELOGGING, f"attempt {attempt}")
                try:
                    row = await self.ctp_login()
                except LoginFailed as exc:
                    await self.send_error(
                        exc.code,
                        request="ReqUserLogin",
                        request_id=None,
                        error_msg=exc.message,
                        detail=f"automatic re-login failed: {exc.detail or exc.message}",
                        msg_type=exc.msg_type,
                    )
                    if exc.code in PERMANENT_LOGIN_ERRORS:
                        await self.set_state(State.LOGIN_FAILED, exc.message)
                        self.login_info = None
                        return
                    await trio.sleep(delay)
                    delay = min(delay * 2, ctp.relogin_backoff_max_s)
                    continue
                self.ctx.metrics.relogins += 1
                await self.send(
                    codec.response("RspUserLogin", "RspUserLogin", row, None, None, True)
                )
                await self.set_state(State.READY, "logged in again after a reconnect")
                await self.after_login(relogin=True)
                return
            await self.set_state(State.LOGIN_FAILED, "re-login attempts exhausted")

    async def on_response(self, ev: Event) -> None:
        raise NotImplementedError

    async def on_push(self, ev: Event) -> None:
        cb = ev.cb
        payload = codec.codec(cb.struct).to_dict(ev.values) if (cb.struct and ev.values) else None
        await self.send(codec.push(cb.msg_type, cb.payload_key, payload, ev.info))

    # --- lifetime -------------------------------------------------------------------------
    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """The session's own tasks; the caller cancels them when the socket closes."""
        try:
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                nursery.start_soon(self.dispatch_events)
                await self.start_tasks(nursery)
                task_status.started()
        finally:
            await self.release()

    async def start_tasks(self, nursery: trio.Nursery) -> None:
        """Hook for extra session tasks (td: the limiter)."""

    async def handle(self, text: str | bytes) -> None:
        raise NotImplementedError


Handler = Callable[[Session, Any], Awaitable[None]]
