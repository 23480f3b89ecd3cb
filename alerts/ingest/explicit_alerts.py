"""Explicit ``alert(title, text)`` calls from training code: throttled, stored, handed to notify.

Each call that passes its ``wait_duration`` window is a new alert (an event: delivered once, never
repeated, never resolved). Calls inside the window are counted; the count travels with the next alert.
The window is measured on the alert's own timestamp, so alerts raised offline and synced later are
throttled as they happened.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from alerts.model import Alert, AlertSource, AlertStatus, Run, Severity, fingerprint
from alerts.storage.base import AlertCall, Store

AlertSink = Callable[[list[Alert], Run], Awaitable[object]]


@dataclass
class AlertResult:
    id: str
    status: str  # created | suppressed | duplicate
    alert_id: str | None


class ExplicitAlerts:
    def __init__(self, store: Store, sink: AlertSink, *, clock: Callable[[], float] = time.time,
                 new_id: Callable[[], str] = lambda: str(uuid.uuid4())) -> None:
        self._store = store
        self._sink = sink
        self._clock = clock
        self._new_id = new_id

    async def submit(self, run: Run, calls: list[dict[str, Any]]) -> list[AlertResult]:
        """Store a batch of calls in one transaction, then hand the created alerts to notify.

        Results come back in the order of ``calls``; throttling runs in timestamp order."""
        batch = [AlertCall(client_id=call["id"], title=call["title"], at=call["timestamp"],
                           wait_duration=call["wait_duration"], request=call) for call in calls]
        in_time_order = sorted(batch, key=lambda c: c.at)
        outcomes = await self._store.add_explicit_alerts(
            run.project, run.id, in_time_order, lambda call, suppressed: self._new_alert(run, call.request, suppressed))
        created = [outcome.alert for outcome in outcomes if outcome.alert is not None]
        if created:
            await self._sink(created, run)
        by_call = {id(outcome.call): outcome for outcome in outcomes}
        return [AlertResult(call.client_id, by_call[id(call)].status, by_call[id(call)].alert_id) for call in batch]

    def _new_alert(self, run: Run, call: dict[str, Any], suppressed: int) -> Alert:
        severity = Severity(call["level"])
        labels = {"alertname": "sdk", "source": AlertSource.SDK.value, "severity": severity.value,
                  "project": run.project, "run": run.id, "run_name": run.name}
        metric = call.get("chart")
        if metric is not None:
            # SPEC §6: an alert with a metric has the label, so routes and silences on `metric` see it.
            # Throttling stays per title and the dispatcher keys events by id: only the label set and
            # fingerprint differ from a call without a chart.
            labels["metric"] = metric
        return Alert(
            id=self._new_id(), fingerprint=fingerprint({**labels, "title": call["title"]}),
            source=AlertSource.SDK, project=run.project, title=call["title"], text=call["text"],
            severity=severity, labels=labels, status=AlertStatus.FIRING, starts_at=call["timestamp"],
            run_pk=run.pk, client_id=call["id"], metric=metric, step=call.get("step"), suppressed_count=suppressed,
            delayed=bool(call.get("delayed")), created_at=self._clock(),
        )
