"""``runwatch.sklearn``: W&B's ``wandb.sklearn`` plots that log to the active run.

``plot_confusion_matrix``, ``plot_roc`` and ``plot_precision_recall`` compute their tables here (no
scikit-learn needed) and log them under W&B's keys ``confusion_matrix``, ``roc`` and
``precision_recall`` (each call commits a step, as ``wandb.log`` does). The other ``wandb.sklearn``
names exist so W&B scripts run unchanged: they warn once, naming the call, and log nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import plot
from ._log import log_once
from .media import Table

__all__ = [
    "plot_calibration_curve",
    "plot_class_proportions",
    "plot_classifier",
    "plot_clusterer",
    "plot_confusion_matrix",
    "plot_elbow_curve",
    "plot_feature_importances",
    "plot_learning_curve",
    "plot_outlier_candidates",
    "plot_precision_recall",
    "plot_regressor",
    "plot_residuals",
    "plot_roc",
    "plot_silhouette",
    "plot_summary_metrics",
]


def _log(key: str, chart: plot.CustomChart) -> None:
    from . import _session  # at call time: _session imports the run machinery

    _session.log({key: chart})


def plot_roc(y_true: Any = None, y_probas: Any = None, labels: Sequence[str] | None = None,
             plot_micro: bool = True, plot_macro: bool = True, classes_to_plot: Sequence[Any] | None = None) -> None:
    """Log one-vs-rest ROC curves as ``roc`` (``plot_micro``/``plot_macro`` are accepted, not drawn)."""
    _log("roc", plot.roc_curve(y_true, y_probas, labels, classes_to_plot))


def plot_precision_recall(y_true: Any = None, y_probas: Any = None, labels: Sequence[str] | None = None,
                          plot_micro: bool = True, classes_to_plot: Sequence[Any] | None = None) -> None:
    """Log one-vs-rest precision-recall curves as ``precision_recall``."""
    _log("precision_recall", plot.pr_curve(y_true, y_probas, labels, classes_to_plot))


def plot_confusion_matrix(y_true: Any = None, y_pred: Any = None, labels: Sequence[str] | None = None,
                          true_labels: Sequence[Any] | None = None, pred_labels: Sequence[Any] | None = None,
                          normalize: bool = False) -> None:
    """Log the confusion matrix of ``y_true`` vs ``y_pred`` as ``confusion_matrix``.

    ``labels`` names integer classes (``labels[i]`` for class ``i``); ``true_labels``/``pred_labels``
    keep only those rows/columns (class values or names); ``normalize`` divides each row by its total.
    """
    if y_true is None or y_pred is None:
        raise ValueError("plot_confusion_matrix needs y_true and y_pred")
    truth, predicted = plot._values(y_true), plot._values(y_pred)
    classes = plot._sorted_unique([*truth, *predicted])
    _names, counts = plot.confusion_counts(truth, predicted, None)
    names = [str(plot._class_label(c, labels)) for c in classes]
    values: list[list[float]] = [[float(c) for c in row] for row in counts]
    if normalize:
        values = [[round(c / sum(row), 2) if sum(row) else 0.0 for c in row] for row in values]

    def keep(chosen: Sequence[Any] | None) -> list[int]:
        if chosen is None:
            return list(range(len(classes)))
        wanted = set(plot._values(chosen))
        return [i for i, c in enumerate(classes) if c in wanted or names[i] in wanted]

    data = [[names[i], names[j], values[i][j] if normalize else int(values[i][j])]
            for i in keep(true_labels) for j in keep(pred_labels)]
    # wandb.sklearn's own column names, which differ from wandb.plot.confusion_matrix's: its first column
    # holds the true class under the name "Predicted" (and the second the predicted one under "Actual").
    # Tables match W&B's cell for cell; the chart's fields name the columns by what they really hold.
    table = Table(columns=["Predicted", "Actual", "Count"], data=data)
    _log("confusion_matrix", plot.CustomChart(
        table, "wandb/confusion_matrix/v1",
        {"Actual": "Predicted", "Predicted": "Actual", "nPredictions": "Count"},
        {"title": "Normalized confusion matrix" if normalize else "Confusion matrix"}))


def _unsupported(name: str) -> None:
    log_once(f"sklearn.{name}", "runwatch: runwatch.sklearn.%s is not supported; nothing was logged", name)


def plot_classifier(*args: Any, **kwargs: Any) -> None:
    """Not supported: warns once, logs nothing."""
    _unsupported("plot_classifier")


def plot_regressor(*args: Any, **kwargs: Any) -> None:
    """Not supported: warns once, logs nothing."""
    _unsupported("plot_regressor")


def plot_clusterer(*args: Any, **kwargs: Any) -> None:
    """Not supported: warns once, logs nothing."""
    _unsupported("plot_clusterer")


def plot_learning_curve(*args: Any, **kwargs: Any) -> None:
    """Not supported: warns once, logs nothing."""
    _unsupported("plot_learning_curve")


def plot_feature_importances(*args: Any, **kwargs: Any) -> None:
    """Not supported: warns once, logs nothing."""
    _unsupported("plot_feature_importances")


def plot_calibration_curve(*args: Any, **kwargs: Any) -> None:
    """Not supported: warns once, logs nothing."""
    _unsupported("plot_calibration_curve")


def plot_summary_metrics(*args: Any, **kwargs: Any) -> None:
    """Not supported: warns once, logs nothing."""
    _unsupported("plot_summary_metrics")


def plot_class_proportions(*args: Any, **kwargs: Any) -> None:
    """Not supported: warns once, logs nothing."""
    _unsupported("plot_class_proportions")


def plot_elbow_curve(*args: Any, **kwargs: Any) -> None:
    """Not supported: warns once, logs nothing."""
    _unsupported("plot_elbow_curve")


def plot_silhouette(*args: Any, **kwargs: Any) -> None:
    """Not supported: warns once, logs nothing."""
    _unsupported("plot_silhouette")


def plot_residuals(*args: Any, **kwargs: Any) -> None:
    """Not supported: warns once, logs nothing."""
    _unsupported("plot_residuals")


def plot_outlier_candidates(*args: Any, **kwargs: Any) -> None:
    """Not supported: warns once, logs nothing."""
    _unsupported("plot_outlier_candidates")
