"""LocalCTP (a C++ CTP counter, MIT, dearleeyoung/LocalCTP) as a test fixture.

The source lives outside the repository, in ``../shared/localctp`` next to the repo root. It is
built here (g++ and libsqlite3-dev; 20-40 s) and cached by source hash and header version, then
swapped into a throwaway copy of the installed openctp-ctp, in place of the vendor's
``libthosttraderapi_se.so`` (the binding's extension module finds it through an RPATH, so
``LD_LIBRARY_PATH`` would not win). A service started with that copy first on ``PYTHONPATH``
talks to LocalCTP instead of a broker.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
SOURCE_ENV = "WEBCTP_LOCALCTP_SRC"


def _find_source() -> Path:
    """``$WEBCTP_LOCALCTP_SRC``, else ``../shared/localctp`` beside the repository root; for a
    git worktree, beside the main checkout's root too."""
    given = os.environ.get(SOURCE_ENV)
    if given:
        return Path(given)
    candidates = [ROOT.parent / "shared" / "localctp"]
    dot_git = ROOT / ".git"
    if dot_git.is_file():  # a worktree: "gitdir: <main>/.git/worktrees/<name>"
        text = dot_git.read_text().strip()
        if text.startswith("gitdir:"):
            main_git = Path(text.split(":", 1)[1].strip()).resolve().parents[1]
            candidates.append(main_git.parent.parent / "shared" / "localctp")
    for candidate in candidates:
        if (candidate / "LocalCTP" / "makefile").is_file():
            return candidate
    return candidates[0]


SOURCE = _find_source()

HEADERS = {"6.7.2.8": "6.7.2", "6.7.7.1": "6.7.7", "6.7.8.0": "6.7.8"}
"""Binding version -> LocalCTP header folder with exactly its structs and methods."""

REQUIRE_ENV = "WEBCTP_REQUIRE_LOCALCTP"
"""Set (by ``nox -s ctp_versions``): with the source present, a missing compiler or
libsqlite3-dev fails the tests instead of skipping them."""


def cache_root() -> Path:
    given = os.environ.get("WEBCTP_TEST_CACHE")
    base = (
        Path(given)
        if given
        else Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "webctp-tests"
    )
    return base / "localctp"


def source_hash(src: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in src.rglob("*") if p.is_file() and not p.is_symlink()):
        digest.update(str(path.relative_to(src)).encode() + b"\0")
        digest.update(path.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def missing_tools() -> list[str]:
    """What the build needs and this machine lacks."""
    missing = [tool for tool in ("g++", "make") if shutil.which(tool) is None]
    if not any(Path(d, "sqlite3.h").exists() for d in ("/usr/include", "/usr/local/include")):
        missing.append("libsqlite3-dev (sqlite3.h)")
    return missing


def build(headers: str, log: list[str] | None = None) -> Path:
    """``libthosttraderapi_se.so`` built from SOURCE for the ``headers`` folder (cached)."""
    root = cache_root()
    out = root / f"{source_hash(SOURCE)}-{headers}" / "libthosttraderapi_se.so"
    if out.exists():
        return out
    root.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".build-", dir=root) as tmp:
        work = Path(tmp) / "src"
        shutil.copytree(SOURCE, work, symlinks=True)
        lib = work / "LocalCTP"
        current = lib / "ctp_file" / "current"
        current.unlink(missing_ok=True)
        current.symlink_to(headers)
        (lib / "sqlite").mkdir(exist_ok=True)
        (lib / "sqlite" / "sqlite3.h").write_text("#include <sqlite3.h>\n")  # Debian's libsqlite3
        (work / "bin" / "linux").mkdir(parents=True, exist_ok=True)
        (lib / "auto_generated_code").mkdir(exist_ok=True)
        steps = [
            ([sys.executable, "ParseCTPHeaders.py"], work / "GenScript"),
            (
                [
                    "make",
                    f"-j{min(os.cpu_count() or 1, 4)}",
                    "DEBUG=",
                    "OBJS2=",  # keeps SQLite's own sources (and its shell) out of the library
                    "LIBS=-pthread -ldl -lsqlite3",
                ],
                lib,
            ),
        ]
        for argv, cwd in steps:
            done = subprocess.run(
                argv, cwd=cwd, capture_output=True, text=True, errors="replace", check=False
            )
            if log is not None:
                log.append(f"$ {' '.join(argv)}\n{done.stdout[-2000:]}{done.stderr[-4000:]}")
            if done.returncode != 0:
                raise RuntimeError(
                    f"LocalCTP build step {argv[0]} failed ({done.returncode}):\n"
                    f"{done.stdout[-2000:]}\n{done.stderr[-4000:]}"
                )
        built = work / "bin" / "linux" / "libthosttraderapi_se.so"
        out.parent.mkdir(parents=True, exist_ok=True)
        staged = out.parent / f".{out.name}.{os.getpid()}"
        shutil.copy2(built, staged)
        os.replace(staged, out)  # atomic: a half-copied library is never seen as cached
    return out


def binding_copy(library: Path, dest: Path) -> Path:
    """A throwaway copy of the installed openctp-ctp with ``library`` as its trader library;
    put the returned folder first on ``PYTHONPATH``."""
    dist = metadata.distribution("openctp-ctp")
    site = Path(str(dist.locate_file(""))).resolve()
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("openctp_ctp", "openctp_ctp.libs"):
        shutil.copytree(site / name, dest / name)
    # the .dist-info folder too: the service reads the version from the copy's metadata
    record = next(f for f in dist.files or () if f.name == "METADATA")
    info = Path(str(dist.locate_file(record))).parent
    shutil.copytree(info, dest / info.name)
    vendor = sorted((dest / "openctp_ctp.libs").glob("libthosttraderapi_se*.so"))
    assert len(vendor) == 1, vendor
    shutil.copy2(library, vendor[0])
    return dest
