"""Notification chart rendering (issue 16). Prints a table; not a test.

Runs of 100,000 steps in a SQLite store, written through ``Store.apply_records`` as ingest writes them (a
spike, a NaN and an inf in each series), then, per kind of chart, the time of ``chart_data`` (reading and
downsampling the series, computing the rule's band) and of ``render_png`` (matplotlib, Agg), each alone and
one after the other, and the PNG's size. The target is a p50 of at most 100 ms to render. The CPU time
of the drawing (this process's) is printed too: on a shared machine the wall time also counts the waits
for a core.

Cases: a ``when`` threshold (whole run and the firing enlarged), a ``zscore`` band, a ``change`` band, a
group of 10 runs overlaid, and a ``run_state`` alert (the 4 metrics logged last).

    python bench/charts.py [--steps 100000] [--calls 50] [--db PATH]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from alerts.charts.data import chart_data  # noqa: E402
from alerts.charts.render import render_png  # noqa: E402
from alerts.model import Alert, AlertSource, AlertStatus, Run, Severity  # noqa: E402
from alerts.presentation import alert_object  # noqa: E402
from alerts.rules.loader import Rule, load_rules  # noqa: E402
from alerts.storage import NewRun, RecordBatch, Store, open_store  # noqa: E402

KEYS = ("train/loss", "val/acc", "train/lr", "grad_norm")
GROUP = 10
BATCH_STEPS = 10_000
RULES = """
rules:
  - {name: acc-floor, metric: val/acc, when: "< 0.3"}
  - {name: loss-spike, metric: train/loss, zscore: {window: 50, threshold: 4}}
  - {name: loss-jump, metric: train/loss, change: {window: 20, baseline: 200, by: "50%", direction: increase}}
  - {name: crashed, run_state: [crashed]}
"""


async def fill(store: Store, run_id: str, steps: int, keys: tuple[str, ...], seed: int) -> Run:
    found = await store.get_run("bench", run_id)
    if found is not None:
        return found
    run, _ = await store.upsert_run(NewRun(project="bench", id=run_id, name=f"bench-{run_id}", config={}, tags=[],
                                           notes=None, group=None, job_type=None, started_at=1e9, host=None,
                                           pid=None), 1e9)
    rng = random.Random(seed)
    seq = 0
    for first in range(0, steps, BATCH_STEPS):
        seq += 1
        batch = RecordBatch(first_seq=seq, last_seq=seq)
        for step in range(first, min(steps, first + BATCH_STEPS)):
            at = 1e9 + step * 0.5
            batch.steps.append((step, at, step * 0.5))
            for index, key in enumerate(keys):
                value = 1.0 + index - step / steps + rng.gauss(0, 0.02)
                if step == steps // 3 + index:
                    value = 50.0
                elif step == steps // 2 + index:
                    value = math.nan
                elif step == 2 * steps // 3 + index:
                    value = math.inf
                elif step > steps - 30:
                    value = 0.1 if key == "val/acc" else 5.0
                batch.points.append((key, step, at, value))
        applied, _ = await store.apply_records(run, batch, time.time())
        assert applied
        run = await store.get_run("bench", run_id) or run
    return run


def alert(run: Run, rule: str, metric: str | None, step: int | None) -> dict[str, Any]:
    made = Alert(id=f"{run.id}-{rule}", fingerprint=f"{run.id}-{rule}", source=AlertSource.RULE, project=run.project,
                 title=rule, text="", severity=Severity.WARNING, labels={}, status=AlertStatus.FIRING,
                 starts_at=1e9, rule=rule, run_pk=run.pk, metric=metric, step=step)
    return alert_object(made, run, "http://localhost:8080")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def measure(store: Store, rules: list[Rule], alerts: list[dict[str, Any]],
                  calls: int) -> tuple[list[float], list[float], list[float], int, int]:
    """(chart_data times, render_png times, render_png CPU times, PNG bytes, points drawn)."""
    reads, renders, cpu = [], [], []
    png = b""
    points = 0
    for _ in range(calls):
        began = time.perf_counter()
        data = await chart_data(store, rules, alerts)
        read, read_cpu = time.perf_counter(), time.process_time()
        assert data is not None
        png = render_png(data)
        reads.append(read - began)
        renders.append(time.perf_counter() - read)
        cpu.append(time.process_time() - read_cpu)
        points = sum(len(trace.steps) for panel in data.panels for trace in panel.traces)
    return reads, renders, cpu, len(png), points


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=50)
    parser.add_argument("--db", type=Path, help="keep the filled database here and reuse it next time")
    parser.add_argument("--out", type=Path, help="save each case's PNG in this folder")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="runwatch-charts-"))
    db = args.db or folder / "alerts.db"
    (folder / "rules.yaml").write_text(RULES)
    rules = load_rules([folder / "rules.yaml"]).rules
    store = open_store(f"sqlite:///{db}")
    await store.open()
    began = time.perf_counter()
    main_run = await fill(store, "main", args.steps, KEYS, seed=1)
    group = [main_run] + [await fill(store, f"g{i}", args.steps, ("val/acc",), seed=10 + i) for i in range(1, GROUP)]
    print(f"{len(group)} runs of {args.steps:,} steps ({len(KEYS)} metrics in the first) in {db}, "
          f"filled in {time.perf_counter() - began:.1f} s; load average {os.getloadavg()[0]:.1f} "
          f"on {os.cpu_count()} CPUs\n")
    fired = args.steps - 20
    cases = {
        "when: threshold, firing enlarged": [alert(main_run, "acc-floor", "val/acc", fired)],
        "zscore: band, firing enlarged": [alert(main_run, "loss-spike", "train/loss", fired)],
        "change: band, firing enlarged": [alert(main_run, "loss-jump", "train/loss", fired)],
        f"group of {GROUP} runs overlaid": [alert(run, "acc-floor", "val/acc", fired) for run in group],
        "run_state: 4 last-logged metrics": [alert(main_run, "crashed", None, None)],
    }
    print(f"{args.calls} calls per case; series of {args.steps:,} points each, downsampled by the store\n")
    print("| chart | points drawn | chart_data p50 | p99 | render_png p50 | p99 | (its CPU p50) | together p50 | p99 "
          "| PNG |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for label, alerts in cases.items():
        reads, renders, cpu, size, points = await measure(store, rules, alerts, args.calls)
        together = [read + render for read, render in zip(reads, renders, strict=True)]
        cells = [f"{statistics.median(values) * 1000:.0f} ms | {percentile(values, 0.99) * 1000:.0f} ms"
                 for values in (reads, renders, together)]
        cells.insert(2, f"{statistics.median(cpu) * 1000:.0f} ms")
        print(f"| {label} | {points:,} | {' | '.join(cells)} | {size / 1000:.0f} kB |")
        if args.out:
            args.out.mkdir(parents=True, exist_ok=True)
            data = await chart_data(store, rules, alerts)
            assert data is not None
            (args.out / f"{label.split(':')[0].replace(' ', '-')}.png").write_bytes(render_png(data))
    await store.close()


if __name__ == "__main__":
    asyncio.run(main())
