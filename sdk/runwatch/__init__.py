"""Runwatch SDK: stream training metrics and alerts to a self-hosted Runwatch service.

W&B-compatible surface::

    import runwatch
    run = runwatch.init(project="mnist", config={"lr": 0.01})
    runwatch.log({"loss": 0.3, "acc": 0.9})
    runwatch.alert("Low accuracy", "acc < 0.3", level=runwatch.AlertLevel.WARN)
    runwatch.finish()

``runwatch.run`` is the active ``Run`` (None before ``init`` and after ``finish``);
``runwatch.config`` and ``runwatch.summary`` forward to the active run.
"""

from __future__ import annotations

from . import _session
from .alert import AlertLevel
from .api import Api
from .auth import login
from .errors import ConfigError, Error, UsageError
from .media import Image, Table
from .run import Run
from .settings import Settings

__version__ = "0.1.0"

__all__ = [
    "AlertLevel",
    "Api",
    "ConfigError",
    "Error",
    "Image",
    "Run",
    "Settings",
    "Table",
    "UsageError",
    "alert",
    "config",
    "define_metric",
    "finish",
    "init",
    "log",
    "login",
    "run",
    "summary",
]

init = _session.init
log = _session.log
alert = _session.alert
finish = _session.finish
define_metric = _session.define_metric
config = _session.ConfigProxy()
summary = _session.SummaryProxy()
run: Run | None = None
