"""The run page with big series (the dashboard issue). Prints tables; not a test.

One finished run with 20 metrics × 100,000 steps (train/, val/, eval/, system/ keys; one NaN and one
spike among them), stored through the ingest API of a real ``alerts serve`` process in batches of 2,000
steps. First headless Chromium (Playwright) logs in through the form and opens the run page again and
again, each time until every chart has fetched its series and drawn; the first view (browser cache
cleared) is shown apart from the warm ones. Then, over HTTP with a dashboard session: time to first byte
(response headers in) and total time (body read) of the run page and of the downsampled ``series.json``
requests its 20 charts make, at the width the browser's charts asked for and at 600 and 1000 pixels, one
at a time and 6 at a time (as a browser does over HTTP/1.1); the bearer API's ``/series`` beside them,
and the time axis (from the same 16-step blocks while the clock runs forward) once per key.
Targets: page complete in the browser < 1 s, each series request < 50 ms.

    python bench/dashboard.py [--steps 100000] [--rounds 20] [--browser-rounds 15] [--keep]
"""

from __future__ import annotations

import argparse
import gzip
import json
import math
import os
import platform
import random
import re
import shutil
import statistics
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._service import BenchService  # noqa: E402

CHROMIUM = os.environ.get("RUNWATCH_CHROMIUM", "/usr/bin/chromium")
PROJECT, RUN = "bench", "dashboard"
BATCH_STEPS = 2_000
NAN_AT = ("train/loss", 61_234)
SPIKE_AT = ("train/grad_norm", 73_210, 1e4)


def shape(key: str) -> Callable[[int, float], float]:
    """A plausible curve per key (steps in, value out), so the charts look like a training run."""
    curves: dict[str, Callable[[int, float], float]] = {
        "loss": lambda s, r: 2.5 * math.exp(-s / 20_000) + 0.1 + 0.05 * r,
        "acc": lambda s, r: 0.95 - 0.85 * math.exp(-s / 15_000) + 0.02 * r,
        "lr": lambda s, r: 3e-4 * 0.5 * (1 + math.cos(math.pi * s / 100_000)),
        "grad_norm": lambda s, r: 1.0 + 0.5 * r,
        "tokens_per_s": lambda s, r: 52_000 + 3_000 * r,
        "epoch": lambda s, r: s / 10_000,
    }
    name = key.rsplit("/", 1)[1]
    return curves.get(name, lambda s, r: 50 + 30 * math.sin(s / 2_000) + 10 * r)


KEYS = ["train/loss", "train/acc", "train/lr", "train/grad_norm", "train/tokens_per_s", "train/epoch",
        "val/loss", "val/acc", "val/f1", "val/perplexity", "eval/bleu", "eval/rouge",
        "system/cpu", "system/memory", "system/gpu_util", "system/gpu_mem", "system/gpu_temp",
        "system/disk_io", "system/net_rx", "system/net_tx"]


def load(client: httpx.Client, steps: int) -> float:
    """Store the run through the ingest API; returns the seconds it took."""
    began = time.perf_counter()
    client.post("/api/v1/runs", json={"project": PROJECT, "id": RUN, "name": "dashboard bench"}).raise_for_status()
    rng = random.Random(11)
    curves = {key: shape(key) for key in KEYS}
    t0 = time.time() - steps * 0.5
    seq = 0
    for first in range(0, steps, BATCH_STEPS):
        records = []
        for step in range(first, min(steps, first + BATCH_STEPS)):
            seq += 1
            data: dict[str, Any] = {key: round(curve(step, rng.random()), 6) for key, curve in curves.items()}
            if step == NAN_AT[1]:
                data[NAN_AT[0]] = "NaN"
            if step == SPIKE_AT[1]:
                data[SPIKE_AT[0]] = SPIKE_AT[2]
            records.append({"seq": seq, "type": "history", "step": step, "timestamp": t0 + step * 0.5,
                            "runtime": step * 0.5, "data": data})
        client.post(f"/api/v1/runs/{PROJECT}/{RUN}/records", json={"records": records}).raise_for_status()
    exit_record = {"seq": seq + 1, "type": "exit", "state": "finished", "exit_code": 0, "timestamp": time.time()}
    client.post(f"/api/v1/runs/{PROJECT}/{RUN}/records", json={"records": [exit_record]}).raise_for_status()
    return time.perf_counter() - began


def log_in(base_url: str, key: str) -> httpx.Client:
    client = httpx.Client(base_url=base_url, timeout=60)
    token = re.search(r'name="csrf_token" value="([^"]+)"', client.get("/login").text)
    assert token, "no CSRF token on /login"
    response = client.post("/login", data={"api_key": key, "csrf_token": token.group(1), "next": "/"})
    assert response.status_code == 303, response.text
    return client


class Timing:
    """First byte and total seconds of GET requests, and the bodies' sizes."""

    def __init__(self) -> None:
        self.first: list[float] = []
        self.total: list[float] = []
        self.raw: list[int] = []
        self.gzipped: list[int] = []
        self.encodings: set[str] = set()

    def get(self, client: httpx.Client, url: str, params: dict[str, Any] | None = None) -> bytes:
        began = time.perf_counter()
        with client.stream("GET", url, params=params) as response:
            first = time.perf_counter() - began
            body = response.read()
            total = time.perf_counter() - began
            response.raise_for_status()
            self.encodings.add(response.headers.get("content-encoding", "none"))
        self.first.append(first)
        self.total.append(total)
        self.raw.append(len(body))
        self.gzipped.append(len(gzip.compress(body, 6)))
        return body

    def payload(self) -> str:
        raw, packed = statistics.mean(self.raw), statistics.mean(self.gzipped)
        return f"{raw / 1024:.1f} KiB ({packed / 1024:.1f} KiB gzipped)"


def ms(values: list[float]) -> tuple[str, str]:
    ordered = sorted(v * 1000 for v in values)
    return f"{statistics.median(ordered):.1f} ms", f"{ordered[max(0, math.ceil(len(ordered) * 0.95) - 1)]:.1f} ms"


def series_rounds(client: httpx.Client, url: str, width: int, rounds: int, *, x: str = "step",
                  parallel: int = 1) -> tuple[Timing, list[float]]:
    """``rounds`` times all 20 keys; returns per-request timings and the wall time of each round."""
    timing, walls = Timing(), []
    with ThreadPoolExecutor(parallel) as pool:
        for _ in range(rounds):
            began = time.perf_counter()
            list(pool.map(lambda key: timing.get(client, url, {"key": key, "x": x, "width": width}), KEYS))
            walls.append(time.perf_counter() - began)
    return timing, walls


OBSERVE_JS = """
(() => {
  // When the page says every chart is done (body[data-charts-drawn]) and when the last chart's draw hook
  // ran (each .chart gets data-drawn), in performance.now() time: ms since navigation start.
  window.__bench = {};
  new MutationObserver(() => {
    const body = document.body;
    if (!body) return;
    if (body.dataset.chartsDrawn !== undefined && window.__bench.done === undefined) {
      window.__bench.done = performance.now();
    }
    const charts = document.querySelectorAll(".chart[data-key]");
    if (charts.length && window.__bench.allDrawn === undefined
        && Array.from(charts).every(c => c.dataset.drawn !== undefined)) {
      window.__bench.allDrawn = performance.now();
    }
  }).observe(document, {attributes: true, subtree: true,
                        attributeFilter: ["data-charts-drawn", "data-drawn"]});
})();
"""

READ_JS = """
() => {
  const nav = performance.getEntriesByType("navigation")[0];
  const series = performance.getEntriesByType("resource").filter(e => e.name.includes("series.json"));
  const all = [nav, ...performance.getEntriesByType("resource")];
  const charts = Object.values(window.runwatchCharts || {});
  return {done: window.__bench.done, allDrawn: window.__bench.allDrawn, ttfb: nav.responseStart,
          html: nav.responseEnd, dcl: nav.domContentLoadedEventEnd,
          seriesCount: series.length, seriesMax: Math.max(...series.map(e => e.duration)),
          seriesLast: Math.max(...series.map(e => e.responseEnd)),
          seriesWait: Math.max(...series.map(e => e.responseStart - e.requestStart)),
          fetched: performance.getEntriesByType("resource").filter(e => e.transferSize > 0).length,
          cached: performance.getEntriesByType("resource").filter(e => e.transferSize === 0).length,
          transferred: all.reduce((n, e) => n + (e.transferSize || 0), 0),
          decoded: all.reduce((n, e) => n + (e.decodedBodySize || 0), 0),
          charts: charts.length, widths: [...new Set(charts.map(c => c.width))],
          errors: document.querySelectorAll(".chart[data-error]").length};
}
"""


def browser_rounds(base_url: str, key: str, rounds: int) -> tuple[str, list[dict[str, Any]], list[float]]:
    """The run page in headless Chromium ``rounds`` times after logging in through the form."""
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            # The probe polls a page-side predicate (eval); the page's CSP would refuse it. Timing is unchanged.
            page = browser.new_page(viewport={"width": 1400, "height": 1000}, bypass_csp=True)
            page.set_default_timeout(60_000)
            page.goto(f"{base_url}/login")
            page.fill('input[name="api_key"]', key)
            page.click('button[type="submit"]')
            page.wait_for_url(re.compile(r"^(?!.*/login)"))
            page.add_init_script(OBSERVE_JS)
            page.context.new_cdp_session(page).send("Network.clearBrowserCache")  # a cold first view
            views, walls = [], []
            for _ in range(rounds):
                began = time.perf_counter()
                page.goto(f"{base_url}/runs/{PROJECT}/{RUN}", wait_until="commit")
                page.wait_for_function("window.__bench && window.__bench.done !== undefined"
                                       " && window.__bench.allDrawn !== undefined")
                walls.append(time.perf_counter() - began)
                views.append(page.evaluate(READ_JS))
            return browser.version, views, walls
        finally:
            browser.close()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=100_000)
    parser.add_argument("--rounds", type=int, default=20, help="HTTP repetitions (page; series: × 20 keys)")
    parser.add_argument("--browser-rounds", type=int, default=15)
    parser.add_argument("--keep", action="store_true", help="keep the service's directory (its database: ~90 MB)")
    args = parser.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())} at start,"
          f" {platform.platform()}, Python {platform.python_version()}")

    service = BenchService({}).start()
    try:
        key = service.cli("keys", "create", "--project", PROJECT)
        with httpx.Client(base_url=service.base_url, headers={"Authorization": f"Bearer {key}"},
                          timeout=120) as api:
            loaded = load(api, args.steps)
            print(f"stored {len(KEYS)} metrics × {args.steps:,} steps ({len(KEYS) * args.steps:,} points) through"
                  f" the ingest API in {loaded:.1f} s; one service process, SQLite in {service.dir}")

            version, views, browser_walls = browser_rounds(service.base_url, key, args.browser_rounds)
            widths = sorted({w for view in views for w in view["widths"]})
            chart_width = widths[0]
            print(f"browser: Chromium {version}, viewport 1400×1000; charts ask for width {widths}; "
                  f"{views[0]['charts']} charts, {views[0]['seriesCount']} series requests per view, "
                  f"{sum(v['errors'] for v in views)} chart errors; resources from the network/cache:"
                  f" cold view {views[0]['fetched']}/{views[0]['cached']},"
                  f" last view {views[-1]['fetched']}/{views[-1]['cached']}\n")

            web = log_in(service.base_url, key)
            run_url = f"/runs/{PROJECT}/{RUN}"
            page = Timing()
            for _ in range(args.rounds):
                page.get(web, run_url)
            series_url = f"{run_url}/series.json"
            cases = {w: series_rounds(web, series_url, w, args.rounds) for w in (chart_width, 600, 1000)}
            parallel, parallel_walls = series_rounds(web, series_url, chart_width, args.rounds, parallel=6)
            bearer, _ = series_rounds(api, f"/api/v1/runs/{PROJECT}/{RUN}/series", 1000, max(1, args.rounds // 2))
            by_time, time_walls = series_rounds(web, series_url, chart_width, 1, x="time")
            web.close()
            encodings = set().union(page.encodings, *(t.encodings for t, _ in cases.values()))
    finally:
        service.stop()
        if not args.keep:
            shutil.rmtree(service.dir, ignore_errors=True)

    rows: list[tuple[str, tuple[str, str], str, str]] = [
        ("run page HTML: first byte", ms(page.first), "", page.payload()),
        ("run page HTML: total", ms(page.total), "", ""),
    ]
    for width, (timing, walls) in cases.items():
        label = f"series.json step, width {width}" + (" (browser's)" if width == chart_width else "")
        per_view = f"{sum(timing.raw) / len(walls) / 1024:.0f} KiB per page view"
        rows += [(f"{label}: first byte", ms(timing.first), "", timing.payload()),
                 (f"{label}: total", ms(timing.total), "< 50 ms", ""),
                 (f"all 20 series one at a time, width {width}", ms(walls), "", per_view)]
    rows += [
        (f"series.json 6 at a time, width {chart_width}: total", ms(parallel.total), "< 50 ms", parallel.payload()),
        (f"all 20 series 6 at a time, width {chart_width}", ms(parallel_walls), "", ""),
        ("API /series (bearer) step, width 1000: total", ms(bearer.total), "< 50 ms", bearer.payload()),
        (f"series.json time axis, width {chart_width}: total (1 × 20 keys)", ms(by_time.total), "< 50 ms",
         by_time.payload()),
        (f"all 20 series on the time axis one at a time, width {chart_width}", ms(time_walls), "", ""),
    ]
    cold, warm = views[0], views[1:] or views[:1]
    cold_wall, warm_walls = browser_walls[0], browser_walls[1:] or browser_walls[:1]

    def field(name: str) -> list[float]:
        return [v[name] / 1000 for v in warm]

    transferred = f"{cold['transferred'] / 1024:.0f} KiB over the wire ({cold['decoded'] / 1024:.0f} KiB decoded)"
    rows += [
        ("browser, cold (1st view): every chart drawn", (f"{cold['allDrawn']:.0f} ms", "—"), "< 1 s", transferred),
        ("browser, cold: goto + wait (wall)", (f"{cold_wall * 1000:.0f} ms", "—"), "", ""),
        (f"browser, warm ({len(warm)} views): HTML first byte", ms(field("ttfb")), "", ""),
        ("browser, warm: DOMContentLoaded", ms(field("dcl")), "", ""),
        ("browser, warm: last series response", ms(field("seriesLast")), "", ""),
        ("browser, warm: slowest series.json in the view, fetch() to body", ms(field("seriesMax")), "", ""),
        ("browser, warm: slowest series.json in the view, request sent to first byte", ms(field("seriesWait")),
         "< 50 ms", ""),
        ("browser, warm: every chart drawn", ms(field("allDrawn")), "< 1 s",
         f"{warm[-1]['transferred'] / 1024:.0f} KiB over the wire"),
        ("browser, warm: body[data-charts-drawn] set", ms(field("done")), "< 1 s", ""),
        ("browser, warm: goto + wait (wall)", ms(warm_walls), "", ""),
    ]
    print("| metric | median | p95 | target | payload |")
    print("|---|---:|---:|---|---|")
    for label, (median, p95), target, payload in rows:
        print(f"| {label} | {median} | {p95} | {target} | {payload} |")
    print(f"\nContent-Encoding of the answers: {', '.join(sorted(encodings))} (the client asked for gzip; gzipped"
          " sizes above are what compression would give). Times are ms since navigation start for the browser,"
          f" request start for HTTP; p95 is nearest-rank; HTTP rows: {args.rounds} rounds (series: × 20 keys).")
    print(json.dumps({"load_s": round(loaded, 1), "load_average_end": os.getloadavg()}))


if __name__ == "__main__":
    main()
