"""What ``runwatch.watch(model)`` costs a training step. Prints a table; not a test.

A small CNN (2 conv + 2 linear layers, ~0.6 M parameters) on MNIST-sized random input (batch 64, 1x28x28,
10 classes), on CPU. One training step = forward, cross-entropy, backward, SGD step, ``run.log({"loss":
...})``, each step timed alone with ``time.perf_counter``. Everything runs in one online run against a real
``alerts serve`` that the benchmark starts, so the SDK's sender really ships the norms while steps are timed.

Each mode trains its own copy of the model (same weights, same data), watched once with that mode's
options before timing starts (one more unwatched copy shows the noise floor). The modes take turns in
blocks of ``--round-steps`` steps (a multiple of the log frequency, so every block of a watched mode holds
the same share of log points; who goes first rotates every round), so the sender's and the service's work
for a block's norms mostly lands in that block, and a busy machine's drift falls on all modes alike.
Columns: the median and p95 step; the mean step; "overhead (mean)": the median over rounds of a block's
total time against the unwatched model's block of the same round, which carries the log points' cost but
not a round that a neighbour's process spoiled; "overhead (median)": of the median steps; "log point": the
median extra time of the steps that computed and logged the norms, against the unwatched model's median
step of the same round.

    python bench/watch.py [--rounds 10] [--round-steps 100] [--batch 64] [--threads 1]
"""

from __future__ import annotations

import argparse
import copy
import os
import shutil
import statistics
import sys
import time
from pathlib import Path
from typing import Any

_REPO = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(_REPO), str(_REPO / "sdk")]
from bench._service import _REPO_PATH, BenchService  # noqa: E402

PROJECT = "bench"

# (label, watch keyword arguments or None for no watch)
MODES: list[tuple[str, dict[str, Any] | None]] = [
    ("no watch", None),
    ("no watch, second copy (the noise floor)", None),
    ('watch(log="all", log_freq=100)', {"log": "all", "log_freq": 100}),
    ('watch(log="all", log_freq=100, histograms=True)', {"log": "all", "log_freq": 100, "histograms": True}),
    ('watch(log="all", log_freq=1)  (every step)', {"log": "all", "log_freq": 1}),
]


def make_model(torch: Any) -> Any:
    nn = torch.nn
    return nn.Sequential(
        nn.Conv2d(1, 16, 3), nn.ReLU(),
        nn.Conv2d(16, 32, 3), nn.ReLU(), nn.MaxPool2d(2),
        nn.Flatten(),
        nn.Linear(32 * 12 * 12, 128), nn.ReLU(),
        nn.Linear(128, 10),
    )


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--round-steps", type=int, default=100, help="steps per mode per round (a multiple of 100)")
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads (0: torch's default)")
    args = parser.parse_args()
    if args.round_steps % 100:
        parser.error("--round-steps must be a multiple of 100 (the log frequency)")

    import torch

    if args.threads:
        torch.set_num_threads(args.threads)
    os.environ["PYTHONPATH"] = _REPO_PATH  # the `alerts keys` CLI runs this checkout's service too
    service = BenchService({}).start()
    try:
        key = service.cli("keys", "create", "--project", PROJECT)
        os.environ.update(RUNWATCH_BASE_URL=service.base_url, RUNWATCH_API_KEY=key,
                          RUNWATCH_DIR=str(service.dir / "runs"), RUNWATCH_SYSTEM_METRICS="0")
        for name in ("RUNWATCH_MODE", "RUNWATCH_PROJECT"):
            os.environ.pop(name, None)
        import runwatch

        torch.manual_seed(0)
        x = torch.randn(args.batch, 1, 28, 28)
        y = torch.randint(0, 10, (args.batch,))
        first = make_model(torch)
        run = runwatch.init(project=PROJECT, name="bench-watch")
        trainers = []
        for i, (label, options) in enumerate(MODES):
            model = copy.deepcopy(first)
            if options is not None:
                run.watch(model, idx=i, **options)
            trainers.append((label, model, torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)))

        def step(model: Any, opt: Any) -> float:
            t0 = time.perf_counter()
            opt.zero_grad(set_to_none=True)
            loss = torch.nn.functional.cross_entropy(model(x), y)
            loss.backward()
            opt.step()
            run.log({"loss": loss.item()})
            return time.perf_counter() - t0

        # Warm-up: one round each, which also takes every watch past its first (discovery) backward pass.
        for _, model, opt in trainers:
            for _ in range(args.round_steps):
                step(model, opt)
        times: dict[str, list[float]] = {label: [] for label, _ in MODES}
        started = time.perf_counter()
        for r in range(args.rounds):
            shift = r % len(trainers)  # each mode goes first, second, ... in turn
            for label, model, opt in trainers[shift:] + trainers[:shift]:
                times[label].extend(step(model, opt) for _ in range(args.round_steps))
        wall = time.perf_counter() - started
        flushed = run._flush(60.0)
        run.finish()
    finally:
        service.stop()
        shutil.rmtree(service.dir, ignore_errors=True)

    params = sum(p.numel() for p in first.parameters())
    print()
    print(f"watch() overhead per training step: small CNN ({params:,} parameters in {len(list(first.parameters()))} "
          f"tensors), batch {args.batch}x1x28x28, CPU, torch {torch.__version__}, {torch.get_num_threads()} "
          f"thread(s), {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at the end")
    print(f"one online run against a local `alerts serve` (the sender shipping while timed; all delivered at the "
          f"end: {flushed}); {args.rounds} rounds of one {args.round_steps}-step block per mode, {wall:.0f} s")
    print(f"{'mode':48} {'steps':>6} {'median ms':>10} {'p95 ms':>7} {'mean ms':>8} {'overhead (mean)':>16} "
          f"{'overhead (median)':>18} {'log point ms':>13}")
    base_label = MODES[0][0]
    base_median = statistics.median(times[base_label])
    base = times[base_label]
    for label, options in MODES:
        t = times[label]
        median = statistics.median(t)
        if t is base:
            over_mean = over_median = at_log = ""
        else:
            n = args.round_steps
            ratios = [sum(t[i:i + n]) / sum(base[i:i + n]) for i in range(0, len(t), n)]
            over_mean = f"{(statistics.median(ratios) - 1) * 100:+.1f} %"
            over_median = f"{(median / base_median - 1) * 100:+.1f} %"
            freq = options["log_freq"] if options else args.round_steps
            # Timed step k is backward pass round_steps + k + 1 of its model (after the warm-up round); it is
            # compared with the unwatched model's median step of the same round.
            medians = [statistics.median(base[i:i + n]) for i in range(0, len(base), n)]
            extra = [v - medians[k // n] for k, v in enumerate(t) if (k + 1) % freq == 0]
            at_log = f"{statistics.median(extra) * 1e3:+.3f}"
        print(f"{label:48} {len(t):>6} {median * 1e3:>10.3f} {pct(t, 0.95) * 1e3:>7.3f} "
              f"{statistics.fmean(t) * 1e3:>8.3f} {over_mean:>16} {over_median:>18} {at_log:>13}")


if __name__ == "__main__":
    main()
