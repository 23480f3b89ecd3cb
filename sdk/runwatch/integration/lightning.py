"""``RunwatchLogger``: a Lightning logger in place of ``lightning.pytorch.loggers.WandbLogger``.

::

    from runwatch.integration.lightning import RunwatchLogger
    trainer = Trainer(logger=[RunwatchLogger(project="mnist"), CSVLogger("logs")])

What it does, as ``WandbLogger`` does:

- the run: the active one if the script called ``runwatch.init()`` first (or ``experiment=`` names one),
  else one it starts when Lightning first asks for ``logger.experiment`` (``init`` arguments are the
  constructor's: ``name``, ``project`` (default ``$RUNWATCH_PROJECT``, then ``lightning_logs``), ``id`` or
  ``version``, ``offline``, ``save_dir``/``dir``, and any other ``runwatch.init`` keyword);
- ``log_hyperparams``: the LightningModule's ``hparams`` (dict or ``Namespace``) into ``run.config``, nested
  values flattened to dotted keys, functions and classes by name, later values replacing earlier ones;
- ``log_metrics(metrics, step)``: one committed row per call, the trainer's step as the metric
  ``trainer/global_step`` (W&B's x-axis for Lightning), so no call is ever dropped: Lightning logs several
  times at one global step (train, then validation) and starts again at 0 in a new ``Trainer``;
- ``finalize(status)``: ``success`` finishes the run it started, ``failed`` ends it ``failed`` with the
  exception (type, message, traceback in the console tail), an interrupt (Ctrl-C, or the service's stop
  request) ``killed``/``stopped``; a run the script started is left to the script (the SDK's exit hooks
  record how the process ended). Used again after that (``trainer.test()`` after ``fit``), the logger goes
  on in the same run (same id, resumed). SLURM's requeue (``finalize("finished")``) marks the run as
  preempting instead: it is resumed by its id when the job comes back;
- ``name`` is the project and ``version`` the run id (Lightning's checkpoint folder ``<project>/<run id>``);
  ``experiment`` is the ``runwatch.Run``;
- only global rank 0 logs; other ranks get Lightning's dummy experiment.

``lightning`` (2.x) is used when installed, else ``pytorch_lightning`` (2.x).
"""

from __future__ import annotations

import os
import sys
from argparse import Namespace
from collections.abc import Callable, Mapping
from typing import Any, TypeVar, cast

from .._log import log_once
from ..run import Run
from ..settings import env_value
from ._common import RunOwner, fail_run, flat_config, missing_framework

try:
    from lightning.fabric.loggers.logger import rank_zero_experiment
    from lightning.fabric.utilities.rank_zero import rank_zero_only
    from lightning.pytorch.loggers.logger import Logger
except ImportError as _lightning_error:
    try:  # the older, separate distribution: the same classes under other names
        from lightning_fabric.loggers.logger import rank_zero_experiment  # type: ignore[no-redef, unused-ignore]
        from lightning_fabric.utilities.rank_zero import rank_zero_only  # type: ignore[no-redef, unused-ignore]
        from pytorch_lightning.loggers.logger import Logger  # type: ignore[assignment, unused-ignore]
    except ImportError:
        raise missing_framework("lightning", "lightning (or pytorch_lightning) 2.x", _lightning_error) from None

__all__ = ["RunwatchLogger"]

DEFAULT_PROJECT = "lightning_logs"

_F = TypeVar("_F", bound=Callable[..., Any])


def _rank_zero(fn: _F) -> _F:
    """Lightning's ``rank_zero_only``: the method does nothing on other global ranks."""
    return cast(_F, rank_zero_only(fn))


def _rank_zero_experiment(fn: _F) -> _F:
    """Lightning's ``rank_zero_experiment``: other ranks get a dummy experiment that accepts every call."""
    return cast(_F, rank_zero_experiment(fn))


class RunwatchLogger(Logger):  # type: ignore[misc, unused-ignore]
    """Log a Lightning ``Trainer``'s hyperparameters and metrics to a Runwatch run (``WandbLogger``'s stand-in)."""

    LOGGER_JOIN_CHAR = "-"

    def __init__(
        self,
        name: str | None = None,
        save_dir: str | os.PathLike[str] | None = None,
        version: str | None = None,
        offline: bool = False,
        dir: str | os.PathLike[str] | None = None,
        id: str | None = None,
        anonymous: bool | None = None,
        project: str | None = None,
        log_model: bool | str = False,
        experiment: Run | None = None,
        prefix: str = "",
        checkpoint_name: str | None = None,
        **init_kwargs: Any,
    ) -> None:
        super().__init__()
        if log_model:
            log_once("lightning-log-model", "runwatch: RunwatchLogger(log_model=%r) is not supported: checkpoints "
                     "are not uploaded (call run.log_model(path) for the ones to keep)", log_model)
        self._prefix = prefix
        root = save_dir if save_dir is not None else dir
        kwargs: dict[str, Any] = {
            "name": name,
            "project": project or env_value("PROJECT") or DEFAULT_PROJECT,
            "id": version or id,
            **init_kwargs,
        }
        if root is not None:
            kwargs["dir"] = os.fspath(root)
        if offline:
            kwargs["mode"] = "offline"
        if kwargs["id"] is not None:  # as WandbLogger: a given id continues that run if it exists
            kwargs.setdefault("resume", "allow")
        self._owner = RunOwner({k: v for k, v in kwargs.items() if v is not None}, experiment)
        self._project: str = kwargs["project"]
        self._id: str | None = kwargs["id"]
        self._save_dir = kwargs.get("dir")

    # -- what Lightning asks of a logger ---------------------------------------------------------------
    @property
    @_rank_zero_experiment
    def experiment(self) -> Run:
        """The ``runwatch.Run`` (started on first use); ``logger.experiment.log(...)``, ``.alert(...)`` work."""
        run = self._owner.get()
        self._id = run.id
        return run

    @property
    def name(self) -> str | None:
        """The project (as ``WandbLogger``): Lightning names checkpoint folders ``<name>/<version>``."""
        run = self._owner.started()
        return run.project if run is not None else self._project

    @property
    def version(self) -> str | None:
        """The run id (the given one until the run exists)."""
        run = self._owner.started()
        return run.id if run is not None else self._id

    @property
    def save_dir(self) -> str | None:
        return self._save_dir

    @_rank_zero
    def log_hyperparams(self, params: dict[str, Any] | Namespace, *args: Any, **kwargs: Any) -> None:
        self.experiment.config.update(flat_config(params), allow_val_change=True)

    @_rank_zero
    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        row = {f"{self._prefix}{self.LOGGER_JOIN_CHAR}{k}" if self._prefix else k: v for k, v in metrics.items()}
        if step is not None:
            row["trainer/global_step"] = step
        self.experiment.log(row)

    @_rank_zero
    def finalize(self, status: str) -> None:
        if status == "success":
            self._owner.finish()
        elif status == "finished":  # SLURM requeue: the job is about to be stopped and started again
            run = self._owner.started()
            if run is not None:
                run.mark_preempting()
        else:
            exc = sys.exc_info()[1]  # Lightning finalizes inside its `except` around fit/validate/test
            run = self._owner.started()
            if isinstance(exc, KeyboardInterrupt) and run is not None:
                # Lightning answers an interrupt with sys.exit(1), which no excepthook sees: record it now,
                # in a run the script started too.
                fail_run(run, exc, "interrupted")
            else:
                self._owner.fail(exc, f"Lightning ended the run: {status}")

    def __getstate__(self) -> dict[str, Any]:
        # Strategies that spawn processes pickle the logger: the Run (threads, sockets) stays behind, and rank
        # 0 of the new process continues the same run by its id.
        state = self.__dict__.copy()
        owner = RunOwner(self._owner.init_kwargs)
        run = self._owner.started()
        if run is not None:
            owner.init_kwargs.update(id=run.id, project=run.project, name=run.name, resume="allow")
        state["_owner"] = owner
        return state
