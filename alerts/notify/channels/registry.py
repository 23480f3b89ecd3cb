"""The one explicit table of channel types: config model and implementation, one file each.

Adding a channel: write ``channels/<name>.py`` with its config model and :class:`Channel` subclass,
then add one line here. The config loader builds its ``type``-tagged union from this table.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from alerts.notify.channels.base import Channel, ChannelContext
from alerts.notify.channels.console import ConsoleChannel, ConsoleConfig
from alerts.notify.channels.email import EmailChannel, EmailConfig
from alerts.notify.channels.slack import SlackChannel, SlackConfig
from alerts.notify.channels.webhook import WebhookChannel, WebhookConfig

ChannelFactory = Callable[[str, Any, ChannelContext], Channel]
"""(channel name, its config, the service context) -> channel."""

CHANNEL_TYPES: dict[str, tuple[type[Any], ChannelFactory]] = {
    "console": (ConsoleConfig, lambda name, config, context: ConsoleChannel(name, config)),
    "webhook": (WebhookConfig, lambda name, config, context: WebhookChannel(
        name, config, timeout=context.timeout, public_url=context.public_url, context=context)),
    "slack": (SlackConfig, SlackChannel),
    "email": (EmailConfig, EmailChannel),
}

CHANNEL_CONFIGS = tuple(config for config, _factory in CHANNEL_TYPES.values())
