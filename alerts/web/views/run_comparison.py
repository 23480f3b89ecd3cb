"""The statistic a ``compare`` rule judges a run against, drawn on the run's chart of the rule's metric.

The page lists, per chart key, the compare rules whose ``where`` matches the run (:func:`comparisons_for`);
the chart then fetches ``/runs/{project}/{run_id}/comparison.json?key=&width=&start=&end=`` (step axis only:
the statistic is defined per step). Its data is the rule's own: the run's group read from the stored points
as the engine reads it (:func:`alerts.rules.compare.read_group`, with its caps of runs and steps), and at
each step of the group the statistic of the *other* runs' values there (:meth:`Group.statistic`, a run's
value at a step being its value at the largest step <= it logged), their 25th..75th percentile as a band,
and the threshold (statistic ± margin) past which the rule fires. A step is a gap (null) where the rule
judges nothing: before ``grace`` or where fewer than ``min_runs`` other runs have reached it. The others'
values are the logged ones, as the rule sees them; the run's own curve stays its logged values too (a rule
``using: best_so_far`` judges the run's best so far against the line).
"""

from __future__ import annotations

import fnmatch
import math
from typing import Any

from alerts.api.series import WIDTH_DEFAULT
from alerts.model import Run
from alerts.rules.compare import Group, read_group, threshold
from alerts.rules.loader import Rule
from alerts.rules.spec import Compare
from alerts.service import Service

__all__ = ["comparison_json", "comparisons_for", "shown_steps"]

BAND = (25.0, 75.0)
"""The percentiles of the other runs' values the band spans."""


def _matches(metric: str, key: str) -> bool:
    return key == metric or fnmatch.fnmatchcase(key, metric)


def _applies(rule: Rule, run: Run) -> bool:
    return rule.spec.where.matches(run.project, run.id, run.name, run.tags, run.config, run.group, run.job_type)


def compare_rules(rules: list[Rule], run: Run, key: str) -> list[Rule]:
    """The compare rules that judge ``run``'s ``key``."""
    return [rule for rule in rules if rule.spec.compare is not None and rule.spec.metric
            and _matches(rule.spec.metric, key) and _applies(rule, run)]


def comparisons_for(rules: list[Rule], run: Run, keys: list[str]) -> dict[str, list[dict[str, Any]]]:
    """For each key, the compare rules that judge it in this run (no data: the chart fetches that)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for key in keys:
        for rule in compare_rules(rules, run, key):
            compare = rule.spec.compare
            assert compare is not None
            found.setdefault(key, []).append({"rule": rule.spec.name, "statistic": compare.stat,
                                              "has_margin": bool(compare.relative if compare.relative is not None
                                                                 else compare.margin),
                                              "condition": rule.spec.condition_text})
    return found


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


async def comparison_json(service: Service, run: Run, key: str, width: int = WIDTH_DEFAULT,
                          start: float | None = None, end: float | None = None) -> dict[str, Any]:
    """The statistics the compare rules judge ``run``'s ``key`` against, per step of their group, for a chart
    ``width`` pixel columns wide (``start``/``end``: a zoomed window of steps)."""
    lines = []
    for rule in compare_rules(service.rules.rules, run, key):
        compare = rule.spec.compare
        assert compare is not None
        group = Group(rule.spec.name, warn=False)  # read afresh on each view: its full-group warning is the engine's
        await read_group(service.store, group, rule.spec, run, key)
        lines.append(comparison_line(rule.spec.name, compare, group, run,
                                     shown_steps(group.steps, width, start, end)))
    return {"key": key, "x": "step", "width": width, "window": [start, end], "comparisons": lines}
