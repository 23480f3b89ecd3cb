"""``compare`` rules: a run judged against the other runs of its group at the same step (the median
stopping rule), through the real engine over a real store whose points are written as the ingest writes
them (a group is read back from them after a restart, or when a later wave starts)."""

from __future__ import annotations

import math
import random
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from alerts.model import Run, RunEvent, RunState
from alerts.rules import compare
from alerts.rules.compare import Group
from alerts.storage import NewRun, RecordBatch
from tests.rules.harness import Harness


class Sweep(Harness):
    """The harness with runs of a project, group and config, whose points are stored before they are judged
    (as the ingest does: a group is read from them)."""

    def __init__(self, tmp_path: Path, rules_yaml: str, **kwargs: Any) -> None:
        super().__init__(tmp_path, rules_yaml, **kwargs)
        self._seq: dict[str, int] = {}

    async def run(self, run_id: str = "r1", *, project: str = "sweep", name: str | None = None,
                  tags: list[str] | None = None, config: dict[str, Any] | None = None,
                  group: str | None = None, job_type: str | None = None) -> Run:
        run, _ = await self.store.upsert_run(NewRun(project, run_id, name or run_id, config or {}, tags or [], None,
                                                    group, job_type, self.now, None, None), self.now)
        self.runs[run_id] = run
        await self.engine.on_run_event(RunEvent(run=run, state=RunState.RUNNING, reason="started", at=self.now))
        return run

    async def log(self, run_id: str, values: dict[str, float], *, step: int | None = None,
                  dt: float = 1.0) -> None:
        await self.log_steps(run_id, {step if step is not None else self._steps.get(run_id, -1) + 1: values}, dt=dt)

    async def log_steps(self, run_id: str, steps: dict[int, dict[str, float]], *, dt: float = 1.0) -> None:
        """Several steps of one run as one batch (stored, then judged)."""
        self.now += dt
        seq = self._seq.get(run_id, 0) + 1
        self._seq[run_id] = seq
        batch = RecordBatch(first_seq=seq, last_seq=seq, steps=[(step, self.now, None) for step in steps],
                            points=[(key, step, self.now, float(value)) for step, values in steps.items()
                                    for key, value in values.items()])
        self._steps[run_id] = max(self._steps.get(run_id, -1), *steps)
        run = self.runs[run_id]
        applied, _ = await self.store.apply_records(run, batch, self.now)
        assert applied
        await self.engine.on_batch(run, batch)

    async def curves(self, curves: dict[str, list[float | None]], key: str = "val/loss") -> None:
        """Step by step, every run's value of that step in turn (None: no point)."""
        for step in range(max(len(values) for values in curves.values())):
            for run_id, values in curves.items():
                if step < len(values) and values[step] is not None:
                    await self.log(run_id, {key: values[step]}, step=step)  # type: ignore[dict-item]

    def firing_runs(self, rule: str | None = None) -> set[str]:
        return {alert.labels["run"] for alert in self.firing(rule)}

    def fired_runs(self, rule: str | None = None) -> set[str]:
        return {alert.labels["run"] for alert in self.fired(rule)}


@pytest.fixture
async def make_sweep(tmp_path: Path) -> AsyncIterator[Callable[..., Coroutine[Any, Any, Sweep]]]:
    made: list[Sweep] = []

    async def make(rules_yaml: str, **kwargs: Any) -> Sweep:
        folder = tmp_path / f"sweep{len(made)}"  # a database of its own
        folder.mkdir()
        sweep = Sweep(folder, rules_yaml, **kwargs)
        await sweep.start()
        made.append(sweep)
        return sweep

    yield make
    for sweep in made:
        await sweep.close()


def rule(**fields: Any) -> str:
    """A one-rule file: ``worse`` on ``val/loss`` with the given ``compare`` fields (and ``for``)."""
    wait = fields.pop("for_", 0)
    inner = ", ".join(f"{key}: {value}" for key, value in fields.items())
    return f"""
rules:
  - name: worse
    metric: val/loss
    compare: {{{inner}}}
    for: {wait}
"""


async def start(sweep: Sweep, *run_ids: str, **kwargs: Any) -> None:
    for run_id in run_ids:
        await sweep.run(run_id, **kwargs)


# The statistic ------------------------------------------------------------------------------------
def test_the_statistic_is_numpys_percentile_of_the_other_runs() -> None:
    rng = random.Random(7)
    group = Group("g")
    curves = {pk: [rng.uniform(0, 10) for _ in range(5)] for pk in range(1, 12)}
    for pk, values in curves.items():
        for step, value in enumerate(values):
            group.add(pk, step * 10, float(step), value)
    for step in range(5):
        for judged in (1, 5, None):
            others = [values[step] for pk, values in curves.items() if pk != judged]
            assert group.others(judged, step * 10) == len(others)
            for q in (0.0, 10.0, 25.0, 50.0, 90.0):
                assert group.statistic(judged, step * 10, q, "min") == pytest.approx(np.percentile(others, q))
                assert group.statistic(judged, step * 10, q, "max") == pytest.approx(np.percentile(others, 100 - q))


def test_a_runs_value_at_a_step_is_its_value_at_the_nearest_earlier_step_it_logged() -> None:
    group = Group("g")
    group.add(1, 0, 0.0, 5.0)
    group.add(1, 10, 1.0, 4.0)
    group.add(1, 20, 2.0, 3.0)
    group.add(2, 15, 1.5, 9.0)  # a step run 1 never logged: run 1 is there with its value at step 10
    assert list(group.at[15]) == [4.0, 9.0]
    group.add(3, 0, 0.0, 1.0)
    group.add(3, 30, 3.0, 2.0)  # run 3 jumps: it has reached 10, 15 and 20 with its value at step 0
    assert list(group.at[10]) == [1.0, 4.0] and list(group.at[15]) == [1.0, 4.0, 9.0]
    assert list(group.at[20]) == [1.0, 3.0] and list(group.at[30]) == [2.0]
    assert group.others(2, 15) == 2 and group.others(None, 30) == 1
    group.add(3, 30, 3.5, 2.5)  # the same step again replaces its value
    group.add(3, 25, 4.0, 0.0)  # an older step is ignored
    assert list(group.at[30]) == [2.5] and 25 not in group.at


# Firing ---------------------------------------------------------------------------------------------
async def test_the_run_worse_than_the_median_of_the_others_fires_and_resolves(make_sweep) -> None:  # type: ignore[no-untyped-def]
    h = await make_sweep(rule(min_runs=3, margin='"15%"'))
    await start(h, "a", "b", "c", "bad")
    await h.curves({"a": [1.0, 0.9, 0.8], "b": [1.1, 1.0, 0.9], "c": [1.2, 1.1, 1.0], "bad": [2.0, 1.8]})
    assert h.fired_runs() == {"bad"}  # c is worse than the median of the others too, but within the margin
    [fired] = h.fired()
    assert (fired.step, fired.value, fired.threshold) == (0, 2.0, pytest.approx(1.1 * 1.15))  # median 1.1
    assert "val/loss = 2.0 at step 0 (compare: value > median + 15% of the other runs with the same project " \
           "at the same step (once 3 reached it))" in fired.text
    await h.log("bad", {"val/loss": 0.95}, step=2)  # better than the median 0.9 + 15%
    assert h.firing() == [] and [a.id for a in h.resolved()] == [fired.id]


async def test_min_runs_counts_the_other_runs_only(make_sweep) -> None:  # type: ignore[no-untyped-def]
    h = await make_sweep(rule(min_runs=3))
    await start(h, "a", "b", "bad")
    await h.curves({"a": [1.0, 1.0], "b": [1.0, 1.0], "bad": [5.0, 5.0]})
    assert h.fired() == []  # two others: not judged
    await h.run("c")
    await h.log("c", {"val/loss": 1.0}, step=0)  # a third one at step 0: "bad"'s waiting step 0 is judged
    assert h.fired_runs() == {"bad"} and h.fired()[0].step == 0


async def test_grace_skips_the_first_steps(make_sweep) -> None:  # type: ignore[no-untyped-def]
    h = await make_sweep(rule(min_runs=2, grace=3, margin='"50%"'))
    await start(h, "a", "b", "bad")
    await h.curves({"a": [1.0] * 5, "b": [1.0] * 5, "bad": [9.0, 9.0, 9.0, 0.5, 9.0]})
    assert [alert.step for alert in h.fired()] == [4]  # steps 0-2 were bad but in the grace; 3 was good


async def test_margin_in_percent_and_absolute(make_sweep) -> None:  # type: ignore[no-untyped-def]
    for margin, threshold in (('"10%"', 2.2), ("0.5", 2.5)):
        h = await make_sweep(rule(min_runs=2, margin=margin))
        await start(h, "a", "b", "c", "d")
        # at step 0 "c" is 2.15: worse than the median 2.0, but within either margin; "d" is past both
        await h.curves({"a": [2.0], "b": [2.0], "c": [2.15], "d": [2.6]})
        assert h.fired_runs() == {"d"}
        assert h.fired()[0].threshold == pytest.approx(threshold)


async def test_percentile_and_best(make_sweep) -> None:  # type: ignore[no-untyped-def]
    values = [1.0, 2.0, 3.0, 4.0, 5.0]  # the others; the judged run logs 2.5
    for stat, threshold, fires in (("best", 1.0, True), ("p25", 2.0, True), ("median", 3.0, False),
                                   ("p90", 4.6, False)):
        h = await make_sweep(rule(min_runs=5, stat=stat))
        await start(h, "r1", "r2", "r3", "r4", "r5", "judged")
        for index, value in enumerate(values):
            await h.log(f"r{index + 1}", {"val/loss": value}, step=0)
            await h.end(f"r{index + 1}", RunState.FINISHED)  # never judged themselves
        await h.log("judged", {"val/loss": 2.5}, step=0)
        assert [alert.threshold for alert in h.fired()] == ([pytest.approx(threshold)] if fires else []), stat


async def test_mode_max_and_direction_better(make_sweep) -> None:  # type: ignore[no-untyped-def]
    h = await make_sweep("""
rules:
  - name: acc-behind
    metric: val/acc
    compare: {mode: max, min_runs: 2, margin: 0.05}
  - name: acc-ahead
    metric: val/acc
    compare: {mode: max, direction: better, stat: best, min_runs: 2, margin: 0.05}
""")
    await start(h, "a", "b", "low", "high")
    for run_id, value in (("a", 0.80), ("b", 0.82), ("low", 0.70), ("high", 0.90)):
        await h.log(run_id, {"val/acc": value}, step=0)
    assert h.fired_runs("acc-behind") == {"low"}  # 0.70 < median(0.80, 0.82, 0.90) - 0.05
    [ahead] = h.fired("acc-ahead")
    assert ahead.labels["run"] == "high" and ahead.threshold == pytest.approx(0.87)  # the best of the others + 0.05


async def test_best_so_far_keeps_a_run_that_was_good_earlier(make_sweep) -> None:  # type: ignore[no-untyped-def]
    curves: dict[str, list[float | None]] = {"a": [1.0, 0.8, 0.6], "b": [1.0, 0.8, 0.6],
                                              "dip": [0.5, 1.3, 1.3]}  # best so far 0.5 stays below the median
    h = await make_sweep(rule(min_runs=2, margin='"50%"', using="best_so_far"))
    await start(h, *curves)
    await h.curves(curves)
    assert h.fired() == []
    h2 = await make_sweep(rule(min_runs=2, margin='"50%"'))
    await start(h2, *curves)
    await h2.curves(curves)
    assert h2.fired_runs() == {"dip"} and [(a.step, a.value) for a in h2.fired()] == [(1, 1.3)]


async def test_the_leading_run_is_judged_when_the_others_reach_its_steps(make_sweep) -> None:  # type: ignore[no-untyped-def]
    h = await make_sweep(rule(min_runs=2, for_=2))
    await start(h, "lead", "a", "b")
    await h.log_steps("lead", {step: {"val/loss": 5.0} for step in range(5)})  # the whole curve, alone
    assert h.fired() == []
    await h.log_steps("a", {step: {"val/loss": 1.0} for step in range(5)})
    assert h.fired() == []  # one other run: not yet
    await h.log_steps("b", {0: {"val/loss": 1.0}})
    assert h.fired() == []  # step 0 judged (pending, for: 2)
    await h.log_steps("b", {1: {"val/loss": 1.0}, 2: {"val/loss": 1.0}})
    [fired] = h.fired()
    assert fired.labels["run"] == "lead" and fired.step == 1  # its second judged step, on b's batch
    assert [e.labels["run"] for e in h.events] == ["lead"]


async def test_finished_runs_count_and_a_later_wave_is_judged_against_them(make_sweep) -> None:  # type: ignore[no-untyped-def]
    h = await make_sweep(rule(min_runs=3))
    await start(h, "w1a", "w1b", "w1c")
    await h.curves({"w1a": [1.0, 0.9], "w1b": [1.1, 1.0], "w1c": [1.2, 1.1]})
    for run_id in ("w1a", "w1b", "w1c"):
        await h.end(run_id, RunState.FINISHED)
    assert len(h.engine.compares) == 0  # no run of the engine uses the group: dropped
    await start(h, "w2-good", "w2-bad")
    await h.curves({"w2-good": [1.05, 0.95], "w2-bad": [1.5, 1.4]})  # read back from the store
    assert h.fired_runs() == {"w2-bad"}
    assert [a.value for a in h.fired()] == [1.5]  # judged at its first step: 3 finished runs were there


async def test_to_selects_the_runs_compared_with(make_sweep) -> None:  # type: ignore[no-untyped-def]
    h = await make_sweep(rule(min_runs=2, margin='"50%"', to="{config: {model: same}, group: same}"))
    runs = {"r1": ("a", "g", 1.9), "r2": ("a", "g", 1.9), "x": ("a", "g", 2.0),  # x: fine among these
            "r3": ("b", "g", 1.0), "r4": ("b", "g", 1.0), "y": ("b", "g", 2.0),  # y: 2.0 > 1.0 + 50%
            "r5": ("a", "h", 0.1), "r6": ("a", "h", 0.1),  # another group: would make x look bad
            "r7": ("c", "g", 0.1), "r8": ("c", "g", 0.1)}  # another model: likewise
    for run_id, (model, group, _) in runs.items():
        await h.run(run_id, config={"model": model}, group=group)
    await h.curves({run_id: [value] for run_id, (_, _, value) in runs.items()})
    assert h.fired_runs() == {"y"}


async def test_a_fixed_selector_compares_every_run_with_the_reference_runs(make_sweep) -> None:  # type: ignore[no-untyped-def]
    h = await make_sweep(rule(min_runs=2, to="{config: {baseline: true}}"))
    await h.run("base1", config={"baseline": True})
    await h.run("base2", config={"baseline": True})
    await h.run("try1")
    await h.run("try2")
    # the tries do not count: try2 is judged against the baselines only (a try at 9.0 would not move it)
    await h.curves({"base1": [1.0], "base2": [1.2], "try1": [9.0], "try2": [1.05]})
    assert h.fired_runs() == {"try1"} and h.fired()[0].threshold == pytest.approx(1.1)


async def test_the_template_context_has_the_comparison(make_sweep) -> None:  # type: ignore[no-untyped-def]
    h = await make_sweep("""
rules:
  - name: worse
    metric: val/loss
    compare: {min_runs: 2}
    text: "{{ value }} vs {{ compare.statistic }} {{ compare.stat }} of {{ compare.runs }} runs"
""")
    await start(h, "a", "b", "c")
    await h.curves({"a": [1.0], "b": [2.0], "c": [3.0]})
    assert [a.text for a in h.fired()] == ["3.0 vs median 1.5 of 2 runs"]


# Bounds -----------------------------------------------------------------------------------------
async def test_memory_is_bounded_per_group(make_sweep, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(compare, "MAX_STEPS", 4)
    monkeypatch.setattr(compare, "MAX_RUNS", 3)
    h = await make_sweep(rule(min_runs=2))
    await start(h, "a", "b", "c", "late")
    await h.curves({"a": [1.0] * 6, "b": [1.0] * 6, "c": [1.0, 1.0, 1.0, 1.0, 5.0, 5.0], "late": [5.0] * 6})
    [group] = h.engine.compares._groups.values()
    assert group.steps == [0, 1, 2, 3] and sorted(group.curves) == [h.runs[r].pk for r in ("a", "b", "c")]
    assert all(len(values) <= 3 for values in group.at.values())
    # "late" is past the runs bound: judged (it fires) but not counted; "c" goes bad past the steps bound
    assert h.fired_runs() == {"late"} and [a.step for a in h.fired()] == [0]


async def test_a_series_keeps_a_bounded_queue_of_waiting_points(make_sweep, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setattr(compare, "MAX_WAITING", 3)
    h = await make_sweep(rule(min_runs=1))
    await start(h, "lead", "other")
    await h.log_steps("lead", {step: {"val/loss": 5.0} for step in range(10)})
    await h.log_steps("other", {step: {"val/loss": 1.0} for step in range(10)})
    fired = h.fired()
    assert [a.step for a in fired] == [7]  # steps 0-6 were dropped unjudged; 7 fires, 8 and 9 keep it firing


# Restart and replicas -----------------------------------------------------------------------------
async def test_a_restart_rebuilds_the_group_the_best_so_far_and_the_waiting_points(make_sweep) -> None:  # type: ignore[no-untyped-def]
    h = await make_sweep(rule(min_runs=3, margin='"50%"', using="best_so_far"))
    await start(h, "a", "b", "c", "good-early", "lead")
    await h.curves({"a": [1.0, 0.9, 0.8], "b": [1.0, 0.9, 0.8], "c": [1.0, 0.9, 0.8], "good-early": [0.5, 0.9, 0.9]})
    await h.log_steps("lead", {3: {"val/loss": 5.0}, 4: {"val/loss": 5.0}})  # ahead of everyone: waiting
    assert h.fired() == []
    await h.restart()
    await h.run("new")
    await h.log("new", {"val/loss": 5.0}, step=0)  # judged at once: the 5 runs before the restart count
    assert h.fired_runs() == {"new"} and h.fired()[0].threshold == pytest.approx(1.5)
    # good-early's best (0.5) comes back from its stored points: 1.2 alone would be worse than 0.7 + 50%
    await h.log("good-early", {"val/loss": 1.2}, step=3)
    await h.log("lead", {"val/loss": 5.0}, step=5)  # its series starts afresh: steps 3 and 4 wait again
    await h.log("a", {"val/loss": 0.7}, step=3)
    assert h.fired_runs() == {"new"}  # two others at step 3 so far
    await h.log("b", {"val/loss": 0.7}, step=3)
    assert h.fired_runs() == {"new", "lead"} and h.fired()[1].step == 3


async def test_a_replica_reads_the_other_replicas_runs_from_the_store(make_sweep) -> None:  # type: ignore[no-untyped-def]
    h = await make_sweep(rule(min_runs=2))
    await start(h, "mine", "theirs1", "theirs2")
    replica = h.engine
    other = h._engine()  # another replica on the same database judges theirs1 and theirs2
    await other.start(h.ruleset, restore_runs=False)
    await replica.start(h.ruleset, restore_runs=False)
    replica.forget_run(h.runs["theirs1"].pk)
    replica.forget_run(h.runs["theirs2"].pk)
    replica.compares.refresh = other.compares.refresh = 0.0  # read again at every batch (REFRESH in service)
    for run_id in ("theirs1", "theirs2"):
        await other.adopt(h.runs[run_id])
    await replica.adopt(h.runs["mine"])

    async def log(engine: Any, run_id: str, step: int, value: float) -> None:
        h.engine = engine
        await h.log(run_id, {"val/loss": value}, step=step)

    await log(replica, "mine", 0, 5.0)  # the others have not logged: waiting
    await log(other, "theirs1", 0, 1.0)
    await log(other, "theirs2", 0, 1.0)
    assert h.fired() == []  # the replica has not heard of them yet
    await log(replica, "mine", 1, 5.0)  # its next batch reads them: step 0 is judged, step 1 waits
    assert h.fired_runs() == {"mine"} and h.fired()[0].step == 0


# Validation -----------------------------------------------------------------------------------------
@pytest.mark.parametrize(("fields", "message"), [
    ("{stat: p0}", "compare.stat: compare.stat must be median, best or a percentile p1..p99 such as p25, got 'p0'"),
    ("{stat: mean}", "compare.stat must be median, best or a percentile p1..p99"),
    ("{min_runs: 0}", "compare.min_runs: Input should be greater than or equal to 1"),
    ("{grace: -1}", "compare.grace: Input should be greater than or equal to 0"),
    ('{margin: "-5%"}', "compare.margin: compare.margin must be a finite amount, not negative, got '-5%'"),
    ("{margin: lots}", "compare.margin must be a number or a percentage like \"10%\", got 'lots'"),
    ("{direction: up}", "compare.direction: Input should be 'worse' or 'better'"),
    ("{using: mean}", "compare.using: Input should be 'value' or 'best_so_far'"),
    ("{at: last_step}", "compare.at: Input should be 'same_step'"),
    ("{to: {run: same}}", "unknown key 'run'"),
])
def test_invalid_compare_fields_are_reported_at_their_position(tmp_path: Path, fields: str, message: str) -> None:
    from alerts.errors import ConfigError
    from alerts.rules.loader import load_rules

    path = tmp_path / "rules.yaml"
    path.write_text(f"rules:\n  - name: worse\n    metric: val/loss\n    compare: {fields}\n")
    with pytest.raises(ConfigError) as info:
        load_rules([path])
    [error] = info.value.errors
    assert error.startswith(f"{path}:4:") and 'rule "worse": ' in error and message in error, error


def test_a_compare_rule_needs_a_metric(tmp_path: Path) -> None:
    from alerts.errors import ConfigError
    from alerts.rules.loader import load_rules

    path = tmp_path / "rules.yaml"
    path.write_text("rules:\n  - name: worse\n    compare: {}\n")
    with pytest.raises(ConfigError) as info:
        load_rules([path])
    assert "a 'compare' rule needs 'metric'" in info.value.errors[0]


def test_nan_points_are_no_value() -> None:
    group = Group("g")
    group.add(1, 0, 0.0, math.nan)
    assert group.curves == {} and group.at == {}
