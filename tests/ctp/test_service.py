"""The service with backend = "ctp" against fake fronts on loopback, one service process per test.

A plain listener cannot complete CTP's handshake (the library never reports OnFrontConnected
to it), so these tests cover what a real deployment depends on before login: the connection,
the disconnect push, teardown, the login timeout and the library's console output.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
import trio

from tests.service.client import connect

from .conftest import LOG_LINE, LocaleCache, fake_front, service_process, unused_port, write_config

pytestmark = pytest.mark.ctp

LOGIN = {"MsgType": "ReqUserLogin", "ReqUserLogin": {"UserID": "u1", "Password": "pw"}}


async def test_td_session_connects_to_the_front(locale_cache: LocaleCache, tmp_path: Path) -> None:
    async with fake_front(close=False) as front:
        config = write_config(tmp_path, front.address, front.address)
        async with (
            service_process(config, locale_cache.folder) as svc,
            connect(svc.ports["ws"], "/td/") as client,
        ):
            await client.send({**LOGIN, "RequestID": 7})
            await front.wait(lambda f: bool(f.first_bytes))
            hello = front.first_bytes[0]
            assert len(hello) >= 10 and b"API_20171207_V1" in hello, hello  # CTP hello
            line = await svc.wait_for("event=ctp_init ")
            assert "kind=td" in line and front.address in line
            # one flow folder per session, named from a sanitised + hashed UserID
            flows = list((tmp_path / "flow" / "td").glob("u1-*/s*/DialogRsp.con"))
            assert len(flows) == 1, flows


async def test_front_hangs_up_client_gets_4097_and_session_survives(
    locale_cache: LocaleCache, tmp_path: Path
) -> None:
    async with fake_front(close=True) as front:
        config = write_config(tmp_path, front.address, front.address, login_timeout_s=3.0)
        async with (
            service_process(config, locale_cache.folder) as svc,
            connect(svc.ports["ws"], "/td/") as client,
        ):
            await client.send({**LOGIN, "RequestID": 7})
            down = await client.expect("FrontDisconnected")
            assert down["FrontDisconnected"] == {
                "Reason": 4097,
                "Hex": "0x1001",
                "Description": "network read failed",
            }
            assert down["RspInfo"]["ErrorID"] == 4097
            # the session still answers, and the library keeps reconnecting (every ~1 s)
            await client.send({"MsgType": "ReqQryOrder", "QryOrder": {}, "RequestID": 8})
            refused = await client.expect(lambda f: f.get("RequestID") == 8)
            assert refused["RspInfo"]["ErrorID"] in (-401, -503), refused
            await client.expect("FrontDisconnected", timeout=5)
            await front.wait(lambda f: f.connections >= 2)
            # the pending login ends with a clear error, not silence
            failed = await client.expect(lambda f: f.get("RequestID") == 7, timeout=6)
            assert failed["MsgType"] == "RspUserLogin" and failed["RspInfo"]["ErrorID"] == -503
            await client.send({"MsgType": "ReqQryOrder", "QryOrder": {}, "RequestID": 9})
            again = await client.expect(lambda f: f.get("RequestID") == 9)
            assert again["RspInfo"]["ErrorID"] == -401
            assert svc.proc.returncode is None


async def test_closing_the_websocket_releases_the_api(
    locale_cache: LocaleCache, tmp_path: Path
) -> None:
    async with fake_front(close=False) as front:
        config = write_config(tmp_path, front.address, front.address, release_timeout_s=4.0)
        async with service_process(config, locale_cache.folder) as svc:
            await trio.sleep(0.2)
            baseline = svc.threads()
            async with connect(svc.ports["ws"], "/td/") as client:
                await client.send({**LOGIN, "RequestID": 7})
                await front.wait(lambda f: bool(f.first_bytes))
                with_api = svc.threads()
                assert len(with_api) >= len(baseline) + 2, (baseline, with_api)  # CTP's threads
            closed_at = time.monotonic()
            line = await svc.wait_for("event=ctp_released ", within=4.0)
            assert "kind=td" in line
            assert time.monotonic() - closed_at < 4.0
            await front.wait(lambda f: f.closed_by_peer >= 1, within=2)  # the API's socket
            with trio.fail_after(3):
                while len(svc.threads()) > len(baseline):
                    await trio.sleep(0.05)
            assert "release_timeout" not in svc.stderr_text()


async def test_nothing_listening_login_times_out_with_503(
    locale_cache: LocaleCache, tmp_path: Path
) -> None:
    dead = f"tcp://127.0.0.1:{unused_port()}"
    config = write_config(tmp_path, dead, dead, login_timeout_s=2.0)
    async with service_process(config, locale_cache.folder) as svc:
        async with connect(svc.ports["ws"], "/td/") as client:
            started = time.monotonic()
            await client.send({**LOGIN, "RequestID": 11})
            rsp = await client.expect(lambda f: f.get("RequestID") == 11, timeout=10)
            elapsed = time.monotonic() - started
            assert rsp["MsgType"] == "RspUserLogin" and rsp["IsLast"] is True
            assert rsp["RspInfo"]["ErrorID"] == -503, rsp
            assert rsp["RspInfo"]["ErrorMsg"] == "front unreachable"
            assert dead in rsp["Detail"] and "2 s" in rsp["Detail"]
            assert rsp.get("RspUserLogin") is None
            assert 1.8 <= elapsed < 6, elapsed
        await svc.wait_for("event=ctp_released ", within=6)


async def test_library_console_output_never_reaches_stdout(
    locale_cache: LocaleCache, tmp_path: Path
) -> None:
    """The library prints on fd 1 at each disconnect and on fd 2 for a bad front address;
    stdout stays empty and every stderr line is one of our structured log lines."""
    async with fake_front(close=True) as front:
        # md front without a port: the library prints "Invalid port: Success" on fd 2
        config = write_config(tmp_path, front.address, "tcp://127.0.0.1")
        async with (
            service_process(config, locale_cache.folder) as svc,
            connect(svc.ports["ws"], "/td/") as td,
            connect(svc.ports["ws"], "/md/") as md,
        ):
            await td.send({**LOGIN, "RequestID": 1})
            await md.send({**LOGIN, "RequestID": 2})
            await td.expect("FrontDisconnected")
            await svc.wait_for(
                "event=ctp_output stream=stdout "
                'text="CThostFtdcUserApiImplBase::OnSessionDisconnected'
            )
            await svc.wait_for('event=ctp_output stream=stderr text="Invalid port')
            failed = await md.expect(lambda f: f.get("RequestID") == 2, timeout=6)
            assert failed["RspInfo"]["ErrorID"] == -503
    assert svc.proc.returncode == 0, svc.stderr_text()
    assert svc.stdout == b""
    bad = [line for line in svc.lines if line and not LOG_LINE.match(line)]
    assert not bad, "\n".join(bad)
    assert any("event=stopped" in line for line in svc.lines)


async def test_unusable_flow_folder_fails_the_login_not_the_service(
    locale_cache: LocaleCache, tmp_path: Path
) -> None:
    """A flow folder that cannot be created would segfault the library: it is refused first."""
    (tmp_path / "file").write_text("a regular file where a folder should be")
    async with fake_front(close=False) as front:
        config = write_config(
            tmp_path, front.address, front.address, flow_dir=str(tmp_path / "file" / "flow")
        )
        async with service_process(config, locale_cache.folder) as svc:
            for attempt in (1, 2):
                async with connect(svc.ports["ws"], "/td/") as client:
                    await client.send({**LOGIN, "RequestID": attempt})
                    rsp = await client.expect("RspUserLogin")
                    assert rsp["RequestID"] == attempt
                    assert rsp["RspInfo"]["ErrorID"] == -500, rsp
                    assert "flow folder" in rsp["Detail"]
            assert front.connections == 0 and svc.proc.returncode is None


async def test_sigterm_with_a_live_session_releases_and_exits(
    locale_cache: LocaleCache, tmp_path: Path
) -> None:
    async with fake_front(close=False) as front:
        config = write_config(tmp_path, front.address, front.address)
        async with service_process(config, locale_cache.folder) as svc:
            async with connect(svc.ports["ws"], "/md/") as client:
                await client.send({**LOGIN, "RequestID": 1})
                await front.wait(lambda f: bool(f.first_bytes))
                started = time.monotonic()
                assert await svc.stop() == 0, svc.stderr_text()
                assert time.monotonic() - started < 5
            assert any("event=ctp_released session=1 kind=md" in line for line in svc.lines)
            assert any("event=stopped" in line for line in svc.lines)
