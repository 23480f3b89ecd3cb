"""The alerts page with chart thumbnails (issue 16), as a person in a browser feels it. Prints a table; not a test.

Two real ``alerts serve`` processes hold the same data: ``--runs`` runs of ``--steps`` steps whose
``val/acc`` slides under a rule's floor, so each run has one firing alert. One has charts on (the page
shows a thumbnail per alert, drawn by the service on demand), the other ``charts.enabled: false`` (the
page as it was before thumbnails). Headless Chromium logs in to each and opens ``/alerts`` in alternating
rounds, each time until every thumbnail on screen has loaded and been decoded (the viewport is tall enough
for all rows, so lazy loading fetches them all). The first view with charts on draws every chart (each
chart is drawn once per alert state, one at a time for viewers); later views get them from the service's
cache (``no-cache`` + ETag: a 304 when the browser has the bytes).

    python bench/alerts_page.py [--runs 20] [--steps 20000] [--rounds 10]
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import time
from pathlib import Path

import httpx
from playwright.sync_api import Page, sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench._service import BenchService  # noqa: E402

CHROMIUM = os.environ.get("RUNWATCH_CHROMIUM", "/usr/bin/chromium")
PROJECT = "bench"
RULES = [{"name": "acc-floor", "metric": "val/acc", "when": "< 0.3", "severity": "warning"}]
ALL_LOADED = """() => {
  const images = [...document.querySelectorAll("img.alert-chart")];
  return images.every(image => image.complete) ? images.filter(image => image.naturalWidth > 0).length : -1;
}"""


def load(service: BenchService, key: str, runs: int, steps: int) -> None:
    """``runs`` runs whose accuracy slides from 0.9 to 0.1: each fires ``acc-floor`` once."""
    with httpx.Client(base_url=service.base_url, headers={"Authorization": f"Bearer {key}"}, timeout=120) as api:
        t0 = time.time() - steps
        for number in range(runs):
            run_id = f"r{number:02d}"
            api.post("/api/v1/runs", json={"project": PROJECT, "id": run_id, "name": f"sweep-{number:02d}"}
                     ).raise_for_status()
            for first in range(0, steps, 2_000):
                records = [{"seq": step + 1, "type": "history", "step": step, "timestamp": t0 + step,
                            "data": {"val/acc": 0.9 - 0.8 * step / steps + 0.01 * (number % 3),
                                     "train/loss": 2.0 * (1 - step / steps) + 0.1}}
                           for step in range(first, min(steps, first + 2_000))]
                api.post(f"/api/v1/runs/{PROJECT}/{run_id}/records", json={"records": records}).raise_for_status()
        for _ in range(600):  # every alert stored
            found = api.get("/api/v1/alerts", params={"project": PROJECT}).json()["alerts"]
            if len(found) >= runs:
                return
            time.sleep(0.1)
        raise RuntimeError(f"only {len(found)} of {runs} alerts fired")


def log_in(page: Page, base_url: str, key: str) -> None:
    page.goto(f"{base_url}/login")
    page.fill('input[name="api_key"]', key)
    page.click('button[type="submit"]')
    page.wait_for_url(re.compile(r"^(?!.*/login)"))


def view(page: Page, base_url: str) -> tuple[float, int]:
    """Seconds from asking for the page until every thumbnail has loaded, and how many did."""
    began = time.perf_counter()
    page.goto(f"{base_url}/alerts?project={PROJECT}", wait_until="load")
    page.wait_for_function(f"({ALL_LOADED})() >= 0")
    # Decoded and painted: the next frame after the last image's load.
    page.evaluate("() => new Promise(done => requestAnimationFrame(() => requestAnimationFrame(done)))")
    elapsed = time.perf_counter() - began
    return elapsed, int(page.evaluate(f"({ALL_LOADED})()"))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--steps", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args()
    services = {"charts off (the page before thumbnails)": BenchService({"charts": {"enabled": False}}, RULES),
                "charts on": BenchService({}, RULES)}
    keys: dict[str, str] = {}
    try:
        for label, service in services.items():
            service.start()
            keys[label] = service.cli("keys", "create", "--project", PROJECT)
            load(service, keys[label], args.runs, args.steps)
        print(f"{args.runs} runs × {args.steps:,} steps, one firing alert each, in each of two services (SQLite);"
              f" load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs\n")
        firsts: dict[str, float] = {}
        warm: dict[str, list[float]] = {label: [] for label in services}
        shown: dict[str, int] = {}
        with sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                                 args=["--headless", "--no-sandbox", "--disable-gpu"])
            try:
                pages: dict[str, Page] = {}
                for label, service in services.items():
                    # Tall enough for every row: lazy loading then fetches every thumbnail, as a person
                    # scrolling down the page would.
                    page = browser.new_page(viewport={"width": 1400, "height": 400 + 100 * args.runs},
                                            bypass_csp=True)
                    page.set_default_timeout(120_000)
                    log_in(page, service.base_url, keys[label])
                    pages[label] = page
                for round_number in range(args.rounds + 1):  # round 0: the first view, charts drawn now
                    for label, service in services.items():
                        elapsed, count = view(pages[label], service.base_url)
                        if round_number == 0:
                            firsts[label] = elapsed
                        else:
                            warm[label].append(elapsed)
                        shown[label] = count
            finally:
                browser.close()
        print("| alerts page | thumbnails loaded | first view (charts drawn now) | later views p50 | p90 |")
        print("|---|---|---|---|---|")
        for label in services:
            values = sorted(warm[label])
            p90 = values[min(len(values) - 1, round(0.9 * (len(values) - 1)))]
            print(f"| {label} | {shown[label]} | {firsts[label] * 1000:.0f} ms | "
                  f"{statistics.median(values) * 1000:.0f} ms | {p90 * 1000:.0f} ms |")
    finally:
        for service in services.values():
            service.stop()


if __name__ == "__main__":
    main()
