"""The trading (td) session: every Req* of the trader API, generically, through the limiter."""

from __future__ import annotations

import codecs
import logging
from collections import OrderedDict
from functools import partial
from typing import Any

import trio

from ._aliases import is_alias
from ._bridge import Event
from ._limiter import Job, Lane, RequestLimiter
from ._session import (
    LINK_DOWN_STATES,
    LoginFailed,
    Pending,
    Session,
    State,
)
from .protocol import codec
from .protocol.catalogue import FieldSpec, RequestSpec
from .protocol.errors import Code, ProtocolError, error_message
from .protocol.validate import Assignments, validate

log = logging.getLogger("webctp.td")

_IDENTITY_FIELDS = ("BrokerID", "InvestorID", "UserID")


def _decode_chunks(payload: dict[str, Any], pending: Pending, is_last: bool) -> None:
    """Text the binding hands over as raw bytes (settlement ``Content``: GB18030 in chunks of
    a fixed size, split anywhere) is decoded across the rows of one answer."""
    for key, value in payload.items():
        if isinstance(value, bytes):
            if pending.text is None:
                pending.text = codecs.getincrementaldecoder("gb18030")("replace")
            payload[key] = pending.text.decode(value, final=is_last)


def _fits(field: FieldSpec, value: str) -> bool:
    """Whether ``value`` fits a CTP char field (``size`` characters, the NUL not counted)."""
    return field.size <= 0 or len(value.encode("gb18030", "replace")) <= field.size


_MAX_PENDING = 4096


class TdSession(Session):
    kind = "td"

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        limits = self.cfg.limits
        self.limiter = RequestLimiter(
            queries_per_second=limits.queries_per_second,
            orders_per_second=limits.orders_per_second,
            max_queued=limits.max_queued_requests,
            query_timeout_s=self.cfg.ctp.request_timeout_s,
        )
        self.broker_id = self.cfg.ctp.broker_id
        self.login_extra: dict[str, Any] = {}
        self.next_order_ref = 1
        self.new_password: dict[int, str] = {}
        self.expired: OrderedDict[int, None] = OrderedDict()

    async def start_tasks(self, nursery: trio.Nursery) -> None:
        await nursery.start(self.limiter.run)

    # --- client frames --------------------------------------------------------------------
    async def handle(self, text: str | bytes) -> None:
        env = await self.parse(text)
        if env is None:
            return
        spec = self.catalogue.td.requests.get(env.msg_type)
        if spec is None:
            await self.send_error(
                Code.UNKNOWN_MSGTYPE,
                request=env.msg_type,
                request_id=env.request_id,
                detail=f"{env.msg_type} is not a trader API request (see docs/td_protocol.md)",
                msg_type="RspError",  # no response of that name exists (td_protocol.md)
            )
            return
        if spec.msg_type in self.catalogue.unavailable:  # the loaded binding lacks it
            await self.send_error(
                Code.BAD_REQUEST,
                request=spec.msg_type,
                request_id=env.request_id,
                detail=self.catalogue.unavailable[spec.msg_type],
            )
            return
        try:
            assignments = self.resolve_aliases(
                spec.payload_key,
                validate(
                    self.catalogue.struct(spec.struct),
                    env.body.get(spec.payload_key),
                    key=spec.payload_key,
                ),
            )
        except ProtocolError as exc:
            await self.send_error(
                exc.code, request=spec.msg_type, request_id=env.request_id, detail=exc.detail
            )
            return
        if spec.msg_type == "ReqUserLogin":
            await self.client_login(env.request_id, dict(assignments))
            return
        if self.state is not State.READY:
            if self.state in LINK_DOWN_STATES:
                await self.send_error(
                    Code.LINK_DOWN,
                    request=spec.msg_type,
                    request_id=env.request_id,
                    detail="the broker link is down; retry after RspUserLogin",
                )
            else:
                await self.send_error(
                    Code.NOT_LOGGED_IN,
                    request=spec.msg_type,
                    request_id=env.request_id,
                    detail="send ReqUserLogin first",
                )
            return
        assignments = self.fill_defaults(spec, assignments, env.request_id)
        if spec.msg_type == "ReqUserLogout":
            code = self.send_request(spec, assignments, env.request_id, None)
            if code != 0:
                await self.send_error(code, request=spec.msg_type, request_id=env.request_id)
            return
        job = Job(
            Lane.QUERY if spec.is_query else Lane.ORDER, send=lambda: 0, fail=lambda c, d: None
        )
        job.send = partial(self.send_request, spec, assignments, env.request_id, job)
        job.fail = partial(self._job_failed, spec, env.request_id, job)
        if not self.limiter.submit(job):
            await self.send_error(
                Code.QUEUE_FULL,
                request=spec.msg_type,
                request_id=env.request_id,
                detail=f"more than {self.cfg.limits.max_queued_requests} requests waiting in this "
                "session; wait for answers before sending more",
            )

    def resolve_aliases(self, key: str, assignments: Assignments) -> Assignments:
        """An ``InstrumentID`` alias (``rb.front``) replaced by the contract it stands for."""
        if not any(name == "InstrumentID" and is_alias(value) for name, value in assignments):
            return assignments  # the usual case: nothing to copy
        return tuple(
            (name, self.resolve_instrument(value, f"{key}.{name}"))
            if name == "InstrumentID" and isinstance(value, str)
            else (name, value)
            for name, value in assignments
        )

    def fill_defaults(
        self, spec: RequestSpec, assignments: Assignments, client_rid: int
    ) -> Assignments:
        """Fill BrokerID/InvestorID/UserID from the login; for orders, OrderRef when left empty
        and the struct's RequestID (echoed by CTP in Order.RequestID) with the envelope's."""
        fields = dict(assignments)
        by_name = self.catalogue.struct(spec.struct).by_name
        identity = {"BrokerID": self.broker_id, "InvestorID": self.user_id, "UserID": self.user_id}
        for name in _IDENTITY_FIELDS:
            spec_ = by_name.get(name)
            # a default that does not fit (UserID holds 15 characters, InvestorID 12) is left
            # to the client: its own value is validated, ours would be cut or refused
            if spec_ is not None and not fields.get(name) and _fits(spec_, identity[name]):
                fields[name] = identity[name]
        if spec.msg_type == "ReqOrderInsert":
            ref = str(fields.get("OrderRef") or "").strip()
            if not ref:
                fields["OrderRef"] = str(self.next_order_ref)
                self.next_order_ref += 1
            elif ref.isdigit():
                self.next_order_ref = max(self.next_order_ref, int(ref) + 1)
        if "RequestID" in by_name and "RequestID" not in fields:
            fields["RequestID"] = client_rid
        return tuple(fields.items())

    def send_request(
        self, spec: RequestSpec, assignments: Assignments, client_rid: int, job: Job | None
    ) -> int:
        """Make the CTP call for a client request (from the limiter or directly)."""
        if self.state is not State.READY and spec.msg_type != "ReqUserLogout":
            return Code.LINK_DOWN
        rid = self.new_rid()
        if job is not None:
            job.rid = rid
        pending = Pending(spec.msg_type, client_rid)
        self.pending[rid] = pending
        while len(self.pending) > _MAX_PENDING:  # orders answer only on rejection
            self.pending.popitem(last=False)
        if spec.msg_type == "ReqUserPasswordUpdate":
            self.new_password[rid] = str(dict(assignments).get("NewPassword", ""))
        code = self.call(spec.msg_type, spec.struct, assignments, rid)
        if code != 0:
            self.pending.pop(rid, None)
            self.new_password.pop(rid, None)
        return code

    def _job_failed(
        self, spec: RequestSpec, client_rid: int, job: Job, code: int, detail: str
    ) -> None:
        self.ctx.metrics.errors[int(code)] += 1
        if code == Code.TIMEOUT and self.pending.pop(job.rid, None) is not None:
            # the client has its final answer (-408); a late answer from CTP is dropped
            self.expired[job.rid] = None
            while len(self.expired) > _MAX_PENDING:
                self.expired.popitem(last=False)
        self.send_nowait_or_spawn(
            error_message(code, request=spec.msg_type, request_id=client_rid, detail=detail)
        )

    async def on_link_down(self, detail: str) -> None:
        self.limiter.fail_all(Code.LINK_DOWN, detail)

    # --- login ----------------------------------------------------------------------------
    def login_problem(self, fields: dict[str, Any]) -> str:
        return "" if fields.get("UserID") else "ReqUserLogin.UserID is required"

    def take_credentials(self, fields: dict[str, Any]) -> None:
        fields = dict(fields)
        self.user_id = str(fields.pop("UserID"))
        self.password = str(fields.pop("Password", ""))
        self.broker_id = str(fields.pop("BrokerID", "") or self.cfg.ctp.broker_id)
        self.login_extra = {k: v for k, v in fields.items() if v not in ("", 0)}

    async def ctp_login(self) -> dict[str, Any]:
        await self.wait_front()
        ctp = self.cfg.ctp
        info, _ = await self.internal(
            "ReqAuthenticate",
            "ReqAuthenticate",
            (
                ("BrokerID", self.broker_id),
                ("UserID", self.user_id),
                ("AppID", ctp.app_id),
                ("AuthCode", ctp.auth_code),
                ("UserProductInfo", ctp.user_product_info),
            ),
        )
        if info is not None and info[0] != 0:
            raise LoginFailed("RspAuthenticate", info[0], info[1])
        login: list[tuple[str, Any]] = [
            ("BrokerID", self.broker_id),
            ("UserID", self.user_id),
            ("Password", self.password),
            ("UserProductInfo", ctp.user_product_info),
        ]
        login += [(k, v) for k, v in self.login_extra.items() if k != "UserProductInfo"]
        info, rows = await self.internal("ReqUserLogin", "ReqUserLogin", tuple(login))
        if info is not None and info[0] != 0:
            raise LoginFailed("RspUserLogin", info[0], info[1])
        values = next((ev.values for ev in rows if ev.values is not None), None)
        if values is None:
            raise LoginFailed("RspUserLogin", Code.INTERNAL, "CTP answered the login without data")
        row = codec.codec("RspUserLogin").to_dict(values)
        self.login_info = row
        try:
            self.next_order_ref = max(int(str(row.get("MaxOrderRef") or "0").strip() or 0) + 1, 1)
        except ValueError:
            self.next_order_ref = 1
        investor_field = self.catalogue.struct("SettlementInfoConfirm").by_name["InvestorID"]
        if ctp.auto_confirm and not _fits(investor_field, self.user_id):
            log.warning(
                "event=auto_confirm_skipped session=%d reason=user_id_longer_than_investor_id",
                self.id,
            )
        elif ctp.auto_confirm:
            info, _ = await self.internal(
                "ReqSettlementInfoConfirm",
                "SettlementInfoConfirm",
                (("BrokerID", self.broker_id), ("InvestorID", self.user_id)),
            )
            if info is not None and info[0] != 0:
                raise LoginFailed("RspSettlementInfoConfirm", info[0], info[1])
        log.info(
            "event=logged_in session=%d kind=td front_id=%s session_id=%s",
            self.id,
            row.get("FrontID"),
            row.get("SessionID"),
        )
        return row

    # --- CTP events -----------------------------------------------------------------------
    def _payload(self, ev: Event) -> dict[str, Any] | None:
        cb = ev.cb
        if not cb.struct or ev.values is None:
            return None
        return codec.codec(cb.struct).to_dict(ev.values)

    async def on_push(self, ev: Event) -> None:
        cb = ev.cb
        await self.send(codec.push(cb.msg_type, cb.payload_key, self._payload(ev), ev.info))

    async def on_response(self, ev: Event) -> None:
        cb = ev.cb
        rid = ev.request_id
        pending = self.pending.get(rid)
        if self.take_internal(ev, pending):
            return
        if pending is None and rid in self.expired:
            if ev.is_last:
                del self.expired[rid]
            log.info("event=late_answer_dropped session=%d request_id=%d", self.id, rid)
            return
        is_query = pending is not None and pending.request.startswith("ReqQry")
        if (
            pending is not None
            and is_query
            and cb.name == "OnRspError"
            and ev.info is not None
            and ev.info[0] == 90
            and self.limiter.query_answered(rid, throttled=True)
        ):
            self.pending.pop(rid, None)
            self.ctx.metrics.ctp_retries += 1
            return  # CTP's query flow control: the limiter retries it, the client never sees 90
        client_rid = pending.client_rid if pending is not None else None
        payload = self._payload(ev)
        if payload is not None and pending is not None:
            _decode_chunks(payload, pending, ev.is_last)
        frame = codec.response(
            cb.msg_type, cb.payload_key, payload, ev.info, client_rid, ev.is_last
        )
        if pending is not None and cb.name == "OnRspError":
            frame["Request"] = pending.request
        await self.send(frame)
        if pending is not None and (ev.is_last or cb.name == "OnRspError"):
            self.pending.pop(rid, None)
            if is_query:
                self.limiter.query_answered(rid)
            new_password = self.new_password.pop(rid, None)
            ok = ev.info is None or ev.info[0] == 0
            if ok and new_password is not None and cb.name == "OnRspUserPasswordUpdate":
                self.password = new_password  # re-login after a reconnect uses the new one
            if ok and cb.name == "OnRspUserLogout":
                self.login_info = None
                self.password = ""
                await self.set_state(State.CONNECTED, "logged out")
