"""``python -m bench [--quick] [--out FILE | --write-report] [--compare TREE]``.

Runs every measurement with its baseline in the same run and writes the report to
artifacts/benchmarks.md (``--write-report``: the published docs/benchmarks.md).
``--quick`` is the CI smoke form (small counts; it checks that every scenario runs and yields
numbers, never how fast). ``--compare TREE`` also runs the tick-path and order measurements
against a patched copy of the repository (its ``webctp/`` is imported first), interleaved
with the current tree, and adds a before/after table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from . import report, scale
from ._proc import ROOT, loadavg
from .scenarios import Bench, Params


def suite(bench: Bench, tree: str | None, *, ceiling: bool, profile: bool) -> dict[str, Any]:
    """Items 2, 3 and 5 (one service process, simulator clock off), plus the ceiling (1) and
    the bare baselines interleaved with them when ``ceiling``."""
    p = bench.p
    out: dict[str, Any] = {
        "ceiling": [],
        "ceiling_threaded": [],
        "burst": [],
        "burst_live": [],
        "replay": [],
        "latency": {},
        "latency_replay": {},
        "latency_live": {},
        "latency_bare": {},
    }
    with bench.service(clock=0.0, tree=tree) as (svc, ready):
        port = int(ready["ws_port"])
        ids = bench.instruments(svc, p.burst_instruments)
        out["instruments"] = ids
        for _ in range(p.reps):
            if ceiling:
                out["ceiling"].append(bench.ceiling_once())
                out["ceiling_threaded"].append(bench.ceiling_threaded_once())
            out["burst"].append(bench.burst_once(svc, port, ids, prepared=True))
            out["burst_live"].append(bench.burst_once(svc, port, ids))
            out["replay"].append(bench.burst_once(svc, port, ids, replay=True))
        for rate in p.latency_rates:
            if ceiling:
                out["latency_bare"][str(rate)] = bench.latency_bare(rate)
            out["latency"][str(rate)] = bench.latency_once(svc, port, ids, rate)
            out["latency_replay"][str(rate)] = bench.latency_once(
                svc, port, ids, rate, feed="replay"
            )
            out["latency_live"][str(rate)] = bench.latency_once(svc, port, ids, rate, feed="live")
        if ceiling:
            out["orders_bare"] = bench.orders_bare()
        all_ids: list[str] = svc.call("instruments")["ids"]
        order_iid = next(i for i in all_ids if i not in ids)
        out["orders"] = bench.orders(svc, port, order_iid)
        if profile:
            out["profiles"] = {}
            spy = bench.profile(svc, "burst", p.profile_seconds)
            if spy is not None:
                bench.burst_once(svc, port, ids)
                spy.wait(120)
                out["profiles"]["burst"] = report.read_profile(bench.dir / "profile-burst.txt")
            spy = bench.profile(svc, "replay", p.profile_seconds)
            if spy is not None:
                bench.burst_once(svc, port, ids, replay=True)
                spy.wait(120)
                out["profiles"]["replay"] = report.read_profile(bench.dir / "profile-replay.txt")
            spy = bench.profile(svc, "latency5k", p.profile_seconds)
            if spy is not None:
                bench.latency_once(svc, port, ids, p.latency_rates[-1])
                spy.wait(120)
                out["profiles"]["latency5k"] = report.read_profile(
                    bench.dir / "profile-latency5k.txt"
                )
    return out


# Untracked (.gitignore): a run does not overwrite the published docs/benchmarks.md unless asked.
DEFAULT_OUT = ROOT / "artifacts" / "benchmarks.md"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small smoke run (CI)")
    parser.add_argument(
        "--out", default=None, help=f"report path (default {DEFAULT_OUT.relative_to(ROOT)})"
    )
    parser.add_argument(
        "--write-report", action="store_true", help="write the tracked docs/benchmarks.md"
    )
    parser.add_argument("--json", default=None, help="also write the raw results here")
    parser.add_argument("--compare", default=None, help="a patched copy of the repository")
    parser.add_argument(
        "--compare-base", default=None, help="the 'before' tree for --compare (default: this one)"
    )
    parser.add_argument(
        "--only-compare", action="store_true", help="with --compare: skip the main measurements"
    )
    parser.add_argument("--no-profile", action="store_true", help="skip py-spy (item 7)")
    parser.add_argument("--keep", action="store_true", help="keep the work folder (logs)")
    args = parser.parse_args(argv)
    params = Params.make(args.quick)
    out_path = Path(args.out) if args.out else DEFAULT_OUT
    if args.write_report:
        out_path = ROOT / "docs" / "benchmarks.md"
    if args.quick and args.out is None:
        out_path = Path(tempfile.gettempdir()) / "webctp-benchmarks-quick.md"
    workdir = Path(tempfile.mkdtemp(prefix="webctp-bench-"))
    bench = Bench(params, workdir, sys.stderr)
    started = time.time()
    results: dict[str, Any] = {
        "quick": args.quick,
        "machine": report.machine(),
        "load_start": loadavg(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z", time.localtime(started)),
    }
    bench.say(f"work folder {workdir}")
    profile = not args.no_profile and not args.quick
    if not (args.compare and args.only_compare):
        results["main"] = suite(bench, None, ceiling=True, profile=profile)
        results["pinned"] = bench.pinned()
        results["fanout"] = bench.fanout(None)
        results["sessions"] = bench.sessions(None)
        results["scale"] = scale.run(bench)
    if args.compare:
        tree = str(Path(args.compare).resolve())
        base = str(Path(args.compare_base).resolve()) if args.compare_base else None
        before: list[dict[str, Any]] = []
        after: list[dict[str, Any]] = []
        bench.p = dataclasses.replace(params, reps=1)  # alternate trees instead
        for _ in range(2 if not args.quick else 1):
            before.append(suite(bench, base, ceiling=False, profile=False))
            after.append(suite(bench, tree, ceiling=False, profile=False))
        results["compare"] = {
            "tree": tree,
            "base": base or str(ROOT),
            "before": before,
            "after": after,
            "fanout_before": bench.fanout(base),
            "fanout_after": bench.fanout(tree),
        }
    results["load_end"] = loadavg()
    results["seconds"] = time.time() - started
    if "main" in results:
        text = report.render(results, out_path)
    else:
        text = report.render_compare_only(results)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(text)
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1, default=str))
    bench.say(f"report written to {out_path} ({results['seconds']:.0f} s)")
    summary = report.summary_rows(results) if "main" in results else []
    print(json.dumps({"report": str(out_path), "summary": summary}, default=str))
    if not args.keep:
        import shutil

        shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
