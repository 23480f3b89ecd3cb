"""Runwatch SDK: stream training metrics and alerts to a self-hosted Runwatch service.

W&B-compatible surface::

    import runwatch
    run = runwatch.init(project="mnist", config={"lr": 0.01})
    runwatch.log({"loss": 0.3, "acc": 0.9})
    runwatch.alert("Low accuracy", "acc < 0.3", level=runwatch.AlertLevel.WARN)
    runwatch.finish()

``runwatch.run`` is the active ``Run`` (None before ``init`` and after ``finish``);
``runwatch.config`` and ``runwatch.summary`` forward to the active run. Every name of wandb's ``__all__``
and what scripts reach through (``wandb.plot``, ``wandb.sklearn``, ``wandb.Artifact``, ...) exists here;
those Runwatch does not support warn once and do nothing (``runwatch.compat``). The heavier ones load on
first use, so ``import runwatch`` stays light.
"""

from __future__ import annotations

import importlib
from typing import Any

from . import _session
from . import watch as _watch_module  # noqa: F401 - imported first, so the name `watch` stays the function
from .alert import AlertLevel
from .api import Api
from .auth import login
from .config import Config
from .errors import ConfigError, Error, UsageError
from .media import Image, Table
from .run import Run
from .settings import Settings

__version__ = "0.1.0"

init = _session.init
log = _session.log
alert = _session.alert
finish = _session.finish
join = _session.finish
teardown = _session.teardown
define_metric = _session.define_metric
watch = _session.watch
unwatch = _session.unwatch
save = _session.save
log_artifact = _session.log_artifact
use_artifact = _session.use_artifact
log_model = _session.log_model
use_model = _session.use_model
link_model = _session.link_model
mark_preempting = _session.mark_preempting
config = _session.ConfigProxy()
summary = _session.SummaryProxy()
run: Run | None = None

# name -> (module, attribute or None for the module itself), imported on first access.
_LAZY: dict[str, tuple[str, str | None]] = {
    "Histogram": (".histogram", "Histogram"),
    "plot": (".plot", None),
    "plot_table": (".plot", "plot_table"),
    "sklearn": (".sklearn", None),
    "Artifact": (".artifacts", "Artifact"),
    "restore": (".files", "restore"),
    **{name: (".compat", name) for name in (
        "Audio", "ArtifactTTL", "Classes", "CommError", "EvalTable", "Graph", "Html", "JoinedTable", "Molecule",
        "Object3D", "Plotly", "Video", "agent", "attach", "box3d", "controller", "require", "setup", "sweep",
        "termerror", "termlog", "termwarn")},
}

__all__ = [
    "AlertLevel", "Api", "Config", "ConfigError", "Error", "Image", "Run", "Settings", "Table", "UsageError",
    "__version__", "alert", "config", "define_metric", "finish", "init", "join", "link_model", "log",
    "log_artifact", "log_model", "login", "mark_preempting", "run", "save", "summary", "teardown", "unwatch",
    "use_artifact", "use_model", "watch", *_LAZY,
]


def __getattr__(name: str) -> Any:
    found = _LAZY.get(name)
    if found is None:
        raise AttributeError(f"module 'runwatch' has no attribute {name!r}")
    module = importlib.import_module(found[0], __name__)
    value = module if found[1] is None else getattr(module, found[1])
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))
