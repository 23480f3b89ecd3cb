"""SDK process → real service: histograms, ``runwatch.plot`` charts, ``runwatch.sklearn`` and figures are
stored and come back through ``GET /api/v1/runs/{project}/{run_id}/media``; bad media is a 422."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from tests.e2e.sdk_process import run_script, sdk_env
from tests.support.service import ServiceProcess

SCRIPT = """
    import math
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np
    import runwatch

    run = runwatch.init(id="media1")
    rng = np.random.default_rng(0)
    for step in range(3):
        runwatch.log({"loss": 1.0 / (step + 1),
                      "weights": runwatch.Histogram(rng.normal(size=1000) * (step + 1), num_bins=32)})
    table = runwatch.Table(columns=["epoch", "acc"], data=[[e, e / 10] for e in range(5)])
    y = [0, 1, 1, 0, 2, 2]
    probas = [[.8, .1, .1], [.2, .7, .1], [.5, .4, .1], [.6, .2, .2], [.1, .1, .8], [.3, .3, .4]]
    fig, ax = plt.subplots(figsize=(2, 2), dpi=40)
    ax.plot([0, 1], [0, 1])
    runwatch.log({
        "grads": runwatch.Histogram([0.5, 1.5, math.nan, math.inf]),
        "hist_np": runwatch.Histogram(np_histogram=np.histogram([1, 2, 2, 3], bins=3)),
        "acc_curve": runwatch.plot.line(table, "epoch", "acc", title="Accuracy"),
        "roc_curve": runwatch.plot.roc_curve(y, probas, labels=["a", "b", "c"]),
        "cm": runwatch.plot.confusion_matrix(y_true=y, probs=probas, class_names=["a", "b", "c"]),
        "custom": runwatch.plot_table("me/spec/v1", table, {"x": "epoch"}),
        "figure": fig,
    })
    runwatch.sklearn.plot_precision_recall(y, probas, labels=["a", "b", "c"])
    runwatch.sklearn.plot_learning_curve(None, None, None)
    runwatch.finish()
"""


def test_logged_histograms_and_charts_come_back_through_the_media_api(
        service_factory: Callable[..., ServiceProcess], tmp_path: Path) -> None:
    service = service_factory()
    key = service.create_key("vision")
    result = run_script(SCRIPT, sdk_env(service, key, tmp_path))
    assert result.returncode == 0, result.stderr
    assert "runwatch.sklearn.plot_learning_curve is not supported" in result.stderr
    response = service.api("GET", "/api/v1/runs/vision/media1/media", key=key)
    assert response.status_code == 200, response.text
    media: dict[str, list[dict[str, Any]]] = {}
    for item in response.json()["media"]:
        media.setdefault(item["key"], []).append(item)

    weights = media["weights"]
    assert [(m["step"], m["kind"]) for m in weights] == [(0, "histogram"), (1, "histogram"), (2, "histogram")]
    assert all(sum(m["value"]["values"]) == 1000 and len(m["value"]["bins"]) == 33 for m in weights)
    [grads] = media["grads"]
    assert grads["step"] == 3 and grads["value"]["nonfinite"] == {"nan": 1, "inf": 1, "-inf": 0}
    assert sum(grads["value"]["values"]) == 2
    assert media["hist_np"][0]["value"]["values"] == [1, 2, 1]

    acc = media["acc_curve"][0]
    assert acc["kind"] == "table" and acc["value"]["columns"] == ["epoch", "acc"]
    assert acc["value"]["chart"]["kind"] == "line" and acc["value"]["chart"]["title"] == "Accuracy"
    assert acc["value"]["chart"]["fields"] == {"x": "epoch", "y": "acc", "stroke": None}
    roc = media["roc_curve"][0]["value"]
    assert roc["chart"]["kind"] == "roc" and {row[0] for row in roc["data"]} == {"a", "b", "c"}
    cm = media["cm"][0]["value"]
    assert cm["chart"]["kind"] == "confusion_matrix" and len(cm["data"]) == 9
    assert sum(row[2] for row in cm["data"]) == 6
    assert media["custom"][0]["value"]["chart"]["kind"] == "custom"
    assert media["figure"][0]["kind"] == "image" and media["figure"][0]["value"]["width"] == 80
    [pr] = media["precision_recall"]
    assert pr["step"] == 4 and pr["value"]["chart"]["kind"] == "pr"
    assert "learning_curve" not in media


def test_bad_media_is_a_422_naming_the_field(service_factory: Callable[..., ServiceProcess]) -> None:
    service = service_factory()
    key = service.create_key("vision")
    assert service.api("POST", "/api/v1/runs", key=key, json={"project": "vision", "id": "bad1"}).status_code == 200
    bad = {"_type": "histogram", "values": [1, 2], "bins": [0, 1]}
    response = service.api("POST", "/api/v1/runs/vision/bad1/records", key=key, json={"records": [
        {"seq": 1, "type": "history", "step": 0, "timestamp": 1.8e9, "data": {"loss": 0.5, "h": bad}}]})
    assert response.status_code == 422, response.text
    [detail] = response.json()["detail"]
    assert detail["loc"] == ["body", "records", 0, "data", "h", "bins"]
    assert "needs a list of 3 bin edges" in detail["msg"]
    # Nothing of the refused batch was applied: the same seq is accepted once corrected.
    good = {**bad, "bins": [0, 1, 2]}
    response = service.api("POST", "/api/v1/runs/vision/bad1/records", key=key, json={"records": [
        {"seq": 1, "type": "history", "step": 0, "timestamp": 1.8e9, "data": {"loss": 0.5, "h": good}}]})
    assert response.status_code == 200, response.text
    [stored] = service.api("GET", "/api/v1/runs/vision/bad1/media", key=key).json()["media"]
    assert stored["value"] == good
