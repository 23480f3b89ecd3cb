"""``RunwatchCallback``: a Transformers ``TrainerCallback`` in place of ``report_to="wandb"``'s ``WandbCallback``.

::

    from runwatch.integration.transformers import RunwatchCallback
    trainer = Trainer(model=model, args=TrainingArguments(..., report_to="none"), callbacks=[RunwatchCallback()])

What it does, as ``WandbCallback`` does:

- on train begin (rank 0): the run is the active one if the script called ``runwatch.init()`` first, else
  one it starts: project ``$RUNWATCH_PROJECT`` (then ``$WANDB_PROJECT``, then ``huggingface``), named after
  ``TrainingArguments.run_name`` (a hyperparameter-search trial: named after the trial, grouped by
  ``run_name``); the constructor's keywords go to ``runwatch.init``. Its config gets the model's config and
  ``TrainingArguments.to_dict()`` (nested values flattened to dotted keys; secrets such as ``hub_token``
  left out, not masked) and ``model/num_parameters``. ``RUNWATCH_WATCH`` (or ``WANDB_WATCH``) set to
  ``gradients``, ``parameters`` or ``all`` turns on ``run.watch(model)``;
- ``on_log``: one committed row per call, keys as W&B rewrites them (``eval_loss`` -> ``eval/loss``,
  ``test_…`` -> ``test/…``, everything else ``train/…``: ``train/loss``, ``train/learning_rate``,
  ``train/grad_norm``, ``train/epoch``) plus ``train/global_step`` = the Trainer's ``global_step``; the
  end-of-training numbers (``train_runtime``, ``train_samples_per_second``, ``train_steps_per_second``,
  ``train_loss``, ``total_flos``) go to the summary only. ``on_predict`` logs the prediction metrics;
- on train end: a run the callback started is finished; a run the script started is left to the script.
  ``trainer.evaluate()`` after ``train()`` goes on in the same run (resumed). A ``train()`` that raises ends
  the run ``failed`` with the exception when it reaches the top of the script (the SDK's excepthook), as
  for any uncaught exception; a script that catches it and carries on ends its run ``finished`` at exit.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from typing import Any

from ..run import Run
from ..settings import env_value
from ._common import RunOwner, flat_config, missing_framework

try:
    from transformers import TrainerCallback
except ImportError as _transformers_error:
    raise missing_framework("transformers", "transformers", _transformers_error) from None

__all__ = ["RunwatchCallback"]

DEFAULT_PROJECT = "huggingface"

# Logged once at the end of training; W&B keeps them out of the history (they are no series).
SUMMARY_ONLY = frozenset({"train_runtime", "train_samples_per_second", "train_steps_per_second", "train_loss",
                          "total_flos"})

# TrainingArguments.to_dict() masks these as "<HUB_TOKEN>"; they are left out of the config altogether.
_SECRET = re.compile(r"(^|_)(token|secret|password|passwd|api_key|apikey|credentials?)$", re.IGNORECASE)


def rewrite_logs(logs: Mapping[str, Any]) -> dict[str, Any]:
    """W&B's key names: ``eval_x`` -> ``eval/x``, ``test_x`` -> ``test/x``, anything else ``train/x``."""
    out: dict[str, Any] = {}
    for key, value in logs.items():
        if key.startswith("eval_"):
            out["eval/" + key[len("eval_"):]] = value
        elif key.startswith("test_"):
            out["test/" + key[len("test_"):]] = value
        else:
            out["train/" + key] = value
    return out


def is_secret(key: str) -> bool:
    return bool(_SECRET.search(key))


class RunwatchCallback(TrainerCallback):  # type: ignore[misc, unused-ignore]
    """Log a Transformers ``Trainer``'s arguments, model config and metrics to a Runwatch run."""

    def __init__(self, **init_kwargs: Any) -> None:
        """``init_kwargs`` go to ``runwatch.init`` when the callback starts the run (``project``, ``name``,
        ``tags``, ``group``, ...)."""
        self._owner = RunOwner(init_kwargs)
        self._initialized = False

    @property
    def run(self) -> Run | None:
        """The run it logs (or last logged) to; None before training starts, and on other ranks."""
        return self._owner.run

    def setup(self, args: Any, state: Any, model: Any = None, **kwargs: Any) -> None:
        """Find or start the run and put the arguments and model config in it (rank 0 only)."""
        self._initialized = True
        if not state.is_world_process_zero:
            return
        named: dict[str, Any] = {"project": env_value("PROJECT") or DEFAULT_PROJECT}
        if state.trial_name is not None:
            named.update(name=state.trial_name, group=args.run_name or args.output_dir)
        elif args.run_name and args.run_name != args.output_dir:
            named["name"] = args.run_name
        run = self._owner.get(**named)

        config: dict[str, Any] = {}
        model_config = getattr(model, "config", None)
        if model_config is not None:
            config.update(flat_config(model_config if isinstance(model_config, Mapping) else model_config.to_dict()))
        config.update(flat_config(args.to_dict(), drop=is_secret))
        run.config.update(config, allow_val_change=True)
        run.define_metric("train/global_step")
        run.define_metric("*", step_metric="train/global_step")
        try:
            run.config.update({"model/num_parameters": model.num_parameters()}, allow_val_change=True)
        except AttributeError:
            pass
        watch = os.environ.get("RUNWATCH_WATCH") or os.environ.get("WANDB_WATCH") or "false"
        if watch in ("gradients", "parameters", "all") and model is not None:
            run.watch(model, log=watch, log_freq=max(100, state.logging_steps))

    # -- TrainerCallback -------------------------------------------------------------------------------
    def on_train_begin(self, args: Any, state: Any, control: Any, model: Any = None, **kwargs: Any) -> None:
        if state.is_hyper_param_search:  # each trial is a run of its own
            self._owner.finish()
            self._owner.run = None
            self._initialized = False
        if not self._initialized or self._owner.started() is None:
            self.setup(args, state, model, **kwargs)

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.is_world_process_zero:
            self._owner.finish()

    def on_log(self, args: Any, state: Any, control: Any, model: Any = None, logs: Mapping[str, Any] | None = None,
               **kwargs: Any) -> None:
        if not self._initialized:
            self.setup(args, state, model)
        if not state.is_world_process_zero or not logs:
            return
        run = self._owner.get()
        for key, value in logs.items():
            if key in SUMMARY_ONLY:
                run.summary[key] = value
        row = rewrite_logs({k: v for k, v in logs.items() if k not in SUMMARY_ONLY})
        run.log({**row, "train/global_step": state.global_step})

    def on_predict(self, args: Any, state: Any, control: Any, metrics: Mapping[str, Any] | None = None,
                   **kwargs: Any) -> None:
        if not self._initialized:
            self.setup(args, state, kwargs.get("model"))
        if state.is_world_process_zero and metrics:
            self._owner.get().log(rewrite_logs(metrics))
