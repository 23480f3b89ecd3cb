"""The statistic a ``compare`` rule judges a run against, drawn on the run's chart of the rule's metric.

The page lists, per chart key, the compare rules whose ``where`` matches the run (:func:`comparisons_for`);
the chart then fetches ``/runs/{project}/{run_id}/comparison.json?key=&width=&start=&end=`` (step axis only:
the statistic is defined per step). Its data is the rule's own: the run's group read from the stored points
as the engine reads it (:func:`alerts.rules.compare.read_group`, with its caps of runs and steps), and at
each step of the group the statistic of the *other* runs' values there (:meth:`Group.statistic`, a run's
value at a step being its value at the largest step <= it logged), their 25th..75th percentile as a band,
and the threshold (statistic ± margin) past which the rule fires (:func:`alerts.charts.bands.comparison_line`,
which notification charts draw too). A step is a gap (null) where the rule judges nothing: before ``grace``
or where fewer than ``min_runs`` other runs have reached it. The others' values are the logged ones, as the
rule sees them; the run's own curve stays its logged values too (a rule ``using: best_so_far`` judges the
run's best so far against the line).
"""

from __future__ import annotations

import fnmatch
from typing import Any

from alerts.api.series import WIDTH_DEFAULT
from alerts.charts.bands import comparison_line, shown_steps
from alerts.model import Run
from alerts.rules.compare import Group, read_group
from alerts.rules.loader import Rule
from alerts.service import Service

__all__ = ["comparison_json", "comparisons_for", "shown_steps"]


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
