"""Cross-run ``compare`` rules: a run's value at a step against a statistic of the other runs' values at
that step (the median stopping rule of Optuna's ``MedianPruner`` and Vizier's automated early stopping).

Groups. A rule compares a run with the runs whose ``same`` selectors (``to``) take the same values: one
:class:`Group` per (rule, metric key, those values). A group keeps, per step, the sorted values of its runs
there, updated as points arrive and never rescanned: a run's value at step s is its value at the largest
step <= s it logged, and it counts for s once it has reached s (logged s or a later step). Judging a point
is a bisect and an index into that step's values.

Its comparison runs (members) are the runs that match the rule's ``where`` and the fixed selectors of
``to`` (globs, config values), in any state: finished, stopped and crashed runs count with the steps they
reached, so a later wave of a sweep is judged against the earlier ones. A run is never compared with
itself: ``min_runs`` counts the others. A NaN point is no value (the run has not reached that step by it).

Deferred judging. A point at a step fewer than ``min_runs`` other runs have reached waits in its series'
queue; the queue is judged in step order as soon as enough others reach the steps (the leading run of a
wave is judged as the others catch up), whichever run's batch brought them.

Bounds, per group: at most ``MAX_STEPS`` distinct steps, the first its runs log; a point at any other step
is neither counted nor judged (a warning is logged once per group). At most ``MAX_RUNS`` members, the
first to log (by run pk when the group is read from storage); a run past that is judged but not counted.
So a group holds at most ``MAX_STEPS * MAX_RUNS`` per-step values and as many curve points, in arrays
(about 70 MB at the bounds; a few kB for a sweep of 20 runs of 100 evaluations). A series keeps at most
``MAX_WAITING`` unjudged points; past that the oldest are dropped unjudged.

Storage. Nothing is persisted but the points themselves: a group is read from the store (each member's
points of the key, once) when a run of this engine first needs it, then kept up to date from the batches
the engine judges, and dropped when no running run of this engine uses it any more. A restart, or a wave
that starts after the previous one ended, reads it again (and then sees the points that arrived after
their run had ended, which are stored only, as for every rule). A series that starts afresh (after a restart
or a takeover) rebuilds its best so far and its unjudged points (those whose step fewer than ``min_runs``
others have reached: never judged, as the count only grows) from the run's own stored points.

Replicas. A replica judges only its own runs and receives only their batches, so it reads a group's runs
again from the store (their points after what it holds) at most every ``refresh`` seconds, when a batch
of one of its runs of the group arrives. Its judgements are those of a single process over the points
stored up to ``refresh`` seconds earlier: a point waits for the others that long at most, and a statistic
may miss a run that reached the step within that delay.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from array import array
from bisect import bisect_left, bisect_right, insort
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from alerts.model import Run
from alerts.rules.conditions import Verdict
from alerts.rules.lifecycle import SeriesState
from alerts.rules.spec import SAME, Compare, RuleSpec
from alerts.storage.base import Store

__all__ = ["MAX_RUNS", "MAX_STEPS", "MAX_WAITING", "REFRESH", "CompareGroups", "CompareSeries", "Group", "read_group",
           "threshold"]

log = logging.getLogger(__name__)

MAX_STEPS = 2_048
"""Distinct steps a group holds."""
MAX_RUNS = 1_024
"""Runs a group counts."""
MAX_WAITING = 1_000
"""Unjudged points a series keeps."""
MAX_LISTED = 100_000
"""Runs listed when a group is read (the newest)."""
REFRESH = 2.0
"""Seconds between a replica's reads of a group's runs."""

GroupKey = tuple[str, str, tuple[str, ...]]
"""(rule name, metric key, values of the rule's ``same`` selectors)."""
Judged = tuple[int, float, Verdict]
"""(step, timestamp, verdict) of one judged point."""


@dataclass(slots=True)
class _Curve:
    """One member's points of the key, by step (the latest value of a step logged twice)."""

    steps: array[int] = field(default_factory=lambda: array("q"))
    stamps: array[float] = field(default_factory=lambda: array("d"))
    values: array[float] = field(default_factory=lambda: array("d"))
    final: bool = False
    """Read from storage after its run had ended: nothing more to read."""

    def value_at(self, step: int) -> float | None:
        """The value at the largest logged step <= ``step``, if the run has reached ``step``."""
        steps = self.steps
        if not steps or not steps[0] <= step <= steps[-1]:
            return None
        return self.values[bisect_right(steps, step) - 1]


class Group:
    """The runs compared with each other by one rule on one key: per step, their sorted values there."""

    def __init__(self, name: str, *, warn: bool = True) -> None:
        self.name = name
        self.warn = warn
        """Log a warning when the group is full (off for a copy read for a page, read again on each view)."""
        self.steps: list[int] = []
        """Every step some member logged (at most ``MAX_STEPS``), sorted."""
        self.at: dict[int, array[float]] = {}
        """Per step of ``steps``: the sorted values of the members that have reached it."""
        self.curves: dict[int, _Curve] = {}
        """Per member run pk: its points."""
        self.users: set[int] = set()
        """This engine's runs judged against the group: it is kept while there is one."""
        self.waiting: dict[int, SeriesState] = {}
        """This engine's series (by run pk) with points waiting for other runs to reach their steps."""
        self.loaded = False
        self.read_at = -math.inf
        self.lock = asyncio.Lock()
        self._full = False

    def add(self, run_pk: int, step: int, timestamp: float, value: float) -> None:
        """A member's point, in step order: an older step is ignored, the same step again replaces it."""
        if math.isnan(value):
            return
        curve = self.curves.get(run_pk)
        if curve is not None and curve.steps and step <= curve.steps[-1]:
            if step == curve.steps[-1] and curve.values[-1] != value:
                values = self.at[step]
                del values[bisect_left(values, curve.values[-1])]
                insort(values, value)
                curve.values[-1], curve.stamps[-1] = value, timestamp
            return
        if (curve is None and len(self.curves) >= MAX_RUNS) or not self.has_step(step):
            return
        if curve is None:
            curve = self.curves[run_pk] = _Curve()
        if curve.steps:  # the steps between its last one and this one: it reached them with its last value
            steps, last = self.steps, curve.values[-1]
            for between in steps[bisect_right(steps, curve.steps[-1]):bisect_left(steps, step)]:
                insort(self.at[between], last)
        insort(self.at[step], value)
        curve.steps.append(step)
        curve.stamps.append(timestamp)
        curve.values.append(value)

    def has_step(self, step: int) -> bool:
        """Whether ``step`` is one of the group's steps, made one if there is room."""
        if step in self.at:
            return True
        if len(self.steps) >= MAX_STEPS:
            if not self._full and self.warn:
                self._full = True
                log.warning("compare rule %s: a group reached %d distinct steps; points at further steps are "
                            "neither counted nor judged", self.name, MAX_STEPS)
            return False
        # A new step: no member logged it, so each that has reached it counts with its value before it.
        found = sorted(value for curve in self.curves.values() if (value := curve.value_at(step)) is not None)
        insort(self.steps, step)
        self.at[step] = array("d", found)
        return True

    def others(self, run_pk: int | None, step: int) -> int:
        """How many members other than ``run_pk`` have reached ``step`` (one of the group's steps)."""
        values = self.at.get(step)
        if values is None:
            return 0
        return len(values) - (self._own(run_pk, step) is not None)

    def statistic(self, run_pk: int | None, step: int, percentile: float, mode: str) -> float:
        """The value ``percentile`` % of the other members at ``step`` are better than (linear interpolation,
        as numpy's percentile): 0 is the best, 50 the median. Needs at least one other member there."""
        values = self.at[step]
        own = self._own(run_pk, step)
        skip = bisect_left(values, own) if own is not None else len(values)
        count = len(values) - (own is not None)

        def nth(index: int) -> float:
            return values[index if index < skip else index + 1]

        position = (percentile if mode == "min" else 100.0 - percentile) / 100.0 * (count - 1)
        low = math.floor(position)
        fraction = position - low
        below = nth(low)
        if fraction == 0:
            return below
        above = nth(low + 1)
        return below if above == below else below + (above - below) * fraction

    def _own(self, run_pk: int | None, step: int) -> float | None:
        curve = self.curves.get(run_pk) if run_pk is not None else None
        return curve.value_at(step) if curve is not None else None


@dataclass(slots=True)
class CompareSeries:
    """The ``eval_state`` of a (compare rule, run, key) series."""

    group: Group
    member: int | None
    """The run's pk when it counts in its group (it passes ``to``'s fixed selectors); else None."""
    best: float = math.nan
    waiting: deque[tuple[int, float, float]] = field(default_factory=lambda: deque(maxlen=MAX_WAITING))
    """Points not judged yet: (step, timestamp, the value to judge)."""


class CompareGroups:
    """The groups of an engine's compare rules, and the judging of their series."""

    def __init__(self, store: Store, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._store = store
        self._clock = clock
        self.refresh: float | None = None
        """Seconds between reads of a group's runs from the store (replicas); None: read once."""
        self._groups: dict[GroupKey, Group] = {}
        self._bindings: dict[int, dict[tuple[str, str], tuple[GroupKey, bool]]] = {}
        """Per run pk, per (rule, key): its group and whether it counts there (cached: a run's config
        is read once, as for ``where``)."""

    def __len__(self) -> int:
        return len(self._groups)

    def _binding(self, spec: RuleSpec, run: Run, key: str) -> tuple[GroupKey, bool]:
        bindings = self._bindings.setdefault(run.pk, {})
        found = bindings.get((spec.name, key))
        if found is None:
            assert spec.compare is not None
            to = spec.compare.to
            found = bindings[(spec.name, key)] = ((spec.name, key, to.key_of(run)), to.admits(run))
        return found

    def _group(self, spec: RuleSpec, run: Run, key: str) -> Group:
        group_key, _ = self._binding(spec, run, key)
        group = self._groups.get(group_key)
        if group is None:
            group = self._groups[group_key] = Group(spec.name)
        group.users.add(run.pk)
        return group

    async def prepare(self, spec: RuleSpec, run: Run, key: str) -> None:
        """Before judging ``run``'s points of ``key``: its group read from the store if it is not held yet
        (or, with ``refresh``, read again when that is due)."""
        group = self._group(spec, run, key)
        if group.loaded and not self._due(group):
            return
        async with group.lock:  # one read at a time; the batches of the group's other runs wait for it
            if not group.loaded or self._due(group):
                await self._read(group, spec, run, key)

    def _due(self, group: Group) -> bool:
        return self.refresh is not None and self._clock() - group.read_at >= self.refresh

    async def _read(self, group: Group, spec: RuleSpec, run: Run, key: str) -> None:
        await read_group(self._store, group, spec, run, key)
        group.read_at = self._clock()

    def judge(self, spec: RuleSpec, run: Run, key: str, state: SeriesState, steps: Sequence[int],
              stamps: Sequence[float], values: Sequence[float]) -> list[Judged]:
        """``run``'s points of ``key`` (a batch's column): into the group, then judged in order, each once
        enough other runs have reached its step. The verdicts made now, in order (earlier points first)."""
        compare = spec.compare
        assert compare is not None
        series = state.eval_state
        if series is None:
            _, counts = self._binding(spec, run, key)
            series = state.eval_state = CompareSeries(self._group(spec, run, key), run.pk if counts else None)
            self._resume(compare, series, before=steps[0])
        group = series.group
        if series.member is not None:
            for step, timestamp, value in zip(steps, stamps, values, strict=True):
                group.add(run.pk, step, timestamp, value)
        for step, timestamp, value in zip(steps, stamps, values, strict=True):
            if step < state.last_step or (step == state.last_step and timestamp <= state.last_timestamp):
                continue  # out-of-order or duplicate: judged only once, in order
            state.last_step, state.last_timestamp = step, timestamp
            self._queue(compare, series, step, timestamp, value)
        return self._drain(compare, run.pk, state)

    def released(self, spec: RuleSpec, state: SeriesState) -> list[tuple[int, SeriesState, Judged]]:
        """After :meth:`judge`: the points of the group's other series that enough runs have now reached,
        judged, as ``(run pk, series state, judged)``."""
        assert spec.compare is not None and isinstance(state.eval_state, CompareSeries)
        found: list[tuple[int, SeriesState, Judged]] = []
        for run_pk, other in list(state.eval_state.group.waiting.items()):
            if other is not state:
                found += [(run_pk, other, judged) for judged in self._drain(spec.compare, run_pk, other)]
        return found

    def _resume(self, compare: Compare, series: CompareSeries, *, before: int) -> None:
        """A series that starts afresh while its run's earlier points are in the group (a restart, a
        takeover): its best so far from them, and those no judgement can have seen back in its queue."""
        curve = series.group.curves.get(series.member) if series.member is not None else None
        if curve is None:
            return
        for step, timestamp, value in zip(curve.steps, curve.stamps, curve.values, strict=True):
            if step >= before:
                break
            self._queue(compare, series, step, timestamp, value)
        waiting = series.waiting
        while waiting and series.group.others(series.member, waiting[0][0]) >= compare.min_runs:
            waiting.popleft()  # judged before: as many others had reached it then (the count only grows)

    @staticmethod
    def _queue(compare: Compare, series: CompareSeries, step: int, timestamp: float, value: float) -> None:
        if math.isnan(value):
            return
        best = series.best
        if math.isnan(best) or (value < best if compare.mode == "min" else value > best):
            series.best = value
        if step < compare.grace:
            return
        group = series.group
        # A counted run's step is in the group unless the group is full; another run's is added if there is room.
        if step not in group.at and (series.member in group.curves or not group.has_step(step)):
            return
        series.waiting.append((step, timestamp, series.best if compare.using == "best_so_far" else value))

    def _drain(self, compare: Compare, run_pk: int, state: SeriesState) -> list[Judged]:
        series = state.eval_state
        assert isinstance(series, CompareSeries)
        group, member, waiting = series.group, series.member, series.waiting
        judged: list[Judged] = []
        while waiting:
            step, timestamp, value = waiting[0]
            others = group.others(member, step)
            if others < compare.min_runs:
                break  # nor can a later step be ready: fewer runs have reached it
            waiting.popleft()
            judged.append((step, timestamp, _verdict(compare, group, member, step, value, others)))
        if waiting:
            group.waiting[run_pk] = state
        else:
            group.waiting.pop(run_pk, None)
        return judged

    def forget_run(self, run_pk: int) -> None:
        """The run ended or moved to another replica: its groups no longer wait for it, and a group no run
        of this engine uses any more is dropped (read again from the store when needed)."""
        for group_key, _ in self._bindings.pop(run_pk, {}).values():
            group = self._groups.get(group_key)
            if group is None:
                continue
            group.users.discard(run_pk)
            group.waiting.pop(run_pk, None)
            if not group.users and not group.lock.locked():
                del self._groups[group_key]

    def drop_rules(self, names: set[str]) -> None:
        """Removed or changed rules (a reload): their groups go."""
        for group_key in [group_key for group_key in self._groups if group_key[0] in names]:
            del self._groups[group_key]
        for bindings in self._bindings.values():
            for binding in [binding for binding in bindings if binding[0] in names]:
                del bindings[binding]


async def read_group(store: Store, group: Group, spec: RuleSpec, run: Run, key: str) -> None:
    """``run``'s group of ``spec`` on ``key`` read from the store into ``group``: each member's points after
    those it holds (a member whose run had ended when it was read is not read again), the first
    ``MAX_RUNS`` members by run pk. Also what the run page draws the rule's statistic from."""
    assert spec.compare is not None
    to = spec.compare.to
    listed = await store.list_runs(project=run.project if to.project == SAME else None, limit=MAX_LISTED)
    wanted = to.key_of(run)
    members = sorted((other for other in listed if to.admits(other) and to.key_of(other) == wanted
                      and spec.where.matches(other.project, other.id, other.name, other.tags, other.config,
                                             other.group, other.job_type)), key=lambda other: other.pk)
    for other in members:
        curve = group.curves.get(other.pk)
        if curve is None and len(group.curves) >= MAX_RUNS:
            continue
        if curve is not None and curve.final and other.state.is_terminal:
            continue
        after = curve.steps[-1] if curve is not None and curve.steps else -1
        for step, timestamp, value in await store.key_points(other.pk, key, after_step=after, limit=MAX_STEPS):
            group.add(other.pk, step, timestamp, value)
        curve = group.curves.get(other.pk)
        if curve is not None:
            curve.final = other.state.is_terminal
    group.loaded = True


def threshold(compare: Compare, stat: float) -> float:
    """The line past which a value fires: the statistic plus (or minus) the margin."""
    relative = compare.relative
    margin = abs(stat) * relative if relative is not None else float(compare.margin)
    return stat + margin if _fires_above(compare) else stat - margin


def _fires_above(compare: Compare) -> bool:
    """Whether a value fires above the line (else below it)."""
    return (compare.mode == "min") == (compare.direction == "worse")


def _verdict(compare: Compare, group: Group, member: int | None, step: int, value: float, others: int) -> Verdict:
    stat = group.statistic(member, step, compare.percentile, compare.mode)
    line = threshold(compare, stat)
    holds = value > line if _fires_above(compare) else value < line
    return Verdict(holds, not holds, value, line, {"stat": stat, "statistic": compare.stat, "runs": others})
