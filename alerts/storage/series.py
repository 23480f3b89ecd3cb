"""``Store.series`` in SQL: one metric series downsampled for a chart, reduced inside the database.

A window of up to ``2 * width`` points is read raw. A larger one is reduced to pixel columns by the
database, so 100,000 rows never cross into Python, in two passes:

1. every column: first/last x, point count, non-NULL count, min and max of the value. A NULL (NaN) makes
   the counts differ and an inf shows as the min or max: nothing else can be non-finite.
2. only the columns pass 1 flagged (usually none or a few): min/max of the *finite* values and, per kind
   of non-finite value, its first x and count. These ``CASE`` aggregates cost more per row than pass 1,
   so a series with one NaN pays for one column, not for the whole window.

Step axis: the primary key (run_pk, key, step) finds the window's ends by seeking, and columns are whole
numbers of steps. SQLite sorts every row for a ``GROUP BY`` on an expression (a third of the time of a
call at 100,000 points), so there each column is a range seek from a per-connection table of column
numbers (``series_columns``), which hands the rows to the aggregates already grouped. PostgreSQL hashes
the groups and takes the plain ``GROUP BY``.

Time axis: no index (one would slow every insert), so one ``GROUP BY`` pass. Its columns span the clock
of the first and last step; a point logged on a skewed clock outside that span lands in an edge column
instead of being lost, and the extent reported is still exact (the first/last x of the columns).
"""

from __future__ import annotations

import math
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    ColumnElement,
    Integer,
    MetaData,
    Select,
    Table,
    and_,
    case,
    cast,
    func,
    literal,
    select,
)
from sqlalchemy.ext.asyncio import AsyncConnection

from alerts.storage import tables as t
from alerts.storage.base import SeriesData, SeriesX

_INF = math.inf
_STEP_MAX = 2**63 - 1  # the BigInteger column's range: PostgreSQL refuses a bound integer beyond it
_COLUMNS_MAX = 4096

m = t.metrics.c

# Per connection (SQLite's temp schema), never in the migrated schema: see ``create_series_columns``.
_columns = Table("series_columns", MetaData(), Column("i", Integer, primary_key=True), schema="temp")

Markers = list[tuple[float, float, int]]


def create_series_columns(dbapi_connection: Any, _record: Any) -> None:
    """SQLite connect hook: the column numbers 0..4095 as a temp table (the step axis' fast path)."""
    cursor = dbapi_connection.cursor()
    cursor.execute("CREATE TEMP TABLE IF NOT EXISTS series_columns (i INTEGER PRIMARY KEY)")
    cursor.execute("INSERT OR IGNORE INTO temp.series_columns (i) WITH RECURSIVE n(i) AS "
                   f"(SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < {_COLUMNS_MAX - 1}) SELECT i FROM n")
    cursor.close()
    dbapi_connection.commit()


async def read_series(conn: AsyncConnection, dialect: str, run_pk: int, key: str, *, x: SeriesX,
                      start: float | None, end: float | None, width: int, blocks: bool = True) -> SeriesData:
    """The series; ``blocks=False`` reads only points (when ``metric_blocks`` may lag behind them)."""
    if width < 1:
        raise ValueError(f"width must be at least 1, not {width}")
    reader = (_StepSeries if x == "step" else _TimeSeries)(conn, dialect, run_pk, key, start, end, width)
    reader.use_blocks = blocks
    return await reader.read()


_KINDS = (math.nan, _INF, -_INF)


def detail_aggregates(x: Any) -> list[Any]:
    """Pass 2's aggregates: finite min and max, then per non-finite kind (NaN, +inf, -inf) its first ``x``
    and its count. :func:`read_detail` reads a row of them."""
    v = m.value
    finite = and_(v > -_INF, v < _INF)
    aggregates: list[Any] = [func.min(case((finite, v))), func.max(case((finite, v)))]
    for condition in (v.is_(None), v == _INF, v == -_INF):
        aggregates += [func.min(case((condition, x))), func.sum(case((condition, 1), else_=0))]
    return aggregates


def read_detail(row: Any) -> tuple[float | None, float | None, Markers]:
    """(finite min, finite max, markers by x) from a row of :func:`detail_aggregates`."""
    marks = [(row[2 + 2 * i], kind, int(row[3 + 2 * i])) for i, kind in enumerate(_KINDS) if row[3 + 2 * i]]
    return row[0], row[1], sorted(marks, key=lambda mark: mark[0])


class _Series:
    """What both axes share: the raw read and the two reduction passes."""

    axis: SeriesX
    column: Any

    def __init__(self, conn: AsyncConnection, dialect: str, run_pk: int, key: str, start: float | None,
                 end: float | None, width: int) -> None:
        self.conn = conn
        self.dialect = dialect
        self.key = key
        self.width = width
        self.start, self.end = start, end
        self.run_pk = run_pk
        self.series_of = [m.run_pk == run_pk, m.key == key]
        self.use_blocks = True

    def window(self) -> list[ColumnElement[bool]]:
        raise NotImplementedError

    def first_pass(self, aggregates: list[Any]) -> Select[Any]:
        """Pass 1: ``aggregates`` per column (the step axis may read them from ``metric_blocks``)."""
        return self.grouped(aggregates)

    def grouped(self, aggregates: list[Any], only: list[int] | None = None,
                span: tuple[float, float] | None = None) -> Select[Any]:
        """``SELECT column number, *aggregates`` over the window's points by column; with ``only``, over
        just those columns, whose points all lie in the x range ``span``."""
        raise NotImplementedError

    def empty(self, points: int = 0, extent: tuple[float, float] | None = None) -> SeriesData:
        return SeriesData(key=self.key, x=self.axis, mode="raw", points=points, extent=extent)

    async def raw(self, points: int | None, extent: tuple[float, float] | None) -> SeriesData:
        """Every point of the window; ``points is None`` means the window is the whole series."""
        order = [self.column] if self.axis == "step" else [self.column, m.step]
        rows = (await self.conn.execute(select(self.column, m.value).where(*self.series_of, *self.window())
                                        .order_by(*order))).all()
        xs = [row[0] for row in rows]
        values: list[float | None] = []
        nonfinite: Markers = []
        for at, value in rows:
            if value is None or math.isinf(value):
                values.append(None)
                nonfinite.append((at, math.nan if value is None else value, 1))
            else:
                values.append(value)
        if points is None:
            points, extent = len(rows), (xs[0], xs[-1]) if rows else None
        return SeriesData(key=self.key, x=self.axis, mode="raw", points=points, extent=extent, xs=xs, xe=xs,
                          mins=values, maxs=values, counts=[1] * len(rows), nonfinite=nonfinite)

    async def columns(self, points: int | None, extent: tuple[float, float] | None) -> SeriesData:
        """The window by pixel column, or raw when it holds no more than ``2 * width`` points."""
        rows = (await self.conn.execute(self.first_pass(
            [func.min(self.column), func.max(self.column), func.count(), func.count(m.value), func.min(m.value),
             func.max(m.value)]))).all()
        counted = sum(int(row[3]) for row in rows)
        if counted <= 2 * self.width:
            return await self.raw(points, extent)
        flagged = [row for row in rows if row[3] != row[4] or row[5] == -_INF or row[6] == _INF]
        detail = await self._detail([int(row[0]) for row in flagged], (flagged[0][1], flagged[-1][2])) \
            if flagged else {}
        xs, xe, mins, maxs, counts = [], [], [], [], []
        nonfinite: Markers = []
        for number, first, last, count, _valued, low, high in rows:
            xs.append(first)
            xe.append(last)
            counts.append(count)
            if int(number) in detail:
                low, high, marks = detail[int(number)]
                nonfinite.extend(marks)
            mins.append(low)
            maxs.append(high)
        if points is None:
            points, extent = counted, (xs[0], xe[-1])
        return SeriesData(key=self.key, x=self.axis, mode="minmax", points=points, extent=extent, xs=xs, xe=xe,
                          mins=mins, maxs=maxs, counts=counts, nonfinite=nonfinite)

    async def _detail(self, flagged: list[int], span: tuple[float, float]
                      ) -> dict[int, tuple[float | None, float | None, Markers]]:
        """Pass 2 over the flagged columns: finite min/max and the first x and count of each non-finite kind."""
        rows = (await self.conn.execute(self.grouped(detail_aggregates(self.column), flagged, span))).all()
        return {int(row[0]): read_detail(row[1:]) for row in rows}


class _StepSeries(_Series):
    axis: SeriesX = "step"
    column = m.step

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        # Steps are whole numbers: the window's bounds become the whole steps inside it.
        self.first = None if self.start is None else max(-_STEP_MAX, min(_STEP_MAX, math.ceil(self.start)))
        self.last = None if self.end is None else max(-_STEP_MAX, min(_STEP_MAX, math.floor(self.end)))
        self.low = self.high = self.per_column = self.count = 0
        self.blocks = False

    def window(self) -> list[ColumnElement[bool]]:
        bounds = []
        if self.first is not None:
            bounds.append(m.step >= self.first)
        if self.last is not None:
            bounds.append(m.step <= self.last)
        return bounds

    async def read(self) -> SeriesData:
        whole = self.first is None and self.last is None
        # Separate scalar subqueries: SQLite answers a lone min() or max() with one seek on the key, but
        # scans every point for the two together.
        ends = [select(func.min(m.step)).where(*self.series_of).scalar_subquery(),
                select(func.max(m.step)).where(*self.series_of).scalar_subquery()]
        if not whole:
            ends += [select(func.min(m.step)).where(*self.series_of, *self.window()).scalar_subquery(),
                     select(func.max(m.step)).where(*self.series_of, *self.window()).scalar_subquery()]
        found = (await self.conn.execute(select(*ends))).one()
        if found[0] is None:
            return self.empty()
        points: int | None = None
        extent: tuple[float, float] | None = None
        if not whole:
            points = int((await self.conn.execute(select(func.count()).where(*self.series_of))).scalar_one())
            extent = (found[0], found[1])
            if found[2] is None:
                return self.empty(points, extent)
        self.low, self.high = (found[0], found[1]) if whole else (found[2], found[3])
        steps = self.high - self.low + 1
        if whole and self._fit_blocks(steps):
            return await self.columns(points, extent)  # at least the window's points: a step has one point per key
        if steps <= 2 * self.width:
            return await self.raw(points, extent)
        self.per_column = -(-steps // self.width)
        self.count = -(-steps // self.per_column)
        return await self.columns(points, extent)

    def _fit_blocks(self, steps: int) -> bool:
        """Columns of whole ``metric_blocks`` rows for the whole series, if that keeps them near ``width``:
        then pass 1 reads 1/BLOCK_STEPS of the rows and is exact all the same (each column holds exactly
        its blocks' points)."""
        size = t.BLOCK_STEPS
        base = self.low // size * size
        per_column = -(-(self.high - base + 1) // self.width)
        # Coarser by more than a quarter: read points.
        if not self.use_blocks or steps <= 2 * self.width or per_column < 4 * size:
            return False
        self.low, self.per_column = base, -(-per_column // size) * size
        self.count = -(-(self.high - base + 1) // self.per_column)
        self.blocks = True
        return True

    def first_pass(self, aggregates: list[Any]) -> Select[Any]:
        if not self.blocks:
            return self.grouped(aggregates)
        b = t.metric_blocks.c
        size = literal(t.BLOCK_STEPS, BigInteger)
        number = (b.block * size - literal(self.low, BigInteger)) // literal(self.per_column, BigInteger)
        return (select(number.label("c"), func.min(b.first_step), func.max(b.last_step), func.sum(b.points),
                       func.sum(b.valued), func.min(b.low), func.max(b.high))
                .where(b.run_pk == self.run_pk, b.key == self.key).group_by("c").order_by("c"))

    def grouped(self, aggregates: list[Any], only: list[int] | None = None,
                span: tuple[float, float] | None = None) -> Select[Any]:
        if self.dialect == "sqlite" and self.count <= _COLUMNS_MAX:
            number = _columns.c.i
            first = literal(self.low, BigInteger) + number * literal(self.per_column, BigInteger)
            points = t.metrics.join(_columns, and_(*self.series_of, m.step >= first,
                                                   m.step < first + self.per_column, m.step <= self.high))
            return (select(number, *aggregates).select_from(points)
                    .where(number < self.count if only is None else number.in_(only))
                    .group_by(number).order_by(number))
        bucket = (m.step - literal(self.low, BigInteger)) // literal(self.per_column, BigInteger)
        low, high = span or (self.low, self.high)
        query = select(bucket.label("b"), *aggregates).where(*self.series_of, m.step >= low, m.step <= high)
        if only is not None:
            query = query.where(bucket.in_(only))
        return query.group_by("b").order_by("b")


class _TimeSeries(_Series):
    axis: SeriesX = "time"
    column = m.timestamp

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.bucket: ColumnElement[Any] | None = None

    def window(self) -> list[ColumnElement[bool]]:
        bounds = []
        if self.start is not None:
            bounds.append(m.timestamp >= self.start)
        if self.end is not None:
            bounds.append(m.timestamp <= self.end)
        return bounds

    async def read(self) -> SeriesData:
        whole = self.start is None and self.end is None
        at_ends = [select(m.timestamp).where(*self.series_of).order_by(m.step).limit(1).scalar_subquery(),
                   select(m.timestamp).where(*self.series_of).order_by(m.step.desc()).limit(1).scalar_subquery()]
        first, last = (await self.conn.execute(select(*at_ends))).one()
        if first is None:
            return self.empty()
        points: int | None = None
        extent: tuple[float, float] | None = None
        if not whole:
            row = (await self.conn.execute(select(func.count(), func.min(m.timestamp), func.max(m.timestamp))
                                           .where(*self.series_of))).one()
            points, extent = int(row[0]), (row[1], row[2])
        if whole and self.use_blocks:
            blocks = await self._from_blocks()
            if blocks is not None:
                return blocks
        # The clocks of the first and last step frame the columns; when they do not (a window outside
        # them, a clock that went back), the window's own extent does, at the cost of one more pass.
        low = max(min(first, last), -_INF if self.start is None else self.start)
        high = min(max(first, last), _INF if self.end is None else self.end)
        if not low < high:
            row = (await self.conn.execute(select(func.min(m.timestamp), func.max(m.timestamp))
                                           .where(*self.series_of, *self.window()))).one()
            if row[0] is None:
                return self.empty(points or 0, extent)
            low, high = row
        # One instant for every point (low == high) is one column. Halves keep a span of more than the
        # largest float (timestamps of either sign, which ingest never stores) finite.
        scale = 0.0 if not low < high else self.width / (high - low) if math.isfinite(high - low) \
            else (self.width / 2) / (high / 2 - low / 2)
        position = (m.timestamp - low) * scale
        if self.dialect == "postgresql":  # CAST rounds there; floor() is what a column number needs
            self.bucket = func.greatest(func.least(func.floor(position), self.width - 1), 0)
        else:  # CAST truncates toward zero; two-argument min()/max() are SQLite's LEAST/GREATEST
            self.bucket = func.max(func.min(cast(position, Integer), self.width - 1), 0)
        return await self.columns(points, extent)

    async def _from_blocks(self) -> SeriesData | None:
        """The whole series in columns of whole ``metric_blocks`` rows, each column the blocks whose first
        point falls in its 1/width of the time range.

        Exact (a column summarizes exactly its blocks' points) and ordered as long as the blocks follow each
        other in time, which a run's clock does; None otherwise (a clock that went back), or when the
        series has too few blocks for ``width`` columns; then the points are read.
        """
        b = t.metric_blocks.c
        mine = [b.run_pk == self.run_pk, b.key == self.key]
        blocks, low, high, points = (await self.conn.execute(
            select(func.count(), func.min(b.first_at), func.max(b.last_at), func.sum(b.points)).where(*mine))).one()
        if blocks < 4 * self.width or not low < high or points <= 2 * self.width:
            return None
        previous = func.lag(b.last_at).over(order_by=b.block)
        ordered = select(b.first_at.label("first_at"), previous.label("previous")).where(*mine).subquery()
        overlaps = (await self.conn.execute(select(func.count()).select_from(ordered).where(
            ordered.c.previous >= ordered.c.first_at))).scalar_one()
        if overlaps:
            return None
        position = (b.first_at - low) * (self.width / (high - low))
        number = func.greatest(func.least(func.floor(position), self.width - 1), 0) if self.dialect == "postgresql" \
            else func.max(func.min(cast(position, Integer), self.width - 1), 0)
        rows = (await self.conn.execute(
            select(number.label("c"), func.min(b.first_at), func.max(b.last_at), func.sum(b.points),
                   func.sum(b.valued), func.min(b.low), func.max(b.high), func.min(b.first_step),
                   func.max(b.last_step)).where(*mine).group_by("c").order_by("c"))).all()
        data = SeriesData(key=self.key, x="time", mode="minmax", points=int(points), extent=(low, high))
        for _c, first, last, count, valued, least, greatest, first_step, last_step in rows:
            data.xs.append(first)
            data.xe.append(last)
            data.counts.append(int(count))
            if valued != count or least == -_INF or greatest == _INF:  # NaN or ±inf: read its points
                least, greatest, marks = await self._column_detail(int(first_step), int(last_step))
                data.nonfinite.extend(marks)
            data.mins.append(least)
            data.maxs.append(greatest)
        return data

    async def _column_detail(self, first_step: int, last_step: int) -> tuple[float | None, float | None, Markers]:
        """Finite min/max and the first time and count of each non-finite kind, in a range of steps."""
        return read_detail((await self.conn.execute(select(*detail_aggregates(m.timestamp)).where(
            *self.series_of, m.step >= first_step, m.step <= last_step))).one())

    def grouped(self, aggregates: list[Any], only: list[int] | None = None,
                span: tuple[float, float] | None = None) -> Select[Any]:
        assert self.bucket is not None
        query = select(self.bucket.label("b"), *aggregates).where(*self.series_of, *self.window())
        if span is not None:  # no index to seek with, but cheaper to test than the column number
            query = query.where(m.timestamp >= span[0], m.timestamp <= span[1])
        if only is not None:
            query = query.where(self.bucket.in_(only))
        return query.group_by("b").order_by("b")


# Blocks: a summary of every BLOCK_STEPS steps of a metric, kept beside the points ------------------------
def block_summary_sql(where: str) -> str:
    """``SELECT`` of the ``metric_blocks`` rows for the points of ``metrics`` that ``where`` picks.

    Six plain aggregates, as cheap as SQL gets per point (ingest pays for them): NaN (NULL) shows as
    ``valued < points`` and ±inf as the block's low or high; only columns flagged so are read point by
    point (pass 2). Plain SQL that SQLite and PostgreSQL both run (integer division of whole steps).
    """
    size = t.BLOCK_STEPS
    return (f"SELECT run_pk, key, step / {size}, MIN(step), MAX(step), COUNT(*), COUNT(value), MIN(value), "
            f"MAX(value), MIN(timestamp), MAX(timestamp) FROM metrics WHERE {where} "
            f"GROUP BY run_pk, key, step / {size}")


_BLOCK_COLUMNS = ("run_pk", "key", "block", "first_step", "last_step", "points", "valued", "low", "high",
                  "first_at", "last_at")


def block_upsert_sql(where: str) -> str:
    """Recompute the blocks of the points ``where`` picks (a batch's steps of one key), replacing the old
    rows: a block is always rebuilt from its points, so a point written again never counts twice."""
    updates = ", ".join(f"{name} = excluded.{name}" for name in _BLOCK_COLUMNS[3:])
    return (f"INSERT INTO metric_blocks ({', '.join(_BLOCK_COLUMNS)}) {block_summary_sql(where)} "
            f"ON CONFLICT (run_pk, key, block) DO UPDATE SET {updates}")


BLOCK_UPSERT = block_upsert_sql("run_pk = :run_pk AND key = :key AND step >= :low AND step <= :high")


# Merge a batch's new points into the stored blocks: counts add, bounds widen. Multi-argument min/max are
# NULL when an argument is (an all-NaN side has no low/high): coalesce keeps the other side's.
BLOCK_MERGE = (
    f"INSERT INTO metric_blocks ({', '.join(_BLOCK_COLUMNS)}) VALUES ({', '.join('?' * len(_BLOCK_COLUMNS))}) "
    "ON CONFLICT (run_pk, key, block) DO UPDATE SET first_step = min(first_step, excluded.first_step), "
    "last_step = max(last_step, excluded.last_step), points = points + excluded.points, "
    "valued = valued + excluded.valued, low = coalesce(min(low, excluded.low), low, excluded.low), "
    "high = coalesce(max(high, excluded.high), high, excluded.high), "
    "first_at = min(first_at, excluded.first_at), last_at = max(last_at, excluded.last_at)")


def summarize_blocks(run_pk: int, points: list[tuple[str, int, float, float]]) -> list[list[Any]]:
    """:data:`BLOCK_MERGE` rows for ``points``, each (key, step) once: what :func:`block_summary_sql`
    gives for them alone (NaN counts in ``points``, not ``valued``, and stays out of low/high)."""
    size = t.BLOCK_STEPS
    rows: dict[tuple[str, int], list[Any]] = {}
    for key, step, at, value in points:
        valued = value == value
        row = rows.get((key, step // size))
        if row is None:
            rows[key, step // size] = [run_pk, key, step // size, step, step, 1, int(valued),
                                       value if valued else None, value if valued else None, at, at]
            continue
        if step < row[3]:
            row[3] = step
        elif step > row[4]:
            row[4] = step
        row[5] += 1
        if valued:
            row[6] += 1
            if row[7] is None or value < row[7]:
                row[7] = value
            if row[8] is None or value > row[8]:
                row[8] = value
        if at < row[9]:
            row[9] = at
        elif at > row[10]:
            row[10] = at
    return list(rows.values())


def touched_blocks(run_pk: int, points: list[tuple[str, int, float, float]]) -> list[dict[str, Any]]:
    """Parameters of :data:`BLOCK_UPSERT` for a batch: per key, the whole blocks its steps fall in."""
    spans: dict[str, list[int]] = {}
    for key, step, _at, _value in points:
        span = spans.get(key)
        if span is None:
            spans[key] = [step, step]
        elif step < span[0]:
            span[0] = step
        elif step > span[1]:
            span[1] = step
    return [{"run_pk": run_pk, "key": key, "low": first, "high": last}
            for key, (first, last) in ((key, block_span(low, high)) for key, (low, high) in spans.items())]


def block_span(low: int, high: int) -> tuple[int, int]:
    """The first and last step of the whole blocks that steps ``low``..``high`` fall in."""
    size = t.BLOCK_STEPS
    return low // size * size, min(_STEP_MAX, high // size * size + size - 1)
