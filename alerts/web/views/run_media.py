"""The run page's Media section, from the stored media (``store.list_media``): tables, images,
histograms (``runwatch.Histogram``) and charts (``runwatch.plot``: a table with a ``chart`` spec).

Everything the browser draws is shaped here, so the page's JSON twin shows exactly what is drawn:

- a histogram key: its steps (at most :data:`MAX_HISTOGRAM_STEPS`, evenly spaced, the latest always),
  each ``{"step", "edges", "counts", "nonfinite"}``; app.js draws the latest and a step slider.
- a chart key (the latest step logged): ``plot`` for app.js, one of
  ``{"type": "xy", "mode": "line"|"points", "xs", "series": [{"label", "ys"}], "x_label", "y_label"}``
  (series aligned on one sorted x column, ``null`` where a series has no point),
  ``{"type": "bins", "edges", "counts", ...}`` or ``{"type": "bars", "labels", "values", ...}``;
  or ``matrix`` for a confusion matrix (an HTML heatmap, no script); or, for a chart that cannot be
  drawn (custom Vega spec, missing or non-numeric columns), its ``table``.
"""

from __future__ import annotations

import base64
import binascii
import math
from collections.abc import Sequence
from typing import Any

MAX_HISTOGRAM_STEPS = 100
MAX_XY_ROWS = 20_000
"""Points drawn per chart, all series together; beyond it each series is thinned evenly."""
MAX_BARS = 500
MAX_MATRIX_CLASSES = 100
MAX_TABLE_ROWS = 1_000
"""Rows of an undrawable chart's table shown on the page (the API returns them all)."""

_SPECIAL = {"NaN", "Infinity", "-Infinity"}


def image_cell(value: Any) -> dict[str, Any] | None:
    """An image media object as a data URL, only if its payload really is base64 PNG."""
    if not isinstance(value, dict) or value.get("_type") != "image" or not isinstance(value.get("data"), str):
        return None
    try:
        base64.b64decode(value["data"], validate=True)
    except (binascii.Error, ValueError):
        return None
    return {"src": f"data:image/png;base64,{value['data']}", "caption": value.get("caption"),
            "width": value.get("width"), "height": value.get("height")}


def _cells(rows: Any, limit: int | None = None) -> list[list[dict[str, Any]]]:
    shown = [row for row in rows if isinstance(row, list)] if isinstance(rows, list) else []
    if limit is not None:
        shown = shown[:limit]
    out = []
    for row in shown:
        cells = []
        for cell in row:
            image = image_cell(cell)
            cells.append({"image": image} if image else {"text": cell})
        out.append(cells)
    return out


def media_sections(media: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    """Tables and images by key, each by step; cells that are images become thumbnails; histograms and
    charts by key, drawn (see the module docstring)."""
    tables: list[dict[str, Any]] = []
    images: list[dict[str, Any]] = []
    other: list[dict[str, Any]] = []
    histograms: dict[str, list[dict[str, Any]]] = {}
    charts: dict[str, list[dict[str, Any]]] = {}
    for item in media:
        value, kind = item["value"], item["kind"]
        if kind == "table" and isinstance(value, dict) and isinstance(value.get("chart"), dict):
            charts.setdefault(item["key"], []).append(item)
        elif kind == "table" and isinstance(value, dict):
            tables.append({"key": item["key"], "step": item["step"], "columns": value.get("columns") or [],
                           "rows": _cells(value.get("data"))})
        elif kind == "image" and image_cell(value) is not None:
            images.append({"key": item["key"], "step": item["step"], **(image_cell(value) or {})})
        elif kind == "histogram" and isinstance(value, dict):
            histograms.setdefault(item["key"], []).append(item)
        else:
            other.append({"key": item["key"], "step": item["step"], "kind": kind, "value": value})
    return {
        "tables": tables,
        "images": images,
        "other": other,
        "histograms": [_histogram(i, key, histograms[key]) for i, key in enumerate(sorted(histograms))],
        "charts": [_chart(i, key, charts[key]) for i, key in enumerate(sorted(charts))],
    }


def _evenly(items: list[Any], limit: int) -> list[Any]:
    """At most ``limit`` items evenly spaced over ``items``, first and last included."""
    n = len(items)
    if n <= limit:
        return items
    picks = sorted({round(i * (n - 1) / (limit - 1)) for i in range(limit)})
    return [items[i] for i in picks]


def _histogram(index: int, key: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    usable = [item for item in items
              if isinstance(item["value"].get("bins"), list) and isinstance(item["value"].get("values"), list)]
    steps = []
    for item in _evenly(usable, MAX_HISTOGRAM_STEPS):
        nonfinite = item["value"].get("nonfinite")
        steps.append({"step": item["step"], "edges": item["value"]["bins"], "counts": item["value"]["values"],
                      "nonfinite": {k: v for k, v in nonfinite.items() if v} if isinstance(nonfinite, dict) else {}})
    return {"key": key, "id": f"media-histogram-{index}", "logged": len(items), "steps": steps}


def _number(cell: Any) -> float | None:
    if type(cell) is int or type(cell) is float or type(cell) is bool:
        number = float(cell)
        return number if math.isfinite(number) else None
    return None


def _label(cell: Any) -> str:
    if isinstance(cell, float) and cell.is_integer():
        return str(int(cell))
    return str(cell)


def _chart(index: int, key: str, items: list[dict[str, Any]]) -> dict[str, Any]:
    latest = items[-1]
    value = latest["value"]
    spec = value["chart"]
    columns = [str(c) for c in value.get("columns") or []]
    rows = [row for row in value.get("data") or [] if isinstance(row, list) and len(row) == len(columns)]
    fields = spec.get("fields") if isinstance(spec.get("fields"), dict) else {}
    strings = spec.get("string_fields") if isinstance(spec.get("string_fields"), dict) else {}
    kind = str(spec.get("kind") or "custom")
    found: dict[str, Any] = {
        "key": key, "id": f"media-chart-{index}", "step": latest["step"], "logged": len(items), "kind": kind,
        "title": spec.get("title") or "", "spec": spec.get("spec") or "", "plot": None, "matrix": None,
        "table": None,
    }
    try:
        if kind == "confusion_matrix":
            found["matrix"] = _matrix(columns, rows, fields)
        else:
            found["plot"] = _plot(kind, columns, rows, fields, strings)
    except _Undrawable:
        pass
    if found["plot"] is None and found["matrix"] is None:
        found["table"] = {"columns": columns, "rows": _cells(rows, MAX_TABLE_ROWS), "total": len(rows)}
    return found


class _Undrawable(Exception):
    """The chart's fields do not name usable columns: show its table instead."""


def _column(columns: list[str], fields: dict[str, Any], role: str) -> int:
    """The index of the column a chart role names; undrawable if it names none."""
    name = fields.get(role)
    if name not in columns:
        raise _Undrawable(role)
    return columns.index(name)


def _optional_column(columns: list[str], fields: dict[str, Any], role: str) -> int | None:
    return None if fields.get(role) is None else _column(columns, fields, role)


def _plot(kind: str, columns: list[str], rows: list[list[Any]], fields: dict[str, Any],
          strings: dict[str, Any]) -> dict[str, Any] | None:
    if kind in ("line", "scatter"):
        x, y = _column(columns, fields, "x"), _column(columns, fields, "y")
        group = _optional_column(columns, fields, "stroke") if kind == "line" else None
        return _xy(rows, x, y, group, mode="points" if kind == "scatter" else "line",
                   x_label=columns[x], y_label=columns[y], single=columns[y])
    if kind == "line_series":
        x, group, y = (_column(columns, fields, r) for r in ("step", "lineKey", "lineVal"))
        return _xy(rows, x, y, group, mode="line", x_label=str(strings.get("xname") or columns[x]),
                   y_label="", single=columns[y])
    if kind in ("roc", "pr", "curve"):
        x, y = _column(columns, fields, "x"), _column(columns, fields, "y")
        group = _optional_column(columns, fields, "class")
        found = _xy(rows, x, y, group, mode="line",
                    x_label=str(strings.get("x-axis-title") or columns[x]),
                    y_label=str(strings.get("y-axis-title") or columns[y]), single=columns[y])
        if found is not None and kind == "roc":
            found["diagonal"] = True
        return found
    if kind == "bar":
        label, y = _column(columns, fields, "label"), _column(columns, fields, "value")
        bars = [(_label(row[label]), _number(row[y])) for row in rows]
        drawn = [(name, v) for name, v in bars if v is not None][:MAX_BARS]
        if not drawn:
            return None
        return {"type": "bars", "labels": [n for n, _ in drawn], "values": [v for _, v in drawn],
                "x_label": columns[label], "y_label": columns[y], "truncated": len(bars) > len(drawn)}
    if kind == "histogram":
        column = _column(columns, fields, "value")
        values = [v for v in (_number(row[column]) for row in rows) if v is not None]
        if not values:
            return None
        edges, counts = bin_values(values, min(64, max(1, math.ceil(math.sqrt(len(values))))))
        return {"type": "bins", "edges": edges, "counts": counts, "x_label": columns[column], "y_label": "count"}
    return None


def _xy(rows: list[list[Any]], x: int, y: int, group: int | None, *, mode: str, x_label: str,
        y_label: str, single: str) -> dict[str, Any] | None:
    """Series (one per value of the ``group`` column) aligned on one sorted x column: each table row
    keeps its own slot, so vertical segments (equal x, as in ROC curves) survive."""
    series: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        xv, yv = _number(row[x]), _number(row[y])
        if xv is None or yv is None:
            continue
        series.setdefault(_label(row[group]) if group is not None else single, []).append((xv, yv))
    if not series:
        return None
    per_series = max(100, MAX_XY_ROWS // len(series))
    slots = sorted(((p[0], n, i, p[1]) for n, points in enumerate(series.values())
                    for i, p in enumerate(_evenly(points, per_series))), key=lambda s: (s[0], s[1], s[2]))
    ys: list[list[float | None]] = [[None] * len(slots) for _ in series]
    for slot, (_xv, n, _i, yv) in enumerate(slots):
        ys[n][slot] = yv
    return {"type": "xy", "mode": mode, "xs": [s[0] for s in slots], "x_label": x_label, "y_label": y_label,
            "series": [{"label": label, "ys": ys[n]} for n, label in enumerate(series)]}


def _matrix(columns: list[str], rows: list[list[Any]], fields: dict[str, Any]) -> dict[str, Any] | None:
    actual, predicted, count = (_column(columns, fields, r) for r in ("Actual", "Predicted", "nPredictions"))
    row_labels: list[str] = []
    col_labels: list[str] = []
    cells: dict[tuple[str, str], float] = {}
    for row in rows:
        a, p, n = _label(row[actual]), _label(row[predicted]), _number(row[count])
        if n is None:
            continue
        if a not in row_labels:
            row_labels.append(a)
        if p not in col_labels:
            col_labels.append(p)
        cells[(a, p)] = cells.get((a, p), 0.0) + n
    if not cells or len(row_labels) > MAX_MATRIX_CLASSES or len(col_labels) > MAX_MATRIX_CLASSES:
        return None
    top = max(cells.values()) or 1.0
    return {
        "actual": row_labels, "predicted": col_labels,
        "rows": [[{"value": _label(cells.get((a, p), 0)), "alpha": round(max(0.0, cells.get((a, p), 0.0)) / top, 3),
                   "strong": cells.get((a, p), 0.0) / top > 0.6} for p in col_labels] for a in row_labels],
    }


def bin_values(values: Sequence[float], bins: int) -> tuple[list[float], list[int]]:
    """(edges, counts) of equal-width bins over finite ``values`` (numpy.histogram's convention)."""
    lo, hi = min(values), max(values)
    if lo == hi:
        lo, hi = lo - 0.5, hi + 0.5
    # Halves keep the span finite even for values near the float limits.
    half_lo, half_span = lo / 2, hi / 2 - lo / 2
    edges = [lo + (hi - lo) * i / bins if math.isfinite(hi - lo) else 2 * (half_lo + half_span * i / bins)
             for i in range(bins + 1)]
    edges[-1] = hi
    counts = [0] * bins
    for v in values:
        i = min(bins - 1, max(0, int((v / 2 - half_lo) / half_span * bins)))
        if v < edges[i]:
            i -= 1
        elif i < bins - 1 and v >= edges[i + 1]:
            i += 1
        counts[i] += 1
    return edges, counts
