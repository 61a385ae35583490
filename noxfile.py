"""Developer tasks. ``nox`` runs lint, typecheck and tests (the CI command)."""

from __future__ import annotations

import os
import shutil

import nox

nox.options.sessions = ["lint", "typecheck", "tests", "browser"]
nox.options.reuse_existing_virtualenvs = True

PYTHON = ["3.11"]
TOOLS = ["ruff==0.17.6", "mypy==2.4.1"]


@nox.session(python=PYTHON)
def lint(session: nox.Session) -> None:
    session.install("ruff==0.17.6")
    session.run("ruff", "check", ".")
    session.run("ruff", "format", "--check", ".")


@nox.session(python=PYTHON)
def typecheck(session: nox.Session) -> None:
    session.install("-e", ".[test]", *TOOLS, "nox")
    session.run("mypy")


@nox.session(python=PYTHON)
def tests(session: nox.Session) -> None:
    session.install("-e", ".[test]")
    session.run("pytest", "-m", "not browser", *session.posargs)


@nox.session(python=PYTHON)
def browser(session: nox.Session) -> None:
    """The web demo in headless Chromium (Debian's chromium package; never a downloaded one)."""
    if not shutil.which("chromium") and os.geteuid() == 0 and shutil.which("apt-get"):
        session.run("apt-get", "update", "-qq", external=True)
        session.run(
            "apt-get", "install", "-y", "-qq", "--no-install-recommends", "chromium", external=True
        )
    session.install("-e", ".[test]", "playwright")
    session.run("pytest", "-m", "browser", *session.posargs)


@nox.session(python=PYTHON)
def bench(session: nox.Session) -> None:
    """Benchmarks; writes docs/benchmarks.md. ``nox -s bench -- --quick`` for a smoke run."""
    session.install("-e", ".[test]", "py-spy")
    session.run("python", "-m", "bench", *session.posargs)


# openctp-ctp versions the pin (>=6.7.2,<6.8) allows; LocalCTP has headers for the first three.
CTP_VERSIONS = ["6.7.2.8", "6.7.7.1", "6.7.8.0", "6.7.9.0", "6.7.10.0", "6.7.11.0"]


@nox.session(python=PYTHON, reuse_venv=False, default=False)
@nox.parametrize("binding", CTP_VERSIONS)
def ctp_versions(session: nox.Session, binding: str) -> None:
    """tests/ctp in a fresh environment per binding version: import, every callback's capture,
    loopback connects; LocalCTP end to end on 6.7.2.8/6.7.7.1/6.7.8.0 (built from
    ../shared/localctp; needs g++, make, libsqlite3-dev). pip's cache serves the downloads."""
    session.install("-e", ".[test]", f"openctp-ctp=={binding}")
    # with the LocalCTP source present, a missing compiler fails instead of skipping
    env = {"WEBCTP_EXPECT_BINDING": binding, "WEBCTP_REQUIRE_LOCALCTP": "1"}
    session.run("pytest", "tests/ctp", "-m", "ctp", "-rs", *session.posargs, env=env)
