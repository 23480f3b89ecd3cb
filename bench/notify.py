"""Notification delivery benchmark (issue 4). Prints a table; not part of the test suite.

Notifications per second delivered to a local webhook receiver (in this process) with persistence on
(SQLite outbox and notification log), and the p50/p99 time from an alert firing to its delivery with
``group_wait: 0``. Throughput is measured twice: alerts fired by rules from a few large records batches
(the pipeline's own rate: one series per group, one notification each), and ``alert()`` calls posted
one per request (bounded by the HTTP ingest of this one process as much as by notification).

    python bench/notify.py [--notifications 4000] [--samples 200]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._service import free_port, make_service  # noqa: E402


class _Server(ThreadingHTTPServer):
    request_queue_size = 512  # the default listen backlog of 5 resets a burst of new connections


class Receiver:
    def __init__(self) -> None:
        self.port = free_port()
        self.arrivals: dict[str, float] = {}
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                now = time.perf_counter()
                with receiver.lock:
                    for alert in json.loads(body)["alerts"]:
                        receiver.arrivals.setdefault(f"{alert['title']}@{alert['run']['id']}", now)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = _Server(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.arrivals) < count and time.monotonic() < deadline:
            time.sleep(0.01)


def storm(receiver: Receiver, runs: int, metrics: int) -> tuple[float, int, float]:
    """Rule alerts: each run posts one step in which every metric crosses a threshold, so each series
    fires (its own group, one notification). Returns (seconds to submit, delivered, notifications/s)."""
    rules = [{"name": "over", "metric": "m*", "when": "> 0", "severity": "warning", "title": "{{ metric }}"}]
    service = make_service({"channels": {"hook": {"type": "webhook", "url": f"http://127.0.0.1:{receiver.port}/"}},
                            "defaults": {"channels": ["hook"], "group_wait": "0s",
                                         "group_by": ["project", "run", "rule", "metric"]}}, rules).start()
    try:
        key = service.cli("keys", "create", "--project", "bench")
        with httpx.Client(base_url=service.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60) as client:
            bodies = []
            for i in range(runs):
                client.post("/api/v1/runs", json={"project": "bench", "id": f"s{i}"}).raise_for_status()
                data = {f"m{k:04d}": 1.0 for k in range(metrics)}
                bodies.append((f"s{i}", json.dumps({"records": [
                    {"seq": 1, "type": "history", "step": 0, "timestamp": time.time(), "data": data}]}).encode()))
            receiver.arrivals.clear()
            started = time.perf_counter()
            for run, body in bodies:
                client.post(f"/api/v1/runs/bench/{run}/records", content=body).raise_for_status()
            submitted = time.perf_counter() - started
        receiver.wait(runs * metrics, timeout=600)
        delivered = len(receiver.arrivals)
        return submitted, delivered, delivered / (max(receiver.arrivals.values()) - started)
    finally:
        service.stop()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--notifications", type=int, default=4000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    print(f"storage: {os.environ.get('RUNWATCH_BENCH_STORAGE', 'sqlite')} (RUNWATCH_BENCH_STORAGE)")
    receiver = Receiver()
    storm_runs = 20
    storm_result = storm(receiver, storm_runs, args.notifications // storm_runs)
    receiver.arrivals.clear()
    service = make_service({"channels": {"hook": {"type": "webhook", "url": f"http://127.0.0.1:{receiver.port}/"}},
                            "defaults": {"channels": ["hook"], "group_wait": "0s"}}).start()
    try:
        key = service.cli("keys", "create", "--project", "bench")
        client = httpx.Client(base_url=service.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=60)
        runs = max(args.notifications, args.samples)
        for i in range(runs):
            client.post("/api/v1/runs", json={"project": "bench", "id": f"r{i}"}).raise_for_status()

        # Throughput: one alert per run (one group, one notification each), submitted by several client
        # threads at once so that the service, not this client, is the bottleneck.
        def submit(indices: range) -> None:
            with httpx.Client(base_url=service.base_url, headers={"Authorization": f"Bearer {key}"},
                              timeout=60) as own:
                for i in indices:
                    own.post(f"/api/v1/runs/bench/r{i}/alerts", json={"alerts": [{
                        "id": uuid.uuid4().hex, "title": f"t{i}", "wait_duration": 0, "timestamp": time.time()}]})

        threads = [threading.Thread(target=submit, args=(range(k, args.notifications, args.clients),))
                   for k in range(args.clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        submitted = time.perf_counter()
        receiver.wait(args.notifications, timeout=600)
        delivered = len(receiver.arrivals)
        last = max(receiver.arrivals.values())
        rate = delivered / (last - started)

        # Latency: alerts spaced 20 ms apart, from the POST that raises the alert to its arrival.
        latencies = []
        for i in range(args.samples):
            title, arrival = f"lat{i}", f"lat{i}@r{i}"
            sent = time.perf_counter()
            client.post(f"/api/v1/runs/bench/r{i}/alerts", json={"alerts": [{
                "id": uuid.uuid4().hex, "title": title, "wait_duration": 0, "timestamp": time.time()}]})
            deadline = time.monotonic() + 10
            while arrival not in receiver.arrivals and time.monotonic() < deadline:
                time.sleep(0.0005)
            if arrival in receiver.arrivals:
                latencies.append((receiver.arrivals[arrival] - sent) * 1000)
            time.sleep(0.02)
        latencies.sort()
        storage = os.environ.get("RUNWATCH_BENCH_STORAGE", "sqlite")
        print(f"\nwebhook channel, {storage} outbox + notification log, "
              f"{os.environ.get('RUNWATCH_BENCH_REPLICAS', '1')} service process(es), group_wait 0\n")
        print("| alerts raised by | notifications | submitted in s | delivered | notifications/s "
              "(first submit to last arrival) |")
        print("|---|---|---|---|---|")
        storm_seconds, storm_delivered, storm_rate = storm_result
        per_run = args.notifications // storm_runs
        print(f"| rules: {storm_runs} records POSTs, each firing {per_run} series | {storm_runs * per_run:,} | "
              f"{storm_seconds:.2f} | {storm_delivered:,} | {storm_rate:,.0f} |")
        print(f"| `alert()`: one POST per alert, {args.clients} client threads | {args.notifications:,} | "
              f"{submitted - started:.2f} | {delivered:,} | {rate:,.0f} |")
        print(f"\nfiring -> delivered ({len(latencies)} samples, 20 ms apart):")
        print("| p50 ms | p99 ms | max ms |\n|---|---|---|")
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(f"| {statistics.median(latencies):.1f} | {p99:.1f} | {latencies[-1]:.1f} |")
    finally:
        service.stop()
        receiver.server.shutdown()


if __name__ == "__main__":
    main()
