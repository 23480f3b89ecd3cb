"""``runwatch.plot``: W&B's preset charts (``wandb.plot.*``) and ``plot_table``.

Each function returns a :class:`CustomChart` for ``run.log({"name": chart})``: a ``Table`` plus how to
draw it. On the wire (built on the sender thread) it is the table's media object with a ``chart`` spec::

    {"_type": "table", "columns": [...], "data": [[...]],
     "chart": {"kind": "line", "spec": "wandb/line/v0", "fields": {"x": "epoch", "y": "loss", "stroke": null},
               "title": "Loss", "string_fields": {"title": "Loss"}, "split_table": false}}

so anything that reads tables (the export, an older service) still sees the data. ``kind`` is one of
``line``, ``scatter``, ``bar``, ``histogram``, ``line_series``, ``roc``, ``pr``, ``curve``,
``confusion_matrix`` (the run page draws these) or ``custom`` (shown as a table). ``fields`` maps the
chart's roles to column names, as in W&B.

ROC, precision-recall and confusion-matrix tables are computed here in pure Python (numpy arrays and
torch tensors are read with ``tolist()``), so neither numpy nor scikit-learn is needed.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from ._log import log_once
from .media import Table

__all__ = [
    "MAX_CHART_ROWS",
    "CustomChart",
    "bar",
    "confusion_matrix",
    "histogram",
    "line",
    "line_series",
    "plot_table",
    "pr_curve",
    "roc_curve",
    "scatter",
]

MAX_CHART_ROWS = 10_000
"""W&B's ``Table.MAX_ROWS``: a chart's table is thinned evenly to this many rows when it is sent."""

SPEC_KINDS = {
    "wandb/line/v0": "line",
    "wandb/scatter/v0": "scatter",
    "wandb/bar/v0": "bar",
    "wandb/histogram/v0": "histogram",
    "wandb/lineseries/v0": "line_series",
    "wandb/area-under-curve/v0": "curve",
    "wandb/confusion_matrix/v1": "confusion_matrix",
}
"""W&B's built-in Vega spec names -> the kind of chart the run page draws; other names are ``custom``."""


class CustomChart:
    """A table and how to draw it (W&B's ``CustomChart``); log it like any value."""

    def __init__(self, table: Table, spec_name: str, fields: Mapping[str, Any],
                 string_fields: Mapping[str, Any] | None = None, split_table: bool = False, *,
                 kind: str | None = None) -> None:
        self.table = table
        self.spec_name = str(spec_name)
        self.fields = dict(fields)
        self.string_fields = dict(string_fields or {})
        self.split_table = bool(split_table)
        self.kind = kind or SPEC_KINDS.get(self.spec_name, "custom")

    @property
    def title(self) -> str:
        return str(self.string_fields.get("title") or self.fields.get("title") or "")

    def to_json(self, encode_cell: Callable[[Any], Any]) -> dict[str, Any]:
        """The protocol's table media object with its ``chart`` spec; ``encode_cell`` encodes each cell."""
        table = self.table
        rows = table.data
        if len(rows) > MAX_CHART_ROWS:
            log_once(f"chart-rows:{self.spec_name}",
                     "runwatch: a %s chart's table has %d rows; only %d evenly spaced rows are sent",
                     self.kind, len(rows), MAX_CHART_ROWS)
            rows = _thin(rows, MAX_CHART_ROWS)
        scalar = (str, int, float, bool, type(None))
        return {
            "_type": "table",
            "columns": list(table.columns),
            "data": [[encode_cell(c) for c in row] for row in rows],
            "chart": {
                "kind": self.kind,
                "spec": self.spec_name,
                "fields": {str(k): (v if v is None else str(v)) for k, v in self.fields.items()},
                "title": self.title,
                "string_fields": {str(k): (v if isinstance(v, scalar) else str(v))
                                  for k, v in self.string_fields.items()},
                "split_table": self.split_table,
            },
        }

    def __repr__(self) -> str:
        return f"CustomChart(kind={self.kind!r}, spec={self.spec_name!r}, rows={len(self.table.data)})"


def _thin(rows: list[Any], limit: int) -> list[Any]:
    """``limit`` rows evenly spaced over ``rows``, first and last included."""
    n = len(rows)
    return [rows[round(i * (n - 1) / (limit - 1))] for i in range(limit)]


def _check_table(table: Any, what: str, *columns: str | None) -> Table:
    if not isinstance(table, Table):
        raise TypeError(f"runwatch.plot.{what} needs a runwatch.Table, got {type(table).__name__}")
    for column in columns:
        if column is not None and column not in table.columns:
            raise ValueError(f"runwatch.plot.{what}: the table has no column {column!r}; "
                             f"its columns are {table.columns}")
    return table


def plot_table(vega_spec_name: str, data_table: Table, fields: Mapping[str, Any],
               string_fields: Mapping[str, Any] | None = None, split_table: bool = False) -> CustomChart:
    """A chart from a Vega spec name (W&B's ``wandb.plot_table``): the table and the spec are stored;
    W&B's built-in specs are drawn, any other spec is shown as its table."""
    if not isinstance(data_table, Table):
        raise TypeError(f"runwatch.plot_table needs a runwatch.Table, got {type(data_table).__name__}")
    return CustomChart(data_table, vega_spec_name, fields, string_fields, split_table)


def line(table: Table, x: str, y: str, stroke: str | None = None, title: str = "",
         split_table: bool = False) -> CustomChart:
    """``y`` against ``x``; one line per value of the ``stroke`` column if given."""
    _check_table(table, "line", x, y, stroke)
    return CustomChart(table, "wandb/line/v0", {"x": x, "y": y, "stroke": stroke}, {"title": title},
                       split_table)


def scatter(table: Table, x: str, y: str, title: str = "", split_table: bool = False) -> CustomChart:
    """``y`` against ``x`` as points."""
    _check_table(table, "scatter", x, y)
    return CustomChart(table, "wandb/scatter/v0", {"x": x, "y": y}, {"title": title}, split_table)


def bar(table: Table, label: str, value: str, title: str = "", split_table: bool = False) -> CustomChart:
    """One bar per row: its ``label`` column and its ``value`` column."""
    _check_table(table, "bar", label, value)
    return CustomChart(table, "wandb/bar/v0", {"label": label, "value": value}, {"title": title}, split_table)


def histogram(table: Table, value: str, title: str = "", split_table: bool = False) -> CustomChart:
    """The distribution of the ``value`` column (binned when drawn)."""
    _check_table(table, "histogram", value)
    return CustomChart(table, "wandb/histogram/v0", {"value": value}, {"title": title}, split_table)


def line_series(xs: Any, ys: Any, keys: Iterable[str] | None = None, title: str = "", xname: str = "x",
                split_table: bool = False) -> CustomChart:
    """Several lines on one chart: ``ys`` is a list of series; ``xs`` one shared x list or one per series."""
    y_lists = [_values(y) for y in _values(ys)]
    x_values = _values(xs)
    if x_values and isinstance(x_values[0], (list, tuple)):
        x_lists = [list(x) for x in x_values]
    else:
        x_lists = [x_values] * len(y_lists)
    if len(x_lists) != len(y_lists):
        raise ValueError(f"line_series: {len(x_lists)} x series for {len(y_lists)} y series")
    names = [str(k) for k in keys] if keys is not None else [f"line_{i}" for i in range(len(y_lists))]
    if len(names) != len(y_lists):
        raise ValueError(f"line_series: {len(names)} keys for {len(y_lists)} y series")
    data = [[x, names[i], y] for i, (xx, yy) in enumerate(zip(x_lists, y_lists, strict=False))
            for x, y in zip(xx, yy, strict=False)]
    table = Table(columns=["step", "lineKey", "lineVal"], data=data)
    return CustomChart(table, "wandb/lineseries/v0", {"step": "step", "lineKey": "lineKey", "lineVal": "lineVal"},
                       {"title": title, "xname": xname}, split_table)


# -- classification charts ---------------------------------------------------------------------------

def _values(value: Any) -> list[Any]:
    """A sequence, numpy array or torch tensor as a (nested) Python list."""
    if value is None:
        return []
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu()
    tolist = getattr(value, "tolist", None)
    if callable(tolist):
        found = tolist()
        return found if isinstance(found, list) else [found]
    return [v.tolist() if callable(getattr(v, "tolist", None)) else v for v in value]


def _sorted_unique(values: Iterable[Any]) -> list[Any]:
    unique = set(values)
    try:
        return sorted(unique)
    except TypeError:  # mixed types: still a stable order
        return sorted(unique, key=lambda v: (type(v).__name__, str(v)))


def _score_rows(y_probas: Any, n: int, what: str) -> list[list[float]]:
    rows = _values(y_probas)
    if len(rows) != n:
        raise ValueError(f"{what}: y_true has {n} labels but y_probas has {len(rows)} rows")
    if rows and not isinstance(rows[0], (list, tuple)):
        # One score per sample: the probability of the positive (larger) class of a binary problem.
        return [[1.0 - float(p), float(p)] for p in rows]
    return [[float(p) for p in row] for row in rows]


def _class_label(cls: Any, labels: Sequence[Any] | None) -> Any:
    if labels is not None and isinstance(cls, int) and not isinstance(cls, bool) and 0 <= cls < len(labels):
        return labels[cls]
    return cls


def _columns_for(classes: list[Any], width: int, what: str) -> list[int]:
    """The y_probas column of each class: the class itself for integer classes 0..K-1 (so a class
    missing from y_true does not shift the others), else its position among the sorted classes."""
    if all(isinstance(c, int) and not isinstance(c, bool) and 0 <= c < width for c in classes):
        return list(classes)
    if len(classes) > width:
        raise ValueError(f"{what}: y_true has {len(classes)} classes but y_probas has {width} columns")
    return list(range(len(classes)))


def _classes(y_true: list[Any], classes_to_plot: Iterable[Any] | None) -> tuple[list[Any], list[Any]]:
    classes = _sorted_unique(y_true)
    if classes_to_plot is None:
        return classes, classes
    chosen = set(_values(classes_to_plot))
    return classes, [c for c in classes if c in chosen]


def binary_curve(positive: list[bool], scores: list[float]) -> tuple[list[int], list[int], list[float]]:
    """False and true positive counts at each distinct score threshold, highest first (scikit-learn's
    ``_binary_clf_curve``). NaN scores rank lowest."""
    order = sorted(range(len(scores)), key=lambda i: -math.inf if scores[i] != scores[i] else scores[i],
                   reverse=True)
    fps: list[int] = []
    tps: list[int] = []
    thresholds: list[float] = []
    tp = fp = 0
    for rank, i in enumerate(order):
        if positive[i]:
            tp += 1
        else:
            fp += 1
        nxt = order[rank + 1] if rank + 1 < len(order) else None
        if nxt is None or scores[nxt] != scores[i]:
            fps.append(fp)
            tps.append(tp)
            thresholds.append(scores[i])
    return fps, tps, thresholds


def roc_points(positive: list[bool], scores: list[float]) -> tuple[list[float], list[float]]:
    """(fpr, tpr) as scikit-learn's ``roc_curve`` (``drop_intermediate=True``) computes them."""
    fps, tps, _ = binary_curve(positive, scores)
    if len(fps) > 2:
        keep = [0] + [i for i in range(1, len(fps) - 1)
                      if fps[i + 1] - 2 * fps[i] + fps[i - 1] or tps[i + 1] - 2 * tps[i] + tps[i - 1]]
        keep.append(len(fps) - 1)
        fps, tps = [fps[i] for i in keep], [tps[i] for i in keep]
    fps, tps = [0, *fps], [0, *tps]
    return [f / fps[-1] for f in fps], [t / tps[-1] for t in tps]


def pr_points(positive: list[bool], scores: list[float]) -> tuple[list[float], list[float]]:
    """(precision, recall) as scikit-learn's ``precision_recall_curve`` computes them (recall falling)."""
    fps, tps, _ = binary_curve(positive, scores)
    precision = [t / (t + f) if t + f else 0.0 for t, f in zip(tps, fps, strict=True)]
    recall = [t / tps[-1] for t in tps] if tps[-1] else [1.0] * len(tps)
    return [*precision[::-1], 1.0], [*recall[::-1], 0.0]


def _dedupe(points: list[tuple[float, float]]) -> list[tuple[float, float]]:
    out: list[tuple[float, float]] = []
    for p in points:
        if not out or out[-1] != p:
            out.append(p)
    return out


def roc_curve(y_true: Any, y_probas: Any = None, labels: Sequence[str] | None = None,
              classes_to_plot: Sequence[Any] | None = None, title: str = "ROC Curve",
              split_table: bool = False) -> CustomChart:
    """One-vs-rest ROC curve per class: table ``class, fpr, tpr`` (rounded to 3 decimals, as W&B)."""
    truth = _values(y_true)
    rows = _score_rows(y_probas, len(truth), "roc_curve")
    classes, wanted = _classes(truth, classes_to_plot)
    columns = _columns_for(classes, len(rows[0]) if rows else 0, "roc_curve")
    data: list[list[Any]] = []
    for cls in wanted:
        column = columns[classes.index(cls)]
        positive = [t == cls for t in truth]
        if all(positive):
            log_once(f"roc-one-class:{cls!r}", "runwatch: roc_curve: class %r has no negatives; no curve", cls)
            continue
        fpr, tpr = roc_points(positive, [row[column] for row in rows])
        label = _class_label(cls, labels)
        data += [[label, f, t] for f, t in _dedupe([(round(f, 3), round(t, 3)) for f, t in zip(fpr, tpr, strict=True)])]
    return CustomChart(Table(columns=["class", "fpr", "tpr"], data=data), "wandb/area-under-curve/v0",
                       {"x": "fpr", "y": "tpr", "class": "class"},
                       {"title": title, "x-axis-title": "False positive rate", "y-axis-title": "True positive rate"},
                       split_table, kind="roc")


def pr_curve(y_true: Any = None, y_probas: Any = None, labels: Sequence[str] | None = None,
             classes_to_plot: Sequence[Any] | None = None, interp_size: int = 21,
             title: str = "Precision-Recall Curve", split_table: bool = False) -> CustomChart:
    """One-vs-rest precision-recall curve per class, interpolated at ``interp_size`` recall values
    (W&B's table ``class, precision, recall``; precision is the best at that recall or above)."""
    if y_true is None or y_probas is None:
        raise ValueError("pr_curve needs y_true and y_probas")
    if isinstance(interp_size, bool) or not isinstance(interp_size, int) or not 2 <= interp_size <= MAX_CHART_ROWS:
        raise ValueError(f"pr_curve: interp_size must be an int from 2 to {MAX_CHART_ROWS}, got {interp_size!r}")
    truth = _values(y_true)
    rows = _score_rows(y_probas, len(truth), "pr_curve")
    classes, wanted = _classes(truth, classes_to_plot)
    columns = _columns_for(classes, len(rows[0]) if rows else 0, "pr_curve")
    recall_grid = [1 - i / (interp_size - 1) for i in range(interp_size)]  # 1 .. 0, as W&B
    data: list[list[Any]] = []
    for cls in wanted:
        column = columns[classes.index(cls)]
        precision, recall = pr_points([t == cls for t in truth], [row[column] for row in rows])
        for i in range(1, len(precision)):  # interpolated precision: the best at this recall or above
            precision[i] = max(precision[i], precision[i - 1])
        precision, recall = precision[::-1], recall[::-1]  # recall rising
        label = _class_label(cls, labels)
        for r in recall_grid:
            at = next((i for i, v in enumerate(recall) if v >= r), len(recall) - 1)
            data.append([label, round(precision[at], 3), round(r, 3)])
    return CustomChart(Table(columns=["class", "precision", "recall"], data=data), "wandb/area-under-curve/v0",
                       {"x": "recall", "y": "precision", "class": "class"},
                       {"title": title, "x-axis-title": "Recall", "y-axis-title": "Precision"},
                       split_table, kind="pr")


def _argmax(row: Sequence[float]) -> int:
    best = 0
    for i, v in enumerate(row):
        if v > row[best]:
            best = i
    return best


def confusion_counts(y_true: list[Any], preds: list[Any], class_names: Sequence[Any] | None
                     ) -> tuple[list[Any], list[list[int]]]:
    """(names, counts[actual][predicted]). With ``class_names`` the labels are indices into it."""
    if len(preds) != len(y_true):
        raise ValueError(f"confusion_matrix: {len(y_true)} true labels but {len(preds)} predictions")
    if class_names is not None:
        names = list(class_names)
        for what, values in (("y_true", y_true), ("preds", preds)):
            for v in values:
                if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < len(names):
                    raise ValueError(f"confusion_matrix: {what} holds {v!r}, which is not an index into the "
                                     f"{len(names)} class_names")
        index = {i: i for i in range(len(names))}
    else:
        classes = _sorted_unique([*y_true, *preds])
        names = [str(c) for c in classes]
        index = {c: i for i, c in enumerate(classes)}
    counts = [[0] * len(names) for _ in names]
    for t, p in zip(y_true, preds, strict=True):
        counts[index[t]][index[p]] += 1
    return names, counts


def confusion_matrix(probs: Any = None, y_true: Any = None, preds: Any = None,
                     class_names: Sequence[str] | None = None, title: str = "Confusion Matrix Curve",
                     split_table: bool = False) -> CustomChart:
    """Counts of (actual, predicted) pairs from ``preds`` or from the argmax of ``probs``: table
    ``Actual, Predicted, nPredictions`` with every pair, as W&B. Without ``class_names`` the classes
    are the labels themselves (sorted)."""
    if probs is not None and preds is not None:
        raise ValueError("confusion_matrix takes probs or preds, not both")
    if y_true is None or (probs is None and preds is None):
        raise ValueError("confusion_matrix needs y_true and one of probs or preds")
    if probs is not None:
        predicted = [_argmax(row) for row in _values(probs)]
    else:
        predicted = _values(preds)
    names, counts = confusion_counts(_values(y_true), predicted, class_names)
    data = [[names[i], names[j], counts[i][j]] for i in range(len(names)) for j in range(len(names))]
    return CustomChart(Table(columns=["Actual", "Predicted", "nPredictions"], data=data), "wandb/confusion_matrix/v1",
                       {"Actual": "Actual", "Predicted": "Predicted", "nPredictions": "nPredictions"},
                       {"title": title}, split_table)
