from __future__ import annotations

from alerts.model import RunState

RULES = """
rules:
  - name: run-hung
    metric: "*"
    absent: 10m
  - name: val-missing
    metric: val/acc
    absent: 30m
"""


async def test_absent_fires_on_silence_and_resolves_when_points_resume(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(RULES)
    await h.run()
    await h.log("r1", {"train/loss": 1.0})
    await h.tick(9 * 60)
    assert h.fired() == []
    await h.tick(61)
    (hung,) = h.fired("run-hung")
    assert hung.labels["metric"] == "*"
    await h.tick(60)
    assert len(h.fired("run-hung")) == 1  # no repeat while firing
    await h.log("r1", {"train/loss": 0.9}, dt=0)
    assert [a.resolved_reason for a in h.resolved("run-hung")] == ["points resumed"]


async def test_a_run_that_never_logs_the_metric_is_absent(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(RULES)
    await h.run()
    for _ in range(31):
        await h.log("r1", {"train/loss": 1.0}, dt=60)
        await h.tick(0)
    assert [a.rule for a in h.fired()] == ["val-missing"]


async def test_ended_runs_are_never_absent(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(RULES)
    await h.run()
    await h.run("r2")  # the contrast: a run that keeps running, just as quiet
    await h.end("r1", RunState.FINISHED)
    await h.tick(3600)
    assert sorted((a.rule, a.labels["run"]) for a in h.fired()) == [("run-hung", "r2"), ("val-missing", "r2")]


async def test_late_points_after_a_crash_do_not_revive_the_run(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(RULES)
    await h.run()
    await h.log("r1", {"train/loss": 1.0})
    await h.end("r1", RunState.CRASHED)
    h.runs["r1"].state = RunState.CRASHED  # what the store returns for the run from now on
    await h.log("r1", {"train/loss": 1.0})  # the SDK's final flush arrives after the crash verdict
    await h.run("r2")  # the contrast: a run that keeps running, just as quiet
    await h.tick(3600)
    assert sorted((a.rule, a.labels["run"]) for a in h.fired()) == [("run-hung", "r2"), ("val-missing", "r2")]
