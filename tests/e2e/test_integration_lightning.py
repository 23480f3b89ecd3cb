"""``RunwatchLogger`` in real Lightning fits (a small MLP on random data, CPU) against a real service."""

from __future__ import annotations

import csv
import math
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.sdk_process import get_run, history
from tests.e2e.training_process import ended, needs, rule_alerts, rules_service, train
from tests.support.service import ServiceProcess

pytestmark = needs("torch", "lightning")

SCRIPT = """
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset
    import lightning.pytorch as pl
    from lightning.pytorch.loggers import CSVLogger
    from runwatch.integration.lightning import RunwatchLogger

    class MLP(pl.LightningModule):
        def __init__(self, hidden=8, lr=0.05, optim={"name": "sgd", "momentum": 0.0}, nan_at=None, fail_at=None):
            super().__init__()
            self.save_hyperparameters()
            self.net = nn.Sequential(nn.Linear(4, hidden), nn.ReLU(), nn.Linear(hidden, 1))

        def training_step(self, batch, index):
            if self.global_step == self.hparams.fail_at:
                raise ValueError(f"bad batch at step {self.global_step}")
            x, y = batch
            loss = nn.functional.mse_loss(self.net(x), y)
            if self.hparams.nan_at is not None and self.global_step >= self.hparams.nan_at:
                loss = loss * float("nan")
            self.log("train_loss", loss)
            return loss

        def validation_step(self, batch, index):
            self.log("val_loss", nn.functional.mse_loss(self.net(batch[0]), batch[1]))

        test_step = validation_step

        def configure_optimizers(self):
            return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)

    torch.manual_seed(0)
    data = TensorDataset(torch.randn(32, 4), torch.randn(32, 1))
    options = dict(max_epochs=2, log_every_n_steps=1, accelerator="cpu", enable_progress_bar=False,
                   enable_model_summary=False, enable_checkpointing=False)

    # 4 batches x 2 epochs, logged by Runwatch and a CSVLogger at once; then trainer.test() in the same run.
    logger = RunwatchLogger(name="mlp")
    trainer = pl.Trainer(logger=[logger, CSVLogger(".", name="csv", version=0)], **options)
    model = MLP()
    trainer.fit(model, DataLoader(data, batch_size=8), DataLoader(data, batch_size=8))
    print("RUN fit", logger.version, flush=True)
    trainer.test(model, DataLoader(data, batch_size=8))

    # The loss goes NaN from global step 2 on; training goes on (nothing stops it) and ends normally.
    logger = RunwatchLogger(name="mlp-nan")
    pl.Trainer(logger=logger, **options).fit(MLP(nan_at=2), DataLoader(data, batch_size=8))
    print("RUN nan", logger.version, flush=True)

    # An exception in training_step: Lightning finalizes the logger as failed, then re-raises it.
    logger = RunwatchLogger(name="mlp-fail")
    print("RUN fail", logger.experiment.id, flush=True)
    pl.Trainer(logger=logger, **options).fit(MLP(fail_at=3), DataLoader(data, batch_size=8))
"""


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceProcess, dict[str, str], Path,
                                                                       subprocess.CompletedProcess[str]]]:
    """One process trains three models (each its own run) against one service."""
    workdir = tmp_path_factory.mktemp("lightning")
    with rules_service(workdir / "service") as service:
        result, runs = train(service, workdir / "script", SCRIPT)
        assert set(runs) == {"fit", "nan", "fail"}, result.stderr
        yield service, runs, workdir / "script", result


def test_metrics_hyperparameters_and_finished_state(fitted: tuple[ServiceProcess, dict[str, str], Path,
                                                                  subprocess.CompletedProcess[str]]) -> None:
    service, runs, _, _ = fitted
    run = ended(service, runs["fit"], "finished")
    assert run["name"] == "mlp" and run["project"] == "vision"
    # save_hyperparameters(): nested values flattened to dotted keys.
    assert run["config"] == {"hidden": 8, "lr": 0.05, "optim.name": "sgd", "optim.momentum": 0.0, "nan_at": None,
                             "fail_at": None}
    rows = history(service, runs["fit"])
    assert [row["_step"] for row in rows] == list(range(len(rows)))  # one committed row per log_metrics call
    train_rows = [row for row in rows if "train_loss" in row]
    assert [row["trainer/global_step"] for row in train_rows] == list(range(8))
    assert [row["epoch"] for row in train_rows] == [0] * 4 + [1] * 4
    # Validation at the end of each epoch, at the step of the last training batch (a second row at that global
    # step: nothing merged, nothing dropped); then trainer.test() went on in the same run (resumed).
    assert [row["trainer/global_step"] for row in rows if "val_loss" in row] == [3, 7, 8]
    assert [row["_step"] for row in rows if "val_loss" in row][-1] == rows[-1]["_step"]
    assert all(isinstance(row["train_loss"], float) and math.isfinite(row["train_loss"]) for row in train_rows)
    assert run["summary"]["val_loss"] == rows[-1]["val_loss"]


def test_a_csv_logger_beside_it_gets_the_same_points(fitted: tuple[ServiceProcess, dict[str, str], Path,
                                                                   subprocess.CompletedProcess[str]]) -> None:
    service, runs, workdir, _ = fitted
    with (workdir / "csv" / "version_0" / "metrics.csv").open() as f:
        logged = [(int(row["step"]), float(row["train_loss"])) for row in csv.DictReader(f) if row["train_loss"]]
    ours = [(row["trainer/global_step"], row["train_loss"]) for row in history(service, runs["fit"])
            if "train_loss" in row]
    assert logged == ours and len(ours) == 8


def test_nan_loss_fires_the_rule(fitted: tuple[ServiceProcess, dict[str, str], Path,
                                             subprocess.CompletedProcess[str]]) -> None:
    service, runs, _, _ = fitted
    alerts = rule_alerts(service, runs["nan"])
    first = min(alerts, key=lambda alert: alert["step"])
    assert first["metric"] == "train_loss" and first["step"] == 2  # global steps 0 and 1 came first, finite
    rows = history(service, runs["nan"])
    # Non-finite values come back as JSON strings.
    assert [row["trainer/global_step"] for row in rows if row.get("train_loss") == "NaN"] == list(range(2, 8))
    assert ended(service, runs["nan"], "finished")["config"]["nan_at"] == 2


def test_an_exception_in_training_fails_the_run(fitted: tuple[ServiceProcess, dict[str, str], Path,
                                                              subprocess.CompletedProcess[str]]) -> None:
    service, runs, _, result = fitted
    assert result.returncode == 1 and "ValueError: bad batch at step 3" in result.stderr
    run = ended(service, runs["fail"], "failed")
    assert run["failure_reason"] == "ValueError: bad batch at step 3"
    assert "Traceback (most recent call last)" in run["console_tail"]  # added by the logger: Lightning had it
    assert [row["trainer/global_step"] for row in history(service, runs["fail"])] == [0, 1, 2]
    assert get_run(service, runs["fit"])["state"] == "finished"  # the earlier runs are untouched
