"""``RunwatchMetricsLogger``: a Keras 3 callback in place of W&B's ``WandbMetricsLogger``.

::

    import runwatch
    from runwatch.integration.keras import RunwatchMetricsLogger
    runwatch.init(project="mnist")
    model.fit(x, y, epochs=5, callbacks=[RunwatchMetricsLogger(log_freq=10)])

What it logs, as ``WandbMetricsLogger`` does (one committed row per call, to the active run):

- at the end of every epoch: ``epoch/<name>`` for each of Keras' epoch logs (``epoch/loss``,
  ``epoch/val_loss``, compiled metrics), ``epoch/epoch`` (0-based) and ``epoch/learning_rate``;
- with ``log_freq="batch"`` (every batch) or an int ``n``: at the end of every ``n``-th training batch of
  an epoch (batch index 0, n, 2n, ...), ``batch/<name>`` for Keras' batch logs (running means over the
  epoch so far, as Keras reports them), ``batch/batch_step`` and ``batch/learning_rate``. Unlike W&B,
  whose ``batch/batch_step`` adds ``n`` per logged batch, ``batch/batch_step`` is the index of the batch
  counted over the whole fit (``initial_global_step`` + batches before it).

The learning rate is the optimizer's current one (a schedule's value at the optimizer's step). A run must
be active when the callback is made (``runwatch.init()`` first, as W&B asks for ``wandb.init()``); if it
has ended by the time Keras calls back, the callback logs nothing and says so once. Any Keras 3 backend.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .. import _session
from .._log import log_once
from ..errors import Error
from ._common import missing_framework

try:
    import keras
except ImportError as _keras_error:
    raise missing_framework("keras", "keras>=3", _keras_error) from None
if int(str(getattr(keras, "__version__", "0")).split(".")[0]) < 3:
    raise ImportError(f"runwatch.integration.keras needs Keras 3, found keras {keras.__version__}; install it with "
                      'pip install "runwatch[keras]"')

__all__ = ["RunwatchMetricsLogger"]


class RunwatchMetricsLogger(keras.callbacks.Callback):  # type: ignore[misc, unused-ignore]
    """Log Keras' epoch (and optionally batch) metrics and the learning rate to the active Runwatch run."""

    def __init__(self, log_freq: str | int = "epoch", initial_global_step: int = 0, *args: Any,
                 **kwargs: Any) -> None:
        """``log_freq``: ``"epoch"`` (default), ``"batch"`` (every batch too) or an int ``n`` (every ``n``-th
        batch too). ``initial_global_step``: the batches done before (``initial_epoch`` x steps per epoch)
        when resuming a fit."""
        super().__init__(*args, **kwargs)
        if _session.active_run() is None:
            raise Error("RunwatchMetricsLogger needs an active run: call runwatch.init() before creating it")
        if log_freq == "batch":
            log_freq = 1
        if log_freq != "epoch" and (isinstance(log_freq, bool) or not isinstance(log_freq, int) or log_freq < 1):
            raise ValueError(f'log_freq must be "epoch", "batch" or a positive int, got {log_freq!r}')
        self.log_freq: int | None = log_freq if isinstance(log_freq, int) else None
        self.global_step = initial_global_step

    def _log(self, row: dict[str, Any]) -> None:
        run = _session.active_run()
        if run is None:
            log_once("keras-no-run", "runwatch: RunwatchMetricsLogger has no active run to log to (the run was "
                     "finished); Keras' metrics are not logged")
            return
        run.log(row)

    def _learning_rate(self) -> float | None:
        optimizer = getattr(self.model, "optimizer", None)
        rate = getattr(optimizer, "learning_rate", None)
        if rate is None:
            return None
        try:
            if callable(rate) and not hasattr(rate, "shape"):  # a bare schedule
                rate = rate(self.global_step)
            return float(keras.ops.convert_to_numpy(rate))
        except Exception as exc:  # a custom optimizer must not stop training
            log_once("keras-learning-rate", "runwatch: cannot read the learning rate (%s); it is not logged", exc)
            return None

    def on_epoch_end(self, epoch: int, logs: Mapping[str, Any] | None = None) -> None:
        row = {f"epoch/{k}": v for k, v in (logs or {}).items()}
        row["epoch/epoch"] = epoch
        rate = self._learning_rate()
        if rate is not None:
            row["epoch/learning_rate"] = rate
        self._log(row)

    def on_train_batch_end(self, batch: int, logs: Mapping[str, Any] | None = None) -> None:
        step = self.global_step
        self.global_step += 1
        if self.log_freq is None or batch % self.log_freq:
            return
        row = {f"batch/{k}": v for k, v in (logs or {}).items()}
        row["batch/batch_step"] = step
        rate = self._learning_rate()
        if rate is not None:
            row["batch/learning_rate"] = rate
        self._log(row)
