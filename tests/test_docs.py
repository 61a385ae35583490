"""The generated protocol references are up to date with the catalogue."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

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
