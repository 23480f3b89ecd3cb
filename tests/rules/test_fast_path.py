"""The engine's shortcuts (columns judged at once, plain thresholds skip the verdict, absent rules touched
once per key and batch) give the alerts a straight per-point evaluation gives, on random, unordered,
repeated batches.

No ``expr`` rule here: it is judged once per step of a batch, so one-point batches are not its reference.
"""

from __future__ import annotations

import asyncio
import tempfile
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from alerts.model import Alert
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


async def _judge(rules: str, batches: list[list[tuple[str, int, float, float]]], *, shortcuts: bool,
                 point_by_point: bool = False) -> list[tuple[object, ...]]:
    """The alerts of ``batches`` fed to a fresh engine; ``point_by_point``: each point as its own batch."""
    with tempfile.TemporaryDirectory() as tmp:
        harness = await Harness(Path(tmp), rules, shortcuts=shortcuts).start()
        try:
            run = await harness.run()
            for number, points in enumerate(batches):
                harness.now += 1.0
                if point_by_point:  # the absent bookkeeping runs for every point
                    for single in points:
                        await harness.engine.on_batch(run, RecordBatch(first_seq=1, last_seq=1, points=[single]))
                else:
                    await harness.engine.on_batch(run, RecordBatch(first_seq=number + 1, last_seq=number + 1,
                                                                   points=list(points)))
            return _shape(harness.events)
        finally:
            await harness.close()


async def _alerts(raw: list[list[tuple[str, int, float]]], *, shortcuts: bool) -> list[tuple[object, ...]]:
    batches = [[(key, step, 1_800_000_000.0 + step, value) for key, step, value in points] for points in raw]
    return await _judge(RULES, batches, shortcuts=shortcuts, point_by_point=not shortcuts)


@settings(max_examples=40, deadline=None)
@given(batches)
def test_shortcuts_change_no_alert(raw: list[list[tuple[str, int, float]]]) -> None:
    assert asyncio.run(_alerts(raw, shortcuts=True)) == asyncio.run(_alerts(raw, shortcuts=False))


# Every kind with a column shortcut, with bounds near the values drawn, so series go quiet, pending,
# firing and resolved within a few batches.
ALL_KINDS = """
rules:
  - {name: gt, metric: "a", when: "> 0.8", for: 2}
  - {name: ge, metric: "*", when: ">= 0.95", keep_firing_for: 2}
  - {name: lt, metric: "b", when: "< 0.1", recover_when: "> 0.3"}
  - {name: le, metric: "*", when: "<= 0.02"}
  - {name: eq, metric: "a", when: "== 0.5"}
  - {name: ne, metric: "c", when: "!= 0.5"}
  - {name: nan, metric: "*", when: not finite}
  - {name: mean3, metric: "a", when: "> 0.7", over: {last: 3, agg: mean}}
  - {name: min2, metric: "b", when: "< 0.2", over: {last: 2, agg: min}}
  - {name: secs, metric: "c", when: "> 0.6", over: {last: 3s, agg: max}}
  - {name: nonfinite-mean, metric: "b", when: not finite, over: {last: 2, agg: mean}}
  - {name: plateau, metric: "b", plateau: {patience: 6, min_delta: 0.05}}
  - {name: plateau-max, metric: "c", plateau: {patience: 4, mode: max}}
  - {name: change-abs, metric: "a", change: {window: 2, baseline: 3, by: 0.5}}
  - {name: change-rel, metric: "c", change: {window: 2, baseline: 3, by: "50%"}}
  - {name: zscore, metric: "*", zscore: {window: 5, threshold: 2.5}}
  - {name: ratio, expr: "`a` - `b` > 0.6"}
  - {name: spread, expr: "abs(`a` - `c`) >= 0.45 and max(`a`, `b`) * 2 > 1.5", for: 2}
  - {name: either, expr: "`b` / `c` < 0.3 or min(`a`, `c`) <= 0.05"}
  - {name: equal, expr: "`a` + `b` == 1"}
  - {name: quiet, metric: "*", absent: 1h}
"""

# Mostly smooth values (quiet columns), sometimes jumps, NaN and inf (every shortcut must give way).
smooth = st.floats(0.4, 0.6)
jumpy = st.one_of(st.floats(0, 1), st.just(0.5), st.just(float("nan")), st.just(float("inf")),
                  st.just(-float("inf")))
kinds_value = st.one_of(smooth, smooth, smooth, jumpy)


@st.composite
def sdk_batches(draw: st.DrawFn) -> list[list[tuple[str, int, float, float]]]:
    """Batches as the SDK makes them (every key at every step, steps rising), and now and then one that is
    not: re-sent, out of order, a key missing, a step logged twice."""
    keys = draw(st.lists(st.sampled_from(["a", "b", "c"]), min_size=1, max_size=3, unique=True))
    step, batches = 0, []
    for _ in range(draw(st.integers(1, 8))):
        rows = draw(st.integers(1, 6))
        points = [(key, s, 1_800_000_000.0 + s, draw(kinds_value)) for s in range(step, step + rows) for key in keys]
        step += rows
        shape = draw(st.sampled_from(["sdk", "sdk", "sdk", "resent", "shuffled", "sparse", "twice"]))
        if shape == "resent" and batches:
            points = batches[-1] + points
        elif shape == "shuffled":
            points = draw(st.permutations(points))
        elif shape == "sparse":
            points = [point for point in points if draw(st.booleans())] or points[:1]
        elif shape == "twice":  # a later sample at the same step (system metrics)
            key, s, at, value = points[-1]
            points.append((key, s, at + 0.5, draw(kinds_value)))
        batches.append(points)
    return batches


async def _every_kind(batches: list[list[tuple[str, int, float, float]]], *,
                      shortcuts: bool) -> list[tuple[object, ...]]:
    return await _judge(ALL_KINDS, batches, shortcuts=shortcuts)


@settings(max_examples=40, deadline=None)
@given(sdk_batches())
def test_columns_judge_as_point_by_point(batches: list[list[tuple[str, int, float, float]]]) -> None:
    """Every rule kind over SDK-shaped and irregular batches: the same alerts, in the same order, with and
    without the column shortcuts."""
    assert asyncio.run(_every_kind(batches, shortcuts=True)) == asyncio.run(_every_kind(batches, shortcuts=False))


def test_the_property_sees_alerts() -> None:
    """The generated batches do reach firing and resolving (a property that never fires proves nothing)."""
    steady = [[(key, s, 1_800_000_000.0 + s, 0.5) for s in range(n * 4, n * 4 + 4) for key in "abc"]
              for n in range(3)]
    spike = [[(key, s, 1_800_000_000.0 + s, 0.99 if key == "a" else 0.01) for s in range(12, 16) for key in "abc"]]
    calm = [[(key, s, 1_800_000_000.0 + s, 0.5) for s in range(16, 30) for key in "abc"]]
    alerts = asyncio.run(_every_kind(steady + spike + calm, shortcuts=True))
    assert {"gt", "ge", "le", "mean3", "zscore", "ratio", "spread", "either"} <= \
        {rule for rule, status, *_ in alerts if status == "firing"}
    assert {"gt", "ratio"} <= {rule for rule, status, *_ in alerts if status == "resolved"}
    assert alerts == asyncio.run(_every_kind(steady + spike + calm, shortcuts=False))
