"""The engine's shortcuts (plain thresholds skip the verdict, absent rules touched once per key and
batch) give the alerts a straight per-point evaluation gives, on random, unordered, repeated batches.

No ``expr`` rule here: it is judged once per step of a batch, so one-point batches are not its reference.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.model import Alert
from alerts.rules.conditions import Threshold
from alerts.storage import RecordBatch
from tests.rules.harness import Harness

RULES = """
rules:
  - {name: high, metric: "a", when: "> 0.5", for: 2}
  - {name: nan, metric: "*", when: not finite}
  - {name: low-b, metric: "b", when: "< 0.2", recover_when: "> 0.4"}
  - {name: smooth, metric: "a", when: "> 0.7", over: {last: 2, agg: mean}}
  - {name: quiet, metric: "*", absent: 1h}
"""

values = st.one_of(st.floats(0, 1), st.just(float("nan")), st.just(float("inf")))
point = st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 30), values)
batches = st.lists(st.lists(point, min_size=1, max_size=12), min_size=1, max_size=8)


def _shape(alerts: list[Alert]) -> list[tuple[object, ...]]:
    return [(a.rule, a.status.value, a.metric, a.step, a.starts_at, a.ends_at, a.resolved_reason,
             None if a.value is None or a.value != a.value else a.value) for a in alerts]


async def _alerts(raw: list[list[tuple[str, int, float]]], *, shortcuts: bool) -> list[tuple[object, ...]]:
    with tempfile.TemporaryDirectory() as tmp:
        harness = await Harness(Path(tmp), RULES).start()
        try:
            if not shortcuts:
                for rule in harness.ruleset.rules:
                    if isinstance(rule.evaluator, Threshold):
                        rule.evaluator.plain = None
            run = await harness.run()
            for number, points in enumerate(raw):
                harness.now += 1.0
                batch = RecordBatch(first_seq=number + 1, last_seq=number + 1)
                batch.points = [(key, step, 1_800_000_000.0 + step, value) for key, step, value in points]
                if not shortcuts:  # one point per batch: the absent bookkeeping runs for every point
                    for single in batch.points:
                        await harness.engine.on_batch(run, RecordBatch(first_seq=1, last_seq=1, points=[single]))
                else:
                    await harness.engine.on_batch(run, batch)
            return _shape(harness.events)
        finally:
            await harness.close()


@settings(max_examples=40, deadline=None)
@given(batches)
def test_shortcuts_change_no_alert(raw: list[list[tuple[str, int, float]]]) -> None:
    assert asyncio.run(_alerts(raw, shortcuts=True)) == asyncio.run(_alerts(raw, shortcuts=False))
