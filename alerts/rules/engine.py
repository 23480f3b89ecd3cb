"""The rule engine: evaluates every incoming point against the rules that can match its key.

Finding rules for a key never scans rules that cannot match: exact metric names are a dict lookup,
globs are tried once per new key and the answer is cached. State is kept per (rule, run, key) and
is bounded by the rule's windows (``compare`` rules also keep bounded per-step summaries of the runs they
compare: ``compare.py``); firing alerts are persisted, so a restart neither loses one nor notifies it again.
"""

from __future__ import annotations

import fnmatch
import logging
import math
import time
import uuid
from collections.abc import Awaitable, Callable
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field, replace
from operator import itemgetter, le, lt
from typing import Any, Literal

from alerts.model import Alert, AlertSource, AlertStatus, Run, RunEvent, RunState, fingerprint
from alerts.presentation import human_duration, iso, run_url
from alerts.rules.columns import KeyColumn, key_columns
from alerts.rules.compare import REFRESH, CompareGroups
from alerts.rules.conditions import Threshold, Verdict
from alerts.rules.lifecycle import SeriesState, Transition, advance
from alerts.rules.loader import Rule, RuleSet
from alerts.rules.spec import Comparison, NotFinite, RuleSpec
from alerts.storage.base import RecordBatch, Store

log = logging.getLogger(__name__)

AlertSink = Callable[[list[Alert], Run | None], Awaitable[object]]
SeriesKey = tuple[str, int, str]  # (rule name, run pk, metric key or "")
_POINT_KINDS = ("when", "plateau", "change", "zscore", "compare")
_NOTHING: frozenset[str] = frozenset()


@dataclass
class _RunContext:
    run: Run
    matches: dict[str, bool] = field(default_factory=dict)
    latest: dict[str, float] = field(default_factory=dict)
    """Latest value per key that some ``expr`` rule reads."""
    last_seen: dict[str, float] = field(default_factory=dict)
    """Service-clock time of the last point per absent-rule name (``absent`` uses the service clock)."""
    started_seen: float = 0.0
    live: bool = True
    """The run's process is there to act on: its last batch came from it, not from ``runwatch sync``."""
    plans: dict[str, _KeyPlan] = field(default_factory=dict)
    """Per metric key: the rules that apply to this run, bound to their series state (built once)."""
    plain_seen: dict[str, tuple[int, float]] = field(default_factory=dict)
    """Per metric key: the last (step, timestamp) its plain thresholds judged (they share one: a quiet
    plain series has no state of its own; see ``_KeyPlan.plain``)."""


@dataclass(frozen=True, slots=True)
class ActiveSeries:
    """A pending or firing (rule, run, metric) series, as :meth:`RuleEngine.active_series` reports it."""

    rule: Rule
    project: str
    run_pk: int
    metric: str
    status: Literal["pending", "firing"]
    since: float | None
    """When the condition started to hold (pending) or the alert fired (firing)."""
    step: int | None
    labels: dict[str, str]
    alert: Alert | None
    """The firing alert; None while pending."""


Bound = tuple[int, Rule, SeriesState]
"""A rule bound to its series of one key of one run, with its position in the key's plan."""


@dataclass(slots=True)
class _KeyPlan:
    plain: list[tuple[int, Rule]]
    """Unsmoothed ``<``/``<=``/``>``/``>=`` and ``not finite`` thresholds: quiet together for a column whose
    values stay within the bounds below (the tightest threshold of each operator). Such a series keeps no
    state while quiet (it would be most of the engine's memory): only its pending or firing ones do."""
    points: list[Bound]
    """Every other point-driven rule."""
    exprs: list[Rule]
    absents: list[Rule]
    expr_map: dict[str, Rule] = field(default_factory=dict)
    active: dict[int, SeriesState] = field(default_factory=dict)
    """The plain series (by position) that are pending or firing."""
    compares: list[Bound] = field(default_factory=list)
    """The ``compare`` rules (judged against their group of runs: ``alerts/rules/compare.py``)."""
    above: float = math.inf
    """Quiet while the greatest value is <= this (least ``>`` threshold) ..."""
    at_or_above: float = math.inf
    """... < this (least ``>=`` threshold) ..."""
    below: float = -math.inf
    """... and the least value is >= this (greatest ``<`` threshold) ..."""
    at_or_below: float = -math.inf
    """... and > this (greatest ``<=`` threshold)."""

    def plain_quiet(self, low: float, high: float) -> bool:
        return high <= self.above and high < self.at_or_above and low >= self.below and low > self.at_or_below


def _plain_condition(rule: Rule) -> Comparison | NotFinite | None:
    evaluator = rule.evaluator
    condition = evaluator.condition if isinstance(evaluator, Threshold) and evaluator.over is None else None
    if isinstance(condition, NotFinite) or (isinstance(condition, Comparison)
                                            and condition.op in ("<", "<=", ">", ">=")):
        return condition
    return None


def _key_plan(plain: list[tuple[int, Rule, SeriesState | None]], bound: list[Bound], exprs: list[Rule],
              absents: list[Rule]) -> _KeyPlan:
    plan = _KeyPlan([], bound, exprs, absents, {rule.name: rule for rule in exprs})
    for position, rule, state in plain:
        plan.plain.append((position, rule))
        if state is not None:
            plan.active[position] = state
        condition = _plain_condition(rule)
        if isinstance(condition, Comparison):
            if condition.op == ">":
                plan.above = min(plan.above, condition.threshold)
            elif condition.op == ">=":
                plan.at_or_above = min(plan.at_or_above, condition.threshold)
            elif condition.op == "<":
                plan.below = max(plan.below, condition.threshold)
            else:
                plan.at_or_below = max(plan.at_or_below, condition.threshold)
    return plan


@dataclass
class _Index:
    exact: dict[str, list[Rule]] = field(default_factory=dict)
    globs: list[Rule] = field(default_factory=list)
    expr_by_key: dict[str, list[Rule]] = field(default_factory=dict)
    absent: list[Rule] = field(default_factory=list)
    run_state: list[Rule] = field(default_factory=list)
    compares: bool = False
    """Some rule is a ``compare`` rule: batches prepare their groups first."""
    cache: dict[str, list[Rule]] = field(default_factory=dict)
    absent_cache: dict[str, list[Rule]] = field(default_factory=dict)

    def absent_rules(self, key: str) -> list[Rule]:
        found = self.absent_cache.get(key)
        if found is None:
            found = [rule for rule in self.absent
                     if rule.spec.metric == "*" or fnmatch.fnmatchcase(key, rule.spec.metric or "")]
            if len(self.absent_cache) < 1_000_000:
                self.absent_cache[key] = found
        return found

    def point_rules(self, key: str) -> list[Rule]:
        found = self.cache.get(key)
        if found is None:
            found = list(self.exact.get(key, ()))
            found += [rule for rule in self.globs if fnmatch.fnmatchcase(key, rule.spec.metric or "")]
            if len(self.cache) < 1_000_000:  # bound the cache against key explosions
                self.cache[key] = found
        return found


def build_index(rules: list[Rule]) -> _Index:
    index = _Index()
    for rule in rules:
        kind = rule.spec.kind
        metric = rule.spec.metric or ""
        if kind in _POINT_KINDS:
            index.compares |= kind == "compare"
            if any(ch in metric for ch in "*?["):
                index.globs.append(rule)
            else:
                index.exact.setdefault(metric, []).append(rule)
        elif kind == "expr":
            assert rule.spec.expr is not None
            for key in rule.spec.expr.keys:
                index.expr_by_key.setdefault(key, []).append(rule)
        elif kind == "absent":
            index.absent.append(rule)
        else:
            index.run_state.append(rule)
    return index


class RuleEngine:
    """Subscribes to ingest (``on_batch``, ``on_run_event``); hands alert changes to ``sink``."""

    def __init__(self, store: Store, sink: AlertSink, *, public_url: str,
                 clock: Callable[[], float] = time.time,
                 new_id: Callable[[], str] = lambda: str(uuid.uuid4()), shortcuts: bool = True) -> None:
        """``shortcuts=False`` judges every point through ``Evaluator.update``: the straight evaluation the
        property tests hold the column shortcuts (``absorb_quiet``, plain thresholds) against."""
        self._store = store
        self._shortcuts = shortcuts
        self._sink = sink
        self._public_url = public_url
        self._clock = clock
        self._new_id = new_id
        self._rules: dict[str, Rule] = {}
        self._index = _Index()
        self._runs: dict[int, _RunContext] = {}
        self._series: dict[SeriesKey, SeriesState] = {}
        self.compares = CompareGroups(store)
        """The groups of runs ``compare`` rules judge against (``alerts/rules/compare.py``)."""
        self._released: dict[int, list[Alert]] = {}
        """Alert changes of other runs that a batch's points made (a ``compare`` rule's waiting points)."""
        self._everywhere: set[str] = set()
        self._plain_lists: dict[tuple[tuple[int, str], ...], list[tuple[int, Rule]]] = {}
        """Names of the rules without a ``where``: they apply to every run, nothing to check per run."""

    @property
    def rules(self) -> list[Rule]:
        return list(self._rules.values())

    def active_series(self) -> list[ActiveSeries]:
        """Every series that is pending or firing now (the dashboard's rule counts and pending alerts).

        A pending series has no alert yet, so it exists only here; it is listed while its run is known
        to the engine (running), which is when it can still fire.
        """
        found: list[ActiveSeries] = []
        for (name, run_pk, metric), state in self._series.items():
            rule = self._rules.get(name)
            if rule is None:
                continue
            if state.alert is not None:  # state.status == "firing"
                found.append(ActiveSeries(rule, state.alert.project, run_pk, metric, "firing",
                                          state.alert.starts_at, state.alert.step, dict(state.alert.labels),
                                          state.alert))
            elif state.status == "pending" and run_pk in self._runs:
                run = self._runs[run_pk].run
                found.append(ActiveSeries(rule, run.project, run_pk, metric, "pending", state.pending_since,
                                          state.last_step if state.last_step >= 0 else None,
                                          alert_labels(rule, run, metric), None))
        return found

    def series_counts(self, *, project: str | None = None) -> dict[str, dict[str, int]]:
        """Per rule name: how many series are ``pending`` and ``firing`` (of ``project`` only, if given)."""
        counts = {name: {"pending": 0, "firing": 0} for name in self._rules}
        for series in self.active_series():
            if project is None or series.project == project:
                counts[series.rule.name][series.status] += 1
        return counts

    # Setup and reload -----------------------------------------------------------------------------
    async def start(self, ruleset: RuleSet, *, restore_runs: bool = True) -> None:
        """Install the rules, then restore running runs and firing alerts from storage. ``restore_runs=False``
        (replicas): no run is this engine's until :meth:`adopt` makes it so."""
        self._install(ruleset)
        if not restore_runs:
            self.compares.refresh = REFRESH  # the other replicas' runs of a group: read from the store
            return
        now = self._clock()
        for run in await self._store.list_runs(project=None, state=RunState.RUNNING.value, limit=10**9):
            self._runs[run.pk] = _RunContext(run=run, started_seen=now)
        for alert in await self._store.list_alerts(project=None, status=AlertStatus.FIRING.value,
                                                   source=AlertSource.RULE.value, limit=10**9):
            if alert.rule in self._rules and alert.run_pk is not None:
                key = (alert.rule, alert.run_pk, alert.labels.get("metric", ""))
                self._series.setdefault(key, self._new_series(self._rules[alert.rule])).alert = alert
            elif alert.rule not in self._rules:
                await self._resolve_orphans([alert], "rule removed")

    async def reload(self, ruleset: RuleSet) -> dict[str, list[str]]:
        """Swap the rule set: unchanged rules keep their state; removed or changed rules resolve."""
        old = self._rules
        kept = {name for name, rule in old.items()
                if name in {r.name for r in ruleset.rules} and _same(rule, next(r for r in ruleset.rules
                                                                                 if r.name == name))}
        dropped = [name for name in old if name not in kept]
        self.compares.drop_rules(set(dropped))
        to_resolve: dict[int | None, list[Alert]] = {}
        for key in [key for key in self._series if key[0] in dropped]:
            state = self._series.pop(key)
            if state.alert is not None:
                alert = self._resolved(state.alert, self._clock(), "rule removed" if key[0] not in
                                       {r.name for r in ruleset.rules} else "rule changed")
                to_resolve.setdefault(alert.run_pk, []).append(alert)
        kept_rules = {name: old[name] for name in kept}
        self._install(ruleset, keep=kept_rules)
        for run_pk, alerts in to_resolve.items():
            await self._emit(alerts, self._runs[run_pk].run if run_pk in self._runs else None)
        added = [rule.name for rule in ruleset.rules if rule.name not in old]
        changed = [name for name in dropped if name in self._rules]
        removed = [name for name in dropped if name not in self._rules]
        return {"added": added, "changed": changed, "removed": removed, "unchanged": sorted(kept)}

    def _install(self, ruleset: RuleSet, keep: dict[str, Rule] | None = None) -> None:
        rules = {rule.name: (keep or {}).get(rule.name, rule) for rule in ruleset.rules}
        self._rules = rules
        self._index = build_index(list(rules.values()))
        self._everywhere = {name for name, rule in rules.items() if rule.spec.where.matches_every_run()}
        self._plain_lists = {}
        for context in self._runs.values():
            context.matches.clear()
            context.plans.clear()

    # Ingest events --------------------------------------------------------------------------------
    async def on_batch(self, run: Run, batch: RecordBatch) -> None:
        """Judge a batch's points: series by series over each key's column of points (a quiet column in
        one step, ``Evaluator.absorb_quiet``), then ``expr`` rules step by step. Alert changes are emitted
        in the order a point-by-point pass makes them (each is tagged with the point that caused it)."""
        if run.state.is_terminal:
            return  # late points of an ended run (e.g. a final flush after a heartbeat crash): stored only
        if batch.points:
            context = self._context(run)
            context.live = not batch.delayed
            if self._index.compares:
                await self._prepare_compares(context, batch.points)
            await self._emit(self._judge(context, batch.points), run)
            await self._emit_released()

    def _judge(self, context: _RunContext, points: list[tuple[str, int, float, float]]) -> list[Alert]:
        """The alert changes ``points`` (one run's, in order) make, in the order a point-by-point pass
        makes them; series state moves on, nothing is stored or sent."""
        run = context.run
        now = self._clock()
        plans = context.plans
        changes: list[tuple[tuple[int, int, int], Alert]] = []
        has_exprs = False
        spans: dict[str, tuple[float, float] | None] = {}  # per key an expr reads: this batch's range (None: NaN/inf)
        for column in key_columns(points):
            key = column.key
            plan = plans.get(key)
            if plan is None:
                plan = plans[key] = self._plan(context, key)
            if plan.points or plan.plain or plan.compares:
                self._judge_column(context, column, plan, changes)
            if plan.exprs:
                has_exprs = True
                values = column.values
                spans[key] = (min(values), max(values)) if math.isfinite(sum(values)) else None
            if plan.absents:
                # ``now`` is one instant for the whole batch: a key's later points would repeat this.
                for position, rule in enumerate(plan.absents):
                    context.last_seen[rule.name] = now
                    absent_state = self._series.get((rule.name, run.pk, ""))
                    if absent_state is not None and absent_state.alert is not None:
                        changes.append(((column.first, 2, position),
                                        self._resolve(absent_state, now, "points resumed")))
        if has_exprs:
            self._judge_exprs(context, points, changes, self._quiet_exprs(context, spans))
        if len(changes) > 1:
            changes.sort(key=itemgetter(0))
        return [alert for _, alert in changes]

    def _judge_column(self, context: _RunContext, column: KeyColumn, plan: _KeyPlan,
                      changes: list[tuple[tuple[int, int, int], Alert]]) -> None:
        steps, stamps, values = column.steps, column.stamps, column.values
        first_step, first_stamp, last_step, last_stamp = steps[0], stamps[0], steps[-1], stamps[-1]
        # A column judged in one step: steps rising, stamps not falling, every value finite.
        whole = self._shortcuts and (len(steps) == 1 or (all(map(lt, steps, steps[1:]))
                                                          and all(map(le, stamps, stamps[1:]))))
        if whole and math.isfinite(sum(values)):
            low, high = min(values), max(values)
        else:
            whole = False
        if plan.plain:
            self._judge_plain(context, column, plan, whole and plan.plain_quiet(low, high), changes)
        for position, rule, state in plan.points:
            evaluator = rule.evaluator
            assert evaluator is not None
            if whole and not state.pending_count and state.alert is None \
                    and (first_step > state.last_step
                         or (first_step == state.last_step and first_stamp > state.last_timestamp)) \
                    and evaluator.absorb_quiet(state.eval_state, stamps, values, low, high):
                state.last_step, state.last_timestamp = last_step, last_stamp
                continue  # the common case: a quiet series stays quiet
            self._judge_points(context, column, position, rule, state, changes)
        for position, rule, state in plan.compares:
            self._judge_compare(context, column, position, rule, state, changes)

    def _judge_plain(self, context: _RunContext, column: KeyColumn, plan: _KeyPlan, quiet: bool,
                     changes: list[tuple[tuple[int, int, int], Alert]]) -> None:
        """The plain thresholds of a key: nothing to do for a quiet column past what they have judged;
        otherwise each is judged point by point, a quiet one on a state made for the column and kept only
        if it turns pending."""
        key = column.key
        seen = context.plain_seen.get(key, (-1, -math.inf))
        first = (column.steps[0], column.stamps[0])
        if quiet and not plan.active and first > seen:
            context.plain_seen[key] = (column.steps[-1], column.stamps[-1])
            return
        run_pk = context.run.pk
        reached = seen
        for position, rule in plan.plain:
            state = plan.active.get(position)
            if state is None:  # judged from where the quiet ones are
                state = SeriesState(last_step=seen[0], last_timestamp=seen[1])
                self._judge_points(context, column, position, rule, state, changes)
                if state.pending_count or state.alert is not None:
                    plan.active[position] = self._series[(rule.name, run_pk, key)] = state
            else:
                self._judge_points(context, column, position, rule, state, changes)
                if not state.pending_count and state.alert is None:  # quiet again: back to no state
                    del plan.active[position]
                    self._series.pop((rule.name, run_pk, key), None)
            reached = max(reached, (state.last_step, state.last_timestamp))
        context.plain_seen[key] = reached

    def _judge_points(self, context: _RunContext, column: KeyColumn, position: int, rule: Rule,
                      state: SeriesState, changes: list[tuple[tuple[int, int, int], Alert]]) -> None:
        """One series over a column, point by point."""
        evaluator = rule.evaluator
        assert evaluator is not None
        plain = evaluator.plain if self._shortcuts else None
        for index, step, timestamp, value in zip(column.indices, column.steps, column.stamps, column.values,
                                                 strict=True):
            if step < state.last_step or (step == state.last_step and timestamp <= state.last_timestamp):
                continue  # out-of-order or duplicate: stored, but judged only once, in order
            # A later sample at the same step (system metrics while training is stuck) is judged.
            state.last_step, state.last_timestamp = step, timestamp
            if plain is not None and not state.pending_count and state.alert is None and not plain(value):
                continue
            verdict = evaluator.update(state.eval_state, timestamp, value)
            if verdict is not None and (verdict.holds or state.alert is not None or state.pending_count):
                transition = advance(rule.spec, state, verdict, timestamp)
                if transition is Transition.FIRE:
                    changes.append(((index, 1, position),
                                    self._fire(rule, context, state, column.key, verdict, step, timestamp)))
                elif transition is Transition.RESOLVE:
                    changes.append(((index, 1, position), self._resolve(state, timestamp, "condition cleared")))

    def _judge_compare(self, context: _RunContext, column: KeyColumn, position: int, rule: Rule,
                       state: SeriesState, changes: list[tuple[tuple[int, int, int], Alert]]) -> None:
        """A ``compare`` series over a column: its points join the run's group, then are judged as soon as
        enough other runs reached their steps; other runs' waiting points this column let through are judged
        too (their changes go out after this batch's, :meth:`_emit_released`)."""
        compares = self.compares
        judged = compares.judge(rule.spec, context.run, column.key, state, column.steps, column.stamps,
                                column.values)
        for step, timestamp, verdict in judged:  # earlier points waiting, then this column's: in step order
            change = self._transition(rule, context, state, column.key, verdict, step, timestamp)
            if change is not None:
                changes.append(((column.first, 1, position), change))
        for run_pk, other, (step, timestamp, verdict) in compares.released(rule.spec, state):
            owner = self._runs.get(run_pk)
            change = self._transition(rule, owner, other, column.key, verdict, step, timestamp) if owner else None
            if change is not None:
                self._released.setdefault(run_pk, []).append(change)

    def _transition(self, rule: Rule, context: _RunContext, state: SeriesState, metric: str, verdict: Verdict,
                    step: int, timestamp: float) -> Alert | None:
        """One verdict through the lifecycle: the alert change it makes, if any."""
        if not (verdict.holds or state.alert is not None or state.pending_count):
            return None
        transition = advance(rule.spec, state, verdict, timestamp)
        if transition is Transition.FIRE:
            return self._fire(rule, context, state, metric, verdict, step, timestamp)
        if transition is Transition.RESOLVE:
            return self._resolve(state, timestamp, "condition cleared")
        return None

    async def _prepare_compares(self, context: _RunContext, points: list[tuple[str, int, float, float]]) -> None:
        """Before judging a batch: the groups its ``compare`` rules judge against, read from the store when
        not held (or due for a refresh). Reading awaits, judging does not: done first, for every key."""
        plans = context.plans
        for key in dict.fromkeys(point[0] for point in points):
            plan = plans.get(key)
            if plan is None:
                plan = plans[key] = self._plan(context, key)
            for _, rule, _ in plan.compares:
                await self.compares.prepare(rule.spec, context.run, key)

    async def _emit_released(self) -> None:
        released, self._released = self._released, {}
        for run_pk, alerts in released.items():
            owner = self._runs.get(run_pk)
            await self._emit(alerts, owner.run if owner is not None else None)

    def _quiet_exprs(self, context: _RunContext, spans: dict[str, tuple[float, float] | None]) -> set[str]:
        """The quiet ``expr`` rules (neither pending nor firing) that cannot hold at any step of this batch:
        their names range over the batch's values and the latest value before it (``Expr.cannot_hold``)."""
        if not self._shortcuts:
            return set()
        latest = context.latest
        ranges: dict[str, tuple[float, float]] = {}
        for key in set(latest) | set(spans):
            before = latest.get(key)
            span = spans.get(key)
            if before is not None and not math.isfinite(before):
                continue
            if span is None:
                if key in spans or before is None:  # a NaN or inf in the batch, or no value at all
                    continue
                span = (before, before)
            elif before is not None:
                span = (min(span[0], before), max(span[1], before))
            ranges[key] = span
        quiet: set[str] = set()
        for key in spans:
            for rule in context.plans[key].exprs:
                if rule.name in quiet:
                    continue
                state = self._series.get((rule.name, context.run.pk, ""))
                if (state is None or (not state.pending_count and state.alert is None)) \
                        and rule.spec.expr is not None and rule.spec.expr.cannot_hold(ranges):
                    quiet.add(rule.name)
        return quiet

    def _judge_exprs(self, context: _RunContext, points: list[tuple[str, int, float, float]],
                     changes: list[tuple[tuple[int, int, int], Alert]], quiet: set[str]) -> None:
        """``expr`` rules in point order: each is judged once per step that changed one of its names."""
        plans = context.plans
        latest = context.latest
        dirty: dict[str, Rule] = {}
        current_step: int | None = None
        last_ts = 0.0
        for index, (key, step, timestamp, value) in enumerate(points):
            if step != current_step and dirty:
                self._evaluate_exprs(context, dirty, current_step or 0, last_ts, changes, index, quiet)
                dirty = {}
            current_step, last_ts = step, timestamp
            plan = plans[key]
            if plan.exprs:
                latest[key] = value
                dirty.update(plan.expr_map)  # as setting each name in turn: first-seen order kept
        if dirty:
            self._evaluate_exprs(context, dirty, current_step or 0, last_ts, changes, len(points), quiet)

    # Replicas ---------------------------------------------------------------------------------------
    def forget_run(self, run_pk: int) -> None:
        """Drop everything held about a run another replica now evaluates (nothing is resolved: its
        alerts stay firing in storage, and the new owner adopts them)."""
        self._runs.pop(run_pk, None)
        self.compares.forget_run(run_pk)
        for key in [key for key in self._series if key[1] == run_pk]:
            del self._series[key]

    def owns(self, run_pk: int) -> bool:
        return run_pk in self._runs

    async def adopt(self, run: Run) -> None:
        """Take over a running run from another replica (or from nobody, after a restart).

        The run's stored points are judged again: for each key its rules read, the last
        ``_TAKEOVER_REPLAY`` seconds of points and at least as many as the rules' windows need. That
        rebuilds the windows, and it judges what the previous owner may have stored without judging (it
        was killed between the two). What the replay fires is matched with the stored alerts by rule,
        metric and step: a stored alert keeps its id (nobody is told again); an episode the replay finds
        with no stored alert fires now (and resolves, if it ended); a stored firing alert the points no
        longer bear out resolves. Transitions inside a window's warm-up (before the replay has seen a
        whole window) are not trusted as new."""
        self.forget_run(run.pk)
        context = self._runs[run.pk] = _RunContext(run=run, started_seen=self._clock())
        stored = await self._store.list_alerts(project=None, run_pk=run.pk, source=AlertSource.RULE.value,
                                               limit=10**6)
        known = {(alert.rule or "", alert.labels.get("metric", ""), alert.step): alert for alert in stored}
        points: list[tuple[str, int, float, float]] = []
        warm: dict[str, int] = {}
        for metric, (count, seconds) in self._history_needed(context, await self._store.metric_keys(run.pk)).items():
            fetched = await self._store.recent_points(run.pk, metric, count=count, seconds=seconds + _TAKEOVER_REPLAY)
            points += fetched
            warm[metric] = _warm_up_end(fetched, count, seconds)
        points.sort(key=itemgetter(1, 2))
        if points and self._index.compares:
            await self._prepare_compares(context, points)
        replayed = self._judge(context, points) if points else []
        last_at = max((point[2] for point in points), default=self._clock())
        changes: list[Alert] = []
        settled: set[str] = set()  # stored alerts the replay accounts for (attached or resolved)
        mapped: dict[str, Alert | None] = {}  # replay alert id -> the stored alert it is (None: warm-up)
        for change in replayed:
            if change.status is AlertStatus.FIRING:
                found = known.get((change.rule or "", change.labels.get("metric", ""), change.step))
                if found is not None:
                    mapped[change.id] = found
                elif (change.step if change.step is not None else -1) <= self._warm_step(change, warm):
                    mapped[change.id] = None
                else:  # an episode nobody judged: it is news now
                    mapped[change.id] = change
                    changes.append(change)
                continue
            target = mapped.get(change.id)
            if target is change or (target is not None and target.id == change.id):
                changes.append(change)
            elif target is not None and target.status is AlertStatus.FIRING and target.id not in settled:
                settled.add(target.id)
                changes.append(self._resolved(replace(target), change.ends_at or last_at,
                                              change.resolved_reason or "condition cleared"))
        for key, state in self._series.items():
            if key[1] != run.pk or state.alert is None:
                continue
            target = mapped.get(state.alert.id)
            if target is not None and target.id != state.alert.id:  # a stored alert
                if target.status is AlertStatus.FIRING and target.id not in settled:
                    state.alert = target
                    settled.add(target.id)
                else:  # resolved meanwhile by the previous owner: a holding point fires anew
                    state.alert = None
                    state.pending_count, state.pending_since = 0, None
            elif target is None:  # fired in the warm-up: a stored firing alert of the series, or news
                firing = next((a for a in stored if a.status is AlertStatus.FIRING and a.id not in settled
                               and (a.rule or "", run.pk, a.labels.get("metric", "")) == key), None)
                if firing is not None:
                    state.alert = firing
                    settled.add(firing.id)
                else:
                    changes.append(replace(state.alert))
        for alert in stored:
            if alert.status is not AlertStatus.FIRING or alert.id in settled:
                continue
            rule = self._rules.get(alert.rule or "")
            key = (alert.rule or "", run.pk, alert.labels.get("metric", ""))
            if rule is None:
                changes.append(self._resolved(replace(alert), self._clock(), "rule removed"))
            elif rule.spec.kind in ("absent", "run_state"):  # not judged from points: as stored
                self._series.setdefault(key, self._new_series(rule)).alert = alert
            else:
                changes.append(self._resolved(replace(alert), last_at, "condition cleared"))
        await self._emit(changes, run)
        await self._emit_released()

    def _warm_step(self, alert: Alert, warm: dict[str, int]) -> int:
        """The last step of the replay's warm-up for the keys ``alert``'s rule reads."""
        rule = self._rules.get(alert.rule or "")
        keys = rule.spec.expr.keys if rule is not None and rule.spec.expr is not None else {alert.metric or ""}
        return max((warm.get(key, -1) for key in keys), default=-1)

    def _history_needed(self, context: _RunContext, keys: list[str]) -> dict[str, tuple[int, float]]:
        """Per metric key some rule of the run judges: how many of its last points, and how many seconds
        back from its latest, rebuild every window (``plateau`` compares with the best ever: up to
        ``_REPLAY_POINTS``)."""
        needed: dict[str, tuple[int, float]] = {}
        for key in keys:
            rules = [rule for rule in self._index.point_rules(key) if self._applies(rule, context)]
            rules += [rule for rule in self._index.expr_by_key.get(key, ()) if self._applies(rule, context)]
            if rules:
                bounds = [_window(rule.spec) for rule in rules]
                needed[key] = (max(count for count, _ in bounds), max(seconds for _, seconds in bounds))
        return needed

    async def on_run_event(self, event: RunEvent) -> None:
        run = event.run
        changes: list[Alert] = []
        if event.state is RunState.RUNNING:
            self._runs[run.pk] = _RunContext(run=run, started_seen=self._clock())
        context = self._context(run)
        context.run = run
        for rule in self._index.run_state:
            if not self._applies(rule, context):
                continue
            assert rule.spec.run_state is not None
            key = (rule.name, run.pk, "")
            state = self._series.setdefault(key, self._new_series(rule))
            if event.state in rule.spec.run_state:
                if state.alert is None:
                    verdict = Verdict(True, False, math.nan, None)
                    changes.append(self._fire(rule, context, state, "", verdict, None, event.at,
                                              reason=event.reason))
            elif state.alert is not None:
                changes.append(self._resolve(state, event.at, f"run is {event.state.value}"))
        if event.state.is_terminal:
            reason = f"run {event.state.value}"
            for key in [key for key in self._series if key[1] == run.pk]:
                state = self._series[key]
                owner = self._rules.get(key[0])
                if owner is not None and owner.spec.kind == "run_state":
                    continue
                if state.alert is not None:
                    changes.append(self._resolve(state, event.at, reason))
                del self._series[key]
            self._runs.pop(run.pk, None)
            self.compares.forget_run(run.pk)
        await self._emit(changes, run)
        if event.state.is_terminal:
            for key in [key for key in self._series if key[1] == run.pk and self._series[key].alert is None]:
                del self._series[key]

    async def check_absent(self) -> None:
        """Scheduled: fire ``absent`` rules for running runs that went quiet (service clock)."""
        if not self._index.absent:
            return
        now = self._clock()
        for context in list(self._runs.values()):
            changes: list[Alert] = []
            for rule in self._index.absent:
                if not self._applies(rule, context):
                    continue
                assert rule.spec.absent is not None
                last = context.last_seen.get(rule.name, context.started_seen)
                key = (rule.name, context.run.pk, "")
                state = self._series.get(key)
                if now - last >= rule.spec.absent and (state is None or state.alert is None):
                    state = self._series.setdefault(key, self._new_series(rule))
                    verdict = Verdict(True, False, now - last, rule.spec.absent)
                    changes.append(self._fire(rule, context, state, rule.spec.metric or "*", verdict, None, now))
            await self._emit(changes, context.run)

    # Evaluation -----------------------------------------------------------------------------------
    def _plan(self, context: _RunContext, key: str) -> _KeyPlan:
        index = self._index
        bound: list[Bound] = []
        compares: list[Bound] = []
        plain: list[tuple[int, Rule, SeriesState | None]] = []
        for position, rule in enumerate(rule for rule in index.point_rules(key) if self._applies(rule, context)):
            series_key = (rule.name, context.run.pk, key)
            state = self._series.get(series_key)
            if self._shortcuts and _plain_condition(rule) is not None:
                plain.append((position, rule, state))  # a state only if pending or firing (restored)
                continue
            if state is None:
                state = self._series[series_key] = self._new_series(rule)
            (compares if rule.spec.compare is not None else bound).append((position, rule, state))
        exprs = [rule for rule in index.expr_by_key.get(key, ()) if self._applies(rule, context)]
        absents = [rule for rule in index.absent_rules(key) if self._applies(rule, context)]
        plan = _key_plan(plain, bound, exprs, absents)
        plan.compares = compares
        # Most runs have the same plain rules for a key: one list for all of them.
        plan.plain = self._plain_lists.setdefault(tuple((position, rule.name) for position, rule in plan.plain),
                                                  plan.plain)
        return plan

    def _evaluate_exprs(self, context: _RunContext, rules: dict[str, Rule], step: int, timestamp: float,
                        changes: list[tuple[tuple[int, int, int], Alert]], index: int,
                        quiet: AbstractSet[str] = _NOTHING) -> None:
        latest = context.latest
        for position, rule in enumerate(rules.values()):
            assert rule.spec.expr is not None
            if rule.name in quiet:  # cannot hold: only whether it has a value (every name has one) counts
                holds, value, threshold = (False if rule.spec.expr.keys <= latest.keys() else None), None, None
            else:
                holds, value, threshold = rule.spec.expr.describe(latest)
            if holds is None:
                continue
            series_key = (rule.name, context.run.pk, "")
            state = self._series.get(series_key)
            if state is None:
                state = self._series[series_key] = self._new_series(rule)
            if step < state.last_step or (step == state.last_step and timestamp <= state.last_timestamp):
                continue
            state.last_step, state.last_timestamp = step, timestamp
            if not holds and not state.pending_count and state.alert is None and self._shortcuts:
                continue  # a quiet series stays quiet: no verdict to build
            verdict = Verdict(holds, not holds, math.nan if value is None else value, threshold)
            transition = advance(rule.spec, state, verdict, timestamp)
            if transition is Transition.FIRE:
                changes.append(((index, 0, position), self._fire(rule, context, state, "", verdict, step, timestamp)))
            elif transition is Transition.RESOLVE:
                changes.append(((index, 0, position), self._resolve(state, timestamp, "condition cleared")))

    def _applies(self, rule: Rule, context: _RunContext) -> bool:
        if rule.name in self._everywhere:
            return True
        matched = context.matches.get(rule.name)
        if matched is None:
            run = context.run
            matched = context.matches[rule.name] = rule.spec.where.matches(
                run.project, run.id, run.name, run.tags, run.config, run.group, run.job_type)
        return matched

    def _context(self, run: Run) -> _RunContext:
        context = self._runs.get(run.pk)
        if context is None:
            context = self._runs[run.pk] = _RunContext(run=run, started_seen=self._clock())
        return context

    @staticmethod
    def _new_series(rule: Rule) -> SeriesState:
        return SeriesState(eval_state=rule.evaluator.new_state() if rule.evaluator else None)

    # Alerts -------------------------------------------------------------------------------------
    def _fire(self, rule: Rule, context: _RunContext, state: SeriesState, metric: str, verdict: Verdict,
              step: int | None, timestamp: float, *, reason: str | None = None) -> Alert:
        run = context.run
        spec = rule.spec
        labels = alert_labels(rule, run, metric)
        value = None if verdict.value is None else float(verdict.value)
        template_context = {
            "rule": rule.template_rule(),
            "run": {"id": run.id, "name": run.name, "project": run.project, "state": run.state.value,
                    "url": run_url(self._public_url, run.project, run.id), "config": run.config, "tags": run.tags},
            "metric": metric or None, "value": value, "threshold": verdict.threshold, "step": step,
            "severity": spec.severity.value, "labels": labels, "started_at": iso(timestamp), "reason": reason,
            "compare": verdict.detail,
            "stop": None,
        }
        stops = "stop_run" in spec.actions and context.live and not run.state.is_terminal \
            and run.stop_request is None
        if stops:
            runtime = max(0.0, timestamp - run.started_at)
            template_context["stop"] = {"step": step, "runtime": human_duration(runtime),
                                        "runtime_seconds": runtime}
        title, text = _render(rule, template_context)
        alert = Alert(
            id=self._new_id(), fingerprint=fingerprint(labels), source=AlertSource.RULE, project=run.project,
            title=title, text=text, severity=spec.severity, labels=labels, status=AlertStatus.FIRING,
            starts_at=timestamp, rule=spec.name, run_pk=run.pk, metric=metric or None,
            value=None if spec.kind == "run_state" else value,
            threshold=verdict.threshold, step=step, created_at=self._clock(), notify=tuple(spec.notify),
            actions=("stop_run",) if stops else (),
        )
        state.alert = alert
        # A snapshot: the alert may resolve later in the same batch, before this change is emitted.
        return replace(alert)

    def _resolve(self, state: SeriesState, timestamp: float, reason: str) -> Alert:
        assert state.alert is not None
        alert = self._resolved(replace(state.alert), timestamp, reason)
        state.alert = None
        state.pending_count, state.pending_since = 0, None
        return alert

    def _resolved(self, alert: Alert, timestamp: float, reason: str) -> Alert:
        rule = self._rules.get(alert.rule or "")
        alert.status = AlertStatus.RESOLVED
        alert.ends_at = max(timestamp, alert.starts_at)
        alert.resolved_reason = reason
        alert.notify = tuple(rule.spec.notify) if rule else alert.notify
        return alert

    async def _resolve_orphans(self, alerts: list[Alert], reason: str) -> None:
        now = self._clock()
        await self._emit([self._resolved(alert, now, reason) for alert in alerts], None)

    async def _emit(self, alerts: list[Alert], run: Run | None) -> None:
        if not alerts:
            return
        await self._store.save_alerts(alerts)
        for alert in alerts:
            log.info("alert %s %s: %s (%s)", alert.rule, alert.status.value, alert.title,
                     alert.resolved_reason or alert.labels.get("run", ""))
        await self._sink(alerts, run)


def alert_labels(rule: Rule, run: Run, metric: str) -> dict[str, str]:
    """The labels of the alerts of one series (SPEC §6): the rule's own labels last, so they may override."""
    spec = rule.spec
    labels = {"alertname": spec.name, "rule": spec.name, "source": AlertSource.RULE.value,
              "severity": spec.severity.value, "project": run.project, "run": run.id, "run_name": run.name}
    if metric:
        labels["metric"] = metric
    labels.update(spec.labels)
    return labels


_REPLAY_POINTS = 100_000
"""The most points of one key a takeover judges again (a ``plateau``'s best-so-far, or a long duration)."""
_TAKEOVER_REPLAY = 60.0
"""Seconds of points (back from a key's latest) a takeover judges again at least: what a killed owner
may have stored but not judged is the tail of what it received."""


def _warm_up_end(points: list[tuple[str, int, float, float]], count: int, seconds: float) -> int:
    """For a key's points as ``recent_points(count, seconds + _TAKEOVER_REPLAY)`` returned them: the last
    step before the replay has a whole window (``count`` points and ``seconds``) behind every point, that
    is before the last ``_TAKEOVER_REPLAY`` seconds; -1 when the points are the key's whole history (fewer
    than ``count`` came before the time window)."""
    if not points:
        return -1
    latest = points[-1][2]
    if sum(1 for point in points if point[2] < latest - seconds - _TAKEOVER_REPLAY) < count:
        return -1
    return max((point[1] for point in points if point[2] < latest - _TAKEOVER_REPLAY), default=-1)


def _window(spec: RuleSpec) -> tuple[int, float]:
    """The points (count, and seconds back from the latest) that rebuild a rule's state exactly."""
    count, seconds = 1, float(spec.keep_firing_for)
    for amount in (spec.for_, spec.over.last if spec.over is not None else 0):
        if isinstance(amount, int):
            count += amount
        else:
            seconds += amount
    if spec.plateau is not None:
        count = _REPLAY_POINTS
    if spec.change is not None:
        count += spec.change.window + spec.change.baseline
    if spec.zscore is not None:
        count += spec.zscore.window
    return min(count, _REPLAY_POINTS), seconds


def _same(old: Rule, new: Rule) -> bool:
    return old.spec == new.spec


def _render(rule: Rule, context: dict[str, Any]) -> tuple[str, str]:
    try:
        return rule.title.render(context), rule.text.render(context)
    except Exception as exc:  # validated at load; a surprise at 3 a.m. must not lose the alert
        log.error("rule %s: template failed (%s); sending the raw condition", rule.name, exc)
        return f"{rule.name} in {context['run']['name']}", rule.spec.condition_text
