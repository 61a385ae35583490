"""Item 8 (issue 15): market data at scale, each against a baseline from the same run.

- 8a fan-out on a shared upstream (``[md] upstream = "shared"``): N md clients x 20
  instruments, market steps; service CPU per delivered tick against the bare trio-websocket
  server's CPU per frame for the same frames and clients;
- 8b one md client on a shared upstream under a flood: ticks/s delivered against the bare
  ceiling (alternated);
- 8c feeder -> Redis -> edge -> client latency at 5,000 ticks/s against the same feeder's own
  /md/ (shared upstream, no bus);
- 8d two edges x N clients fed by one feeder: delivered against expected, CPU per process.

Needs ``redis-server`` (Debian package) for 8c and 8d; without it they are reported as
skipped.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from typing import Any

from ._proc import Child, cpu_seconds, summary_ms
from .scenarios import Bench

SHARED = {"md": {"upstream": "shared"}}


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@contextmanager
def redis_server(bench: Bench) -> Iterator[str]:
    folder = bench.dir / f"redis-{time.monotonic_ns()}"
    folder.mkdir()
    port = _free_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--bind",
            "127.0.0.1",
            "--port",
            str(port),
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(folder),
        ],
        stdout=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        proc.kill()
        proc.wait()


def run(bench: Bench) -> dict[str, Any]:
    quick = bench.p.quick
    clients = 10 if quick else 1000
    out: dict[str, Any] = {"clients": clients, "per_client": 20}
    out["fanout_shared"] = fanout_shared(bench, clients)
    out["flood_shared"] = flood_shared(bench)
    if shutil.which("redis-server") is None:
        out["skipped"] = "redis-server is not installed"
        return out
    out["bus_latency"] = bus_latency(bench)
    out["two_edges"] = two_edges(bench, clients)
    return out


def fanout_shared(bench: Bench, clients: int) -> dict[str, Any]:
    saved = bench.p
    bench.p = dataclasses.replace(saved, fan_clients=clients, fan_per_conn=20)
    try:
        res: dict[str, Any] = {}
        with bench.service(clock=0.0, tree=None, extra=SHARED, tag="-shared") as (svc, ready):
            ids: list[str] = svc.call("instruments")["ids"]
            r, cpu, _wall, stats = bench._fan_run(svc, int(ready["ws_port"]), ids, bare=False)
            res.update(r)
            res["service_cpu_s"] = cpu
            res["ticks_conflated"] = stats["ticks_conflated"]
            res["upstream_callbacks"] = stats["md_callbacks"]
            # one tick per instrument per market step for each client
            res["expected"] = clients * 20 * bench.p.fan_steps
        with bench.bare() as (srv, port):
            rb, cpu_b, _wall_b, _ = bench._fan_run(srv, port, ids, bare=True)
        res["bare_count"] = rb["count"]
        res["bare_cpu_s"] = cpu_b
        res["cpu_per_tick_us"] = cpu / max(res["count"], 1) * 1e6
        res["bare_cpu_per_frame_us"] = cpu_b / max(rb["count"], 1) * 1e6
        res["ratio"] = res["cpu_per_tick_us"] / max(res["bare_cpu_per_frame_us"], 1e-9)
        bench.say(
            f"8a fan-out shared: {res['count']} ticks delivered (+{res['ticks_conflated']} "
            f"conflated), {res['cpu_per_tick_us']:.1f} µs CPU/tick vs bare "
            f"{res['bare_cpu_per_frame_us']:.1f} µs/frame (x{res['ratio']:.2f})"
        )
        return res
    finally:
        bench.p = saved


def flood_shared(bench: Bench) -> dict[str, Any]:
    """Alternated: the bare ceiling, the per-session path (today's default) and the shared
    upstream, each taking the same simulator burst."""
    runs: list[dict[str, Any]] = []
    session_runs: list[dict[str, Any]] = []
    ceilings: list[dict[str, Any]] = []
    with (
        bench.service(clock=0.0, tree=None, extra=SHARED, tag="-shared") as (
            svc,
            ready,
        ),
        bench.service(clock=0.0, tree=None, tag="-session") as (svc_s, ready_s),
    ):
        ids = bench.instruments(svc, bench.p.burst_instruments)
        for _ in range(bench.p.reps):
            ceilings.append(bench.ceiling_once())
            session_runs.append(
                bench.burst_once(svc_s, int(ready_s["ws_port"]), ids, prepared=True)
            )
            runs.append(bench.burst_once(svc, int(ready["ws_port"]), ids, prepared=True))
    best = max(r["rate"] for r in runs)
    best_session = max(r["rate"] for r in session_runs)
    ceiling = max(c["rate"] for c in ceilings)
    bench.say(
        f"8b flood: shared {best:.0f} ticks/s, per-session {best_session:.0f} ticks/s, "
        f"ceiling {ceiling:.0f} frames/s"
    )
    return {
        "runs": runs,
        "session_runs": session_runs,
        "ceilings": ceilings,
        "rate": best,
        "session_rate": best_session,
        "ceiling": ceiling,
        "ratio": best / max(ceiling, 1e-9),
    }


@contextmanager
def feeder_and_edges(
    bench: Bench, edges: int
) -> Iterator[tuple[Child, dict[str, Any], list[tuple[Child, dict[str, Any]]]]]:
    """A Redis, a feeder (shared upstream, publishing) and ``edges`` md edges on it."""
    with redis_server(bench) as url, ExitStack() as stack:
        feeder_extra = SHARED | {"bus": {"url": url, "publish": True}}
        edge_extra = {"server": {"mode": "md-edge"}, "bus": {"url": url}}
        feeder, f_ready = stack.enter_context(
            bench.service(clock=0.0, tree=None, extra=feeder_extra, tag="-feeder")
        )
        started = [
            stack.enter_context(
                bench.service(clock=0.0, tree=None, extra=edge_extra, tag=f"-edge{k + 1}")
            )
            for k in range(edges)
        ]
        yield feeder, f_ready, started


def bus_latency(bench: Bench) -> dict[str, Any]:
    """Two clients at once, one on the feeder's own /md/ (the path without the bus), one on
    the edge: the same ticks, at the same time, so that what the machine does meanwhile
    weighs on both. Each tick carries its callback time; the ticks both clients got are
    paired. Added latency: each percentile of the edge's latencies minus the same percentile
    of the direct ones over those ticks, and the percentiles of the per-tick difference."""
    rate = 5000
    with feeder_and_edges(bench, 1) as (feeder, f_ready, [(_edge, e_ready)]):
        ids = bench.instruments(feeder, bench.p.burst_instruments)
        args = ["--instruments", json.dumps(ids), "--per-conn", str(len(ids))]
        args += ["--latency", "--stamps"]
        clis = {
            "direct": bench.client("ticks", int(f_ready["ws_port"]), *args),
            "bus": bench.client("ticks", int(e_ready["ws_port"]), *args),
        }
        try:
            for cli in clis.values():
                cli.expect("ready", 60)
            feeder.call("stamp", on=True)
            for cli in clis.values():
                cli.send(cmd="start")
            paced = bench.paced_burst(feeder, ids, rate)
            for cli in clis.values():
                cli.send(cmd="finish")
            res = {k: cli.expect("result", 120) for k, cli in clis.items()}
            feeder.call("stamp", on=False)
        finally:
            for cli in clis.values():
                cli.close()
    got = {k: dict(zip(r["stamps"], r["latency"])) for k, r in res.items()}
    both = [ts for ts in got["bus"] if ts in got["direct"]]
    direct = summary_ms([got["direct"][ts] for ts in both])
    bus = summary_ms([got["bus"][ts] for ts in both])
    per_tick = summary_ms([got["bus"][ts] - got["direct"][ts] for ts in both])
    added = {k: bus[k] - direct[k] for k in ("p50", "p99")}
    out: dict[str, Any] = {
        "rate": rate,
        "produced": paced["ticks"],
        "achieved_rate": paced["ticks"] / max(paced["seconds"], 1e-9),
        "received": {k: len(v) for k, v in got.items()},
        "paired": len(both),
        "direct": direct,
        "bus": bus,
        "added": added,
        "per_tick": per_tick,
    }
    bench.say(
        f"8c bus latency at {rate}/s ({len(both)} ticks seen by both clients): added p50 "
        f"{added['p50']:.3f} ms, p99 {added['p99']:.3f} ms; per tick p50 "
        f"{per_tick['p50']:.3f} ms, p99 {per_tick['p99']:.3f} ms"
    )
    return out


_COUNTS = ("md_callbacks", "ticks_out", "ticks_conflated")


def two_edges(bench: Bench, clients: int) -> dict[str, Any]:
    """Every tick a client is due is delivered, or counted as conflated by its edge (an edge
    also counts, from the bus's sequence numbers, the ticks replaced in the feeder: the
    feeder's own counters are in its terms, once per tick, and are reported apart)."""
    steps = bench.p.fan_steps
    with feeder_and_edges(bench, 2) as (feeder, _f, edges):
        ids: list[str] = feeder.call("instruments")["ids"]
        args = [
            "--connections",
            str(clients),
            "--per-conn",
            "20",
            "--instruments",
            json.dumps(ids),
            "--settle",
            "2.5",
            # every tick is delivered or conflated: a client ends at its count, or when no
            # tick came for --idle seconds (some were conflated)
            "--expect",
            str(clients * 20 * steps),
            "--idle",
            "5",
        ]
        clis = [bench.client("ticks", int(ready["ws_port"]), *args) for _, ready in edges]
        try:
            for cli in clis:
                cli.expect("ready", 600)
            procs = {"feeder": feeder} | {f"edge{k + 1}": e for k, (e, _) in enumerate(edges)}
            before = {k: v.call("stats") for k, v in procs.items()}
            for cli in clis:
                cli.send(cmd="start")
            c0 = {k: cpu_seconds(v.pid) for k, v in procs.items()}
            c0_clients = sum(cpu_seconds(cli.pid) for cli in clis)
            t0 = time.perf_counter()
            steps_wall = bench.steps(feeder)
            for cli in clis:
                cli.send(cmd="finish")
            results = [cli.expect("result", 600) for cli in clis]
            # CPU up to the clients' result (the edges drain after the last step)
            cpu = {k: cpu_seconds(v.pid) - c0[k] for k, v in procs.items()}
            cpu["clients"] = sum(cpu_seconds(cli.pid) for cli in clis) - c0_clients
            # the clients' clock is the same (CLOCK_MONOTONIC): up to the last tick read
            wall = max([r["last"] for r in results] + [t0 + steps_wall]) - t0
            after = {k: v.call("stats") for k, v in procs.items()}
        finally:
            for cli in clis:
                cli.close()
    # each step moves every instrument once: a client expects one tick per instrument per step
    expected = 2 * clients * 20 * steps
    delivered = sum(r["count"] for r in results)
    delta = {k: {c: after[k][c] - before[k][c] for c in _COUNTS} for k in procs}
    conflated = sum(d["ticks_conflated"] for k, d in delta.items() if k != "feeder")
    sent = sum(d["ticks_out"] for k, d in delta.items() if k != "feeder")
    res = {
        "clients_per_edge": clients,
        "steps": steps,
        "expected": expected,
        "delivered": delivered,
        "conflated": conflated,
        "unaccounted": expected - delivered - conflated,
        "edges_sent": sent,
        # sent by the edges, not read by the clients when they stopped counting
        "unread": sent - delivered,
        "feeder_upstream_ticks": delta["feeder"]["md_callbacks"],
        "feeder_conflated": delta["feeder"]["ticks_conflated"],
        "closed": sum(r.get("closed", 0) for r in results),
        "per_conn_min": min(r["per_conn_min"] for r in results),
        "per_conn_max": max(r["per_conn_max"] for r in results),
        "steps_seconds": steps_wall,
        "seconds": wall,
        "cpu_s": cpu,
        "cpu_pct": {k: v / wall * 100 for k, v in cpu.items()},
    }
    bench.say(
        f"8d two edges: {delivered}/{expected} delivered (+{conflated} conflated, "
        f"{res['unaccounted']} unaccounted; edges sent {sent}, {res['unread']} of them unread, "
        f"{res['closed']} connections "
        f"closed), {len(ids)} instruments x {steps} steps took {steps_wall:.1f} s (then "
        f"{wall - steps_wall:.1f} s until the clients had read everything), CPU "
        + ", ".join(f"{k} {v:.0f}%" for k, v in res["cpu_pct"].items())
    )
    return res
