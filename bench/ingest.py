"""Ingest + rule evaluation benchmark (issue 3). Prints tables; not part of the test suite.

1,000 concurrent runs × 20 metrics, 100 rules of mixed kinds, batches shaped like the SDK's, persistence
on (SQLite). Reports points/s ingested and evaluated by the one service process (one core), the p50/p99
latency from the `log()` call that crosses a threshold (in an SDK process) to the webhook arriving at a
receiver in this process while background load runs at a fixed rate, the service RSS, and points/s with
10 vs 1,000 rules that match no key (the rule index must keep this flat).

    python bench/ingest.py [--seconds 20] [--runs 1000]
    python bench/ingest.py --stop [--stop-samples 50]   # NaN -> stopped SDK process, p50/p99
    python bench/ingest.py --sweeps 10 [--rounds 2]     # points/s with one compare rule per sweep vs without
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import orjson
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._service import free_port, make_service  # noqa: E402

METRICS = [f"train/m{i}" for i in range(18)] + ["train/loss", "val/acc"]
STEPS_PER_BATCH = 10  # one SDK batch: 10 committed steps of 20 metrics = 200 points


def mixed_rules(count: int) -> list[dict[str, Any]]:
    kinds = [
        lambda i: {"metric": "train/loss", "when": f"> {1000 + i}"},
        lambda i: {"metric": "train/loss", "when": "not finite"},
        lambda i: {"metric": f"train/m{i % 18}", "when": "< -1", "over": {"last": 5, "agg": "mean"}},
        lambda i: {"metric": "val/acc", "plateau": {"patience": 1000 + i, "min_delta": 0.0}},
        lambda i: {"metric": f"train/m{i % 18}", "change": {"window": 5, "baseline": 20, "by": "900%"}},
        lambda i: {"metric": f"train/m{i % 18}", "zscore": {"window": 50, "threshold": 50}},
        lambda i: {"expr": f"`train/loss` - `val/acc` > {1000 + i}"},
        lambda i: {"metric": "train/*", "when": f"> {1e9 + i}"},
        lambda i: {"metric": "*", "absent": "1h"},
        lambda i: {"run_state": ["crashed"]},
    ]
    return [{"name": f"rule-{i}", **kinds[i % len(kinds)](i)} for i in range(count)]


def compare_rules(sweeps: int) -> list[dict[str, Any]]:
    """One ``compare`` rule per sweep: the median stopping rule on ``val/acc`` (higher is better)."""
    return [{"name": f"sweep-{i}-median", "metric": "val/acc", "where": {"config": {"sweep": i}},
             "compare": {"to": {"project": "same", "config": {"sweep": "same"}}, "stat": "median",
                         "mode": "max", "margin": "10%", "min_runs": 5, "grace": 10, "using": "best_so_far"},
             "for": 3} for i in range(sweeps)]


def unmatched_rules(count: int) -> list[dict[str, Any]]:
    return [{"name": f"nomatch-{i}", "metric": f"never/seen/{i}", "when": "> 0"} for i in range(count)]


def make_body(seq: int, step: int, offset: float = 0.0) -> bytes:
    """One SDK-shaped batch: STEPS_PER_BATCH committed steps of every metric, seqs from ``seq + 1``;
    ``offset`` is added to every value (runs of a sweep that differ)."""
    records = []
    for _ in range(STEPS_PER_BATCH):
        seq += 1
        data = {key: (step % 97) / 97.0 + offset for key in METRICS}
        records.append({"seq": seq, "type": "history", "step": step, "timestamp": time.time(),
                        "runtime": step * 0.01, "data": data})
        step += 1
    return orjson.dumps({"records": records})


def make_bodies(runs: list[str], batches_per_run: int) -> list[tuple[str, bytes]]:
    return [(run, make_body(batch * STEPS_PER_BATCH, batch * STEPS_PER_BATCH))
            for run in runs for batch in range(batches_per_run)]


def floor(*, runs: int, batches_per_run: int = 4) -> dict[str, float]:
    """The floor: the same SDK-shaped batches parsed with orjson and written to SQLite with one
    ``executemany`` per batch and table (steps, points), nothing else; CPU of this process."""
    import sqlite3
    import tempfile

    import orjson

    bodies = make_bodies([f"run{i}" for i in range(runs)], batches_per_run=batches_per_run)
    pks = {f"run{i}": i for i in range(runs)}
    db = sqlite3.connect(Path(tempfile.mkdtemp(prefix="runwatch-floor-")) / "floor.db")
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("CREATE TABLE steps (run_pk INTEGER, step INTEGER, timestamp REAL, runtime REAL, "
               "PRIMARY KEY (run_pk, step)) WITHOUT ROWID")
    db.execute("CREATE TABLE metrics (run_pk INTEGER, key TEXT, step INTEGER, timestamp REAL, value REAL, "
               "PRIMARY KEY (run_pk, key, step)) WITHOUT ROWID")
    points = 0
    cpu = time.process_time()
    for run, body in bodies:
        pk = pks[run]
        records = orjson.loads(body)["records"]
        rows = [(pk, key, r["step"], r["timestamp"], value) for r in records for key, value in r["data"].items()]
        with db:
            db.executemany("INSERT INTO steps VALUES (?, ?, ?, ?)",
                           [(pk, r["step"], r["timestamp"], r["runtime"]) for r in records])
            db.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?, ?)", rows)
        points += len(rows)
    cpu = time.process_time() - cpu
    db.close()
    return {"points": points, "points_per_cpu_s": points / cpu}


def _cpu(procs: list[psutil.Process]) -> float:
    return float(sum(times.user + times.system for times in (p.cpu_times() for p in procs)))


def throughput(rules: list[dict[str, Any]], *, runs: int, seconds: float, clients: int = 4,
               tree: Path | None = None, sweeps: int = 0) -> dict[str, float]:
    """Points/s and per service CPU-second: ``clients`` threads post batches for their share of the runs,
    round-robin (every run logs all along, as concurrent training runs do), until ``seconds`` are up.
    Timed from when every run has logged its first batch: the steady state, not the runs' first points.
    ``sweeps``: the runs are that many sweeps (config ``sweep: i % sweeps``), each run's values a little
    apart from the others' (``offset``) and one in 23 clearly worse, so a ``compare`` rule has a spread to
    judge and fires for a few."""
    service = make_service({"channels": {"console": {"type": "console"}}}, rules, tree=tree).start()
    try:
        key = service.cli("keys", "create", "--project", "bench")
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        run_ids = [f"run{i}" for i in range(runs)]
        with httpx.Client(base_url=service.base_url, headers=headers, timeout=60) as client:
            for number, run in enumerate(run_ids):
                config = {"sweep": number % sweeps} if sweeps else {}
                client.post("/api/v1/runs", json={"project": "bench", "id": run, "tags": ["bench"],
                                                  "config": config}).raise_for_status()
        # A sweep's runs differ a little; one in 23 is clearly worse (its compare rule fires for it).
        offsets = {run: (-0.5 if number % 23 == 22 else number * 1e-4) if sweeps else 0.0
                   for number, run in enumerate(run_ids)}
        per_client = [run_ids[i::clients] for i in range(clients)]
        total = [0] * clients
        procs = [psutil.Process(pid) for pid in service.pids]  # every replica's, when there are several
        warm = threading.Barrier(clients + 1)
        go = threading.Event()
        window: dict[str, Any] = {}

        def client_loop(index: int) -> None:
            with httpx.Client(base_url=service.base_url, headers=headers, timeout=60) as client:
                for batch in itertools.count():
                    if batch == 1:  # every run has logged once (its series exist): the timed window starts
                        warm.wait()
                        go.wait()
                    for run in per_client[index]:
                        if batch and time.monotonic() > window["stop"]:
                            return
                        body = make_body(batch * STEPS_PER_BATCH, batch * STEPS_PER_BATCH, offsets[run])
                        response = client.post(f"/api/v1/runs/bench/{run}/records", content=body)
                        response.raise_for_status()
                        if batch:
                            total[index] += response.json()["accepted"] * len(METRICS)

        threads = [threading.Thread(target=client_loop, args=(i,)) for i in range(clients)]
        for thread in threads:
            thread.start()
        warm.wait()
        started = time.monotonic()
        window["stop"] = started + seconds
        cpu_before = _cpu(procs)
        go.set()
        for thread in threads:
            thread.join()
        elapsed = time.monotonic() - started
        cpu = _cpu(procs) - cpu_before
        return {"points": sum(total), "elapsed": elapsed, "points_per_s": sum(total) / elapsed,
                "points_per_cpu_s": sum(total) / cpu if cpu else 0.0,
                "rss_mb": sum(p.memory_info().rss for p in procs) / 2**20}
    finally:
        service.stop()


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.arrivals: list[tuple[float, dict[str, Any]]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                receiver.arrivals.append((time.time(), json.loads(body)))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def start_runs(cli: Any, base_url: str, runs: int) -> tuple[str, dict[str, str], list[str]]:
    """A project key (made with the service's CLI), its headers, and ``runs`` runs created with it."""
    key = cli("keys", "create", "--project", "bench")
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    run_ids = [f"run{i}" for i in range(runs)]
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
        for run in run_ids:
            client.post("/api/v1/runs", json={"project": "bench", "id": run}).raise_for_status()
    return key, headers, run_ids


def paced_load(base_url: str, headers: dict[str, str], bodies: list[tuple[str, bytes]], rate: float,
               stop: threading.Event, sent: list[int]) -> None:
    """Background load: ``bodies`` posted at ``rate`` points per second until ``stop``; ``sent[0]`` counts."""
    interval = STEPS_PER_BATCH * len(METRICS) / rate
    next_at = time.monotonic()
    with httpx.Client(base_url=base_url, headers=headers, timeout=60) as client:
        for run, body in bodies:
            if stop.is_set():
                return
            next_at += interval
            client.post(f"/api/v1/runs/bench/{run}/records", content=body)
            sent[0] += STEPS_PER_BATCH * len(METRICS)
            delay = next_at - time.monotonic()
            if delay > 0:
                time.sleep(delay)


PROBE = """
import sys, time, runwatch
run = runwatch.init(project="bench", id="probe", name="probe")
for i in range({n}):
    time.sleep(0.3)
    t0 = time.time()
    run.log({{f"probe.{{i}}": 1.0}})   # crosses the threshold: fires (a new series, so a new group)
    print(f"T {{i}} {{t0}}", flush=True)
    time.sleep(0.3)
    run.log({{f"probe.{{i}}": 0.0}})   # resolves
run.finish()
"""


def latency(rules: list[dict[str, Any]], *, runs: int, rate: float, samples: int) -> dict[str, float]:
    receiver = Receiver()
    probe_rule = {"name": "probe-high", "metric": "probe.*", "when": "> 0.5"}
    service = make_service({"channels": {"hook": {"type": "webhook", "url": f"http://127.0.0.1:{receiver.port}/"}},
                            # every label groups: each probe series is its own group, sent after group_wait 0
                            "defaults": {"channels": ["hook"], "send_resolved": False, "group_by": ["..."]}},
                           rules + [probe_rule]).start()
    try:
        key, headers, run_ids = start_runs(service.cli, service.base_url, runs)
        duration = samples * 0.6 + 10
        bodies = make_bodies(run_ids, batches_per_run=int(rate * duration / (runs * 200)) + 2)
        stop = threading.Event()
        sent = [0]
        started = time.monotonic()
        threading.Thread(target=paced_load, args=(service.base_url, headers, bodies, rate, stop, sent),
                         daemon=True).start()
        env = {**os.environ, "RUNWATCH_BASE_URL": service.base_url, "RUNWATCH_API_KEY": key,
               "RUNWATCH_DIR": str(service.dir / "sdk")}
        out = subprocess.run([sys.executable, "-c", PROBE.format(n=samples)], env=env, capture_output=True,
                             text=True, timeout=600, check=True).stdout
        time.sleep(1.0)
        stop.set()
        achieved = sent[0] / (time.monotonic() - started)
        starts = [float(line.split()[2]) for line in out.splitlines() if line.startswith("T ")]
        arrivals = [t for t, payload in receiver.arrivals
                    if payload["alerts"][0]["rule"] == "probe-high" and payload["status"] == "firing"]
        latencies = sorted((a - s) * 1000 for s, a in zip(starts, arrivals, strict=False))
        return {"samples": len(latencies), "p50_ms": statistics.median(latencies),
                "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))], "achieved": achieved}
    finally:
        service.stop()
        receiver.server.shutdown()


STOPPING = """
import math, sys, time, runwatch
for i in range({n}):
    run = runwatch.init(project="bench", id=f"stopping{{i}}", name=f"stopping-{{i}}")
    nan_at = None
    try:
        for step in range(1_000_000):
            if step == 20:
                nan_at = time.monotonic()
            run.log({{"train/loss": math.nan if step >= 20 else 1.0}})   # diverges at step 20, goes on
            time.sleep(0.005)
    except KeyboardInterrupt:   # the SDK's interrupt: the service asked the run to stop
        print(f"S {{i}} {{time.monotonic() - nan_at}}", flush=True)
    run.finish()
"""


def stop_latency(rules: list[dict[str, Any]], *, runs: int, rate: float, samples: int) -> dict[str, float]:
    """Seconds from the ``log()`` of a NaN to the training loop's ``KeyboardInterrupt`` (a rule with
    ``actions: [stop_run]``), in an SDK process, ``samples`` runs one after another, while background
    load runs at ``rate`` points/s over ``runs`` other runs."""
    stop_rule = {"name": "diverged-stop", "metric": "train/loss", "when": "not finite", "actions": ["stop_run"],
                 "where": {"run": "stopping*"}}
    service = make_service({"channels": {"console": {"type": "console"}}}, rules + [stop_rule]).start()
    try:
        key, headers, run_ids = start_runs(service.cli, service.base_url, runs)
        bodies = make_bodies(run_ids, batches_per_run=int(rate * (samples * 1.5 + 20) / (runs * 200)) + 2)
        stop = threading.Event()
        threading.Thread(target=paced_load, args=(service.base_url, headers, bodies, rate, stop, [0]),
                         daemon=True).start()
        env = {**os.environ, "RUNWATCH_BASE_URL": service.base_url, "RUNWATCH_API_KEY": key,
               "RUNWATCH_DIR": str(service.dir / "sdk"), "RUNWATCH_SYSTEM_METRICS": "0"}
        out = subprocess.run([sys.executable, "-c", STOPPING.format(n=samples)], env=env, capture_output=True,
                             text=True, timeout=900, check=True).stdout
        stop.set()
        seconds = sorted(float(line.split()[2]) for line in out.splitlines() if line.startswith("S "))
        return {"samples": len(seconds), "p50_ms": statistics.median(seconds) * 1000,
                "p99_ms": seconds[min(len(seconds) - 1, int(len(seconds) * 0.99))] * 1000,
                "max_ms": seconds[-1] * 1000}
    finally:
        service.stop()


def sweep_rounds(*, runs: int, sweeps: int, seconds: float, rounds: int) -> None:
    """The same stream of ``runs`` runs in ``sweeps`` sweeps, with and without one ``compare`` rule per
    sweep, alone and on top of the 100 mixed rules; alternating, ``rounds`` times."""
    cases = [("no rules", []), (f"{sweeps} compare rules", compare_rules(sweeps)),
             ("100 mixed rules", mixed_rules(100)),
             (f"100 mixed + {sweeps} compare rules", mixed_rules(100) + compare_rules(sweeps))]
    rows = [(number, name, throughput(rules, runs=runs, seconds=seconds, sweeps=sweeps))
            for number in range(1, rounds + 1) for name, rules in cases]
    print(f"\n{runs} runs in {sweeps} sweeps, {len(METRICS)} metrics, {seconds:g} s per case\n")
    print("| round | rules | points/s (wall) | points per service CPU-second | service RSS MiB |")
    print("|---|---|---|---|---|")
    for number, name, result in rows:
        print(f"| {number} | {name} | {result['points_per_s']:,.0f} | {result['points_per_cpu_s']:,.0f} | "
              f"{result['rss_mb']:.0f} |")
    for number in range(1, rounds + 1):
        got = {name: result for n, name, result in rows if n == number}
        for without, with_ in (("no rules", f"{sweeps} compare rules"),
                               ("100 mixed rules", f"100 mixed + {sweeps} compare rules")):
            wall = got[with_]["points_per_s"] / got[without]["points_per_s"]
            cpu = got[with_]["points_per_cpu_s"] / got[without]["points_per_cpu_s"]
            print(f"round {number}: {with_} / {without}: {wall:.2f}x points/s, {cpu:.2f}x points per "
                  "CPU-second (target: within 25%, >= 0.75)")


def compare(base: Path, *, runs: int, seconds: float, rounds: int) -> None:
    """Before/after in one run: the 100-mixed-rules throughput of ``base``'s service and of this checkout's,
    alternating, under the same load from this checkout's clients, with the floor measured between."""
    rows = []
    for number in range(1, rounds + 1):
        for label, tree in (("before", base), ("after", None)):
            result = throughput(mixed_rules(100), runs=runs, seconds=seconds, tree=tree)
            rows.append((number, label, result))
        rows.append((number, "floor", {"points_per_cpu_s": floor(runs=runs)["points_per_cpu_s"]}))
    print(f"\nbefore = {base}; after = this checkout; {runs} runs, 100 mixed rules, {seconds:g} s each\n")
    print("| round | service | points/s (wall) | points per service CPU-second | CPU-s per 1M points | RSS MiB |")
    print("|---|---|---|---|---|---|")
    for number, label, result in rows:
        per_cpu = result["points_per_cpu_s"]
        wall = f"{result['points_per_s']:,.0f}" if "points_per_s" in result else ""
        rss = f"{result['rss_mb']:.0f}" if "rss_mb" in result else ""
        print(f"| {number} | {label} | {wall} | {per_cpu:,.0f} | {1e6 / per_cpu:.2f} | {rss} |")
    for number in range(1, rounds + 1):
        got = {label: result["points_per_cpu_s"] for n, label, result in rows if n == number}
        print(f"round {number}: after/before {got['after'] / got['before']:.2f}x per CPU-second; "
              f"floor/after {got['floor'] / got['after']:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=50_000)
    parser.add_argument("--samples", type=int, default=40)
    parser.add_argument("--base-tree", type=Path, help="compare with this checkout's service (before/after)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--stop", action="store_true",
                        help="only the NaN -> stopped-run latency (a rule with actions: [stop_run])")
    parser.add_argument("--stop-samples", type=int, default=50)
    parser.add_argument("--sweeps", type=int, default=0,
                        help="only compare rules: the runs as this many sweeps, one compare rule per sweep, "
                             "points/s with and without them (alternating rounds)")
    args = parser.parse_args()
    print(f"storage: {os.environ.get('RUNWATCH_BENCH_STORAGE', 'sqlite')} (RUNWATCH_BENCH_STORAGE)")
    if args.base_tree:
        compare(args.base_tree, runs=args.runs, seconds=args.seconds, rounds=args.rounds)
        return
    if args.sweeps:
        sweep_rounds(runs=args.runs, sweeps=args.sweeps, seconds=args.seconds, rounds=args.rounds)
        return
    if args.stop:
        stopped = stop_latency(mixed_rules(100), runs=args.runs, rate=args.rate, samples=args.stop_samples)
        print(f"\nNaN log() -> KeyboardInterrupt in the SDK process (rule with actions: [stop_run]), "
              f"{stopped['samples']} runs, background load {args.rate:,.0f} points/s over {args.runs} runs:")
        print("| p50 ms | p99 ms | max ms |\n|---|---|---|")
        print(f"| {stopped['p50_ms']:.1f} | {stopped['p99_ms']:.1f} | {stopped['max_ms']:.1f} |")
        return

    mixed = throughput(mixed_rules(100), runs=args.runs, seconds=args.seconds)
    few = throughput(unmatched_rules(10), runs=args.runs, seconds=args.seconds)
    many = throughput(unmatched_rules(1000), runs=args.runs, seconds=args.seconds)
    lat = latency(mixed_rules(100), runs=args.runs, rate=args.rate, samples=args.samples)
    base = floor(runs=args.runs)

    storage = os.environ.get("RUNWATCH_BENCH_STORAGE", "sqlite")
    print(f"\n{args.runs} runs x {len(METRICS)} metrics, batches of {STEPS_PER_BATCH} steps "
          f"({STEPS_PER_BATCH * len(METRICS)} points), {storage}, "
          f"{os.environ.get('RUNWATCH_BENCH_REPLICAS', '1')} service process(es)\n")
    print("| scenario | points | seconds | points/s (wall) | points per service CPU-second "
          "| service CPU-s per 1M points | x floor | service RSS MiB |")
    print("|---|---|---|---|---|---|---|---|")
    for name, result in (("100 mixed rules", mixed), ("10 rules, none matching", few),
                         ("1,000 rules, none matching", many)):
        per_cpu = result["points_per_cpu_s"]
        print(f"| {name} | {result['points']:,} | {result['elapsed']:.1f} | {result['points_per_s']:,.0f} | "
              f"{per_cpu:,.0f} | {1e6 / per_cpu if per_cpu else 0:.2f} | "
              f"{base['points_per_cpu_s'] / per_cpu if per_cpu else 0:.1f} | {result['rss_mb']:.0f} |")
    print(f"| floor: orjson + sqlite3 executemany, in-process | {base['points']:,} | | | "
          f"{base['points_per_cpu_s']:,.0f} | {1e6 / base['points_per_cpu_s']:.2f} | 1.0 | |")
    ratio = many["points_per_s"] / few["points_per_s"]
    print(f"\n1,000 vs 10 non-matching rules: {ratio:.2f}x throughput (target: within 20%, i.e. >= 0.80)")
    print(f"\nLatency log() -> webhook, background load {lat['achieved']:,.0f} points/s "
          f"(asked {args.rate:,.0f}), {lat['samples']} samples:")
    print("| p50 ms | p99 ms |\n|---|---|")
    print(f"| {lat['p50_ms']:.1f} | {lat['p99_ms']:.1f} |")


if __name__ == "__main__":
    main()
