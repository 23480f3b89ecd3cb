"""What a restart puts back into the aggregation groups (``Service._start_dispatching``), in process, on a
real SQLite store: the service's own objects, without its scheduler and delivery loop.

Found by ``tests/faults/test_dispatch_properties.py``: a change still waiting in its group for the
group's next flush when the process stopped was never told after the restart (only firing rule alerts
were restored), though the README promises that "a restart neither re-sends nor forgets". Now the start
tells, from the outbox's record, the resolutions and ``alert()`` events of the last 10 minutes it lacks.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from dataclasses import replace
from pathlib import Path

from alerts.config.settings import AlertsSettings
from alerts.model import Alert, AlertSource, AlertStatus, Severity, fingerprint
from alerts.rules.loader import RuleSet
from alerts.service import Service
from alerts.storage import NewRun, open_store

SETTINGS = {
    "channels": {"hook": {"type": "webhook", "url": "http://127.0.0.1:9/"}},
    # A group that was notified waits group_interval for its next flush: changes meanwhile wait with it.
    "defaults": {"channels": ["hook"], "group_by": ["project", "run"], "group_wait": "0s",
                 "group_interval": "300ms", "repeat_interval": "1h", "send_resolved": True},
}


def rule_alert() -> Alert:
    labels = {"alertname": "loss-high", "rule": "loss-high", "source": "rule", "severity": "warning",
              "project": "vision", "run": "r1", "run_name": "r1", "metric": "loss"}
    return Alert(id=uuid.uuid4().hex, fingerprint=fingerprint(labels), source=AlertSource.RULE, project="vision",
                 title="loss high", text="", severity=Severity.WARNING, labels=labels, status=AlertStatus.FIRING,
                 starts_at=time.time(), rule="loss-high", metric="loss", value=2.0, created_at=time.time())


async def told(service: Service) -> set[tuple[str, str]]:
    """(alert id, status) of every alert the outbox's notifications carry."""
    return {(alert["id"], alert["status"]) for notification in await service.store.list_notifications(limit=1000)
            for alert in notification.message["alerts"]}


async def test_changes_waiting_in_their_groups_are_told_after_a_restart(tmp_path: Path) -> None:
    settings = AlertsSettings.model_validate(SETTINGS)
    url = f"sqlite:///{tmp_path / 'alerts.db'}"
    first = Service(settings, store=open_store(url), ruleset=RuleSet())
    await first.store.open()
    try:
        run, _ = await first.store.upsert_run(NewRun("vision", "r1", "r1", {}, [], None, None, None, time.time(),
                                                     None, None), time.time())
        alert = rule_alert()
        # As the rule engine hands a change over: saved, then submitted (the group is new: flushed at once).
        await first.store.save_alerts([alert])
        await first.dispatcher.submit([alert], run)
        await first.dispatcher.flush_due()
        assert await told(first) == {(alert.id, "firing")}
        # The alert resolves and an alert() call comes: both wait for the group's next flush, which the
        # process does not live to see.
        resolved = replace(alert, status=AlertStatus.RESOLVED, ends_at=time.time(), resolved_reason="condition cleared")
        await first.store.save_alerts([resolved])
        await first.dispatcher.submit([resolved], run)
        (event,) = await first.explicit_alerts.submit(run, [{
            "id": uuid.uuid4().hex, "title": "diverged", "text": "", "level": "warning", "timestamp": time.time(),
            "wait_duration": 0}])
        assert event.alert_id is not None
        await first.dispatcher.flush_due()
        assert await told(first) == {(alert.id, "firing")}, "the group's next flush is not due yet"
    finally:
        await first.stop()

    second = Service(settings, store=open_store(url), ruleset=RuleSet())
    await second.store.open()
    try:
        await second._start_dispatching()  # what Service.start does for one process
        expected = {(alert.id, "firing"), (alert.id, "resolved"), (event.alert_id, "firing")}
        deadline = time.monotonic() + 3.0
        while await told(second) != expected and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        assert await told(second) == expected
    finally:
        await second.stop()
