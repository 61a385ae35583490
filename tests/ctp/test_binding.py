"""The binding itself: the locale mechanism, a fresh import, and the message instead of an abort."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.processes import service_command
from webctp.backend import _ctp
from webctp.backend._ctp import LOCALE, BindingUnavailable, ensure_locale, has_locale

from .conftest import ROOT, LocaleCache, child_env, unused_port, write_config

pytestmark = pytest.mark.ctp


def test_locale_is_provided_by_webctp(locale_cache: LocaleCache) -> None:
    """With LOCPATH unset, webctp makes the locale available (built here when the system
    lacks it) and the binding never sees a missing locale."""
    built = locale_cache.folder / "webctp" / "locale" / LOCALE
    if locale_cache.system_has_locale:
        assert "event=locale_build" not in locale_cache.build.stderr
    else:
        assert "event=locale_build " in locale_cache.build.stderr
        assert "event=locale_built " in locale_cache.build.stderr
        assert (built / "LC_CTYPE").is_file()
        assert not list(built.parent.glob(".build-*")), "temporary build folders are removed"
        # a second process finds it in the cache: no second build
        again = subprocess.run(
            [
                sys.executable,
                "-c",
                "import logging; logging.basicConfig(level='INFO')\n"
                "from webctp.backend._ctp import ensure_locale; ensure_locale()",
            ],
            env=child_env(locale_cache.folder),
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert again.returncode == 0, again.stderr
        assert "locale_build" not in again.stderr and "event=locale_ready" in again.stderr


_CREATE_BOTH = """
import json, sys
from webctp.backend._ctp import import_binding
td, md = import_binding()
flow = sys.argv[1]
t = td.CThostFtdcTraderApi.CreateFtdcTraderApi(flow + "/td/")
m = md.CThostFtdcMdApi.CreateFtdcMdApi(flow + "/md/")
info = {"td": t.GetApiVersion(), "md": m.GetApiVersion(), "day": t.GetTradingDay()}
t.Release()
m.Release()
print(json.dumps(info))
"""


def test_fresh_process_imports_and_creates_both_apis(
    locale_cache: LocaleCache, tmp_path: Path
) -> None:
    for kind in ("td", "md"):
        (tmp_path / kind).mkdir()
    result = subprocess.run(
        [sys.executable, "-c", _CREATE_BOTH, str(tmp_path)],
        env=child_env(locale_cache.folder),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    info = json.loads(result.stdout.strip().splitlines()[-1])
    assert info["td"].startswith("v6.7") and info["md"].startswith("v6.7"), info
    assert info["day"] == "19800100"  # before login
    assert "LOCPATH" not in child_env(locale_cache.folder)
    for kind in ("td", "md"):
        assert (tmp_path / kind / "DialogRsp.con").is_file()


def _no_localedef_env(tmp_path: Path) -> dict[str, str]:
    empty = tmp_path / "empty"
    for name in ("locpath", "cache", "bin"):
        (empty / name).mkdir(parents=True)
    # LOCPATH at an empty folder hides a system-wide locale too; PATH has no localedef
    return child_env(empty / "cache", LOCPATH=str(empty / "locpath"), PATH=str(empty / "bin"))


def test_no_locale_and_no_localedef_gives_a_clear_message(tmp_path: Path) -> None:
    config = write_config(tmp_path, f"tcp://127.0.0.1:{unused_port()}", "tcp://127.0.0.1:1")
    result = subprocess.run(
        service_command(config),
        env=_no_localedef_env(tmp_path),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "terminate called" not in result.stderr and "Traceback" not in result.stderr
    assert f"needs the glibc locale {LOCALE}" in result.stderr
    assert "localedef was not found on PATH" in result.stderr
    assert "apt-get install locales" in result.stderr
    assert result.stdout == ""


def _fake_localedef(folder: Path, script: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "localedef"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_localedef_failure_is_reported_and_leaves_nothing_behind(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process: only ctypes and a fake localedef, the binding is not imported."""
    _fake_localedef(
        tmp_path / "bin",
        f'{shutil.which("mkdir")} -p "$5"\n'
        'echo "[error] cannot open locale definition file zh_CN" >&2; exit 4\n',
    )
    (tmp_path / "locpath").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("LOCPATH", str(tmp_path / "locpath"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert not has_locale()
    with pytest.raises(BindingUnavailable) as info:
        ensure_locale()
    message = str(info.value)
    assert "localedef said: [error] cannot open locale definition file zh_CN" in message
    assert "apt-get install locales" in message
    assert os.environ["LOCPATH"] == str(tmp_path / "locpath")  # unchanged
    assert list((tmp_path / "cache" / "webctp" / "locale").iterdir()) == []


def test_broken_leftover_is_rebuilt_and_user_locpath_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, locale_cache: LocaleCache
) -> None:
    """A half-written locale from an interrupted build is not trusted: webctp builds again
    (here with a fake localedef copying a good build) and keeps the user's LOCPATH after its own."""
    good = locale_cache.folder / "webctp" / "locale" / LOCALE
    if locale_cache.system_has_locale:
        pytest.skip("the system provides the locale; there is no webctp build to copy")
    _fake_localedef(tmp_path / "bin", f'{shutil.which("cp")} -r "{good}" "$5"\n')
    cache = tmp_path / "cache"
    leftover = cache / "webctp" / "locale" / LOCALE
    leftover.mkdir(parents=True)
    (leftover / "LC_CTYPE").write_bytes(b"truncated")
    (tmp_path / "user").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "bin"))
    monkeypatch.setenv("LOCPATH", str(tmp_path / "user"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(cache))
    ensure_locale()
    assert has_locale()
    assert os.environ["LOCPATH"] == f"{cache / 'webctp' / 'locale'}:{tmp_path / 'user'}"
    assert (leftover / "LC_COLLATE").is_file()
    assert _ctp.cache_dir() == cache / "webctp" / "locale"
