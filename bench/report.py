"""docs/benchmarks.md: machine details, the summary table, per-item tables and the profiles."""

from __future__ import annotations

import collections
import math
import os
import platform
import re
import shutil
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from ._proc import ROOT, percentile

PACKAGES = ("trio", "trio-websocket", "wsproto", "hypercorn", "quart-trio", "quart", "orjson")


# --- machine ---------------------------------------------------------------------------------
def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def _mem_total() -> str:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                return f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return "?"


def _version(name: str) -> str:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return "not installed"


def _command(*args: str) -> str:
    try:
        done = subprocess.run(args, capture_output=True, text=True, timeout=10, cwd=ROOT)
    except (OSError, subprocess.SubprocessError):
        return "?"
    return done.stdout.strip() or "?"


def machine() -> dict[str, Any]:
    spy = shutil.which("py-spy")
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "ram": _mem_total(),
        "python": sys.version.split()[0],
        "implementation": platform.python_implementation(),
        "kernel": platform.release(),
        "packages": {name: _version(name) for name in PACKAGES},
        "py-spy": _command(spy, "--version") if spy else "not installed",
        "commit": _command("git", "rev-parse", "--short", "HEAD"),
        "switch_interval_s": sys.getswitchinterval(),
    }


# --- profiles --------------------------------------------------------------------------------
_LINE = re.compile(r":\d+\)$")


def read_profile(path: Path, top: int = 14) -> dict[str, Any]:
    """Aggregate py-spy's raw (collapsed) output recorded with ``--gil --threads``."""
    if not path.exists():
        return {"samples": 0}
    by_thread: collections.Counter[str] = collections.Counter()
    own: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = stack.split(";")
        thread = re.sub(r"^thread \(\d+\): ?", "", frames[0]) or "?"
        by_thread[thread] += n
        if len(frames) > 1:
            own[_LINE.sub(")", frames[-1])] += n
        seen = set()
        for frame in frames[1:]:
            name = _LINE.sub(")", frame)
            if name not in seen and ("webctp/" in name or "bench/" in name):
                seen.add(name)
                inclusive[name] += n
    return {
        "samples": total,
        "threads": by_thread.most_common(),
        "self": own.most_common(top),
        "inclusive": [
            (k, v) for k, v in inclusive.most_common(top + 8) if "bench/service.py" not in k
        ][:top],
    }


# --- formatting ------------------------------------------------------------------------------
def _f(x: Any, digits: int = 0) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, float):
        return f"{x:,.{digits}f}"
    return f"{x:,}" if isinstance(x, int) else str(x)


def _ms(x: float) -> str:
    return "–" if math.isnan(x) else f"{x:.3f}"


def _table(head: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def _best(runs: list[dict[str, Any]], key: str) -> float:
    values = [float(r[key]) for r in runs if key in r]
    return max(values) if values else float("nan")


def _ratio(a: float, b: float) -> float:
    return a / b if b and not math.isnan(b) else float("nan")


def _rate_at(runs: list[dict[str, Any]], i: int) -> float:
    return float(runs[i]["rate"]) if i < len(runs) else float("nan")


def _paired(runs: list[dict[str, Any]], ceilings: list[dict[str, Any]]) -> float:
    pairs = [_ratio(r["rate"], c["rate"]) for r, c in zip(runs, ceilings) if c["rate"]]
    return percentile(pairs, 50) if pairs else float("nan")


def figures(results: dict[str, Any]) -> dict[str, Any]:
    """The headline numbers (also printed on stdout as the summary)."""
    main = results["main"]
    fig: dict[str, Any] = {}
    ceiling = _best(main["ceiling"], "rate")
    burst = _best(main["burst"], "rate")
    replay = _best(main.get("replay", []), "rate")
    fig["ceiling"] = ceiling
    fig["burst"] = burst
    # runs of (1), (2), (2b) and (2c) alternate: the ratio is the median of each run's own ratio
    fig["burst_ratio"] = _paired(main["burst"], main["ceiling"])
    fig["burst_live"] = _best(main.get("burst_live", []), "rate")
    fig["burst_live_ratio"] = _paired(main.get("burst_live", []), main["ceiling"])
    fig["replay"] = replay
    fig["replay_ratio"] = _paired(main.get("replay", []), main["ceiling"])
    threaded = main.get("ceiling_threaded") or []
    fig["ceiling_threaded"] = _best(threaded, "rate")
    fig["ceiling_threaded_ratio"] = _paired(threaded, main["ceiling"])
    fig["replay_vs_threaded"] = _paired(main.get("replay", []), threaded)
    fig["burst_vs_threaded"] = _paired(main["burst"], threaded)
    fig["latency"] = main["latency"]
    fig["latency_bare"] = main["latency_bare"]
    fig["orders"] = main["orders"]
    fig["orders_bare"] = main.get("orders_bare")
    fig["fanout"] = results["fanout"]
    fig["sessions"] = results["sessions"]
    return fig


def _met(ok: bool | None) -> str:
    return "–" if ok is None else ("**met**" if ok else "**not met**")


def summary_rows(results: dict[str, Any]) -> list[list[str]]:
    fig = figures(results)
    rows: list[list[str]] = []
    rows.append(
        [
            "1 ceiling (bare trio-websocket, 1 KiB frames)",
            f"{_f(fig['ceiling'])} frames/s",
            "1.00",
            "–",
            "–",
        ]
    )
    if not math.isnan(fig["ceiling_threaded"]):
        rows.append(
            [
                "1b bare trio-websocket fed by a producer thread (webctp-like bridge)",
                f"{_f(fig['ceiling_threaded'])} frames/s",
                f"{fig['ceiling_threaded_ratio']:.2f} of (1)",
                "(reference)",
                "–",
            ]
        )
    rows.append(
        [
            "2 tick path, simulator burst (built, then emitted back to back), 1 md client",
            f"{_f(fig['burst'])} ticks/s",
            f"{fig['burst_ratio']:.2f} of (1) (median of paired runs)",
            "≥ 0.8 of (1)",
            _met(fig["burst_ratio"] >= 0.8 if not math.isnan(fig["burst_ratio"]) else None),
        ]
    )
    if not math.isnan(fig["burst_live"]):
        rows.append(
            [
                "2b tick path, simulator building ticks while it emits them",
                f"{_f(fig['burst_live'])} ticks/s",
                f"{fig['burst_live_ratio']:.2f} of (1) (median of paired runs)",
                "(diagnostic)",
                "–",
            ]
        )
    if not math.isnan(fig["replay"]):
        rows.append(
            [
                "2c tick path, replayed feed (a bench thread calls webctp's Spi)",
                f"{_f(fig['replay'])} ticks/s",
                f"{fig['replay_ratio']:.2f} of (1), {fig['replay_vs_threaded']:.2f} of (1b) "
                "(medians of paired runs)",
                "(diagnostic)",
                "–",
            ]
        )
    for rate, lat in fig["latency"].items():
        bare = fig["latency_bare"].get(rate, {})
        target = "p99 ≤ 2 ms" if rate == "5000" else "–"
        rows.append(
            [
                f"3 tick latency at {int(rate):,}/s (p50 / p99 / max ms)",
                f"{_ms(lat['p50'])} / {_ms(lat['p99'])} / {_ms(lat['max'])}",
                f"p99 {_ratio(lat['p99'], bare.get('p99', float('nan'))):.1f}× bare "
                f"({_ms(bare.get('p99', float('nan')))} ms)",
                target,
                _met(lat["p99"] <= 2.0) if rate == "5000" else "–",
            ]
        )
    diagnostic = (
        ("3b", "simulator building while emitting", "latency_live"),
        ("3c", "replayed feed", "latency_replay"),
    )
    for tag, what, rate, lat in (
        (tag, what, rate, lat)
        for tag, what, key in diagnostic
        for rate, lat in (results["main"].get(key) or {}).items()
    ):
        bare = fig["latency_bare"].get(rate, {})
        rows.append(
            [
                f"{tag} tick latency at {int(rate):,}/s, {what} (p50 / p99 / max ms)",
                f"{_ms(lat['p50'])} / {_ms(lat['p99'])} / {_ms(lat['max'])}",
                f"p99 {_ratio(lat['p99'], bare.get('p99', float('nan'))):.1f}× bare",
                "(diagnostic)",
                "–",
            ]
        )
    fo = fig["fanout"]
    rows.append(
        [
            f"4 fan-out {fo['clients']} clients × {fo['per_client']} instruments, 2 ticks/s each",
            f"CPU {fo['service_cpu_pct']:.0f}% of a core; {fo['count']:,}/"
            f"{fo['expected_callbacks']:,} ticks delivered",
            f"CPU {_ratio(fo['service_cpu_pct'], fo['bare_cpu_pct']):.1f}× bare "
            f"({fo['bare_cpu_pct']:.0f}%)",
            "all delivered",
            _met(fo["count"] >= fo["expected_callbacks"]),
        ]
    )
    od = fig["orders"]
    ob = (fig["orders_bare"] or {}).get("rtt", {})
    rows.append(
        [
            "5 order round trip (p50 / p99 ms); gateway share p50",
            f"{_ms(od['rtt']['p50'])} / {_ms(od['rtt']['p99'])}; gateway "
            f"{od['gateway']['p50'] * 1e3:.0f} µs",
            f"RTT {_ratio(od['rtt']['p50'], ob.get('p50', float('nan'))):.1f}× bare echo "
            f"({_ms(ob.get('p50', float('nan')))} ms)",
            "gateway p50 ≤ 200 µs",
            _met(od["gateway"]["p50"] * 1e3 <= 200),
        ]
    )
    pn = results.get("pinned")
    if pn:
        po = pn["orders"]
        rows.append(
            [
                "5b the same with the service on one CPU (`server.cpu_affinity`)",
                f"{_ms(po['rtt']['p50'])} / {_ms(po['rtt']['p99'])}; gateway "
                f"{po['gateway']['p50'] * 1e3:.0f} µs",
                f"RTT {_ratio(po['rtt']['p50'], od['rtt']['p50']):.2f}× unpinned",
                "(diagnostic)",
                "–",
            ]
        )
    ss = fig["sessions"]
    rows.append(
        [
            f"6 {ss['n']:,} td sessions logged in",
            f"{ss['total']:.2f} s, RSS {ss['rss'] / 2**20:.0f} MiB, {ss['threads']} threads "
            f"({ss['logged_in']:,} ok)",
            f"time {_ratio(ss['total'], ss['bare_total']):.1f}×, RSS "
            f"{_ratio(ss['rss'], ss['bare_rss']):.1f}× bare",
            "≤ 10 s, ≤ 1.5 GiB",
            _met(ss["total"] <= 10 and ss["rss"] <= 1.5 * 2**30 and ss["logged_in"] == ss["n"]),
        ]
    )
    return rows


# --- the report ------------------------------------------------------------------------------
def _profile_section(name: str, prof: dict[str, Any]) -> str:
    total = prof.get("samples", 0)
    if not total:
        return f"*{name}: no samples (py-spy missing or not permitted).*\n"
    out = [f"**{name}** — {total:,} samples holding the GIL (py-spy `--gil`, 250 Hz)\n"]
    out.append(
        _table(
            ["thread", "share of GIL samples"],
            [[t, f"{n / total:.0%}"] for t, n in prof["threads"]],
        )
    )
    out.append("")
    out.append(
        _table(
            ["function (inclusive, webctp code)", "share"],
            [[f"`{k}`", f"{v / total:.0%}"] for k, v in prof["inclusive"]],
        )
    )
    out.append("")
    out.append(
        _table(
            ["function (self time, any code)", "share"],
            [[f"`{k}`", f"{v / total:.0%}"] for k, v in prof["self"]],
        )
    )
    return "\n".join(out) + "\n"


def render(results: dict[str, Any], out: Path) -> str:
    m = results["machine"]
    main = results["main"]
    parts: list[str] = []
    parts.append("# Benchmarks\n")
    parts.append(
        "Written by `python -m bench`"
        + (" --quick (a smoke run: the numbers mean nothing)" if results["quick"] else "")
        + f" on {results['started']} in {results['seconds']:.0f} s. Every figure is set "
        "against a baseline measured in the same run, on the same machine, because absolute "
        "numbers drift with the machine and its load (the load average is given: this machine "
        "is shared).\n"
    )
    parts.append("## Machine\n")
    pk = ", ".join(f"{k} {v}" for k, v in m["packages"].items())
    parts.append(
        _table(
            ["", ""],
            [
                ["CPU", f"{m['cpu']}, {m['cores']} cores"],
                ["RAM", m["ram"]],
                [
                    "Python",
                    f"{m['implementation']} {m['python']} (switch interval "
                    f"{m['switch_interval_s'] * 1e3:g} ms), Linux {m['kernel']}",
                ],
                ["packages", pk],
                ["profiler", m["py-spy"]],
                ["webctp commit", f"{m['commit']} (plus any uncommitted changes in the tree)"],
                [
                    "load average (1/5/15 min)",
                    f"start {results['load_start']}, end {results['load_end']}",
                ],
            ],
        )
    )
    parts.append("")
    parts.append("## Summary\n")
    parts.append(_table(["item", "measured", "vs baseline", "target", ""], summary_rows(results)))
    parts.append("")
    parts.append(_reading(results))
    parts.append(_METHOD)

    # 1 + 2
    parts.append("## 1–2. Ceiling and tick path\n")
    rows = []
    for i, c in enumerate(main["ceiling"]):
        b = main["burst"][i] if i < len(main["burst"]) else {}
        rows.append(
            [
                str(i + 1),
                _f(c["rate"]),
                f"{c['server_cpu_per_frame_us']:.0f}",
                _f(_rate_at(main.get("ceiling_threaded") or [], i)),
                _f(b.get("rate", float("nan"))),
                f"{_ratio(b.get('rate', float('nan')), c['rate']):.2f}",
                _f(b.get("producer_rate", float("nan"))),
                f"{b.get('count', 0):,} / {b.get('produced', 0):,}",
                f"{b.get('service_cpu_per_delivered_us', float('nan')):.0f}",
            ]
        )
    parts.append(
        _table(
            [
                "run",
                "(1) frames/s",
                "(1) server CPU µs/frame",
                "(1b) frames/s",
                "(2) ticks/s delivered",
                "(2)/(1)",
                "simulator ticks/s emitted",
                "delivered / made",
                "service CPU µs/delivered",
            ],
            rows,
        )
    )
    parts.append("")
    for key, intro in (
        (
            "burst_live",
            "(2b) The simulator building each tick (market step, book, struct) while its callback "
            "thread emits them: the simulator's own Python cost shares the interpreter lock with "
            "the gateway, which a C++ library's thread does not:\n",
        ),
        (
            "replay",
            "(2c) The same path fed by replaying tick structs into webctp's md Spi from a bench "
            "thread that releases the GIL between callbacks (as the C++ library's thread does), "
            "without the simulator's dispatcher:\n",
        ),
    ):
        if not main.get(key):
            continue
        rows = [
            [
                str(i + 1),
                _f(r["rate"]),
                f"{_ratio(r['rate'], _rate_at(main['ceiling'], i)):.2f}",
                _f(r["producer_rate"]),
                f"{r['count']:,} / {r['produced']:,}",
                f"{r['service_cpu_per_delivered_us']:.0f}",
            ]
            for i, r in enumerate(main[key])
        ]
        parts.append(intro)
        parts.append(
            _table(
                [
                    "run",
                    "ticks/s delivered",
                    "vs (1) of the same run",
                    "callbacks/s made",
                    "delivered / made",
                    "service CPU µs/delivered",
                ],
                rows,
            )
        )
        parts.append("")

    # 3
    parts.append("## 3. Tick latency (simulator callback → client)\n")
    rows = []
    feeds = [
        ("simulator, prepared (3)", main["latency"]),
        ("simulator building (3b)", main.get("latency_live") or {}),
        ("replayed (3c)", main.get("latency_replay") or {}),
    ]
    for (feed, lats), rate in ((f, r) for f in feeds for r in f[1]):
        lat = lats[rate]
        bare = main["latency_bare"].get(rate, {})
        rows.append(
            [
                f"{int(rate):,}/s {feed}",
                f"{_ms(lat['p50'])} / {_ms(lat['p90'])} / {_ms(lat['p99'])} / {_ms(lat['max'])}",
                f"{int(lat['n']):,} of {lat['produced']:,} ({lat['conflated']:,} conflated)",
                f"{lat['service_cpu_pct']:.0f}%",
                f"{_ms(bare.get('p50', float('nan')))} / {_ms(bare.get('p90', float('nan')))} / "
                f"{_ms(bare.get('p99', float('nan')))} / {_ms(bare.get('max', float('nan')))}",
                f"{_ratio(lat['p50'], bare.get('p50', float('nan'))):.1f}× / "
                f"{_ratio(lat['p99'], bare.get('p99', float('nan'))):.1f}×",
            ]
        )
    parts.append(
        _table(
            [
                "rate, feed",
                "webctp p50/p90/p99/max ms",
                "samples",
                "service CPU",
                "bare p50/p90/p99/max ms",
                "ratio p50 / p99",
            ],
            rows,
        )
    )
    parts.append("")

    # 4
    fo = results["fanout"]
    parts.append("## 4. Fan-out\n")
    parts.append(
        _table(
            ["", "webctp", "bare trio-websocket"],
            [
                [
                    "clients × instruments",
                    f"{fo['clients']} × {fo['per_client']}",
                    f"{fo['clients']} × {fo['per_client']}",
                ],
                [
                    "ticks delivered / expected",
                    f"{fo['count']:,} / {fo['expected_callbacks']:,} "
                    f"(theory {fo['expected_theory']:,})",
                    f"{fo['bare_count']:,}",
                ],
                [
                    "server CPU (share of one core)",
                    f"{fo['service_cpu_pct']:.1f}%",
                    f"{fo['bare_cpu_pct']:.1f}%",
                ],
                [
                    "server CPU per delivered tick",
                    f"{_per_us(fo['service_cpu_s'], fo['count'])} µs",
                    f"{_per_us(fo['bare_cpu_s'], fo['bare_count'])} µs",
                ],
                [
                    "simulator market step alone (no subscriber)",
                    f"{fo['sim_step_idle_ms']:.1f} ms CPU",
                    "–",
                ],
                ["conflated ticks", f"{fo['ticks_conflated']:,}", "–"],
                [
                    "service RSS / threads",
                    f"{fo['service_rss'] / 2**20:.0f} MiB / {fo['service_threads']}",
                    "–",
                ],
            ],
        )
    )
    parts.append("")

    # 5
    od = main["orders"]
    ob = main.get("orders_bare", {}).get("rtt", {})
    parts.append("## 5. Order round trip (ReqOrderInsert → first RtnOrder)\n")
    rows = []
    for key, label in (
        ("rtt", "round trip at the client"),
        ("sim", "simulator (ReqOrderInsert call → OnRtnOrder callback)"),
        ("gateway", "gateway share (round trip − simulator)"),
        ("inbound", "… inbound: client send → ReqOrderInsert call"),
        ("outbound", "… outbound: OnRtnOrder callback → client receive"),
        ("to_gw", "… client send → td session gets the frame (loopback, trio-websocket)"),
        ("gw_in", "… td session gets the frame → ReqOrderInsert call (parse, limiter)"),
        ("gw_out", "… OnRtnOrder callback → frame handed to trio-websocket"),
        ("from_gw", "… frame handed to trio-websocket → client receive"),
    ):
        if key not in od:
            continue
        s = od[key]
        rows.append([label, _ms(s["p50"]), _ms(s["p90"]), _ms(s["p99"]), _ms(s["max"])])
    if ob:
        rows.append(
            [
                "bare trio-websocket echo round trip (baseline)",
                _ms(ob["p50"]),
                _ms(ob["p90"]),
                _ms(ob["p99"]),
                _ms(ob["max"]),
            ]
        )
    parts.append(_table(["ms", "p50", "p90", "p99", "max"], rows))
    parts.append(f"\n{od['matched']:,} orders, one at a time, each cancelled before the next.\n")
    if results.get("pinned"):
        parts.append(_pinned_section(results))

    # 6
    ss = results["sessions"]
    parts.append("## 6. Session scale\n")
    parts.append(
        _table(
            ["", "webctp", "bare trio-websocket"],
            [
                [
                    "sessions logged in",
                    f"{ss['logged_in']:,} / {ss['n']:,}",
                    f"{ss['bare_logged_in']:,} / {ss['n']:,}",
                ],
                ["time to log them all in", f"{ss['total']:.2f} s", f"{ss['bare_total']:.2f} s"],
                [
                    "per-session login p50 / p99",
                    f"{ss['login']['p50']:.0f} / {ss['login']['p99']:.0f} ms",
                    "–",
                ],
                [
                    "RSS idle → all logged in",
                    f"{ss['idle_rss'] / 2**20:.0f} → {ss['rss'] / 2**20:.0f} MiB",
                    f"{ss['bare_idle_rss'] / 2**20:.0f} → {ss['bare_rss'] / 2**20:.0f} MiB",
                ],
                [
                    "RSS per session",
                    f"{(ss['rss'] - ss['idle_rss']) / max(ss['n'], 1) / 1024:.0f} KiB",
                    f"{(ss['bare_rss'] - ss['bare_idle_rss']) / max(ss['n'], 1) / 1024:.0f} KiB",
                ],
                [
                    "threads idle → all logged in",
                    f"{ss['idle_threads']} → {ss['threads']}",
                    f"{ss['bare_threads']}",
                ],
                [
                    "after all closed: RSS / threads",
                    f"{ss['rss_after_close'] / 2**20:.0f} MiB / {ss['threads_after_close']}",
                    "–",
                ],
                [
                    "failures",
                    str(len(ss["failures"]))
                    + (f" (first: {ss['failures'][0]})" if ss["failures"] else ""),
                    "–",
                ],
            ],
        )
    )
    parts.append("")

    # 7
    parts.append("## 7. Profiles\n")
    profiles = main.get("profiles") or {}
    if not profiles:
        parts.append("*Not recorded in this run (`--quick`, `--no-profile` or no py-spy).*\n")
    for name, prof in profiles.items():
        label = {
            "burst": "Simulator building while emitting (item 2b)",
            "replay": "Replayed feed (item 2c)",
            "latency5k": "5,000 ticks/s paced (item 3)",
        }.get(name, name)
        parts.append(_profile_section(label, prof))
    if "scale" in results:
        parts.append(_scale_section(results["scale"]))
    if "compare" in results:
        parts.append(_compare_section(results["compare"]))
    return "\n".join(parts).rstrip() + "\n"


def _scale_section(sc: dict[str, Any]) -> str:
    """Item 8 (issue 15, ``bench/scale.py``)."""
    lines = ["## 8. Market data at scale (shared upstream, feeder → Redis → edges)\n"]
    fan = sc["fanout_shared"]
    flood = sc["flood_shared"]
    rows = [
        [
            f"8a fan-out, shared upstream, {sc['clients']} clients × {sc['per_client']} "
            "instruments: service CPU per delivered tick / bare server CPU per frame",
            f"{fan['cpu_per_tick_us']:.1f} µs / {fan['bare_cpu_per_frame_us']:.1f} µs "
            f"= ×{fan['ratio']:.2f} ({fan['count']} delivered + {fan['ticks_conflated']} "
            f"conflated of {fan.get('expected', '?')} expected; bare {fan['bare_count']} frames)",
            "≤ ×0.5",
            _met(fan["ratio"] <= 0.5),
        ],
        [
            "8b one md client, flood, shared upstream: ticks/s delivered / bare ceiling",
            f"{_f(flood['rate'])} / {_f(flood['ceiling'])} = ×{flood['ratio']:.2f} "
            f"(per-session path in the same run: {_f(flood.get('session_rate', 0))} ticks/s; "
            "best of the alternated runs; each run shared / per-session / ceiling / simulator "
            "emitting: "
            + "; ".join(
                f"{_f(r['rate'])} / {_f(s['rate'])} / {_f(c['rate'])} / "
                f"{_f(r.get('producer_rate', 0))}"
                for r, s, c in zip(flood["runs"], flood["session_runs"], flood["ceilings"])
            )
            + ")",
            "≥ ×1.0",
            _met(flood["ratio"] >= 1.0),
        ],
    ]
    if "bus_latency" in sc:
        lat = sc["bus_latency"]
        added = lat["added"]
        per_tick = lat.get("per_tick", {})
        rows.append(
            [
                f"8c feeder → Redis → edge → client at {lat['rate']}/s: added latency p50 / p99 "
                "(a client on the edge and one on the feeder's own /md/ at the same time; "
                "percentiles over the ticks both got)",
                f"{added.get('p50', 0):.3f} / {added.get('p99', 0):.3f} ms (bus "
                f"{lat['bus'].get('p50', 0):.3f} / {lat['bus'].get('p99', 0):.3f} ms, direct "
                f"{lat['direct'].get('p50', 0):.3f} / {lat['direct'].get('p99', 0):.3f} ms; "
                f"tick by tick p50 / p99 {per_tick.get('p50', 0):.3f} / "
                f"{per_tick.get('p99', 0):.3f} ms; {lat.get('paired', 0)} ticks of "
                f"{lat.get('produced', 0)})",
                "p99 added ≤ 2 ms",
                _met(added.get("p99", 1e9) <= 2.0),
            ]
        )
    if "two_edges" in sc:
        two = sc["two_edges"]
        cpu = ", ".join(f"{k} {v:.0f} %" for k, v in two["cpu_pct"].items())
        rows.append(
            [
                f"8d two edges × {two['clients_per_edge']} clients, one feeder: delivered / "
                "expected; CPU per process (share of one core, from the first step until the "
                "clients had read everything)",
                f"{two['delivered']} / {two['expected']} (+{two['conflated']} conflated, "
                f"{two.get('unaccounted', '?')} unaccounted, {two.get('unread', '?')} sent by "
                f"the edges and unread when the clients stopped, {two.get('closed', '?')} "
                f"connections closed); steps {two.get('steps_seconds', 0):.1f} s, last tick "
                f"read after {two.get('seconds', 0):.1f} s; {cpu}",
                "all delivered or conflation counted",
                _met(two["delivered"] + two["conflated"] >= two["expected"]),
            ]
        )
    if "skipped" in sc:
        lines.append(f"*8c and 8d skipped: {sc['skipped']}.*\n")
    lines.append(_table(["item", "measured", "target", "met"], rows))
    lines.append("")
    return "\n".join(lines)


def _pinned_section(results: dict[str, Any]) -> str:
    """Items 2, 3 and 5 with ``server.cpu_affinity`` set to one CPU, beside this run's own."""
    main, pn = results["main"], results["pinned"]
    lat_all = main["latency"].get(str(pn["latency"]["rate"]), {})
    lat_one = pn["latency"]
    od, po = main["orders"], pn["orders"]
    rows = [
        [
            "(2) prepared burst, ticks/s delivered",
            _f(_best(main["burst"], "rate")),
            _f(pn["burst"]["rate"]),
        ],
        [
            f"(3) {int(lat_one['rate']):,} ticks/s, p50 / p99 ms",
            f"{_ms(lat_all.get('p50', math.nan))} / {_ms(lat_all.get('p99', math.nan))}",
            f"{_ms(lat_one['p50'])} / {_ms(lat_one['p99'])}",
        ],
        [
            "(5) order round trip, p50 / p99 ms",
            f"{_ms(od['rtt']['p50'])} / {_ms(od['rtt']['p99'])}",
            f"{_ms(po['rtt']['p50'])} / {_ms(po['rtt']['p99'])}",
        ],
        [
            "(5) simulator / gateway share, p50 ms",
            f"{_ms(od['sim']['p50'])} / {_ms(od['gateway']['p50'])}",
            f"{_ms(po['sim']['p50'])} / {_ms(po['gateway']['p50'])}",
        ],
    ]
    return (
        "### 5b. The service on one CPU\n\n"
        "The same measurements with `server.cpu_affinity = [one CPU]`: every thread of the "
        "service (Trio, the simulator's engine and callback threads) on one CPU, so a hand-off "
        "between them is a context switch instead of a wake-up on the other CPU. Best of this "
        "run's unpinned runs for (2); one pinned run each.\n\n"
        + _table(["", "unpinned (above)", "one CPU"], rows)
        + "\n"
    )


def _gil_shares(prof: dict[str, Any]) -> tuple[float, float]:
    """(simulator threads, Trio thread) shares of the GIL samples of a profile."""
    total = prof.get("samples", 0)
    if not total:
        return float("nan"), float("nan")
    sim = sum(n for t, n in prof["threads"] if t.startswith("sim-"))
    trio_ = sum(n for t, n in prof["threads"] if t == "MainThread")
    return sim / total, trio_ / total


def _reading(results: dict[str, Any]) -> str:
    """Sentences computed from this run's numbers (no judgement beyond the numbers)."""
    main = results["main"]
    fig = figures(results)
    lines = ["## Reading the results\n"]
    profiles = main.get("profiles") or {}
    for key, label in (
        ("burst", "the simulator's building burst (2b)"),
        ("latency5k", "5,000 ticks/s (3)"),
    ):
        if key in profiles and profiles[key].get("samples"):
            sim, tr = _gil_shares(profiles[key])
            lines.append(
                f"- During {label} the simulator's own threads held the GIL in {sim:.0%} of the "
                f"samples and the Trio thread (all of the gateway's socket work) in {tr:.0%}: the "
                "simulator and the gateway share one interpreter lock, so the simulator's Python "
                "cost per tick is taken from the gateway."
            )
    if not math.isnan(fig["replay"]):
        lines.append(
            f"- Fed by a bench thread without the simulator (2c), one md session delivered "
            f"{fig['replay']:,.0f} ticks/s, {fig['replay_ratio']:.2f} of the bare ceiling "
            f"(simulator emitting prepared ticks (2): {fig['burst_ratio']:.2f}; simulator "
            f"building while emitting (2b): {fig['burst_live_ratio']:.2f})."
        )
    if not math.isnan(fig["ceiling_threaded"]):
        lines.append(
            f"- A bare trio-websocket server fed by a producer thread through the same kind of "
            f"bridge (1b) reached {fig['ceiling_threaded']:,.0f} frames/s, "
            f"{fig['ceiling_threaded_ratio']:.2f} of (1): the thread hand-off and the GIL "
            f"ping-pong cost that much before any webctp code runs; against (1b), (2c) is "
            f"{fig['replay_vs_threaded']:.2f}."
        )
    fo = results["fanout"]
    if fo["count"] < fo["expected_callbacks"]:
        lines.append(
            f"- Fan-out: {fo['expected_callbacks'] - fo['count']:,} ticks were conflated (not "
            f"lost: each session received the latest tick per instrument) because the service "
            f"needed {_per_us(fo['service_cpu_s'], fo['count'])} µs of CPU per delivered tick "
            f"against {_per_us(fo['bare_cpu_s'], fo['bare_count'])} µs for the bare server."
        )
    od = main["orders"]
    ob = (main.get("orders_bare") or {}).get("rtt", {})
    if ob:
        lines.append(
            f"- Orders: inbound p50 {od['inbound']['p50']:.3f} ms + outbound p50 "
            f"{od['outbound']['p50']:.3f} ms against a bare echo round trip of "
            f"{ob['p50']:.3f} ms (both legs of the echo included)."
        )
    return "\n".join(lines) + "\n"


def render_compare_only(results: dict[str, Any]) -> str:
    m = results["machine"]
    return (
        f"# Benchmark comparison\n\n{results['started']}, {m['cpu']} ({m['cores']} cores), "
        f"Python {m['python']}, load {results['load_start']} → {results['load_end']}.\n\n"
        + _compare_section(results["compare"])
    )


def _per_us(cpu: float, n: int) -> str:
    return f"{cpu / n * 1e6:.0f}" if n else "–"


def _suite_figures(s: dict[str, Any]) -> dict[str, float]:
    out = {
        "(2) prepared burst ticks/s (before: building)": _best(s["burst"], "rate"),
        "(2b) building burst ticks/s": _best(s.get("burst_live", []), "rate"),
        "(2c) replayed feed ticks/s": _best(s.get("replay", []), "rate"),
        "(5) order round trip p50 ms": s["orders"]["rtt"]["p50"],
        "(5) gateway share p50 ms": s["orders"]["gateway"]["p50"],
        "(5) gateway share p99 ms": s["orders"]["gateway"]["p99"],
    }
    for rate, lat in s["latency"].items():
        out[f"(3) latency {rate}/s p50 ms (before: engine-paced)"] = lat["p50"]
        out[f"(3) latency {rate}/s p99 ms (before: engine-paced)"] = lat["p99"]
    for rate, lat in (s.get("latency_replay") or {}).items():
        out[f"(3c) replayed latency {rate}/s p50 ms"] = lat["p50"]
        out[f"(3c) replayed latency {rate}/s p99 ms"] = lat["p99"]
    return {k: v for k, v in out.items() if not math.isnan(v)}


def _compare_section(cmp: dict[str, Any]) -> str:
    before = [_suite_figures(s) for s in cmp["before"]]
    after = [_suite_figures(s) for s in cmp["after"]]
    keys = list(before[0]) if before else []
    rows = []
    for k in keys:
        b = [x.get(k, math.nan) for x in before]
        a = [x.get(k, math.nan) for x in after]
        rows.append(
            [
                k,
                " / ".join(_f(v, 3 if v < 100 else 0) for v in b),
                " / ".join(_f(v, 3 if v < 100 else 0) for v in a),
            ]
        )
    fb, fa = cmp["fanout_before"], cmp["fanout_after"]
    rows.append(["fan-out CPU %", f"{fb['service_cpu_pct']:.1f}", f"{fa['service_cpu_pct']:.1f}"])
    rows.append(
        [
            "fan-out delivered",
            f"{fb['count']:,}/{fb['expected_callbacks']:,}",
            f"{fa['count']:,}/{fa['expected_callbacks']:,}",
        ]
    )
    return (
        f"## Before / after\n\nbefore: the tree `{Path(cmp.get('base', '')).name}`, after: the "
        f"tree `{Path(cmp['tree']).name}`; "
        "interleaved runs (ticks/s; ms).\n\n"
        + _table(["figure", "before (runs)", "after (runs)"], rows)
        + "\n"
    )


_METHOD = """## How it is measured

- **Processes.** The service runs alone in one process (`bench/service.py`: the real
  `webctp.service.run_service`, i.e. trio-websocket for /td/ and /md/, hypercorn for HTTP and the
  embedded simulator, plus benchmark-only hooks and a control channel on stdin). Load comes from
  another process (`bench/client.py`). Baselines run the same clients against a bare
  trio-websocket server (`bench/bare.py`) sending pre-encoded frames of the same size (~1 KiB).
  Everything is on 127.0.0.1.
- **Client.** A minimal WebSocket client on Trio streams that reads whole socket buffers and only
  walks frame headers, so that the client costs far less CPU per frame than the server and the
  server is what is measured (a wsproto-based client costs as much as the server per frame).
- **(1)** one connection, frames counted over a window after a warm-up. **(1b)** the same
  bare server, but each frame comes from a producer thread through a bridge like webctp's
  (lock-protected latest-per-instrument buffer, idempotent `run_sync_soon`, GIL released
  between ticks): the ceiling of the architecture itself. **(2)** one md client
  subscribed to 20 instruments; `Exchange.burst_ticks(prepared=True)`, the simulator's
  benchmark mode, builds the ticks (each a market step) and then its callback thread emits
  them back to back, releasing the GIL between callbacks as the C++ library's thread does;
  delivered = tick frames received / (last − first arrival). Ticks the client could not take
  in time are conflated per instrument (by design), so "delivered / made" shows how much was
  replaced. **(2b)** the same, but the simulator builds each tick while the earlier ones are
  emitted (its engine thread and the gateway then share the GIL). **(2c)** tick structs
  replayed into webctp's Spi by a bench thread. Runs of (1), (2), (2b) and (2c) alternate so
  all see the same load.
- **(3)** the simulator emits ticks at a fixed rate (20 instruments, round robin):
  `burst_ticks(prepared=True, rate=…)` builds them first, then its callback thread emits
  each at its time (sleeping in between, as a C++ library's thread waits for the network). The hook
  writes `time.perf_counter()` into the tick's `CurrDelta` when the simulator calls webctp's
  `OnRtnDepthMarketData`; the client subtracts it from its own clock at receipt (both are
  CLOCK_MONOTONIC). The baseline is the same with a bare server whose producer thread hands
  timestamps to Trio the way webctp's bridge does (latest per instrument, 20 instruments).
  (3b) repeats (3) with the simulator's engine building each tick on schedule while the
  callback thread emits (the simulator's Python cost shares the GIL); (3c) with the replayed
  feed of (2c), at the same rates.
- **(4)** the simulator's market step (what its clock runs every 0.5 s: every subscribed
  instrument ticks once) is driven every 0.5 s by the control channel, so the number of ticks
  expected is exact (the hook counts the callbacks). Service CPU from /proc over the window.
  The baseline bare server sends the same frames to the same number of connections.
- **(5)** one td session; each order is a 1-lot buy at the lower limit price (it rests), timed
  from the client's send to the first RtnOrder at the client, then cancelled. The hooks record
  when webctp calls the simulator's `ReqOrderInsert` and when the simulator calls
  `OnRtnOrder`; the difference is the simulator's own time, the rest is the gateway's (with the
  loopback and client). The broker pacing (`orders_per_second`) is raised so it adds no wait.
  The simulator's market clock is off in (2), (3) and (5) so its steps do not run in between.
- **(6)** N clients connect and log in at once (ReqAuthenticate → ReqUserLogin →
  ReqSettlementInfoConfirm each), with the simulator's clock on as configured by default; time
  from the first connect to the last RspUserLogin; RSS and threads of the service process.
- **(7)** py-spy records the service process with `--gil`: only samples of the thread holding the
  GIL, which is what limits a Trio service with callback threads.
"""
