"""A client can only ever end its own connection: resets at every stage of the handshake,
Pings while the server closes, clients that never read, handshakes left hanging, too many
connections, protocol violations. After each, the service still serves everyone else."""

from __future__ import annotations

import struct
from collections.abc import Awaitable, Callable

import orjson
import pytest
import trio

from tests.conftest import replace
from webctp.config import Config
from webctp.service import ServiceInfo, run_service

from .client import connect, http_get
from .raw import Raw, frame, text

LOGIN = {"MsgType": "ReqUserLogin", "ReqUserLogin": {"UserID": "hx", "Password": "pw"}}


async def start(nursery: trio.Nursery, cfg: Config, **server: object) -> ServiceInfo:
    cfg = replace(cfg, server=server) if server else cfg
    info: ServiceInfo = await nursery.start(run_service, cfg)
    return info


async def still_serving(info: ServiceInfo) -> None:
    """A normal client logs in and /healthz answers: the service is alive."""
    async with connect(info.ws_port) as c:
        frame_ = await c.login("ok", "pw", rid=77)
        assert frame_["MsgType"] == "RspUserLogin" and frame_["RequestID"] == 77, frame_
    status, _, _ = await http_get(info.http_port, "/healthz")
    assert status == 200


async def idle(info: ServiceInfo) -> None:
    """Wait until every connection the tests opened is gone from the service."""
    with trio.fail_after(15):
        while info.ctx.listener.conns or sum(info.ctx.metrics.sessions_active.values()):
            await trio.sleep(0.02)


Scenario = Callable[[int, str], Awaitable[None]]


async def reset_before_anything(port: int, q: str) -> None:
    (await Raw.open(port)).reset()


async def reset_after_upgrade_request(port: int, q: str) -> None:
    raw = await Raw.open(port)
    await raw.upgrade("/td/" + q, read=False)
    raw.reset()


async def reset_after_refused_request(port: int, q: str) -> None:
    raw = await Raw.open(port)
    await raw.upgrade("/nowhere" + q, read=False)
    raw.reset()


async def reset_after_malformed_request(port: int, q: str) -> None:
    raw = await Raw.open(port)
    await raw.send(f"GET /td/{q} HTTP/1.1\r\nUpgrade: nonsense\r\n\r\n".encode())
    raw.reset()


async def reset_after_garbage(port: int, q: str) -> None:
    raw = await Raw.open(port)
    await raw.send(b"\x16\x03\x01\x00\xff" + b"\x00" * 300)  # a TLS hello on a plain port
    raw.reset()


async def reset_right_after_101(port: int, q: str) -> None:
    raw = await Raw.open(port)
    head = await raw.upgrade("/td/" + q)
    assert head.startswith(b"HTTP/1.1 101"), head
    raw.reset()


async def reset_mid_login(port: int, q: str) -> None:
    raw = await Raw.open(port)
    await raw.upgrade("/td/" + q)
    await raw.send(text({**LOGIN, "RequestID": 1}))
    raw.reset()


async def reset_after_login(port: int, q: str) -> None:
    raw = await Raw.open(port)
    await raw.upgrade("/td/" + q)
    await raw.send(text({**LOGIN, "RequestID": 1}))
    while True:
        got = await raw.read_frame()
        assert got is not None
        if b"RspUserLogin" in got[1]:
            break
    await raw.send(text({"MsgType": "ReqQryInstrument", "QryInstrument": {}, "RequestID": 2}))
    raw.reset()


SCENARIOS = [
    reset_before_anything,
    reset_after_upgrade_request,
    reset_after_refused_request,
    reset_after_malformed_request,
    reset_after_garbage,
    reset_right_after_101,
    reset_mid_login,
    reset_after_login,
]


@pytest.mark.parametrize("scenario", SCENARIOS, ids=lambda s: s.__name__)
@pytest.mark.parametrize("token", ["", "s3cret"])
async def test_resets_end_only_their_connection(
    nursery: trio.Nursery, cfg: Config, scenario: Scenario, token: str
) -> None:
    info = await start(nursery, cfg, token=token)
    for _ in range(10):
        await scenario(info.ws_port, f"?token={token}" if token else "")
    await idle(info)
    if token:
        # with a token, the normal client below needs it too
        from trio_websocket import open_websocket_url

        url = f"ws://127.0.0.1:{info.ws_port}/td/?token={token}"
        async with open_websocket_url(url) as ws:
            await ws.send_message(orjson.dumps({**LOGIN, "RequestID": 5}).decode())
            while "RspUserLogin" not in (msg := str(await ws.get_message())):
                pass
            assert orjson.loads(msg)["RequestID"] == 5
        status, _, _ = await http_get(info.http_port, "/healthz")
        assert status == 200
    else:
        await still_serving(info)


async def test_ping_while_the_server_closes(nursery: trio.Nursery, cfg: Config) -> None:
    """The server closes with 1011 (event overflow) while the client keeps pinging: the Pong
    it cannot send any more must not take the service down."""
    cfg = replace(
        cfg,
        limits={"event_queue_bytes": 20000, "queries_per_second": 50.0},
        server={"send_queue": 1, "close_timeout_s": 10.0},
    )
    info: ServiceInfo = await nursery.start(run_service, cfg)
    for overflows in range(3):
        raw = await Raw.open(info.ws_port, rcvbuf=4096)
        await raw.upgrade()
        await raw.send(text({**LOGIN, "RequestID": 1}))
        for rid in range(2, 32):  # ~600 KB of rows each, more than the socket buffers hold
            await raw.send(
                text({"MsgType": "ReqQryInstrument", "QryInstrument": {}, "RequestID": rid})
            )
        with trio.fail_after(30):  # not reading meanwhile: the events pile up
            while info.ctx.metrics.overflows == overflows:
                await trio.sleep(0.01)
        code = None
        with trio.move_on_after(20):
            while True:
                await raw.send(frame(b"hello?", opcode=0x9))
                got = await raw.read_frame()
                if got is None:
                    break
                if got[0] == 0x8:
                    code = struct.unpack("!H", got[1][:2])[0]
                    for _ in range(20):  # keep pinging into the closing connection
                        await raw.send(frame(b"still there?", opcode=0x9))
                    break
        assert code == 1011
        raw.close()
    await idle(info)
    assert info.ctx.metrics.overflows == 3
    await still_serving(info)


async def test_client_that_never_reads_is_cut_off(nursery: trio.Nursery, cfg: Config) -> None:
    """A td client asks for the instrument list again and again and never reads: once the
    socket buffers are full, within the send deadline the server gives up on it (no close
    handshake can reach a client that does not read) and releases its session."""
    cfg = replace(cfg, limits={"queries_per_second": 50.0})
    info = await start(nursery, cfg, send_timeout_s=0.5)
    raw = await Raw.open(info.ws_port, rcvbuf=4096)
    await raw.upgrade()
    await raw.send(text({**LOGIN, "RequestID": 1}))
    for rid in range(2, 60):  # ~600 KB of rows each
        await raw.send(text({"MsgType": "ReqQryInstrument", "QryInstrument": {}, "RequestID": rid}))
    with trio.fail_after(60):  # bounded: the buffers fill, then 0.5 s without progress
        while info.ctx.metrics.aborted == 0:
            await trio.sleep(0.05)
    await idle(info)
    assert info.ctx.metrics.sessions_active["td"] == 0
    assert info.ctx.metrics.overflows == 0  # cut off for not reading, not for the backlog
    assert await raw.eof(5)
    raw.close()
    await still_serving(info)


async def test_handshakes_cannot_hold_sockets(nursery: trio.Nursery, cfg: Config) -> None:
    info = await start(nursery, cfg, handshake_timeout_s=0.3)
    silent = await Raw.open(info.ws_port)  # connects, says nothing
    partial = await Raw.open(info.ws_port)  # half an upgrade request
    await partial.send(b"GET /td/ HTTP/1.1\r\nHost: x\r\n")
    refused = await Raw.open(info.ws_port)  # refused, then keeps TCP open
    head = await refused.upgrade("/nowhere")
    assert head.startswith(b"HTTP/1.1 404"), head
    with trio.fail_after(5):
        assert await silent.eof()
        assert await partial.eof()
        assert await refused.eof()
    for raw in (silent, partial, refused):
        raw.close()
    await idle(info)


async def test_connection_cap_refuses_clearly(nursery: trio.Nursery, cfg: Config) -> None:
    info = await start(nursery, cfg, max_connections=5, handshake_timeout_s=30.0)
    holders = [await Raw.open(info.ws_port) for _ in range(5)]
    with trio.fail_after(5):
        while len(info.ctx.listener.conns) < 5:
            await trio.sleep(0.01)
    extra = await Raw.open(info.ws_port)
    head = await extra.read_head()
    assert head.startswith(b"HTTP/1.1 503"), head
    assert b"too many connections" in extra.buffer
    assert await extra.eof()
    status, _, _ = await http_get(info.http_port, "/healthz")
    assert status == 200
    for raw in holders:
        raw.close()
    await idle(info)
    await still_serving(info)


async def test_protocol_violations_close_with_their_code(
    nursery: trio.Nursery, cfg: Config
) -> None:
    info = await start(nursery, cfg)
    raw = await Raw.open(info.ws_port)
    await raw.upgrade()
    await raw.send(frame(b'{"MsgType":"x"}', mask=False))  # clients must mask
    assert await raw.close_code() == 1002
    raw.close()
    raw = await Raw.open(info.ws_port)
    await raw.upgrade()
    await raw.send(frame(b"", opcode=0x3))  # a reserved opcode
    assert await raw.close_code() == 1002
    raw.close()
    raw = await Raw.open(info.ws_port)
    await raw.upgrade()
    await raw.send(frame(b'{"MsgType":"\xff\xfe"}'))  # a text frame that is not UTF-8
    assert await raw.close_code() == 1007
    raw.close()
    raw = await Raw.open(info.ws_port)
    await raw.upgrade()
    await raw.send(frame(b"x" * (1 << 20) + b"x"))  # over 4 x max_message_bytes (and 1 MiB)
    assert await raw.close_code() == 1009
    raw.close()
    await idle(info)
    await still_serving(info)


async def test_shutdown_sends_1001(cfg: Config) -> None:
    async with trio.open_nursery() as nursery:
        info: ServiceInfo = await nursery.start(run_service, cfg)
        raws = []
        for path in ("/td/", "/md/"):
            raw = await Raw.open(info.ws_port)
            await raw.upgrade(path)
            raws.append(raw)
        with trio.fail_after(5):
            while sum(info.ctx.metrics.sessions_active.values()) < 2:
                await trio.sleep(0.01)
        nursery.cancel_scope.cancel()
    for raw in raws:
        assert await raw.close_code(5) == 1001
        raw.close()


async def test_long_user_id_logs_in(nursery: trio.Nursery, cfg: Config) -> None:
    """UserID may be 15 characters; InvestorID only 12: a 13-15 character login must be
    answered, never end the session."""
    info = await start(nursery, cfg)
    async with connect(info.ws_port) as c:
        answer = await c.login("u" * 15, "pw", rid=9)
        assert answer["MsgType"] == "RspUserLogin", answer
        assert answer["RequestID"] == 9, answer
        await c.send({"MsgType": "ReqQryTradingAccount", "QryTradingAccount": {}, "RequestID": 10})
        reply = await c.expect(lambda f: f.get("RequestID") == 10)
        assert reply["MsgType"] in ("RspQryTradingAccount", "RspError"), reply
    await still_serving(info)
