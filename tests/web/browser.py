"""Headless Chromium for the dashboard tests (Playwright for Python driving Debian's chromium).

Playwright's own browser download is unreachable here, so it launches the system's chromium
(``RUNWATCH_CHROMIUM``, default ``/usr/bin/chromium``; ``.ci/run`` installs it with apt-get).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from playwright.sync_api import Browser, Page, sync_playwright

CHROMIUM = os.environ.get("RUNWATCH_CHROMIUM", "/usr/bin/chromium")
OUTPUT = Path(os.environ.get("RUNWATCH_TEST_OUTPUT", Path(__file__).resolve().parents[2] / "test-output"))
DEADLINE_MS = 60_000


@contextmanager
def chromium() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"no chromium at {CHROMIUM}: apt-get install chromium (see .ci/run)")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM,
                                             args=["--headless", "--no-sandbox", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()


def new_page(browser: Browser, **options: Any) -> Page:
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, **options)
    page.set_default_timeout(DEADLINE_MS)
    return page


def log_in(page: Page, base_url: str, key: str, *, next_path: str | None = None) -> None:
    """Through the login form, as a person would."""
    page.goto(f"{base_url}/login" + (f"?next={next_path}" if next_path else ""))
    page.fill('input[name="api_key"]', key)
    page.click('button[type="submit"]')
    page.wait_for_url(re.compile(r"^(?!.*/login)"))


def screenshot(page: Page, folder: str, name: str) -> Path:
    path = OUTPUT / folder / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(path), full_page=True)
    return path


def wait_charts_drawn(page: Page) -> None:
    """Every chart on the page fetched its series and drew (app.js sets ``body[data-charts-drawn]``)."""
    # An attribute selector, not wait_for_function: a string predicate is eval'd in the page, which the
    # dashboard's Content-Security-Policy (script-src 'self') rightly refuses.
    page.locator("body[data-charts-drawn]").wait_for(state="attached", timeout=DEADLINE_MS)


PIXELS_JS = """
([key, value, axis, colorVar]) => {
  // How much of the line at `value` on `axis` is drawn in the given CSS colour, as a fraction:
  // a horizontal row (axis "y") or a vertical column (axis "x") across the plot area.
  const chart = window.runwatchCharts[key].plot;
  const hex = getComputedStyle(document.documentElement).getPropertyValue(colorVar).trim();
  const want = [1, 3, 5].map(i => parseInt(hex.slice(i, i + 2), 16));
  const box = chart.bbox, ctx = chart.ctx;
  const at = Math.round(chart.valToPos(value, axis, true));
  const img = axis === "y" ? ctx.getImageData(box.left, at - 1, box.width, 3)
                           : ctx.getImageData(at - 1, box.top, 3, box.height);
  const span = axis === "y" ? box.width : box.height;
  let hits = 0;
  for (let i = 0; i < span; i++) {
    let hit = false;
    for (let j = 0; j < 3; j++) {
      const o = axis === "y" ? (j * box.width + i) * 4 : (i * 3 + j) * 4;
      const d = img.data;
      if ([0, 1, 2].every(c => Math.abs(d[o + c] - want[c]) < 40)) hit = true;
    }
    if (hit) hits++;
  }
  return hits / span;
}
"""


def drawn_fraction(page: Page, key: str, value: float, axis: str, color_var: str) -> float:
    """The share of the chart's row (``axis="y"``) or column (``"x"``) at ``value`` painted in that colour."""
    return float(page.evaluate(PIXELS_JS, [key, value, axis, color_var]))
