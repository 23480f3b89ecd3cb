"""The corpus' media scripts: matplotlib figures, scikit-learn charts, histograms and tables, a PyTorch
loop under ``watch``, and media types Runwatch does not support. History steps and scalar values must
match wandb's records; media must be stored at the same steps, with the same table rows, image sizes and
histogram counts (their encodings otherwise differ by design)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.compat.harness import (
    compare_all,
    compare_config,
    compare_history,
    compare_media,
    compare_run_fields,
    compare_summary,
    compare_watch,
    media_by_step,
    run_both,
    service_runs,
)
from tests.support.service import ServiceProcess

pytest.importorskip("wandb", reason="the corpus compares against the real wandb (test extra)")


def test_matplotlib_figures(service: ServiceProcess, tmp_path: Path) -> None:
    script, project = "matplotlib_figure.py", "compat-matplotlib"
    wandb_runs, _ = run_both(script, service, tmp_path, project)
    [wandb_run] = wandb_runs
    [rw] = service_runs(service, project, 1, script=script)
    compare_run_fields(script, wandb_run, rw)
    compare_config(script, wandb_run, rw)
    compare_history(script, wandb_run, rw.window(0, 4))
    compare_summary(script, wandb_run, rw, ignore=lambda key: key == "fig3")
    # Width, height and caption of the four images: wandb renders a figure at its own size and dpi
    # (3 x 2 in at 50 dpi = 150 x 100 px).
    assert compare_media(script, wandb_run, rw.window(0, 4)) == {"tables": 0, "images": 4, "histograms": 0}
    media = media_by_step(rw)
    # The bare figure (only logged against Runwatch: wandb needs plotly for it) is an image at step 4.
    assert rw.steps()[-1] == 4 and media.get(4, {}).get("fig3", {}).get("kind") == "image", (
        f"{script}: a bare matplotlib figure should be stored as an image at step 4; media there: {media.get(4)}")


def test_sklearn_metrics_and_confusion_matrices(service: ServiceProcess, tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    script, project = "sklearn_metrics.py", "compat-sklearn"
    wandb_runs, _ = run_both(script, service, tmp_path, project)
    [wandb_run] = wandb_runs
    assert [k for row in wandb_run.history for k in row if not k.startswith("_")][-2:] == [
        "conf_mat_table", "confusion_matrix"]
    [rw] = service_runs(service, project, 1, script=script)
    # Both confusion matrices count the same predictions (the tables behind the two charts).
    assert compare_all(script, wandb_run, rw) == {"tables": 2, "images": 0, "histograms": 0}


def test_histograms_tables_and_line_plot(service: ServiceProcess, tmp_path: Path) -> None:
    script, project = "media_histogram_table.py", "compat-media"
    wandb_runs, _ = run_both(script, service, tmp_path, project)
    [wandb_run] = wandb_runs
    [rw] = service_runs(service, project, 1, script=script)
    # squares, the line plot's table and predictions; the array image; three histograms of samples and
    # one from np.histogram.
    assert compare_all(script, wandb_run, rw) == {"tables": 3, "images": 1, "histograms": 4}


def test_pytorch_loop_with_watch(service: ServiceProcess, tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="the PyTorch corpus script needs torch (installed by .ci/run)")
    script, project = "pytorch_watch.py", "compat-torch"
    wandb_runs, _ = run_both(script, service, tmp_path, project, "--epochs", "2", "--batches", "15")
    [wandb_run] = wandb_runs
    [rw] = service_runs(service, project, 1, script=script)
    compare_run_fields(script, wandb_run, rw)
    compare_config(script, wandb_run, rw)
    compare_history(script, wandb_run, rw)
    compare_summary(script, wandb_run, rw)
    compare_watch(script, wandb_run, rw)


def test_unsupported_media_types(service: ServiceProcess, tmp_path: Path) -> None:
    script, project = "unsupported_names.py", "compat-unsupported"
    wandb_runs, child = run_both(script, service, tmp_path, project)
    [wandb_run] = wandb_runs
    [rw] = service_runs(service, project, 1, script=script)
    compare_run_fields(script, wandb_run, rw)
    compare_history(script, wandb_run, rw, media_kinds=False, optional_media={"report", "clip", "points"})
    compare_summary(script, wandb_run, rw)
    for name in ("Html", "Video", "Object3D"):
        assert name in child.stderr, f"{script}: runwatch did not warn that {name} is unsupported; stderr:\n" \
                                     f"{child.stderr}"
