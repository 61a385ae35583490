"""Configuration: ``config.toml`` read once into frozen dataclasses.

Unknown keys and wrong types are refused at start-up with the file, the key and the reason
(``ConfigError``); ``__main__`` prints that one line instead of a traceback.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, TypeVar

from . import _affinity, _busurl
from .sim import SimSettings

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

Mode = Literal["td", "md", "all", "md-edge"]
Backend = Literal["sim", "ctp"]
Resume = Literal["restart", "resume", "quick"]


class ConfigError(Exception):
    """A user mistake in the configuration (reported without a traceback)."""


@dataclass(frozen=True, slots=True)
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = 8080
    """HTTP port: the web demo, /healthz, /metrics, /api/endpoints."""
    ws_port: int = 8081
    """WebSocket port: /td/ and /md/."""
    mode: Mode = "all"
    token: str = ""
    """When set, WebSocket clients must pass ?token=<token> (and HTTP /metrics too)."""
    allowed_origins: tuple[str, ...] = ()
    """When non-empty, browsers' WebSocket Origin must be one of these (e.g. http://127.0.0.1:8080)."""
    tls_cert: str = ""
    tls_key: str = ""
    max_sessions: int = 2000
    max_message_bytes: int = 65536
    """Larger requests get a -400 error frame."""
    send_queue: int = 1024
    """Frames waiting for one client's socket; when full, CTP events wait (back-pressure) and
    the CTP event queue (``limits.event_queue_bytes``) absorbs the burst."""
    send_timeout_s: float = 10.0
    """Deadline of every socket write (at most 256 frames): a client whose socket takes
    nothing for this long is cut off and its session released."""
    handshake_timeout_s: float = 5.0
    """TLS handshake + WebSocket upgrade request must complete within this, else the socket is
    closed."""
    close_timeout_s: float = 2.0
    """How long a closing handshake (ours, or 1001 for every client at shutdown) may take."""
    max_connections: int = 2100
    """Open WebSocket connections, logged in or not (lowered at start-up to leave 64 file
    descriptors free under the process's limit); past it a connection gets 503."""
    web_root: str = ""
    """Folder with the web demo; empty means the packaged/bundled ``web/`` folder."""
    cpu_affinity: tuple[int, ...] = ()
    """CPUs the whole service runs on (Linux); empty: wherever the system schedules it. One
    CPU trades tick throughput under a flood for lower order and tick latency (see
    docs/benchmarks.md)."""
    switch_interval_ms: float = 0.5
    """The interpreter's GIL switch interval (``sys.setswitchinterval``), set at start-up:
    the longest a thread waiting for the GIL (Trio's, or CTP's callback thread) waits before
    the one holding it must let go. Python's own 5 ms let CTP's callback thread and the event
    loop keep each other waiting that long under a tick flood (docs/benchmarks.md, item 8b);
    0 leaves the interpreter's setting as it is."""


@dataclass(frozen=True, slots=True)
class CtpConfig:
    backend: Backend = "sim"
    broker_id: str = "9999"
    td_fronts: tuple[str, ...] = ("sim://default",)
    md_fronts: tuple[str, ...] = ("sim://default",)
    app_id: str = ""
    auth_code: str = ""
    user_product_info: str = "webctp"
    flow_dir: str = "data/flow"
    """One sub-folder per session is created here for CTP's .con flow files (mode 0700)."""
    flow_retention_days: float = 7.0
    """A user's flow folder unused for this long is removed (at start-up and hourly)."""
    private_resume: Resume = "quick"
    public_resume: Resume = "quick"
    auto_confirm: bool = True
    """Confirm the settlement statement during login (else the client sends
    ReqSettlementInfoConfirm itself)."""
    login_timeout_s: float = 10.0
    request_timeout_s: float = 30.0
    release_timeout_s: float = 6.0
    relogin_backoff_s: float = 1.0
    relogin_backoff_max_s: float = 60.0
    relogin_max_attempts: int = 10


@dataclass(frozen=True, slots=True)
class LimitsConfig:
    queries_per_second: float = 1.0
    """Query pacing (CTP: QryFreq, typically 1-2/s; one query in flight at a time)."""
    orders_per_second: float = 5.0
    """Orders + cancels per second per session (the broker's limit, ErrorID 116 above it)."""
    max_queued_requests: int = 100
    """Requests waiting in one session's limiter; past this a request gets -429 at once."""
    event_queue_bytes: int = 16 << 20
    """CTP events (responses, orders, trades) waiting for a session's sender, counted in
    (approximate JSON) bytes, not rows. The backlog may pass this mark while the client keeps
    taking it (an answer of any size reaches a prompt client); above it for
    ``event_backlog_s`` without draining below, or at 16 times it, the session is closed with
    1011. Events are never dropped."""
    event_backlog_s: float = 10.0
    md_subscribe_batch: int = 500
    md_subscribe_interval_s: float = 0.5
    md_max_instruments: int = 5000


@dataclass(frozen=True, slots=True)
class MdConfig:
    upstream: Literal["session", "shared"] = "session"
    """``session``: each /md/ client gets its own CTP md API, logged in with its own
    credentials. ``shared``: one CTP md API for the whole process, logged in with the
    credentials below; client logins are answered locally (docs/scaling.md)."""
    user_id: str = ""
    password: str = ""
    broker_id: str = ""
    """Empty: ``ctp.broker_id``."""
    release_grace_s: float = 5.0
    """An instrument nobody subscribes any more is unsubscribed upstream after this long (a
    client that comes back meanwhile finds it still flowing)."""
    bars_path: str = ""
    """SQLite file keeping the ``GetBars`` history across restarts (webctp/_barstore.py);
    empty: bars in memory only."""
    bars_save_interval_s: float = 10.0
    """Changed bars are written this often (and when the service stops)."""


@dataclass(frozen=True, slots=True)
class BusConfig:
    url: str = ""
    """Redis URL (``redis://host:port/db``). With ``publish = true`` this process is a
    feeder; ``--mode md-edge`` processes serve /md/ from it (docs/scaling.md)."""
    publish: bool = False
    prefix: str = "webctp:md"
    """Prefix of every Redis key and channel (several deployments can share one Redis)."""
    heartbeat_s: float = 1.0
    """How often feeders and edges refresh their keys in Redis (and check the link)."""
    expiry_s: float = 5.0
    """A feeder's or edge's keys expire this long after its last heartbeat (a dead process's
    demand is released after it)."""
    timeout_s: float = 2.0
    """Deadline of every Redis command; past it the bus counts as lost."""


@dataclass(frozen=True, slots=True)
class LogConfig:
    level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"


@dataclass(frozen=True, slots=True)
class Config:
    server: ServerConfig = field(default_factory=ServerConfig)
    ctp: CtpConfig = field(default_factory=CtpConfig)
    limits: LimitsConfig = field(default_factory=LimitsConfig)
    log: LogConfig = field(default_factory=LogConfig)
    md: MdConfig = field(default_factory=MdConfig)
    bus: BusConfig = field(default_factory=BusConfig)
    sim: SimSettings = field(default_factory=SimSettings)
    source: str = "<defaults>"


T = TypeVar("T")


def _describe(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _convert(value: Any, tp: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value not in args:
            choices = ", ".join(repr(a) for a in args)
            raise ConfigError(f"{where}: must be one of {choices}, not {value!r}")
        return value
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert(value, arg, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(errors[0] if errors else f"{where}: invalid value")
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table")
        return build(tp, value, where)
    if origin is tuple:
        if not isinstance(value, list):
            raise ConfigError(f"{where}: expected an array")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_convert(v, args[0], f"{where}[{i}]") for i, v in enumerate(value))
        if len(args) != len(value):
            raise ConfigError(f"{where}: expected {len(args)} items")
        return tuple(_convert(v, a, f"{where}[{i}]") for i, (v, a) in enumerate(zip(value, args)))
    if origin in (dict, typing.Mapping) or tp is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a table")
        vt = args[1] if args else Any
        return {str(k): _convert(v, vt, f"{where}.{k}") for k, v in value.items()}
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, not {type(value).__name__}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, not {type(value).__name__}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, not {type(value).__name__}")
        return value
    raise ConfigError(f"{where}: unsupported setting type {_describe(tp)}")


def build(cls: type[T], table: dict[str, Any], where: str) -> T:
    """Build dataclass ``cls`` from a TOML table, refusing unknown keys."""
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    kwargs: dict[str, Any] = {}
    for key, value in table.items():
        if key not in names or key == "source":
            known = ", ".join(sorted(n for n in names if n != "source"))
            raise ConfigError(f"{where or 'top level'}: unknown key {key!r} (known keys: {known})")
        kwargs[key] = _convert(value, hints[key], f"{where}.{key}" if where else key)
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _check(cfg: Config) -> None:
    where = cfg.source
    for name in ("port", "ws_port"):
        port = getattr(cfg.server, name)
        if not 0 <= port <= 65535:
            raise ConfigError(f"{where}: server.{name}: must be 0-65535")
    if cfg.server.port and cfg.server.port == cfg.server.ws_port:
        raise ConfigError(f"{where}: server.port and server.ws_port must differ")
    if bool(cfg.server.tls_cert) != bool(cfg.server.tls_key):
        raise ConfigError(f"{where}: server.tls_cert and server.tls_key go together")
    if cfg.limits.queries_per_second <= 0 or cfg.limits.orders_per_second <= 0:
        raise ConfigError(f"{where}: limits: rates must be positive")
    for name in ("max_queued_requests", "event_queue_bytes", "md_subscribe_batch"):
        if getattr(cfg.limits, name) < 1:
            raise ConfigError(f"{where}: limits.{name}: must be at least 1")
    if not cfg.ctp.flow_retention_days > 0:
        raise ConfigError(f"{where}: ctp.flow_retention_days: must be positive")
    if not cfg.limits.event_backlog_s > 0:
        raise ConfigError(f"{where}: limits.event_backlog_s: must be positive")
    for name in ("send_timeout_s", "handshake_timeout_s", "close_timeout_s"):
        if not getattr(cfg.server, name) > 0:
            raise ConfigError(f"{where}: server.{name}: must be positive")
    if cfg.server.max_connections < 1:
        raise ConfigError(f"{where}: server.max_connections: must be at least 1")
    if cfg.server.cpu_affinity:
        if not _affinity.supported():
            raise ConfigError(f"{where}: server.cpu_affinity: not supported on this system")
        missing = sorted(set(cfg.server.cpu_affinity) - _affinity.available())
        if missing:
            usable = ",".join(str(c) for c in sorted(_affinity.available()))
            raise ConfigError(
                f"{where}: server.cpu_affinity: CPU {missing[0]} is not available "
                f"(this process may use {usable})"
            )
    if cfg.server.switch_interval_ms and not 0.01 <= cfg.server.switch_interval_ms <= 100:
        raise ConfigError(f"{where}: server.switch_interval_ms: 0, or from 0.01 to 100")
    if cfg.server.send_queue < 1 or cfg.server.max_message_bytes < 256:
        raise ConfigError(f"{where}: server: send_queue >= 1 and max_message_bytes >= 256")
    if cfg.md.release_grace_s < 0:
        raise ConfigError(f"{where}: md.release_grace_s: must not be negative")
    if not cfg.md.bars_save_interval_s > 0:
        raise ConfigError(f"{where}: md.bars_save_interval_s: must be positive")
    if cfg.bus.publish and not cfg.bus.url:
        raise ConfigError(f"{where}: bus.publish needs bus.url")
    if cfg.bus.publish and cfg.md.upstream != "shared":
        raise ConfigError(f'{where}: bus.publish needs md.upstream = "shared"')
    if cfg.server.mode == "md-edge" and not cfg.bus.url:
        raise ConfigError(f"{where}: mode md-edge needs bus.url")
    if cfg.bus.url:
        try:
            _busurl.parse_url(cfg.bus.url)
        except ValueError as exc:  # the message names no credential
            raise ConfigError(f"{where}: bus.url: {exc} (redis://host:port/db)") from None
    for name in ("heartbeat_s", "timeout_s"):
        if not getattr(cfg.bus, name) > 0:
            raise ConfigError(f"{where}: bus.{name}: must be positive")
    if not cfg.bus.expiry_s > cfg.bus.heartbeat_s:
        raise ConfigError(f"{where}: bus.expiry_s: must be longer than bus.heartbeat_s")
    for name in ("td_fronts", "md_fronts"):
        fronts = getattr(cfg.ctp, name)
        if not fronts or any(not f for f in fronts):
            raise ConfigError(f"{where}: ctp.{name}: at least one non-empty front address")
        if cfg.ctp.backend == "sim" and any(not f.startswith("sim://") for f in fronts):
            raise ConfigError(f"{where}: ctp.{name}: the sim backend takes sim://<name> fronts")
        if cfg.ctp.backend == "ctp" and any(
            not f.startswith(("tcp://", "ssl://", "socks")) for f in fronts
        ):
            raise ConfigError(f"{where}: ctp.{name}: CTP fronts look like tcp://host:port")


def load_config(path: str | Path | None) -> Config:
    """Read ``path`` (or the defaults when None)."""
    if path is None:
        return Config()
    p = Path(path)
    try:
        raw = p.read_bytes()
    except OSError as exc:
        raise ConfigError(f"{p}: cannot read: {exc.strerror or exc}") from None
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{p}: not valid TOML: {exc}") from None
    try:
        cfg = build(Config, data, "")
    except ConfigError as exc:
        raise ConfigError(f"{p}: {exc}") from None
    cfg = dataclasses.replace(cfg, source=str(p))
    _check(cfg)
    return cfg


def with_overrides(cfg: Config, **server: Any) -> Config:
    """Apply command-line overrides to the [server] table (None means not given).

    An error names the option (``--ws-port``), not the file or the defaults it overrides.
    """
    changes = {k: v for k, v in server.items() if v is not None}
    if not changes:
        return cfg
    options = " ".join(f"--{k.replace('_', '-')} {v}" for k, v in changes.items())
    for name in ("port", "ws_port"):
        if name in changes and not 0 <= changes[name] <= 65535:
            option = f"--{name.replace('_', '-')}"
            raise ConfigError(f"command line: {option} {changes[name]}: must be 0-65535")
    new = dataclasses.replace(
        cfg,
        server=dataclasses.replace(cfg.server, **changes),
        source=f"{cfg.source} with command line {options}",
    )
    _check(new)
    return new
