"""Resuming a run (W&B's ``init(resume=..., id=...)``): learn where it ended before the first ``log``.

W&B's ``init`` blocks until the server has told it the resumed run's step, config and summary; so does
ours, once, on the caller's thread during ``init`` (never in ``log``). The answer decides:

- ``resume="must"`` and the run does not exist: ``runwatch.Error`` (W&B raises too);
- ``resume="never"`` and the run exists: ``runwatch.Error``;
- the run exists (``allow``/``must``/``True``): the step counter goes on after its last stored step, its
  config and summary are carried over (the new ``init(config=...)`` updates the old config), and the
  service marks a run that had ended as running again, with a ``resumed`` run event;
- the service cannot be reached within ``init_timeout``: the run starts, a warning says that its steps
  start at 0 again (the service keeps the newest value of a step that is logged twice).
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

from ._log import log_once
from .errors import Error
from .transport import Transport

__all__ = ["ResumedRun", "fetch_resumed_run"]


@dataclasses.dataclass
class ResumedRun:
    """What the service holds of a run that is being resumed."""

    name: str | None
    next_step: int
    config: dict[str, Any]
    summary: dict[str, Any]
    state: str | None


def fetch_resumed_run(
    transport: Transport,
    project: str,
    run_id: str,
    resume: str,
    *,
    timeout: float,
    monotonic: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> ResumedRun | None:
    """The stored run, None when it does not exist or cannot be learnt; raises ``Error`` as the module says."""
    path = f"/api/v1/runs/{quote(project, safe='')}/{quote(run_id, safe='')}"
    deadline = monotonic() + max(0.0, timeout)
    delay = 0.2
    while True:
        res = transport.request("GET", path)
        if res.outcome == "ok" and isinstance(res.data, dict):
            break
        if res.status == 404:
            if resume == "must":
                raise Error(f"runwatch.init: run {project}/{run_id} does not exist, and resume='must' needs an "
                            "existing run (use resume='allow' to start it when it is missing)")
            return None
        if res.outcome == "permanent" or monotonic() + delay > deadline:
            log_once("resume-unknown",
                     "runwatch: could not learn where run %s/%s ended (%s); it resumes with its steps "
                     "starting at 0 again, so steps the service already has are overwritten",
                     project, run_id, res.message or "no answer", level=logging.WARNING)
            return None
        sleep(delay)
        delay = min(delay * 2, 2.0)
    data = res.data
    if resume == "never":
        raise Error(f"runwatch.init: run {project}/{run_id} already exists, and resume='never' refuses to "
                    "continue it (pass another id, or resume='allow')")
    last_step = data.get("last_step")
    config = data.get("config")
    summary = data.get("summary")
    name = data.get("name")
    state = data.get("state")
    return ResumedRun(
        name=name if isinstance(name, str) else None,
        next_step=last_step + 1 if isinstance(last_step, int) and last_step >= 0 else 0,
        config=dict(config) if isinstance(config, dict) else {},
        summary=dict(summary) if isinstance(summary, dict) else {},
        state=state if isinstance(state, str) else None,
    )
