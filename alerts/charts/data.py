"""What one notification's chart shows (:func:`chart_data`): plain, picklable data :mod:`render` draws.

The series come from :meth:`Store.series`, the dashboard's downsampling (at most ``2 * width`` points raw,
else one min/max pair per pixel column, NaN/inf kept as markers), so a spike or a NaN in 100,000 points
stays visible and render never gets more than ``max_points`` points per series.

What is drawn, by the first chartable alert of the notification (SPEC §7 alert objects):

- a rule on a metric (``when``/``over``, ``change``, ``zscore``, ``plateau``, ``compare``): that metric, with
  what the rule judged it against (:mod:`bands`), and the step it fired at marked. A long run gets a second
  panel enlarging the points around the firing, raw;
- ``expr``: each metric the expression reads, a panel each (their scales differ);
- ``run_state`` and ``absent``: the run's last-logged metrics (up to :data:`MAX_KEYS`), its last step
  marked as the moment of the change;
- an ``alert()`` call: its ``metric`` (the SDK's ``chart=`` key), its step marked if it gave one;
- a Prometheus alert, or one without a run: nothing (None).

Several alerts overlay their runs (one colour each, up to :data:`MAX_RUNS`, then "and N more"); alerts about
another metric than the first's are left out of the picture (one chart per notification, about its lead).
"""

from __future__ import annotations

import asyncio
import fnmatch
import math
from bisect import bisect_right
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from alerts.charts.bands import Overlays, Points, describe, overlays, warm_up, window_of
from alerts.charts.model import Band, ChartData, Level, Line, Marker, NonFinite, Panel, Span, Trace
from alerts.model import Run
from alerts.rules.loader import Rule
from alerts.rules.spec import RuleSpec
from alerts.storage.base import SeriesData, Store

__all__ = ["MAX_KEYS", "MAX_RUNS", "Band", "ChartData", "Level", "Line", "Marker", "Panel", "Span", "Trace",
           "chart_data"]

MAX_RUNS = 10
"""Runs overlaid in one chart; more are counted ("and N more")."""
MAX_KEYS = 4
"""Metrics (panels) of an ``expr``, ``run_state`` or ``absent`` chart."""
ZOOM_POINTS = 150
"""Points before the firing the enlarged panel shows at least (a rule with a longer window: 3 windows)."""
ZOOM_MIN = 600
"""Points a series must have for the enlarged panel: a shorter one is readable whole."""
KEYS_EXAMINED = 100
"""Metric keys looked at for the last-logged ones (a model logging per-layer statistics has thousands)."""


@dataclass
class _Subject:
    """The alerts drawn, by run: what they have in common decides the keys."""

    kind: Literal["metric", "expr", "state"]
    keys: list[str]
    rule: Rule | None
    runs: list[tuple[Run, list[Mapping[str, Any]]]] = field(default_factory=list)
    more: int = 0


async def chart_data(store: Store, rules: Sequence[Rule], alerts: Sequence[Mapping[str, Any]],
                     *, max_points: int = 2000) -> ChartData | None:
    """What to draw for one notification. ``alerts`` are the SPEC §7 alert objects of the notification
    (``alerts.presentation.alert_object``), ``rules`` the loaded rules (thresholds, bands, the metrics an
    ``expr`` reads). None when there is nothing to draw (Prometheus alerts, no run, an ``alert()`` call
    without a chart metric, no stored points)."""
    by_name = {rule.name: rule for rule in rules}
    subject = await _subject(store, by_name, alerts)
    if subject is None:
        return None
    width = max(10, max_points // 2)
    if subject.kind == "state" and subject.runs:
        subject.keys = await _last_logged(store, subject.runs[0][0], subject.rule)
    single = len(subject.keys) == 1
    panels = [panel for found in await asyncio.gather(*(_key_panels(store, subject, key, by_name, width,
                                                                     single_key=single) for key in subject.keys))
              for panel in found]
    if not any(trace.steps or trace.nonfinite for panel in panels for trace in panel.traces):
        return None
    runs = subject.runs
    # One run: its name and metric (the panels name the metrics when there are several). A group: what its
    # alerts share (the metric, or the rule) and how many runs.
    what = subject.keys[0] if subject.kind == "metric" else subject.rule.name if subject.rule else "alerts"
    if len(runs) == 1:
        title = f"{runs[0][0].name} · {what}" if subject.kind == "metric" else runs[0][0].name
        legend: tuple[tuple[str, int], ...] = ()
    else:
        title = f"{what} · {len(runs) + subject.more} runs"
        legend = tuple((run.name, index) for index, (run, _) in enumerate(runs))
    return ChartData(title=title, subtitle=_subtitle(subject, by_name), panels=tuple(panels), legend=legend,
                     more=subject.more)


def _chartable(alert: Mapping[str, Any]) -> bool:
    if not alert.get("run") or alert.get("source") == "prometheus":
        return False
    return alert.get("source") == "rule" or bool(alert.get("metric"))


def _kind_of(alert: Mapping[str, Any], rule: Rule | None) -> tuple[Literal["metric", "expr", "state"], str]:
    """How the alert is drawn, and what alerts drawn with it share (its metric, or its rule)."""
    if alert.get("source") != "rule":
        return "metric", str(alert["metric"])
    kind = rule.spec.kind if rule is not None else None
    if kind == "expr" and rule is not None:
        return "expr", rule.name
    if kind in ("run_state", "absent") or (kind is None and not alert.get("metric")):
        return "state", ""
    return "metric", str(alert["metric"])


async def _subject(store: Store, rules: Mapping[str, Rule], alerts: Sequence[Mapping[str, Any]]) -> _Subject | None:
    chartable = [alert for alert in alerts if _chartable(alert)]
    if not chartable:
        return None
    lead = chartable[0]
    lead_rule = rules.get(lead.get("rule") or "")
    kind, shared = _kind_of(lead, lead_rule)
    by_run: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for alert in chartable:
        if _kind_of(alert, rules.get(alert.get("rule") or "")) == (kind, shared):
            by_run.setdefault((str(alert["project"]), str(alert["run"]["id"])), []).append(alert)
    subject = _Subject(kind, [shared] if kind == "metric" else [], lead_rule)
    if kind == "expr" and lead_rule is not None and lead_rule.spec.expr is not None:
        subject.keys = sorted(lead_rule.spec.expr.keys)[:MAX_KEYS]
    for (project, run_id), run_alerts in by_run.items():
        if len(subject.runs) == MAX_RUNS:
            subject.more += 1
            continue
        run = await store.get_run(project, run_id)
        if run is not None:
            subject.runs.append((run, run_alerts))
    return subject if subject.runs else None


async def _last_logged(store: Store, run: Run, rule: Rule | None) -> list[str]:
    """The run's metrics logged last (by step): an ``absent`` rule's own metric first (its line stops early)."""
    keys = await store.metric_keys(run.pk)
    pattern = rule.spec.metric if rule is not None and rule.spec.absent is not None else None
    silent = [key for key in keys if pattern and fnmatch.fnmatchcase(key, pattern)][:1]
    # System metrics (GPU, memory) are sampled on their own clock: the training metrics tell the story.
    candidates = [key for key in keys if not key.startswith("system/") and key not in silent] or \
        [key for key in keys if key not in silent]
    latest: list[tuple[int, str]] = []
    for key in candidates[:KEYS_EXAMINED]:
        found = await store.recent_points(run.pk, key, count=0, seconds=0.0)
        if found:
            latest.append((found[-1][1], key))
    latest.sort(key=lambda item: (-item[0], item[1]))
    return silent + [key for _, key in latest[:MAX_KEYS - len(silent)]]


def _trace(data: SeriesData, label: str, colour: int, start: float | None = None,
           end: float | None = None) -> Trace:
    steps: list[float] = []
    values: list[float] = []
    for first, last, low, high in zip(data.xs, data.xe, data.mins, data.maxs, strict=True):
        if (start is not None and last < start) or (end is not None and first > end):
            continue
        if data.mode == "raw":
            steps.append(first)
            values.append(math.nan if low is None else low)
        else:
            # Both extremes of each pixel column, so a one-point spike keeps its height (which came first
            # is not known; inside one column it makes no visible difference).
            steps += [first, last]
            values += [math.nan if low is None else low, math.nan if high is None else high]
    nonfinite = tuple((at, _nonfinite(kind)) for at, kind, _count in data.nonfinite
                      if (start is None or at >= start) and (end is None or at <= end))
    return Trace(label, colour, tuple(steps), tuple(values), nonfinite)


def _nonfinite(kind: float) -> NonFinite:
    return "nan" if math.isnan(kind) else "inf" if kind > 0 else "-inf"


def _points(data: SeriesData) -> Points:
    """The raw points of a raw series, NaN and ±inf restored."""
    kinds = {at: kind for at, kind, _count in data.nonfinite}
    return [(at, kinds.get(at, math.nan) if value is None else value) for at, value in zip(data.xs, data.mins,
                                                                                           strict=True)]


def _window(data: SeriesData, focus: float, before: int, after: int) -> tuple[float, float]:
    """Steps holding at least ``before`` points before ``focus`` and about ``after`` past it (whole pixel
    columns of the overview, by their counts)."""
    index = max(0, bisect_right(data.xs, focus) - 1)
    first, count = index, 0
    while first > 0 and count < before:
        first -= 1
        count += data.counts[first]
    last, count = index, 0
    while last + 1 < len(data.xs) and count < after:
        last += 1
        count += data.counts[last]
    return data.xs[first], data.xe[last]


def _value_at(points: Points, step: float) -> float | None:
    index = bisect_right(points, (step, math.inf)) - 1
    if index < 0 or points[index][0] != step or not math.isfinite(points[index][1]):
        return None
    return points[index][1]


async def _key_panels(store: Store, subject: _Subject, key: str, rules: Mapping[str, Rule], width: int, *,
                      single_key: bool) -> list[Panel]:
    """The panels of one metric: one (its runs overlaid), or two for one long run (all, and the firing
    enlarged)."""
    traces: list[Trace] = []
    markers: list[Marker] = []
    found = Overlays()
    enlarged: tuple[float, float] | None = None
    zoom_trace: Trace | None = None
    # The runs' series at once: each read is the database's work (a connection each), not the loop's.
    overviews = await asyncio.gather(*(store.series(run.pk, key, width=width) for run, _ in subject.runs))
    for colour, ((run, run_alerts), data) in enumerate(zip(subject.runs, overviews, strict=True)):
        if not data.points:
            continue
        label = run.name if len(subject.runs) > 1 else key
        traces.append(_trace(data, label, colour))
        specs = _specs(subject, rules, run_alerts)
        points = _points(data) if data.mode == "raw" else None
        start = data.extent[0] if data.extent else 0.0
        lone = len(subject.runs) == 1 and single_key
        warm = max([0, *(warm_up(spec) for spec in specs)])
        span = max([ZOOM_POINTS, *(3 * window_of(spec) for spec in specs)])
        # The window, its warm-up and a pixel column's worth either side must come back raw (2 * width).
        column = data.points / max(1, len(data.xs))
        span = max(ZOOM_POINTS, min(span, int((2 * width - warm - 3 * column) / 1.25)))
        if lone and data.points >= max(ZOOM_MIN, 4 * span):
            enlarged = _window(data, _focus(run_alerts, data), span, span // 4)
            # Read from a warm-up before the window, so a band is the rule's from the window's first step.
            read_from = _window(data, enlarged[0], warm, 0)[0] if warm else enlarged[0]
            zoomed = await store.series(run.pk, key, start=read_from, end=enlarged[1], width=width)
            zoom_trace = _trace(zoomed, key, colour, enlarged[0], enlarged[1])
            start = enlarged[0]
            if zoomed.mode == "raw":
                points = _points(zoomed)
        if lone or subject.kind == "metric":
            for spec in specs:
                if lone or spec.when is not None:  # a band is one run's: drawn for a chart of one run only
                    alert = next(a for a in run_alerts if a.get("rule") == spec.name)
                    found.add(await overlays(store, spec, run, key, points, alert, start=start, width=width))
        markers += await _markers(store, subject, run, run_alerts, colour, points or [])
    if not traces:
        return []
    title = key if not single_key else "whole run" if enlarged else ""
    main = Panel(title=title, traces=tuple(traces), lines=tuple(found.lines), bands=tuple(found.bands),
                 levels=tuple(found.levels), spans=tuple(found.spans), markers=tuple(markers), enlarged=enlarged,
                 weight=3.0 if enlarged else 1.0)
    if enlarged is None or zoom_trace is None:
        return [main]
    zoom = Panel(title=f"steps {enlarged[0]:g}–{enlarged[1]:g}, enlarged", traces=(zoom_trace,), lines=main.lines,
                 bands=main.bands, levels=main.levels, spans=main.spans, markers=main.markers, x_range=enlarged,
                 weight=2.0)
    return [main, zoom]


def _specs(subject: _Subject, rules: Mapping[str, Rule], alerts: list[Mapping[str, Any]]) -> list[RuleSpec]:
    """The rules of the alerts, once each."""
    if subject.kind != "metric":
        return []
    names = dict.fromkeys(str(alert.get("rule")) for alert in alerts if alert.get("rule"))
    return [rules[name].spec for name in names if name in rules]


def _focus(alerts: list[Mapping[str, Any]], data: SeriesData) -> float:
    """The step the enlarged panel centres on: where the first alert fired, else the series' end."""
    steps = [alert["step"] for alert in alerts if isinstance(alert.get("step"), int)]
    if steps:
        return float(steps[0])
    return data.extent[1] if data.extent else 0.0


async def _markers(store: Store, subject: _Subject, run: Run, alerts: list[Mapping[str, Any]],
                   colour: int, points: Points) -> list[Marker]:
    """Where the alerts fired (a dot on the line where the point was read raw), or the run's last step for
    a change of state. One run: the step in the label; several: one legend entry for all."""
    several = len(subject.runs) > 1
    if subject.kind == "state":
        last = await store.last_step(run.pk)
        if last is None:
            return []
        if run.state.is_terminal:
            label = run.state.value if several else f"{run.state.value} at step {last}"
        else:
            label = "last step" if several else f"last step {last}"
        return [Marker(float(last), None, label, "state", colour)]
    markers = []
    for alert in alerts:
        step = alert.get("step")
        if isinstance(step, int):
            markers.append(Marker(float(step), _value_at(points, step), "fired" if several else f"fired at step {step}",
                                  "fired", colour))
    return markers


def _subtitle(subject: _Subject, rules: Mapping[str, Rule]) -> str:
    """The rule(s) and what happened, in a line."""
    alerts = [alert for _, run_alerts in subject.runs for alert in run_alerts]
    names = list(dict.fromkeys(str(alert["rule"]) for alert in alerts if alert.get("rule")))
    parts = []
    for name in names[:2]:
        rule = rules.get(name)
        parts.append(f"{name}: {describe(rule.spec)}" if rule is not None else name)
    if len(names) > 2:
        parts.append(f"and {len(names) - 2} more rules")
    if not names:
        parts.append(str(alerts[0].get("title") or "alert"))
    lead = alerts[0]
    if isinstance(lead.get("step"), int) and len(subject.runs) == 1:
        parts.append(f"fired at step {lead['step']}")
    if lead.get("status") == "resolved":
        parts.append("resolved")
    return " · ".join(parts)
