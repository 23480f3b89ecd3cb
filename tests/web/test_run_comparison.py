"""A compare rule's statistic on the run's chart: ``comparison.json`` (checked against medians computed here)
and the line drawn in headless Chromium. A real service, runs created over the API."""

from __future__ import annotations

import re
import statistics
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from alerts.web.views.run_comparison import shown_steps
from tests.support.service import ServiceProcess, running_service
from tests.support.waiting import eventually
from tests.web.browser import drawn_fraction, log_in, new_page, screenshot, wait_charts_drawn

PROJECT = "sweep"
MIN_RUNS, GRACE, MARGIN = 3, 1, 0.5
RULES = f"""
rules:
  - name: worse-than-the-sweep
    where: {{tags: [sweep]}}
    metric: val/loss
    compare: {{to: {{group: same}}, stat: median, min_runs: {MIN_RUNS}, grace: {GRACE}, margin: {MARGIN}}}
  - name: loss-high
    metric: val/loss
    when: "> 7"
"""


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    workdir = tmp_path_factory.mktemp("run-comparison")
    (workdir / "rules.yaml").write_text(RULES)
    with running_service(workdir, {"rule_files": [str(workdir / "rules.yaml")]}) as started:
        yield started


@pytest.fixture(scope="module")
def key(service: ServiceProcess) -> str:
    return service.create_key(PROJECT)


def new_run(service: ServiceProcess, key: str, curve: dict[int, float], *, group: str,
            tags: tuple[str, ...] = ("sweep",)) -> str:
    """A run of ``group`` that logged ``val/loss`` at the steps of ``curve``."""
    run_id = f"c{uuid.uuid4().hex[:8]}"
    response = service.api("POST", "/api/v1/runs", key=key,
                           json={"project": PROJECT, "id": run_id, "name": run_id, "group": group, "tags": list(tags)})
    assert response.status_code == 200, response.text
    records = [{"seq": i + 1, "type": "history", "step": step, "timestamp": 1_800_000_000.0 + step,
                "runtime": float(step), "data": {"val/loss": value}} for i, (step, value) in enumerate(curve.items())]
    response = service.api("POST", f"/api/v1/runs/{PROJECT}/{run_id}/records", key=key, json={"records": records})
    assert response.status_code == 200, response.text
    return run_id


def value_at(curve: dict[int, float], step: int) -> float | None:
    """The value at the largest logged step <= ``step``, once the run has reached ``step``."""
    if not min(curve) <= step <= max(curve):
        return None
    return curve[max(s for s in curve if s <= step)]


def comparison(client: httpx.Client, run_id: str, **query: Any) -> dict[str, Any]:
    response = client.get(f"/runs/{PROJECT}/{run_id}/comparison.json", params={"key": "val/loss", **query})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_the_statistic_is_the_median_of_the_other_runs_at_each_step(service: ServiceProcess, key: str,
                                                                    client: httpx.Client) -> None:
    group = f"g{uuid.uuid4().hex[:6]}"
    curves = [
        {s: 1.0 + 0.1 * s for s in range(10)},
        {s: 3.0 - 0.2 * s for s in range(10)},
        {s: 2.0 + 0.05 * s * s for s in range(0, 10, 2)},  # even steps only: odd steps take the value before
        {s: 1.5 + 0.3 * s for s in range(6)},  # stops at step 5
        {s: 2.5 - 0.1 * s for s in range(4)},  # stops at step 3
        {s: 0.5 + 0.25 * s for s in range(10)},
    ]
    ids = [new_run(service, key, curve, group=group) for curve in curves]
    new_run(service, key, {s: 1000.0 for s in range(10)}, group=f"{group}-other")  # another group: never counted
    outsider = new_run(service, key, {s: 2.0 for s in range(10)}, group=group, tags=())  # `where` does not match

    for judged in (5, 2):
        others = [curve for i, curve in enumerate(curves) if i != judged]
        steps = sorted({s for curve in curves for s in curve})
        found = eventually(lambda run_id=ids[judged]: comparison(client, run_id, width=200),
                           lambda data: [c["runs"] for c in data["comparisons"]] == [5],
                           what=f"the comparison of run {judged} with its 5 others")
        [line] = found["comparisons"]
        assert line["rule"] == "worse-than-the-sweep" and line["statistic"] == "median"
        assert line["label"] == "worse-than-the-sweep: median of 5 runs"
        assert line["steps"] == steps == list(range(10))
        for at, step in enumerate(steps):
            values = [v for curve in others if (v := value_at(curve, step)) is not None]
            assert line["counts"][at] == len(values), step
            if step < GRACE or len(values) < MIN_RUNS:  # a gap: the rule judges nothing there
                assert line["stat"][at] is line["low"][at] is line["high"][at] is line["threshold"][at] is None, step
                continue
            median = statistics.median(values)
            assert line["stat"][at] == pytest.approx(median), step
            assert line["threshold"][at] == pytest.approx(median + MARGIN), step
            quartiles = statistics.quantiles(values, n=4, method="inclusive")  # numpy's linear percentile
            assert [line["low"][at], line["high"][at]] == pytest.approx([quartiles[0], quartiles[2]]), step
        # Gaps at step 0 (grace) and, for run 5, at step 9 (only 2 others reached it; run 2 has 3 there).
        assert [at for at, v in enumerate(line["stat"]) if v is None] == ([0, 9] if judged == 5 else [0])

    # The page lists the rule on the chart it judges; the chart of another key and a run the rule's
    # `where` does not match get nothing.
    page = client.get(f"/runs/{PROJECT}/{ids[5]}.json").json()
    assert [c["rule"] for c in page["comparisons"]["val/loss"]] == ["worse-than-the-sweep"]
    assert page["comparisons"]["val/loss"][0]["has_margin"] is True
    assert [t["rule"] for t in page["thresholds"]["val/loss"]] == ["loss-high"]
    assert client.get(f"/runs/{PROJECT}/{outsider}.json").json()["comparisons"] == {}
    assert comparison(client, outsider)["comparisons"] == []
    assert comparison(client, ids[5], key="val/other")["comparisons"] == []
    html = client.get(f"/runs/{PROJECT}/{ids[5]}").text
    assert 'data-comparison-url="/runs/sweep/' in html and "the median of the other runs (line)" in html

    # A zoomed window.
    window = comparison(client, ids[5], start=2, end=6)["comparisons"][0]
    assert window["steps"] == [2, 3, 4, 5, 6]
    bad = client.get(f"/runs/{PROJECT}/{ids[5]}/comparison.json", params={"key": "val/loss", "start": 5, "end": 2})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "end"]


def test_the_chart_draws_the_median_of_the_sweep(service: ServiceProcess, key: str, browser: Browser) -> None:
    group = f"b{uuid.uuid4().hex[:6]}"
    for level in (1.0, 2.0, 3.0, 4.0):  # the others' median is 2.5 at every step, the threshold 3.0
        new_run(service, key, {s: level for s in range(21)}, group=group)
    # Evaluated every other step: its curve spans the others' steps between its own.
    judged = new_run(service, key, {s: 6.0 - s / 10 for s in range(0, 21, 2)}, group=group)

    page: Page = new_page(browser)
    console_errors: list[str] = []
    page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
    log_in(page, service.base_url, key, next_path=f"/runs/{PROJECT}/{judged}")
    page.wait_for_url(re.compile(rf"/runs/{PROJECT}/{judged}$"))
    wait_charts_drawn(page)
    chart = page.locator('section.chart[data-key="val/loss"]')
    expect(chart).to_have_attribute("data-drawn", re.compile(r"[1-9]"))
    expect(chart.locator(".u-legend")).to_contain_text("worse-than-the-sweep: median of 4 runs")
    expect(chart.locator(".u-legend")).to_contain_text("worse-than-the-sweep: threshold")
    assert chart.get_attribute("data-error") is None and chart.get_attribute("data-comparison-error") is None
    # The median (2.5) is a row painted in the comparison colour, the threshold (3.0) one in the threshold's;
    # the run's own curve (6 down to 4) crosses neither.
    assert drawn_fraction(page, "val/loss", 2.5, "y", "--compare") > 0.5
    assert drawn_fraction(page, "val/loss", 3.0, "y", "--threshold") > 0.3
    assert drawn_fraction(page, "val/loss", 3.5, "y", "--compare") < 0.1
    screenshot(page, "run-comparison", "median-of-the-sweep")

    # On the wall-time axis there is no statistic (it is defined per step).
    page.locator('input[name="x-axis"][value="time"]').check()
    expect(chart.locator(".u-legend")).not_to_contain_text("worse-than-the-sweep")
    expect(chart.locator(".u-legend")).to_contain_text("value")
    assert console_errors == []
    page.close()


def test_a_narrow_chart_gets_at_most_one_step_per_pixel_column() -> None:
    steps = [s * s for s in range(200)]  # denser early: the columns are of x, not of steps
    assert shown_steps(steps, 100, None, None) == steps  # up to 2 * width steps: every one
    shown = shown_steps(steps, 10, None, None)
    columns = [min(9, s * 10 // steps[-1]) for s in shown]
    assert shown[0] == 0 and columns == sorted(set(columns)) and len(shown) <= 10
    assert shown_steps(steps, 10, 100, 400) == [100, 121, 144, 169, 196, 225, 256, 289, 324, 361, 400]
