"""The ``console`` channel: one line per notification in the service log."""

from __future__ import annotations

import logging
from typing import Literal

from pydantic import ConfigDict

from alerts.model import Notification
from alerts.notify.channels.base import Channel, ChannelConfig

log = logging.getLogger("alerts.notify.console")


class ConsoleConfig(ChannelConfig):
    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    type: Literal["console"]


class ConsoleChannel(Channel):
    def __init__(self, name: str, config: ConsoleConfig) -> None:
        super().__init__(name)

    async def send(self, notification: Notification) -> None:
        message = notification.message
        for alert in message["alerts"]:
            run = alert.get("run") or {}
            suppressed = alert.get("suppressed_count") or 0
            extra = f" ({suppressed} similar suppressed)" if suppressed else ""
            reason = alert.get("resolved_reason")
            extra += f" ({reason})" if reason and alert["status"] == "resolved" else ""
            log.warning("[%s] %s %s/%s %s: %s — %s%s [delivery %s]", alert["status"].upper(),
                        alert["severity"], alert["project"], run.get("name") or run.get("id") or "-",
                        alert.get("rule") or alert["source"], alert["title"], alert["text"], extra,
                        notification.id)
