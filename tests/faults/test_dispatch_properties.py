"""Properties of grouping and deduplication (SPEC §6), found by Hypothesis against the real pipeline.

The dispatcher, the pipeline (silences, inhibition, dedup against the notification log, the outbox) are
wired as ``alerts/service.py`` wires them, on a real SQLite store, with a fake clock. Hypothesis draws
two routing configs (two channels, small timers, sometimes a second route for one rule, sometimes an
inhibition rule) and a history: alerts of four series fire, resolve and fire again (each firing episode
a new alert id; firing while firing is an update of the same alert), ``alert()`` events arrive, changes
come one by one or in one batch, alone, followed by a flush, or while a flush waits for the database;
time passes (the groups' timers run as the dispatcher's loop runs them, or late); silences start; the
config is reloaded (``Dispatcher.reroute``, to the other config and back); the service restarts (a new
dispatcher, pipeline and log on the reopened database, the groups restored from its firing alerts as
``Service.start`` does). What was notified is read back from the outbox the pipeline wrote; the
delivery loop is not started, so every notification stays there.

Per channel and group, every notification must:

- tell something new (an alert firing that the last one did not list as firing, or one newly
  resolved) unless ``repeat_interval`` has passed since the last one: no repeat before its time,
  across restarts and reloads too (the log is persisted and keyed by group);
- list each alert in its latest state (never a state older than one already told): an alert told
  resolved is never listed again, and an ``alert()`` event is listed once. The one exception is an alert
  that resolved before its group told it firing: every firing is told as firing first, so it may be
  listed firing, once per group and channel (a reload may regroup it where that is not known);
- hold only alerts routed to that group and channel, none muted (silenced or inhibited), resolved
  ones only with ``send_resolved``, and say ``firing`` exactly when one of them fires.

And nothing is lost: once ``max(group_wait, group_interval)`` of its route has passed since an alert
changed (or was last muted, or was regrouped by a reload, or the service restarted), the flush then
has told every firing alert on every channel of each of its groups, and every ``alert()`` event and
resolution (with ``send_resolved``) that nothing muted meanwhile; a resolution that came before its
alert was told firing there (or that a reload regrouped) follows the firing, one ``group_interval``
later. Every rule alert that fired is told firing on each of its groups' channels within
``max(group_wait, group_interval)``, resolved by then or not, unless something muted it meanwhile (a
flush that mutes an alert counts as telling it), a reload regrouped it, or a restart restored it untold
(restored alerts count as told). After the last flush the groups hold exactly the firing rule alerts:
resolved ones and events left once flushed.

A restart settles what was waiting in its groups (``Service._start_dispatching``: resolutions and
``alert()`` events the outbox shows untold go out); ``tests/dispatch/test_restart.py`` holds that.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import pytest
from hypothesis import HealthCheck, event, example, given, note, settings
from hypothesis import strategies as st

from alerts.config.settings import AlertsSettings
from alerts.dispatch.groups import Dispatcher
from alerts.dispatch.router import Router
from alerts.dispatch.routes import Route
from alerts.model import Alert, AlertSource, AlertStatus, Notification, NotificationStatus, Severity, fingerprint
from alerts.notify.delivery import Deliverer
from alerts.notify.message import group_key
from alerts.notify.muting import InhibitMuter, SilenceMuter
from alerts.notify.nflog import NotificationLog
from alerts.notify.pipeline import Pipeline
from alerts.silence.matchers import Matcher
from alerts.silence.silences import new_silence
from alerts.storage import Store, open_store
from alerts.timeinterval.intervals import is_muted, parse_mute_times

SERIES = 4
"""Series ``s`` is rule ``rule{s % 2}`` on run ``r{s // 2}``: two rules, two runs."""
RUNS = 2
CHANNELS = ("a", "b")
T0 = 1_800_000_000.0


# The history ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fire:
    """The series fires: a new alert, or (already firing) an update of its firing alert."""

    series: int


@dataclass(frozen=True)
class Resolve:
    """The series' firing alert resolves (nothing happens if it does not fire)."""

    series: int


@dataclass(frozen=True)
class Event:
    """An ``alert()`` call on a run: a new alert each, told once, never resolved."""

    run: int


Change = Fire | Resolve | Event


@dataclass(frozen=True)
class Submit:
    """One ``Dispatcher.submit`` of the changes. ``when``: ``then flush``, the flush a group due now
    gets at once; ``during flush``, while a flush is under way (at its first wait for the database), as
    a request can arrive in the service."""

    changes: tuple[Change, ...]
    when: Literal["alone", "then flush", "during flush"]


@dataclass(frozen=True)
class Tick:
    """Time passes; ``on_time``: every timer due on the way fires on time (else one late flush at the end)."""

    seconds: float
    on_time: bool


@dataclass(frozen=True)
class Mute:
    """A silence from now on, for ``seconds``, of a rule's alerts, a run's alerts (events too), or both."""

    rule: int | None
    run: int | None
    seconds: float

    def matchers(self) -> dict[str, str]:
        return {**({"rule": f"rule{self.rule}"} if self.rule is not None else {}),
                **({"run": f"r{self.run}"} if self.run is not None else {})}


@dataclass(frozen=True)
class Reload:
    """The config is reloaded: the example's other config (or back), groups rebuilt by ``reroute``."""


@dataclass(frozen=True)
class Restart:
    """The service stops and starts again on the same database."""


Op = Submit | Tick | Mute | Reload | Restart


@dataclass(frozen=True)
class Timers:
    group_wait: float
    group_interval: float
    repeat_interval: float
    send_resolved: bool

    def config(self) -> dict[str, Any]:
        return {"group_wait": self.group_wait, "group_interval": self.group_interval,
                "repeat_interval": self.repeat_interval, "send_resolved": self.send_resolved}


@dataclass(frozen=True)
class Config:
    defaults: Timers
    group_by: tuple[str, ...]
    rule0_route: Timers | None
    """A route sending ``rule0`` to channel ``b`` only, grouped by run, with its own timers."""
    rule0_continues: bool
    """The ``rule0`` route says ``continue``, and a catch-all route after it takes every alert too."""
    inhibit: bool
    """While ``rule1`` fires on a run, it inhibits ``rule0`` on that run."""

    def settings(self) -> AlertsSettings:
        routes: list[dict[str, Any]] = []
        if self.rule0_route is not None:
            routes.append({"match": {"rule": "rule0"}, "channels": ["b"], "group_by": ["rule", "run"],
                           "continue": self.rule0_continues, **self.rule0_route.config()})
            if self.rule0_continues:
                routes.append({"match": {"project": "vision"}})
        return AlertsSettings.model_validate({
            "channels": {name: {"type": "webhook", "url": f"http://127.0.0.1:9/{name}"} for name in CHANNELS},
            "defaults": {"channels": list(CHANNELS), "group_by": list(self.group_by), **self.defaults.config()},
            "routes": routes,
            "inhibit": [{"source": {"rule": "rule1"}, "target": {"rule": "rule0"}, "equal": ["run"]}] if self.inhibit
            else []})


timers = st.builds(Timers, group_wait=st.sampled_from([0.0, 1.0, 2.5]), group_interval=st.sampled_from([1.0, 2.0, 5.0]),
                   repeat_interval=st.sampled_from([1.0, 2.0, 4.0, 8.0]), send_resolved=st.booleans())
group_bys = st.sampled_from([("rule",), ("project",), ("rule", "run"), ("...",)])
configs = st.builds(Config, defaults=timers, group_by=group_bys, rule0_route=st.none() | timers,
                    rule0_continues=st.booleans(), inhibit=st.booleans())


@st.composite
def config_pairs(draw: st.DrawFn) -> tuple[Config, Config]:
    """A config and the one a reload brings: new timers on the same routes (every group keeps its key),
    new routes and grouping on the same timers, or any other."""
    first = draw(configs)
    change = draw(st.sampled_from(["timers", "routes", "any"]))
    if change == "timers":
        other = replace(first, defaults=draw(timers), rule0_route=first.rule0_route and draw(timers))
    elif change == "routes":
        other = replace(first, group_by=draw(group_bys), rule0_route=draw(st.none() | st.just(first.defaults)),
                        rule0_continues=draw(st.booleans()))
    else:
        other = draw(configs)
    return first, replace(other, inhibit=first.inhibit)  # the inhibitor's own reload is not what is tested here


series = st.integers(0, SERIES - 1)
changes = st.one_of(st.builds(Fire, series), st.builds(Resolve, series), st.builds(Event, st.integers(0, RUNS - 1)))
when = st.sampled_from(["alone", "then flush", "during flush"])
one_change = st.builds(Submit, st.tuples(changes), when)
batch = st.builds(Submit, st.lists(changes, min_size=2, max_size=5).map(tuple), when)
tick = st.builds(Tick, st.sampled_from([0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 5.0, 9.0]), st.booleans())
mute = (st.builds(Mute, st.none() | st.integers(0, 1), st.integers(0, RUNS - 1), st.sampled_from([1.0, 2.5, 6.0]))
        | st.builds(Mute, st.integers(0, 1), st.none(), st.sampled_from([1.0, 2.5, 6.0])))
OPTIONAL = {"batch": batch, "mute": mute, "reload": st.just(Reload()), "restart": st.just(Restart())}


@st.composite
def histories(draw: st.DrawFn) -> list[Op]:
    """Changes and time passing, and some of the other kinds of step (swarm testing: a history without
    silences, say, tests the rest harder; and shrinks to one)."""
    kinds = draw(st.sets(st.sampled_from(sorted(OPTIONAL))))
    ops = st.one_of(one_change, one_change, tick, *(OPTIONAL[kind] for kind in sorted(kinds)))
    return draw(st.lists(ops, min_size=6, max_size=40))


# The system under test, as the service wires it ------------------------------------------------------
@dataclass
class Stack:
    dispatcher: Dispatcher
    pipeline: Pipeline
    nflog: NotificationLog
    silences: SilenceMuter


def build_stack(store: Store, config: AlertsSettings, clock: Any, new_id: Any) -> Stack:
    """``Service.__init__``'s notify wiring, with the clock and ids injected. The deliverer is not
    started: what the pipeline queues stays in the outbox, where the test reads it."""
    deliverer = Deliverer(store, {}, config.delivery, clock=clock)
    intervals = parse_mute_times(config.mute_times)
    nflog = NotificationLog(store)
    holder: list[Dispatcher] = []
    inhibitor = InhibitMuter(config.inhibit, lambda: holder[0].firing_labels())
    silences = SilenceMuter(store)
    pipeline = Pipeline(store, deliverer, nflog, silencer=silences, inhibitor=inhibitor,
                        mute_times=lambda names, moment: is_muted(names, intervals, moment), clock=clock,
                        new_id=new_id)
    dispatcher = Dispatcher(Router.from_settings(config), pipeline.flush, public_url="http://localhost:8080",
                            clock=clock)
    holder.append(dispatcher)
    return Stack(dispatcher, pipeline, nflog, silences)


# The model and the checks -----------------------------------------------------------------------------
@dataclass(frozen=True)
class Target:
    """Where an alert is notified: a group (its key) on one channel, under the group's route."""

    group: str
    channel: str
    route: Route


@dataclass
class Told:
    """What one (channel, group) has been told so far."""

    last_at: float = -math.inf
    last_firing: frozenset[str] = frozenset()
    last_resolved: frozenset[str] = frozenset()
    firing: set[str] = field(default_factory=set)
    resolved: set[str] = field(default_factory=set)


class World:
    def __init__(self, directory: Path, configs: tuple[Config, Config]) -> None:
        self.url = f"sqlite:///{directory / 'alerts.db'}"
        self.configs = configs
        self.settings = configs[0].settings()
        self.router = Router.from_settings(self.settings)
        self.now = T0
        self.notification_ids = (f"n{i}" for i in itertools.count())
        self.episodes = [0] * SERIES
        self.event_ids = itertools.count()
        self.firing: dict[int, Alert] = {}  # series -> its firing alert
        self.spans: dict[int, list[list[float]]] = {s: [] for s in range(SERIES)}  # series -> [start, end] firing
        self.firing_at_flush: set[int] | None = None  # the series firing when a raced flush began
        self.latest: dict[str, Alert] = {}  # alert id -> its latest state submitted
        self.racing: dict[str, AlertStatus | None] = {}  # alert id -> its state before a change a flush raced
        self.since: dict[str, float] = {}  # alert id -> when it started firing, or resolved
        self.targets: dict[str, list[Target]] = {}
        self.joined: dict[tuple[str, str], float] = {}  # (alert id, group key) -> when a reload last put it there
        self.routes: dict[str, Route] = {}  # group key -> route (of the config in force)
        self.told: dict[tuple[str, str], Told] = {}  # (channel, group key) -> what it was told
        self.seen: set[str] = set()  # notification ids read from the outbox
        self.restarted_at = -math.inf
        self.silences: list[tuple[dict[str, str], float, float]] = []  # matchers, start, end
        self.forgotten: set[tuple[str, Target]] = set()  # changes a restart dropped untold (see ``restart``)
        self.regrouped: set[str] = set()  # alert ids a reload re-placed
        self.restored_untold: set[tuple[str, Target]] = set()  # firing alerts a restart restored, not told there
        self.resolved_untold: set[tuple[str, Target]] = set()  # resolved before they were told firing there
        self.flushes: list[float] = []  # when the dispatcher flushed what was due
        self.store: Store
        self.stack: Stack

    async def start(self) -> None:
        self.store = open_store(self.url)
        await self.store.open()
        self.stack = build_stack(self.store, self.settings, lambda: self.now, lambda: next(self.notification_ids))
        await self.stack.silences.refresh()  # as Service.start does

    async def close(self) -> None:
        await self.stack.dispatcher.stop()
        await self.store.close()

    async def apply(self, op: Op) -> None:
        if isinstance(op, Submit):
            await self.submit(op)
        elif isinstance(op, Tick):
            await self.tick(op.seconds, on_time=op.on_time)
        elif isinstance(op, Mute):
            await self.mute(op)
        elif isinstance(op, Reload):
            await self.reload()
        else:
            await self.restart()

    # Operations ------------------------------------------------------------------------------------
    async def submit(self, op: Submit) -> None:
        before = {alert_id: alert.status for alert_id, alert in self.latest.items()}
        firing_before = set(self.firing)
        alerts = [alert for alert in (self.change(change) for change in op.changes) if alert is not None]
        if not alerts:
            return
        # As the rule engine does: rule alerts are saved, then handed to the dispatcher.
        await self.store.save_alerts([alert for alert in alerts if alert.source is AlertSource.RULE])
        if op.when == "during flush":
            # The flush runs up to its first wait, then the submit runs whole (it never waits): the flush
            # may tell these alerts as they were before, or not at all.
            self.racing = {alert.id: before.get(alert.id) for alert in alerts}
            self.firing_at_flush = firing_before
            await asyncio.gather(self.stack.dispatcher.flush_due(), self.stack.dispatcher.submit(alerts, None))
            self.flushes.append(self.now)
            await self.observe()
            self.racing, self.firing_at_flush = {}, None
            return
        await self.stack.dispatcher.submit(alerts, None)
        if op.when == "then flush":
            await self.flush()

    def change(self, change: Change) -> Alert | None:
        if isinstance(change, Fire):
            alert = self.firing.get(change.series)
            if alert is None:
                alert = self.firing[change.series] = self.new_alert(change.series)
                self.since[alert.id] = self.now
                self.spans[change.series].append([self.now, math.inf])
        elif isinstance(change, Resolve):
            firing = self.firing.pop(change.series, None)
            if firing is None:
                return None
            alert = replace(firing, status=AlertStatus.RESOLVED, ends_at=self.now, resolved_reason="condition cleared")
            self.since[alert.id] = self.now
            self.resolved_untold.update((alert.id, target) for target in self.targets[alert.id]
                                        if alert.id not in self.told.get((target.channel, target.group), Told()).firing)
            self.spans[change.series][-1][1] = self.now
        else:
            alert = self.new_event(change.run)
            self.since[alert.id] = self.now
        self.latest[alert.id] = alert
        if alert.id not in self.targets:
            self.targets[alert.id] = self.routed(alert)
        return replace(alert)

    def routed(self, alert: Alert) -> list[Target]:
        targets = [Target(group_key(route.id, route.group_labels(alert)), channel, route)
                   for route in self.router.routes_for(alert) for channel in route.channels]
        self.routes.update((target.group, target.route) for target in targets)
        return targets

    def new_alert(self, series: int) -> Alert:
        rule, run = f"rule{series % 2}", f"r{series // 2}"
        labels = {"alertname": rule, "rule": rule, "source": "rule", "severity": "warning", "project": "vision",
                  "run": run, "run_name": run, "metric": "loss"}
        episode = self.episodes[series]
        self.episodes[series] += 1
        return Alert(id=f"s{series}.{episode}", fingerprint=fingerprint(labels), source=AlertSource.RULE,
                     project="vision", title="loss high", text="", severity=Severity.WARNING, labels=labels,
                     status=AlertStatus.FIRING, starts_at=self.now, rule=rule, metric="loss", value=2.0,
                     threshold=1.0, created_at=self.now)

    def new_event(self, run: int) -> Alert:
        labels = {"alertname": "sdk", "source": "sdk", "severity": "warning", "project": "vision",
                  "run": f"r{run}", "run_name": f"r{run}"}
        return Alert(id=f"e{next(self.event_ids)}", fingerprint=fingerprint({**labels, "title": "diverged"}),
                     source=AlertSource.SDK, project="vision", title="diverged", text="", severity=Severity.WARNING,
                     labels=labels, status=AlertStatus.FIRING, starts_at=self.now, created_at=self.now)

    async def tick(self, seconds: float, *, on_time: bool) -> None:
        until = self.now + seconds
        while on_time:  # the dispatcher loop's way: wake at the earliest timer, flush what is due
            due = min((group.next_flush for group in self.stack.dispatcher.groups.values()), default=math.inf)
            if due > until:
                break
            self.now = max(self.now, due)
            await self.flush()
        self.now = until
        await self.flush()

    async def mute(self, op: Mute) -> None:
        matchers = op.matchers()
        silence = new_silence([Matcher(name, "=", value) for name, value in matchers.items()], starts_at=self.now,
                              ends_at=self.now + op.seconds, created_by="test", comment="quiet", now=self.now)
        await self.store.save_silence(silence.to_json())
        await self.stack.silences.refresh()  # the service's silences job, at once
        self.silences.append((matchers, self.now, self.now + op.seconds))

    def mutes(self, alert: Alert) -> list[tuple[float, float]]:
        """When ``alert`` is muted: its silences, and the firing of the alerts that inhibit it."""
        spans = [(begins, ends) for matchers, begins, ends in self.silences
                 if all(alert.labels.get(k) == v for k, v in matchers.items())]
        if self.configs[0].inhibit and alert.labels.get("rule") == "rule0":
            spans += [(begins, ends) for s in self.inhibitors(alert) for begins, ends in self.spans[s]]
        return spans

    def inhibitors(self, alert: Alert) -> list[int]:
        return [s for s in range(SERIES) if s % 2 == 1 and f"r{s // 2}" == alert.labels.get("run")]

    def muted(self, alert: Alert, start: float, end: float) -> bool:
        """Whether ``alert`` is muted at some moment of [start, end] (at a moment both ends inclusive: the
        order of changes and flushes at one instant is not worth modelling)."""
        return any(begins <= end and start <= ends for begins, ends in self.mutes(alert))

    def muted_now(self, alert: Alert) -> bool:
        """Whether the flush that just ran muted ``alert`` (exactly)."""
        if any(begins <= self.now < ends for matchers, begins, ends in self.silences
               if all(alert.labels.get(k) == v for k, v in matchers.items())):
            return True
        firing = self.firing if self.firing_at_flush is None else self.firing_at_flush
        return (self.configs[0].inhibit and alert.labels.get("rule") == "rule0"
                and any(s in firing for s in self.inhibitors(alert)))

    def unmuted_since(self, alert: Alert) -> float:
        """When the last mute of ``alert`` ended (-inf: never muted); +inf while one may hold."""
        if self.muted(alert, self.now, self.now):
            return math.inf
        return max((ends for _, ends in self.mutes(alert) if ends <= self.now), default=-math.inf)

    async def reload(self) -> None:
        """As ``Service.reload`` does it for routes: the alerts in groups are routed and grouped again, each
        group on the new route's timers from now on (a group that keeps its key keeps its timer, unless
        the new route's would fire sooner); one that lands in a group it was not in is news there."""
        self.configs = self.configs[::-1]
        self.settings = self.configs[0].settings()
        self.router = Router.from_settings(self.settings)
        held = {entry.alert.id for group in self.stack.dispatcher.groups.values() for entry in group.alerts.values()}
        kept = {group.key for group in self.stack.dispatcher.groups.values()}
        await self.stack.dispatcher.reroute(self.router)
        if kept & set(self.stack.dispatcher.groups):
            event("a reload kept a group")
        self.regrouped |= held
        for alert_id in held:
            self.targets[alert_id] = self.routed(self.latest[alert_id])
            for target in self.targets[alert_id]:
                self.joined[(alert_id, target.group)] = self.now

    async def restart(self) -> None:
        """A new process on the same database: groups restored from its firing rule alerts, as
        ``Service._restore_groups`` restores them. The settling that follows in ``Service.start``
        (``_tell_untold``: a ``Service`` method on the real clock) is not run here, so what was still
        waiting in a group is no longer expected; ``tests/dispatch/test_restart.py`` holds the settling."""
        for alert_id, alert in self.latest.items():
            if alert.status is AlertStatus.FIRING and alert.source is AlertSource.RULE:
                self.restored_untold.update(  # restored as told: its resolution will not wait for a firing notice
                    (alert_id, target) for target in self.targets[alert_id]
                    if alert_id not in self.told.get((target.channel, target.group), Told()).firing)
                continue
            for target in self.targets[alert_id]:
                told = self.told.get((target.channel, target.group), Told())
                if alert_id not in (told.firing if alert.status is AlertStatus.FIRING else told.resolved):
                    self.forgotten.add((alert_id, target))
        if any(alert.id in told.firing for alert in self.firing.values() for told in self.told.values()):
            event("restart with told firing alerts")
        await self.close()
        await self.start()
        firing = await self.store.list_alerts(project=None, status="firing", source="rule", limit=10**9)
        self.stack.dispatcher.restore(firing, {})
        self.restarted_at = self.now

    async def flush(self) -> None:
        await self.stack.dispatcher.flush_due()
        self.flushes.append(self.now)
        await self.observe()

    async def observe(self) -> None:
        """Check what the last flush queued, and that nothing is overdue now."""
        queued = [n for n in await self.store.list_notifications(limit=10**9) if n.id not in self.seen]
        assert len({(n.channel, n.group_key) for n in queued}) == len(queued), "one notification per group and channel"
        for notification in sorted(queued, key=lambda n: n.id):
            self.seen.add(notification.id)
            self.check(notification)
        self.check_nothing_overdue()

    # Properties ------------------------------------------------------------------------------------
    def check(self, notification: Notification) -> None:
        message = notification.message
        listed = [(alert["id"], alert["status"]) for alert in message["alerts"]]
        where = f"{notification.channel} {notification.group_key} at +{self.now - T0:g}s: {listed}"
        assert notification.created_at == self.now and notification.status is NotificationStatus.PENDING
        route = self.routes.get(notification.group_key)
        assert route is not None, f"a group no alert belongs to: {where}"
        assert notification.channel in route.channels, f"a channel the route does not send to: {where}"
        assert group_key(route.id, message["group_labels"]) == notification.group_key, where
        assert listed, f"an empty notification: {where}"
        assert len({alert_id for alert_id, _ in listed}) == len(listed), f"an alert listed twice: {where}"
        firing = frozenset(alert_id for alert_id, status in listed if status == "firing")
        resolved = frozenset(alert_id for alert_id, status in listed if status == "resolved")
        assert len(firing) + len(resolved) == len(listed), where
        assert message["status"] == ("firing" if firing else "resolved"), where
        assert route.send_resolved or not resolved, f"resolved listed without send_resolved: {where}"
        told = self.told.setdefault((notification.channel, notification.group_key), Told())
        for alert_id, status in listed:
            assert alert_id in self.latest, f"an alert never submitted: {where}"
            assert not self.muted_now(self.latest[alert_id]), f"{alert_id} is muted: {where}"
            routed = {(target.group, target.channel) for target in self.targets[alert_id]}
            assert (notification.group_key, notification.channel) in routed, f"{alert_id} is not routed there: {where}"
            latest, racing = self.latest[alert_id].status, self.racing.get(alert_id)
            # Resolved before this group and channel were told it firing: told firing first, once.
            firing_first = status == "firing" and (alert_id not in told.firing or alert_id in self.regrouped)
            assert status == latest.value or (racing is not None and status == racing.value) or firing_first, \
                f"{alert_id} listed {status}, but it is {latest.value}: {where}"

        again = (firing | resolved) & told.resolved
        assert not again, f"{sorted(again)} listed again after being told resolved: {where}"
        events = {alert_id for alert_id in firing if self.latest[alert_id].source is AlertSource.SDK}
        assert not events & told.firing, f"events {sorted(events & told.firing)} told twice: {where}"
        news = (firing - told.last_firing) | (resolved - told.last_resolved)
        event(f"notification: {'news' if news else 'repeat'}")
        if not news:
            assert self.now - told.last_at >= route.repeat_interval, \
                f"nothing new {self.now - told.last_at:g}s after the last notification " \
                f"(repeat_interval {route.repeat_interval:g}s): {where}"
            assert firing, f"a resolved notification that tells nothing new: {where}"
        told.last_at, told.last_firing, told.last_resolved = self.now, firing, resolved
        told.firing |= firing
        told.resolved |= resolved

    def check_nothing_overdue(self) -> None:
        """Every alert has been told where it should, once its group's timers had it flushed: a firing rule
        alert that no silence mutes, and a resolution or an event that none muted since it came (they
        leave the group at its first flush, told or not; a resolution that waited for its alert to be told
        firing, one ``group_interval`` after that); and a rule alert that resolved was told firing first."""
        for alert_id, alert in self.latest.items():
            if alert.status is AlertStatus.RESOLVED:
                self.check_told_firing(alert)
            stays = alert.status is AlertStatus.FIRING and alert.source is AlertSource.RULE
            if stays:
                since = max(self.since[alert_id], self.restarted_at, self.unmuted_since(alert))
            elif self.muted(alert, self.since[alert_id], self.now):
                continue
            else:
                since = max(self.since[alert_id], self.restarted_at)
            for target in self.targets[alert_id]:
                if (alert_id, target) in self.forgotten:
                    continue
                joined = self.joined.get((alert_id, target.group), -math.inf)
                timers = max(target.route.group_wait, target.route.group_interval)
                due = max(since, joined) + timers
                if alert.status is AlertStatus.RESOLVED and ((alert_id, target) in self.resolved_untold
                                                             or joined > -math.inf):
                    # It may have waited for its firing to be told first: one group_interval after the flush
                    # that held it firing (the first once its group's timers ran, however late it came).
                    held = next((at for at in self.flushes if at >= max(alert.starts_at, joined) + timers), math.inf)
                    due = max(due, held + target.route.group_interval)
                if self.now < due:
                    continue
                told = self.told.get((target.channel, target.group), Told())
                what = f"{alert_id} ({alert.status.value} since +{self.since[alert_id] - T0:g}s) on " \
                       f"{target.channel} {target.group} at +{self.now - T0:g}s"
                if alert.status is AlertStatus.FIRING:
                    assert alert_id in told.firing, f"never told firing: {what}"
                elif target.route.send_resolved:
                    assert alert_id in told.resolved, f"never told resolved: {what}"

    def check_told_firing(self, alert: Alert) -> None:
        """A resolved rule alert was told firing on every channel of its groups, once its groups' timers
        had its firing flushed, unless something muted it meanwhile (a muted flush counts as telling
        it), a reload regrouped it, or a restart restored it untold (restored alerts count as told)."""
        if alert.source is not AlertSource.RULE or alert.id in self.regrouped:
            return
        if self.muted(alert, alert.starts_at, self.now):
            return
        for target in self.targets[alert.id]:
            if (alert.id, target) in self.forgotten or (alert.id, target) in self.restored_untold:
                continue
            if self.now < alert.starts_at + max(target.route.group_wait, target.route.group_interval):
                continue
            told = self.told.get((target.channel, target.group), Told())
            assert alert.id in told.firing, f"never told firing: {alert.id} (fired +{alert.starts_at - T0:g}s, " \
                f"resolved +{self.since[alert.id] - T0:g}s) on {target.channel} {target.group} at +{self.now - T0:g}s"

    async def settle(self) -> None:
        """Let every timer run; then the groups hold exactly the firing rule alerts."""
        routes = self.router.root.walk()
        await self.tick(2 * max(max(r.group_wait, r.group_interval) for r in routes) + 1, on_time=True)
        held = {(group.key, entry.alert.id, entry.alert.status)
                for group in self.stack.dispatcher.groups.values() for entry in group.alerts.values()}
        expected = {(target.group, alert.id, AlertStatus.FIRING) for alert in self.firing.values()
                    for target in self.targets[alert.id]}
        assert held == expected, f"groups hold {sorted(held - expected)}, miss {sorted(expected - held)}"


# The test ---------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A migrated, empty database: each example starts from a copy (migrating takes a third of a second)."""
    path = tmp_path_factory.mktemp("dispatch-properties") / "template.db"

    async def migrate() -> None:
        store = open_store(f"sqlite:///{path}")
        await store.open()
        await store.close()

    asyncio.run(migrate())
    yield path


async def play(template: Path, configs: tuple[Config, Config], history: list[Op]) -> None:
    with tempfile.TemporaryDirectory(dir=template.parent) as name:
        directory = Path(name)
        shutil.copy(template, directory / "alerts.db")
        world = World(directory, configs)
        await world.start()
        try:
            for op in history:
                await world.apply(op)
            await world.settle()
            event(f"notifications: {len(world.seen) // 10 * 10}+")
        finally:
            await world.close()


_QUICK = Timers(group_wait=0.0, group_interval=1.0, repeat_interval=1.0, send_resolved=False)
_RULE0_SLOW = Config(_QUICK, ("rule",), replace(_QUICK, group_interval=5.0), rule0_continues=False, inhibit=False)
_RESOLVED = Config(replace(_QUICK, send_resolved=True), ("rule",), None, rule0_continues=False, inhibit=False)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(configs=config_pairs(), history=histories())
# Found in longer runs (Dispatcher.reroute kept a group's old, longer timer); pinned, it is tried every time.
@example(configs=(_RULE0_SLOW, replace(_RULE0_SLOW, rule0_route=_QUICK)),
         history=[Submit((Fire(0),), "then flush"), Submit((Resolve(0), Fire(0)), "alone"), Reload(), Tick(1.0, True)])
# Fired and resolved before a flush, which then comes late: told firing then, resolved group_interval later.
@example(configs=(_RESOLVED, _RESOLVED),
         history=[Submit((Fire(0),), "alone"), Submit((Resolve(0),), "alone"), Tick(2.0, False), Tick(1.0, True)])
def test_grouping_and_dedup_invariants(template: Path, configs: tuple[Config, Config], history: list[Op]) -> None:
    # Printed with a failure even where a plugin silences Hypothesis' own printer (schemathesis' does).
    note(f"configs = {configs!r}\nhistory = {history!r}")
    asyncio.run(play(template, configs, history))
