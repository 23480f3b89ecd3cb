"""What replicas share through the database (``docs/architecture.md``): run leases, the alert wake-up
channel, and the reads a replica needs to take over a run (its recent points), to judge a ``compare`` rule
(the points of the other runs of a group, which other replicas received) or to take over the dispatch
(alerts by id, recently resolved alerts).

A run's lease is one row: taking it is a single conditional upsert (free, expired or already ours), so
two replicas can never both hold it, whatever their timing.
"""

from __future__ import annotations

import math
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import delete, select, text, update
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from alerts.model import Alert, AlertSource
from alerts.storage import tables as t
from alerts.storage.base import RunLease

__all__ = ["SqlCluster"]

_NOTIFY_IDS = 100
"""Alerts per NOTIFY: 100 ``[id, status]`` pairs stay well inside PostgreSQL's 8000-byte payload."""
_SERIES_SOURCES = (AlertSource.RULE.value, AlertSource.PROMETHEUS.value)
"""Sources whose alerts fire and resolve (an ``alert()`` call is an event: it never resolves)."""


_WINDOW_POINTS = 100_000
"""The most points a ``seconds`` window reads."""


class SqlCluster:
    """Mixin of :class:`~alerts.storage.sql.SqlStore`: the replica methods of the store."""

    if TYPE_CHECKING:
        _dialect: str
        alert_channel: str | None

        @property
        def engine(self) -> AsyncEngine: ...

        def _begin(self) -> AbstractAsyncContextManager[AsyncConnection]: ...

        def _insert(self, table: Any) -> Any: ...

        def _alerts_from(self, rows: Any) -> list[Alert]: ...

    async def _announce(self, conn: AsyncConnection, alerts: list[Alert]) -> None:
        """NOTIFY the alert channel of ``alerts`` (``[[id, status], ...]``) inside the transaction that saves
        them: delivered to listeners on commit, never for a rolled-back write. The status is the one saved:
        an alert that fired and resolved before the leader read it is still news as firing."""
        if self.alert_channel is None or self._dialect != "postgresql" or not alerts:
            return
        notices = [[alert.id, alert.status.value] for alert in alerts]
        for start in range(0, len(notices), _NOTIFY_IDS):
            await conn.execute(text("SELECT pg_notify(:channel, :payload)"), {
                "channel": self.alert_channel,
                "payload": orjson.dumps(notices[start:start + _NOTIFY_IDS]).decode()})

    async def acquire_run_lease(self, run_pk: int, replica: str, url: str, *, now: float,
                                until: float) -> RunLease:
        leases = t.run_leases
        stmt = self._insert(leases).values(run_pk=run_pk, replica=replica, url=url, expires_at=until)
        stmt = stmt.on_conflict_do_update(
            index_elements=["run_pk"], set_={"replica": replica, "url": url, "expires_at": until},
            where=(leases.c.replica == replica) | (leases.c.expires_at <= now))
        async with self._begin() as conn:
            await conn.execute(stmt)
            row = (await conn.execute(select(leases).where(leases.c.run_pk == run_pk))).one()
        return RunLease(row.run_pk, row.replica, row.url, row.expires_at)

    async def renew_run_leases(self, replica: str, run_pks: list[int], until: float) -> list[int]:
        if not run_pks:
            return []
        leases = t.run_leases
        held: list[int] = []
        async with self._begin() as conn:
            for start in range(0, len(run_pks), 1000):
                chunk = run_pks[start:start + 1000]
                await conn.execute(update(leases).where(leases.c.replica == replica, leases.c.run_pk.in_(chunk))
                                   .values(expires_at=until))
                held.extend(row.run_pk for row in (await conn.execute(select(leases.c.run_pk).where(
                    leases.c.replica == replica, leases.c.run_pk.in_(chunk)))).all())
        return held

    async def release_run_leases(self, replica: str, run_pks: list[int] | None = None) -> None:
        leases = t.run_leases
        query = delete(leases).where(leases.c.replica == replica)
        if run_pks is not None:
            if not run_pks:
                return
            query = query.where(leases.c.run_pk.in_(run_pks))
        async with self._begin() as conn:
            await conn.execute(query)

    async def recent_points(self, run_pk: int, key: str, *, count: int,
                            seconds: float) -> list[tuple[str, int, float, float]]:
        m = t.metrics.c
        newest_first = select(m.step, m.timestamp, m.value).where(m.run_pk == run_pk, m.key == key) \
            .order_by(m.step.desc())
        async with self.engine.connect() as conn:
            latest = (await conn.execute(newest_first.limit(1))).first()
            if latest is None:
                return []
            since = latest.timestamp - seconds
            window = list((await conn.execute(newest_first.where(m.timestamp >= since).limit(_WINDOW_POINTS))).all())
            first_step = window[-1].step if window else latest.step + 1
            before = list((await conn.execute(newest_first.where(m.step < first_step).limit(count))).all())
        rows = [*reversed(before), *reversed(window)]
        return [(key, row.step, row.timestamp, math.nan if row.value is None else row.value) for row in rows]

    async def key_points(self, run_pk: int, key: str, *, after_step: int,
                         limit: int) -> list[tuple[int, float, float]]:
        m = t.metrics.c
        query = select(m.step, m.timestamp, m.value).where(m.run_pk == run_pk, m.key == key, m.step > after_step) \
            .order_by(m.step).limit(limit)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [(row.step, row.timestamp, math.nan if row.value is None else row.value) for row in rows]

    async def get_alerts(self, alert_ids: list[str]) -> list[Alert]:
        found: list[Alert] = []
        async with self.engine.connect() as conn:
            for start in range(0, len(alert_ids), 1000):
                rows = (await conn.execute(select(t.alerts).where(
                    t.alerts.c.id.in_(alert_ids[start:start + 1000])))).all()
                found.extend(self._alerts_from(rows))
        return found

    async def alerts_ended_since(self, at: float) -> list[Alert]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(t.alerts).where(
                t.alerts.c.source.in_(_SERIES_SOURCES), t.alerts.c.status == "resolved",
                t.alerts.c.ends_at >= at))).all()
        return self._alerts_from(rows)

    async def told_since(self, at: float) -> set[tuple[str, str]]:
        told: set[tuple[str, str]] = set()
        async with self.engine.connect() as conn:
            result = await conn.stream(select(t.notifications.c.message).where(t.notifications.c.created_at >= at))
            async for (message,) in result:
                told.update((alert["id"], alert["status"]) for alert in message.get("alerts", ()))
        return told
