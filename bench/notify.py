"""Notification delivery benchmark (issue 4). Prints a table; not part of the test suite.

Notifications per second delivered to a local webhook receiver (in this process) with persistence on
(SQLite outbox and notification log), and the p50/p99 time from an alert firing to its delivery with
``group_wait: 0``.

    python bench/notify.py [--notifications 2000] [--samples 200]
"""

from __future__ import annotations

import argparse
import json
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
from bench._service import BenchService, free_port  # noqa: E402


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
                        receiver.arrivals.setdefault(alert["title"], now)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait(self, count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while len(self.arrivals) < count and time.monotonic() < deadline:
            time.sleep(0.01)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--notifications", type=int, default=2000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    args = parser.parse_args()
    receiver = Receiver()
    service = BenchService({"channels": {"hook": {"type": "webhook", "url": f"http://127.0.0.1:{receiver.port}/"}},
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
            title = f"lat{i}"
            sent = time.perf_counter()
            client.post(f"/api/v1/runs/bench/r{i}/alerts", json={"alerts": [{
                "id": uuid.uuid4().hex, "title": title, "wait_duration": 0, "timestamp": time.time()}]})
            deadline = time.monotonic() + 10
            while title not in receiver.arrivals and time.monotonic() < deadline:
                time.sleep(0.0005)
            if title in receiver.arrivals:
                latencies.append((receiver.arrivals[title] - sent) * 1000)
            time.sleep(0.02)
        latencies.sort()
        print(f"\nwebhook channel, SQLite outbox + notification log, one service process, group_wait 0\n")
        print("| notifications | submitted in s | delivered | notifications/s (first submit to last arrival) |")
        print("|---|---|---|---|")
        print(f"| {args.notifications:,} | {submitted - started:.2f} | {delivered:,} | {rate:,.0f} |")
        print(f"\nfiring -> delivered ({len(latencies)} samples, 20 ms apart):")
        print("| p50 ms | p99 ms | max ms |\n|---|---|---|")
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(f"| {statistics.median(latencies):.1f} | {p99:.1f} | {latencies[-1]:.1f} |")
    finally:
        service.stop()
        receiver.server.shutdown()


if __name__ == "__main__":
    main()
