"""The running service: one object that owns the store, ingest, rules, notify and the scheduler."""

from __future__ import annotations

import logging
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from alerts.config.settings import AlertsSettings
from alerts.dispatch.groups import Dispatcher
from alerts.dispatch.router import Router
from alerts.errors import ConfigError
from alerts.ingest.explicit_alerts import ExplicitAlerts
from alerts.ingest.runs import RunIngest
from alerts.notify.channels import ChannelContext, build_channels
from alerts.notify.delivery import Deliverer
from alerts.notify.muting import InhibitMuter, SilenceMuter
from alerts.notify.nflog import NotificationLog
from alerts.notify.pipeline import Pipeline
from alerts.rules.engine import RuleEngine
from alerts.rules.loader import RuleSet, expand_rule_files, load_rules
from alerts.storage import Store, open_store
from alerts.timeinterval.intervals import is_muted, parse_mute_times

log = logging.getLogger(__name__)


def load_ruleset(settings: AlertsSettings) -> RuleSet:
    """The rules named by ``rule_files``; raises :class:`ConfigError` listing every problem."""
    return load_rules(expand_rule_files(settings.rule_files), channels=set(settings.channels))


class Service:
    def __init__(self, settings: AlertsSettings, *, store: Store | None = None,
                 ruleset: RuleSet | None = None) -> None:
        self.settings = settings
        self.ruleset = ruleset if ruleset is not None else load_ruleset(settings)
        self.store = store or open_store(settings.storage.url)
        self.public_url = settings.server.public_url or f"http://{settings.server.host}:{settings.server.port}"
        context = ChannelContext(timeout=settings.delivery.timeout, public_url=self.public_url, store=self.store)
        self.deliverer = Deliverer(self.store, build_channels(settings, context), settings.delivery,
                                   rate_limits={name: config.rate_limit for name, config in settings.channels.items()
                                                if config.rate_limit is not None})
        self.silences = SilenceMuter(self.store)
        intervals = parse_mute_times(settings.mute_times)
        self.pipeline = Pipeline(
            self.store, self.deliverer, NotificationLog(context), silencer=self.silences,
            inhibitor=InhibitMuter(settings.inhibit, lambda: self.dispatcher.firing_labels()),
            mute_times=lambda names, moment: is_muted(names, intervals, moment))
        self.dispatcher = Dispatcher(Router.from_settings(settings), self.pipeline.flush, public_url=self.public_url)
        self.runs = RunIngest(self.store, heartbeat_timeout=settings.runs.heartbeat_timeout)
        self.explicit_alerts = ExplicitAlerts(self.store, self.dispatcher.submit)
        self.rules = RuleEngine(self.store, self.dispatcher.submit, public_url=self.public_url)
        self.runs.listeners.append(self.rules)
        self.scheduler = AsyncIOScheduler()

    async def start(self) -> None:
        """Open storage (migrating it), restore rule state, then start delivery and the periodic jobs."""
        await self.store.open()
        await self.silences.refresh()
        await self.rules.start(self.ruleset)
        await self._restore_groups()
        self.deliverer.start()
        self.dispatcher.start()
        timeout = self.settings.runs.heartbeat_timeout
        interval = self.settings.runs.crash_check_interval or min(5.0, timeout / 4)
        self.scheduler.add_job(self.runs.mark_silent_runs_crashed, "interval", seconds=interval,
                               id="heartbeat-loss", max_instances=1, coalesce=True)
        self.scheduler.add_job(self.rules.check_absent, "interval", seconds=1.0, id="absent",
                               max_instances=1, coalesce=True)
        self.scheduler.add_job(self.silences.refresh, "interval", seconds=1.0, id="silences",
                               max_instances=1, coalesce=True)
        self.scheduler.start()
        log.info("loaded %d rules from %d files", len(self.ruleset.rules), len(self.ruleset.files))

    async def reload_rules(self) -> dict[str, Any]:
        """Re-read the rule files. On any error the last good rules stay active and ConfigError is raised."""
        try:
            ruleset = load_ruleset(self.settings)
        except ConfigError as exc:
            for line in exc.errors:
                log.error("reload failed, keeping the last good rules: %s", line)
            raise
        changes = await self.rules.reload(ruleset)
        self.ruleset = ruleset
        log.info("reloaded %d rules: %s", len(ruleset.rules),
                 ", ".join(f"{k} {len(v)}" for k, v in changes.items()))
        return {"rules": len(ruleset.rules), **changes}

    async def _restore_groups(self) -> None:
        firing = await self.store.list_alerts(project=None, status="firing", source="rule", limit=10**9)
        runs = await self.store.get_runs_by_pk([a.run_pk for a in firing if a.run_pk is not None])
        self.dispatcher.restore(firing, runs)

    async def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        await self.dispatcher.stop()
        await self.deliverer.stop()
        await self.store.close()
