"""Aggregation groups and their timers (Alertmanager's dispatcher).

An alert joins one group per route it matches; the group key is the route plus the values of its
``group_by`` labels. A new group is flushed after ``group_wait``; after that every ``group_interval``
while it has alerts. Each flush hands the whole group to the notification pipeline, whose dedup stage
decides against the notification log whether anything is worth sending (new alerts, resolved alerts,
or ``repeat_interval`` elapsed). Resolved alerts and ``alert()`` events leave the group once flushed:
events are delivered once and never repeated.

Every firing is told as firing first: an alert that resolves before a flush of its group included it
firing (a NaN that clears within one batch, a run that ends in the batch of its first firing) keeps its
firing entry in the group, with the resolution as its ``follow_up``; the flush tells it firing, and the
resolution takes its place for the next one, ``group_interval`` later. A flush counts as telling every
firing alert it held, also one that silences, inhibition or quiet hours kept out of its notifications:
the resolution then takes its place and, like any, is muted or told at the next flush. The firing alerts
a restart restores count as told too (the notification log knows whether they were).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from alerts.dispatch.router import Router
from alerts.dispatch.routes import Route
from alerts.model import Alert, AlertSource, AlertStatus, Run
from alerts.notify.message import group_key
from alerts.presentation import alert_object
from alerts.storage.outage import log_failure

log = logging.getLogger(__name__)


@dataclass
class GroupedAlert:
    alert: Alert
    payload: dict[str, Any]
    """The SPEC §7 alert object, rendered when the alert changed (it carries the run's state then)."""
    fresh: bool = False
    """No notification can have told anyone of this alert (in this state) yet: it was submitted in
    this process and has not been in a flush since (the pipeline clears this when it takes the alert
    into one). Alerts restored after a restart are not fresh; a resubmitted alert (same id) inherits it.
    With nothing but fresh alerts, the pipeline's dedup needs no notification-log read."""
    follow_up: GroupedAlert | None = None
    """The resolution of this firing alert, which came before a flush of the group told it firing: it
    takes this entry's place once one has (``Dispatcher._flush_due``). Set, the alert no longer fires."""

    @property
    def key(self) -> str:
        # Events (alert() calls) are each their own entry; rule alerts are one series per fingerprint.
        return self.alert.id if self.alert.source is AlertSource.SDK else self.alert.fingerprint


@dataclass
class Group:
    route: Route
    key: str
    labels: dict[str, str]
    alerts: dict[str, GroupedAlert] = field(default_factory=dict)
    next_flush: float = 0.0
    flushed: bool = False
    told: set[str] = field(default_factory=set)
    """Ids of the alerts a flush of this group has held firing (or a restart restored): a resolution of
    one of them replaces its entry; any other alert's resolution waits as its ``follow_up``."""


_FRESH_SOURCES = frozenset({AlertSource.RULE, AlertSource.SDK, AlertSource.PROMETHEUS})
"""Sources whose alert ids are new for every firing episode or call: a rule alert's id is made when
it fires, a Prometheus alert's when its fingerprint starts firing, an ``alert()`` call's once (its
client id deduplicates retries)."""
_SERIES_SOURCES = frozenset({AlertSource.RULE, AlertSource.PROMETHEUS})
"""Sources whose alerts fire until they resolve (an ``alert()`` call is an event): what inhibits."""

FlushGroups = Callable[[list[Group], float], Awaitable[None]]
"""The notification pipeline: gets every group due at one moment, in one call."""


class Dispatcher:
    def __init__(self, router: Router, flush: FlushGroups, *, public_url: str,
                 clock: Callable[[], float] = time.time) -> None:
        self.router = router
        self._flush = flush
        self._public_url = public_url
        self._clock = clock
        self.groups: dict[str, Group] = {}
        self._flushing = asyncio.Lock()  # a reroute must not swap the groups under a running flush
        self._wakeup = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._kicked: asyncio.Task[None] | None = None  # a flush asked for by submit, not yet started
        self._kicks: set[asyncio.Task[None]] = set()

    def firing_labels(self) -> list[dict[str, str]]:
        """Labels of every firing rule or Prometheus alert in any group (what inhibition rules look at)."""
        return [alert.labels for alert in self.firing_alerts()]

    def firing_alerts(self) -> list[Alert]:
        """Every firing rule or Prometheus alert in any group, once each."""
        seen: dict[str, Alert] = {}
        for group in self.groups.values():
            for entry in group.alerts.values():
                if (entry.alert.status is AlertStatus.FIRING and entry.alert.source in _SERIES_SOURCES
                        and entry.follow_up is None):
                    seen[entry.alert.fingerprint] = entry.alert
        return list(seen.values())

    async def submit(self, alerts: list[Alert], run: Run | None) -> None:
        """Put alert changes into their groups. A group due now (a new one with ``group_wait: 0``) is
        flushed at once, by a task started here; the others wait for their timers."""
        now = self._clock()
        due_now = later = False
        for alert in alerts:
            if alert.status is not AlertStatus.PENDING:
                # A change to an existing group waits for its next flush.
                entry = GroupedAlert(alert, alert_object(alert, run, self._public_url),
                                     fresh=alert.source in _FRESH_SOURCES)
                for group in self._place(self.groups, self.router, entry,
                                         lambda route, _key: (now + route.group_wait, False, set())):
                    if group.next_flush <= now:
                        due_now = True
                    else:
                        later = True
        if due_now:
            self._kick()
        if later:
            self._wakeup.set()  # a new group's timer may be due before the loop's next wake-up

    def _kick(self) -> None:
        """Flush the groups that are due, now: one task, which every submit until it starts joins (so a
        burst of submits is one flush, one transaction). Not awaited by the submitter: the alert's
        sender does not wait for the notification, and a cancelled request cannot cut a flush short
        between its transaction and the bookkeeping after it."""
        if self._kicked is None and self._task is not None:
            self._kicked = task = asyncio.create_task(self._flush_kicked(), name="dispatcher-flush")
            self._kicks.add(task)
            task.add_done_callback(self._kicks.discard)

    async def _flush_kicked(self) -> None:
        async with self._flushing:
            self._kicked = None  # from here on, a new submit needs a flush of its own
            try:
                await self._flush_due()
            except Exception:
                log.exception("dispatcher flush error")
        self._wakeup.set()  # the flush set new timers (group_interval, or a retry): the loop sleeps until them

    def restore(self, alerts: list[Alert], runs: dict[int, Run]) -> None:
        """After a restart: firing rule alerts rejoin their groups (the notification log keeps them
        from being sent again before ``repeat_interval``), counted as told: a resolution replaces them."""
        now = self._clock()
        for alert in alerts:
            payload = alert_object(alert, runs.get(alert.run_pk or -1), self._public_url)
            for group in self._place(self.groups, self.router, GroupedAlert(alert, payload),
                                     lambda route, _key: (now + route.group_interval, True, set())):
                group.told.add(alert.id)

    @staticmethod
    def _place(groups: dict[str, Group], router: Router, entry: GroupedAlert,
               timers: Callable[[Route, str], tuple[float, bool, set[str]]]) -> list[Group]:
        """Put ``entry`` into the group of every route it matches; a group made for it gets
        ``timers(route, key)`` as its (next flush, already flushed, alerts told). Returns the groups."""
        placed = []
        for route in router.routes_for(entry.alert):
            labels = route.group_labels(entry.alert)
            key = group_key(route.id, labels)
            group = groups.get(key)
            if group is None:
                next_flush, flushed, told = timers(route, key)
                group = groups[key] = Group(route=route, key=key, labels=labels, next_flush=next_flush,
                                            flushed=flushed, told=told)
            # An alert set apart under its id (below) is updated there.
            slot = entry.alert.id if entry.alert.id in group.alerts else entry.key
            old = group.alerts.get(slot)
            if old is not None and old.alert.id != entry.alert.id:
                # The series fired again before a flush told of its last alert's state (a batch that caught
                # up after an outage can hold whole episodes): that alert stays in the group, under its id,
                # until a flush has told it (a resolved one then leaves).
                group.alerts[old.alert.id] = old
                old = None
            group.alerts[slot] = Dispatcher._update(old, entry, told=entry.alert.id in group.told)
            placed.append(group)
        return placed

    @staticmethod
    def _update(old: GroupedAlert | None, new: GroupedAlert, *, told: bool) -> GroupedAlert:
        """The entry of one alert in a group once ``new`` came for it (``old``: its entry there, if any).
        A resolution is final: a firing state that comes after it (a reroute re-places the entries of
        several groups, in any order) is not news. Until the group has told the alert firing (``told``),
        its resolution waits as the firing entry's ``follow_up``."""
        if old is not None and not old.fresh:
            new.fresh = False  # an update of an alert that a flush has already seen
        candidates = (new, new.follow_up) if old is None else (new, new.follow_up, old, old.follow_up)
        resolution = next((e for e in candidates if e is not None and e.alert.status is AlertStatus.RESOLVED),
                          None)
        firing = new if new.alert.status is AlertStatus.FIRING or old is None else old
        if resolution is None or resolution is firing:
            return new
        if told or firing.alert.status is not AlertStatus.FIRING:
            return resolution
        firing.follow_up = resolution
        return firing

    def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="dispatcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        # A flush under way finishes: what it queued is handed to delivery, or found by the next start.
        await asyncio.gather(*self._kicks, return_exceptions=True)

    async def reroute(self, router: Router) -> None:
        """Adopt a reloaded routing tree: every alert in a group is routed and grouped again.

        A group whose key survives (same route path, same group labels) keeps its timers and, through
        the notification log, its memory of what was sent, so a reload alone notifies nobody again; a
        timer the new route shortens takes effect at once (its ``group_wait`` or ``group_interval`` from
        now, if sooner). Alerts that now land in a new group start its ``group_wait``."""
        async with self._flushing:
            now = self._clock()
            old, self.groups, self.router = self.groups, {}, router

            def timers(route: Route, key: str) -> tuple[float, bool, set[str]]:
                kept = old.get(key)
                if kept is None:
                    return now + route.group_wait, False, set()
                wait = route.group_interval if kept.flushed else route.group_wait
                return min(kept.next_flush, now + wait), kept.flushed, set(kept.told)

            for previous in old.values():
                for entry in previous.alerts.values():
                    self._place(self.groups, router, entry, timers)
        self._wakeup.set()

    async def flush_due(self) -> None:
        async with self._flushing:
            await self._flush_due()

    async def _flush_due(self) -> None:
        now = self._clock()
        due = [g for g in self.groups.values() if g.next_flush <= now]
        if not due:
            return
        # Alerts may join these groups while the flush awaits storage; only what it saw leaves them.
        flushed = {group.key: dict(group.alerts) for group in due}
        try:
            await self._flush(due, now)
        except Exception as error:  # storage trouble: nothing of these flushes was written; all are retried
            log_failure(log, "flushing %d groups failed; retrying in 1s", error, len(due))
            for group in due:
                group.next_flush = now + 1.0
            return
        for group in due:
            group.flushed = True
            for key, entry in flushed[group.key].items():
                if entry.alert.status is AlertStatus.FIRING:
                    group.told.add(entry.alert.id)
                done = entry.alert.status is AlertStatus.RESOLVED or entry.alert.source is AlertSource.SDK
                if done:
                    # Where it is now: set apart under its id if its series fired again meanwhile.
                    for slot in (key, entry.alert.id):
                        if group.alerts.get(slot) is entry:
                            del group.alerts[slot]
            for slot, entry in list(group.alerts.items()):
                if entry.follow_up is not None and entry.alert.id in group.told:
                    # Its firing was in this flush (or in one its resolution came during): the resolution
                    # is the next flush's news. Not fresh: the notification log knows the alert's id.
                    entry.follow_up.fresh = False
                    group.alerts[slot] = entry.follow_up
            group.told &= {entry.alert.id for entry in group.alerts.values()}
            if group.alerts:
                group.next_flush = now + group.route.group_interval
            else:
                del self.groups[group.key]

    async def _run(self) -> None:
        while True:
            self._wakeup.clear()
            try:
                await self.flush_due()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("dispatcher loop error")
            next_flush = min((g.next_flush for g in self.groups.values()), default=None)
            timeout = 5.0 if next_flush is None else max(0.0, min(5.0, next_flush - self._clock()))
            if timeout > 0:
                try:
                    await asyncio.wait_for(self._wakeup.wait(), timeout=timeout)
                except TimeoutError:
                    pass
