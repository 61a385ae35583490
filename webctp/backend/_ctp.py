"""The only import of ``openctp_ctp``.

The binding aborts the interpreter (C++ ``std::terminate``, SIGABRT, not an ImportError) when
the glibc locale ``zh_CN.GB18030`` is missing. So, before the import:

1. check that the package is installed at all (``find_spec`` does not execute it);
2. ask glibc whether it can create the locale (``newlocale`` through ctypes, which cannot
   crash; it honours ``LOCPATH``);
3. when it cannot, build the locale with ``localedef`` into a cache folder
   (``$XDG_CACHE_HOME/webctp/locale``, else ``~/.cache/webctp/locale``; about 9 s, 2.8 MB, once
   per machine) and put that folder first on ``LOCPATH``;
4. only then import. When none of that works, raise ``BindingUnavailable`` with a message that
   says exactly what to install; ``python -m webctp`` prints it and exits with status 2.

The build goes to a private temporary folder that is renamed into place only once glibc accepts
it, so an interrupted build or two processes building at once never leave a half-written locale
that later runs would trust.
"""

from __future__ import annotations

import ctypes
import importlib.util
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from importlib import metadata
from pathlib import Path
from types import ModuleType

from webctp.protocol.catalogue import Catalogue, load

log = logging.getLogger("webctp.ctp")

LOCALE = "zh_CN.GB18030"
LOCALE_ALIAS = "zh_CN.gb18030"
"""The same locale under the lower-case name: glibc looks names up as written, and some CTP
libraries (LocalCTP's, for one) ask for this spelling; the cache holds it as a symlink."""
_LC_ALL_MASK = 8127  # glibc's LC_ALL_MASK
_LOCALEDEF_TIMEOUT_S = 300.0

TESTED = "6.7"
"""The binding series the service is tested with (pyproject: openctp-ctp>=6.7.2,<6.8)."""


class BindingUnavailable(RuntimeError):
    """openctp-ctp cannot be used on this machine; the message says what to do."""


def _needs_locale() -> bool:
    """Only the Linux builds of the binding abort without the glibc locale."""
    return sys.platform.startswith("linux")


def has_locale(name: str = LOCALE) -> bool:
    """Whether glibc can create locale ``name`` now (honours LOCPATH). Never imports the
    binding."""
    try:
        libc = ctypes.CDLL(None)  # the symbols already loaded into this process: glibc's
        newlocale = libc.newlocale
        freelocale = libc.freelocale
    except (OSError, AttributeError):
        return False
    newlocale.restype = ctypes.c_void_p
    newlocale.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p]
    freelocale.argtypes = [ctypes.c_void_p]
    handle = newlocale(_LC_ALL_MASK, name.encode(), None)
    if not handle:
        return False
    freelocale(handle)
    return True


def cache_dir() -> Path:
    """Where webctp builds the locale: ``$XDG_CACHE_HOME/webctp/locale`` or ``~/.cache/...``."""
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "webctp" / "locale"


def _with_locpath(folder: Path, previous: str | None) -> str:
    # glibc takes a colon-separated list; keep whatever the user had after ours
    return f"{folder}:{previous}" if previous else str(folder)


_PROBE = (
    "import ctypes, sys\n"
    "c = ctypes.CDLL(None)\n"
    "c.newlocale.restype = ctypes.c_void_p\n"
    "c.newlocale.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_void_p]\n"
    f"names = {(LOCALE.encode(), LOCALE_ALIAS.encode())!r}\n"
    f"ok = [c.newlocale({_LC_ALL_MASK}, n, None) for n in names]\n"
    "sys.exit(0 if all(ok) else 1)\n"
)


def _usable(folder: Path) -> bool:
    """Whether ``folder`` as LOCPATH provides the locale, asked in a child process.

    Not in this process: glibc remembers a locale file it failed to load for the life of the
    process, so probing a broken leftover here would make the rebuilt one unusable until a
    restart (and the import would then abort).
    """
    try:
        probe = subprocess.run(
            [sys.executable, "-I", "-S", "-c", _PROBE],
            env={**os.environ, "LOCPATH": str(folder)},
            capture_output=True,
            timeout=60,
            check=False,
        )
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def ensure_locale() -> None:
    """Make zh_CN.GB18030 (under both spellings, ``LOCALE_ALIAS``) available to this process,
    or raise BindingUnavailable."""
    if not _needs_locale() or (has_locale() and has_locale(LOCALE_ALIAS)):
        return
    folder = cache_dir()
    target = folder / LOCALE
    if target.is_dir():
        _link_alias(folder)  # caches from webctp versions that built one spelling only
    if not (target.is_dir() and _usable(folder)):
        _build(folder, target)
    previous = os.environ.get("LOCPATH")
    os.environ["LOCPATH"] = _with_locpath(folder, previous)
    if not has_locale():  # pragma: no cover - verified by _usable a moment ago
        if previous is None:
            os.environ.pop("LOCPATH", None)
        else:
            os.environ["LOCPATH"] = previous
        raise BindingUnavailable(howto(f"glibc does not accept the locale built in {folder}"))
    log.info("event=locale_ready locale=%s locpath=%s", LOCALE, os.environ["LOCPATH"])


def _link_alias(folder: Path) -> None:
    """``folder/zh_CN.gb18030`` -> ``zh_CN.GB18030`` (relative), replaced atomically."""
    alias = folder / LOCALE_ALIAS
    if alias.is_symlink() or alias.exists():
        return
    temp = folder / f".{LOCALE_ALIAS}.{os.getpid()}"
    try:
        temp.unlink(missing_ok=True)
        temp.symlink_to(LOCALE)
        os.replace(temp, alias)
    except OSError:
        temp.unlink(missing_ok=True)  # _usable() then reports the locale as incomplete


def _build(folder: Path, target: Path) -> None:
    localedef = shutil.which("localedef")
    if localedef is None:
        raise BindingUnavailable(howto("localedef was not found on PATH"))
    try:
        folder.mkdir(parents=True, exist_ok=True)
        work = Path(tempfile.mkdtemp(prefix=".build-", dir=folder))
    except OSError as exc:
        raise BindingUnavailable(
            howto(f"cannot write to {folder}: {exc.strerror or exc}")
        ) from None
    try:
        built = work / LOCALE
        log.info("event=locale_build locale=%s folder=%s localedef=%s", LOCALE, folder, localedef)
        started = time.monotonic()
        try:
            result = subprocess.run(
                [localedef, "-i", "zh_CN", "-f", "GB18030", str(built)],
                capture_output=True,
                text=True,
                errors="replace",
                timeout=_LOCALEDEF_TIMEOUT_S,
                check=False,
            )
            said = (result.stderr + result.stdout).strip().splitlines()
        except (OSError, subprocess.TimeoutExpired) as exc:
            said = [str(exc)]
        _link_alias(work)
        if not _usable(work):
            reason = "localedef could not build it"
            if said:
                reason += f" (localedef said: {said[-1]})"
            raise BindingUnavailable(howto(reason))
        if target.exists() and not _usable(folder):
            shutil.rmtree(target, ignore_errors=True)  # a broken leftover from older versions
        try:
            built.rename(target)
            _link_alias(folder)
        except OSError:
            if not _usable(folder):  # not another process winning the race: a real failure
                raise BindingUnavailable(
                    howto(f"cannot move the built locale to {target}")
                ) from None
        log.info(
            "event=locale_built locale=%s folder=%s seconds=%.1f",
            LOCALE,
            folder,
            time.monotonic() - started,
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


def howto(reason: str) -> str:
    """The message for a machine without the locale: what is wrong and exactly what to do."""
    return (
        f"the CTP binding (openctp-ctp) needs the glibc locale {LOCALE}, and importing it "
        f"without that locale aborts the process. This machine does not have it and webctp "
        f"could not build it into {cache_dir()}: {reason}.\n"
        "Fix one of these ways, then start webctp again:\n"
        "  - Debian/Ubuntu: apt-get install locales   (webctp then builds the locale by itself, "
        "once, without root)\n"
        "  - Fedora/RHEL:   dnf install glibc-locale-source   (same)\n"
        f"  - system-wide, as root: localedef -i zh_CN -f GB18030 {LOCALE}\n"
        f"  - or set LOCPATH to a folder that holds a compiled {LOCALE} locale"
    )


_modules: tuple[ModuleType, ModuleType] | None = None
_adapted: tuple[Catalogue, str] | None = None


def binding_version() -> str | None:
    """The installed openctp-ctp version, read from its metadata (no import)."""
    try:
        return metadata.version("openctp-ctp")
    except metadata.PackageNotFoundError:
        return None


def import_binding() -> tuple[ModuleType, ModuleType]:
    """Import openctp_ctp's ``tdapi`` and ``mdapi`` safely (once per process)."""
    global _modules
    if _modules is not None:
        return _modules
    if importlib.util.find_spec("openctp_ctp") is None:
        raise BindingUnavailable(
            'backend = "ctp" needs the openctp-ctp package: pip install "openctp-ctp>=6.7.2,<6.8" '
            "(or, in a webctp checkout, pip install '.[ctp]')"
        )
    ensure_locale()
    try:
        from openctp_ctp import mdapi, tdapi  # noqa: TID251 - the one sanctioned import
    except ImportError as exc:
        raise BindingUnavailable(f"openctp-ctp is installed but does not import: {exc}") from None
    version = binding_version() or "unknown"
    api_version = tdapi.CThostFtdcTraderApi.GetApiVersion()
    if not version.startswith(TESTED + "."):
        log.warning(
            "event=ctp_binding_untested version=%s tested=%s.x api_version=%r: the fronts must "
            "run a matching CTP version (a mismatch shows as ErrorID 4040)",
            version,
            TESTED,
            api_version,
        )
    log.info("event=ctp_binding version=%s api_version=%r", version, api_version)
    _modules = (tdapi, mdapi)
    return _modules


def loaded_catalogue() -> tuple[Catalogue, str]:
    """The catalogue restricted to the imported binding, and the binding's version (once per
    process; logs what the binding lacks compared with the catalogue)."""
    global _adapted
    if _adapted is not None:
        return _adapted
    from ._adapt import adapt, summary

    td, md = import_binding()
    version = binding_version() or "unknown"
    full = load()
    adapted = adapt(full, td, md, f"openctp-ctp {version}")
    fields, requests = summary(adapted)
    log.info(
        "event=ctp_catalogue binding=%s catalogue=%r fields_missing=%d requests_missing=%d",
        version,
        full.binding,
        fields,
        requests,
    )
    _adapted = (adapted, version)
    return _adapted
