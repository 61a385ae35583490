"""The generated protocol references are up to date with the catalogue."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


def test_generated_docs_are_current() -> None:
    result = subprocess.run(
        [sys.executable, "scripts/gen_docs.py", "--check"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr


def test_every_td_request_documented() -> None:
    from webctp.protocol.catalogue import load

    text = (ROOT / "docs" / "td_protocol.md").read_text(encoding="utf-8")
    for name in load().td.requests:
        assert f"| `{name}` |" in text


USER_DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Files that are not in the repository, a development machine's paths, our issue numbers.
NOT_SHIPPED = [r"shared/", r"ctp-domain", r"market-facts", r"§", r"/work/", r"/tmp/", r"/root/"]
NOT_SHIPPED += [r"\b[Ii]ssue \d+", r"webctp\[ctp\]"]


@pytest.mark.parametrize("path", USER_DOCS, ids=lambda p: p.name)
def test_docs_cite_only_what_ships(path: Path) -> None:
    text = path.read_text(encoding="utf-8")
    found = [m.group(0) for pattern in NOT_SHIPPED for m in re.finditer(pattern, text)]
    assert not found, f"{path.name}: {found}"
