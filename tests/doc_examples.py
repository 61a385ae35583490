"""The JSON exchanges shown in README.md and docs/*.md, parsed so the tests can run them.

An exchange is a ```json block whose lines start with ``→`` (a frame the client sends) or
``←`` (a frame it receives); a line indented under one continues it. ``...`` stands for
"more fields/items" inside an object or array (``[...]``: any array), the string ``"..."`` for
any value, a string ending in ``...`` (``"rb..."``) for any string that begins with the rest,
and a line ``← ...`` for any number of frames. Ticks (``RtnDepthMarketData``) are a
stream: a tick the block shows may arrive before the frames shown ahead of it. An HTML
comment right before the block says how to run it:

    <!-- example: td login=demo drop-fronts -->

``td``/``md``: the socket; ``login=USER``: log in first, unshown; ``drop-fronts``: the
simulator drops every front (reason 4097) before the block's frames are read.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]

ANY = "..."
_MORE = {"__more__": True}  # marks "more items" at the end of an array


@dataclass
class Step:
    send: bool
    frame: dict[str, Any] | None  # None: "← ..." (any frames)
    text: str


@dataclass
class Example:
    doc: str
    line: int
    steps: list[Step]
    options: dict[str, str] = field(default_factory=dict)
    error: str = ""
    """Why the block could not be read (the test fails with it)."""

    @property
    def name(self) -> str:
        return f"{self.doc}:{self.line}"


def parse_frame(text: str) -> dict[str, Any]:
    """The doc's notation to JSON: ``,...}``/``{...}`` drop, ``,...]`` becomes a marker."""
    text = re.sub(r",\s*\.\.\.\s*}", "}", text)
    text = re.sub(r"{\s*\.\.\.\s*}", "{}", text)
    text = re.sub(r",\s*\.\.\.\s*]", ', {"__more__": true}]', text)
    text = re.sub(r"\[\s*\.\.\.\s*]", '[{"__more__": true}]', text)
    value = json.loads(text)
    if not isinstance(value, dict):
        raise ValueError(f"not a frame: {text}")
    return value


def parse_block(lines: list[str]) -> list[Step]:
    joined: list[str] = []
    for line in lines:
        if line.startswith(("→", "←")):
            joined.append(line)
        elif line.strip():
            if not joined:
                return []  # a plain JSON block, not an exchange
            joined[-1] += " " + line.strip()
    steps = []
    for line in joined:
        body = line[1:].strip()
        if line[0] == "←" and body == ANY:
            steps.append(Step(False, None, line))
        else:
            steps.append(Step(line[0] == "→", parse_frame(body), line))
    return steps


def examples(path: Path) -> list[Example]:
    found = []
    lines = path.read_text(encoding="utf-8").splitlines()
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```json":
            start = i
            j = i + 1
            while lines[j].strip() != "```":
                j += 1
            error = ""
            try:
                steps = parse_block(lines[i + 1 : j])
            except ValueError as exc:
                steps, error = [Step(False, None, "")], f"unreadable frame: {exc}"
            if steps:
                options: dict[str, str] = {}
                k = start - 1
                while k >= 0 and not lines[k].strip():
                    k -= 1
                match = re.fullmatch(r"\s*<!-- example: (.*) -->\s*", lines[k]) if k >= 0 else None
                if match:
                    for word in match.group(1).split():
                        key, _, value = word.partition("=")
                        options[key] = value
                found.append(Example(path.name, start + 1, steps, options, error))
            i = j
        i += 1
    return found


def all_examples() -> list[Example]:
    return [e for path in DOCS for e in examples(path)]


def python_examples(uses: str = "webctp.client") -> list[tuple[str, str]]:
    """``(name, code)`` of the ```python blocks that use ``uses``: the client's are run by the
    tests with the service's address in place of ``ws://127.0.0.1:8081``, the simulator's
    (``webctp.sim``) on their own."""
    found = []
    for path in DOCS:
        text = path.read_text(encoding="utf-8")
        for match in re.finditer(r"^```python\n(.*?)^```", text, re.S | re.M):
            if uses in match.group(1):
                line = text.count("\n", 0, match.start()) + 1
                found.append((f"{path.name}:{line}", match.group(1)))
    return found


def printed_values(code: str) -> list[str]:
    """What each ``print(...)  # VALUE: why`` line of a block says it prints (its comment's
    first word), in order."""
    shown = re.findall(r"^\s*print\(.*\)\s*#\s*([^\s,:]+)", code, re.M)
    return [str(v) for v in shown]


def mismatch(expected: Any, actual: Any, where: str = "") -> str | None:
    """Why ``actual`` does not show what ``expected`` shows (None when it does)."""
    if expected == ANY:
        return None
    if isinstance(expected, dict):
        if not isinstance(actual, dict):
            return f"{where or 'frame'}: expected an object, got {actual!r}"
        for key, value in expected.items():
            if key not in actual:
                return f"{where}.{key}: missing"
            why = mismatch(value, actual[key], f"{where}.{key}")
            if why:
                return why
        return None
    if isinstance(expected, list):
        if not isinstance(actual, list):
            return f"{where}: expected an array, got {actual!r}"
        more = bool(expected) and expected[-1] == _MORE
        items = expected[:-1] if more else expected
        if len(actual) < len(items) or (not more and len(actual) != len(items)):
            return f"{where}: {len(actual)} items, the doc shows {len(items)}"
        for n, (e, a) in enumerate(zip(items, actual)):
            why = mismatch(e, a, f"{where}[{n}]")
            if why:
                return why
        return None
    if isinstance(expected, str) and expected.endswith(ANY):
        prefix = expected[: -len(ANY)]
        if isinstance(actual, str) and actual.startswith(prefix):
            return None
        return f"{where}: {actual!r}, the doc shows a string beginning with {prefix!r}"
    if isinstance(expected, bool) or expected is None or isinstance(expected, str):
        return None if expected == actual else f"{where}: {actual!r}, the doc shows {expected!r}"
    if isinstance(expected, (int, float)):
        if isinstance(actual, bool) or not isinstance(actual, (int, float)):
            return f"{where}: {actual!r}, the doc shows a number"
        return None if expected == actual else f"{where}: {actual!r}, the doc shows {expected!r}"
    return f"{where}: unexpected doc value {expected!r}"
