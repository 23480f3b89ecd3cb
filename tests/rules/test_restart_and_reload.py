"""Firing alerts survive a restart without being notified again; reload keeps or resolves state."""

from __future__ import annotations

import textwrap

import pytest

from alerts.errors import ConfigError

RULES = """
rules:
  - name: acc-low
    metric: acc
    when: "< 0.3"
  - name: loss-nan
    metric: loss
    when: not finite
"""


async def test_restart_keeps_firing_alerts_without_renotifying(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(RULES)
    await h.run()
    await h.log("r1", {"acc": 0.1, "loss": float("nan")})
    assert len(h.fired()) == 2
    await h.restart()
    await h.log("r1", {"acc": 0.1, "loss": float("nan")})
    assert len(h.fired()) == 2  # still firing, nothing new sent
    await h.log("r1", {"acc": 0.9, "loss": 1.0})
    resolved = h.resolved()
    assert sorted(a.rule for a in resolved) == ["acc-low", "loss-nan"]
    assert {a.id for a in resolved} == {a.id for a in h.fired()}


async def test_reload_keeps_unchanged_and_resolves_removed_or_changed(make_harness, tmp_path) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(RULES + """
  - name: gone-soon
    metric: acc
    when: "< 0.5"
""")
    await h.run()
    await h.log("r1", {"acc": 0.1, "loss": float("nan")})
    assert len(h.fired()) == 3
    (tmp_path / "rules.yaml").write_text(textwrap.dedent(RULES.replace('when: not finite', 'when: "> 100"')))
    changes = await h.reload()
    assert changes == {"added": [], "changed": ["loss-nan"], "removed": ["gone-soon"], "unchanged": ["acc-low"]}
    reasons = sorted((a.rule, a.resolved_reason) for a in h.resolved())
    assert reasons == [("gone-soon", "rule removed"), ("loss-nan", "rule changed")]
    await h.log("r1", {"acc": 0.1})  # acc-low kept its firing state: no second notification
    (acc_low,) = h.fired("acc-low")
    await h.log("r1", {"acc": 0.9})  # ...and is still evaluated: the same alert resolves
    assert [(a.id, a.resolved_reason) for a in h.resolved("acc-low")] == [(acc_low.id, "condition cleared")]


async def test_broken_rule_file_is_refused_before_the_engine_which_keeps_evaluating(make_harness, tmp_path) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(RULES)
    await h.run()
    await h.log("r1", {"acc": 0.1, "loss": 1.0})
    (acc_low,) = h.fired()
    path = tmp_path / "rules.yaml"  # the operator breaks the file the engine was started from, then reloads
    path.write_text("rules:\n  - name: x\n    metric: m\n    when: 'between 1 and 2'\n")
    with pytest.raises(ConfigError) as info:
        await h.reload()
    assert info.value.errors[0].startswith(f"{path}:4:11: rule \"x\": when: invalid condition")
    assert [rule.name for rule in h.engine.rules] == ["acc-low", "loss-nan"]
    assert h.resolved() == []  # nothing was resolved as "rule removed"
    # The old rules still evaluate, with their state: acc-low is not notified again, loss-nan fires.
    await h.log("r1", {"acc": 0.1, "loss": float("nan")})
    assert [a.rule for a in h.fired()] == ["acc-low", "loss-nan"] and h.fired()[0].id == acc_low.id
    await h.log("r1", {"acc": 0.9, "loss": 1.0})
    assert sorted((a.rule, a.resolved_reason) for a in h.resolved()) == [("acc-low", "condition cleared"),
                                                                         ("loss-nan", "condition cleared")]
    assert h.firing() == []


async def test_ten_thousand_concurrent_runs(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(RULES)
    from alerts.model import Run, RunEvent, RunState
    from alerts.storage import RecordBatch

    runs = [Run(pk=i, project="p", id=f"r{i}", name=f"r{i}", state=RunState.RUNNING, config={}, tags=[],
                notes=None, group=None, job_type=None, summary={}, created_at=0, started_at=0, last_contact=0)
            for i in range(10_000)]
    for run in runs:
        await h.engine.on_run_event(RunEvent(run=run, state=RunState.RUNNING, reason=None, at=h.now))
    for step in range(5):
        for run in runs:
            value = 0.1 if (run.pk % 100 == 0 and step >= 3) else 0.9
            await h.engine.on_batch(run, RecordBatch(0, 0, points=[("acc", step, h.now + step, value),
                                                                   ("loss", step, h.now + step, 1.0)]))
    assert len(h.fired("acc-low")) == 100  # runs 0, 100, ..., 9900 crossed the floor at step 3 only once
    assert {a.labels["run"] for a in h.fired()} == {f"r{i}" for i in range(0, 10_000, 100)}
    series = h.engine._series  # noqa: SLF001 - bounded state is the point of this test
    # Plain thresholds keep a state only while pending or firing: the 100 firing series, not 20,000.
    assert sorted(series) == sorted(("acc-low", run.pk, "acc") for run in runs if run.pk % 100 == 0)
