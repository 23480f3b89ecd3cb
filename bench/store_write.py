"""Store writes: ``Store.apply_records`` of 600,000 points (30,000 steps x 20 metrics, 1,000-step batches).

Prints one table row (wall time, CPU of this process, points/s) on SQLite. Not a test. It uses only store
APIs older than the metric blocks, so a copy of it also runs on earlier commits:

    cp bench/store_write.py /tmp/ && ../shared/tools/ab-bench -n 4 BASE -- python /tmp/store_write.py
"""

from __future__ import annotations

import asyncio
import os
import random
import sys
import tempfile
import time

sys.path.insert(0, os.getcwd())  # the tree the command runs in (ab-bench runs each tree in its folder)
from alerts.storage import NewRun, RecordBatch, open_store  # noqa: E402

STEPS, METRICS, BATCH = 30_000, 20, 1_000


async def main() -> None:
    store = open_store(f"sqlite:///{tempfile.mkdtemp()}/bench.db")
    await store.open()
    run, _ = await store.upsert_run(NewRun(project="b", id="r", name="r", config={}, tags=[], notes=None, group=None,
                                           job_type=None, started_at=1e9, host=None, pid=None), 1e9)
    rng = random.Random(1)
    began, cpu = time.perf_counter(), time.process_time()
    for seq, first in enumerate(range(0, STEPS, BATCH), start=1):
        batch = RecordBatch(first_seq=seq, last_seq=seq)
        for step in range(first, first + BATCH):
            batch.steps.append((step, 1e9 + step, float(step)))
            batch.points.extend((f"m{k:02d}", step, 1e9 + step, rng.random()) for k in range(METRICS))
        applied, _ = await store.apply_records(run, batch, time.time())
        assert applied
        run = await store.get_run("b", "r") or run
    wall, cpu = time.perf_counter() - began, time.process_time() - cpu
    points = STEPS * METRICS
    print(f"| apply_records {points:,} points | {wall:.2f} s wall | {cpu:.2f} s CPU (this process) "
          f"| {points / wall:,.0f} points/s |")
    await store.close()


if __name__ == "__main__":
    asyncio.run(main())
