"""The contract every channel implements; only the retry stage (``notify.delivery``) retries."""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from alerts.durations import Duration
from alerts.model import Notification
from alerts.storage.base import Store


class RateLimit(BaseModel):
    """Storm control: a token bucket of ``burst`` notifications refilled at ``rate`` per ``per``."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    rate: int = Field(ge=1)
    """Notifications allowed per `per`."""
    per: Duration = 60.0
    """The period of `rate`."""
    burst: int | None = Field(default=None, ge=1)
    """Bucket size: notifications sent at once after a quiet spell (default `rate`)."""


class ChannelConfig(BaseModel):
    """Settings every channel has; each channel's own config model extends it."""

    model_config = ConfigDict(use_attribute_docstrings=True, extra="forbid")

    rate_limit: RateLimit | None = None
    """Storm control: a token bucket; what exceeds it waits in the outbox, never dropped."""
    concurrency: int | None = Field(default=None, ge=1)
    """Deliveries in flight at once (default ``delivery.concurrency``), e.g. 4 for an SMTP relay that
    limits connections."""


@dataclass
class ChannelContext:
    """What the service gives every channel: its defaults and a place to remember things durably."""

    timeout: float
    public_url: str
    store: Store

    async def recall(self, channel: str, key: str) -> Any | None:
        """A value the channel stored under ``key`` (e.g. the Slack message ts of an alert group)."""
        return await self.store.get_channel_state(channel, key)

    async def remember(self, channel: str, key: str, value: Any) -> None:
        await self.store.set_channel_state(channel, key, value, time.time())


class Channel(ABC):
    """Delivers one notification to one destination.

    ``send`` returns on success and raises :class:`~alerts.errors.RecoverableDeliveryError` (retry,
    honouring ``retry_after``) or :class:`~alerts.errors.PermanentDeliveryError` (record, stop).
    Messages of those errors must never contain a secret (token, password, signing key, full URL).
    """

    keeps_incidents = False
    """The destination opens an incident per alert group and keeps it open until told resolved
    (PagerDuty, Opsgenie); ``send-test`` then closes the incident its test opened."""

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    async def send(self, notification: Notification) -> None: ...

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most channels hold nothing
        """Release connections; called once at shutdown."""
