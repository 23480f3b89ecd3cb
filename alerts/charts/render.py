"""Draw a :class:`~alerts.charts.model.ChartData` as a PNG: matplotlib's object API on the Agg canvas.

No ``pyplot`` (global state): each thread draws on figures of its own, kept and reused (making the axes
costs a third of a render), so renders may run in threads or worker processes at once. The only module
that imports matplotlib: without it the service runs, without charts.

The look: 800×300 px on an opaque white background (a transparent PNG loses its black text in dark-mode
Slack), colour-blind-safe colours (Okabe-Ito's first), the threshold dashed in vermillion, NaN/inf as marks
on the panel's edge, the firing a dotted vertical line with a dot on the curve, the legend in one row under
the title. Limits are computed here (:func:`limits`), not autoscaled, so a reused figure draws exactly as a
new one and the tests can map data to pixels (:class:`Layout`).
"""

from __future__ import annotations

import io
import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.ticker import FuncFormatter, MaxNLocator
from matplotlib.transforms import blended_transform_factory
from PIL import Image

from alerts.charts.model import ChartData, Panel, Trace

__all__ = ["HEIGHT", "WIDTH", "Layout", "PanelLayout", "colour_of", "limits", "render", "render_png"]

WIDTH, HEIGHT, DPI = 800, 300, 100

BACKGROUND = "#ffffff"
TEXT = "#1b1b1b"
MUTED = "#5c5c5c"
GRID = "#e3e3e3"
THRESHOLD = "#d55e00"  # vermillion
BAND = "#e69f00"  # orange, as a light fill
FIRED = "#1b1b1b"
STATE = "#7a3e9d"
NONFINITE = "#cc79a7"  # reddish purple
NONFINITE_EDGE = "#7d2e5e"
ENLARGED = "#f0f0f0"
RUNS = ("#0072b2", "#009e73", "#cc79a7", "#56b4e9", "#e69f00", "#332288", "#999933", "#882255", "#44aa99",
        "#6b6b6b")
"""One colour per run: Okabe-Ito's, then Paul Tol's muted ones (10 runs at most)."""
NONFINITE_MARKS = {"nan": ("X", 1.0), "inf": ("^", 1.0), "-inf": ("v", 0.0)}
"""Marker and edge (axes fraction) per kind: NaN and +inf on the top edge, -inf on the bottom."""
THRESHOLD_DASHES = (0, (6, 3))
MARKER_DOTS = (0, (2, 1.5))
KEY_FONT = 7.5
KEY_HANDLE = 22.0
"""Width of a legend handle, in pixels."""


def colour_of(index: int) -> str:
    return RUNS[index % len(RUNS)]


@dataclass(frozen=True)
class PanelLayout:
    """Where a panel's data lands in the image: its plot area in pixels (origin top left) and its limits."""

    x_range: tuple[float, float]
    y_range: tuple[float, float]
    box: tuple[float, float, float, float]
    """left, top, right, bottom."""

    def pixel(self, step: float, value: float) -> tuple[float, float]:
        """(column, row) of a data point."""
        (x0, x1), (y0, y1) = self.x_range, self.y_range
        left, top, right, bottom = self.box
        return (left + (step - x0) / (x1 - x0) * (right - left),
                bottom - (value - y0) / (y1 - y0) * (bottom - top))


@dataclass(frozen=True)
class Layout:
    width: int
    height: int
    panels: tuple[PanelLayout, ...]


def render_png(data: ChartData) -> bytes:
    """PNG bytes, 800×300, well under 100 kB. Pure and thread/process-safe (no pyplot)."""
    return render(data)[0]


def render(data: ChartData) -> tuple[bytes, Layout]:
    """The PNG and where each panel's data lies in it (the pixel checks of the tests use it)."""
    if not data.panels:
        raise ValueError("a chart needs at least one panel")
    sheet = _sheet([panel.weight for panel in data.panels], bool(data.legend))
    axes = sheet.axes
    sheet.title.set_text(_shorten(data.title, 80))
    sheet.subtitle.set_text(_shorten(data.subtitle, 125))
    keys: dict[str, Key] = {}
    try:
        for ax, panel in zip(axes, data.panels, strict=True):
            keys.update(_draw_panel(ax, panel))
        ylabel = data.panels[0].traces[0].label if len(data.panels) == 1 and not data.legend else ""
        axes[0].set_ylabel(_shorten(ylabel, 30), fontsize=8, color=MUTED, labelpad=2)
        sheet.key_row(list(keys.items()))
        if data.legend:
            runs = [(_shorten(name, 22), Key("line", colour_of(colour), width=2.0)) for name, colour in data.legend]
            if data.more:
                runs.append((f"and {data.more} more", Key("none", TEXT)))
            sheet.key_column(runs)
        sheet.canvas.draw()  # type: ignore[no-untyped-call]
        width, height = sheet.canvas.get_width_height()
        image = Image.frombuffer("RGBA", (width, height), sheet.canvas.buffer_rgba(),  # type: ignore[no-untyped-call]
                                 "raw", "RGBA", 0, 1).convert("RGB")
        layout = Layout(width, height, tuple(_panel_layout(ax, height) for ax in axes))
    except BaseException:
        _forget(sheet)  # half drawn: the next render starts on a fresh one
        raise
    sheet.clear()
    out = io.BytesIO()
    # RGB, exact colours (a quantized palette shifts them, white included); 15-40 kB for a chart.
    image.save(out, format="PNG", compress_level=6)
    return out.getvalue(), layout


class _Sheet:
    """A figure with its axes laid out, drawn on again and again (by one thread): making the axes and their
    ticks costs a third of a render. :meth:`clear` takes away everything a render added."""

    def __init__(self, weights: list[float], legend: bool) -> None:
        self.figure = Figure(figsize=(WIDTH / DPI, HEIGHT / DPI), dpi=DPI, facecolor=BACKGROUND)
        self.canvas = FigureCanvasAgg(self.figure)
        grid = self.figure.add_gridspec(1, len(weights), width_ratios=weights, left=0.075,
                                        right=0.80 if legend else 0.985, top=0.72, bottom=0.16,
                                        wspace=0.16 if len(weights) < 3 else 0.3)
        self.axes = [self.figure.add_subplot(grid[0, index]) for index in range(len(weights))]
        for ax in self.axes:
            _style(ax, narrow=len(weights) > 2)
        self.title = self.figure.text(0.012, 0.975, "", fontsize=12, fontweight="bold", color=TEXT, va="top")
        self.subtitle = self.figure.text(0.012, 0.895, "", fontsize=8.5, color=MUTED, va="top")
        self.fixed_texts = list(self.figure.texts)
        self.font = FontProperties(size=KEY_FONT)

    def key_row(self, keys: list[tuple[str, Key]]) -> None:
        """The legend of the overlays, in one row under the subtitle: as many entries as fit."""
        x, y = 10.0, 0.185 * HEIGHT
        for label, key in keys:
            text = _shorten(label, 40)
            width = self._text_width(text)
            if x + KEY_HANDLE + 4 + width > WIDTH - 6:
                break
            self._key(x, y, key)
            self.figure.text((x + KEY_HANDLE + 4) / WIDTH, 1 - y / HEIGHT, text, fontproperties=self.font,
                             color=TEXT, va="center")
            x += KEY_HANDLE + 4 + width + 14

    def key_column(self, keys: list[tuple[str, Key]]) -> None:
        """The runs of a group, one a line, right of the panels."""
        x = 0.815 * WIDTH
        for index, (label, key) in enumerate(keys):
            y = 0.28 * HEIGHT + index * 14
            self._key(x, y, key)
            self.figure.text((x + KEY_HANDLE + 4) / WIDTH, 1 - y / HEIGHT, label, fontproperties=self.font,
                             color=TEXT, va="center")

    def _key(self, x: float, y: float, key: Key) -> None:
        """A legend handle at (x, y) in pixels from the top left, ``KEY_HANDLE`` wide."""
        left, right, middle = x / WIDTH, (x + KEY_HANDLE) / WIDTH, 1 - y / HEIGHT
        if key.kind == "patch":
            self.figure.add_artist(Rectangle((left, middle - 4 / HEIGHT), KEY_HANDLE / WIDTH, 8 / HEIGHT,
                                             color=key.colour, alpha=key.alpha, linewidth=0))
        elif key.kind == "line":
            self.figure.add_artist(Line2D([left, right], [middle, middle], color=key.colour, linewidth=key.width,
                                          linestyle=key.style))
        elif key.kind == "marker":
            self.figure.add_artist(Line2D([(left + right) / 2], [middle], linestyle="none", marker=key.marker,
                                          markersize=7, color=key.colour, markeredgecolor=NONFINITE_EDGE,
                                          markeredgewidth=0.6))

    def _text_width(self, text: str) -> float:
        renderer = self.canvas.get_renderer()  # type: ignore[no-untyped-call]
        width, _height, _descent = renderer.get_text_width_height_descent(text, self.font, ismath=False)
        return float(width)

    def clear(self) -> None:
        for ax in self.axes:
            for artist in [*ax.lines, *ax.collections, *ax.patches, *ax.texts]:
                artist.remove()
        for text in [text for text in self.figure.texts if text not in self.fixed_texts]:
            text.remove()
        for artist in list(self.figure.artists):
            artist.remove()


_sheets = threading.local()
SHEETS_KEPT = 16
"""Layouts (panel widths, run legend or not) a thread keeps a figure for: a handful occur."""


def _cache() -> dict[tuple[tuple[float, ...], bool], _Sheet]:
    found: dict[tuple[tuple[float, ...], bool], _Sheet] = _sheets.__dict__.setdefault("cache", {})
    return found


def _forget(sheet: _Sheet) -> None:
    cache = _cache()
    for key in [key for key, cached in cache.items() if cached is sheet]:
        del cache[key]


def _sheet(weights: list[float], legend: bool) -> _Sheet:
    cache = _cache()
    key = (tuple(weights), legend)
    sheet = cache.get(key)
    if sheet is None:
        if len(cache) >= SHEETS_KEPT:
            cache.clear()
        sheet = cache[key] = _Sheet(weights, legend)
    return sheet


def _panel_layout(ax: Axes, height: int) -> PanelLayout:
    box = ax.get_window_extent()
    return PanelLayout(x_range=_floats(ax.get_xlim()), y_range=_floats(ax.get_ylim()),
                       box=(float(box.x0), height - float(box.y1), float(box.x1), height - float(box.y0)))


def _floats(pair: tuple[float, float]) -> tuple[float, float]:
    return float(pair[0]), float(pair[1])


def _style(ax: Axes, *, narrow: bool) -> None:
    ax.set_facecolor(BACKGROUND)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    for side in ("left", "bottom"):
        ax.spines[side].set_color("#9a9a9a")
    ax.grid(True, color=GRID, linewidth=0.7)
    ax.set_axisbelow(True)
    ax.tick_params(labelsize=8, colors=MUTED, length=3, pad=2)
    ax.xaxis.set_major_locator(MaxNLocator(nbins=3 if narrow else 5, integer=True))
    ax.yaxis.set_major_locator(MaxNLocator(nbins=4))
    ax.xaxis.set_major_formatter(FuncFormatter(_step_label))
    ax.yaxis.set_major_formatter(FuncFormatter(_value_label))
    ax.set_xlabel("step", fontsize=8, color=MUTED, labelpad=1)


@dataclass(frozen=True)
class Key:
    """How a legend entry's handle looks."""

    kind: str
    """``line``, ``patch``, ``marker`` or ``none``."""
    colour: str
    style: Any = "-"
    width: float = 1.5
    alpha: float = 1.0
    marker: str = ""


def _draw_panel(ax: Axes, panel: Panel) -> dict[str, Key]:
    """Draw one panel; returns its legend entries by label."""
    keys: dict[str, Key] = {}
    if panel.title:
        # Figure text, not ax.set_title (placing a title measures every tick label) nor ax.text (clipped to
        # the axes, at a cost): each a sixth of a render.
        box = ax.get_position()
        ax.figure.text(box.x0, box.y1 + 0.02, _shorten(panel.title, 60), fontsize=8.5, color=TEXT, va="bottom")
    if panel.enlarged is not None:
        ax.axvspan(*panel.enlarged, color=ENLARGED, zorder=0, linewidth=0)
    for span in panel.spans:
        ax.axvspan(span.start, span.end, color=BAND, alpha=0.18, linewidth=0, zorder=1)
        keys[span.label] = Key("patch", BAND, alpha=0.18)
    for band in panel.bands:
        ax.fill_between(band.steps, band.low, band.high, color=BAND, alpha=0.3, linewidth=0, zorder=1)
        keys[band.label] = Key("patch", BAND, alpha=0.3)
        if band.center:
            ax.plot(band.steps, band.center, color=BAND, linewidth=1.0, linestyle="--", zorder=2)
    for level in panel.levels:
        key = Key("line", THRESHOLD, width=1.4) if level.style == "limit" else Key("line", MUTED, "--", 1.1)
        ax.plot(level.steps, level.values, color=key.colour, linewidth=key.width, linestyle=key.style, zorder=3)
        if level.label:
            keys[level.label] = key
    for line in panel.lines:
        ax.axhline(line.value, color=THRESHOLD, linewidth=1.5, linestyle=THRESHOLD_DASHES, zorder=3)
        keys[line.label] = Key("line", THRESHOLD, THRESHOLD_DASHES)
    for trace in panel.traces:
        _draw_trace(ax, trace)
    x_range, y_range = limits(panel)
    ax.set_xlim(*x_range)
    ax.set_ylim(*y_range)
    for marker in panel.markers:
        colour = FIRED if marker.kind == "fired" else STATE
        ax.axvline(marker.step, color=colour, linewidth=1.5, linestyle=MARKER_DOTS, zorder=4, snap=True)
        keys[marker.label] = Key("line", colour, MARKER_DOTS)
        if marker.value is not None and math.isfinite(marker.value):
            ax.plot([marker.step], [marker.value], marker="o", markersize=7, markerfacecolor=colour_of(marker.colour),
                    markeredgecolor=FIRED, markeredgewidth=1.2, zorder=6)
    keys.update(_nonfinite(ax, panel.traces))
    return keys


def limits(panel: Panel) -> tuple[tuple[float, float], tuple[float, float]]:
    """The panel's x and y ranges: every step drawn (or ``x_range``), every finite value drawn within it,
    thresholds included (how far the series is from the line is the point), with a small margin. Set, not
    left to autoscaling, so a reused figure draws exactly as a new one."""
    if panel.x_range is not None:
        low, high = panel.x_range
    else:
        steps = [step for trace in panel.traces for step in trace.steps]
        steps += [at for trace in panel.traces for at, _kind in trace.nonfinite]
        steps += [marker.step for marker in panel.markers]
        steps += [edge for span in panel.spans for edge in (span.start, span.end)]
        low, high = (min(steps), max(steps)) if steps else (0.0, 1.0)
        pad = (high - low) * 0.02 or 1.0
        low, high = low - pad, high + pad

    def inside(steps: Sequence[float], values: Sequence[float]) -> list[float]:
        return [value for step, value in zip(steps, values, strict=True) if low <= step <= high]

    values = [line.value for line in panel.lines]
    values += [marker.value for marker in panel.markers if marker.value is not None]
    for trace in panel.traces:
        values += inside(trace.steps, trace.values)
    for band in panel.bands:
        values += inside(band.steps, band.low) + inside(band.steps, band.high)
    for level in panel.levels:
        values += inside(level.steps, level.values)
    finite = [value for value in values if math.isfinite(value)]
    bottom, top = (min(finite), max(finite)) if finite else (0.0, 1.0)
    pad = (top - bottom) * 0.06 or (abs(top) * 0.05 or 0.5)
    return (low, high), (bottom - pad, top + pad)


def _draw_trace(ax: Axes, trace: Trace) -> None:
    colour = colour_of(trace.colour)
    ax.plot(trace.steps, trace.values, color=colour, linewidth=1.4, zorder=5, solid_joinstyle="round")
    if trace.steps and sum(1 for v in trace.values if math.isfinite(v)) < 60:
        ax.plot(trace.steps, trace.values, linestyle="none", marker="o", markersize=2.6, color=colour, zorder=5)


def _nonfinite(ax: Axes, traces: Sequence[Trace]) -> dict[str, Key]:
    """NaN/inf at the edge: x in data, y as a fraction of the axes, so they never stretch the scale."""
    keys: dict[str, Key] = {}
    edge = blended_transform_factory(ax.transData, ax.transAxes)
    for kind, (marker, y) in NONFINITE_MARKS.items():
        steps = [at for trace in traces for at, found in trace.nonfinite if found == kind]
        if steps:
            ax.plot(steps, [y] * len(steps), transform=edge, linestyle="none", marker=marker, markersize=7,
                    color=NONFINITE, markeredgecolor=NONFINITE_EDGE, markeredgewidth=0.6, clip_on=False, zorder=7)
            keys[f"{'NaN' if kind == 'nan' else kind} ×{len(steps)}"] = Key("marker", NONFINITE, marker=marker)
    return keys


def _step_label(value: float, _position: Any) -> str:
    for limit, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= limit:
            return f"{value / limit:.4g}{suffix}"
    return f"{value:.4g}"


def _value_label(value: float, _position: Any) -> str:
    return f"{value:.4g}"


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"
