"""TLS: with a certificate configured, the service speaks wss:// and https:// only."""

from __future__ import annotations

import ssl
from pathlib import Path

import trio
import trustme

from tests.conftest import replace
from webctp.client import connect_td
from webctp.config import Config
from webctp.service import ServiceInfo, run_service


async def test_wss_and_https(nursery: trio.Nursery, cfg: Config, tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_pem.write_to_path(str(key_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cfg = replace(cfg, server={"tls_cert": str(cert_file), "tls_key": str(key_file)})
    info: ServiceInfo = await nursery.start(run_service, cfg)

    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    async with connect_td(f"wss://127.0.0.1:{info.ws_port}/td/", ssl_context=client_ctx) as td:
        assert (await td.login("tls_user", "pw"))["UserID"] == "tls_user"

    stream = await trio.open_ssl_over_tcp_stream(
        "127.0.0.1", info.http_port, ssl_context=client_ctx
    )
    async with stream:
        await stream.send_all(
            b"GET /api/endpoints HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
        )
        data = b""
        with trio.fail_after(10):
            while b"wss://" not in data:
                chunk = await stream.receive_some(65536)
                assert chunk, data
                data += chunk
    assert data.startswith(b"HTTP/1.1 200")
    assert f"wss://127.0.0.1:{info.ws_port}/td/".encode() in data


async def test_tls_garbage_and_resets_end_only_their_connection(
    nursery: trio.Nursery, cfg: Config, tmp_path: Path
) -> None:
    """Plain HTTP on the TLS port, a reset in the middle of the TLS handshake, a TLS client
    that never finishes: each ends its own connection; a real wss:// client still logs in."""
    from .raw import Raw

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    cert_file, key_file = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert.private_key_pem.write_to_path(str(key_file))
    cert.cert_chain_pems[0].write_to_path(str(cert_file))
    cfg = replace(
        cfg,
        server={"tls_cert": str(cert_file), "tls_key": str(key_file), "handshake_timeout_s": 0.5},
    )
    info: ServiceInfo = await nursery.start(run_service, cfg)
    for _ in range(5):
        plain = await Raw.open(info.ws_port)
        await plain.upgrade(read=False)  # plain HTTP where TLS is expected
        assert await plain.eof(5)
        plain.close()
        hello = await Raw.open(info.ws_port)
        await hello.send(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40)
        hello.reset()  # half a ClientHello, then a reset
        silent = await Raw.open(info.ws_port)  # TCP only: closed at the handshake deadline
        assert await silent.eof(5)
        silent.close()
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    async with connect_td(f"wss://127.0.0.1:{info.ws_port}/td/", ssl_context=client_ctx) as td:
        assert (await td.login("tls_ok", "pw"))["UserID"] == "tls_ok"
