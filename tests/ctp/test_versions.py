"""The installed binding version against the catalogue (generated from 6.7.11.0).

``nox -s ctp_versions`` runs this file once per allowed version (6.7.2.8 … 6.7.11.0), each in a
throwaway environment, with ``WEBCTP_EXPECT_BINDING`` naming the version it installed.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.service.client import connect, http_get

from .conftest import (
    ROOT,
    LocaleCache,
    answer_to,
    child_env,
    fake_front,
    service_process,
    write_config,
)

pytestmark = pytest.mark.ctp


ALLOWED = ("6.7.2.8", "6.7.7.1", "6.7.8.0", "6.7.9.0", "6.7.10.0", "6.7.11.0")


@pytest.fixture(scope="module")
def probe(locale_cache: LocaleCache) -> dict[str, Any]:
    """tests/ctp/probe.py in a fresh process: import, every callback, every request struct."""
    result = subprocess.run(
        [sys.executable, "-m", "tests.ctp.probe"],
        env=child_env(locale_cache.folder),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def test_installed_version_is_the_one_asked_for(probe: dict[str, Any]) -> None:
    version = metadata.version("openctp-ctp")
    assert probe["version"] == version
    assert version in ALLOWED, f"openctp-ctp {version} is not one of the tested versions"
    expected = os.environ.get("WEBCTP_EXPECT_BINDING")
    if expected:
        assert version == expected
    # the library inside is the one of that series (v6.7.2_..., v6.7.11_...)
    assert probe["api_version"].startswith("v" + ".".join(version.split(".")[:3]) + "_")


def test_every_callback_captures_and_every_request_struct_fills(probe: dict[str, Any]) -> None:
    assert probe["failed"] == []
    # the binding's Spi classes have most of the catalogue's 177 callbacks, each was called
    assert probe["callbacks_called"] + len(probe["callbacks_absent"]) == 177
    assert probe["callbacks_called"] >= 160
    assert probe["requests_filled"] + len(probe["requests_unavailable"]) == 121
    if metadata.version("openctp-ctp") == "6.7.11.0":  # the catalogue's own version
        assert probe["absent"] == {} and probe["requests_unavailable"] == []
    else:
        assert "LastLoginTime" in probe["absent"]["RspUserLogin"]


async def test_service_reports_version_and_refuses_what_the_binding_lacks(
    locale_cache: LocaleCache, probe: dict[str, Any], tmp_path: Path
) -> None:
    version = probe["version"]
    async with fake_front(close=False) as front:
        config = write_config(tmp_path, front.address, front.address)
        async with (
            service_process(config, locale_cache.folder) as svc,
            connect(svc.ports["ws"], "/td/") as client,
        ):
            line = await svc.wait_for("event=ctp_catalogue ")
            assert f"binding={version} " in line and "catalogue='openctp-ctp 6.7.11.0'" in line
            status, _, body = await http_get(svc.ports["http"], "/api/endpoints")
            assert status == 200 and orjson.loads(body)["binding"] == version
            # a request the binding lacks: -400 naming it and the version, even before login
            for rid, msg_type in enumerate(probe["requests_unavailable"], start=1):
                await client.send({"MsgType": msg_type, "RequestID": rid})
                err = await client.expect(answer_to(rid))
                assert err["RspInfo"]["ErrorID"] == -400, err
                assert msg_type in err["Detail"] and f"openctp-ctp {version}" in err["Detail"]
            # a field the binding lacks: -400 naming the field and the version, never dropped
            if "InputOrder" in probe["absent"]:
                field = probe["absent"]["InputOrder"][0]
                await client.send(
                    {"MsgType": "ReqOrderInsert", "InputOrder": {field: "1"}, "RequestID": 99}
                )
                err = await client.expect(answer_to(99))
                assert err["RspInfo"]["ErrorID"] == -400, err
                assert err["Detail"].startswith(f"InputOrder.{field}: not in openctp-ctp {version}")
            # what every binding has passes validation (and waits for login)
            await client.send({"MsgType": "ReqQryOrder", "QryOrder": {}, "RequestID": 100})
            err = await client.expect(answer_to(100))
            assert err["RspInfo"]["ErrorID"] == -401, err
