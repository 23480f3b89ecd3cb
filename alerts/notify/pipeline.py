"""From alerts to the outbox: route → group → persist → wake the deliverer.

Every notification is written to the outbox before anything is sent, so a crash between here and
the channel loses nothing; ``notify.delivery`` picks it up (again, after a restart).
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable

from alerts.dispatch.router import Router
from alerts.model import Alert, AlertStatus, Notification, Run
from alerts.notify.delivery import Deliverer
from alerts.notify.message import alert_object, group_key
from alerts.storage.base import Store


class Notifier:
    def __init__(self, store: Store, router: Router, deliverer: Deliverer, *, public_url: str,
                 send_resolved: bool = True,
                 clock: Callable[[], float] = time.time,
                 new_id: Callable[[], str] = lambda: str(uuid.uuid4())) -> None:
        self._store = store
        self._router = router
        self._deliverer = deliverer
        self._public_url = public_url
        self._send_resolved = send_resolved
        self._clock = clock
        self._new_id = new_id

    async def submit(self, alerts: list[Alert], run: Run | None) -> list[Notification]:
        """Persist one notification per (route, channel, alert) and hand them to delivery."""
        now = self._clock()
        notifications = []
        for alert in alerts:
            if alert.status is AlertStatus.RESOLVED and not self._send_resolved:
                continue
            if alert.status is AlertStatus.PENDING:
                continue
            for route in self._router.routes_for(alert):
                labels = route.group_labels(alert)
                message = {"status": alert.status.value, "group_labels": labels,
                           "alerts": [alert_object(alert, run, self._public_url)]}
                for channel in route.channels:
                    notifications.append(Notification(
                        id=self._new_id(), channel=channel, group_key=group_key(route.name, labels),
                        message=message, next_attempt_at=now, created_at=now))
        await self._store.enqueue_notifications(notifications)
        self._deliverer.wake()
        return notifications
