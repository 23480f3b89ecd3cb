"""``RunwatchMetricsLogger`` in a real Keras 3 fit on the torch backend against a real service."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from tests.e2e.sdk_process import history
from tests.e2e.training_process import ended, needs, rule_alerts, rules_service, train
from tests.support.service import ServiceProcess

pytestmark = needs("torch", "keras")

# 48 training samples in batches of 16: 3 batches an epoch, 3 epochs; every weight is NaN from epoch 2 on.
SCRIPT = """
    import numpy as np
    import keras
    import runwatch
    from runwatch.integration.keras import RunwatchMetricsLogger

    try:
        RunwatchMetricsLogger()
    except runwatch.Error as error:
        print("BEFORE INIT", error, flush=True)

    class Diverge(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                for weight in self.model.trainable_weights:
                    weight.assign(np.full(weight.shape, np.nan, dtype="float32"))

    keras.utils.set_random_seed(0)
    x = np.random.rand(64, 4).astype("float32")
    y = np.random.rand(64, 1).astype("float32")
    run = runwatch.init(name="keras-mlp", config={"hidden": 8})
    print("RUN fit", run.id, flush=True)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="relu"), keras.layers.Dense(1)])
    schedule = keras.optimizers.schedules.ExponentialDecay(0.01, decay_steps=3, decay_rate=0.5)
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=schedule), loss="mse", metrics=["mae"])
    model.fit(x, y, batch_size=16, epochs=3, validation_split=0.25, shuffle=False, verbose=0,
              callbacks=[RunwatchMetricsLogger(log_freq=2), Diverge()])
    print("BACKEND", keras.backend.backend(), flush=True)
    run.finish()
"""


@pytest.fixture(scope="module")
def fitted(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceProcess, str,
                                                                       subprocess.CompletedProcess[str]]]:
    workdir = tmp_path_factory.mktemp("keras")
    with rules_service(workdir / "service") as service:
        result, runs = train(service, workdir / "script", SCRIPT, KERAS_BACKEND="torch")
        assert result.returncode == 0, result.stderr
        yield service, runs["fit"], result


def test_epoch_and_batch_metrics_with_the_learning_rate(fitted: tuple[ServiceProcess, str,
                                                                      subprocess.CompletedProcess[str]]) -> None:
    service, run_id, result = fitted
    assert "BACKEND torch" in result.stdout
    assert "BEFORE INIT RunwatchMetricsLogger needs an active run: call runwatch.init()" in result.stdout
    run = ended(service, run_id, "finished")
    assert run["config"] == {"hidden": 8}
    rows = history(service, run_id)
    assert [row["_step"] for row in rows] == list(range(len(rows)))
    # Batches 0 and 2 of each epoch (log_freq=2), numbered over the whole fit; then the epoch's row.
    assert [row.get("batch/batch_step", "epoch") for row in rows] == [0, 2, "epoch", 3, 5, "epoch", 6, 8, "epoch"]
    epochs = [row for row in rows if "epoch/epoch" in row]
    assert [row["epoch/epoch"] for row in epochs] == [0, 1, 2]
    assert all({"epoch/loss", "epoch/mae", "epoch/val_loss", "epoch/val_mae"} <= set(row) for row in epochs)
    batches = [row for row in rows if "batch/batch_step" in row]
    assert all({"batch/loss", "batch/mae"} <= set(row) for row in batches)
    # The schedule's rate after each logged batch: 0.01 * 0.5 ** (optimizer steps / 3).
    for row in batches:
        assert row["batch/learning_rate"] == pytest.approx(0.01 * 0.5 ** ((row["batch/batch_step"] + 1) / 3))
    assert [row["epoch/learning_rate"] for row in epochs] == pytest.approx([0.005, 0.0025, 0.00125])


def test_nan_loss_fires_the_rule(fitted: tuple[ServiceProcess, str, subprocess.CompletedProcess[str]]) -> None:
    service, run_id, _ = fitted
    rows = history(service, run_id)
    first_nan = next(row for row in rows if row.get("batch/loss") == "NaN")  # non-finite values come back as text
    assert first_nan["batch/batch_step"] == 6  # the first batch of epoch 2
    assert all(isinstance(row[key], float) for row in rows[:first_nan["_step"]] for key in row
               if key.endswith("loss"))
    alerts = rule_alerts(service, run_id)
    assert min(alerts, key=lambda alert: alert["step"])["step"] == first_nan["_step"]
    assert {alert["metric"] for alert in alerts} >= {"batch/loss"}
