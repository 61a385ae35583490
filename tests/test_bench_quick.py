"""Smoke test of the benchmark (``python -m bench --quick``).

It checks that every scenario of issue 8 runs end to end and yields numbers; it never judges
speed (that is what the full ``nox -s bench`` run and docs/benchmarks.md are for).
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _numbers(obj: Any) -> list[float]:
    if isinstance(obj, bool):
        return []
    if isinstance(obj, (int, float)):
        return [float(obj)]
    if isinstance(obj, dict):
        return [x for v in obj.values() for x in _numbers(v)]
    if isinstance(obj, list):
        return [x for v in obj for x in _numbers(v)]
    return []


@pytest.mark.timeout(180)
def test_quick_benchmark_runs_every_scenario(tmp_path: Path) -> None:
    report = tmp_path / "benchmarks.md"
    raw = tmp_path / "results.json"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bench",
            "--quick",
            "--no-profile",
            "--out",
            str(report),
            "--json",
            str(raw),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=170,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(raw.read_text())
    main = results["main"]

    # 1, 1b, 2, 2b: frames and ticks were counted
    assert main["ceiling"] and all(r["frames"] > 0 and r["rate"] > 0 for r in main["ceiling"])
    assert main["ceiling_threaded"] and all(r["count"] > 0 for r in main["ceiling_threaded"])
    assert main["burst"] and all(r["count"] > 0 and r["produced"] > 0 for r in main["burst"])
    assert main["replay"] and all(r["count"] > 0 for r in main["replay"])
    # 3: latency samples at both rates, webctp and the bare baseline
    for rate in ("1000", "5000"):
        for lat in (main["latency"][rate], main["latency_bare"][rate]):
            assert lat["n"] > 0
            assert all(math.isfinite(lat[k]) and lat[k] >= 0 for k in ("p50", "p99", "max"))
    # 4: every expected tick arrived (nothing is dropped at this tiny load) and CPU was read
    fan = results["fanout"]
    assert fan["expected_callbacks"] > 0 and fan["count"] > 0 and fan["bare_count"] > 0
    assert fan["service_cpu_s"] >= 0
    # 5: order round trips matched with the simulator's timestamps
    orders = main["orders"]
    assert orders["matched"] > 0
    assert all(math.isfinite(orders[k]["p50"]) for k in ("rtt", "sim", "gateway"))
    assert main["orders_bare"]["rtt"]["n"] > 0
    # 6: every session logged in, and the process was measured
    sessions = results["sessions"]
    assert sessions["logged_in"] == sessions["n"] and not sessions["failures"]
    assert sessions["rss"] > 0 and sessions["threads"] > 0 and sessions["bare_logged_in"] > 0

    # 8: shared upstream and the Redis bus (issue 15)
    scale = results["scale"]
    assert scale["fanout_shared"]["count"] > 0 and scale["fanout_shared"]["bare_count"] > 0
    assert scale["flood_shared"]["rate"] > 0 and scale["flood_shared"]["ceiling"] > 0
    if "skipped" not in scale:
        assert scale["bus_latency"]["bus"]["n"] > 0 and scale["bus_latency"]["direct"]["n"] > 0
        two = scale["two_edges"]
        assert two["delivered"] + two["conflated"] >= two["expected"] > 0

    assert all(not math.isnan(x) for x in _numbers(results["fanout"]))
    assert all(not math.isnan(x) for x in _numbers(results["scale"]))
    text = report.read_text()
    headings = ("## Machine", "## Summary", "## 1–2.", "## 3.", "## 4.", "## 5.", "## 6.", "## 8.")
    for heading in headings:
        assert heading in text
