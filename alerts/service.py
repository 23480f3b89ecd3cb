"""The running service: one object that owns the store, ingest, notify and the scheduler."""

from __future__ import annotations

import logging

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from alerts.config.settings import AlertsSettings
from alerts.dispatch.router import Router
from alerts.ingest.explicit_alerts import ExplicitAlerts
from alerts.ingest.runs import RunIngest
from alerts.notify.channels import build_channels
from alerts.notify.delivery import Deliverer
from alerts.notify.pipeline import Notifier
from alerts.storage import Store, open_store

log = logging.getLogger(__name__)


class Service:
    def __init__(self, settings: AlertsSettings, *, store: Store | None = None) -> None:
        self.settings = settings
        self.store = store or open_store(settings.storage.url)
        self.public_url = settings.server.public_url or f"http://{settings.server.host}:{settings.server.port}"
        self.deliverer = Deliverer(self.store, build_channels(settings), settings.delivery)
        self.notifier = Notifier(self.store, Router(settings.defaults), self.deliverer,
                                 public_url=self.public_url)
        self.runs = RunIngest(self.store, heartbeat_timeout=settings.runs.heartbeat_timeout)
        self.explicit_alerts = ExplicitAlerts(self.store, self.notifier.submit)
        self.scheduler = AsyncIOScheduler()

    async def start(self) -> None:
        """Open storage (migrating it), then start delivery and the periodic jobs."""
        await self.store.open()
        self.deliverer.start()
        timeout = self.settings.runs.heartbeat_timeout
        interval = self.settings.runs.crash_check_interval or min(5.0, timeout / 4)
        self.scheduler.add_job(self.runs.mark_silent_runs_crashed, "interval", seconds=interval,
                               id="heartbeat-loss", max_instances=1, coalesce=True)
        self.scheduler.start()

    async def stop(self) -> None:
        if self.scheduler.running:
            self.scheduler.shutdown(wait=False)
        await self.deliverer.stop()
        await self.store.close()
