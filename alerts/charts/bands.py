"""What a rule judged a series against, as chart overlays: computed with the rule's own code and parameters.

A ``change`` or ``zscore`` band is the rule's evaluator replayed over the stored points (its state after a
warm-up of the rule's window is the engine's, whatever came before), so the band is the one the rule saw at
each step. A ``compare`` band is the statistic of the run's group read as the engine reads it (the run
page's chart draws the same: ``web/views/run_comparison.py`` uses :func:`comparison_line`). A ``plateau``
shows the stretch without improvement since the best value the alert recorded.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from alerts.charts.model import Band, Level, Line, Span
from alerts.model import Run
from alerts.rules.compare import Group, read_group, threshold
from alerts.rules.conditions import Change, Plateau, ZScore
from alerts.rules.spec import Compare, Comparison, RuleSpec
from alerts.storage.base import Store

__all__ = ["BAND", "Overlays", "comparison_line", "describe", "overlays", "shown_steps", "warm_up", "window_of"]

Points = list[tuple[float, float]]
"""(step, value) in step order, NaN and ±inf as logged."""

BAND = (25.0, 75.0)
"""The percentiles of a compare rule's other runs that its band spans."""


@dataclass
class Overlays:
    lines: list[Line] = field(default_factory=list)
    bands: list[Band] = field(default_factory=list)
    levels: list[Level] = field(default_factory=list)
    spans: list[Span] = field(default_factory=list)

    def add(self, other: Overlays) -> None:
        self.lines += [line for line in other.lines if line not in self.lines]
        self.bands += other.bands
        self.levels += other.levels
        self.spans += other.spans


def threshold_lines(spec: RuleSpec) -> Overlays:
    """A ``when`` rule's threshold (also under ``over``: the aggregate is judged against the same line)."""
    if not isinstance(spec.when, Comparison) or not math.isfinite(spec.when.threshold):
        return Overlays()
    judged = f" ({spec.over.agg} of last {_last(spec.over.last)})" if spec.over is not None else ""
    return Overlays(lines=[Line(spec.when.threshold, f"threshold{judged} {spec.when}")])


def _last(last: int | float) -> str:
    """``over.last``: a count of points, or seconds."""
    return str(last) if isinstance(last, int) else f"{last:g}s"


def describe(spec: RuleSpec) -> str:
    """The rule's condition in a few words, for the chart's subtitle."""
    metric = spec.metric or ""
    if spec.when is not None:
        judged = f"{spec.over.agg} of last {_last(spec.over.last)} " if spec.over is not None else ""
        return f"{judged}{metric} {spec.when}"
    if spec.change is not None:
        change = spec.change
        moved = {"increase": "rose", "decrease": "fell"}.get(change.direction, "moved")
        return f"mean of last {change.window} {moved} by ≥ {change.by} from the {change.baseline} before"
    if spec.zscore is not None:
        zscore = spec.zscore
        side = {"increase": "above", "decrease": "below"}.get(zscore.direction, "from")
        return f"a point > {zscore.threshold:g}σ {side} the mean of the last {zscore.window}"
    if spec.plateau is not None:
        plateau = spec.plateau
        delta = f" of ≥ {plateau.min_delta:g}" if plateau.min_delta else ""
        better = "lower" if plateau.mode == "min" else "higher"
        return f"no improvement{delta} in {plateau.patience} points ({better} is better)"
    if spec.compare is not None:
        return spec.compare.describe()
    if spec.expr is not None:
        return str(spec.expr)
    if spec.absent is not None:
        return f"no {metric or 'metric'} for {spec.absent:g}s"
    if spec.run_state is not None:
        return "run ended " + " or ".join(state.value for state in spec.run_state)
    return spec.condition_text


async def overlays(store: Store, spec: RuleSpec, run: Run, key: str, points: Points | None,
                   alert: Mapping[str, Any], *, start: float, width: int) -> Overlays:
    """What ``spec`` judged ``run``'s ``key`` against. ``points`` are the stored points from a warm-up before
    ``start`` (the first step shown with a band) on, or None when they were not read raw (too many): then
    only what needs no points is drawn."""
    if spec.when is not None:
        return threshold_lines(spec)
    if spec.compare is not None:  # read from the group, over the whole run
        return await compare_band(store, spec, run, key, None, None, width)
    if points is None:
        return Overlays()
    if spec.change is not None:
        return change_band(spec, points, start)
    if spec.zscore is not None:
        return zscore_band(spec, points, start)
    if spec.plateau is not None:
        return plateau_span(spec, points, alert)
    return Overlays()


def warm_up(spec: RuleSpec) -> int:
    """Points before the first banded step the evaluator needs to be in the engine's state there."""
    if spec.change is not None:
        return spec.change.window + spec.change.baseline
    if spec.zscore is not None:
        return spec.zscore.window
    return 0


def window_of(spec: RuleSpec) -> int:
    """Points the rule judges at once: the enlarged window shows a few times that much."""
    if spec.change is not None:
        return spec.change.window + spec.change.baseline
    if spec.zscore is not None:
        return spec.zscore.window
    if spec.plateau is not None:
        return spec.plateau.patience
    if spec.over is not None and spec.over.points is not None:
        return spec.over.points
    return 1


def change_band(spec: RuleSpec, points: Points, start: float) -> Overlays:
    """Per step, the baseline mean and how far the window mean may move from it (``by``), from
    :class:`~alerts.rules.conditions.Change` itself; the window mean it judged as a dashed line."""
    change = spec.change
    assert change is not None
    evaluator = Change(spec)
    state = evaluator.new_state()
    steps: list[float] = []
    low: list[float] = []
    high: list[float] = []
    center: list[float] = []
    means: list[float] = []
    for step, value in points:
        verdict = evaluator.update(state, 0.0, value)
        if verdict is None or step < start:
            continue
        baseline = float(verdict.threshold) if verdict.threshold is not None else math.nan
        allowed = abs(baseline) * change.relative if change.relative is not None else float(change.by)
        steps.append(step)
        center.append(baseline)
        low.append(baseline - allowed)
        high.append(baseline + allowed)
        means.append(verdict.value)
    if not steps:
        return Overlays()
    found = Overlays(bands=[Band(f"baseline ± {change.by} (mean of {change.baseline})", tuple(steps), tuple(low),
                                 tuple(high), tuple(center))],
                     levels=[Level(f"mean of last {change.window}", tuple(steps), tuple(means), "judged")])
    sides = {"increase": [high], "decrease": [low]}.get(change.direction, [low, high])
    found.levels += [Level("", tuple(steps), tuple(side), "limit") for side in sides]
    return found


def zscore_band(spec: RuleSpec, points: Points, start: float) -> Overlays:
    """Per step, mean ± threshold × standard deviation of the window before it: the values
    :class:`~alerts.rules.conditions.ZScore` judges the step's point against (replayed for its window)."""
    zscore = spec.zscore
    assert zscore is not None
    evaluator = ZScore(spec)
    state = evaluator.new_state()
    steps: list[float] = []
    low: list[float] = []
    high: list[float] = []
    center: list[float] = []
    for step, value in points:
        if len(state) >= zscore.window and step >= start:
            # The mean and sample deviation as ZScore.update takes them (its state holds finite values only).
            mean = _mean(state)
            std = math.sqrt(_mean([(v - mean) ** 2 for v in state], len(state) - 1))
            steps.append(step)
            center.append(mean)
            low.append(mean - zscore.threshold * std)
            high.append(mean + zscore.threshold * std)
        evaluator.update(state, 0.0, value)
    if not steps:
        return Overlays()
    found = Overlays(bands=[Band(f"mean ± {zscore.threshold:g}σ of last {zscore.window}",
                                 tuple(steps), tuple(low), tuple(high), tuple(center))])
    sides = {"increase": [high], "decrease": [low]}.get(zscore.direction, [low, high])
    found.levels += [Level("", tuple(steps), tuple(side), "limit") for side in sides]
    return found


def _mean(values: Any, count: int | None = None) -> float:
    values = list(values)
    try:
        total = math.fsum(values)
    except (ValueError, OverflowError):
        total = float(sum(values))
    return total / (len(values) if count is None else count) if values else math.nan


def plateau_span(spec: RuleSpec, points: Points, alert: Mapping[str, Any]) -> Overlays:
    """The points since the best value (the alert's threshold: :class:`~alerts.rules.conditions.Plateau`'s
    verdict carries the best so far) up to the step it fired at, and the best value as a line."""
    plateau = spec.plateau
    assert plateau is not None
    fired = alert.get("step")
    best = alert.get("threshold")
    upto = [(step, value) for step, value in points if fired is None or step <= fired]
    if not upto:
        return Overlays()
    if not isinstance(best, int | float):
        best = _replayed_best(spec, upto)
    since = next((step for step, value in reversed(upto) if value == best), None)
    if since is None:  # the best is older than the points read: the patience points before the firing
        since = upto[max(0, len(upto) - plateau.patience - 1)][0]
    found = Overlays(spans=[Span(since, upto[-1][0], f"no improvement for {plateau.patience} points")])
    if math.isfinite(best):
        found.lines.append(Line(best, f"best {best:.4g}"))
    return found


def _replayed_best(spec: RuleSpec, points: Points) -> float:
    evaluator = Plateau(spec)
    state = evaluator.new_state()
    for _step, value in points:
        evaluator.update(state, 0.0, value)
    return state.best


async def compare_band(store: Store, spec: RuleSpec, run: Run, key: str, start: float | None, end: float | None,
                       width: int) -> Overlays:
    """The statistic of the run's group at each step, its 25th..75th percentile band and the threshold."""
    compare = spec.compare
    assert compare is not None
    group = Group(spec.name, warn=False)  # a copy for the chart: the full-group warning is the engine's
    await read_group(store, group, spec, run, key)
    line = comparison_line(spec.name, compare, group, run, shown_steps(group.steps, width, start, end))
    if not line["steps"]:
        return Overlays()

    def floats(values: list[float | None]) -> tuple[float, ...]:
        return tuple(math.nan if value is None else value for value in values)

    steps = tuple(float(step) for step in line["steps"])
    runs = line["runs"]
    label = f"{compare.stat} of {runs} other run{'' if runs == 1 else 's'}, {BAND[0]:g}–{BAND[1]:g}th pct"
    return Overlays(bands=[Band(label, steps, floats(line["low"]),
                                floats(line["high"]), floats(line["stat"]))],
                    levels=[Level("threshold", steps, floats(line["threshold"]), "limit")])


def shown_steps(steps: list[int], width: int, start: float | None, end: float | None) -> list[int]:
    """The group's steps in the window, at most one per pixel column when there are more than ``2 * width``
    (the series endpoint's raw limit): the first step of each column."""
    inside = [step for step in steps if (start is None or step >= start) and (end is None or step <= end)]
    if len(inside) <= 2 * width:
        return inside
    low, span = inside[0], inside[-1] - inside[0]
    shown, column = [], -1
    for step in inside:
        at = min(width - 1, (step - low) * width // span)
        if at != column:
            shown.append(step)
            column = at
    return shown


def comparison_line(rule_name: str, compare: Compare, group: Group, run: Run, steps: list[int]) -> dict[str, Any]:
    """The rule's statistic of the group's other runs at ``steps``, with its band and threshold (null: a gap)."""
    member = run.pk if run.pk in group.curves else None
    runs = len(group.curves) - (member is not None)
    columns: list[tuple[float | None, ...]] = []
    counts: list[int] = []
    for step in steps:
        others = group.others(member, step)
        counts.append(others)
        found: tuple[float | None, ...] = (None, None, None, None)
        if step >= compare.grace and others >= compare.min_runs:
            stat = group.statistic(member, step, compare.percentile, compare.mode)
            low, high = sorted(group.statistic(member, step, percentile, compare.mode) for percentile in BAND)
            line = threshold(compare, stat)
            if all(math.isfinite(value) for value in (stat, low, high, line)):  # an inf logged: no line there
                found = (stat, low, high, line)
        columns.append(found)
    stats, lows, highs, thresholds = ([column[i] for column in columns] for i in range(4))
    return {
        "rule": rule_name, "statistic": compare.stat, "runs": runs, "min_runs": compare.min_runs,
        "grace": compare.grace, "margin": compare.margin, "mode": compare.mode, "direction": compare.direction,
        "using": compare.using, "label": f"{rule_name}: {compare.stat} of {runs} run{'' if runs == 1 else 's'}",
        "band": f"{BAND[0]:g}th..{BAND[1]:g}th percentile",
        "steps": steps, "stat": stats, "low": lows, "high": highs, "threshold": thresholds, "counts": counts,
    }
