"""``chart_data`` against a real SQLite store, with alerts fired by the real rule engine (``Simulation``, what
``alerts test-rules`` drives): per rule kind the series, the threshold or band the rule judged (checked
against the rule's maths done here by hand) and the markers. Each kind's chart is rendered and saved
(``pictures.save``) to be looked at."""

from __future__ import annotations

import math
import random
import statistics
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from alerts.charts.data import ChartData, Panel, chart_data
from alerts.charts.render import render_png
from alerts.model import Alert, AlertSource, AlertStatus, RunState, Severity
from alerts.presentation import alert_object
from alerts.rules.loader import Rule, load_rules
from alerts.rules.testing import Simulation
from alerts.storage import Store
from tests.charts.pictures import save, write_long_run

URL = "http://runwatch.test"
Series = Mapping[str, Sequence[float | None]]


async def simulate(store: Store, folder: Path, rules: str, runs: Mapping[str, Series], *,
                   group: str | None = None) -> tuple[list[Rule], Simulation]:
    """The runs logging their series step by step through the real engine (one second per step)."""
    path = folder / "rules.yaml"
    path.write_text(rules)
    ruleset = load_rules([path])
    sim = Simulation(store, ruleset)
    await sim.start()
    for run_id in runs:
        await sim.start_run(run_id, project="vision", name=f"exp-{run_id}", tags=[], config={}, group=group)
    steps = max(len(values) for series in runs.values() for values in series.values())
    for step in range(steps):
        sim.now += 1.0
        for run_id, series in runs.items():
            points = {key: value for key, values in series.items()
                      if step < len(values) and (value := values[step]) is not None}
            if points:
                await sim.log(run_id, step, points)
    return ruleset.rules, sim


def fired(sim: Simulation, rule: str | None = None) -> list[dict[str, Any]]:
    """The alert objects (SPEC §7) of the alerts as they fired, in firing order."""
    runs = {run.pk: run for run in sim.runs.values()}
    seen: dict[str, dict[str, Any]] = {}
    for alert in sim.events:
        if alert.status is AlertStatus.FIRING and alert.id not in seen and rule in (None, alert.rule):
            seen[alert.id] = alert_object(alert, runs.get(alert.run_pk or -1), URL)
    return list(seen.values())


def only_panel(data: ChartData | None) -> Panel:
    assert data is not None
    assert len(data.panels) == 1
    return data.panels[0]


def at(steps: Sequence[float], values: Sequence[float], step: float) -> float:
    return values[list(steps).index(step)]


def look(data: ChartData | None, folder: Path, name: str) -> bytes:
    """Render and keep the picture; every chart must be one small opaque PNG."""
    assert data is not None
    png = render_png(data)
    assert png.startswith(b"\x89PNG") and len(png) < 100_000
    save(png, folder, name)
    return png


def noisy(count: int, level: float, seed: int, spread: float = 0.02) -> list[float | None]:
    rng = random.Random(seed)
    return [level + rng.uniform(-spread, spread) for _ in range(count)]


async def test_a_threshold_rule_draws_its_line_and_the_step_it_fired(store: Store, tmp_path: Path) -> None:
    acc: list[float | None] = [0.1, 0.25, 0.4, 0.52, 0.61, 0.66, 0.7, 0.72, 0.2, 0.15, 0.5, 0.62]
    rules, sim = await simulate(store, tmp_path, """
rules:
  - {name: acc-floor, metric: val/acc, when: "< 0.3"}
""", {"r1": {"val/acc": acc}})
    first, *_ = fired(sim)
    assert first["step"] == 0  # the run starts below the floor; the later dip is the second firing
    dip = [alert for alert in fired(sim) if alert["step"] == 8]
    data = await chart_data(store, rules, dip)
    panel = only_panel(data)
    assert data is not None and data.title == "exp-r1 · val/acc"
    assert "acc-floor: val/acc < 0.3" in data.subtitle and "fired at step 8" in data.subtitle
    assert [(line.value, line.label) for line in panel.lines] == [(0.3, "threshold < 0.3")]
    (trace,) = panel.traces
    assert trace.steps == tuple(range(12)) and trace.values == tuple(acc)
    assert [(m.step, m.value, m.kind) for m in panel.markers] == [(8.0, 0.2, "fired")]
    look(data, tmp_path, "when")


async def test_an_over_rule_draws_the_threshold_of_its_aggregate(store: Store, tmp_path: Path) -> None:
    rules, sim = await simulate(store, tmp_path, """
rules:
  - {name: acc-smoothed, metric: val/acc, over: {last: 3, agg: mean}, when: "< 0.3"}
""", {"r1": {"val/acc": [0.8, 0.7, 0.75, 0.6, 0.3, 0.2, 0.1, 0.15]}})
    (alert,) = fired(sim)
    assert alert["step"] == 6  # mean(0.3, 0.2, 0.1) < 0.3
    panel = only_panel(data := await chart_data(store, rules, [alert]))
    assert [(line.value, line.label) for line in panel.lines] == [(0.3, "threshold (mean of last 3) < 0.3")]
    assert panel.markers[0].step == 6
    look(data, tmp_path, "when-over")


async def test_a_change_rule_draws_the_band_around_its_baseline(store: Store, tmp_path: Path) -> None:
    loss = noisy(40, 1.0, seed=1) + noisy(10, 1.8, seed=2)
    rules, sim = await simulate(store, tmp_path, """
rules:
  - name: loss-jump
    metric: train/loss
    change: {window: 5, baseline: 20, by: "50%", direction: increase}
""", {"r1": {"train/loss": loss}})
    (alert,) = fired(sim)
    step = alert["step"]
    panel = only_panel(data := await chart_data(store, rules, [alert]))
    (band,) = panel.bands
    mean_level = next(level for level in panel.levels if level.style == "judged")
    (limit,) = [level for level in panel.levels if level.style == "limit"]  # increase: the upper edge only
    values = [float(v) for v in loss if v is not None]
    # The rule's maths by hand: the window's mean against the mean of the baseline points before it.
    baseline = statistics.fmean(values[step - 24:step - 4])
    window = statistics.fmean(values[step - 4:step + 1])
    assert at(band.steps, band.center, step) == pytest.approx(baseline)
    assert at(band.steps, band.high, step) == pytest.approx(baseline * 1.5)
    assert at(band.steps, band.low, step) == pytest.approx(baseline * 0.5)
    assert at(limit.steps, limit.values, step) == pytest.approx(baseline * 1.5)
    assert at(mean_level.steps, mean_level.values, step) == pytest.approx(window)
    assert window >= baseline * 1.5
    before = step - 1  # it fired at the first step past the band: the step before was inside
    assert at(mean_level.steps, mean_level.values, before) < at(band.steps, band.high, before)
    assert band.steps[0] == 24  # the first step with a whole window and baseline
    look(data, tmp_path, "change")


async def test_a_zscore_rule_draws_mean_and_deviations_of_the_window_before_each_point(store: Store,
                                                                                       tmp_path: Path) -> None:
    loss = [1.0 + 0.05 * math.sin(step / 2) for step in range(30)] + [1.6, 1.0, 1.02]
    rules, sim = await simulate(store, tmp_path, """
rules:
  - {name: loss-spike, metric: train/loss, zscore: {window: 10, threshold: 3}}
""", {"r1": {"train/loss": loss}})
    (alert,) = fired(sim)
    assert alert["step"] == 30
    panel = only_panel(data := await chart_data(store, rules, [alert]))
    (band,) = panel.bands
    assert len([level for level in panel.levels if level.style == "limit"]) == 2  # either direction
    for step in (10, 25, 30):
        before = [float(v) for v in loss[step - 10:step] if v is not None]
        mean, std = statistics.fmean(before), statistics.stdev(before)
        assert at(band.steps, band.center, step) == pytest.approx(mean)
        assert at(band.steps, band.high, step) == pytest.approx(mean + 3 * std)
        assert at(band.steps, band.low, step) == pytest.approx(mean - 3 * std)
    assert loss[30] > at(band.steps, band.high, 30)
    assert band.steps[0] == 10
    look(data, tmp_path, "zscore")


async def test_a_plateau_rule_shades_the_points_without_improvement(store: Store, tmp_path: Path) -> None:
    loss: list[float | None] = [2.0, 1.5, 1.2, 1.0, 0.9, 0.85, 0.86, 0.9, 0.87, 0.88, 0.86, 0.9, 0.89]
    rules, sim = await simulate(store, tmp_path, """
rules:
  - {name: stalled, metric: val/loss, plateau: {patience: 5, mode: min}}
""", {"r1": {"val/loss": loss}})
    (alert,) = fired(sim)
    assert alert["step"] == 10
    panel = only_panel(data := await chart_data(store, rules, [alert]))
    (span,) = panel.spans
    assert (span.start, span.end) == (5, 10)  # from the best (0.85 at step 5) to the firing
    assert [line.value for line in panel.lines] == [0.85]
    look(data, tmp_path, "plateau")


async def test_a_compare_rule_draws_the_statistic_of_the_other_runs(store: Store, tmp_path: Path) -> None:
    curves: dict[str, Series] = {
        f"r{i}": {"val/loss": [2.0 - 0.1 * step + 0.02 * i for step in range(12)]} for i in range(4)}
    curves["bad"] = {"val/loss": [2.0 - 0.02 * step for step in range(12)]}
    rules, sim = await simulate(store, tmp_path, """
rules:
  - name: worse-than-sweep
    metric: val/loss
    compare: {to: {group: same}, stat: median, min_runs: 3, margin: 0.2}
""", curves, group="sweep-1")
    (alert,) = [alert for alert in fired(sim) if alert["run"]["id"] == "bad"]
    step = alert["step"]
    panel = only_panel(data := await chart_data(store, rules, [alert]))
    (band,) = panel.bands
    (threshold,) = panel.levels
    others = [float(series["val/loss"][step] or 0) for run_id, series in curves.items() if run_id != "bad"]
    assert at(band.steps, band.center, step) == pytest.approx(statistics.median(others))
    assert at(threshold.steps, threshold.values, step) == pytest.approx(statistics.median(others) + 0.2)
    assert alert["value"] > at(threshold.steps, threshold.values, step)
    assert "median of 4 other runs" in band.label
    look(data, tmp_path, "compare")


async def test_an_expr_rule_draws_each_metric_it_reads(store: Store, tmp_path: Path) -> None:
    train = [2.0 - 0.1 * step for step in range(15)]
    val = [2.1 - 0.08 * step if step < 9 else 1.4 + 0.05 * step for step in range(15)]
    rules, sim = await simulate(store, tmp_path, """
rules:
  - {name: overfitting, expr: "`val/loss` - `train/loss` > 0.5"}
""", {"r1": {"train/loss": list(train), "val/loss": list(val), "lr": [0.1] * 15}})
    (alert,) = fired(sim)
    data = await chart_data(store, rules, [alert])
    assert data is not None and data.title == "exp-r1"
    assert [panel.title for panel in data.panels] == ["train/loss", "val/loss"]
    for panel, values in zip(data.panels, (train, val), strict=True):
        assert panel.traces[0].values == tuple(values)
        assert [m.step for m in panel.markers] == [alert["step"]]
    look(data, tmp_path, "expr")


async def test_a_run_state_alert_draws_the_last_logged_metrics_and_marks_the_end(store: Store,
                                                                                 tmp_path: Path) -> None:
    steps = 30
    rules, sim = await simulate(store, tmp_path, """
rules:
  - {name: crashed, run_state: [crashed]}
""", {"r1": {
        "train/loss": [2.0 - 0.05 * s for s in range(steps)],
        "train/lr": [0.1] * steps,
        "val/acc": [0.05 * s if s % 5 == 0 else None for s in range(steps - 3)],
        "grad_norm": [1.0 + s if s > 20 else 1.0 for s in range(steps)],
        "system/gpu.0.memory": [50.0 + s for s in range(steps)],
        "warmup/ratio": [0.1 * s for s in range(5)],
    }})
    await sim.set_state("r1", RunState.CRASHED, "CUDA out of memory")
    (alert,) = fired(sim)
    data = await chart_data(store, rules, [alert])
    assert data is not None
    # The four logged last (system metrics and the long-finished warm-up left out), latest first.
    assert [panel.title for panel in data.panels] == ["grad_norm", "train/loss", "train/lr", "val/acc"]
    for panel in data.panels:
        assert [(m.step, m.kind, m.label) for m in panel.markers] == [(29.0, "state", "crashed at step 29")]
    look(data, tmp_path, "run-state")


async def test_an_absent_alert_draws_the_silent_metric_first(store: Store, tmp_path: Path) -> None:
    rules, sim = await simulate(store, tmp_path, """
rules:
  - {name: no-val, metric: val/loss, absent: 10s}
""", {"r1": {"train/loss": [1.0 - 0.01 * s for s in range(20)], "val/loss": [1.2 - 0.01 * s for s in range(8)]}})
    sim.now += 30
    await sim.engine.check_absent()
    (alert,) = fired(sim)
    data = await chart_data(store, rules, [alert])
    assert data is not None
    assert [panel.title for panel in data.panels] == ["val/loss", "train/loss"]
    assert data.panels[0].traces[0].steps[-1] == 7  # where it went silent
    assert [(m.step, m.label) for m in data.panels[1].markers] == [(19.0, "last step 19")]
    look(data, tmp_path, "absent")


def explicit(run: Any, *, metric: str | None, step: int | None = None, source: AlertSource = AlertSource.SDK,
             project: str = "vision") -> dict[str, Any]:
    """An ``alert()`` call's alert object (or a Prometheus one, with no run)."""
    alert = Alert(id="a-1", fingerprint="f", source=source, project=project, title="Diverging", text="loss went up",
                  severity=Severity.ERROR, labels={}, status=AlertStatus.FIRING, starts_at=1.0,
                  run_pk=run.pk if run else None, metric=metric, step=step)
    return alert_object(alert, run, URL)


async def test_an_alert_call_is_drawn_only_with_a_chart_metric(store: Store, tmp_path: Path) -> None:
    rules, sim = await simulate(store, tmp_path, "rules: []\n", {"r1": {"val/acc": [0.5, 0.4, 0.3, 0.2, 0.1]}})
    run = sim.runs["r1"]
    data = await chart_data(store, rules, [explicit(run, metric="val/acc", step=3)])
    panel = only_panel(data)
    assert panel.traces[0].values == (0.5, 0.4, 0.3, 0.2, 0.1)
    assert [(m.step, m.value) for m in panel.markers] == [(3.0, 0.2)]
    assert not panel.lines and not panel.bands
    look(data, tmp_path, "alert-call")
    assert await chart_data(store, rules, [explicit(run, metric=None, step=3)]) is None
    assert await chart_data(store, rules, [explicit(run, metric="never/logged")]) is None


async def test_nothing_to_draw_without_a_run(store: Store, tmp_path: Path) -> None:
    rules, sim = await simulate(store, tmp_path, "rules: []\n", {"r1": {"val/acc": [0.5]}})
    prometheus = explicit(None, metric=None, source=AlertSource.PROMETHEUS, project="")
    assert await chart_data(store, rules, [prometheus]) is None
    assert await chart_data(store, rules, []) is None
    gone = explicit(sim.runs["r1"], metric="val/acc") | {"run": {"id": "deleted", "name": "x"}}
    assert await chart_data(store, rules, [gone]) is None
    # A Prometheus alert grouped with a run's alert: the run's is drawn.
    data = await chart_data(store, rules, [prometheus, explicit(sim.runs["r1"], metric="val/acc")])
    assert data is not None and data.title == "exp-r1 · val/acc"


async def test_a_group_overlays_one_colour_per_run_up_to_ten(store: Store, tmp_path: Path) -> None:
    runs: dict[str, Series] = {
        f"r{i:02d}": {"val/acc": [0.6 + 0.01 * i, 0.5, 0.4 - 0.01 * i, 0.25 - 0.01 * i, 0.2]} for i in range(12)}
    runs["r00"] = {**runs["r00"], "train/loss": [1.0, 2.0, 3.0, 4.0, 5.0]}
    rules, sim = await simulate(store, tmp_path, """
rules:
  - {name: acc-floor, metric: val/acc, when: "< 0.3"}
  - {name: loss-high, metric: train/loss, when: "> 3"}
""", runs)
    alerts = fired(sim)
    assert len(alerts) == 13
    three = [alert for alert in alerts if alert["run"]["id"] in ("r00", "r01", "r02") and alert["rule"] == "acc-floor"]
    panel = only_panel(data := await chart_data(store, rules, three))
    assert data is not None and data.title == "val/acc · 3 runs"
    assert [trace.colour for trace in panel.traces] == [0, 1, 2]
    assert [name for name, _ in data.legend] == ["exp-r00", "exp-r01", "exp-r02"]
    assert [line.value for line in panel.lines] == [0.3]
    assert len(panel.markers) == 3
    look(data, tmp_path, "group-3")

    # Every alert of the storm: the lead's metric only (the loss alert is left out), 10 runs and "2 more".
    loss_first = sorted(alerts, key=lambda alert: alert["rule"] != "loss-high")
    panel = only_panel(data := await chart_data(store, rules, loss_first))
    assert data is not None and data.title == "exp-r00 · train/loss"
    acc_first = sorted(alerts, key=lambda alert: alert["rule"] != "acc-floor")
    panel = only_panel(data := await chart_data(store, rules, acc_first))
    assert data is not None and data.title == "val/acc · 12 runs" and data.more == 2
    assert len(panel.traces) == 10 and len({trace.colour for trace in panel.traces}) == 10
    look(data, tmp_path, "group-12")


async def test_a_long_run_gets_the_firing_enlarged_and_no_more_points_than_asked(store: Store,
                                                                                 tmp_path: Path) -> None:
    steps = 100_000
    run = await write_long_run(store, steps)
    path = tmp_path / "rules.yaml"
    path.write_text('rules:\n  - {name: acc-spike, metric: val/acc, zscore: {window: 50, threshold: 4}}\n')
    rules = load_rules([path]).rules
    alert = alert_object(Alert(id="z", fingerprint="f", source=AlertSource.RULE, project="vision", title="t",
                               text="", severity=Severity.WARNING, labels={}, status=AlertStatus.FIRING, starts_at=1,
                               rule="acc-spike", run_pk=run.pk, metric="val/acc", step=steps - 40), run, URL)
    data = await chart_data(store, rules, [alert], max_points=1000)
    assert data is not None
    whole, enlarged = data.panels
    (trace,) = whole.traces
    assert len(trace.steps) <= 1000
    assert max(v for v in trace.values if not math.isnan(v)) == 25.0  # the one-point spike survives
    assert {(at, kind) for at, kind in trace.nonfinite} == {(steps // 2, "nan"), (2 * steps // 3, "inf")}
    assert whole.enlarged == enlarged.x_range
    assert enlarged.x_range is not None and enlarged.x_range[0] < steps - 40 <= enlarged.x_range[1]
    (zoomed,) = enlarged.traces
    assert len(zoomed.steps) <= 1000
    assert list(zoomed.steps) == list(range(int(zoomed.steps[0]), int(zoomed.steps[-1]) + 1))  # raw points
    (band,) = enlarged.bands
    assert band.steps[0] == enlarged.x_range[0]  # warmed up before the window: banded from its first step
    assert at(band.steps, band.high, steps - 40) < 0.9 < 25  # the drop to 0.1 is far below the band
    look(data, tmp_path, "long-run")


async def test_runs_that_crashed_together_share_their_panels(store: Store, tmp_path: Path) -> None:
    rules, sim = await simulate(store, tmp_path, """
rules:
  - {name: crashed, run_state: [crashed]}
""", {run_id: {"train/loss": [2.0 - 0.1 * s - 0.05 * i for s in range(10)], "val/acc": [0.1 * s for s in range(8)]}
      for i, run_id in enumerate(("a", "b"))})
    for run_id in ("a", "b"):
        await sim.set_state(run_id, RunState.CRASHED, "OOM")
    data = await chart_data(store, rules, fired(sim))
    assert data is not None and data.title == "crashed · 2 runs"
    assert [panel.title for panel in data.panels] == ["train/loss", "val/acc"]
    for panel in data.panels:
        assert [trace.label for trace in panel.traces] == ["exp-a", "exp-b"]
        assert [(m.step, m.label, m.colour) for m in panel.markers] == [(9.0, "crashed", 0), (9.0, "crashed", 1)]
    look(data, tmp_path, "run-state-group")


async def test_a_not_finite_rule_marks_the_nan_on_the_edge(store: Store, tmp_path: Path) -> None:
    rules, sim = await simulate(store, tmp_path, """
rules:
  - {name: loss-nan, metric: train/loss, when: not finite}
""", {"r1": {"train/loss": [1.0, 0.9, 0.8, math.nan, 0.7, math.inf, 0.6]}})
    first, *_ = fired(sim)
    assert first["step"] == 3
    panel = only_panel(data := await chart_data(store, rules, [first]))
    assert not panel.lines  # nothing to cross: the marks are the story
    (trace,) = panel.traces
    assert trace.nonfinite == ((3.0, "nan"), (5.0, "inf"))
    assert math.isnan(trace.values[3]) and math.isnan(trace.values[5])  # the line breaks there
    assert [(m.step, m.value) for m in panel.markers] == [(3.0, None)]  # no dot: there is no value to put it on
    look(data, tmp_path, "not-finite")
