"""The process-wide active run behind ``runwatch.init/log/alert/finish/config/summary/run``."""

from __future__ import annotations

import os
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from typing import Any

from ._log import quieten
from .config import as_mapping, config_files
from .errors import Error, UsageError
from .names import generate_id
from .run import Run
from .settings import Settings, env_value, resolve_settings
from .transport import Transport

__all__ = ["ConfigProxy", "SummaryProxy", "active_run", "init"]

_lock = threading.RLock()
_active: Run | None = None
_last: Run | None = None

DEFAULT_PROJECT = "uncategorized"


def active_run() -> Run | None:
    return _active


def _require(what: str) -> Run:
    run = _active
    if run is not None:
        return run
    if _last is not None and _last.finished:
        raise UsageError(
            f"runwatch.{what}() was called after the run finished; call runwatch.init() to start a new run"
        )
    raise Error(f"runwatch.{what}() needs an active run: call runwatch.init() first")


def _publish(run: Run | None) -> None:
    module = sys.modules.get("runwatch")
    if module is not None:
        module.run = run  # type: ignore[attr-defined]


def init(
    project: str | None = None,
    name: str | None = None,
    config: Any = None,
    tags: list[str] | tuple[str, ...] | None = None,
    notes: str | None = None,
    group: str | None = None,
    job_type: str | None = None,
    id: str | None = None,
    mode: str | None = None,
    dir: str | os.PathLike[str] | None = None,
    resume: str | bool | None = None,
    *,
    settings: Settings | Mapping[str, Any] | None = None,
    reinit: bool | None = None,
    on_stop: Callable[[dict[str, Any]], Any] | None = None,
    clock: Callable[[], float] = time.time,
    new_uuid: Callable[[], str] = lambda: str(uuid.uuid4()),
    transport_factory: Callable[[], Transport] | None = None,
    **unknown: Any,
) -> Run:
    """Start a run (W&B ``wandb.init`` signature) and make it the active one.

    A run that is still active is finished first. ``mode``: ``online`` (default), ``offline`` (spool
    only; upload later with ``runwatch sync``) or ``disabled`` (every call accepted, nothing done).
    ``settings`` overrides fields of ``runwatch.settings.Settings`` (e.g. ``finish_timeout``,
    ``max_queue_bytes``, ``system_metrics``, ``disable_git``). ``on_stop(request)`` is called (on the
    SDK's sender thread) when the service asks the run to stop (a rule's ``stop_run``, ``alerts runs
    stop``, the dashboard); without it the main thread gets ``KeyboardInterrupt`` as on Ctrl-C. Either way
    the run ends ``stopped``. ``clock``/``new_uuid``/``transport_factory`` are seams for tests.
    """
    global _active, _last
    if unknown:
        # W&B has many more init arguments; accept them so existing scripts run, and say so once.
        from ._log import log_once

        log_once("init-kwargs", "runwatch.init ignores unsupported arguments: %s", sorted(unknown))
    if config is not None and not isinstance(config, Mapping) and not hasattr(config, "__dict__"):
        raise TypeError(f"config must be a dict or an argparse.Namespace-like object, got {type(config).__name__}")
    if id is not None and (not isinstance(id, str) or not id or "/" in id):
        raise ValueError(f"id must be a non-empty str without '/', got {id!r}")
    resolved = resolve_settings(settings, project=project, mode=mode, dir=dir)
    # What the call left out comes from W&B's run_* settings, then from what a launcher or job script set
    # in the environment (RUNWATCH_*, else W&B's WANDB_*), as in wandb.init.
    given = resolved.init_args
    name = name or given.get("name") or env_value("NAME")
    notes = notes if notes is not None else given.get("notes", env_value("NOTES"))
    group = group or given.get("group") or env_value("RUN_GROUP")
    job_type = job_type or given.get("job_type") or env_value("JOB_TYPE")
    if tags is None and given.get("tags"):
        tags = list(given["tags"])
    if tags is None and env_value("TAGS"):
        tags = [tag.strip() for tag in str(env_value("TAGS")).split(",") if tag.strip()]
    id = id or given.get("id") or env_value("RUN_ID")
    if resume is None:
        resume = given.get("resume")
    if resume is None and env_value("RESUME"):
        found = str(env_value("RESUME")).strip().lower()
        resume = "allow" if found in ("auto", "true", "1") else found
    elif resume == "auto":
        resume = "allow"
    from_files = config_files(env_value("CONFIG_PATHS"))
    if from_files:  # config-defaults.yaml and CONFIG_PATHS under what the call passes
        config = {**from_files, **as_mapping(config)}
    if resolved.silent:
        quieten()
    with _lock:
        if _active is not None:
            _active.finish()
        run = Run(
            settings=resolved,
            id=id or generate_id(),
            name=name,
            project=resolved.project or DEFAULT_PROJECT,
            config=config,
            tags=list(tags) if tags else [],
            notes=notes,
            group=group,
            job_type=job_type,
            resume=resume,
            clock=clock,
            new_uuid=new_uuid,
            transport_factory=transport_factory,
            on_stop=on_stop,
        )
        _active = run
        _last = run
        _publish(run)
        return run


def _run_finished(run: Run) -> None:
    global _active
    with _lock:
        if _active is run:
            _active = None
            _publish(None)


def log(data: Mapping[str, Any] | None = None, step: int | None = None, commit: bool | None = None) -> None:
    """``run.log`` on the active run."""
    run = _active
    if run is None:
        run = _require("log")
    run.log(data, step, commit)


def alert(title: str, text: str, level: Any = None, wait_duration: Any = None, *, chart: str | None = None) -> None:
    """``run.alert`` on the active run."""
    _require("alert").alert(title, text, level=level, wait_duration=wait_duration, chart=chart)


def finish(exit_code: int | None = None, quiet: bool | None = None) -> None:
    """``run.finish`` on the active run (a no-op once it has finished)."""
    run = _active
    if run is None:
        if _last is not None and _last.finished:
            return
        _require("finish")
        return
    run.finish(exit_code=exit_code, quiet=quiet)


def define_metric(name: str, step_metric: str | None = None, **kwargs: Any) -> dict[str, Any]:
    """``run.define_metric`` on the active run."""
    return _require("define_metric").define_metric(name, step_metric, **kwargs)


def _on_active_run(method: str) -> Callable[..., Any]:
    """``runwatch.<method>(...)``: ``<active run>.<method>(...)``; before ``init``, the usual error."""

    def call(*args: Any, **kwargs: Any) -> Any:
        return getattr(_require(method), method)(*args, **kwargs)

    call.__name__ = call.__qualname__ = method
    call.__doc__ = f"``run.{method}`` on the active run."
    return call


watch = _on_active_run("watch")
save = _on_active_run("save")
log_artifact = _on_active_run("log_artifact")
use_artifact = _on_active_run("use_artifact")
log_model = _on_active_run("log_model")
use_model = _on_active_run("use_model")
link_model = _on_active_run("link_model")
mark_preempting = _on_active_run("mark_preempting")


def unwatch(models: Any = None) -> None:
    """``run.unwatch`` on the active run (nothing to do without one)."""
    run = _active
    if run is not None:
        run.unwatch(models)


def teardown(exit_code: int | None = None) -> None:
    """``wandb.teardown``: finish the active run, if any."""
    if _active is not None:
        _active.finish(exit_code=exit_code)


def _target(what: str) -> Any:
    run = _active or (_last if _last is not None and _last.finished else None)
    if run is None:
        raise Error(f"runwatch.{what} needs an active run: call runwatch.init() first")
    return getattr(run, what)


class _Proxy:
    """Forwards to ``<active run>.<what>`` so ``runwatch.config.lr`` works after ``init``."""

    _what = ""

    def __getattr__(self, name: str) -> Any:
        return getattr(_target(self._what), name)

    def __setattr__(self, name: str, value: Any) -> None:
        setattr(_target(self._what), name, value)

    def __getitem__(self, key: str) -> Any:
        return _target(self._what)[key]

    def __setitem__(self, key: str, value: Any) -> None:
        _target(self._what)[key] = value

    def __delitem__(self, key: str) -> None:
        del _target(self._what)[key]

    def __contains__(self, key: object) -> bool:
        return key in _target(self._what)

    def __iter__(self) -> Iterator[str]:
        return iter(_target(self._what))

    def __len__(self) -> int:
        return len(_target(self._what))

    def __repr__(self) -> str:
        run = _active
        if run is None:
            return f"<runwatch.{self._what}: no active run>"
        return repr(getattr(run, self._what))


class ConfigProxy(_Proxy):
    """``runwatch.config``: the active run's ``Config``."""

    _what = "config"


class SummaryProxy(_Proxy):
    """``runwatch.summary``: the active run's ``Summary``."""

    _what = "summary"
