"""A replica taking over a run (RuleEngine.adopt): windows rebuilt from the stored points, stored alerts
kept under their ids, and what the previous owner stored without judging judged now."""

from __future__ import annotations

from alerts.model import AlertStatus, Run
from alerts.storage import RecordBatch
from tests.rules.harness import Harness

RULES = """
rules:
  - name: loss-high
    metric: loss
    when: "> 10"
  - name: acc-low-3
    metric: acc
    when: "< 0.5"
    for: 3
"""


async def store_points(h: Harness, run: Run, steps: list[tuple[int, dict[str, float]]], *, judge: bool) -> None:
    """Store steps as ingest does; ``judge=False`` is an owner killed between storing and judging."""
    for step, values in steps:
        h.now += 1.0
        batch = RecordBatch(first_seq=run.last_seq + 1, last_seq=run.last_seq + 1, steps=[(step, h.now, None)],
                            points=[(key, step, h.now, value) for key, value in values.items()])
        applied, _ = await h.store.apply_records(run, batch, h.now)
        assert applied
        run.last_seq += 1
        if judge:
            await h.engine.on_batch(run, batch)


async def take_over(h: Harness) -> None:
    """Another replica's engine: knows no run until it adopts one."""
    h.engine = h._engine()
    await h.engine.start(h.ruleset, restore_runs=False)
    await h.engine.adopt(h.runs["r1"])


async def test_a_firing_alert_the_points_bear_out_keeps_its_id_and_is_not_told_again(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(RULES)
    run = await h.run()
    await store_points(h, run, [(0, {"loss": 1.0}), (1, {"loss": 50.0}), (2, {"loss": 60.0})], judge=True)
    (fired,) = h.fired()
    await take_over(h)
    assert h.events == [fired]  # nothing new
    await store_points(h, run, [(3, {"loss": 1.0})], judge=True)
    (resolved,) = h.resolved()
    assert resolved.id == fired.id


async def test_episodes_stored_but_never_judged_are_told_now(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(RULES)
    run = await h.run()
    await store_points(h, run, [(0, {"loss": 1.0})], judge=True)
    # Killed with these stored, unjudged: a whole episode (fires at 1, clears at 3) and a new one at 5.
    await store_points(h, run, [(1, {"loss": 50.0}), (2, {"loss": 50.0}), (3, {"loss": 1.0}), (4, {"loss": 1.0}),
                                (5, {"loss": 70.0})], judge=False)
    await take_over(h)
    episodes = sorted({(a.step, a.status.value) for a in h.events})
    assert episodes == [(1, "firing"), (1, "resolved"), (5, "firing")]
    assert len({a.id for a in h.events}) == 2


async def test_a_stored_firing_alert_whose_condition_cleared_unjudged_resolves(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(RULES)
    run = await h.run()
    await store_points(h, run, [(0, {"loss": 50.0})], judge=True)
    (fired,) = h.fired()
    await store_points(h, run, [(1, {"loss": 2.0})], judge=False)
    await take_over(h)
    (resolved,) = h.resolved()
    assert (resolved.id, resolved.resolved_reason) == (fired.id, "condition cleared")


async def test_a_for_window_in_progress_is_rebuilt(make_harness) -> None:  # type: ignore[no-untyped-def]
    h = await make_harness(RULES)
    run = await h.run()
    await store_points(h, run, [(0, {"acc": 0.9}), (1, {"acc": 0.1}), (2, {"acc": 0.2})], judge=True)
    assert h.events == []  # pending: 2 of 3
    await take_over(h)
    assert h.events == []
    await store_points(h, run, [(3, {"acc": 0.3})], judge=True)
    (fired,) = h.fired()
    assert (fired.rule, fired.step, fired.status) == ("acc-low-3", 3, AlertStatus.FIRING)
