"""The notification pipeline, run on the aggregation groups due for a flush (SPEC §6, Alertmanager's
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
from dataclasses import replace
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

    async def flush(self, groups: list[Group], now: float) -> None:
        """Run every stage for the groups due now; their notifications are written in one transaction."""
        candidates: list[tuple[Group, str, list[GroupedAlert]]] = []
        moment = datetime.fromtimestamp(now, UTC)
        for group in groups:
            entries = self._unmuted(list(group.alerts.values()), self._inhibitor, now)
            if group.route.mute_times and self._mute_times(group.route.mute_times, moment):
                # Quiet hours: nothing is sent now. Firing alerts stay in the group and go out at the first
                # flush after the mute window; events and resolved notices that fall inside it are dropped.
                log.info("group %s muted by %s", group.key, ", ".join(group.route.mute_times))
                continue
            entries = self._unmuted(entries, self._silencer, now)
            candidates.extend((group, channel, entries) for channel in group.route.channels)
        # Alerts nobody can have been told of yet (a new group, group_wait 0) need no log read: without
        # an id the log knows, dedup decides the same with or without the entry, and the entry written
        # replaces it. Decided before the first await, so an update arriving meanwhile is not fresh.
        fresh = [all(e.fresh for e in entries) for _, _, entries in candidates]
        for _, _, entries in candidates:
            for e in entries:
                e.fresh = False
        await self._nflog.load([(channel, group.key) for (group, channel, _), is_fresh
                                in zip(candidates, fresh, strict=True) if not is_fresh])
        planned = [plan for plan in (self._dedup(group, channel, entries, now, fresh=is_fresh)
                                     for (group, channel, entries), is_fresh in zip(candidates, fresh, strict=True))
                   if plan is not None]
        if not planned:
            return
        # Where the channel has a free slot, the notification is written already claimed and sent as
        # soon as the transaction commits: no turn of the delivery loop, no claim query in between.
        handed: list[Notification] = []
        queued = False
        for index, (notification, entry) in enumerate(planned):
            lease = self._deliverer.reserve(notification.channel, now)
            if lease is None:
                queued = True
            else:
                notification = replace(notification, next_attempt_at=lease)
                planned[index] = (notification, entry)
                handed.append(notification)
        # The outbox and the log in one transaction: a crash can lose neither the message nor the
        # memory of having queued it.
        try:
            await self._store.enqueue_notifications(
                [notification for notification, _ in planned],
                [self._nflog.state(n.channel, n.group_key, entry) for n, entry in planned])
        except BaseException:
            for notification in handed:
                self._deliverer.release(notification.channel)
            raise
        for notification, entry in planned:
            self._nflog.written(notification.channel, notification.group_key, entry)
        for notification in handed:
            self._deliverer.hand_off(notification)
        if queued:
            self._deliverer.wake()

    @staticmethod
    def _unmuted(entries: list[GroupedAlert], muter: Muter, now: float) -> list[GroupedAlert]:
        return [entry for entry in entries if not muter.muted(entry.alert.labels, now)]

    def _dedup(self, group: Group, channel: str, entries: list[GroupedAlert], now: float, *,
               fresh: bool) -> tuple[Notification, LogEntry] | None:
        route = group.route
        firing = [e for e in entries if e.alert.status is AlertStatus.FIRING]
        resolved = [e for e in entries if e.alert.status is AlertStatus.RESOLVED]
        # By alert id, not fingerprint: each firing episode of a series is its own alert. A series that
        # resolved while silenced (so nobody heard it resolve) and fires again is news, not a repeat.
        firing_keys = frozenset(e.alert.id for e in firing)
        resolved_keys = frozenset(e.alert.id for e in resolved)
        entry = None if fresh else self._nflog.get(channel, group.key)
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
