"""Service memory (issue 11, item 4): RSS with 10,000 live runs x 20 metrics, and over a replayed hour.

Phase 1 opens ``--live-runs`` runs and sends each one SDK batch (10 steps x 20 metrics), so every run has
its rule state (100 mixed rules of ``bench/ingest.py``); RSS is read before and after. Phase 2 replays an
hour of logging (one step per second: 360 batches per run) for ``--replay-runs`` of them, round-robin,
reading RSS every 10% of the way: it must stay flat (rule windows are bounded; nothing grows per point).

    python bench/memory.py [--live-runs 10000] [--replay-runs 100] [--steps 3600]
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

import httpx
import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._service import BenchService  # noqa: E402
from bench.ingest import METRICS, STEPS_PER_BATCH, make_body, mixed_rules  # noqa: E402


def _post_all(service: BenchService, headers: dict[str, str], jobs: list[tuple[str, int]], clients: int = 4) -> None:
    """Post ``(run, batch number)`` jobs from ``clients`` threads, each thread's share in order."""
    def work(mine: list[tuple[str, int]]) -> None:
        with httpx.Client(base_url=service.base_url, headers=headers, timeout=120) as client:
            for run, batch in mine:
                step = batch * STEPS_PER_BATCH
                client.post(f"/api/v1/runs/bench/{run}/records", content=make_body(step, step)).raise_for_status()

    threads = [threading.Thread(target=work, args=(jobs[i::clients],)) for i in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--live-runs", type=int, default=10_000)
    parser.add_argument("--replay-runs", type=int, default=100)
    parser.add_argument("--steps", type=int, default=3600, help="steps per replayed run (one per second: an hour)")
    args = parser.parse_args()

    # Live runs stay live: those not replayed send nothing for the whole replay, which is no crash here.
    service = BenchService({"channels": {"console": {"type": "console"}}, "runs": {"heartbeat_timeout": 86_400}},
                           mixed_rules(100)).start()
    try:
        process = psutil.Process(service.process.pid)  # type: ignore[union-attr]
        key = service.cli("keys", "create", "--project", "bench")
        headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        runs = [f"run{i}" for i in range(args.live_runs)]
        rss = {"started": process.memory_info().rss}
        with httpx.Client(base_url=service.base_url, headers=headers, timeout=120) as client:
            for run in runs:
                client.post("/api/v1/runs", json={"project": "bench", "id": run}).raise_for_status()
        rss["runs opened"] = process.memory_info().rss
        _post_all(service, headers, [(run, 0) for run in runs])
        rss[f"{args.live_runs:,} runs x {len(METRICS)} metrics live"] = process.memory_info().rss

        replayed = runs[:args.replay_runs]
        batches = args.steps // STEPS_PER_BATCH
        jobs = [(run, batch) for batch in range(1, batches) for run in replayed]
        tenth = max(1, len(jobs) // 10)
        samples: list[tuple[int, float, int]] = []
        started = time.monotonic()
        for part in range(0, len(jobs), tenth):
            _post_all(service, headers, jobs[part:part + tenth])
            points = (part + len(jobs[part:part + tenth])) * STEPS_PER_BATCH * len(METRICS)
            samples.append((points, time.monotonic() - started, process.memory_info().rss))
    finally:
        service.stop()

    mib = 2**20
    print(f"\nService RSS, 100 mixed rules, SQLite ({len(METRICS)} metrics per run)\n")
    print("| moment | RSS MiB |\n|---|---|")
    for moment, value in rss.items():
        print(f"| {moment} | {value / mib:.0f} |")
    live = list(rss.values())[-1]
    per_run = (live - rss["runs opened"]) / args.live_runs
    print(f"\nrule state per live run: {per_run / 1024:.1f} KiB ({per_run / len(METRICS) / 1024:.2f} KiB per metric, "
          "all its rules' series together)")
    print(f"\nReplay: {args.replay_runs} runs x {args.steps:,} steps (an hour at one step per second), "
          f"{batches - 1} batches each\n")
    print("| points replayed | seconds | RSS MiB | vs start of replay |\n|---|---|---|---|")
    for points, seconds, value in samples:
        print(f"| {points:,} | {seconds:.0f} | {value / mib:.0f} | {value / live:.3f}x |")
    growth = (samples[-1][2] - samples[0][2]) / mib
    print(f"\nRSS from the first to the last tenth of the replay: {growth:+.1f} MiB")


if __name__ == "__main__":
    main()
