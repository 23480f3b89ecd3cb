"""The service's Prometheus metrics (prometheus-client), served at ``GET /metrics``.

Counters and the evaluation histogram are counted where the work happens (ingest, delivery); what the
database knows (alerts by state, the outbox's depth and the age of its oldest pending notification) is read
when Prometheus scrapes, so every replica reports the shared truth and nothing drifts from it. One registry
per :class:`ServiceMetrics`, not the library's global one: two services in one process (tests) stay apart.
No label carries a project, run or secret: channel names (from the config) and fixed words only.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from alerts.model import AlertStatus
from alerts.storage import Store

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
# Rule evaluation of one record batch: ~0.1 ms for a quiet batch, tens of ms when alerts fire.
_EVALUATION_BUCKETS = (0.0002, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0, 2.5)


class ServiceMetrics:
    def __init__(self, store: Store, *, clock: Callable[[], float] = time.time) -> None:
        self._store = store
        self._clock = clock
        self.registry = CollectorRegistry()
        registry = self.registry
        self._points = Counter("runwatch_points_ingested", "Metric points stored and evaluated.",
                               registry=registry)
        self._batches = Counter("runwatch_record_batches", "Record batches applied.", registry=registry)
        self._evaluation = Histogram("runwatch_evaluation_seconds", "Rule evaluation time of one record batch.",
                                     buckets=_EVALUATION_BUCKETS, registry=registry)
        self._deliveries = Counter("runwatch_notification_attempts",
                                   "Delivery attempts by channel and outcome (delivered, retry, failed).",
                                   ["channel", "outcome"], registry=registry)
        self._alerts = Gauge("runwatch_alerts", "Alerts in the database by state.", ["state"], registry=registry)
        self._outbox = Gauge("runwatch_outbox_pending", "Notifications waiting for delivery (the outbox).",
                             registry=registry)
        self._oldest = Gauge("runwatch_outbox_oldest_pending_age_seconds",
                             "Age of the oldest notification waiting for delivery; 0 when none waits.",
                             registry=registry)
        self._leader = Gauge("runwatch_dispatch_leader",
                             "1 when this process runs dispatch (alert groups and their timers).", registry=registry)
        self._leases = Gauge("runwatch_run_leases", "Runs this replica evaluates (holds the lease of).",
                             registry=registry)
        self._takeovers = Gauge("runwatch_run_takeovers", "Runs this replica took over since it started "
                                "(from a replica that died, or after a restart).", registry=registry)
        self._forwarded = Gauge("runwatch_forwarded_batches", "Record batches this replica sent on to the "
                                "replica evaluating their run.", registry=registry)
        self.cluster_state: Callable[[], tuple[bool, int, int, int]] = lambda: (True, 0, 0, 0)
        """(dispatch leader?, leases held, takeovers, forwarded batches): one process alone leads."""

    def batch_applied(self, points: int, evaluation_seconds: float) -> None:
        """A record batch was stored (``points`` points) and evaluated in ``evaluation_seconds``."""
        self._batches.inc()
        self._points.inc(points)
        self._evaluation.observe(evaluation_seconds)

    def delivery_attempted(self, channel: str, outcome: str) -> None:
        """One delivery attempt to ``channel`` ended: ``delivered``, ``retry`` (recoverable) or ``failed``."""
        self._deliveries.labels(channel=channel, outcome=outcome).inc()

    async def render(self) -> bytes:
        """The exposition text, with the database's gauges read now."""
        counts = await self._store.ops_counts()
        for state in AlertStatus:
            self._alerts.labels(state=state.value).set(counts.alerts_by_status.get(state.value, 0))
        self._outbox.set(counts.pending_notifications)
        oldest = counts.oldest_pending_created_at
        self._oldest.set(max(0.0, self._clock() - oldest) if oldest is not None else 0.0)
        leader, leases, takeovers, forwarded = self.cluster_state()
        self._forwarded.set(forwarded)
        self._leader.set(1 if leader else 0)
        self._leases.set(leases)
        self._takeovers.set(takeovers)
        return generate_latest(self.registry)
