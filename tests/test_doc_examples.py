"""Every JSON exchange shown in README.md and docs/*.md, run against the simulator.

The frames a block sends are sent as shown; the frames it shows arriving must arrive in that
order, each with the fields and values shown (``tests/doc_examples.py`` has the notation).
The docs name contracts by alias (``rb.front``, docs/td_protocol.md "Instrument aliases"), so
they hold on any day: each block runs against a fresh simulator (no market clock, so the
front month's price is its product's level) at the real current time and at ``OTHER_TIMES``.
"""

from __future__ import annotations

import dataclasses
import itertools
import re
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import trio

from webctp.config import Config
from webctp.service import ServiceInfo, run_service
from webctp.sim import Exchange

from .conftest import replace
from .doc_examples import (
    ANY,
    Example,
    Step,
    all_examples,
    mismatch,
    parse_block,
    printed_values,
    python_examples,
)
from .service.client import Client, connect

OTHER_TIMES = {
    "2027-day": datetime(2027, 6, 2, 10, 0),  # a Wednesday's day session
    "friday-night": datetime(2026, 12, 4, 22, 30),  # night session, trading day Monday
    "sunday": datetime(2027, 3, 14, 15, 0),  # no session, trading day Monday 2027-03-15
}
"""Beijing times the examples also run at, besides now (``None``: the simulator's own clock)."""
CLOCKS: dict[str, datetime | None] = {"now": None, **OTHER_TIMES}

_names = itertools.count()
EXAMPLES = all_examples()


@asynccontextmanager
async def example_service(
    cfg: Config, tmp_path: Path, at: datetime | None
) -> AsyncIterator[tuple[ServiceInfo, Any]]:
    name = f"docs{next(_names)}"
    settings = dataclasses.replace(
        cfg.sim, name=name, db_path=str(tmp_path / "docs.sqlite3"), tick_interval_s=0.0, seed=7
    )
    exchange = Exchange(settings, clock=None if at is None else (lambda: at))
    await trio.to_thread.run_sync(exchange.start)
    try:
        config = replace(
            cfg, ctp={"td_fronts": (f"sim://{name}",), "md_fronts": (f"sim://{name}",)}
        )
        async with trio.open_nursery() as nursery:
            info: ServiceInfo = await nursery.start(run_service, config)
            yield info, exchange
            nursery.cancel_scope.cancel()
    finally:
        await trio.to_thread.run_sync(exchange.close)


async def quiet_login(c: Client, user: str) -> None:
    await c.send(
        {
            "MsgType": "ReqUserLogin",
            "ReqUserLogin": {"UserID": user, "Password": "pw"},
            "RequestID": 0,
        }
    )
    await c.expect(
        lambda f: f.get("MsgType") == "SessionState" and f["SessionState"]["State"] == "ready"
    )


async def run_example(
    example: Example, service: ServiceInfo, exchange: Any
) -> list[dict[str, Any]]:
    path = "/md/" if "md" in example.options else "/td/"
    async with connect(service.ws_port, path) as c:
        if "login" in example.options:
            await quiet_login(c, example.options["login"] or "demo")
        if "drop-fronts" in example.options:
            await trio.to_thread.run_sync(
                lambda: exchange.drop_fronts(reason=4097, reconnect_after_s=0.3)
            )
        steps = list(example.steps)
        ticks_seen: set[int] = set()  # indices of tick steps matched out of order
        i = 0
        while i < len(steps):
            step = steps[i]
            i += 1
            if step.send:
                assert step.frame is not None and ANY not in str(step.frame), step.text
                await c.send(step.frame)
                continue
            if i - 1 in ticks_seen:
                continue
            if step.frame is None:  # "← ...": skip frames up to the next one shown
                wanted = steps[i].frame
                assert wanted is not None and not steps[i].send, example.name
                await c.expect(lambda f, w=wanted: mismatch(w, f) is None)  # type: ignore[misc]
                i += 1
                continue
            while True:
                frame = await c.recv()
                why = mismatch(step.frame, frame)
                if why is None:
                    break
                later = _later_tick(steps, i, ticks_seen, frame)
                assert later is not None, f"{example.name}: {step.text}\n  got {frame}\n  {why}"
                ticks_seen.add(later)
        return c.seen


def _later_tick(steps: list[Step], start: int, seen: set[int], frame: dict[str, Any]) -> int | None:
    """The index of a tick shown later in the block (up to the next frame sent) that
    ``frame`` matches: ticks may overtake the answers shown before them."""
    if frame.get("MsgType") != "RtnDepthMarketData":
        return None
    for n in range(start, len(steps)):
        if steps[n].send:
            return None
        shown = steps[n].frame
        if n not in seen and shown is not None and mismatch(shown, frame) is None:
            return n
    return None


def test_the_docs_have_examples_and_each_says_how_to_run() -> None:
    by_doc = {e.doc for e in EXAMPLES}
    assert {"README.md", "td_protocol.md", "md_protocol.md"} <= by_doc
    for e in EXAMPLES:
        assert e.options.keys() & {"td", "md"}, f"{e.name}: no <!-- example: td|md --> line"


@pytest.mark.parametrize("clock", CLOCKS)
@pytest.mark.parametrize("example", EXAMPLES, ids=[e.name for e in EXAMPLES])
async def test_doc_example_runs(example: Example, clock: str, cfg: Config, tmp_path: Path) -> None:
    async with example_service(cfg, tmp_path, CLOCKS[clock]) as (service, exchange):
        with trio.fail_after(30):
            await run_example(example, service, exchange)


def _instrument_ids(value: Any) -> list[str]:
    """Every string under an ``InstrumentID`` key of a frame (lists included)."""
    if isinstance(value, list):
        return [i for v in value for i in _instrument_ids(v)]
    if not isinstance(value, dict):
        return []
    found = []
    for key, v in value.items():
        if key == "InstrumentID":
            found += [v] if isinstance(v, str) else [i for i in v if isinstance(i, str)]
        else:
            found += _instrument_ids(v)
    return found


def test_examples_name_no_contract_that_expires() -> None:
    """A contract id in a frame the docs send expires with its month: they use aliases."""
    contract = re.compile(r"[A-Za-z]{1,2}\d{3,4}")
    for e in EXAMPLES:
        for step in e.steps:
            if step.send:
                named = [i for i in _instrument_ids(step.frame) if contract.fullmatch(i)]
                assert not named, f"{e.name}: {named}: use an alias such as rb.front"
    assert any("rb.front" in _instrument_ids(s.frame) for e in EXAMPLES for s in e.steps)


PYTHON_EXAMPLES = python_examples()


@pytest.mark.parametrize("clock", ["now", "2027-day"])
@pytest.mark.parametrize(
    "code", [c for _, c in PYTHON_EXAMPLES], ids=[n for n, _ in PYTHON_EXAMPLES]
)
async def test_doc_python_example_runs(code: str, clock: str, cfg: Config, tmp_path: Path) -> None:
    assert "ws://127.0.0.1:8081/" in code
    async with example_service(cfg, tmp_path, CLOCKS[clock]) as (service, _):
        code = code.replace("ws://127.0.0.1:8081/", f"ws://127.0.0.1:{service.ws_port}/")
        with trio.fail_after(60):
            result = await trio.run_process(
                [sys.executable, "-c", code], capture_stdout=True, capture_stderr=True, check=False
            )
    assert result.returncode == 0, result.stderr.decode()
    assert result.stdout.strip(), "the example printed nothing"


SIM_EXAMPLES = python_examples("webctp.sim")


@pytest.mark.parametrize("code", [c for _, c in SIM_EXAMPLES], ids=[n for n, _ in SIM_EXAMPLES])
async def test_doc_simulator_example_runs_and_prints_what_it_says(
    code: str, tmp_path: Path
) -> None:
    (tmp_path / "data").mkdir()  # the folders the examples name, as in a checkout
    (tmp_path / "flow").mkdir()
    with trio.fail_after(60):
        result = await trio.run_process(
            [sys.executable, "-c", code],
            cwd=tmp_path,
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert result.returncode == 0, result.stderr.decode()
    printed = result.stdout.decode().split()
    assert printed == printed_values(code), result.stdout.decode()


def test_the_readme_shows_the_client() -> None:
    assert any(name.startswith("README.md") for name, _ in PYTHON_EXAMPLES)


# -- the checker itself must be able to fail ---------------------------------------------


def test_matcher_compares_the_fields_shown() -> None:
    (step,) = parse_block(['← {"MsgType":"RspX","RspInfo":null,"Rows":[1,...],"X":{"A":"..."}}'])
    shown = step.frame
    good = {"MsgType": "RspX", "RspInfo": None, "Rows": [1, 2], "X": {"A": "z", "B": 1}, "Y": 0}
    assert mismatch(shown, good) is None
    assert (
        mismatch(shown, good | {"RspInfo": {"ErrorID": 0}})
        == ".RspInfo: {'ErrorID': 0}, the doc shows None"
    )
    assert mismatch(shown, good | {"Rows": [2]})
    assert mismatch(shown, good | {"X": {}}) == ".X.A: missing"
    assert mismatch({"N": 1}, {"N": "1"}) and mismatch({"L": [1]}, {"L": [1, 2]})
    assert mismatch({"I": "rb..."}, {"I": "rb2701"}) is None
    assert (
        mismatch({"I": "rb..."}, {"I": "IF2701"})
        == ".I: 'IF2701', the doc shows a string beginning with 'rb'"
    )
    assert mismatch({"I": "rb..."}, {"I": 1}) and mismatch({"I": "..."}, {"I": 1}) is None


def test_block_parsing() -> None:
    steps = parse_block(
        ['→ {"MsgType":"A",', '   "RequestID":1}', "← ...", '← {"MsgType":"B","P":{...}}']
    )
    assert [s.send for s in steps] == [True, False, False]
    assert steps[0].frame == {"MsgType": "A", "RequestID": 1} and steps[1].frame is None
    assert steps[2].frame == {"MsgType": "B", "P": {}}
    assert parse_block(['{"MsgType":"A"}']) == []
    code = "print(a)   # 3099.0: why\nx = 1  # 5\n    print(b(1), c)  # 8 rows\nprint(d)\n"
    assert printed_values(code) == ["3099.0", "8"]
