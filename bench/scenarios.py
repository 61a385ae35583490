"""The measurements of issue 8, each next to its baseline from the same run."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._proc import (
    ROOT,
    Child,
    cpu_seconds,
    loadavg,
    percentile,
    rss_bytes,
    summary_ms,
    threads,
)


@dataclass(frozen=True)
class Params:
    quick: bool
    flood_seconds: float
    reps: int
    burst_n: int
    burst_instruments: int
    latency_rates: tuple[int, ...]
    latency_seconds: float
    fan_clients: int
    fan_per_conn: int
    fan_steps: int
    fan_interval: float
    orders_n: int
    sessions_n: int
    profile_seconds: float

    @classmethod
    def make(cls, quick: bool) -> Params:
        if quick:
            return cls(True, 0.6, 1, 1500, 20, (1000, 5000), 0.6, 10, 5, 3, 0.5, 20, 20, 0.0)
        return cls(False, 4.0, 5, 60000, 20, (1000, 5000), 10.0, 200, 20, 40, 0.5, 1000, 1000, 8.0)


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    return json.dumps(str(v))


class Bench:
    def __init__(self, params: Params, workdir: Path, log: Any) -> None:
        self.p = params
        self.dir = workdir
        self.log = log
        self._n = 0

    def say(self, text: str) -> None:
        print(f"[bench {time.strftime('%H:%M:%S')} load {loadavg()}] {text}", file=self.log)
        self.log.flush()

    # --- processes --------------------------------------------------------------------------
    def _path(self, stem: str) -> Path:
        self._n += 1
        return self.dir / f"{self._n:02d}-{stem}"

    def config(
        self,
        *,
        clock: float,
        tree_tag: str,
        pin: bool = False,
        extra: dict[str, dict[str, Any]] | None = None,
    ) -> Path:
        """A service configuration; ``extra``: tables (or keys of tables) to add."""
        base = self._path(f"svc{tree_tag}")
        base.mkdir()
        name = f"bench{self._n}"
        tables: dict[str, dict[str, Any]] = {
            "server": {"host": "127.0.0.1", "port": 0, "ws_port": 0, "mode": "all"}
            | ({"cpu_affinity": [min(os.sched_getaffinity(0))]} if pin else {}),
            "ctp": {
                "backend": "sim",
                "td_fronts": [f"sim://{name}"],
                "md_fronts": [f"sim://{name}"],
                "flow_dir": str(base / "flow"),
            },
            # orders are timed one at a time: the broker's pacing must not add waits
            "limits": {"orders_per_second": 100000.0},
            "log": {"level": "INFO"},
            "sim": {
                "name": name,
                "db_path": str(base / "sim.sqlite3"),
                "tick_interval_s": clock,
                "seed": 7,
                "orders_per_second": 100000,
            },
        }
        for table, values in (extra or {}).items():
            tables[table] = tables.get(table, {}) | values
        lines = []
        for table, values in tables.items():
            lines.append(f"[{table}]")
            lines += [f"{k} = {_toml_value(v)}" for k, v in values.items()]
        path = base / "config.toml"
        path.write_text("\n".join(lines) + "\n")
        return path

    @contextmanager
    def service(
        self,
        *,
        clock: float,
        tree: str | None,
        pin: bool = False,
        extra: dict[str, dict[str, Any]] | None = None,
        tag: str = "",
    ) -> Iterator[tuple[Child, dict[str, Any]]]:
        tag = ("-patched" if tree else "") + ("-pinned" if pin else "") + tag
        cfg = self.config(clock=clock, tree_tag=tag, pin=pin, extra=extra)
        child = Child(
            "bench.service",
            ["--config", str(cfg)],
            cfg.parent / "service.log",
            pythonpath=[tree] if tree else [],
            # ``python -m`` puts the working folder first on sys.path: the tree's webctp wins
            cwd=Path(tree) if tree else ROOT,
        )
        try:
            ready = child.expect("ready", 60)
            yield child, ready
        finally:
            child.close()

    @contextmanager
    def bare(self) -> Iterator[tuple[Child, int]]:
        child = Child("bench.bare", [], self._path("bare.log"))
        try:
            ready = child.expect("ready", 30)
            yield child, int(ready["port"])
        finally:
            child.close()

    def client(self, mode: str, port: int, *args: str) -> Child:
        return Child("bench.client", [mode, "--port", str(port), *args], self._path(f"cli-{mode}"))

    # --- 1. ceiling ---------------------------------------------------------------------------
    def ceiling_once(self) -> dict[str, Any]:
        with self.bare() as (srv, port):
            c0 = cpu_seconds(srv.pid)
            cli = self.client(
                "flood", port, "--seconds", str(self.p.flood_seconds), "--warmup", "0.3"
            )
            try:
                res = cli.expect("result", 60 + self.p.flood_seconds)
                cli_cpu = cpu_seconds(cli.pid)
            finally:
                cli.close()
            c1 = cpu_seconds(srv.pid)
        res["server_cpu_per_frame_us"] = (c1 - c0) / max(res["frames"], 1) * 1e6
        res["client_cpu_s"] = cli_cpu
        self.say(f"ceiling: {res['rate']:.0f} frames/s")
        return res

    def _bare_paced(
        self, rate: int, seconds: float, timeout: float, *extra: str
    ) -> tuple[dict[str, Any], float]:
        """The bare server's producer-thread path (/paced) for ``seconds``: the client's result
        and the server's CPU seconds. ``rate`` 0: as fast as it can go."""
        with self.bare() as (srv, port):
            c0 = cpu_seconds(srv.pid)
            cli = self.client(
                "ticks",
                port,
                "--bare",
                "paced",
                "--rate",
                str(rate),
                "--seconds",
                str(seconds),
                *extra,
                "--idle",
                "0.2",
            )
            try:
                cli.expect("ready", 60)
                cli.send(cmd="start")
                cli.send(cmd="finish")
                res = cli.expect("result", timeout)
            finally:
                cli.close()
            return res, cpu_seconds(srv.pid) - c0

    def ceiling_threaded_once(self) -> dict[str, Any]:
        """(1b) the bare server fed by a producer thread through a webctp-like bridge."""
        res, cpu = self._bare_paced(0, self.p.flood_seconds, 60 + self.p.flood_seconds)
        res["server_cpu_per_frame_us"] = cpu / max(res["count"], 1) * 1e6
        self.say(f"ceiling with a producer thread: {res['rate']:.0f} frames/s")
        return res

    # --- 2. tick path, fed as fast as possible -------------------------------------------------
    def instruments(self, svc: Child, n: int) -> list[str]:
        ids: list[str] = svc.call("instruments")["ids"]
        step = max(1, len(ids) // n)
        return ids[::step][:n]

    def burst_once(
        self,
        svc: Child,
        port: int,
        ids: list[str],
        *,
        replay: bool = False,
        prepared: bool = False,
    ) -> dict[str, Any]:
        """One md client takes a burst: the simulator's (``prepared``: built first, then
        emitted back to back by its callback thread; otherwise built while emitted) or, with
        ``replay``, tick structs fed to webctp's Spi by a bench thread."""
        cli = self.client(
            "ticks", port, "--instruments", json.dumps(ids), "--per-conn", str(len(ids))
        )
        try:
            cli.expect("ready", 60)
            before = svc.call("stats")
            cli.send(cmd="start")
            c0 = cpu_seconds(svc.pid)
            if replay:
                burst = svc.call("replay", 600, n=self.p.burst_n * 2)
            else:
                burst = svc.call("burst", 600, n=self.p.burst_n, instruments=ids, prepared=prepared)
            c1 = cpu_seconds(svc.pid)
            cli.send(cmd="finish")
            res = cli.expect("result", 120)
            after = svc.call("stats")
        finally:
            cli.close()
        res["producer_rate"] = burst["ticks"] / max(burst["seconds"], 1e-9)
        res["produced"] = burst["ticks"]
        res["burst_seconds"] = burst["seconds"]
        res["conflated"] = after["ticks_conflated"] - before["ticks_conflated"]
        res["sent"] = after["ticks_out"] - before["ticks_out"]
        # a prepared burst builds its ticks first: only the emission's CPU is counted
        cpu = float(burst["cpu_seconds"]) if burst.get("cpu_seconds") is not None else c1 - c0
        res["service_cpu_s"] = cpu
        res["service_cpu_per_delivered_us"] = cpu / max(res["count"], 1) * 1e6
        self.say(
            f"{'replay' if replay else 'prepared burst' if prepared else 'burst'}: "
            f"{res['rate']:.0f} ticks/s delivered, "
            f"producer {res['producer_rate']:.0f}/s, "
            f"{res['count']}/{res['produced']} delivered"
        )
        return res

    # --- 3. latency ---------------------------------------------------------------------------
    def latency_once(
        self, svc: Child, port: int, ids: list[str], rate: int, *, feed: str = "prepared"
    ) -> dict[str, Any]:
        """Ticks at ``rate``/s to one md client, each timed from webctp's callback to the
        client. ``feed``: ``prepared`` (the simulator builds them, then its callback thread
        emits them on schedule), ``live`` (its engine builds each one on schedule, while the
        callback thread emits) or ``replay`` (a bench thread calls webctp's Spi)."""
        cli = self.client(
            "ticks",
            port,
            "--instruments",
            json.dumps(ids),
            "--per-conn",
            str(len(ids)),
            "--latency",
        )
        try:
            cli.expect("ready", 60)
            svc.call("stamp", on=True)
            before = svc.call("stats")
            cli.send(cmd="start")
            c0 = cpu_seconds(svc.pid)
            n = int(rate * self.p.latency_seconds)
            if feed == "replay":
                paced = svc.call("replay", 120 + self.p.latency_seconds, n=n, rate=rate)
            elif feed == "prepared":
                paced = self.paced_burst(svc, ids, rate)
            else:
                paced = svc.call(
                    "pace",
                    120 + self.p.latency_seconds,
                    rate=rate,
                    seconds=self.p.latency_seconds,
                    instruments=ids,
                )
            c1 = cpu_seconds(svc.pid)
            cli.send(cmd="finish")
            res = cli.expect("result", 120)
            after = svc.call("stats")
            svc.call("stamp", on=False)
        finally:
            cli.close()
        lat = res.pop("latency")
        out = summary_ms(lat)
        out.update(
            rate=rate,
            produced=paced["ticks"],
            received=res["count"],
            conflated=after["ticks_conflated"] - before["ticks_conflated"],
            achieved_rate=paced["ticks"] / max(paced["seconds"], 1e-9),
            service_cpu_pct=(c1 - c0) / max(paced["seconds"], 1e-9) * 100,
        )
        self.say(f"latency at {rate}/s ({feed}): p50 {out['p50']:.3f} ms p99 {out['p99']:.3f} ms")
        return out

    def paced_burst(self, svc: Child, ids: list[str], rate: int) -> dict[str, Any]:
        """The simulator's ticks, built first, then emitted by its callback thread at
        ``rate``/s for ``latency_seconds`` (the feed of the latency items)."""
        seconds = self.p.latency_seconds
        return svc.call(
            "burst",
            120 + seconds,
            n=int(rate * seconds),
            instruments=ids,
            prepared=True,
            rate=rate,
        )

    def latency_bare(self, rate: int) -> dict[str, Any]:
        seconds = self.p.latency_seconds
        res, cpu = self._bare_paced(rate, seconds, 120 + seconds, "--latency")
        out = summary_ms(res.pop("latency"))
        out.update(
            rate=rate,
            received=res["count"],
            server_cpu_pct=cpu / max(self.p.latency_seconds, 1e-9) * 100,
        )
        self.say(f"bare latency at {rate}/s: p50 {out['p50']:.3f} ms p99 {out['p99']:.3f} ms")
        return out

    def pinned(self) -> dict[str, Any]:
        """Items 2, 3 (5,000/s) and 5 again with ``server.cpu_affinity`` = one CPU."""
        with self.service(clock=0.0, tree=None, pin=True) as (svc, ready):
            port = int(ready["ws_port"])
            ids = self.instruments(svc, self.p.burst_instruments)
            out: dict[str, Any] = {"burst": self.burst_once(svc, port, ids, prepared=True)}
            out["latency"] = self.latency_once(svc, port, ids, self.p.latency_rates[-1])
            all_ids: list[str] = svc.call("instruments")["ids"]
            out["orders"] = self.orders(svc, port, next(i for i in all_ids if i not in ids))
        return out

    # --- 4. fan-out ---------------------------------------------------------------------------
    def fanout(self, tree: str | None) -> dict[str, Any]:
        p = self.p
        out: dict[str, Any] = {"clients": p.fan_clients, "per_client": p.fan_per_conn}
        with self.service(clock=0.0, tree=tree) as (svc, ready):
            ids: list[str] = svc.call("instruments")["ids"]
            out["catalogue"] = len(ids)
            # the simulator's own cost of a market step with nobody subscribed
            c0 = cpu_seconds(svc.pid)
            t0 = time.perf_counter()
            for _ in range(4):
                svc.call("step")
            out["sim_step_idle_ms"] = (cpu_seconds(svc.pid) - c0) / 4 * 1e3
            self.say(f"fan-out: sim step alone {out['sim_step_idle_ms']:.1f} ms CPU")
            del t0
            res, cpu, wall, stats = self._fan_run(svc, int(ready["ws_port"]), ids, bare=False)
            out.update(res)
            out["service_cpu_s"] = cpu
            out["service_cpu_pct"] = cpu / wall * 100
            out["expected_callbacks"] = stats["md_callbacks"]
            out["expected_theory"] = p.fan_clients * min(p.fan_per_conn, len(ids)) * p.fan_steps
            out["ticks_conflated"] = stats["ticks_conflated"]
            out["service_rss"] = rss_bytes(svc.pid)
            out["service_threads"] = threads(svc.pid)
        with self.bare() as (srv, port):
            res_b, cpu_b, wall_b, _ = self._fan_run(srv, port, ids, bare=True)
            out["bare_count"] = res_b["count"]
            out["bare_cpu_s"] = cpu_b
            out["bare_cpu_pct"] = cpu_b / wall_b * 100
        self.say(
            f"fan-out: {out['count']}/{out['expected_callbacks']} ticks, service CPU "
            f"{out['service_cpu_pct']:.0f}% vs bare {out['bare_cpu_pct']:.0f}%"
        )
        return out

    def steps(self, srv: Child) -> float:
        """``fan_steps`` market steps, one every ``fan_interval`` seconds; the seconds taken."""
        p = self.p
        t0 = time.perf_counter()
        for k in range(p.fan_steps):
            srv.call("step", 60)
            pause = t0 + (k + 1) * p.fan_interval - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
        return time.perf_counter() - t0

    def _fan_run(
        self, srv: Child, port: int, ids: list[str], *, bare: bool
    ) -> tuple[dict[str, Any], float, float, dict[str, Any]]:
        p = self.p
        args = [
            "--connections",
            str(p.fan_clients),
            "--per-conn",
            str(p.fan_per_conn),
            "--instruments",
            json.dumps(ids),
            "--settle",
            "1.5",
            "--idle",
            "1.0",
        ]
        if bare:
            args += ["--bare", "fan"]
        cli = self.client("ticks", port, *args)
        try:
            cli.expect("ready", 300)
            before = {} if bare else srv.call("stats")
            cli.send(cmd="start")
            c0 = cpu_seconds(srv.pid)
            wall = self.steps(srv)
            cli.send(cmd="finish")
            res = cli.expect("result", 300)
            cpu = cpu_seconds(srv.pid) - c0
            stats: dict[str, Any] = {}
            if not bare:
                after = srv.call("stats")
                stats = {k: after[k] - before[k] for k in ("md_callbacks", "ticks_conflated")}
        finally:
            cli.close()
        return res, cpu, wall, stats

    # --- 5. order round trip ------------------------------------------------------------------
    def orders(self, svc: Child, port: int, instrument: str) -> dict[str, Any]:
        market = svc.call("market", instrument=instrument)
        exchange_id = market["exchange_id"]
        order = {
            "InstrumentID": instrument,
            "ExchangeID": exchange_id,
            "Direction": "0",
            "CombOffsetFlag": "0",
            "CombHedgeFlag": "1",
            "OrderPriceType": "2",
            "LimitPrice": market["lower"],
            "VolumeTotalOriginal": 1,
            "TimeCondition": "3",
            "VolumeCondition": "1",
            "ContingentCondition": "1",
            "ForceCloseReason": "0",
        }
        cli = self.client(
            "orders",
            port,
            "--n",
            str(self.p.orders_n),
            "--order",
            json.dumps(order),
            "--user",
            "benchorders",
        )
        try:
            cli.expect("ready", 60)
            cli.send(cmd="start")
            res = cli.expect("result", 60 + self.p.orders_n * 0.5)
        finally:
            cli.close()
        times = svc.call("orders")
        rtt, sim, gw, inbound, outbound = [], [], [], [], []
        legs: dict[str, list[float]] = {"to_gw": [], "gw_in": [], "gw_out": [], "from_gw": []}
        for ref, t0, t1 in res["rtts"]:
            rq, rt = times["req"].get(ref), times["rtn"].get(ref)
            rtt.append(t1 - t0)
            if rq is None or rt is None:
                continue
            sim.append(rt - rq)
            gw.append((t1 - t0) - (rt - rq))
            inbound.append(rq - t0)
            outbound.append(t1 - rt)
            th, ts = times.get("handle", {}).get(ref), times.get("send", {}).get(ref)
            if th is not None and ts is not None:
                legs["to_gw"].append(th - t0)
                legs["gw_in"].append(rq - th)
                legs["gw_out"].append(ts - rt)
                legs["from_gw"].append(t1 - ts)
        out: dict[str, Any] = {
            "rtt": summary_ms(rtt),
            "sim": summary_ms(sim),
            "gateway": summary_ms(gw),
            "inbound": summary_ms(inbound),
            "outbound": summary_ms(outbound),
            "matched": len(gw),
            **{k: summary_ms(v) for k, v in legs.items() if v},
        }
        self.say(
            f"orders: rtt p50 {out['rtt']['p50']:.3f} ms, gateway p50 "
            f"{out['gateway']['p50'] * 1e3:.0f} us"
        )
        return out

    def orders_bare(self) -> dict[str, Any]:
        with self.bare() as (_srv, port):
            cli = self.client("orders", port, "--bare", "echo", "--n", str(self.p.orders_n))
            try:
                cli.send(cmd="start")
                res = cli.expect("result", 60 + self.p.orders_n * 0.5)
            finally:
                cli.close()
        rtt = [t1 - t0 for _, t0, t1 in res["rtts"]]
        out: dict[str, Any] = {"rtt": summary_ms(rtt)}
        self.say(f"bare echo: rtt p50 {out['rtt']['p50']:.3f} ms")
        return out

    # --- 6. session scale ---------------------------------------------------------------------
    def sessions(self, tree: str | None) -> dict[str, Any]:
        n = self.p.sessions_n
        out: dict[str, Any] = {"n": n}
        with self.service(clock=0.5, tree=tree) as (svc, ready):
            time.sleep(1.0)
            out["idle_rss"] = rss_bytes(svc.pid)
            out["idle_threads"] = threads(svc.pid)
            res, peak = self._sessions_run(svc, int(ready["ws_port"]), bare=False)
            out.update(res)
            out.update(peak)
            stats = svc.call("stats")
            out["sessions_after_close"] = stats["sessions"]
        with self.bare() as (srv, port):
            time.sleep(0.5)
            out["bare_idle_rss"] = rss_bytes(srv.pid)
            res_b, peak_b = self._sessions_run(srv, port, bare=True)
            out["bare_total"] = res_b["total"]
            out["bare_logged_in"] = res_b["logged_in"]
            out["bare_rss"] = peak_b["rss"]
            out["bare_threads"] = peak_b["threads"]
        self.say(
            f"sessions: {out['logged_in']}/{n} in {out['total']:.2f} s, RSS "
            f"{out['rss'] / 2**20:.0f} MiB, {out['threads']} threads "
            f"(bare {out['bare_total']:.2f} s, {out['bare_rss'] / 2**20:.0f} MiB)"
        )
        return out

    def _sessions_run(
        self, srv: Child, port: int, *, bare: bool
    ) -> tuple[dict[str, Any], dict[str, Any]]:
        n = self.p.sessions_n
        args = ["--n", str(n), "--concurrency", str(n), "--user", "b"]
        if bare:
            args += ["--bare", "session"]
        cli = self.client("sessions", port, *args)
        try:
            res = cli.expect("ready", 600)
            time.sleep(1.0)  # let the trailing pushes settle
            peak = {"rss": rss_bytes(srv.pid), "threads": threads(srv.pid)}
            durations = res.pop("durations")
            res["login"] = summary_ms(durations)
            cli.send(cmd="finish")
            closed = cli.expect("result", 300)
            res["close_seconds"] = closed["close_seconds"]
            if not bare:
                deadline = time.monotonic() + 60
                while time.monotonic() < deadline:
                    if not any(srv.call("stats")["sessions"].values()):
                        break
                    time.sleep(0.5)
                srv.call("gc")
                peak["rss_after_close"] = rss_bytes(srv.pid)
                peak["threads_after_close"] = threads(srv.pid)
        finally:
            cli.close()
        return res, peak

    # --- 7. profile ---------------------------------------------------------------------------
    def profile(self, svc: Child, what: str, seconds: float) -> subprocess.Popen[bytes] | None:
        exe = shutil.which("py-spy")
        if exe is None or seconds <= 0:
            return None
        out = self.dir / f"profile-{what}.txt"
        return subprocess.Popen(
            [
                exe,
                "record",
                "--pid",
                str(svc.pid),
                "--duration",
                str(int(seconds)),
                "--rate",
                "250",
                "--gil",
                "--threads",
                "--format",
                "raw",
                "--output",
                str(out),
                "--nonblocking",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def ratio(a: float, b: float) -> float:
    return a / b if b else float("nan")


def best(values: Sequence[float]) -> float:
    return max(values) if values else float("nan")


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)
