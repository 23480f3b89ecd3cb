"""The running service: one object that owns the store, ingest, rules, notify and the scheduler."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import Any

import httpx
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from alerts.actions.stop import RunStopper
from alerts.charts.service import Charts
from alerts.cluster.leader import ALERT_CHANNEL, DispatchLeader
from alerts.cluster.ownership import RunOwnership
from alerts.config.settings import AlertsSettings
from alerts.dispatch.groups import Dispatcher
from alerts.dispatch.router import Router
from alerts.errors import ConfigError
from alerts.ingest.explicit_alerts import ExplicitAlerts
from alerts.ingest.prometheus import PrometheusAlerts
from alerts.ingest.runs import RunIngest
from alerts.model import Alert, AlertSource, AlertStatus, Run
from alerts.notify.channels import Channel, ChannelContext, build_channels
from alerts.notify.channels.base import RateLimit
from alerts.notify.delivery import Deliverer
from alerts.notify.muting import InhibitMuter, SilenceMuter
from alerts.notify.nflog import NotificationLog
from alerts.notify.pipeline import Pipeline
from alerts.observability.metrics import ServiceMetrics
from alerts.rules.engine import RuleEngine
from alerts.rules.loader import RuleSet, expand_rule_files, load_rules
from alerts.storage import Store, open_store
from alerts.storage.outage import guarded
from alerts.storage.retention import KINDS as RETENTION_KINDS
from alerts.timeinterval.intervals import is_muted, parse_mute_times

log = logging.getLogger(__name__)


def load_ruleset(settings: AlertsSettings) -> RuleSet:
    """The rules named by ``rule_files``; raises :class:`ConfigError` listing every problem."""
    return load_rules(expand_rule_files(settings.rule_files), channels=set(settings.channels))


SettingsSource = Callable[[], AlertsSettings]
"""Reads the config again (the file, then the command line's overrides); raises ConfigError."""

_RESTART_ONLY = ("server", "storage", "runs", "logging", "retention", "cluster", "charts")
_RETENTION_BATCHES_PER_TURN = 100
"""Sections a reload cannot change: the socket, the database and the scheduler's jobs."""


@dataclass(frozen=True)
class ReloadFailure:
    """The last reload that failed: when, and every problem (``file:line:col: ...``) it reported."""

    at: float
    errors: list[str]


class Service:
    def __init__(self, settings: AlertsSettings, *, store: Store | None = None,
                 ruleset: RuleSet | None = None, settings_source: SettingsSource | None = None) -> None:
        self.settings = settings
        self._settings_source = settings_source
        self.ruleset = ruleset if ruleset is not None else load_ruleset(settings)
        self.store = store or open_store(settings.storage.url)
        self.public_url = settings.server.public_url or f"http://{settings.server.host}:{settings.server.port}"
        self.charts = Charts(settings.charts, self.store, rules=lambda: self.ruleset.rules, public_url=self.public_url)
        """Charts of the alerts' series: attached by channels, behind signed URLs, on the dashboard."""
        self._context = ChannelContext(timeout=settings.delivery.timeout, public_url=self.public_url,
                                       store=self.store, charts=self.charts)
        self.channels = build_channels(settings, self._context)
        self.deliverer = Deliverer(self.store, self.channels, settings.delivery, rate_limits=_rate_limits(settings),
                                   concurrency=_concurrency(settings))
        self.silences = SilenceMuter(self.store)
        self._intervals = parse_mute_times(settings.mute_times)
        self.inhibitor = InhibitMuter(settings.inhibit, lambda: self.dispatcher.firing_labels())
        self.nflog = NotificationLog(self.store)
        self.pipeline = Pipeline(
            self.store, self.deliverer, self.nflog, silencer=self.silences,
            inhibitor=self.inhibitor, mute_times=lambda names, moment: is_muted(names, self._intervals, moment))
        self.dispatcher = Dispatcher(Router.from_settings(settings), self.pipeline.flush, public_url=self.public_url)
        # SQLite has one writer, this process: the runs it reads stay true in memory.
        self.runs = RunIngest(self.store, heartbeat_timeout=settings.runs.heartbeat_timeout,
                              cache_runs=settings.storage.url.startswith("sqlite"))
        cluster = settings.cluster
        # Replicas: a saved alert reaches the dispatch leader through the database (NOTIFY on commit).
        sink = _announced if cluster.enabled else self.dispatcher.submit
        self.explicit_alerts = ExplicitAlerts(self.store, sink)
        # One process holds the firing Prometheus alerts in memory; replicas read them at every post.
        self.prometheus = PrometheusAlerts(self.store, sink, settings.prometheus, cache=not cluster.enabled)
        self.started_at = time.time()
        """When this process started (Alertmanager's ``uptime`` in ``/api/v2/status``)."""
        self.stopper = RunStopper(self.store, self.runs)

        async def act_then_dispatch(alerts: list[Alert], run: Run | None) -> None:
            await self.stopper.on_alerts(alerts, run)  # before the batch is answered: the SDK hears of it then
            await sink(alerts, run)

        self.rules = RuleEngine(self.store, act_then_dispatch, public_url=self.public_url)
        self.metrics = ServiceMetrics(self.store)
        self.ownership: RunOwnership | None = None
        self.leader: DispatchLeader | None = None
        self.forwarding = httpx.AsyncClient(timeout=30.0)
        """Replicas: the client that forwards a run's points to the replica evaluating it."""
        self._submitted: dict[tuple[str, AlertStatus], None] = {}
        """Alert changes put into groups by :meth:`_dispatch_alerts` (a leader's, or a start's settling;
        oldest first, bounded)."""
        if cluster.enabled:
            self.replica_id = uuid.uuid4().hex[:16]
            self.store.alert_channel = ALERT_CHANNEL
            self.ownership = ownership = RunOwnership(
                self.store, self.rules, replica=self.replica_id, ttl=cluster.lease_ttl,
                url=cluster.advertise_url or self.public_url)
            self.runs.listeners.append(ownership)  # in front of the engine: it judges owned runs only
            self.runs.may_judge = lambda run: _is_none(ownership.claim(run))
            self.leader = DispatchLeader(settings.storage.url, interval=cluster.leader_check_interval,
                                         elected=self._lead, deposed=self._follow, alerts=self._dispatch_alerts)
            leader = self.leader
            self.prometheus.may_expire = lambda: leader.is_leader
            self.metrics.cluster_state = lambda: (leader.is_leader, ownership.held, ownership.takeovers,
                                                  ownership.forwarded)
        else:
            self.runs.listeners.append(self.rules)
        self.runs.observe_batch = self.metrics.batch_applied
        self.deliverer.observe_attempt = self.metrics.delivery_attempted
        self.scheduler = AsyncIOScheduler()
        self._reloading = asyncio.Lock()
        self.last_reload_error: ReloadFailure | None = None
        """Set when a reload fails (the old config stays active), cleared by the next good one."""

    async def start(self) -> None:
        """Open storage (migrating it), restore rule state, then start delivery and the periodic jobs."""
        await self.store.open()
        await self.charts.start()
        await self.silences.refresh()
        await self.prometheus.start()
        await self.rules.start(self.ruleset, restore_runs=self.ownership is None)
        self.deliverer.start()
        if self.leader is None:
            await self._start_dispatching()
        else:
            self.leader.start()
        timeout = self.settings.runs.heartbeat_timeout
        jobs: list[tuple[str, Callable[[], Awaitable[object]], float, str]] = [
            ("heartbeat-loss", self.runs.mark_silent_runs_crashed,
             self.settings.runs.crash_check_interval or min(5.0, timeout / 4), "the heartbeat check"),
            ("absent", self.rules.check_absent, 1.0, "the absence check"),
            ("silences", self.silences.refresh, 1.0, "refreshing silences"),
            ("prometheus-expiry", self.prometheus.expire, 1.0, "resolving expired Prometheus alerts"),
            ("retention", self.enforce_retention, self.settings.retention.interval, "retention"),
        ]
        if self.runs.caches_runs:
            jobs.append(("stop-requests", self.stopper.pick_up, 1.0, "picking up stop requests"))
        if self.ownership is not None:
            jobs.insert(0, ("run-leases", self.ownership.renew, self.settings.cluster.lease_ttl / 3,
                            "renewing run leases"))
        for job_id, job, seconds, what in jobs:
            # A database outage is one warning line per turn, and the job simply runs again at its next turn.
            self.scheduler.add_job(guarded(job, what, log), "interval", seconds=seconds, id=job_id,
                                   max_instances=1, coalesce=True)
        self.scheduler.start()
        if any(channel.draws_charts for channel in self.channels.values()):
            self.charts.warm()
        log.info("loaded %d rules from %d files", len(self.ruleset.rules), len(self.ruleset.files))
        # What start-up made (modules, rules, restored state) lives as long as the process: out of the
        # collector's reach, a full collection no longer walks it, which paused every request for 50-100 ms.
        gc.collect()
        gc.freeze()

    async def enforce_retention(self) -> dict[str, int]:
        """Delete what the ``retention`` settings say has expired, a batch per transaction, yielding to
        other work between batches; at most ``_RETENTION_BATCHES_PER_TURN`` batches of a kind per turn, so
        a large backlog is worked off over several turns. How many rows of each kind went."""
        settings = self.settings.retention
        if self.leader is not None and not self.leader.is_leader:
            return {}  # one replica deletes: the dispatch leader
        now = time.time()
        deleted: dict[str, int] = {}
        for kind in RETENTION_KINDS:
            age = getattr(settings, kind)
            if age is None:
                continue
            for _ in range(_RETENTION_BATCHES_PER_TURN):
                count = await self.store.purge_expired(kind, now - age, settings.batch_size)
                if not count:
                    break
                deleted[kind] = deleted.get(kind, 0) + count
                await asyncio.sleep(0)  # ingest's turn between two batches
        if deleted:
            log.info("retention deleted %s", ", ".join(f"{count} {kind}" for kind, count in deleted.items()))
        return deleted

    async def reload(self) -> dict[str, Any]:
        """Re-read the config and the rule files (SIGHUP, ``POST /api/v1/reload``).

        Everything is validated before anything changes: on any error the running config stays whole
        and :class:`ConfigError` is raised. Then rules, channels, routes, inhibition, mute times and
        delivery settings are swapped in place. Alert groups are rebuilt under the new routes with their
        timers, and the notification log still knows what each group was told, so a reload does not
        notify anyone again. ``server``, ``storage`` and ``runs`` need a restart; a change there is
        reported and otherwise ignored.
        """
        async with self._reloading:  # two SIGHUPs in a row apply one after the other
            try:
                settings = self._settings_source() if self._settings_source else self.settings
                ruleset = load_ruleset(settings)
                intervals = parse_mute_times(settings.mute_times)
                router = Router.from_settings(settings)
                channels, channel_changes = self._rebuilt_channels(settings)
            except ConfigError as exc:
                for line in exc.errors:
                    log.error("reload failed, keeping the running config: %s", line)
                self.last_reload_error = ReloadFailure(time.time(), list(exc.errors))
                raise
            restart = [name for name in _RESTART_ONLY if getattr(settings, name) != getattr(self.settings, name)]
            for name in _RESTART_ONLY:  # the running values stay in force
                setattr(settings, name, getattr(self.settings, name))
            await self.deliverer.reconfigure(channels, settings.delivery, _rate_limits(settings),
                                             _concurrency(settings))
            self.channels = channels
            rule_changes = await self.rules.reload(ruleset)
            self.inhibitor.replace(settings.inhibit)
            self.prometheus.settings = settings.prometheus
            self._intervals = intervals
            await self.dispatcher.reroute(router)
            self.settings, self.ruleset = settings, ruleset
            self.last_reload_error = None
        if restart:
            log.warning("reload: changes to %s take effect after a restart", ", ".join(restart))
        log.info("reloaded the config: %d rules (%s); channels %s", len(ruleset.rules),
                 ", ".join(f"{k} {len(v)}" for k, v in rule_changes.items()),
                 ", ".join(f"{k} {len(v)}" for k, v in channel_changes.items()))
        return {"rules": len(ruleset.rules), **rule_changes, "channels": channel_changes,
                "restart_required": restart}

    def _rebuilt_channels(self, settings: AlertsSettings) -> tuple[dict[str, Channel], dict[str, list[str]]]:
        """The channels for ``settings``: new objects for changed configs, the running ones otherwise
        (they keep their connections). Also what was added, changed and removed."""
        before = self.settings.channels
        if settings.delivery.timeout != self.settings.delivery.timeout:  # every channel holds the timeout
            self._context = ChannelContext(timeout=settings.delivery.timeout, public_url=self.public_url,
                                           store=self.store, charts=self.charts)
            unchanged: set[str] = set()
        else:
            unchanged = {name for name, config in settings.channels.items() if before.get(name) == config}
        fresh = build_channels(settings.model_copy(update={"channels": {
            name: config for name, config in settings.channels.items() if name not in unchanged}}), self._context)
        channels = {name: self.channels[name] if name in unchanged else fresh[name] for name in settings.channels}
        return channels, {"added": sorted(set(channels) - set(before)),
                          "changed": sorted(name for name in channels if name in before and name not in unchanged),
                          "removed": sorted(set(before) - set(channels))}

    async def _restore_groups(self) -> None:
        firing = [alert for source in (AlertSource.RULE, AlertSource.PROMETHEUS)
                  for alert in await self.store.list_alerts(project=None, status="firing", source=source.value,
                                                            limit=10**9)]
        runs = await self.store.get_runs_by_pk([a.run_pk for a in firing if a.run_pk is not None])
        self.dispatcher.restore(firing, runs)

    # Replicas: the dispatch leader's side -------------------------------------------------------------
    async def _lead(self) -> None:
        """Elected: rebuild the groups from the database as a restart does (firing rule alerts), then
        settle what the last leader may have died before telling, from the outbox (the record of what
        was told): rule alerts resolved and ``alert()`` calls made in the last ``_TAKEOVER_LOOKBACK``
        seconds go out as :meth:`_dispatch_alerts` would have sent them, unless already told."""
        await self.dispatcher.stop()
        self.dispatcher.groups.clear()
        self._submitted.clear()
        self.nflog.clear()  # another leader wrote the log since this replica last read it
        await self._start_dispatching()

    async def _start_dispatching(self) -> None:
        """What a restart (or an election) puts back: the groups of the firing rule alerts, then the
        changes that were waiting in their groups when the last dispatching process stopped."""
        await self._restore_groups()
        self.dispatcher.start()
        await self._tell_untold()

    async def _tell_untold(self) -> None:
        """Settle what the last process to dispatch (a leader, or this service before a restart) may have
        stopped before telling: rule alerts resolved and ``alert()`` calls made in the last
        ``_TAKEOVER_LOOKBACK`` seconds that no notification in the outbox carries go out now, as
        :meth:`_dispatch_alerts` sends them (dedup and muting decide as always)."""
        since = time.time() - _TAKEOVER_LOOKBACK
        told = await self.store.told_since(since)
        notices: list[tuple[str, str]] = []
        for alert in await self.store.alerts_ended_since(since):
            if (alert.id, AlertStatus.RESOLVED.value) not in told:
                if (alert.id, AlertStatus.FIRING.value) not in told:
                    notices.append((alert.id, AlertStatus.FIRING.value))
                notices.append((alert.id, AlertStatus.RESOLVED.value))
        for alert in await self.store.list_alerts(project=None, source="sdk", limit=1000):
            if alert.created_at >= since and (alert.id, alert.status.value) not in told:
                notices.append((alert.id, alert.status.value))
        if notices:
            log.info("%d alert changes the last dispatcher had not told: telling them now", len(notices))
            await self._dispatch_alerts(notices)

    async def _follow(self) -> None:
        await self.dispatcher.stop()
        self.dispatcher.groups.clear()

    async def _dispatch_alerts(self, notices: list[tuple[str, str]]) -> None:
        """The leader hears of saved alerts (``(id, status)`` from NOTIFY, in commit order) and puts them
        into their groups, as one process does. The database has each alert's latest state only: one
        heard as firing that has resolved since is first submitted (and a due group flushed) as it fired,
        so its firing notice is not lost to the resolution that overtook it."""
        ids = list(dict.fromkeys(alert_id for alert_id, _ in notices))
        heard_firing = {alert_id for alert_id, status in notices if status == AlertStatus.FIRING.value}
        submitted = self._submitted
        # A change is heard once per save, and an alert read resolved carries its firing with it: what was
        # submitted already is not again (a resolution re-added after its flush would be told twice).
        alerts = [alert for alert in await self.store.get_alerts(ids) if (alert.id, alert.status) not in submitted]
        runs = await self.store.get_runs_by_pk([a.run_pk for a in alerts if a.run_pk is not None])
        overtaken = [replace(alert, status=AlertStatus.FIRING, ends_at=None, resolved_reason=None)
                     for alert in alerts if alert.id in heard_firing and alert.status is AlertStatus.RESOLVED
                     and (alert.id, AlertStatus.FIRING) not in submitted]
        for alert in [*overtaken, *alerts]:
            submitted[(alert.id, alert.status)] = None
        while len(submitted) > _SUBMITTED_REMEMBERED:
            del submitted[next(iter(submitted))]
        if overtaken:
            await self._submit_by_run(overtaken, runs)
            await self.dispatcher.flush_due()
        await self._submit_by_run(alerts, runs)

    async def _submit_by_run(self, alerts: list[Alert], runs: dict[int, Run]) -> None:
        by_run: dict[int | None, list[Alert]] = {}
        for alert in alerts:
            by_run.setdefault(alert.run_pk, []).append(alert)
        for run_pk, changed in by_run.items():
            await self.dispatcher.submit(changed, runs.get(run_pk) if run_pk is not None else None)

    async def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        if self.leader is not None:
            await self.leader.stop()
        await self.dispatcher.stop()
        await self.deliverer.stop()
        await self.charts.stop()
        if self.ownership is not None:
            with contextlib.suppress(Exception):  # the database may be gone: the leases then expire
                await self.ownership.release_all()
        await self.forwarding.aclose()
        await self.store.close()


_SUBMITTED_REMEMBERED = 100_000
_TAKEOVER_LOOKBACK = 600.0
"""Seconds of resolved alerts and ``alert()`` calls a new dispatch leader looks back over."""


async def _announced(_alerts: list[Alert], _run: Run | None) -> None:
    """Replicas' alert sink: nothing to do, the store's NOTIFY took the alerts to the leader."""


async def _is_none(claim: Awaitable[object]) -> bool:
    return await claim is None


def _rate_limits(settings: AlertsSettings) -> dict[str, RateLimit]:
    return {name: config.rate_limit for name, config in settings.channels.items() if config.rate_limit is not None}


def _concurrency(settings: AlertsSettings) -> dict[str, int]:
    return {name: config.concurrency or settings.delivery.concurrency for name, config in settings.channels.items()}
