"""The contract every channel implements; only the retry stage (``notify.delivery``) retries."""

from __future__ import annotations

import asyncio
import time
import weakref
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

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
    charts: bool = True
    """Slack, email and webhooks attach a chart of the alerts' series (`charts:` settings; webhooks a
    `chart_url`); `false` leaves it out."""


@dataclass(frozen=True)
class ChartImage:
    """The chart of one notification: a PNG, and words for those who cannot see it."""

    png: bytes
    alt_text: str


@dataclass(frozen=True)
class ChartSkipped:
    """No chart this time, for a reason the message states (``"chart not ready in time"``)."""

    reason: str


class ChartSource(Protocol):
    """What channels need of the service's charts (``alerts/charts/service.py``)."""

    async def for_notification(self, alerts: Sequence[Mapping[str, Any]]) -> ChartImage | ChartSkipped | None:
        """The notification's chart within the configured bound; None when there is nothing to draw."""

    def chart_url(self, alert: Mapping[str, Any]) -> str | None:
        """The signed URL of the alert's chart, decided without drawing; None if it cannot have one."""

    @property
    def urls_reachable(self) -> bool:
        """Whether services elsewhere (Slack) can fetch :meth:`chart_url`: ``public_url`` is not loopback."""


@dataclass
class ChannelContext:
    """What the service gives every channel: its defaults and a place to remember things durably."""

    timeout: float
    public_url: str
    store: Store
    charts: ChartSource | None = None
    """Charts of the alerts; None when charts are off (or where no service runs, as in ``send-test``)."""

    def charts_for(self, config: ChannelConfig) -> ChartSource | None:
        """The charts a channel with ``config`` attaches: none when its config says ``charts: false``."""
        return self.charts if config.charts else None

    async def recall(self, channel: str, key: str) -> Any | None:
        """A value the channel stored under ``key`` (e.g. the Slack message ts of an alert group)."""
        return await self.store.get_channel_state(channel, key)

    async def remember(self, channel: str, key: str, value: Any) -> None:
        await self.store.set_channel_state(channel, key, value, time.time())


class GroupLocks:
    """One lock per alert group. A channel's notifications are delivered concurrently, and some of them
    belong to one group: a channel whose send reads, then writes the group's remembered state (Slack's
    message, email's thread root, an incident preset's newest delivery) holds ``locks.of(group_key)``
    across the two, so exactly one notification of a group does each step at a time."""

    def __init__(self) -> None:
        self._locks: weakref.WeakValueDictionary[str, asyncio.Lock] = weakref.WeakValueDictionary()

    def of(self, group_key: str) -> asyncio.Lock:
        lock = self._locks.get(group_key)
        if lock is None:  # unused locks go with the last notification holding them
            lock = self._locks[group_key] = asyncio.Lock()
        return lock


class Channel(ABC):
    """Delivers one notification to one destination.

    ``send`` returns on success and raises :class:`~alerts.errors.RecoverableDeliveryError` (retry,
    honouring ``retry_after``) or :class:`~alerts.errors.PermanentDeliveryError` (record, stop).
    Messages of those errors must never contain a secret (token, password, signing key, full URL).
    """

    draws_charts = False
    """``send`` waits for chart images (Slack, email), so the service starts its chart workers at start-up
    rather than at the first alert (whose chart would then miss ``charts.timeout``)."""

    keeps_incidents = False
    """The destination opens an incident per alert group and keeps it open until told resolved
    (PagerDuty, Opsgenie); ``send-test`` then closes the incident its test opened."""

    def __init__(self, name: str) -> None:
        self.name = name

    @abstractmethod
    async def send(self, notification: Notification) -> None: ...

    async def aclose(self) -> None:  # noqa: B027 - optional hook, most channels hold nothing
        """Release connections; called once at shutdown."""
