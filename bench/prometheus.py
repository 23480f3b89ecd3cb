"""Runwatch as Prometheus' Alertmanager, beside the real one (issue 15). Prints a table; not a test.

Two numbers, each for Runwatch (``alerts serve``, SQLite) and for Debian's ``prometheus-alertmanager``
with the same routing settings (one webhook receiver in this process, ``group_wait: 0``,
``group_interval: 1m``, ``group_by: [alertname, round]``), measured in one run in alternating rounds:

1. ``POST /api/v2/alerts`` throughput: batches as Prometheus' notifier sends them (``--batch`` alerts, 64
   by default, its ``MaxBatchSize``), one after another on one kept-alive connection, each alert a new label
   set with ``endsAt`` four minutes ahead; ``--alerts`` per round. Alerts/s accepted (a 200 answer).
2. Rule firing → webhook: a real Prometheus (scrape and evaluation every 1 s) per target, scraping an
   exporter in this process; the alerting rule (``for: 0s``) fires when the bench sets a gauge, each time
   under a new ``round`` label, so each firing is a new group and is notified at once. The latency is the
   webhook's arrival (wall clock) minus the alert's ``startsAt`` (the evaluation at which Prometheus found
   it firing, which both payloads carry). The floor: the same Prometheus posting to a plain HTTP server in
   this process, from ``startsAt`` to the POST's arrival (Prometheus' own evaluation and notifier delay).

    python bench/prometheus.py [--alerts 6400] [--batch 64] [--rounds 3] [--firings 20]
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import sys
import threading
import time
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx

_HERE = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(_HERE))
from bench import _service  # noqa: E402
from tests.support.prometheus import Alertmanager, Prometheus  # noqa: E402

RULE = {"alert": "BenchFire", "expr": "bench_fire > 0", "for": "0s", "labels": {"severity": "critical"},
        "annotations": {"summary": "bench firing {{ $labels.round }}"}}
ROUTING = {"group_by": ["alertname", "round"], "group_wait": "0s", "group_interval": "1m"}


class _Server(ThreadingHTTPServer):
    request_queue_size = 128
    daemon_threads = True


class Receiver:
    """Loopback HTTP server: for every POST, its arrival time (``time.time()``), path, and the firing alerts
    it carries that have a ``round`` label (with their ``startsAt``)."""

    def __init__(self) -> None:
        self.port = _service.free_port()
        self.arrivals: list[tuple[float, str, str, str]] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                arrived = time.time()
                payload = json.loads(body or b"null")
                alerts = payload if isinstance(payload, list) else (payload or {}).get("alerts", [])
                found = [(arrived, self.path, alert["labels"]["round"], alert.get("startsAt") or alert["starts_at"])
                         for alert in alerts if "round" in alert.get("labels", {})
                         and alert.get("status", "firing") == "firing"]
                with receiver._lock:
                    receiver.arrivals.extend(found)
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def first(self, path: str, round_label: str, timeout: float = 120.0) -> tuple[float, str]:
        """When the first firing alert with label round=``round_label`` arrived at ``path``, and its startsAt."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                arrivals = list(self.arrivals)
            for arrived, where, label, starts in arrivals:
                if where == path and label == round_label:
                    return arrived, starts
            time.sleep(0.005)
        raise TimeoutError(f"nothing for round {round_label} at {path} within {timeout}s")

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class Exporter:
    """``bench_fire{round="N"} 1`` for the rounds switched on; a round switched off disappears (resolves)."""

    def __init__(self) -> None:
        self.port = _service.free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.on: set[str] = set()
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802
                lines = ["# TYPE bench_fire gauge\n"] + [f'bench_fire{{round="{r}"}} 1\n' for r in sorted(exporter.on)]
                body = "".join(lines).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = _Server(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


def _iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")


def _seconds(text: str) -> float:
    # Go writes nanoseconds; Python reads microseconds at most.
    head, _, tail = text.rstrip("Z").partition(".")
    fraction = float(f"0.{tail}") if tail else 0.0
    return datetime.fromisoformat(head).replace(tzinfo=UTC).timestamp() + fraction


def throughput(url: str, headers: dict[str, str], tag: str, count: int, batch: int) -> tuple[float, float]:
    """Alerts/s accepted and the median seconds per post, for ``count`` new alerts in ``batch``-sized posts."""
    ends = _iso(time.time() + 240)
    bodies = [[{"labels": {"alertname": "BenchLoad", "instance": f"{tag}-{i}", "job": "node"},
                "annotations": {"summary": f"load {i}"}, "endsAt": ends,
                "generatorURL": "http://prometheus.invalid/graph"} for i in range(start, min(start + batch, count))]
              for start in range(0, count, batch)]
    took = []
    with httpx.Client(headers=headers, timeout=120) as client:
        began = time.perf_counter()
        for body in bodies:
            sent = time.perf_counter()
            response = client.post(f"{url}/api/v2/alerts", json=body)
            if response.status_code != 200:
                raise RuntimeError(f"{url}: {response.status_code} {response.text[:300]}")
            took.append(time.perf_counter() - sent)
        elapsed = time.perf_counter() - began
    return count / elapsed, statistics.median(took)


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--alerts", type=int, default=6400, help="new alerts posted per throughput round")
    parser.add_argument("--batch", type=int, default=64, help="alerts per post (Prometheus' MaxBatchSize)")
    parser.add_argument("--rounds", type=int, default=3, help="throughput rounds per target, alternating")
    parser.add_argument("--firings", type=int, default=20, help="rule firings per target, alternating")
    args = parser.parse_args()
    for binary in ("prometheus", "prometheus-alertmanager"):
        if shutil.which(binary) is None:
            raise SystemExit(f"{binary} is not installed (apt-get install prometheus prometheus-alertmanager)")

    receiver = Receiver()
    service = _service.BenchService({
        "channels": {"hook": {"type": "webhook", "url": receiver.url("/runwatch")}},
        "defaults": {"channels": ["hook"], **ROUTING}})
    manager = Alertmanager(shutil.which("prometheus-alertmanager") or "")
    exporters = {name: Exporter() for name in ("runwatch", "alertmanager", "floor")}
    servers: list[Prometheus] = []
    try:
        service.start()
        key = service.cli("keys", "create", "--admin")
        manager.start(webhook_url=receiver.url("/alertmanager"), **ROUTING)
        targets = {"runwatch": (service.base_url, {"Authorization": f"Bearer {key}"}),
                   "alertmanager": (manager.url, {})}
        amconfig = {"runwatch": {"static_configs": [{"targets": [f"127.0.0.1:{service.port}"]}],
                                 "authorization": {"credentials": key}},
                    "alertmanager": {"static_configs": [{"targets": [f"127.0.0.1:{manager.port}"]}]},
                    "floor": {"static_configs": [{"targets": [f"127.0.0.1:{receiver.port}"]}],
                              "path_prefix": "/floor"}}
        for name, exporter in exporters.items():
            prometheus = Prometheus(shutil.which("prometheus") or "")
            servers.append(prometheus)
            prometheus.start(targets=[exporter.target], rules=[RULE],
                             alertmanagers=[{"api_version": "v2", **amconfig[name]}])

        rates: dict[str, list[float]] = {name: [] for name in targets}
        per_post: dict[str, list[float]] = {name: [] for name in targets}
        for index in range(args.rounds):
            for name, (url, headers) in (targets.items() if index % 2 == 0 else reversed(targets.items())):
                rate, post = throughput(url, headers, f"r{index}", args.alerts, args.batch)
                rates[name].append(rate)
                per_post[name].append(post)
                print(f"throughput round {index + 1} {name}: {rate:,.0f} alerts/s", file=sys.stderr)

        paths = {"runwatch": "/runwatch", "alertmanager": "/alertmanager", "floor": "/floor/api/v2/alerts"}
        latency: dict[str, list[float]] = {name: [] for name in paths}
        for index in range(args.firings):
            order = list(paths) if index % 2 == 0 else list(reversed(paths))
            for name in order:
                label = f"{name}-{index}"
                exporters[name].on.add(label)
                arrived, starts = receiver.first(paths[name], label)
                latency[name].append(arrived - _seconds(starts))
                exporters[name].on.discard(label)
                print(f"firing {index + 1} {name}: {latency[name][-1] * 1000:.0f} ms", file=sys.stderr)
    finally:
        for prometheus in servers:
            prometheus.stop()
        manager.stop()
        service.stop()
        for exporter in exporters.values():
            exporter.stop()
        receiver.stop()

    print(f"\n`POST /api/v2/alerts`: {args.rounds} rounds × {args.alerts} new alerts in posts of {args.batch}; "
          f"rule firing → webhook: {args.firings} firings each (Prometheus scrape and evaluation every 1 s)\n")
    print("| target | alerts/s accepted (median of rounds) | min–max | per post (median) | "
          "firing → webhook p50 | p90 | max |")
    print("|---|---|---|---|---|---|---|")
    names = {"runwatch": "Runwatch (SQLite)", "alertmanager": "Alertmanager 0.25 (Debian)",
             "floor": "floor: Prometheus → plain HTTP server"}
    for name, label in names.items():
        cells = ["–", "–", "–"]
        if name in rates:
            cells = [f"{statistics.median(rates[name]):,.0f}",
                     f"{min(rates[name]):,.0f}–{max(rates[name]):,.0f}",
                     f"{statistics.median(per_post[name]) * 1000:.1f} ms"]
        values = latency[name]
        print(f"| {label} | {' | '.join(cells)} | {_pct(values, 0.5) * 1000:.0f} ms | "
              f"{_pct(values, 0.9) * 1000:.0f} ms | {max(values) * 1000:.0f} ms |")


if __name__ == "__main__":
    main()
