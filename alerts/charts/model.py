"""What a chart shows, as plain data: :func:`alerts.charts.data.chart_data` makes a :class:`ChartData`,
:func:`alerts.charts.render.render_png` draws it. Frozen dataclasses of tuples, so a chart is picklable and
a drawing worker process that unpickles one imports this module only (not the rules, not the store).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["Band", "ChartData", "Level", "Line", "Marker", "NonFinite", "Panel", "Span", "Trace"]

NonFinite = Literal["nan", "inf", "-inf"]


@dataclass(frozen=True)
class Line:
    """A horizontal threshold across the chart."""

    value: float
    label: str


@dataclass(frozen=True)
class Band:
    """A region per step (NaN: a gap), with its centre (the baseline or statistic) when there is one."""

    label: str
    steps: tuple[float, ...]
    low: tuple[float, ...]
    high: tuple[float, ...]
    center: tuple[float, ...] = ()


@dataclass(frozen=True)
class Level:
    """A line that varies per step (NaN: a gap): ``limit``, where the rule fires past; ``judged``, the value
    the rule judges when it is not the point itself (a change rule's window mean)."""

    label: str
    steps: tuple[float, ...]
    values: tuple[float, ...]
    style: str = "limit"


@dataclass(frozen=True)
class Span:
    """A stretch of steps the rule judged (a plateau's points without improvement)."""

    start: float
    end: float
    label: str


@dataclass(frozen=True)
class Trace:
    """One run's series of one metric: ``values`` NaN where the line breaks; ``nonfinite`` the steps of
    NaN/±inf points (per pixel column, the first), drawn at the panel's edge."""

    label: str
    colour: int
    """Index into the palette: the run's colour in every panel."""
    steps: tuple[float, ...]
    values: tuple[float, ...]
    nonfinite: tuple[tuple[float, NonFinite], ...] = ()


@dataclass(frozen=True)
class Marker:
    """A step marked: where the alert ``fired``, or the run's ``state`` change (it ended, went silent)."""

    step: float
    value: float | None
    """The series' value there, for a dot on the line; None: the vertical line only."""
    label: str
    kind: Literal["fired", "state"]
    colour: int


@dataclass(frozen=True)
class Panel:
    title: str
    traces: tuple[Trace, ...]
    lines: tuple[Line, ...] = ()
    bands: tuple[Band, ...] = ()
    levels: tuple[Level, ...] = ()
    spans: tuple[Span, ...] = ()
    markers: tuple[Marker, ...] = ()
    x_range: tuple[float, float] | None = None
    """None: the data's extent."""
    enlarged: tuple[float, float] | None = None
    """The steps the next panel enlarges, shaded here."""
    weight: float = 1.0
    """Its share of the width."""


@dataclass(frozen=True)
class ChartData:
    title: str
    subtitle: str
    panels: tuple[Panel, ...]
    legend: tuple[tuple[str, int], ...] = ()
    """(run name, colour) when several runs are overlaid."""
    more: int = 0
    """Runs left out past :data:`MAX_RUNS`."""
