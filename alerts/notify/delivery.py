"""The retry stage: delivers due outbox entries, with exponential backoff and jitter.

One delivery task per notification, bounded per channel, so a slow or failing channel never delays
the others. 429/``Retry-After`` is honoured; permanent errors stop and are recorded with the reason;
recoverable ones are retried until ``delivery.max_age``. The delivery id never changes.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections.abc import Callable

from alerts.config.settings import DeliverySettings
from alerts.errors import PermanentDeliveryError, RecoverableDeliveryError
from alerts.model import Notification
from alerts.notify.channels.base import Channel, RateLimit
from alerts.notify.ratelimit import TokenBucket
from alerts.storage.base import Store

log = logging.getLogger(__name__)


def backoff_delay(attempts: int, settings: DeliverySettings, rand: Callable[[], float] = random.random) -> float:
    """Equal-jitter exponential backoff: half fixed, half random, capped at ``max_backoff``."""
    ceiling = float(min(settings.max_backoff, settings.initial_backoff * 2 ** max(0, attempts - 1)))
    return ceiling / 2 + rand() * ceiling / 2


class Deliverer:
    def __init__(self, store: Store, channels: dict[str, Channel], settings: DeliverySettings, *,
                 rate_limits: dict[str, RateLimit] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._channels = channels
        self._settings = settings
        self._clock = clock
        self._wakeup = asyncio.Event()
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._limits: dict[str, asyncio.Semaphore] = {}
        self._task: asyncio.Task[None] | None = None
        self._buckets = {name: TokenBucket.create(limit.rate, limit.per, limit.burst, clock())
                         for name, limit in (rate_limits or {}).items()}

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="deliverer")

    def wake(self) -> None:
        self._wakeup.set()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for task in list(self._in_flight.values()):
            task.cancel()
        await asyncio.gather(*self._in_flight.values(), return_exceptions=True)
        for channel in self._channels.values():
            await channel.aclose()

    async def _run(self) -> None:
        while True:
            try:
                self._wakeup.clear()  # before the query, so a wake-up during it is not lost
                await self._dispatch_due()
                await self._sleep_until_due()
            except asyncio.CancelledError:
                raise
            except Exception:  # the store may be briefly unavailable; never let the loop die
                log.exception("delivery loop error; retrying in 1s")
                await asyncio.sleep(1.0)

    async def _dispatch_due(self) -> None:
        due = await self._store.due_notifications(self._clock(), limit=500)
        for notification in due:
            if notification.id in self._in_flight:
                continue
            task = asyncio.create_task(self._deliver(notification))
            self._in_flight[notification.id] = task
            task.add_done_callback(functools.partial(self._finished, notification.id))

    def _finished(self, key: str, _task: asyncio.Task[None]) -> None:
        self._in_flight.pop(key, None)
        self._wakeup.set()  # a finished delivery may have rescheduled itself or freed a slot

    async def _sleep_until_due(self) -> None:
        next_due = await self._store.next_notification_due()
        timeout = 5.0 if next_due is None else min(5.0, next_due - self._clock())
        if timeout <= 0:
            if not self._in_flight:
                return
            timeout = 0.5  # what is due is in flight; each finished delivery wakes us anyway
        try:
            await asyncio.wait_for(self._wakeup.wait(), timeout=timeout)
        except TimeoutError:
            pass

    async def _deliver(self, notification: Notification) -> None:
        limit = self._limits.setdefault(notification.channel, asyncio.Semaphore(self._settings.concurrency))
        async with limit:
            now = self._clock()
            bucket = self._buckets.get(notification.channel)
            if bucket is not None and not bucket.take(now):
                await self._store.reschedule(notification.id, attempts=notification.attempts,
                                             next_attempt_at=bucket.next_token_at(now),
                                             error="waiting for the channel's rate limit")
                return
            lease = now + (self._settings.timeout + 30.0)
            if not await self._store.claim_notification(notification.id, now=now, lease_until=lease):
                return  # delivered or claimed meanwhile (a stale due-list, another replica)
            attempts = notification.attempts + 1
            channel = self._channels.get(notification.channel)
            try:
                if channel is None:
                    raise PermanentDeliveryError(f"channel {notification.channel!r} is not configured")
                await channel.send(notification)
            except PermanentDeliveryError as exc:
                log.error("delivery %s to %s failed permanently: %s", notification.id,
                          notification.channel, exc)
                await self._store.mark_failed(notification.id, attempts=attempts, error=str(exc))
            except (RecoverableDeliveryError, Exception) as exc:
                await self._retry_later(notification, attempts, exc)
            else:
                await self._store.mark_delivered(notification.id, self._clock(), attempts)

    async def _retry_later(self, notification: Notification, attempts: int, exc: Exception) -> None:
        now = self._clock()
        reason = str(exc) if isinstance(exc, RecoverableDeliveryError) else \
            f"{notification.channel}: unexpected {type(exc).__name__}"
        if not isinstance(exc, RecoverableDeliveryError):
            log.exception("delivery %s to %s: unexpected error", notification.id, notification.channel)
        if now - notification.created_at > self._settings.max_age:
            await self._store.mark_failed(notification.id, attempts=attempts,
                                          error=f"gave up after {attempts} attempts: {reason}")
            return
        retry_after = exc.retry_after if isinstance(exc, RecoverableDeliveryError) else None
        delay = retry_after if retry_after is not None else backoff_delay(attempts, self._settings)
        log.warning("delivery %s to %s failed (attempt %d), retrying in %.1fs: %s", notification.id,
                    notification.channel, attempts, delay, reason)
        await self._store.reschedule(notification.id, attempts=attempts, next_attempt_at=now + delay,
                                     error=reason)
