"""SDK hot-path benchmark: what ``run.log({...})`` costs the training loop. Prints tables; not a test.

Per-call cost of ``run.log({"acc": a, "loss": l, "epoch": e})`` in one online run while a local
``alerts serve`` process receives and the sender ships concurrently, beside a bare
``queue.SimpleQueue().put`` of the same dict (the floor for handing a record to another thread) and beside
``wandb`` ``run.log`` in offline mode (run in a child process so the two SDKs' console and signal hooks do
not meet; ``pip install wandb`` to include it). The headline figure is the tight loop: the wall time of
``--calls`` calls that each build a fresh dict, divided by the calls (what the training loop feels,
including the GIL time the sender takes from it). Beside it, every call timed on its own with
``time.perf_counter_ns`` (the cost of an empty timer pair subtracted): median, p99, mean. gc is disabled
while timing. Also: how long ``finish()`` takes to flush 100,000 freshly logged steps, and
the idle-link shipping latency from ``log()`` to the row being readable from the service's history API.

    python bench/sdk_log.py [--calls 100000] [--repeats 7] [--wandb-calls 10000]
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import queue
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._service import BenchService  # noqa: E402

PROJECT = "bench"
Values = list[tuple[float, float, int]]


def make_values(count: int, seed: int = 0) -> Values:
    rng = random.Random(seed)
    return [(rng.random(), rng.random() * 3, i) for i in range(count)]


def timer_overhead_ns(samples: int = 200_000) -> int:
    pc = time.perf_counter_ns
    out = []
    for _ in range(samples):
        t0 = pc()
        t1 = pc()
        out.append(t1 - t0)
    out.sort()
    return out[len(out) // 2]


def time_calls(make_call: Callable[[], Callable[..., Any]], values: Values,
               repeats: int) -> tuple[list[int], list[float]]:
    """Each repeat: one pass timing every ``call(dict)`` alone (ns, timer pair included), then one tight
    pass timed as a whole, building each dict included (ns per call). ``make_call()`` gives the callable
    of each repeat."""
    pc = time.perf_counter_ns
    samples: list[int] = []
    loops: list[float] = []
    append = samples.append
    for _ in range(repeats):
        call = make_call()
        gc.collect()
        gc.disable()
        try:
            for a, loss, e in values:
                d = {"acc": a, "loss": loss, "epoch": e}
                t0 = pc()
                call(d)
                t1 = pc()
                append(t1 - t0)
            t0 = pc()
            for a, loss, e in values:
                call({"acc": a, "loss": loss, "epoch": e})
            t1 = pc()
        finally:
            gc.enable()
        loops.append((t1 - t0) / len(values))
    return samples, loops


def dict_build_us(values: Values, repeats: int) -> float:
    """µs per iteration of the tight loop without the call: building the dict (median of repeats)."""
    pc = time.perf_counter_ns
    loops = []
    for _ in range(repeats):
        gc.disable()
        try:
            t0 = pc()
            for a, loss, e in values:
                _ = {"acc": a, "loss": loss, "epoch": e}
            loops.append((pc() - t0) / len(values) / 1e3)
        finally:
            gc.enable()
    return sorted(loops)[len(loops) // 2]


def summarize(timed: tuple[list[int], list[float]], overhead: int) -> dict[str, float]:
    samples, loops = timed
    ordered = sorted(max(0, s - overhead) for s in samples)
    n = len(ordered)
    return {"calls": n, "median_us": ordered[n // 2] / 1e3, "p99_us": ordered[min(n - 1, (n * 99) // 100)] / 1e3,
            "mean_us": sum(ordered) / n / 1e3, "loop_us": sorted(loops)[len(loops) // 2] / 1e3}


# -- wandb, in a child process --------------------------------------------------------------------------
def wandb_child(calls: int, repeats: int) -> None:
    """Print one JSON line with wandb's per-call stats (offline mode, default settings otherwise)."""
    import wandb

    workdir = tempfile.mkdtemp(prefix="runwatch-bench-wandb-")
    run = wandb.init(project=PROJECT, mode="offline", dir=workdir)
    overhead = timer_overhead_ns()
    samples = time_calls(lambda: run.log, make_values(calls), repeats)
    run.finish()
    shutil.rmtree(workdir, ignore_errors=True)
    stats = summarize(samples, overhead)
    print("WANDB_RESULT " + json.dumps({**stats, "version": wandb.__version__}), flush=True)


def measure_wandb(calls: int, repeats: int) -> tuple[dict[str, Any] | None, str]:
    """wandb's stats, or (None, why not)."""
    probe = subprocess.run([sys.executable, "-c", "import wandb; print(wandb.__version__)"],
                           capture_output=True, text=True)
    if probe.returncode != 0:
        last = (probe.stderr.strip().splitlines() or ["import failed"])[-1]
        return None, f"wandb is not importable ({last}); `pip install wandb` to compare"
    env = {**os.environ, "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    result = subprocess.run([sys.executable, __file__, "--wandb-child", "--wandb-calls", str(calls),
                             "--repeats", str(repeats)], capture_output=True, text=True, env=env)
    for line in result.stdout.splitlines():
        if line.startswith("WANDB_RESULT "):
            return json.loads(line.removeprefix("WANDB_RESULT ")), ""
    tail = (result.stderr.strip().splitlines() or [f"exit code {result.returncode}"])[-1]
    return None, f"wandb child process failed: {tail}"


# -- runwatch against the service -----------------------------------------------------------------------
def get_json(client: httpx.Client, path: str) -> Any:
    response = client.get(path)
    response.raise_for_status()
    return response.json()


def wait_stored(client: httpx.Client, run_id: str, last_step: int, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        response = client.get(f"/api/v1/runs/{PROJECT}/{run_id}/history?after_step={last_step - 1}&limit=1")
        if response.status_code != 404:  # 404: the sender has not created the run yet
            response.raise_for_status()
            rows = response.json()["rows"]
            if rows and rows[0]["_step"] == last_step:
                return
        time.sleep(0.05)
    raise RuntimeError(f"step {last_step} of run {run_id} not stored within {timeout}s")


def shipping_latency(runwatch: Any, client: httpx.Client, samples: int, spacing: float) -> tuple[str, list[float]]:
    """Seconds from ``log()`` to the row being readable via the history API, on an otherwise idle link."""
    run = runwatch.init(project=PROJECT, name="bench-latency")
    run.log({"warmup": 0})
    wait_stored(client, run.id, 0)
    latencies = []
    for i in range(1, samples + 1):
        time.sleep(spacing)
        t0 = time.perf_counter()
        run.log({"probe": i})
        path = f"/api/v1/runs/{PROJECT}/{run.id}/history?after_step={i - 1}&limit=1"
        while True:
            rows = get_json(client, path)["rows"]
            if rows and rows[0]["_step"] == i:
                break
        latencies.append(time.perf_counter() - t0)
    run.finish()
    return run.id, latencies


def poll_cost(client: httpx.Client, run_id: str, samples: int) -> list[float]:
    """Seconds one history GET for a stored row takes: the resolution of the latency measurement."""
    out = []
    for _ in range(samples):
        t0 = time.perf_counter()
        get_json(client, f"/api/v1/runs/{PROJECT}/{run_id}/history?after_step=0&limit=1")
        out.append(time.perf_counter() - t0)
    return out


def finish_flush(runwatch: Any, client: httpx.Client, steps: int) -> tuple[float, float]:
    """(seconds of the log loop, seconds ``finish()`` takes) for ``steps`` freshly logged steps."""
    run = runwatch.init(project=PROJECT, name=f"bench-finish-{steps}")
    values = make_values(steps, seed=1)
    t0 = time.perf_counter()
    for a, loss, e in values:
        run.log({"acc": a, "loss": loss, "epoch": e})
    t1 = time.perf_counter()
    run.finish()
    t2 = time.perf_counter()
    wait_stored(client, run.id, steps - 1, timeout=5)  # finish returned: everything must already be stored
    return t1 - t0, t2 - t1


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--calls", type=int, default=100_000, help="calls per repeat (runwatch, SimpleQueue)")
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--wandb-calls", type=int, default=10_000,
                        help="calls per repeat for wandb (~150 µs each, so fewer by default)")
    parser.add_argument("--flush-steps", type=int, default=100_000)
    parser.add_argument("--latency-samples", type=int, default=50)
    parser.add_argument("--wandb-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.wandb_child:
        wandb_child(args.wandb_calls, args.repeats)
        return

    wandb_stats, wandb_why = measure_wandb(args.wandb_calls, args.repeats)

    service = BenchService({}).start()
    try:
        key = service.cli("keys", "create", "--project", PROJECT)
        # The timed run logs far faster than one service ingests: finish() must be allowed to drain it all.
        os.environ.update(RUNWATCH_BASE_URL=service.base_url, RUNWATCH_API_KEY=key,
                          RUNWATCH_DIR=str(service.dir / "runs"), RUNWATCH_FINISH_TIMEOUT="600")
        for name in ("RUNWATCH_MODE", "RUNWATCH_PROJECT"):
            os.environ.pop(name, None)
        import runwatch

        client = httpx.Client(base_url=service.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=30)
        overhead = timer_overhead_ns()
        values = make_values(args.calls)

        # A new queue per repeat, so one repeat's 100k dicts are freed before the next.
        simple = summarize(time_calls(lambda: queue.SimpleQueue().put, values, args.repeats), overhead)
        dict_us = dict_build_us(values, args.repeats)

        run = runwatch.init(project=PROJECT, name="bench-log")
        run.log({"acc": 0.0, "loss": 0.0, "epoch": -1})  # connect before timing
        wait_stored(client, run.id, 0)
        rw = summarize(time_calls(lambda: run.log, values, args.repeats), overhead)
        logged = 1 + 2 * args.calls * args.repeats
        t_finish = time.perf_counter()
        run.finish()
        finish_after_timing = time.perf_counter() - t_finish
        wait_stored(client, run.id, logged - 1, timeout=5)

        loop_s, flush_s = finish_flush(runwatch, client, args.flush_steps)
        latency_run, latencies = shipping_latency(runwatch, client, args.latency_samples, 0.05)
        polls = poll_cost(client, latency_run, 50)
        client.close()
    finally:
        service.stop()
        shutil.rmtree(service.dir, ignore_errors=True)  # the timed run's spool alone is ~100 MB

    print()
    print(f'run.log({{"acc": a, "loss": l, "epoch": e}}) per call, gc disabled. tight loop: wall time of '
          f"{args.calls:,} calls each building a fresh dict, / calls (median of {args.repeats} repeats; building "
          f"the dict alone takes {dict_us:.3f} µs). median/p99/mean: each call timed alone (the empty "
          f"perf_counter_ns pair, {overhead} ns, subtracted)")
    print(f"{'':38} {'tight loop µs':>14} {'median µs':>10} {'p99 µs':>9} {'mean µs':>9} {'calls':>9}")

    def row(label: str, stats: dict[str, Any]) -> None:
        print(f"{label:38} {stats['loop_us']:>14.3f} {stats['median_us']:>10.3f} {stats['p99_us']:>9.3f} "
              f"{stats['mean_us']:>9.3f} {stats['calls']:>9,}")

    row("queue.SimpleQueue().put (same dict)", simple)
    row("runwatch run.log (online, service up)", rw)
    if wandb_stats is not None:
        row(f"wandb {wandb_stats['version']} run.log (offline)", wandb_stats)
    else:
        print(f"{'wandb run.log (offline)':38} {'n/a':>14} {'n/a':>10} {'n/a':>9} {'n/a':>9} {'n/a':>9}   "
              f"{wandb_why}")

    def ratio(field: str) -> str:
        rw_simple = f"{rw[field] / simple[field]:.0f}x" if simple[field] > 0 else "inf"
        wb_rw = f"{wandb_stats[field] / rw[field]:.0f}x" if wandb_stats and rw[field] > 0 else "n/a"
        return f"runwatch / SimpleQueue = {rw_simple}, wandb / runwatch = {wb_rw}"

    print(f"ratios of tight loops: {ratio('loop_us')}   (targets: <= 3 µs and <= 10x SimpleQueue, wandb >= 100x)")
    print(f"ratios of medians:     {ratio('median_us')}")
    print()
    print(f"finish() after the timed run ({logged:,} steps, logged faster than the service ingests, so "
          f"mostly from the disk spool): {finish_after_timing:.1f} s")
    print(f"finish() flushing {args.flush_steps:,} freshly logged steps: {flush_s:.2f} s "
          f"(the log loop before it took {loop_s:.2f} s; every step stored when finish returned)")
    print(f"idle-link shipping latency, log() -> row readable via GET .../history "
          f"({len(latencies)} samples, 50 ms apart): p50 {pct(latencies, 0.5) * 1e3:.1f} ms, "
          f"p90 {pct(latencies, 0.9) * 1e3:.1f} ms, max {max(latencies) * 1e3:.1f} ms; "
          f"one history GET alone takes p50 {pct(polls, 0.5) * 1e3:.1f} ms")


if __name__ == "__main__":
    main()
