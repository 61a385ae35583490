"""The bus's own Redis connection (``webctp._resp``) against a real ``redis-server``: pipelined
commands, pub/sub, authentication and database, Unix sockets, error replies and a Redis that
goes away; the URL forms it reads are checked without a server."""

from __future__ import annotations

from pathlib import Path

import pytest
import trio
import trustme

from webctp._busurl import Address, parse_url
from webctp._resp import BusConnectionError, RespConnection

from .test_md_bus import Redis


def test_urls() -> None:
    assert parse_url("redis://10.0.0.5:6380/2") == Address(host="10.0.0.5", port=6380, db=2)
    assert parse_url("redis://localhost") == Address(host="localhost")
    assert parse_url("rediss://u:p%40ss@h:7000?db=4") == Address(
        host="h", port=7000, tls=True, username="u", password="p@ss", db=4
    )
    assert parse_url("redis://:secret@h/1") == Address(host="h", password="secret", db=1)
    assert parse_url("unix:///run/redis.sock?db=3") == Address(path="/run/redis.sock", db=3)
    secure = parse_url(
        "rediss://h?ssl_cert_reqs=required&ssl_check_hostname=true&ssl_ca_certs=/etc/ca.pem"
    )
    assert (secure.cert_reqs, secure.check_hostname, secure.ca_certs) == (
        "required",
        True,
        "/etc/ca.pem",
    )
    for bad, why in [
        ("http://h:1/", "expected redis://"),
        ("redis://h/zero", "db: not a number"),
        ("rediss://h?ssl_cert_reqs=none&ssl_check_hostname=1", "ssl_check_hostname needs"),
    ]:
        with pytest.raises(ValueError, match=why):
            parse_url(bad)


async def start(tmp_path: Path, *extra: str) -> Redis:
    server = Redis(tmp_path, *extra)
    await server.start()
    return server


async def test_pipelined_commands_and_error_replies(tmp_path: Path) -> None:
    redis = await start(tmp_path)
    try:
        async with await RespConnection.open(redis.url) as conn:
            await conn.send([("HSET", "k", "a", b"1", "b", "2"), ("HGET", "k", "b"), ("PING",)])
            assert await conn.replies(3) == [2, b"2", b"PONG"]
            await conn.send([("HSET", "k")])  # wrong number of arguments
            with pytest.raises(BusConnectionError, match="wrong number of arguments"):
                await conn.read()
    finally:
        await redis.stop()


async def test_pubsub_batches_and_lost_server(tmp_path: Path) -> None:
    redis = await start(tmp_path)
    try:
        async with (
            await RespConnection.open(redis.url) as sub,
            await RespConnection.open(redis.url) as pub,
        ):
            await sub.send([("SUBSCRIBE", "ch")])
            assert await sub.replies(1) == [[b"subscribe", b"ch", 1]]
            payloads = [bytes([i]) * 70_000 for i in range(3)]  # larger than one read
            await pub.send([("PUBLISH", "ch", p) for p in payloads])
            assert await pub.replies(3) == [1, 1, 1]
            got = await sub.replies(3)
            assert got == [[b"message", b"ch", p] for p in payloads]
            await redis.stop()
            with trio.fail_after(5), pytest.raises(BusConnectionError):
                await sub.read()
    finally:
        await redis.stop()


async def test_password_and_database(tmp_path: Path) -> None:
    redis = await start(tmp_path, "--requirepass", "s3cret")
    try:
        url = f"redis://:s3cret@127.0.0.1:{redis.port}/3"
        async with await RespConnection.open(url) as conn:
            await conn.send([("HSET", "k", "f", "v")])
            assert await conn.replies(1) == [1]
        assert (await redis.command("-n", "3", "HGET", "k", "f")).strip() == "v"
        assert (await redis.command("-n", "0", "EXISTS", "k")).strip() == "0"
        with pytest.raises(BusConnectionError, match=r"WRONGPASS|invalid"):
            await RespConnection.open(f"redis://:wrong@127.0.0.1:{redis.port}/0")
        no_password = await RespConnection.open(f"redis://127.0.0.1:{redis.port}/0")
        async with no_password:
            await no_password.send([("PUBLISH", "ch", "x")])
            with pytest.raises(BusConnectionError, match="NOAUTH"):
                await no_password.read()
    finally:
        await redis.stop()


async def test_unix_socket(tmp_path: Path) -> None:
    path = tmp_path / "redis.sock"
    redis = await start(tmp_path, "--unixsocket", str(path))
    try:
        async with await RespConnection.open(f"unix://{path}?db=2") as conn:
            await conn.send([("HSET", "k", "f", "v")])
            assert await conn.replies(1) == [1]
        assert (await redis.command("-n", "2", "HGET", "k", "f")).strip() == "v"
    finally:
        await redis.stop()


async def test_nothing_listening(tmp_path: Path) -> None:
    redis = Redis(tmp_path)  # a free port, never started
    with pytest.raises(BusConnectionError, match="cannot connect"):
        await RespConnection.open(redis.url)


async def test_tls(tmp_path: Path) -> None:
    """``rediss://`` with the certificate checked against the URL's CA; without that CA the
    server is refused, with ``ssl_cert_reqs=required`` and by default alike, and accepted
    only with ``ssl_cert_reqs=none`` (coredis's rules for the same URL, ``_busurl``)."""
    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    files = {name: tmp_path / f"{name}.pem" for name in ("ca", "cert", "key")}
    ca.cert_pem.write_to_path(str(files["ca"]))
    cert.cert_chain_pems[0].write_to_path(str(files["cert"]))
    cert.private_key_pem.write_to_path(str(files["key"]))
    redis = Redis(tmp_path)
    redis.extra = ["--port", "0", "--tls-port", str(redis.port), "--tls-auth-clients", "no"]
    redis.extra += ["--tls-cert-file", str(files["cert"]), "--tls-key-file", str(files["key"])]
    await redis.start()
    try:
        base = f"rediss://127.0.0.1:{redis.port}/0?ssl_cert_reqs=required"
        url = f"{base}&ssl_check_hostname=true&ssl_ca_certs={files['ca']}"
        async with await RespConnection.open(url) as conn:
            await conn.send([("PING",)])
            assert await conn.replies(1) == [b"PONG"]
        for unknown_ca in (base, f"rediss://127.0.0.1:{redis.port}/0"):  # required, default
            with pytest.raises(BusConnectionError, match="CERTIFICATE_VERIFY_FAILED"):
                await RespConnection.open(unknown_ca)
        unchecked = f"rediss://127.0.0.1:{redis.port}/0?ssl_cert_reqs=none"
        async with await RespConnection.open(unchecked) as conn:
            await conn.send([("PING",)])
            assert await conn.replies(1) == [b"PONG"]
    finally:
        await redis.stop()
