"""The retry stage: delivers due outbox entries, with exponential backoff and jitter.

Each turn claims, in one transaction, as many due notifications per channel as that channel has free
delivery slots (its ``concurrency``) and rate-limit tokens, and sends each in its own task, so a
slow or failing channel never delays the others. Outcomes are written back in batches by one writer:
until its write lands a notification stays claimed, so a crash in between re-sends (at least once),
never loses. 429/``Retry-After`` is honoured; permanent errors stop and are recorded with the reason;
recoverable ones are retried until ``delivery.max_age``. The delivery id never changes.

A fresh notification need not wait for a turn: when its channel has a free slot and token, the
pipeline takes them (``reserve``), writes the notification already claimed in the transaction that
queues it, and hands it over (``hand_off``) the moment that commits. The loop sleeps until the next
retry or lease is due and is woken only by what can change that: a retry scheduled, a slot freed
while due work waits for one, a notification queued without a slot, a reload.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import random
import time
from collections import Counter
from collections.abc import Callable

from alerts.config.settings import DeliverySettings
from alerts.errors import PermanentDeliveryError, RecoverableDeliveryError
from alerts.model import Notification, NotificationStatus
from alerts.notify.channels.base import Channel, RateLimit
from alerts.notify.ratelimit import TokenBucket
from alerts.storage.base import DeliveryAttempt, Store
from alerts.storage.outage import log_failure

log = logging.getLogger(__name__)

_IDLE_POLL = 5.0  # seconds; another replica may have queued work, and clocks move


def backoff_delay(attempts: int, settings: DeliverySettings, rand: Callable[[], float] = random.random) -> float:
    """Equal-jitter exponential backoff: half fixed, half random, capped at ``max_backoff``."""
    ceiling = float(min(settings.max_backoff, settings.initial_backoff * 2 ** max(0, attempts - 1)))
    return ceiling / 2 + rand() * ceiling / 2


_OUTCOME_WORDS = {NotificationStatus.DELIVERED: "delivered", NotificationStatus.PENDING: "retry",
                  NotificationStatus.FAILED: "failed"}


class Deliverer:
    def __init__(self, store: Store, channels: dict[str, Channel], settings: DeliverySettings, *,
                 rate_limits: dict[str, RateLimit] | None = None, concurrency: dict[str, int] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._channels = channels
        self._settings = settings
        self._clock = clock
        self.observe_attempt: Callable[[str, str], None] | None = None
        """Told of every attempt's end: (channel, ``delivered`` | ``retry`` | ``failed``)."""
        self._wakeup = asyncio.Event()
        self._in_flight: dict[str, asyncio.Task[None]] = {}
        self._busy: Counter[str] = Counter()
        self._task: asyncio.Task[None] | None = None
        self._limits = dict(rate_limits or {})
        self._concurrency = dict(concurrency or {})
        self._buckets = {name: TokenBucket.create(limit.rate, limit.per, limit.burst, clock())
                         for name, limit in self._limits.items()}
        self._outcomes = _OutcomeWriter(store, self._recorded)
        self._retiring: set[asyncio.Task[None]] = set()
        self._slot_wanted = False  # due work waits for a free slot: a finished delivery must wake the loop
        self._stopped = False

    async def reconfigure(self, channels: dict[str, Channel], settings: DeliverySettings,
                          rate_limits: dict[str, RateLimit], concurrency: dict[str, int]) -> None:
        """Adopt a reloaded config. Channel objects that are no longer used are closed once the
        deliveries already using them finish; pending notifications of removed channels fail."""
        retired = [channel for name, channel in self._channels.items() if channels.get(name) is not channel]
        self._channels, self._settings = channels, settings
        now = self._clock()
        self._buckets = {name: self._buckets[name] if self._limits.get(name) == limit and name in self._buckets
                         else TokenBucket.create(limit.rate, limit.per, limit.burst, now)
                         for name, limit in rate_limits.items()}
        self._limits = dict(rate_limits)
        self._concurrency = dict(concurrency)
        if retired:
            task = asyncio.create_task(self._close_after(retired, list(self._in_flight.values())))
            self._retiring.add(task)
            task.add_done_callback(self._retiring.discard)
        removed = await self._store.fail_unrouted_notifications(list(channels), "channel removed from the config",
                                                                now)
        if removed:
            log.warning("%d pending notifications were for channels removed from the config; marked failed",
                        removed)
        self._wakeup.set()

    @staticmethod
    async def _close_after(channels: list[Channel], deliveries: list[asyncio.Task[None]]) -> None:
        await asyncio.gather(*deliveries, return_exceptions=True)
        for channel in channels:
            await channel.aclose()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="deliverer")

    def wake(self) -> None:
        self._wakeup.set()

    def reserve(self, channel: str, now: float) -> float | None:
        """Take a delivery slot (and a rate-limit token) of ``channel`` for a notification about to be
        enqueued; returns the lease to write with it (what a claim would write), or None when the
        channel has no free slot or token, and the notification goes the outbox's ordinary way.

        The direct hand-off of the pipeline: the notification is written already claimed, in the
        transaction that queues it, then :meth:`hand_off` sends it at once. Between the two the row's
        lease keeps the delivery loop (and other replicas) away from it; a crash there leaves it to be
        sent once the lease runs out, as after a crash during any claimed delivery.
        """
        if self._stopped or self._task is None or channel not in self._channels or self._quota(channel, now) <= 0:
            self._slot_wanted = True
            return None
        bucket = self._buckets.get(channel)
        if bucket is not None:
            bucket.take(now)
        self._busy[channel] += 1
        return self._lease(now)

    def release(self, channel: str) -> None:
        """Give back a :meth:`reserve` whose notification was not written (the transaction failed)."""
        self._busy[channel] -= 1
        bucket = self._buckets.get(channel)
        if bucket is not None:
            bucket.tokens = min(bucket.capacity, bucket.tokens + 1.0)
        self._wakeup.set()

    def hand_off(self, notification: Notification) -> None:
        """Send a notification written with a :meth:`reserve` lease, now (its slot is already taken)."""
        self._start(notification)

    async def stop(self) -> None:
        self._stopped = True
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        for task in list(self._in_flight.values()):
            task.cancel()
        await asyncio.gather(*self._in_flight.values(), return_exceptions=True)
        await self._outcomes.drain()
        await asyncio.gather(*self._retiring, return_exceptions=True)
        for channel in self._channels.values():
            await channel.aclose()

    async def _run(self) -> None:
        try:
            unrouted = await self._store.fail_unrouted_notifications(
                list(self._channels), "channel is not configured", self._clock())
            if unrouted:
                log.warning("%d pending notifications were for channels no longer configured; marked failed",
                            unrouted)
        except Exception:  # they are never claimed either way; delivering the rest matters more
            log.exception("could not mark notifications of unconfigured channels failed")
        while True:
            try:
                self._wakeup.clear()  # before the query, so a wake-up during it is not lost
                wake_in = await self._dispatch_due()
                if wake_in > 0:
                    try:
                        await asyncio.wait_for(self._wakeup.wait(), timeout=wake_in)
                    except TimeoutError:
                        pass
            except asyncio.CancelledError:
                raise
            except Exception as error:  # the store may be briefly unavailable; never let the loop die
                log_failure(log, "delivery loop error; retrying in 1s", error)
                await asyncio.sleep(1.0)

    async def _dispatch_due(self) -> float:
        """Claim and start what can be sent now; returns how long to sleep unless woken."""
        now = self._clock()
        self._slot_wanted = False
        quotas = {name: self._quota(name, now) for name in self._channels}
        claimed, next_due = await self._store.claim_notifications(now=now, lease_until=self._lease(now),
                                                                  quotas=quotas)
        for notification in claimed:
            bucket = self._buckets.get(notification.channel)
            if bucket is not None:
                bucket.take(now)
            self._busy[notification.channel] += 1
            self._start(notification)
        if next_due is None:
            return _IDLE_POLL
        if next_due > now:
            return min(_IDLE_POLL, next_due - now)
        # Due work is waiting for a slot (a finished delivery wakes us) or for a rate-limit token.
        self._slot_wanted = True
        refills = [bucket.next_token_at(now) - now for name, bucket in self._buckets.items()
                   if quotas.get(name, 0) == 0]
        return max(0.001, min([0.5, *refills]))

    def _lease(self, now: float) -> float:
        return now + self._settings.timeout + 30.0

    def _start(self, notification: Notification) -> None:
        task = asyncio.create_task(self._deliver(notification))
        self._in_flight[notification.id] = task
        task.add_done_callback(functools.partial(self._finished, notification))

    def _quota(self, channel: str, now: float) -> int:
        free = self._concurrency.get(channel, self._settings.concurrency) - self._busy[channel]
        bucket = self._buckets.get(channel)
        if bucket is not None:
            free = min(free, bucket.available(now))
        return max(0, free)

    def _finished(self, notification: Notification, _task: asyncio.Task[None]) -> None:
        self._in_flight.pop(notification.id, None)
        self._busy[notification.channel] -= 1
        if self._slot_wanted:
            self._wakeup.set()  # a slot is free for work that waits for one

    def _recorded(self, attempts: list[DeliveryAttempt]) -> None:
        if any(attempt.status is NotificationStatus.PENDING for attempt in attempts):
            self._wakeup.set()  # a retry is scheduled: the loop's next wake-up may have to come sooner

    async def _deliver(self, notification: Notification) -> None:
        attempts = notification.attempts + 1
        try:
            channel = self._channels.get(notification.channel)
            if channel is None:  # removed by a reload while this claim was on its way
                raise PermanentDeliveryError(f"channel {notification.channel!r} was removed from the config")
            await channel.send(notification)
        except PermanentDeliveryError as exc:
            log.error("delivery %s to %s failed permanently: %s", notification.id, notification.channel, exc)
            self._ended(notification, DeliveryAttempt(notification.id, NotificationStatus.FAILED, attempts,
                                                      self._clock(), error=str(exc)))
        except asyncio.CancelledError:
            if self._stopped:  # shutting down: give the claim back, so a restart sends it at once
                self._outcomes.add(DeliveryAttempt(notification.id, NotificationStatus.PENDING, notification.attempts,
                                                   self._clock(), error=notification.last_error))
            raise
        except Exception as exc:  # RecoverableDeliveryError, or a bug in a channel: retry either way
            self._ended(notification, self._retry_later(notification, attempts, exc))
        else:
            now = self._clock()
            self._ended(notification, DeliveryAttempt(notification.id, NotificationStatus.DELIVERED, attempts, now,
                                                      delivered_at=now))

    def _ended(self, notification: Notification, attempt: DeliveryAttempt) -> None:
        self._outcomes.add(attempt)
        if self.observe_attempt is not None:
            self.observe_attempt(notification.channel, _OUTCOME_WORDS[attempt.status])

    def _retry_later(self, notification: Notification, attempts: int, exc: Exception) -> DeliveryAttempt:
        now = self._clock()
        reason = str(exc) if isinstance(exc, RecoverableDeliveryError) else \
            f"{notification.channel}: unexpected {type(exc).__name__}"
        if not isinstance(exc, RecoverableDeliveryError):
            log.error("delivery %s to %s: unexpected error", notification.id, notification.channel,
                      exc_info=exc)
        if now - notification.created_at > self._settings.max_age:
            return DeliveryAttempt(notification.id, NotificationStatus.FAILED, attempts, now,
                                   error=f"gave up after {attempts} attempts: {reason}")
        retry_after = exc.retry_after if isinstance(exc, RecoverableDeliveryError) else None
        delay = retry_after if retry_after is not None else backoff_delay(attempts, self._settings)
        log.warning("delivery %s to %s failed (attempt %d), retrying in %.1fs: %s", notification.id,
                    notification.channel, attempts, delay, reason)
        return DeliveryAttempt(notification.id, NotificationStatus.PENDING, attempts, now + delay, error=reason)


class _OutcomeWriter:
    """Writes delivery outcomes in batches: whatever finished while the last write ran goes in the next."""

    def __init__(self, store: Store, recorded: Callable[[list[DeliveryAttempt]], None]) -> None:
        self._store = store
        self._recorded = recorded
        self._pending: list[DeliveryAttempt] = []
        self._task: asyncio.Task[None] | None = None

    def add(self, attempt: DeliveryAttempt) -> None:
        self._pending.append(attempt)
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._write(), name="delivery-outcomes")

    async def _write(self) -> None:
        while self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._store.record_attempts(batch)
            except Exception as error:  # keep them: the rows stay claimed, nothing is re-sent until this lands
                log_failure(log, "recording %d delivery outcomes failed; retrying in 1s", error, len(batch))
                self._pending[:0] = batch
                await asyncio.sleep(1.0)
                continue
            self._recorded(batch)

    async def drain(self) -> None:
        """Write what is pending (at shutdown)."""
        if self._task is not None and not self._task.done():
            await self._task
        if self._pending:
            await self._write()
