"""Downsampled series reads for the run page's charts (the series issue). Prints a table; not a test.

One run with 20 metrics × 100,000 steps in a SQLite store (written through ``Store.apply_records``, as
ingest writes them; a few NaN, ±inf and spikes sprinkled in), then the time of ``Store.series`` calls
at chart width 1000: whole series and a 10 % zoom, on the step and the time axis, and through the HTTP
endpoint of a real service on the same database file. The target is < 50 ms per call.

    python bench/series.py [--steps 100000] [--metrics 20] [--calls 30] [--db PATH] [--no-http]
"""

from __future__ import annotations

import argparse
import asyncio
import math
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from alerts.storage import NewRun, RecordBatch, Store, open_store  # noqa: E402
from bench._service import BenchService  # noqa: E402

BATCH_STEPS = 5_000


async def fill(store: Store, metrics: int, steps: int) -> int:
    run, created = await store.upsert_run(NewRun(project="bench", id="series", name="series", config={}, tags=[],
                                                 notes=None, group=None, job_type=None, started_at=1e9,
                                                 host=None, pid=None), 1e9)
    if not created:
        return run.pk
    rng = random.Random(7)
    seq = 0
    for first in range(0, steps, BATCH_STEPS):
        batch = RecordBatch(first_seq=seq + 1, last_seq=seq + 1)
        for step in range(first, min(steps, first + BATCH_STEPS)):
            at = 1e9 + step * 0.5
            batch.steps.append((step, at, step * 0.5))
            for k in range(metrics):
                batch.points.append((f"train/m{k:02d}", step, at, rng.random()))
        for k in range(metrics):  # the rare values the charts must not average away
            step = first + rng.randrange(len(batch.steps))
            special = [math.nan, math.inf, -math.inf, 1e6][k % 4]
            batch.points.append((f"train/m{k:02d}", step, 1e9 + step * 0.5, special))
        applied, _ = await store.apply_records(run, batch, time.time())
        assert applied
        seq += 1
        run = (await store.get_run("bench", "series")) or run
    return run.pk


def summary(times: list[float]) -> str:
    ms = sorted(t * 1000 for t in times)
    return f"{statistics.median(ms):8.1f} {ms[int(len(ms) * 0.95) - 1]:8.1f} {ms[-1]:8.1f}"


async def store_table(store: Store, run_pk: int, steps: int, calls: int) -> list[tuple[str, str, str]]:
    zoom = (steps * 0.45, steps * 0.55)
    cases: list[tuple[str, str, float | None, float | None]] = [
        ("step, whole", "step", None, None),
        ("step, 10% zoom", "step", *zoom),
        ("time, whole", "time", None, None),
        ("time, 10% zoom", "time", 1e9 + zoom[0] * 0.5, 1e9 + zoom[1] * 0.5),
    ]
    rows = []
    for label, axis, start, end in cases:
        times = []
        data = None
        for i in range(calls):
            key = f"train/m{i % 20:02d}"
            began = time.perf_counter()
            data = await store.series(run_pk, key, x=axis, start=start, end=end, width=1000)  # type: ignore[arg-type]
            times.append(time.perf_counter() - began)
        assert data is not None
        rows.append((f"store  {label}", summary(times), f"{data.mode} {len(data.xs)} cols"))
    return rows


def http_table(db: Path, steps: int, calls: int) -> list[tuple[str, str, str]]:
    service = BenchService({})
    shutil.copy(db, service.dir / "alerts.db")
    service.start()
    try:
        key = service.cli("keys", "create", "--project", "bench")
        headers = {"Authorization": f"Bearer {key}"}
        rows = []
        with httpx.Client(base_url=service.base_url, headers=headers, timeout=30) as client:
            cases: list[tuple[str, dict[str, Any]]] = [
                ("step, whole", {}), ("step, 10% zoom", {"start": steps * 0.45, "end": steps * 0.55}),
                ("time, whole", {"x": "time"})]
            for label, params in cases:
                times = []
                for i in range(calls):
                    began = time.perf_counter()
                    response = client.get("/api/v1/runs/bench/series/series",
                                          params={"key": f"train/m{i % 20:02d}", "width": 1000, **params})
                    times.append(time.perf_counter() - began)
                    response.raise_for_status()
                body = response.json()
                rows.append((f"http   {label}", summary(times), f"{body['mode']} {len(body['xs'])} cols"))
        return rows
    finally:
        service.stop()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--metrics", type=int, default=20)
    parser.add_argument("--calls", type=int, default=30)
    parser.add_argument("--db", type=Path, help="keep the filled database here and reuse it next time")
    parser.add_argument("--no-http", action="store_true")
    args = parser.parse_args()
    db = args.db or Path(tempfile.mkdtemp(prefix="runwatch-series-")) / "alerts.db"
    store = open_store(f"sqlite:///{db}")
    await store.open()
    began = time.perf_counter()
    run_pk = await fill(store, args.metrics, args.steps)
    print(f"{args.metrics} metrics x {args.steps} steps in {db} (filled in {time.perf_counter() - began:.1f} s)\n")
    rows = await store_table(store, run_pk, args.steps, args.calls)
    await store.close()
    if not args.no_http:
        rows += http_table(db, args.steps, args.calls)
    print(f"{'call (width 1000)':<24} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}  answer")
    for label, times, answer in rows:
        print(f"{label:<24} {times}  {answer}")


if __name__ == "__main__":
    asyncio.run(main())
