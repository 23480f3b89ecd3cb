"""Channels, one file each, registered in one explicit table (``registry.py``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from alerts.notify.channels.base import Channel, ChannelContext
from alerts.notify.channels.registry import CHANNEL_TYPES

if TYPE_CHECKING:  # settings import the channel config models: no runtime import back
    from alerts.config.settings import AlertsSettings


def build_channels(settings: AlertsSettings, context: ChannelContext) -> dict[str, Channel]:
    """One live channel object per entry of ``channels:`` in the config."""
    return {name: CHANNEL_TYPES[config.type][1](name, config, context) for name, config in settings.channels.items()}


__all__ = ["CHANNEL_TYPES", "Channel", "ChannelContext", "build_channels"]
