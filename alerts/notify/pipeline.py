"""The notification pipeline, run on every flush of an aggregation group (SPEC §6, Alertmanager's
``PipelineBuilder``): inhibit → mute times → silences → per channel: dedup (notification log) →
outbox. Each stage is small and takes the alerts the previous one let through.

Every notification is written to the outbox before anything is sent, so a crash between here and the
channel loses nothing; ``notify.delivery`` (the retry stage) picks it up, again after a restart.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, Protocol

from alerts.dispatch.groups import Group, GroupedAlert
from alerts.model import AlertStatus, Notification
from alerts.notify.delivery import Deliverer
from alerts.notify.nflog import LogEntry, NotificationLog, needs_update
from alerts.storage.base import Store

log = logging.getLogger(__name__)


class Muter(Protocol):
    """What the pipeline needs from silences and inhibition: is this alert muted now?"""

    def muted(self, labels: Mapping[str, str], now: float) -> bool: ...


class Pipeline:
    def __init__(self, store: Store, deliverer: Deliverer, nflog: NotificationLog, *,
                 inhibitor: Muter, silencer: Muter, mute_times: Callable[[tuple[str, ...], datetime], bool],
                 clock: Callable[[], float] = time.time,
                 new_id: Callable[[], str] = lambda: str(uuid.uuid4())) -> None:
        self._store = store
        self._deliverer = deliverer
        self._nflog = nflog
        self._inhibitor = inhibitor
        self._silencer = silencer
        self._mute_times = mute_times
        self._clock = clock
        self._new_id = new_id

    async def flush(self, group: Group, now: float) -> None:
        entries = list(group.alerts.values())
        entries = self._unmuted(entries, self._inhibitor, now)
        if group.route.mute_times and self._mute_times(group.route.mute_times, datetime.fromtimestamp(now, UTC)):
            # Quiet hours: nothing is sent now. Firing alerts stay in the group and go out at the first
            # flush after the mute window; events and resolved notices that fall inside it are dropped.
            log.info("group %s muted by %s", group.key, ", ".join(group.route.mute_times))
            return
        entries = self._unmuted(entries, self._silencer, now)
        planned = []
        for channel in group.route.channels:
            plan = await self._dedup(group, channel, entries, now)
            if plan is not None:
                planned.append((channel, *plan))
        if not planned:
            return
        # Outbox first, then the log: a crash in between re-sends (at least once), never loses.
        await self._store.enqueue_notifications([notification for _, notification, _ in planned])
        for channel, _, entry in planned:
            await self._nflog.record(channel, group.key, entry)
        self._deliverer.wake()

    @staticmethod
    def _unmuted(entries: list[GroupedAlert], muter: Muter, now: float) -> list[GroupedAlert]:
        return [entry for entry in entries if not muter.muted(entry.alert.labels, now)]

    async def _dedup(self, group: Group, channel: str, entries: list[GroupedAlert],
                     now: float) -> tuple[Notification, LogEntry] | None:
        route = group.route
        firing = [e for e in entries if e.alert.status is AlertStatus.FIRING]
        resolved = [e for e in entries if e.alert.status is AlertStatus.RESOLVED]
        firing_keys = frozenset(e.key for e in firing)
        resolved_keys = frozenset(e.key for e in resolved)
        entry = await self._nflog.get(channel, group.key)
        if not needs_update(entry, firing_keys, resolved_keys, send_resolved=route.send_resolved,
                            repeat_interval=route.repeat_interval, now=now):
            return None
        shown = firing + (resolved if route.send_resolved else [])
        message: dict[str, Any] = {
            "status": "firing" if firing else "resolved",
            "group_labels": dict(group.labels),
            "alerts": [e.payload for e in shown],
            "truncated_alerts": 0,
        }
        notification = Notification(id=self._new_id(), channel=channel, group_key=group.key, message=message,
                                    next_attempt_at=now, created_at=now)
        return notification, LogEntry(firing_keys, resolved_keys, now)
