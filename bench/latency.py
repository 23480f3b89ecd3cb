"""Crossing → webhook latency benchmark (issue 11). Prints tables; not part of the test suite.

A real ``alerts serve`` (SQLite, outbox persisted before the send) with one webhook channel pointing
at a receiver in this process (stdlib HTTP server on loopback, recording each arrival), a threshold
rule and ``group_wait: 0``. The SDK runs in this process. For each sample the time is taken just
before ``run.log({...})`` (a value that crosses the threshold: a new series, so a new group) or
``run.alert(...)``, and the sample ends when the webhook arrives; the next starts 30-80 ms later.
Measured with the service idle, and under background load: a separate process posting SDK-shaped
batches (``--rate`` points/s, bounded by ``--load-seconds``) that match no firing rule.

The floor: two sequential loopback HTTP requests made with the same clients as the real path, a POST
with the SDK's transport for the URL (``open_transport``: the SDK → service leg) and then one with the
service's webhook client (``HttpSender``), from the first request's start to the second's arrival at
the same receiver.

    python bench/latency.py [--samples 200] [--rate 50000] [--load-seconds 60]

Before/after: ``ab-bench`` runs the command inside each tree, and the base tree may predate this
file, so give its absolute path; the service and SDK measured are those of the working directory's
tree (``--tree`` overrides):

    /work/shared/tools/ab-bench -n 3 25e959d -- python /work/main/bench/latency.py
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

_HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(_HERE))
from bench import _service  # noqa: E402

METRICS = [f"train/m{i}" for i in range(18)] + ["train/loss", "val/acc"]
STEPS_PER_BATCH = 10  # one SDK batch: 10 committed steps of 20 metrics = 200 points


class _Server(ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True


class Receiver:
    """Loopback webhook receiver: the arrival time (``time.time()``) of each alert title."""

    def __init__(self) -> None:
        self.port = _service.free_port()
        self.url = f"http://127.0.0.1:{self.port}/"
        self._arrivals: dict[str, float] = {}
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, as the service's sender expects

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                now = time.time()
                probe = self.headers.get("X-Probe")
                keys = [probe] if probe else [a["title"] for a in json.loads(body).get("alerts", [])]
                with receiver._cond:
                    for key in keys:
                        receiver._arrivals.setdefault(key, now)
                    receiver._cond.notify_all()
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, key: str, timeout: float) -> float | None:
        deadline = time.monotonic() + timeout
        with self._cond:
            while key not in self._arrivals:
                left = deadline - time.monotonic()
                if left <= 0:
                    return None
                self._cond.wait(left)
            return self._arrivals[key]


def percentiles(values: list[float]) -> tuple[float, float, float]:
    ordered = sorted(values)
    if not ordered:
        return float("nan"), float("nan"), float("nan")
    p99 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))]
    return statistics.median(ordered), p99, ordered[-1]


def floor(receiver: Receiver, samples: int) -> list[float]:
    """Two sequential loopback POSTs: the SDK's transport, then the webhook channel's client."""
    from alerts.notify.channels.http_sender import HttpSender

    try:
        from runwatch.transport import open_transport
    except ImportError:  # a tree from before open_transport: its SDK always used httpx
        from runwatch.transport import HttpTransport as open_transport  # type: ignore[attr-defined,no-redef]

    loop = asyncio.new_event_loop()
    sender = HttpSender(receiver.url, timeout=10.0)
    transport = open_transport(receiver.url, "floor-key", 10.0)
    hook = json.dumps({"version": "1", "status": "firing", "alerts": []}).encode()
    out = []
    for i in range(samples + 10):  # the first ten open connections and warm up
        body = json.dumps({"alerts": [{"title": f"floor-a{i}"}]}).encode()  # the receiver keys on titles
        started = time.time()
        transport.request("POST", "/", body)
        loop.run_until_complete(sender.post(content=hook, headers={
            "X-Probe": f"floor-b{i}", "Content-Type": "application/json"}))
        arrived = receiver.wait(f"floor-b{i}", 10)
        if i >= 10 and arrived is not None:
            out.append((arrived - started) * 1000)
        time.sleep(0.005)
    transport.close()
    loop.run_until_complete(sender.aclose())
    loop.close()
    return out


def measure(run: Any, receiver: Receiver, samples: int, kind: str, tag: str, rng: random.Random) -> list[float]:
    out = []
    for i in range(samples):
        time.sleep(rng.uniform(0.03, 0.08))
        key = f"{tag}.{i}"
        started = time.time()
        if kind == "log":
            run.log({key: 1.0})  # crosses "> 0.5": a new series in a group of its own
        else:
            run.alert(title=key, text="latency probe", wait_duration=0)
        arrived = receiver.wait(key, 10)
        if arrived is not None:
            out.append((arrived - started) * 1000)
    return out


LOAD = """
import json, sys, threading, time, httpx
url, key, rate, seconds, runs = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
metrics = json.loads(sys.argv[6])
per_post = 10 * len(metrics)
posts = int(rate * seconds / per_post) + 1
bodies = []
for n in range(posts):
    run, base = n % runs, (n // runs) * 10
    records = [{"seq": base + s + 1, "type": "history", "step": base + s, "timestamp": time.time(),
                "runtime": 0.0, "data": {m: ((base + s) % 97) / 97.0 for m in metrics}} for s in range(10)]
    bodies.append((f"load{run}", json.dumps({"records": records}).encode()))
interval = per_post / rate
start = time.monotonic()
deadline = start + seconds
sent, lock, cursor = [0], threading.Lock(), [0]
stop = threading.Event()
threading.Thread(target=lambda: (sys.stdin.read(), stop.set()), daemon=True).start()  # EOF: stop
print("ready", flush=True)
def worker():
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    with httpx.Client(base_url=url, headers=headers, timeout=30) as client:
        while True:
            with lock:
                n = cursor[0]
                cursor[0] += 1
            if n >= len(bodies):
                return
            due = start + n * interval
            now = time.monotonic()
            if now > deadline or stop.is_set():
                return
            if due > now:
                time.sleep(due - now)
            run, body = bodies[n]
            client.post(f"/api/v1/runs/bench/{run}/records", content=body)
            with lock:
                sent[0] += per_post
threads = [threading.Thread(target=worker) for _ in range(4)]
for t in threads: t.start()
for t in threads: t.join()
print(f"sent {sent[0]} {time.monotonic() - start}", flush=True)
"""


def phase(args: argparse.Namespace, tree: Path, receiver: Receiver, *, load: bool) -> dict[str, Any]:
    rules = [{"name": "probe-high", "metric": "probe*", "when": "> 0.5", "severity": "warning",
              "title": "{{ metric }}", "text": "{{ metric }} = {{ value }}"},
             {"name": "loss-huge", "metric": "train/loss", "when": "> 1e9"}]
    service = _service.BenchService({
        "channels": {"hook": {"type": "webhook", "url": receiver.url}},
        # every label groups: each crossing and each alert() is a group of its own, sent after group_wait 0
        "defaults": {"channels": ["hook"], "group_wait": "0s", "group_by": ["..."], "send_resolved": False},
    }, rules).start()
    loader: subprocess.Popen[str] | None = None
    try:
        key = service.cli("keys", "create", "--project", "bench")
        os.environ.update({"RUNWATCH_BASE_URL": service.base_url, "RUNWATCH_API_KEY": key,
                           "RUNWATCH_DIR": str(service.dir / "sdk"), "RUNWATCH_PROJECT": "bench"})
        achieved = float("nan")
        if load:
            with httpx.Client(base_url=service.base_url, headers={"Authorization": f"Bearer {key}"},
                              timeout=60) as client:
                for i in range(args.load_runs):
                    client.post("/api/v1/runs", json={"project": "bench", "id": f"load{i}"}).raise_for_status()
            loader = subprocess.Popen(
                [sys.executable, "-c", LOAD, service.base_url, key, str(args.rate), str(args.load_seconds),
                 str(args.load_runs), json.dumps(METRICS)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
            assert loader.stdout is not None
            loader.stdout.readline()  # bodies built; posting starts now
            time.sleep(1.0)  # reach the steady state
        import runwatch

        rng = random.Random(11)
        run = runwatch.init(project="bench", id=f"probe-{'load' if load else 'idle'}", name="probe")
        try:
            run.log({"warmup": 0.0})
            run.alert(title="warmup", text="warmup", wait_duration=0)
            receiver.wait("warmup", 10)
            tag = "load" if load else "idle"
            logs = measure(run, receiver, args.samples, "log", f"probe-{tag}-log", rng)
            alerts = measure(run, receiver, args.samples, "alert", f"probe-{tag}-alert", rng)
        finally:
            run.finish()
        if loader is not None:
            out, _ = loader.communicate(timeout=60)  # closes its stdin: it stops and reports
            sent = [line for line in out.splitlines() if line.startswith("sent ")]
            if sent:
                points, seconds = sent[-1].split()[1:]
                achieved = int(points) / float(seconds)
        return {"log": logs, "alert": alerts, "achieved": achieved}
    finally:
        if loader is not None and loader.poll() is None:
            loader.kill()
            loader.wait()
        service.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--rate", type=float, default=50_000, help="background load, points/s")
    parser.add_argument("--load-seconds", type=float, default=60.0, help="upper bound of the load phase")
    parser.add_argument("--load-runs", type=int, default=50)
    parser.add_argument("--no-load", action="store_true")
    parser.add_argument("--tree", type=Path, default=None,
                        help="the checkout whose service and SDK are measured (default: the working "
                             "directory if it is one, else this file's)")
    args = parser.parse_args()
    tree = args.tree or (Path.cwd() if (Path.cwd() / "alerts").is_dir() else _HERE)
    tree = tree.resolve()
    # The service process and this one import the tree under test.
    _service._REPO_PATH = os.pathsep.join(  # type: ignore[attr-defined]
        [str(tree), str(tree / "sdk"), *filter(None, [os.environ.get("PYTHONPATH")])])
    sys.path[:0] = [str(tree), str(tree / "sdk")]

    receiver = Receiver()
    floor_ms = floor(receiver, args.samples)
    idle = phase(args, tree, receiver, load=False)
    loaded = None if args.no_load else phase(args, tree, receiver, load=True)

    print(f"\ntree {tree}; webhook channel, SQLite outbox + notification log, group_wait 0, "
          f"{args.samples} samples each\n")
    print("| path | service | samples | p50 ms | p99 ms | max ms |")
    print("|---|---|---|---|---|---|")
    rows: list[tuple[str, str, list[float]]] = [("floor: SDK-transport POST + webhook-client POST", "-", floor_ms)]
    rows += [("log() crossing -> webhook", "idle", idle["log"]), ("alert() -> webhook", "idle", idle["alert"])]
    if loaded is not None:
        load_label = f"{loaded['achieved']:,.0f} points/s"
        rows += [("log() crossing -> webhook", load_label, loaded["log"]),
                 ("alert() -> webhook", load_label, loaded["alert"])]
    for name, service, values in rows:
        p50, p99, worst = percentiles(values)
        print(f"| {name} | {service} | {len(values)} | {p50:.1f} | {p99:.1f} | {worst:.1f} |")
    floor_p50 = percentiles(floor_ms)[0]
    idle_p50 = percentiles(idle["log"])[0]
    print(f"\nidle log() p50 / floor p50: {idle_p50 / floor_p50:.1f}x (target: within 3x)")
    if loaded is not None:
        print(f"background load asked {args.rate:,.0f} points/s, achieved {loaded['achieved']:,.0f}")


if __name__ == "__main__":
    main()
