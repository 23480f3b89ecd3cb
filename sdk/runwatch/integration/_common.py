"""What the integrations share: the run they log to, how it ends, config cleaning, the missing-extra error."""

from __future__ import annotations

import argparse
import inspect
import signal
import traceback
from collections.abc import Callable, Mapping
from typing import Any

from .. import _session, lifecycle
from ..config import as_mapping
from ..run import Run

__all__ = ["RunOwner", "fail_run", "flat_config", "missing_framework"]


def missing_framework(extra: str, package: str, error: ImportError) -> ImportError:
    """The error a ``runwatch.integration.<extra>`` import raises when its framework cannot be imported."""
    return ImportError(
        f"runwatch.integration.{extra} needs {package}, which could not be imported ({error}); install it with "
        f'pip install "runwatch[{extra}]"'
    )


class RunOwner:
    """The run an integration logs to, and whether the integration may end it (W&B's rule).

    A run that is active when the integration first needs one is the user's (``runwatch.init`` came first,
    or it was passed in): it is logged to and never finished here. Otherwise the integration starts its own
    with ``init_kwargs``, ends it with the training's outcome (``finish``/``fail``), and if it is used again
    after that (``trainer.test()`` after ``fit``, ``evaluate()`` after ``train()``) continues the same run
    (same id, ``resume="allow"``) rather than scattering one fit over several runs.
    """

    def __init__(self, init_kwargs: Mapping[str, Any], run: Run | None = None) -> None:
        self.init_kwargs = dict(init_kwargs)
        self.run = run
        self.owned = False

    def get(self, **defaults: Any) -> Run:
        """The run to log to, started if need be with ``defaults`` under the integration's ``init_kwargs``."""
        run = self.run
        if run is not None and not run.finished:
            return run
        active = _session.active_run()
        if active is not None:
            self.run, self.owned = active, False
            return active
        kwargs = {**defaults, **self.init_kwargs}
        if run is not None and self.owned:
            kwargs.update(id=run.id, project=run.project, name=run.name, resume="allow")
        self.run = _session.init(**kwargs)
        self.owned = True
        return self.run

    def started(self) -> Run | None:
        """The run, if one was started or found and it is still going (no new run is made)."""
        run = self.run
        return run if run is not None and not run.finished else None

    def finish(self) -> None:
        """End the integration's own run as ``finished`` (a user's run is left alone)."""
        run = self.started()
        if run is not None and self.owned:
            run.finish()

    def fail(self, exc: BaseException | None, reason: str) -> None:
        """End the integration's own run as ``failed`` with ``exc`` (the type and message, its traceback in the
        console tail) or, without one, ``reason``; a ``KeyboardInterrupt`` (Ctrl-C, or a stop request from the
        service) ends it ``killed`` by SIGINT, or ``stopped`` when the service asked for it."""
        run = self.started()
        if run is None or not self.owned:
            return
        fail_run(run, exc, reason)


def fail_run(run: Run, exc: BaseException | None, reason: str) -> None:
    """``run`` failed (or was interrupted) with ``exc`` while a framework was handling it: the same record the
    SDK's excepthook makes for an uncaught exception, made before the framework decides what comes next."""
    if isinstance(exc, KeyboardInterrupt):
        run._finish_killed("SIGINT", signal.SIGINT)
        return
    tail = lifecycle.console_tail()
    if exc is not None:
        message = str(exc)
        reason = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
        # The traceback is printed only when the exception reaches the top, after this: add it here.
        printed = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).rstrip("\n")
        tail = "\n".join(f"{tail}\n{printed}".strip("\n").split("\n")[-lifecycle.TAIL_LINES:])
    run._finalize("failed", 1, reason, tail, run.settings.finish_timeout, None)


def flat_config(params: Any, *, drop: Callable[[str], bool] | None = None) -> dict[str, Any]:
    """Hyperparameters as run config: a dict, Mapping or Namespace-like object; nested mappings flattened to
    dotted keys (``{"optim": {"lr": 0.1}}`` -> ``"optim.lr"``, the keys W&B shows and rules' ``where: config``
    match); functions and classes by their name (as Lightning's loggers do). ``drop(key)`` leaves a key out
    (secrets), at any depth."""
    out: dict[str, Any] = {}

    def walk(prefix: str, mapping: Mapping[Any, Any]) -> None:
        for key, value in mapping.items():
            if drop is not None and drop(str(key)):
                continue
            name = f"{prefix}{key}"
            if isinstance(value, Mapping) and value:
                walk(f"{name}.", value)
            elif isinstance(value, argparse.Namespace):
                walk(f"{name}.", vars(value))
            elif inspect.isclass(value) or inspect.isroutine(value):
                out[name] = getattr(value, "__qualname__", None) or getattr(value, "__name__", repr(value))
            else:
                out[name] = value

    walk("", as_mapping(params))
    return out
