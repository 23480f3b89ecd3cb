from __future__ import annotations

from tests.rules.harness import NAN


async def test_plateau_early_stopping_semantics(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness("""
        rules:
          - name: loss-plateau
            metric: val/loss
            plateau: {patience: 3, min_delta: 0.01, mode: min}
    """)
    await h.run()
    await h.series("r1", "val/loss", [1.0, 0.9, 0.895, 0.899, 0.893])  # 3 points without a 0.01 improvement
    (alert,) = h.fired()
    assert alert.step == 4 and alert.threshold == 0.9
    await h.series("r1", "val/loss", [0.5])
    assert len(h.resolved()) == 1


async def test_plateau_max_mode(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness("""
        rules:
          - name: acc-plateau
            metric: val/acc
            plateau: {patience: 2, mode: max}
    """)
    await h.run()
    await h.series("r1", "val/acc", [0.5, 0.6, 0.6, 0.55])
    assert len(h.fired()) == 1


async def test_change_percent_increase(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness("""
        rules:
          - name: loss-spike
            metric: train/loss
            change: {window: 2, baseline: 4, by: "50%", direction: increase}
    """)
    await h.run()
    await h.series("r1", "train/loss", [1.0, 1.0, 1.0, 1.0, 1.2, 1.4])  # recent mean 1.3: +30%
    assert h.fired() == []
    await h.series("r1", "train/loss", [2.0])  # baseline [1,1,1,1.2]=1.05, recent [1.4,2.0]=1.7: +62%
    (alert,) = h.fired()
    assert abs((alert.value or 0) - 1.7) < 1e-9 and abs((alert.threshold or 0) - 1.05) < 1e-9


async def test_change_absolute_decrease_and_either(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness("""
        rules:
          - name: acc-drop
            metric: val/acc
            change: {window: 1, baseline: 2, by: 0.2, direction: decrease}
          - name: acc-move
            metric: val/acc
            change: {window: 1, baseline: 2, by: 0.2}
    """)
    await h.run()
    await h.series("r1", "val/acc", [0.8, 0.8, 1.05])
    assert [a.rule for a in h.fired()] == ["acc-move"]
    await h.series("r1", "val/acc", [0.5])
    assert sorted(a.rule for a in h.fired()) == ["acc-drop", "acc-move"]  # acc-move was still firing


async def test_zscore_spike_and_flat_history(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness("""
        rules:
          - name: grad-spike
            metric: grad_norm
            zscore: {window: 5, threshold: 4, direction: either}
    """)
    await h.run()
    await h.series("r1", "grad_norm", [1.0, 1.1, 0.9, 1.0, 1.05, 1.02, NAN])
    assert h.fired() == []
    await h.series("r1", "grad_norm", [9.0])
    (alert,) = h.fired()
    assert alert.value == 9.0 and alert.threshold == 4
    await h.run("flat")
    await h.series("flat", "grad_norm", [1.0] * 5 + [1.0, 1.5])
    assert [a.labels["run"] for a in h.fired()] == ["r1", "flat"]
