from __future__ import annotations

from tests.rules.harness import INF, NAN

RULE = """
rules:
  - name: loss-not-finite
    metric: "train/*loss"
    when: not finite
    severity: critical
"""


async def test_nan_and_inf_fire_per_key(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(RULE)
    await h.run()
    await h.log("r1", {"train/loss": 1.0, "train/aux_loss": 0.5, "train/acc": NAN})
    assert h.fired() == []
    await h.log("r1", {"train/loss": NAN, "train/aux_loss": -INF})
    assert sorted(a.metric for a in h.fired()) == ["train/aux_loss", "train/loss"]
    assert {a.severity.value for a in h.fired()} == {"critical"}
    await h.log("r1", {"train/loss": NAN})  # still firing: no second alert
    assert len(h.fired()) == 2
    await h.log("r1", {"train/loss": 0.9})
    assert [a.metric for a in h.resolved()] == ["train/loss"]


async def test_smoothed_not_finite_sees_nan_inside_the_window(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(RULE.replace("when: not finite", "when: not finite\n    over: {last: 3}"))
    await h.run()
    await h.series("r1", "train/loss", [1.0, NAN, 1.0])
    (alert,) = h.fired()
    assert alert.step == 2  # the first full window, with the NaN inside it (the raw NaN was at step 1)
    assert h.resolved() == []
    await h.log("r1", {"train/loss": 1.0})  # step 3: the NaN is still one of the last 3 points
    assert h.resolved() == []
    await h.log("r1", {"train/loss": 1.0})  # step 4: it left the window
    assert [a.id for a in h.resolved()] == [alert.id]
