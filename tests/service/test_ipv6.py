"""IPv6: with host = "::1" both listeners serve over IPv6 loopback."""

from __future__ import annotations

import socket

import orjson
import pytest
import trio

from tests.conftest import replace
from webctp.client import connect_td
from webctp.config import Config
from webctp.service import ServiceInfo, run_service


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


pytestmark = pytest.mark.skipif(not _ipv6_loopback(), reason="no IPv6 loopback here")


async def _get(port: int, path: str) -> tuple[bytes, bytes]:
    stream = await trio.open_tcp_stream("::1", port)
    async with stream:
        await stream.send_all(
            f"GET {path} HTTP/1.1\r\nHost: [::1]:{port}\r\nConnection: close\r\n\r\n".encode()
        )
        data = b""
        with trio.fail_after(10):
            while True:
                head, sep, body = data.partition(b"\r\n\r\n")
                if sep:
                    length = next(
                        int(line.split(b":", 1)[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length:")
                    )
                    if len(body) >= length:
                        return head, body
                chunk = await stream.receive_some(65536)
                assert chunk, data
                data += chunk


async def test_both_listeners_on_ipv6_loopback(nursery: trio.Nursery, cfg: Config) -> None:
    cfg = replace(cfg, server={"host": "::1"})
    info: ServiceInfo = await nursery.start(run_service, cfg)

    async with connect_td(f"ws://[::1]:{info.ws_port}/td/") as td:
        assert (await td.login("v6_user", "pw"))["UserID"] == "v6_user"

    head, body = await _get(info.http_port, "/healthz")
    assert head.startswith(b"HTTP/1.1 200")
    head, body = await _get(info.http_port, "/api/endpoints")
    assert head.startswith(b"HTTP/1.1 200")
    endpoints = orjson.loads(body)
    assert f"ws://[::1]:{info.ws_port}/td/" in orjson.dumps(endpoints).decode()

    # and not on IPv4: the listener is bound to ::1 only
    with pytest.raises(OSError):
        await trio.open_tcp_stream("127.0.0.1", info.ws_port)
