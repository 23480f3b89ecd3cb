"""Notification delivery benchmark (issue 4). Prints a table; not part of the test suite.

Notifications per second delivered to a local webhook receiver (in this process) with persistence on
(SQLite outbox and notification log), and the p50/p99 time from an alert firing to its delivery with
``group_wait: 0``. Throughput is measured twice: alerts fired by rules from a few large records batches
(the pipeline's own rate: one series per group, one notification each), and ``alert()`` calls posted
one per request (bounded by the HTTP ingest of this one process as much as by notification).

Charts (issue 16): the rule storm runs with charts off and on, alternately (``--rounds`` of each; the
machine is noisy), and counts the notifications that carried one. ``--storm-channel webhook`` carries
``chart_url`` (signed, nothing drawn at send time); ``slack`` is bot mode against the local Slack server
(``tests/support/slack_server.py``), which draws every chart within ``charts.timeout`` and uploads it
into the message's thread, or says "chart not ready in time" in the message.

    python bench/notify.py [--notifications 4000] [--samples 200] [--charts both|on|off] [--rounds 1]
                           [--storm-channel webhook|slack]
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
from dataclasses import dataclass
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
        self.charted: set[str] = set()  # arrivals whose alert had a chart_url
        self.lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                now = time.perf_counter()
                with receiver.lock:
                    for alert in json.loads(body)["alerts"]:
                        arrival = f"{alert['title']}@{alert['run']['id']}"
                        receiver.arrivals.setdefault(arrival, now)
                        if alert.get("chart_url"):
                            receiver.charted.add(arrival)
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


@dataclass
class Storm:
    charts: bool
    submitted: float
    """Seconds to post the records batches."""
    delivered: int
    rate: float
    """Notifications per second, first submit to the last one's arrival (with its chart, if any)."""
    charted: int
    """Notifications that carried a chart (an uploaded image, or a ``chart_url``)."""
    not_ready: int
    """Notifications that said "chart not ready in time" instead."""


STORM_RUNS = 20


def storm(receiver: Receiver, runs: int, metrics: int, *, charts: bool, channel: str = "webhook") -> Storm:
    """Rule alerts: each run posts one step in which every metric crosses a threshold, so each series
    fires (its own group, one notification)."""
    rules = [{"name": "over", "metric": "m*", "when": "> 0", "severity": "warning", "title": "{{ metric }}"}]
    slack: Any = None
    if channel == "slack":
        from tests.support.slack_server import TOKEN, SlackServer

        slack = SlackServer().start()
        target = {"type": "slack", "token": TOKEN, "channel": "#ml-alerts", "base_url": slack.api_url}
    else:
        target = {"type": "webhook", "url": f"http://127.0.0.1:{receiver.port}/"}
    service = make_service({"channels": {"hook": target}, "charts": {"enabled": charts},
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
            receiver.charted.clear()
            started = time.perf_counter()
            for run, body in bodies:
                client.post(f"/api/v1/runs/bench/{run}/records", content=body).raise_for_status()
            submitted = time.perf_counter() - started
        if slack is not None:
            return _slack_storm(slack, runs * metrics, started, submitted, charts=charts)
        receiver.wait(runs * metrics, timeout=600)
        delivered = len(receiver.arrivals)
        return Storm(charts, submitted, delivered, delivered / (max(receiver.arrivals.values()) - started),
                     len(receiver.charted), 0)
    finally:
        service.stop()
        if slack is not None:
            slack.stop()


def _slack_storm(slack: Any, expected: int, started: float, submitted: float, *, charts: bool) -> Storm:
    """Waits until every notification's message is posted and, with charts, has its chart in its thread
    or its "not ready" line."""
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        posts = [m for m in list(slack.messages) if m.method == "chat.postMessage" and m.thread_ts is None]
        late = [m for m in posts if "not ready" in json.dumps(m.blocks[-1:])]
        files = slack.shared_files()
        if len(posts) >= expected and (not charts or len(files) + len(late) >= expected):
            break
        time.sleep(0.01)
    finished = time.perf_counter()
    return Storm(charts, submitted, len(posts), len(posts) / (finished - started), len(files), len(late))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--notifications", type=int, default=4000)
    parser.add_argument("--samples", type=int, default=200)
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--charts", choices=["both", "on", "off"], default="both",
                        help="the rule storm with charts off and on (alternately), or one of them")
    parser.add_argument("--rounds", type=int, default=1, help="storms of each charts setting")
    parser.add_argument("--storm-channel", choices=["webhook", "slack"], default="webhook")
    parser.add_argument("--storm-only", action="store_true", help="skip the alert() throughput and latency")
    args = parser.parse_args()
    print(f"storage: {os.environ.get('RUNWATCH_BENCH_STORAGE', 'sqlite')} (RUNWATCH_BENCH_STORAGE)")
    receiver = Receiver()
    settings = {"both": [False, True], "on": [True], "off": [False]}[args.charts]
    per_run = args.notifications // STORM_RUNS
    storms = [storm(receiver, STORM_RUNS, per_run, charts=charts, channel=args.storm_channel)
              for _ in range(args.rounds) for charts in settings]
    print_storms(storms, args.storm_channel, per_run)
    if args.storm_only:
        receiver.server.shutdown()
        return
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
        print(f"| `alert()`: one POST per alert, {args.clients} client threads | {args.notifications:,} | "
              f"{submitted - started:.2f} | {delivered:,} | {rate:,.0f} |")
        print(f"\nfiring -> delivered ({len(latencies)} samples, 20 ms apart):")
        print("| p50 ms | p99 ms | max ms |\n|---|---|---|")
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        print(f"| {statistics.median(latencies):.1f} | {p99:.1f} | {latencies[-1]:.1f} |")
    finally:
        service.stop()
        receiver.server.shutdown()


def print_storms(storms: list[Storm], channel: str, per_run: int) -> None:
    print(f"\nrule storm: {STORM_RUNS} records POSTs, each firing {per_run} series; {channel} channel, group_wait 0\n")
    print("| charts | notifications | submitted in s | delivered | notifications/s | carried a chart "
          "| said \"not ready\" |")
    print("|---|---|---|---|---|---|---|")
    for result in storms:
        print(f"| {'on' if result.charts else 'off'} | {STORM_RUNS * per_run:,} | {result.submitted:.2f} | "
              f"{result.delivered:,} | {result.rate:,.0f} | {result.charted:,} | {result.not_ready:,} |")
    on = [result.rate for result in storms if result.charts]
    off = [result.rate for result in storms if not result.charts]
    if on and off:
        change = statistics.median(on) / statistics.median(off) - 1
        print(f"\ncharts on vs off (medians): {change:+.0%} notifications/s")


if __name__ == "__main__":
    main()
