from __future__ import annotations

from alerts.model import RunState


async def test_expr_over_latest_values_evaluated_per_step(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness("""
        rules:
          - name: overfitting-gap
            expr: "`val/val_loss` - `train/train_loss` > 0.5"
            for: 2
            text: "gap {{ value | round(2) }} over {{ threshold }}"
    """)
    await h.run()
    await h.log("r1", {"train/train_loss": 1.0})  # val not seen yet: no verdict
    await h.log("r1", {"val/val_loss": 1.2, "train/train_loss": 0.5})  # gap 0.7, one evaluation
    assert h.fired() == []
    await h.log("r1", {"train/train_loss": 0.6, "val/val_loss": 1.3})  # gap 0.7 evaluated once per step
    (alert,) = h.fired()
    assert alert.text == "gap 0.7 over 0.5" and "metric" not in alert.labels
    await h.log("r1", {"val/val_loss": 0.7})
    assert len(h.resolved()) == 1


async def test_run_state_rules(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness("""
        rules:
          - name: run-crashed
            run_state: [failed, crashed, killed]
            severity: error
            title: "Run {{ run.name }} is {{ run.state }}"
          - name: acc-low
            metric: acc
            when: "< 0.5"
    """)
    await h.run("ok")
    await h.run("bad", name="exp-bad")
    await h.series("bad", "acc", [0.1])
    await h.end("ok", RunState.FINISHED)
    await h.end("bad", RunState.CRASHED, "no contact for 60s")
    (crashed,) = h.fired("run-crashed")
    assert crashed.title == "Run exp-bad is crashed" and crashed.labels["run"] == "bad"
    assert crashed.severity.value == "error"
    assert [a.resolved_reason for a in h.resolved("acc-low")] == ["run crashed"]
    assert h.firing("run-crashed") == [crashed]  # a crash stays firing until the run resumes
