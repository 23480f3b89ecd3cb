"""``Store.series``: a metric series downsampled for a chart, with spikes and NaN/inf never averaged away."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import pytest

from alerts.storage import NewRun, RecordBatch, Store
from alerts.storage.base import SeriesData

T0 = 1_700_000_000.0
SPIKE, NAN, INF = 31_337, 50_001, 77_777  # steps of the rare points in the 100,000-step series


def _clock(step: int) -> float:
    return T0 + step * 0.5


async def fill(store: Store, series: dict[str, dict[int, float]],
               clock: Callable[[int], float] = _clock, run_id: str = "r1") -> int:
    run, _ = await store.upsert_run(NewRun(project="p", id=run_id, name="n", config={}, tags=[], notes=None,
                                           group=None, job_type=None, started_at=T0, host=None, pid=None), T0)
    points = [(key, step, clock(step), value) for key, values in series.items() for step, value in values.items()]
    applied, _ = await store.apply_records(run, RecordBatch(first_seq=1, last_seq=1, points=points), T0)
    assert applied
    return run.pk


def long_series() -> dict[int, float]:
    values = {step: math.sin(step / 1000) for step in range(100_000)}
    values[SPIKE] = 1e6
    values[NAN] = math.nan
    values[INF] = math.inf
    return values


def column_of(data: SeriesData, at: float) -> int:
    (found,) = [i for i in range(len(data.xs)) if data.xs[i] <= at <= data.xe[i]]
    return found


def check_columns(data: SeriesData, width: int) -> None:
    assert data.mode == "minmax"
    assert 0 < len(data.xs) <= width
    assert len(data.xs) == len(data.xe) == len(data.mins) == len(data.maxs) == len(data.counts)
    assert all(a <= b for a, b in zip(data.xs, data.xe, strict=True))
    assert all(b < a for a, b in zip(data.xs[1:], data.xe, strict=False))  # ordered, disjoint
    assert all(v is None or math.isfinite(v) for v in data.mins + data.maxs)


@pytest.fixture
async def long_run(store: Store) -> int:
    return await fill(store, {"loss": long_series(), "other": {0: 1.0}})


async def test_a_short_series_comes_raw_with_nan_and_inf_kept(store: Store) -> None:
    values = {step: float(step) for step in range(50)}
    values[7], values[8], values[9] = math.nan, math.inf, -math.inf
    run_pk = await fill(store, {"loss": values})
    data = await store.series(run_pk, "loss", width=100)
    assert data.mode == "raw" and data.points == 50 and data.extent == (0, 49)
    assert data.xs == data.xe == list(range(50)) and data.counts == [1] * 50
    expected = [None if step in (7, 8, 9) else float(step) for step in range(50)]
    assert data.mins == data.maxs == expected
    assert [(x, str(kind), n) for x, kind, n in data.nonfinite] == [(7, "nan", 1), (8, "inf", 1), (9, "-inf", 1)]


async def test_100k_points_at_width_500_keep_the_spike_the_nan_and_the_inf(store: Store, long_run: int) -> None:
    data = await store.series(long_run, "loss", width=500)
    check_columns(data, 500)
    assert data.points == 100_000 and sum(data.counts) == 100_000 and data.extent == (0, 99_999)
    assert data.maxs[column_of(data, SPIKE)] == 1e6
    assert max(v for v in data.maxs if v is not None) == 1e6
    assert [(x, str(kind), n) for x, kind, n in data.nonfinite] == [(NAN, "nan", 1), (INF, "inf", 1)]
    # The columns of the NaN and the inf still show the least and greatest of their finite values.
    values = long_series()
    for step in (NAN, INF):
        i = column_of(data, step)
        finite = [values[s] for s in range(int(data.xs[i]), int(data.xe[i]) + 1) if math.isfinite(values[s])]
        assert (data.mins[i], data.maxs[i], data.counts[i]) == (min(finite), max(finite), len(finite) + 1)


async def test_columns_hold_the_exact_min_and_max_of_their_points(store: Store) -> None:
    values = {step: float((step * 7919) % 1000) - 500.0 for step in range(5_000)}
    run_pk = await fill(store, {"v": values})
    data = await store.series(run_pk, "v", width=100)
    check_columns(data, 100)
    for i in range(len(data.xs)):
        inside = [values[s] for s in range(int(data.xs[i]), int(data.xe[i]) + 1)]
        assert (data.mins[i], data.maxs[i], data.counts[i]) == (min(inside), max(inside), len(inside))


async def test_zooming_in_gives_finer_columns_then_raw_points(store: Store, long_run: int) -> None:
    whole = await store.series(long_run, "loss", width=500)
    wide = await store.series(long_run, "loss", start=40_000, end=60_000, width=500)
    check_columns(wide, 500)
    assert wide.xs[0] >= 40_000 and wide.xe[-1] <= 60_000 and sum(wide.counts) == 20_001
    assert max(b - a for a, b in zip(wide.xs, wide.xe, strict=True)) < min(
        b - a for a, b in zip(whole.xs, whole.xe, strict=True))
    assert (wide.points, wide.extent) == (100_000, (0, 99_999))  # the whole series, for zooming out
    assert [x for x, _kind, _n in wide.nonfinite] == [NAN]

    near = await store.series(long_run, "loss", start=NAN - 300.5, end=NAN + 300, width=500)
    assert near.mode == "raw" and near.xs == list(range(NAN - 300, NAN + 301))
    assert (near.points, near.extent) == (100_000, (0, 99_999))
    assert [(x, str(kind)) for x, kind, _n in near.nonfinite] == [(NAN, "nan")]
    assert near.mins[near.xs.index(NAN)] is None

    outside = await store.series(long_run, "loss", start=200_000, end=300_000, width=500)
    assert outside.mode == "raw" and outside.xs == [] and outside.points == 100_000


async def test_time_axis(store: Store, long_run: int) -> None:
    data = await store.series(long_run, "loss", x="time", width=500)
    check_columns(data, 500)
    assert data.points == 100_000 and data.extent == (_clock(0), _clock(99_999))
    assert data.maxs[column_of(data, _clock(SPIKE))] == 1e6
    assert [(x, str(kind)) for x, kind, _n in data.nonfinite] == [(_clock(NAN), "nan"), (_clock(INF), "inf")]

    near = await store.series(long_run, "loss", x="time", start=_clock(INF - 100), end=_clock(INF + 100), width=500)
    assert near.mode == "raw" and near.xs == [_clock(s) for s in range(INF - 100, INF + 101)]
    assert near.extent == (_clock(0), _clock(99_999))
    assert [(x, str(kind)) for x, kind, _n in near.nonfinite] == [(_clock(INF), "inf")]


async def test_time_axis_keeps_points_of_a_clock_that_went_back(store: Store) -> None:
    values = {step: 1.0 for step in range(3_000)}
    values[1500] = 99.0

    def clock(step: int) -> float:
        return T0 - 3600 if step == 1500 else _clock(step)  # one point an hour before the first step

    run_pk = await fill(store, {"v": values}, clock)
    data = await store.series(run_pk, "v", x="time", width=100)
    check_columns(data, 100)
    assert sum(data.counts) == data.points == 3_000
    assert data.extent == (T0 - 3600, _clock(2_999)) and data.xs[0] == T0 - 3600
    assert data.maxs[0] == 99.0


async def test_time_axis_from_blocks_is_exact_and_a_clock_that_went_back_reads_the_points(store: Store) -> None:
    """Long enough for the blocks (20,000 steps, width 100); the clock runs unevenly, so columns hold
    different numbers of steps; every column must still summarize exactly the points of its time span."""
    values = {step: math.cos(step / 50) * (step % 13) for step in range(20_000)}
    values[7_777], values[12_000] = math.nan, math.inf

    def uneven(step: int) -> float:
        return T0 + step * 0.5 + (step // 1000) * 7.25  # a pause every 1,000 steps

    run_pk = await fill(store, {"v": values}, uneven)
    data = await store.series(run_pk, "v", x="time", width=100)
    check_columns(data, 100)
    assert sum(data.counts) == data.points == 20_000 and data.extent == (T0, uneven(19_999))
    for i in range(len(data.xs)):
        inside = [v for s, v in values.items() if data.xs[i] <= uneven(s) <= data.xe[i]]
        finite = [v for v in inside if math.isfinite(v)]
        assert (data.mins[i], data.maxs[i], data.counts[i]) == (min(finite), max(finite), len(inside))
    assert [(x, str(kind), n) for x, kind, n in data.nonfinite] == [(uneven(7_777), "nan", 1),
                                                                     (uneven(12_000), "inf", 1)]

    def went_back(step: int) -> float:
        return uneven(step) - (600.0 if 10_000 <= step < 10_008 else 0.0)  # inside one block, ten minutes back

    back = await fill(store, {"v": values}, went_back, run_id="r2")
    data = await store.series(back, "v", x="time", width=100)
    check_columns(data, 100)  # ordered, disjoint columns: read from the points, not from overlapping blocks
    assert sum(data.counts) == 20_000


async def test_several_non_finite_kinds_in_one_column_and_a_column_without_finite_values(store: Store) -> None:
    values = {step: 1.0 for step in range(10_000)}
    for step in range(5_000, 5_400):  # whole columns of NaN, then inf and -inf next to each other
        values[step] = math.nan
    values[8_000], values[8_001], values[8_002], values[8_003] = math.inf, -math.inf, math.inf, math.nan
    run_pk = await fill(store, {"v": values})
    data = await store.series(run_pk, "v", width=100)
    check_columns(data, 100)
    only_nan = column_of(data, 5_200)
    assert 5_000 <= data.xs[only_nan] and data.xe[only_nan] < 5_400  # a column of NaN alone...
    assert (data.mins[only_nan], data.maxs[only_nan]) == (None, None)  # ...has no finite min or max
    marks = [(x, str(kind), n) for x, kind, n in data.nonfinite]
    nan_run = [mark for mark in marks if 5_000 <= mark[0] < 5_400]
    assert nan_run[0][0] == 5_000 and {kind for _x, kind, _n in nan_run} == {"nan"}
    assert sum(n for _x, _kind, n in nan_run) == 400  # one marker per column, counting all of them
    assert marks[len(nan_run):] == [(8_000, "inf", 2), (8_001, "-inf", 1), (8_003, "nan", 1)]
    assert data.mins[column_of(data, 8_000)] == data.maxs[column_of(data, 8_000)] == 1.0


async def test_blocks_answer_as_the_points_do(store: Store) -> None:
    """A long series is read from metric_blocks; every column must equal what its points say, also after
    points were written again (a block is rebuilt, never counted twice)."""
    values = {step: math.sin(step / 37) * (1 + step % 11) for step in range(20_000)}
    values[12_345], values[15_000] = math.nan, -math.inf
    run, _ = await store.upsert_run(NewRun(project="p", id="blocks", name="n", config={}, tags=[], notes=None,
                                           group=None, job_type=None, started_at=T0, host=None, pid=None), T0)
    points = [("v", step, _clock(step), value) for step, value in values.items()]
    for seq, first in enumerate(range(0, 20_000, 999), start=1):  # batches that split blocks
        applied, _ = await store.apply_records(run, RecordBatch(first_seq=seq, last_seq=seq,
                                                                points=points[first:first + 999]), T0)
        assert applied
    values[100] = 1e9  # written again in a later batch: replaces the point, and its block
    applied, _ = await store.apply_records(run, RecordBatch(first_seq=seq + 1, last_seq=seq + 1,
                                                            points=[("v", 100, _clock(100), 1e9)]), T0)
    assert applied
    data = await store.series(run.pk, "v", width=200)
    check_columns(data, 200)
    assert data.points == sum(data.counts) == 20_000 and data.extent == (0, 19_999)
    for i in range(len(data.xs)):
        inside = [values[s] for s in range(int(data.xs[i]), int(data.xe[i]) + 1)]
        finite = [v for v in inside if math.isfinite(v)]
        assert (data.mins[i], data.maxs[i], data.counts[i]) == (min(finite), max(finite), len(inside))
    assert [(x, str(kind), n) for x, kind, n in data.nonfinite] == [(12_345, "nan", 1), (15_000, "-inf", 1)]
    assert data.maxs[column_of(data, 100)] == 1e9


async def test_sparse_steps_come_raw_when_few(store: Store) -> None:
    run_pk = await fill(store, {"eval": {step: step / 1e6 for step in range(0, 1_000_000, 1_000)}})
    raw = await store.series(run_pk, "eval", width=500)
    assert raw.mode == "raw" and len(raw.xs) == 1_000 and raw.extent == (0, 999_000)
    reduced = await store.series(run_pk, "eval", width=100)
    check_columns(reduced, 100)
    assert sum(reduced.counts) == 1_000


async def test_unknown_key_and_run_are_empty(store: Store, long_run: int) -> None:
    for run_pk, key in ((long_run, "nope"), (10_000, "loss")):
        for axis in ("step", "time"):
            data = await store.series(run_pk, key, x=axis, width=500)
            assert (data.mode, data.points, data.extent, data.xs, data.nonfinite) == ("raw", 0, None, [], [])
    one = await store.series(long_run, "other", x="time", width=500)
    assert (one.mode, one.points, one.extent, one.xs, one.mins) == ("raw", 1, (T0, T0), [T0], [1.0])


async def test_points_stored_before_the_blocks_get_them_when_the_database_is_upgraded(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from alerts.storage import open_store
    from tests.storage.old_database import OLD_RUN, database_at

    db = tmp_path / "old.db"
    with database_at(db, "0006") as conn:  # a database as the previous release left it, with a long series
        conn.execute(sa.text(OLD_RUN))
        pk = conn.execute(sa.text("SELECT pk FROM runs")).scalar_one()
        conn.execute(sa.text("INSERT INTO metrics (run_pk, key, step, timestamp, value) VALUES (:pk, 'v', :s, :s, :v)"),
                     [{"pk": pk, "s": s, "v": None if s == 4321 else float(s % 97)} for s in range(10_000)])
    store = open_store(f"sqlite:///{db}")
    await store.open()
    try:
        data = await store.series(pk, "v", width=100)
        check_columns(data, 100)
        assert sum(data.counts) == 10_000 and max(v for v in data.maxs if v is not None) == 96.0
        assert [(x, str(kind), n) for x, kind, n in data.nonfinite] == [(4321, "nan", 1)]
        async with store.engine.connect() as conn:  # type: ignore[attr-defined]
            blocks = (await conn.execute(sa.text("SELECT COUNT(*), SUM(points) FROM metric_blocks"))).one()
        assert tuple(blocks) == (-(-10_000 // 16), 10_000)
    finally:
        await store.close()
