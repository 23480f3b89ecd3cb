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

AlertSink = Callable[[list[Alert], Run], Awaitable[object]]


@dataclass
class AlertResult:
    id: str
    status: str  # created | suppressed | duplicate
    alert_id: str | None


class ExplicitAlerts:
    def __init__(self, store: Any, sink: AlertSink, *, clock: Callable[[], float] = time.time,
                 new_id: Callable[[], str] = lambda: str(uuid.uuid4())) -> None:
        self._store = store
        self._sink = sink
        self._clock = clock
        self._new_id = new_id

    async def submit(self, run: Run, calls: list[dict[str, Any]]) -> list[AlertResult]:
        results: list[AlertResult] = []
        created: list[Alert] = []
        for call in sorted(calls, key=lambda c: c["timestamp"]):
            existing = await self._store.find_alert_by_client_id(call["id"])
            if existing is not None or any(a.client_id == call["id"] for a in created):
                results.append(AlertResult(call["id"], "duplicate", existing.id if existing else None))
                continue
            suppressed = await self._store.admit_explicit_alert(
                run.project, run.id, call["title"], call["timestamp"], call["wait_duration"])
            if suppressed is None:
                results.append(AlertResult(call["id"], "suppressed", None))
                continue
            alert = self._new_alert(run, call, suppressed)
            await self._store.insert_alerts([alert])
            created.append(alert)
            results.append(AlertResult(call["id"], "created", alert.id))
        if created:
            await self._sink(created, run)
        return results

    def _new_alert(self, run: Run, call: dict[str, Any], suppressed: int) -> Alert:
        severity = Severity(call["level"])
        labels = {"alertname": "sdk", "source": AlertSource.SDK.value, "severity": severity.value,
                  "project": run.project, "run": run.id, "run_name": run.name}
        return Alert(
            id=self._new_id(), fingerprint=fingerprint({**labels, "title": call["title"]}),
            source=AlertSource.SDK, project=run.project, title=call["title"], text=call["text"],
            severity=severity, labels=labels, status=AlertStatus.FIRING, starts_at=call["timestamp"],
            run_pk=run.pk, client_id=call["id"], step=call.get("step"), suppressed_count=suppressed,
            delayed=bool(call.get("delayed")), created_at=self._clock(),
        )
