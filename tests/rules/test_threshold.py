"""`when` comparisons: smoothing, `for`, hysteresis, keep_firing_for, selectors, globs, step order."""

from __future__ import annotations

from tests.rules.harness import NAN

RULE = """
rules:
  - name: acc-low
    metric: val/acc
    when: "< 0.3"
    {extra}
    title: "Accuracy low in {{{{ run.name }}}}"
    text: "{{{{ metric }}}} = {{{{ value | round(3) }}}} at step {{{{ step }}}} (floor {{{{ threshold }}}})"
"""


def rule(extra: str = "") -> str:
    return RULE.format(extra=extra)


async def test_fires_once_and_resolves(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(rule())
    await h.run("r1", name="exp-1")
    await h.series("r1", "val/acc", [0.5, 0.2, 0.1, 0.25, 0.6])
    (fired,) = h.fired("acc-low")
    assert fired.title == "Accuracy low in exp-1"
    assert fired.text == "val/acc = 0.2 at step 1 (floor 0.3)"
    assert fired.labels == {"alertname": "acc-low", "rule": "acc-low", "source": "rule", "severity": "warning",
                            "project": "vision", "run": "r1", "run_name": "exp-1", "metric": "val/acc"}
    (resolved,) = h.resolved("acc-low")
    assert resolved.id == fired.id and resolved.resolved_reason == "condition cleared"
    assert h.firing() == []


async def test_for_counts_consecutive_evaluations_and_one_good_point_resets(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(rule("for: 3"))
    await h.run()
    await h.series("r1", "val/acc", [0.1, 0.1, 0.5, 0.1, 0.1])
    assert h.fired() == []
    await h.series("r1", "val/acc", [0.1])
    assert len(h.fired()) == 1 and h.fired()[0].step == 5


async def test_for_as_duration_uses_point_timestamps(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(rule("for: 5m"))
    await h.run()
    await h.series("r1", "val/acc", [0.1, 0.1, 0.1], dt=60)   # held for 2 minutes of point time
    assert h.fired() == []
    await h.series("r1", "val/acc", [0.1, 0.1, 0.1], dt=60)   # 5 minutes
    assert len(h.fired()) == 1


async def test_over_last_points_smooths_and_nan_in_window_blocks_comparison(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(rule("over: {last: 3, agg: mean}"))
    await h.run()
    await h.series("r1", "val/acc", [0.1, 0.1])  # not enough points yet
    assert h.fired() == []
    await h.series("r1", "val/acc", [NAN, 0.1, 0.1])  # NaN inside the window: the mean is NaN, `<` is false
    assert h.fired() == []
    await h.series("r1", "val/acc", [0.1])  # window [0.1, 0.1, 0.1]
    assert len(h.fired()) == 1 and abs((h.fired()[0].value or 0) - 0.1) < 1e-9


async def test_over_duration_and_median(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(rule("over: {last: 2m, agg: median}"))
    await h.run()
    await h.series("r1", "val/acc", [0.9, 0.1, 0.1], dt=60)  # all three inside 2m: median 0.1
    assert len(h.fired()) == 1


async def test_hysteresis_stops_flapping(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(rule('recover_when: "> 0.35"'))
    await h.run()
    await h.series("r1", "val/acc", [0.2, 0.31, 0.29, 0.32, 0.28, 0.33])
    assert len(h.fired()) == 1 and h.resolved() == []
    await h.series("r1", "val/acc", [0.4])
    assert len(h.resolved()) == 1


async def test_without_hysteresis_it_flaps(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(rule())
    await h.run()
    await h.series("r1", "val/acc", [0.2, 0.31, 0.29, 0.32])
    assert len(h.fired()) == 2 and len(h.resolved()) == 2


async def test_keep_firing_for(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(rule("keep_firing_for: 2m"))
    await h.run()
    await h.series("r1", "val/acc", [0.1, 0.5], dt=60)
    assert h.resolved() == []
    await h.series("r1", "val/acc", [0.1, 0.5, 0.5], dt=60)  # failing again resets the clock
    assert h.resolved() == []
    await h.series("r1", "val/acc", [0.5], dt=60)
    assert len(h.resolved()) == 1 and len(h.fired()) == 1


async def test_out_of_order_and_repeated_steps_are_judged_once(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(rule("for: 2"))
    await h.run()
    await h.log("r1", {"val/acc": 0.1}, step=5)
    await h.log("r1", {"val/acc": 0.1}, step=5, dt=0)  # the same point again (a re-sent record)
    await h.log("r1", {"val/acc": 0.1}, step=3)  # out of order
    assert h.fired() == []
    await h.log("r1", {"val/acc": 0.1}, step=6)
    assert len(h.fired()) == 1


async def test_later_samples_at_a_stuck_step_are_judged(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness("""
        rules:
          - name: gpu-idle
            metric: "system/gpu.*.utilization"
            when: "< 10"
            for: 5m
    """)
    await h.run()
    for _ in range(21):  # training is stuck at step 7; system metrics keep coming every 15 s
        await h.log("r1", {"system/gpu.0.utilization": 2.0}, step=7, dt=15)
    assert len(h.fired()) == 1


async def test_run_that_never_logs_the_metric_never_fires(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(rule())
    await h.run()
    await h.series("r1", "train/loss", [0.1, 0.1, 0.1])
    assert h.fired() == []


async def test_selectors_and_globs(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness("""
        rules:
          - name: gpu-idle
            where: {project: "vision-*", tags: [baseline], config: {dataset: CIFAR-100, model.depth: 50}}
            metric: "system/gpu.*.utilization"
            when: "< 10"
    """)
    await h.run("match", project="vision-a", tags=["baseline", "x"],
                config={"dataset": "CIFAR-100", "model": {"depth": 50}})
    await h.run("wrong-project", project="audio", tags=["baseline"], config={"dataset": "CIFAR-100"})
    await h.run("wrong-tag", project="vision-b", tags=[], config={"dataset": "CIFAR-100"})
    await h.run("wrong-config", project="vision-c", tags=["baseline"], config={"dataset": "MNIST"})
    for run in ("match", "wrong-project", "wrong-tag", "wrong-config"):
        await h.log(run, {"system/gpu.0.utilization": 5, "system/gpu.1.utilization": 50, "system/cpu": 1})
    assert sorted((a.labels["run"], a.metric) for a in h.fired()) == [("match", "system/gpu.0.utilization")]


async def test_metric_alerts_resolve_when_the_run_ends(make_harness) -> None:  # type: ignore[no-untyped-def]
    from alerts.model import RunState

    h = await make_harness(rule())
    await h.run()
    await h.series("r1", "val/acc", [0.1])
    await h.end("r1", RunState.FINISHED)
    (resolved,) = h.resolved()
    assert resolved.resolved_reason == "run finished"
