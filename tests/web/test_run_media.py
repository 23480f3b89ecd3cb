"""The run page's Media section: histograms and ``runwatch.plot`` charts, through the JSON twin and drawn
in a real browser (a real service; the media objects are the SDK's own wire encoding)."""

from __future__ import annotations

import math
import re
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pytest
from playwright.sync_api import Browser, Page, expect
from runwatch import plot
from runwatch.histogram import Histogram
from runwatch.media import Table
from runwatch.values import normalize

from alerts.web.views.run_media import MAX_HISTOGRAM_STEPS, bin_values, media_sections
from tests.support.service import ServiceProcess, running_service
from tests.web.browser import DEADLINE_MS, new_page, screenshot, wait_charts_drawn

PROJECT = "media"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    with running_service(tmp_path_factory.mktemp("run-media")) as started:
        yield started


@pytest.fixture(scope="module")
def key(service: ServiceProcess) -> str:
    return service.create_key(PROJECT)


def new_run(service: ServiceProcess, key: str, steps: list[dict[str, Any]]) -> str:
    """A run whose history rows hold ``steps`` (values encoded as the SDK's sender encodes them)."""
    run_id = f"m{uuid.uuid4().hex[:8]}"
    response = service.api("POST", "/api/v1/runs", key=key, json={"project": PROJECT, "id": run_id, "name": run_id})
    assert response.status_code == 200, response.text
    records = [{"seq": i + 1, "type": "history", "step": i, "timestamp": 1_800_000_000.0 + i, "runtime": float(i),
                "data": {k: normalize(v) for k, v in data.items()}} for i, data in enumerate(steps)]
    response = service.api("POST", f"/api/v1/runs/{PROJECT}/{run_id}/records", key=key, json={"records": records})
    assert response.status_code == 200, response.text
    return run_id


def losses() -> Table:
    table = Table(columns=["epoch", "loss", "split"])
    for epoch in range(10):
        table.add_data(epoch, 1 / (epoch + 1), "train")
        table.add_data(epoch, 1.2 / (epoch + 1), "val")
    return table


def test_page_json_shapes_histograms_and_charts(service: ServiceProcess, key: str, client: httpx.Client) -> None:
    steps = [{"weights": Histogram([float(i + j) for j in range(100)], num_bins=10)} for i in range(3)]
    steps[2]["weights"] = Histogram([1.0, 2.0, math.nan, math.inf], num_bins=2)
    steps[2].update({
        "loss_curve": plot.line(losses(), "epoch", "loss", stroke="split", title="Loss"),
        "roc": plot.roc_curve([0, 1, 1, 0], [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]]),
        "cm": plot.confusion_matrix(y_true=[0, 1, 1], preds=[0, 1, 0], class_names=["cat", "dog"]),
        "bars": plot.bar(Table(columns=["name", "n"], data=[["a", 3], ["b", 5]]), "name", "n"),
        "custom": plot.plot_table("me/my-spec/v1", Table(columns=["a"], data=[[1], [2]]), {"value": "a"}),
    })
    run_id = new_run(service, key, steps)
    media = client.get(f"/runs/{PROJECT}/{run_id}.json").json()["media"]

    [weights] = media["histograms"]
    assert weights["key"] == "weights" and weights["logged"] == 3
    assert [s["step"] for s in weights["steps"]] == [0, 1, 2]
    assert weights["steps"][0]["counts"] == [10] * 10 and len(weights["steps"][0]["edges"]) == 11
    assert weights["steps"][2]["nonfinite"] == {"nan": 1, "inf": 1}

    charts = {c["key"]: c for c in media["charts"]}
    assert set(charts) == {"loss_curve", "roc", "cm", "bars", "custom"}
    line = charts["loss_curve"]
    assert (line["kind"], line["title"], line["step"]) == ("line", "Loss", 2)
    assert line["plot"]["type"] == "xy" and line["plot"]["mode"] == "line"
    assert [s["label"] for s in line["plot"]["series"]] == ["train", "val"]
    assert line["plot"]["xs"][:2] == [0.0, 0.0] and line["plot"]["series"][0]["ys"][:2] == [1.0, None]
    roc = charts["roc"]["plot"]
    assert roc["x_label"] == "False positive rate" and roc["diagonal"] is True
    assert [s["label"] for s in roc["series"]] == ["0", "1"]
    matrix = charts["cm"]["matrix"]
    assert (matrix["actual"], matrix["predicted"]) == (["cat", "dog"], ["cat", "dog"])
    assert [[c["value"] for c in row] for row in matrix["rows"]] == [["1", "0"], ["1", "1"]]
    assert charts["bars"]["plot"] == {"type": "bars", "labels": ["a", "b"], "values": [3.0, 5.0], "x_label": "name",
                                      "y_label": "n", "truncated": False}
    custom = charts["custom"]
    assert custom["plot"] is None and custom["table"]["columns"] == ["a"] and custom["table"]["total"] == 2

    html = client.get(f"/runs/{PROJECT}/{run_id}").text
    assert 'id="media"' in html and "data-histogram=" in html and "confusion-matrix" in html
    assert "me/my-spec/v1: shown as its table" in html


def test_run_page_draws_a_histogram_and_a_line_plot(service: ServiceProcess, key: str, browser: Browser) -> None:
    steps: list[dict[str, Any]] = [{"train/loss": 1.0 / (i + 1),
                                    "grads": Histogram([(j - 50) * (i + 1) / 10 for j in range(101)], num_bins=20)}
                                   for i in range(4)]
    steps[-1]["curve"] = plot.line(losses(), "epoch", "loss", stroke="split", title="Loss by epoch")
    steps[-1]["points"] = plot.scatter(losses(), "epoch", "loss")
    run_id = new_run(service, key, steps)

    page: Page = new_page(browser)
    console_errors: list[str] = []  # e.g. a script the Content-Security-Policy refused
    page.on("console", lambda message: console_errors.append(message.text) if message.type == "error" else None)
    page.goto(f"{service.base_url}/login?next=/runs/{PROJECT}/{run_id}")
    page.fill('input[name="api_key"]', key)
    page.click('button[type="submit"]')
    page.wait_for_url(re.compile(rf"/runs/{PROJECT}/{run_id}$"))
    wait_charts_drawn(page)

    histogram = page.locator('section.media-histogram[data-media-key="grads"]')
    expect(histogram).to_have_attribute("data-drawn", re.compile(r"[1-9]"), timeout=DEADLINE_MS)
    expect(histogram.locator("canvas")).to_have_count(1, timeout=DEADLINE_MS)
    expect(histogram.locator(".step-label")).to_have_text("step 3", timeout=DEADLINE_MS)
    assert histogram.get_attribute("data-error") is None
    curve = page.locator('section.media-chart[data-media-key="curve"]')
    expect(curve).to_have_attribute("data-drawn", re.compile(r"[1-9]"), timeout=DEADLINE_MS)
    expect(curve.locator("canvas")).to_have_count(1, timeout=DEADLINE_MS)
    expect(curve.locator(".u-legend")).to_contain_text("train", timeout=DEADLINE_MS)
    expect(curve.locator(".u-legend")).to_contain_text("val", timeout=DEADLINE_MS)
    expect(page.locator('section.media-chart[data-media-key="points"]')).to_have_attribute(
        "data-drawn", re.compile(r"[1-9]"), timeout=DEADLINE_MS)
    screenshot(page, "run-media", "histogram-and-line")

    # The step slider shows an earlier step's histogram.
    slider = histogram.locator('input[type="range"]')
    slider.focus()
    page.keyboard.press("Home")
    expect(histogram.locator(".step-label")).to_have_text("step 0", timeout=DEADLINE_MS)
    expect(histogram).to_have_attribute("data-step", "0", timeout=DEADLINE_MS)
    assert console_errors == []
    page.close()


def test_a_run_with_only_media_still_says_its_charts_are_drawn(service: ServiceProcess, key: str,
                                                                browser: Browser) -> None:
    run_id = new_run(service, key, [{"dist": Histogram([1, 2, 2, 3, 3, 3])}])
    page = new_page(browser)
    page.goto(f"{service.base_url}/login?next=/runs/{PROJECT}/{run_id}")
    page.fill('input[name="api_key"]', key)
    page.click('button[type="submit"]')
    page.wait_for_url(re.compile(rf"/runs/{PROJECT}/{run_id}$"))
    wait_charts_drawn(page)
    section = page.locator('section.media-histogram[data-media-key="dist"]')
    expect(section).to_have_attribute("data-drawn", re.compile(r"[1-9]"), timeout=DEADLINE_MS)
    # No slider for a single step.
    expect(section.locator('input[type="range"]')).to_have_count(0, timeout=DEADLINE_MS)
    page.close()


def test_the_media_api_returns_a_chart_as_sent(service: ServiceProcess, key: str) -> None:
    chart = plot.histogram(Table(columns=["v"], data=[[1.0], [2.0], [2.5]]), "v", title="values")
    run_id = new_run(service, key, [{"h": chart}])
    response = service.api("GET", f"/api/v1/runs/{PROJECT}/{run_id}/media", key=key)
    [item] = response.json()["media"]
    assert item["kind"] == "table" and item["value"]["chart"]["kind"] == "histogram"
    assert item["value"]["data"] == [[1.0], [2.0], [2.5]]


# -- The shaping alone (views/run_media.py), without a service ----------------------------------------

def stored(key: str, step: int, value: Any) -> dict[str, Any]:
    wire = normalize(value)
    return {"key": key, "step": step, "kind": wire["_type"], "value": wire}


def test_histogram_steps_are_thinned_evenly_keeping_the_latest() -> None:
    media = [stored("h", step, Histogram([step, step + 1], num_bins=2)) for step in range(250)]
    [shown] = media_sections(media)["histograms"]
    steps = [s["step"] for s in shown["steps"]]
    assert shown["logged"] == 250 and len(steps) == MAX_HISTOGRAM_STEPS
    assert steps[0] == 0 and steps[-1] == 249 and steps == sorted(steps)


def test_xy_series_keep_vertical_segments_and_skip_non_finite_cells() -> None:
    curve = Table(columns=["class", "x", "y"],
                  data=[["a", 0.0, 0.0], ["a", 0.0, 0.5], ["a", 1.0, 1.0], ["b", 0.5, math.nan], ["b", 0.5, 0.2]])
    [chart] = media_sections([stored("c", 0, plot.plot_table("wandb/area-under-curve/v0", curve,
                                                             {"x": "x", "y": "y", "class": "class"}))])["charts"]
    drawn = chart["plot"]
    assert drawn["xs"] == [0.0, 0.0, 0.5, 1.0]
    assert [s["label"] for s in drawn["series"]] == ["a", "b"]
    assert [s["ys"] for s in drawn["series"]] == [[0.0, 0.5, None, 1.0], [None, None, 0.2, None]]
    assert chart["kind"] == "curve" and "diagonal" not in drawn


def test_a_chart_naming_a_missing_column_is_shown_as_its_table() -> None:
    chart = plot.line(Table(columns=["x", "y"], data=[[1, 2]]), "x", "y")
    chart.fields["y"] = "gone"  # as another client might send it
    [shown] = media_sections([stored("c", 0, chart)])["charts"]
    assert shown["plot"] is None and shown["table"]["columns"] == ["x", "y"]
    assert shown["table"]["rows"] == [[{"text": 1}, {"text": 2}]]


def test_the_latest_chart_of_a_key_is_drawn() -> None:
    media = [stored("c", step, plot.bar(Table(columns=["k", "v"], data=[["a", step]]), "k", "v")) for step in range(3)]
    [shown] = media_sections(media)["charts"]
    assert (shown["step"], shown["logged"], shown["plot"]["values"]) == (2, 3, [2.0])


def test_bin_values_matches_numpy() -> None:
    values = np.random.default_rng(5).normal(size=2000).tolist()
    edges, counts = bin_values(values, 30)
    want_counts, want_edges = np.histogram(values, bins=30)
    assert counts == want_counts.tolist() and edges == pytest.approx(want_edges.tolist())
