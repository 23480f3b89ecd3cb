"""Channels, one file each, registered in one explicit table."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alerts.config.settings import AlertsSettings
from alerts.notify.channels.base import Channel
from alerts.notify.channels.console import ConsoleChannel
from alerts.notify.channels.webhook import WebhookChannel

CHANNEL_TYPES: dict[str, Callable[..., Channel]] = {
    "console": lambda name, config, settings: ConsoleChannel(name, config),
    "webhook": lambda name, config, settings: WebhookChannel(name, config, timeout=settings.delivery.timeout),
}


def build_channels(settings: AlertsSettings) -> dict[str, Channel]:
    """One live channel object per entry of ``channels:`` in the config."""
    built: dict[str, Channel] = {}
    for name, config in settings.channels.items():
        factory: Any = CHANNEL_TYPES[config.type]
        built[name] = factory(name, config, settings)
    return built


__all__ = ["CHANNEL_TYPES", "Channel", "build_channels"]
