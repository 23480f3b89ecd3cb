"""Stopping a run on request: a rule's ``actions: [stop_run]``, ``alerts runs stop``, the API, the dashboard.

A stop is a request stored on the run (``Store.request_stop``). The run's SDK learns of it from the
answer to its next records POST or heartbeat and interrupts the training loop (or calls the script's
``init(on_stop=...)``); whatever the process then reports, the run ends ``stopped`` with the request's
``by`` and ``reason`` as its failure reason (``Store.end_run``). Asking twice changes nothing: the first
request stands. A run that has ended is not stopped. A run uploaded after the fact by ``runwatch sync``
(an offline run) has no process to stop: the engine gives its alerts no action (``RuleEngine._fire``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from alerts.ingest.runs import RunIngest
from alerts.model import Alert, AlertStatus, Run, stop_text
from alerts.storage.base import Store

log = logging.getLogger(__name__)

_MAX_REASON = 2_000


@dataclass(frozen=True)
class StopOutcome:
    requested: bool
    """This call asked the run to stop (False: it had been asked before, or it is not running)."""
    request: dict[str, Any] | None
    """The request in force; None when the run is not running (nothing to stop)."""


class RunStopper:
    def __init__(self, store: Store, runs: RunIngest, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._runs = runs
        self._clock = clock

    async def stop(self, run: Run, *, by: str, reason: str, rule: str | None = None,
                   step: int | None = None) -> StopOutcome:
        """Ask ``run`` to stop. ``run`` is updated in place (the records route answers from it)."""
        if run.state.is_terminal:
            return StopOutcome(False, None)
        if run.stop_request is not None:
            return StopOutcome(False, run.stop_request)
        now = self._clock()
        request = {"by": by, "rule": rule, "reason": reason[:_MAX_REASON], "step": step, "at": now}
        stored = await self._store.request_stop(run.pk, request, now)
        self._runs.forget(run)  # its cached copy, if another object, is read again with the request
        if stored is None:
            return StopOutcome(False, None)
        run.stop_request = stored
        if stored is request:
            log.warning("run %s/%s %r: stop requested %s", run.project, run.id, run.name, stop_text(request))
        return StopOutcome(stored is request, stored)

    async def on_alerts(self, alerts: list[Alert], run: Run | None) -> None:
        """The action stage in front of dispatch: a firing alert whose rule says ``stop_run`` stops its run
        before the batch that fired it is answered, so the SDK learns of it from that very answer."""
        if run is None:
            return
        for alert in alerts:
            if alert.status is AlertStatus.FIRING and "stop_run" in alert.actions:
                await self.stop(run, by=f"rule {alert.rule}", rule=alert.rule, reason=_reason(alert), step=alert.step)

    async def pick_up(self) -> None:
        """Scheduled: requests another process stored (``alerts runs stop`` writes the database directly)
        reach the runs this process holds in memory."""
        self._runs.learn_stop_requests(await self._store.stop_requests())


def _reason(alert: Alert) -> str:
    if alert.metric is None or alert.value is None:
        return alert.title
    value = alert.value
    shown = str(value) if not math.isfinite(value) else f"{value:.6g}"
    return f"{alert.metric} = {shown}" + (f" (threshold {alert.threshold:g})" if alert.threshold is not None else "")
