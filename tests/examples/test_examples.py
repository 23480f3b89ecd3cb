"""The quickstart scripts in examples/, each run as its own process against a real service."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.sdk_process import (
    stored_alerts,
    wait_until_all_delivered,
)
from tests.support.receiver import WebhookReceiver
from tests.support.service import ServiceProcess, running_service

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One service for the examples that only log; each example writes to its own project."""
    with running_service(tmp_path_factory.mktemp("service")) as service:
        yield service


def run_example(name: str, service: ServiceProcess, project: str, tmp_path: Path, *args: str,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWATCH_")}
    env.update(RUNWATCH_BASE_URL=service.base_url, RUNWATCH_API_KEY=service.create_key(project),
               RUNWATCH_DIR=str(tmp_path / "runs"), HOME=str(tmp_path / "home"),
               RUNWATCH_SYSTEM_METRICS="0")  # on by default; its rows would change the histories compared
    result = subprocess.run([sys.executable, str(EXAMPLES / name), *args], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, f"{name} exited with {result.returncode}:\n{result.stderr}"
    return result


def runs_of(service: ServiceProcess, project: str) -> list[dict[str, Any]]:
    response = service.api("GET", f"/api/v1/runs?project={project}")
    assert response.status_code == 200, response.text
    return sorted(response.json()["runs"], key=lambda run: run["started_at"])


def history(service: ServiceProcess, project: str, run_id: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    after: int | None = -1
    while after is not None:
        response = service.api("GET", f"/api/v1/runs/{project}/{run_id}/history?limit=1000&after_step={after}")
        assert response.status_code == 200, response.text
        rows += response.json()["rows"]
        after = response.json()["next_after_step"]
    return rows


def test_basic_intro_logs_five_finished_runs(service: ServiceProcess, tmp_path: Path) -> None:
    run_example("basic_intro.py", service, "basic-intro", tmp_path)

    runs = runs_of(service, "basic-intro")
    assert [run["name"] for run in runs] == [f"experiment_{i}" for i in range(5)]
    assert len({run["id"] for run in runs}) == 5
    for run in runs:
        assert run["state"] == "finished"
        assert run["config"] == {"learning_rate": 0.02, "architecture": "CNN", "dataset": "CIFAR-100",
                                 "epochs": 10}
        rows = history(service, "basic-intro", run["id"])
        assert [row["_step"] for row in rows] == list(range(8))  # epochs 2..9
        for epoch, row in enumerate(rows, start=2):
            assert set(row) >= {"acc", "loss", "_timestamp", "_runtime"}
            assert row["acc"] < 1 - 2 ** -epoch <= 1 and row["loss"] > 2 ** -epoch
        assert run["summary"]["acc"] == rows[-1]["acc"]
        assert run["summary"]["loss"] == rows[-1]["loss"]


def test_alert_low_accuracy_sends_one_alert_and_finishes(webhook_service: ServiceProcess,
                                                         webhook_receiver: WebhookReceiver,
                                                         tmp_path: Path) -> None:
    result = run_example("alert_low_accuracy.py", webhook_service, "alerts-demo", tmp_path, "0.3")
    assert "Alert triggered" in result.stdout

    [request] = webhook_receiver.wait_for(1)
    alerts = request.json()["alerts"]
    assert [alert["title"] for alert in alerts] == ["Low accuracy"]
    [alert] = alerts
    assert alert["source"] == "sdk" and alert["severity"] == "warning" and alert["project"] == "alerts-demo"
    assert alert["text"].startswith("Accuracy ") and alert["text"].endswith("is below the acceptable threshold 0.3")
    accuracy = float(alert["text"].split()[1])
    assert accuracy <= 0.3

    [run] = runs_of(webhook_service, "alerts-demo")
    assert alert["run"]["id"] == run["id"]
    assert run["state"] == "finished"  # finish() returned after the service had the run's end
    rows = history(webhook_service, "alerts-demo", run["id"])
    # The loop stops at the first low value: it is the last row, and the only one at or below 0.3.
    assert rows[-1]["Accuracy"] == accuracy
    assert [row["Accuracy"] for row in rows if row["Accuracy"] <= 0.3] == [accuracy]

    # One alert was made (the service stores each when the call arrives, before the script's finish()
    # returns), and its one notification was delivered once.
    assert [a["title"] for a in stored_alerts(webhook_service, run["id"], project="alerts-demo")] == ["Low accuracy"]
    wait_until_all_delivered(webhook_service)
    assert len(webhook_receiver.requests) == 1


def test_pytorch_mlp_logs_train_val_table_and_summary(service: ServiceProcess, tmp_path: Path) -> None:
    pytest.importorskip("torch", reason="examples/pytorch_mlp.py needs torch")
    pytest.importorskip("sklearn", reason="examples/pytorch_mlp.py needs scikit-learn's digits")
    run_example("pytorch_mlp.py", service, "pytorch-intro", tmp_path, timeout=300)

    runs = runs_of(service, "pytorch-intro")
    assert len(runs) == 5
    for run in runs:
        assert run["state"] == "finished"
        assert set(run["config"]) == {"epochs", "batch_size", "lr", "dropout"}
        epochs = run["config"]["epochs"]

        rows = history(service, "pytorch-intro", run["id"])
        steps = [row["_step"] for row in rows]
        # Two forked DataLoader workers per loader, every epoch: still one row per step, no gaps.
        assert steps == list(range(len(rows)))
        assert all({"train/train_loss", "train/epoch", "train/example_ct"} <= set(row) for row in rows)
        val_rows = [row for row in rows if "val/val_accuracy" in row]
        assert len(val_rows) == epochs
        assert [row["train/epoch"] for row in val_rows] == [float(e) for e in range(1, epochs + 1)]
        assert all(0.0 <= row["val/val_accuracy"] <= 1.0 and row["val/val_loss"] > 0 for row in val_rows)
        # The validation metrics ride on the last train step of each epoch (one row per epoch boundary).
        assert len(rows) % epochs == 0 and all(rows[(len(rows) // epochs) * (e + 1) - 1] is val_rows[e]
                                               for e in range(epochs))
        assert run["summary"]["test_accuracy"] == 0.8
        assert run["summary"]["val/val_accuracy"] == val_rows[-1]["val/val_accuracy"]

        response = service.api("GET", f"/api/v1/runs/pytorch-intro/{run['id']}/media")
        assert response.status_code == 200, response.text
        [media] = response.json()["media"]
        assert media["key"] == "predictions_table" and media["kind"] == "table"
        assert media["step"] == steps[-1]  # logged with commit=False, committed with the last val metrics
        table = media["value"]
        assert table["columns"] == ["image", "pred", "target"] + [f"score_{i}" for i in range(10)]
        assert len(table["data"]) == 2 * run["config"]["batch_size"]  # one validation batch
        for image, pred, target, *scores in table["data"]:
            assert image["_type"] == "image" and (image["width"], image["height"]) == (8, 8)
            assert 0 <= pred <= 9 and 0 <= target <= 9
            assert abs(sum(scores) - 1.0) < 1e-3
