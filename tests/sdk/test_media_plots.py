"""``Histogram``, ``runwatch.plot``, ``runwatch.sklearn`` and figures as images: the objects, their wire
encoding (through an offline run's spool, as the sender writes it) and the errors for bad input."""

from __future__ import annotations

import base64
import logging
import math
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import runwatch
from _sdkutil import history, offline
from runwatch import plot
from runwatch import sklearn as rw_sklearn
from runwatch.histogram import Histogram
from runwatch.media import Image, Table
from runwatch.values import normalize, snapshot_figures

SDK = Path(__file__).resolve().parents[2] / "sdk"


def logged(data: dict[str, Any]) -> dict[str, Any]:
    """``data`` logged to an offline run, as the sender encoded it."""
    run = offline()
    run.log(data)
    run.finish()
    return history(run)[0]["data"]


# -- Histogram ---------------------------------------------------------------------------------------

def test_histogram_of_a_list_bins_like_numpy() -> None:
    values = np.random.default_rng(3).normal(size=5000)
    counts, edges = np.histogram(values, bins=64)
    for source in (values, values.tolist()):  # numpy's own binning, and the pure-Python one
        h = Histogram(source)
        assert h.histogram == counts.tolist()
        assert h.bins == pytest.approx(edges.tolist(), rel=1e-12, abs=1e-12)
    assert Histogram(values.reshape(50, 100).tolist(), num_bins=7).histogram == np.histogram(values, 7)[0].tolist()


def test_histogram_edge_cases_match_numpy() -> None:
    assert Histogram([5, 5, 5], num_bins=2).bins == [4.5, 5.0, 5.5]  # one value: numpy's +-0.5 range
    assert Histogram([], num_bins=2).to_json()["values"] == [0, 0]
    assert Histogram(range(10), num_bins=512).to_json()["values"].count(1) == 10
    assert Histogram(np.arange(4, dtype=np.int8), num_bins=4).histogram == [1, 1, 1, 1]
    assert Histogram(np.array([True, False, True]), num_bins=2).histogram == [1, 2]


def test_nan_and_inf_are_counted_apart_not_raised() -> None:
    # W&B raises on these; a diverged value must not kill the training loop.
    h = Histogram([1.0, math.nan, 2.0, math.inf, -math.inf, math.nan, 3.0], num_bins=2)
    assert h.histogram == [1, 2] and h.bins == [1.0, 2.0, 3.0]
    assert h.nonfinite == {"nan": 2, "inf": 1, "-inf": 1}
    array = Histogram(np.array([np.nan, 1.0, np.inf]), num_bins=1)
    assert (array.histogram, array.nonfinite) == ([1], {"nan": 1, "inf": 1, "-inf": 0})
    only_nan = Histogram([math.nan, math.nan], num_bins=3)
    assert only_nan.histogram == [0, 0, 0] and only_nan.nonfinite["nan"] == 2


def test_histogram_from_np_histogram_and_a_tensor() -> None:
    counts, edges = np.histogram([1, 2, 2, 3], bins=3)
    h = Histogram(np_histogram=(counts, edges))
    assert (h.histogram, h.bins) == ([1, 2, 1], edges.tolist())
    assert Histogram(np_histogram=([0.5, 1.5], [0, 1, 2])).histogram == [0.5, 1.5]  # density histograms

    class Tensor:  # torch-like: detach().cpu().numpy(), never imported
        def __init__(self, a: Any) -> None:
            self.a = a

        def detach(self) -> Tensor:
            return self

        def cpu(self) -> Tensor:
            return self

        def numpy(self) -> Any:
            return self.a

    assert Histogram(Tensor(np.array([[1.0, 2.0], [3.0, np.nan]])), num_bins=3).histogram == [1, 1, 1]


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    ({}, ValueError, "needs a sequence"),
    ({"sequence": [1], "num_bins": 0}, ValueError, "between 1 and 512"),
    ({"sequence": [1], "num_bins": 513}, ValueError, "between 1 and 512"),
    ({"sequence": [1], "num_bins": 2.5}, TypeError, "num_bins must be an int"),
    ({"sequence": [1], "num_bins": True}, TypeError, "num_bins must be an int"),
    ({"sequence": ["a", "b"]}, TypeError, "needs numbers, got str"),
    ({"sequence": "abc"}, TypeError, "needs numbers"),
    ({"sequence": [1, None]}, TypeError, "needs numbers, got NoneType"),
    ({"np_histogram": ([1, 2], [0, 1])}, ValueError, "one more bin edge"),
    ({"np_histogram": ([1] * 513, list(range(514)))}, ValueError, "1 to 512 bins"),
    ({"np_histogram": ([1, 2], [0, 2, 1])}, ValueError, "must not decrease"),
    ({"np_histogram": ([1, math.nan], [0, 1, 2])}, ValueError, "count 1"),
    ({"np_histogram": ([1], [0, math.inf])}, ValueError, "edge 1"),
    ({"np_histogram": ([1],)}, ValueError, "(counts, bin_edges) pair"),
])
def test_histogram_bad_input_says_what_was_wrong(kwargs: dict[str, Any], error: type[Exception], message: str) -> None:
    with pytest.raises(error, match=re.escape(message)):
        Histogram(**kwargs)


def test_histogram_on_the_wire() -> None:
    data = logged({"weights": Histogram([1, 2, 2, math.nan], num_bins=2), "nested": {"h": Histogram([0, 1])}})
    assert data["weights"] == {"_type": "histogram", "values": [1, 2], "bins": [1.0, 1.5, 2.0],
                               "nonfinite": {"nan": 1, "inf": 0, "-inf": 0}}
    assert data["nested.h"]["_type"] == "histogram" and len(data["nested.h"]["bins"]) == 65


# -- runwatch.plot -----------------------------------------------------------------------------------

def table() -> Table:
    return Table(columns=["epoch", "loss", "split"], data=[[0, 1.0, "train"], [1, 0.5, "train"], [0, 1.2, "val"]])


@pytest.mark.parametrize(("chart", "kind", "spec", "fields"), [
    (lambda: plot.line(table(), "epoch", "loss", stroke="split", title="Loss"), "line", "wandb/line/v0",
     {"x": "epoch", "y": "loss", "stroke": "split"}),
    (lambda: plot.scatter(table(), "epoch", "loss", title="Loss"), "scatter", "wandb/scatter/v0",
     {"x": "epoch", "y": "loss"}),
    (lambda: plot.bar(table(), "split", "loss", title="Loss"), "bar", "wandb/bar/v0",
     {"label": "split", "value": "loss"}),
    (lambda: plot.histogram(table(), "loss", title="Loss"), "histogram", "wandb/histogram/v0", {"value": "loss"}),
])
def test_preset_charts_are_a_table_plus_a_spec(chart: Any, kind: str, spec: str, fields: dict[str, Any]) -> None:
    data = logged({"c": chart()})["c"]
    assert data["_type"] == "table" and data["columns"] == ["epoch", "loss", "split"]
    assert data["data"] == [[0, 1.0, "train"], [1, 0.5, "train"], [0, 1.2, "val"]]
    assert data["chart"] == {"kind": kind, "spec": spec, "fields": fields, "title": "Loss",
                             "string_fields": {"title": "Loss"}, "split_table": False}


def test_preset_charts_check_their_table_and_columns() -> None:
    with pytest.raises(TypeError, match="needs a runwatch.Table, got list"):
        plot.line([[1, 2]], "x", "y")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="no column 'step'.*'epoch', 'loss', 'split'"):
        plot.line(table(), "step", "loss")
    with pytest.raises(ValueError, match="no column 'colour'"):
        plot.line(table(), "epoch", "loss", stroke="colour")
    with pytest.raises(TypeError, match="plot_table needs a runwatch.Table"):
        plot.plot_table("wandb/line/v0", {"x": [1]}, {"x": "x"})  # type: ignore[arg-type]


def test_plot_table_keeps_the_spec_name_and_knows_wandb_presets() -> None:
    custom = plot.plot_table("team/fancy/v2", table(), {"x": "epoch"}, {"title": "T", "n": 3}, split_table=True)
    known = runwatch.plot_table("wandb/line/v0", table(), {"x": "epoch", "y": "loss"})
    data = logged({"custom": custom, "known": known})
    assert data["custom"]["chart"] == {"kind": "custom", "spec": "team/fancy/v2", "fields": {"x": "epoch"},
                                       "title": "T", "string_fields": {"title": "T", "n": 3}, "split_table": True}
    assert data["known"]["chart"]["kind"] == "line"


def test_line_series() -> None:
    chart = plot.line_series([0, 1], [[1, 2], np.array([3.0, 4.0])], keys=["a", "b"], title="T", xname="epoch")
    assert chart.table.columns == ["step", "lineKey", "lineVal"]
    assert chart.table.data == [[0, "a", 1], [1, "a", 2], [0, "b", 3.0], [1, "b", 4.0]]
    assert chart.string_fields == {"title": "T", "xname": "epoch"} and chart.kind == "line_series"
    per_series = plot.line_series([[0, 1], [5, 6]], [[1, 2], [3, 4]])
    assert [row[0] for row in per_series.table.data] == [0, 1, 5, 6]
    assert {row[1] for row in per_series.table.data} == {"line_0", "line_1"}
    with pytest.raises(ValueError, match="1 keys for 2 y series"):
        plot.line_series([0, 1], [[1, 2], [3, 4]], keys=["a"])
    with pytest.raises(ValueError, match="3 x series for 2 y series"):
        plot.line_series([[0], [1], [2]], [[1], [3]])


def test_a_huge_chart_table_is_thinned_evenly_when_sent(caplog: pytest.LogCaptureFixture) -> None:
    big = Table(columns=["x", "y"], data=[[i, i * 2] for i in range(plot.MAX_CHART_ROWS * 3)])
    with caplog.at_level(logging.WARNING, logger="runwatch"):
        data = logged({"big": plot.line(big, "x", "y")})["big"]
    assert len(data["data"]) == plot.MAX_CHART_ROWS
    last = plot.MAX_CHART_ROWS * 3 - 1
    assert data["data"][0] == [0, 0] and data["data"][-1] == [last, last * 2]
    assert any("only 10000 evenly spaced rows are sent" in r.getMessage() for r in caplog.records)


# -- ROC, PR, confusion matrix -----------------------------------------------------------------------

def test_roc_curve_of_the_textbook_example() -> None:
    # scikit-learn's documented example: fpr [0, 0, .5, .5, 1], tpr [0, .5, .5, 1, 1].
    chart = plot.roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8], classes_to_plot=[1])  # one score per sample
    assert chart.table.columns == ["class", "fpr", "tpr"]
    assert chart.table.data == [[1, 0.0, 0.0], [1, 0.0, 0.5], [1, 0.5, 0.5], [1, 0.5, 1.0], [1, 1.0, 1.0]]
    assert chart.kind == "roc" and chart.spec_name == "wandb/area-under-curve/v0"
    assert chart.fields == {"x": "fpr", "y": "tpr", "class": "class"}
    assert chart.string_fields["x-axis-title"] == "False positive rate" and chart.title == "ROC Curve"


def test_roc_and_pr_match_scikit_learn() -> None:
    metrics = pytest.importorskip("sklearn.metrics")
    rng = np.random.default_rng(7)
    y = rng.integers(0, 3, 400)
    p = rng.dirichlet([1, 1, 1], 400)
    for cls in range(3):
        fpr, tpr = plot.roc_points((y == cls).tolist(), p[:, cls].tolist())
        want_fpr, want_tpr, _ = metrics.roc_curve(y, p[:, cls], pos_label=cls)
        assert fpr == pytest.approx(want_fpr.tolist()) and tpr == pytest.approx(want_tpr.tolist())
        precision, recall = plot.pr_points((y == cls).tolist(), p[:, cls].tolist())
        want_p, want_r, _ = metrics.precision_recall_curve(y, p[:, cls], pos_label=cls)
        assert precision == pytest.approx(want_p.tolist()) and recall == pytest.approx(want_r.tolist())
    roc = plot.roc_curve(y, p, labels=["a", "b", "c"], classes_to_plot=[0, 2])
    assert {row[0] for row in roc.table.data} == {"a", "c"}
    assert all(row[1] == round(row[1], 3) for row in roc.table.data)


def test_pr_curve_is_interpolated_at_interp_size_recalls() -> None:
    chart = plot.pr_curve([0, 1, 1, 0, 1], [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.8, 0.2], [0.3, 0.7]],
                          labels=["ham", "spam"], classes_to_plot=[1], interp_size=5)
    assert chart.table.columns == ["class", "precision", "recall"] and chart.kind == "pr"
    # Ranked scores for spam: .8 (spam) .7 (spam) .4 (spam) .2 .1 -> perfect precision up to full recall.
    assert chart.table.data == [["spam", 1.0, 1.0], ["spam", 1.0, 0.75], ["spam", 1.0, 0.5], ["spam", 1.0, 0.25],
                                ["spam", 1.0, 0.0]]
    with pytest.raises(ValueError, match="interp_size"):
        plot.pr_curve([0, 1], [0.1, 0.9], interp_size=1)


def test_roc_and_pr_bad_input() -> None:
    with pytest.raises(ValueError, match="3 labels but y_probas has 2 rows"):
        plot.roc_curve([0, 1, 1], [[0.1, 0.9], [0.2, 0.8]])
    with pytest.raises(ValueError, match="needs y_true and y_probas"):
        plot.pr_curve([0, 1])
    with pytest.raises(ValueError, match="3 classes but y_probas has 2 columns"):
        plot.roc_curve(["a", "b", "c"], [[0.1, 0.9]] * 3)


def test_confusion_matrix_from_preds_and_probs() -> None:
    chart = plot.confusion_matrix(y_true=[0, 1, 1, 2], preds=[0, 1, 0, 2], class_names=["cat", "dog", "owl"])
    assert chart.table.columns == ["Actual", "Predicted", "nPredictions"] and chart.kind == "confusion_matrix"
    assert chart.table.data[:3] == [["cat", "cat", 1], ["cat", "dog", 0], ["cat", "owl", 0]]
    assert ["dog", "cat", 1] in chart.table.data and len(chart.table.data) == 9
    from_probs = plot.confusion_matrix(probs=np.array([[0.9, 0.1], [0.3, 0.7], [0.6, 0.4]]), y_true=np.array([0, 1, 1]))
    assert from_probs.table.data == [["0", "0", 1], ["0", "1", 0], ["1", "0", 1], ["1", "1", 1]]
    labels = plot.confusion_matrix(y_true=["b", "a"], preds=["a", "a"])
    assert labels.table.data == [["a", "a", 1], ["a", "b", 0], ["b", "a", 1], ["b", "b", 0]]


def test_confusion_matrix_bad_input() -> None:
    with pytest.raises(ValueError, match="probs or preds, not both"):
        plot.confusion_matrix(probs=[[1, 0]], y_true=[0], preds=[0])
    with pytest.raises(ValueError, match="2 true labels but 1 predictions"):
        plot.confusion_matrix(y_true=[0, 1], preds=[0])
    with pytest.raises(ValueError, match="holds 3, which is not an index into the 2 class_names"):
        plot.confusion_matrix(y_true=[0, 3], preds=[0, 1], class_names=["a", "b"])
    with pytest.raises(ValueError, match="needs y_true"):
        plot.confusion_matrix(preds=[0])


def test_plots_work_without_numpy() -> None:
    code = """
import sys
sys.modules["numpy"] = None  # any import of numpy fails
from runwatch import plot
from runwatch.histogram import Histogram
print(Histogram([1, 2, 2, float("nan")], num_bins=2).to_json())
print(plot.roc_curve([0, 1, 1], [[0.8, 0.2], [0.3, 0.7], [0.4, 0.6]]).table.data[:2])
print(plot.confusion_matrix(y_true=[0, 1], preds=[1, 1]).table.data[1])
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": str(SDK), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert out.stdout.splitlines() == [
        "{'_type': 'histogram', 'values': [1, 2], 'bins': [1.0, 1.5, 2.0], "
        "'nonfinite': {'nan': 1, 'inf': 0, '-inf': 0}}",
        "[[0, 0.0, 0.0], [0, 0.0, 1.0]]",
        "['0', '1', 1]",
    ]


# -- runwatch.sklearn --------------------------------------------------------------------------------

def test_sklearn_plots_log_to_the_active_run(caplog: pytest.LogCaptureFixture) -> None:
    run = offline()
    y, probas = [0, 1, 1, 0], [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.7, 0.3]]
    rw_sklearn.plot_roc(y, probas, labels=["neg", "pos"])
    rw_sklearn.plot_precision_recall(y, probas)
    rw_sklearn.plot_confusion_matrix(y, [0, 1, 0, 0], labels=["neg", "pos"], normalize=True)
    with caplog.at_level(logging.WARNING, logger="runwatch"):
        rw_sklearn.plot_classifier(object(), None, None, None, None, None, None, None)
        rw_sklearn.plot_classifier()
        rw_sklearn.plot_elbow_curve(clusterer=None)
    run.finish()
    rows = [r["data"] for r in history(run)]
    assert [sorted(k for k in row if not k.startswith("_")) for row in rows] == [
        ["roc"], ["precision_recall"], ["confusion_matrix"]]
    assert {row[0] for row in rows[0]["roc"]["data"]} == {"neg", "pos"}
    assert rows[2]["confusion_matrix"]["chart"]["kind"] == "confusion_matrix"
    assert rows[2]["confusion_matrix"]["data"] == [["neg", "neg", 1.0], ["neg", "pos", 0.0], ["pos", "neg", 0.5],
                                                   ["pos", "pos", 0.5]]
    warnings = [r.getMessage() for r in caplog.records if r.name == "runwatch"]
    assert warnings == ["runwatch: runwatch.sklearn.plot_classifier is not supported; nothing was logged",
                        "runwatch: runwatch.sklearn.plot_elbow_curve is not supported; nothing was logged"]


def test_sklearn_names_match_wandb() -> None:
    assert set(rw_sklearn.__all__) == {
        "plot_calibration_curve", "plot_class_proportions", "plot_classifier", "plot_clusterer",
        "plot_confusion_matrix", "plot_elbow_curve", "plot_feature_importances", "plot_learning_curve",
        "plot_outlier_candidates", "plot_precision_recall", "plot_regressor", "plot_residuals", "plot_roc",
        "plot_silhouette", "plot_summary_metrics"}


def test_sklearn_plot_before_init_says_to_init() -> None:
    with pytest.raises(runwatch.Error, match=r"runwatch.init\(\)"):
        rw_sklearn.plot_roc([0, 1], [[0.9, 0.1], [0.2, 0.8]])


# -- figures and PIL images --------------------------------------------------------------------------

def test_image_of_a_matplotlib_figure_and_figures_logged_directly() -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1), dpi=50)
    ax.plot([0, 1], [1, 0])
    image = runwatch.Image(fig, caption="fig")
    assert image.png[:8] == b"\x89PNG\r\n\x1a\n" and (image.width, image.height) == (100, 50)
    assert runwatch.Image(ax).png[:4] == b"\x89PNG"
    data = logged({"chart": fig, "current": plt, "wrapped": image})
    for key in ("chart", "current", "wrapped"):
        assert data[key]["_type"] == "image" and (data[key]["width"], data[key]["height"]) == (100, 50), key
        assert base64.b64decode(data[key]["data"])[:4] == b"\x89PNG"
    plt.close(fig)


def test_snapshot_figures_renders_at_log_time_and_leaves_plain_rows_alone() -> None:
    matplotlib = pytest.importorskip("matplotlib")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    plain = {"loss": 0.5, "t": Table(columns=["a"]), "n": None}
    assert snapshot_figures(plain) is plain
    fig = plt.figure(figsize=(1, 1), dpi=20)
    row = {"fig": fig, "loss": 0.5}
    snap = snapshot_figures(row)
    assert isinstance(snap["fig"], Image) and snap["loss"] == 0.5 and row["fig"] is fig
    plt.close(fig)


def test_pil_images() -> None:
    pil = pytest.importorskip("PIL.Image")
    for mode in ("RGB", "L", "CMYK", "F"):
        image = runwatch.Image(pil.new(mode, (3, 2)))
        assert (image.width, image.height) == (3, 2), mode
    assert normalize(pil.new("RGBA", (1, 1)))["_type"] == "image"


def test_other_objects_stay_json_media() -> None:
    class Thing:
        savefig = None  # not a figure: no canvas

    assert normalize(Thing())["_type"] == "json"
    assert normalize(np.zeros(3))["_type"] == "json"
