"""The only import of ``openctp_ctp``.

The binding aborts the interpreter (C++ std::terminate, not an ImportError) when the glibc
locale ``zh_CN.GB18030`` is missing. So: ask glibc first (``newlocale`` through ctypes, which
cannot crash), build the locale into a cache folder with ``localedef`` when it is missing, point
``LOCPATH`` at it, and only then import. When none of that works, stop with a message that says
what to install.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import logging
import os
import shutil
import subprocess
from pathlib import Path
from types import ModuleType

log = logging.getLogger(__name__)

LOCALE = "zh_CN.GB18030"
_LC_ALL_MASK = 8127  # glibc


class BindingUnavailable(RuntimeError):
    """openctp-ctp cannot be used on this machine; the message says what to do."""


def has_locale() -> bool:
    """Whether glibc can create the zh_CN.GB18030 locale (honours LOCPATH)."""
    name = ctypes.util.find_library("c")
    if not name:
        return False
    libc = ctypes.CDLL(name)
    libc.newlocale.restype = ctypes.c_void_p
    libc.newlocale.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p]
    libc.freelocale.argtypes = [ctypes.c_void_p]
    handle = libc.newlocale(_LC_ALL_MASK, LOCALE.encode(), None)
    if not handle:
        return False
    libc.freelocale(handle)
    return True


def cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "webctp" / "locale"


def ensure_locale() -> None:
    """Make zh_CN.GB18030 available to this process, or raise BindingUnavailable."""
    if has_locale():
        return
    folder = cache_dir()
    target = folder / LOCALE
    previous = os.environ.get("LOCPATH")
    if not target.exists():
        localedef = shutil.which("localedef")
        if localedef is None:
            raise BindingUnavailable(_HOWTO)
        folder.mkdir(parents=True, exist_ok=True)
        log.info("event=locale_build locale=%s folder=%s", LOCALE, folder)
        result = subprocess.run(
            [localedef, "-i", "zh_CN", "-f", "GB18030", str(target)],
            capture_output=True,
            text=True,
            check=False,
        )
        if not target.exists():
            detail = (result.stderr or result.stdout).strip().splitlines()
            raise BindingUnavailable(
                _HOWTO + (f"\nlocaledef said: {detail[-1]}" if detail else "")
            )
    os.environ["LOCPATH"] = str(folder)
    if not has_locale():
        if previous is None:
            os.environ.pop("LOCPATH", None)
        else:
            os.environ["LOCPATH"] = previous
        raise BindingUnavailable(_HOWTO)


_HOWTO = (
    "the CTP binding (openctp-ctp) needs the glibc locale zh_CN.GB18030, which this machine "
    "lacks and could not be generated. On Debian/Ubuntu: apt-get install locales && "
    "localedef -i zh_CN -f GB18030 zh_CN.GB18030 (as root), or install the 'locales' package "
    "so that webctp can build it into ~/.cache/webctp/locale by itself."
)


def import_binding() -> tuple[ModuleType, ModuleType]:
    """Import openctp_ctp's tdapi and mdapi safely."""
    ensure_locale()
    try:
        from openctp_ctp import mdapi, tdapi  # noqa: TID251 - the one sanctioned import
    except ImportError as exc:
        raise BindingUnavailable(
            "backend = \"ctp\" needs the openctp-ctp package: pip install 'webctp[ctp]' "
            f"(import failed: {exc})"
        ) from None
    return tdapi, mdapi
