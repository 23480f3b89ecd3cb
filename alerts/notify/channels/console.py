"""The ``console`` channel: one line per notification in the service log."""

from __future__ import annotations

import logging

from alerts.config.settings import ConsoleChannel as ConsoleChannelConfig
from alerts.model import Notification
from alerts.notify.channels.base import Channel

log = logging.getLogger("alerts.notify.console")


class ConsoleChannel(Channel):
    def __init__(self, name: str, config: ConsoleChannelConfig) -> None:
        super().__init__(name)

    async def send(self, notification: Notification) -> None:
        message = notification.message
        for alert in message["alerts"]:
            run = alert.get("run") or {}
            suppressed = alert.get("suppressed_count") or 0
            extra = f" ({suppressed} similar suppressed)" if suppressed else ""
            log.warning("[%s] %s %s/%s %s: %s — %s%s [delivery %s]", alert["status"].upper(),
                        alert["severity"], alert["project"], run.get("name") or run.get("id") or "-",
                        alert.get("rule") or alert["source"], alert["title"], alert["text"], extra,
                        notification.id)
