"""Developer tasks. ``nox`` runs lint, typecheck, tests and browser (the CI command).

Interpreters: ``tests`` runs on the lowest and on the highest supported Python (3.10-3.13) this
machine has: on PATH, in pyenv's versions folder, or the one running nox. With ``CI`` set it
runs on 3.10 and 3.13 exactly. The other sessions run once, on the highest. A missing
interpreter fails the run; nothing is ever skipped for want of one, and nox never downloads
one.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import nox

# What plain ``nox`` runs, in order: the one list of default sessions.
SESSIONS = ["lint", "typecheck", "tests", "browser"]

nox.options.sessions = SESSIONS
nox.options.reuse_existing_virtualenvs = True
nox.options.error_on_missing_interpreters = True
nox.options.download_python = "never"

SUPPORTED = ("3.10", "3.11", "3.12", "3.13")  # pyproject: requires-python >= 3.10
TOOLS = ["ruff==0.17.6", "mypy==2.4.1"]


def _version_of(executable: str) -> str | None:
    """``X.Y`` of an interpreter that runs, else None (a pyenv shim of an inactive version)."""
    try:
        done = subprocess.run(
            [executable, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def _find(version: str) -> str | None:
    """A working ``python<version>``: PATH, the one running nox, then pyenv's newest patch."""
    candidates = [shutil.which(f"python{version}") or ""]
    if f"{sys.version_info[0]}.{sys.version_info[1]}" == version:
        candidates.append(sys.executable)
    pyenv = Path(os.environ.get("PYENV_ROOT") or Path.home() / ".pyenv") / "versions"
    patches = [p for p in pyenv.glob(f"{version}.*") if re.fullmatch(r"\d+\.\d+\.\d+", p.name)]
    patches.sort(key=lambda p: [int(n) for n in p.name.split(".")], reverse=True)
    candidates += [str(p / "bin" / f"python{version}") for p in patches]
    return next((c for c in candidates if c and _version_of(c) == version), None)


def _pythons() -> list[str]:
    """The versions ``tests`` runs on, each made findable by nox under its ``X.Y`` name."""
    found = {v: exe for v in SUPPORTED if (exe := _find(v))}  # in SUPPORTED's order
    if os.environ.get("CI", "").lower() not in ("", "0", "false"):
        wanted = [SUPPORTED[0], SUPPORTED[-1]]
    elif found:
        versions = list(found)
        wanted = list(dict.fromkeys([versions[0], versions[-1]]))
    else:
        wanted = list(SUPPORTED)  # each then fails as "not found"
    for version in wanted:
        exe = found.get(version)
        if exe is None:
            print(
                f"noxfile: python{version} not found (PATH, pyenv, the one running nox); "
                f"supported: {', '.join(SUPPORTED)}",
                file=sys.stderr,
            )
        elif shutil.which(f"python{version}") != exe:  # e.g. a pyenv version not active
            os.environ["PATH"] = os.pathsep.join([str(Path(exe).parent), os.environ["PATH"]])
    return wanted


PYTHONS = _pythons()
LATEST = PYTHONS[-1]


def install(session: nox.Session, *args: str) -> None:
    """pip install with its output shown: a fresh environment takes a while."""
    session.install(*args, silent=False)


@nox.session(python=LATEST)
def lint(session: nox.Session) -> None:
    install(session, "ruff==0.17.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=LATEST)
def typecheck(session: nox.Session) -> None:
    install(session, "-e", ".[test]", *TOOLS, "nox")
    session.run("mypy")


@nox.session(python=PYTHONS)
def tests(session: nox.Session) -> None:
    install(session, "-e", ".[test]")
    session.run("pytest", "-m", "not browser", *session.posargs)


@nox.session(python=LATEST)
def browser(session: nox.Session) -> None:
    """The web demo in headless Chromium (Debian's chromium package; never a downloaded one)."""
    if not shutil.which("chromium") and os.geteuid() == 0 and shutil.which("apt-get"):
        session.run("apt-get", "update", "-qq", external=True)
        session.run(
            "apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium", external=True
        )
    install(session, "-e", ".[test]", "playwright")
    session.run("pytest", "-m", "browser", *session.posargs)


@nox.session(python=LATEST)
def bench(session: nox.Session) -> None:
    """Benchmarks, about 20 minutes; the report goes to artifacts/benchmarks.md.

    ``nox -s bench -- --write-report`` writes the published docs/benchmarks.md instead;
    ``nox -s bench -- --quick`` is a smoke run.
    """
    install(session, "-e", ".[test]", "py-spy")
    session.run("python", "-m", "bench", *session.posargs)


# openctp-ctp versions the pin (>=6.7.2,<6.8) allows; LocalCTP has headers for the first three.
CTP_VERSIONS = ["6.7.2.8", "6.7.7.1", "6.7.8.0", "6.7.9.0", "6.7.10.0", "6.7.11.0"]


@nox.session(python=LATEST, reuse_venv=False, default=False)
@nox.parametrize("binding", CTP_VERSIONS)
def ctp_versions(session: nox.Session, binding: str) -> None:
    """tests/ctp in a fresh environment per binding version: import, every callback's capture,
    loopback connects; LocalCTP end to end on 6.7.2.8/6.7.7.1/6.7.8.0 (built from
    ../shared/localctp; needs g++, make, libsqlite3-dev). pip's cache serves the downloads."""
    session.install("-e", ".[test]", f"openctp-ctp=={binding}")
    # with the LocalCTP source present, a missing compiler fails instead of skipping
    env = {"WEBCTP_EXPECT_BINDING": binding, "WEBCTP_REQUIRE_LOCALCTP": "1"}
    session.run("pytest", "tests/ctp", "-m", "ctp", "-rs", *session.posargs, env=env)
