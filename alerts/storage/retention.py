"""Retention: deleting what the ``retention:`` settings say has expired, in small batches.

Each call of :func:`purge_step` deletes at most ``limit`` rows of one kind, in the caller's transaction, so
a transaction stays short and ingest (which needs the same write lock on SQLite) waits for one batch at
most. The service's job calls it until nothing is left or its turn is over (``alerts/service.py``).

Kinds, each against its own age:
- ``notification_log``: entries of the notification log (``channel_state`` keys ``nflog:...``) not written
  for that long. A group that still fires is written again at every repeat, so only a repeat interval
  longer than this re-notifies (Alertmanager's ``--data.retention``, 120 h, behaves the same).
- ``delivered_notifications`` / ``failed_notifications``: outbox rows delivered, or failed for good, that
  long ago. Pending rows are never deleted.
- ``resolved_alerts``: alerts resolved that long ago. Firing and pending alerts are never deleted.
- ``points``: the metric history (points, steps, block summaries, media) of runs that ended that long ago;
  the run, its config, summary, events, files and alerts stay.
- ``finished_runs``: runs that ended that long ago, with everything of theirs (history, events, files'
  entries, alerts, artifact uses). Artifacts stay: other runs use them. Running runs are never deleted.
"""

from __future__ import annotations

from sqlalchemy import delete, exists, select, tuple_
from sqlalchemy.ext.asyncio import AsyncConnection

from alerts.model import AlertStatus, NotificationStatus, RunState
from alerts.storage import tables as t

KINDS = ("notification_log", "delivered_notifications", "failed_notifications", "resolved_alerts", "points",
         "finished_runs")
"""In the order the job purges them."""

_NFLOG_PREFIX = "nflog:"  # alerts/notify/nflog.py
_ENDED = t.runs.c.state != RunState.RUNNING.value
_HISTORY = (t.metrics, t.metric_blocks, t.media, t.steps)  # steps last: see _purge_history
_RUN_ROWS = (t.run_events, t.run_files, t.artifact_usage, t.alerts)


async def purge_step(conn: AsyncConnection, kind: str, before: float, limit: int) -> int:
    """Delete at most ``limit`` expired rows of ``kind``; how many were deleted (0: nothing is left)."""
    if kind == "notification_log":
        s = t.channel_state.c
        chosen = select(s.channel, s.key).where(s.key.startswith(_NFLOG_PREFIX), s.updated_at < before).limit(limit)
        return await _deleted(conn, delete(t.channel_state).where(tuple_(s.channel, s.key).in_(chosen)))
    if kind in ("delivered_notifications", "failed_notifications"):
        n = t.notifications.c
        delivered = kind == "delivered_notifications"
        # A failed row's next_attempt_at is when it failed for good (alerts/notify/delivery.py).
        when = n.delivered_at if delivered else n.next_attempt_at
        status = NotificationStatus.DELIVERED if delivered else NotificationStatus.FAILED
        chosen = select(n.id).where(n.status == status.value, when < before).limit(limit)
        return await _deleted(conn, delete(t.notifications).where(n.id.in_(chosen)))
    if kind == "resolved_alerts":
        a = t.alerts.c
        chosen = select(a.id).where(a.status == AlertStatus.RESOLVED.value, a.ends_at < before).limit(limit)
        return await _deleted(conn, delete(t.alerts).where(a.id.in_(chosen)))
    if kind == "points":
        run_pk = await _ended_run(conn, before, with_history=True)
        return 0 if run_pk is None else await _purge_history(conn, run_pk, limit)
    if kind == "finished_runs":
        run_pk = await _ended_run(conn, before, with_history=False)
        if run_pk is None:
            return 0
        deleted = await _purge_history(conn, run_pk, limit)
        if deleted:
            return deleted  # the rest of its history first, a batch at a time
        for table in _RUN_ROWS:  # a run's own rows are few
            deleted += await _deleted(conn, delete(table).where(table.c.run_pk == run_pk))
        return deleted + await _deleted(conn, delete(t.runs).where(t.runs.c.pk == run_pk))
    raise ValueError(f"unknown retention kind {kind!r}")


async def _ended_run(conn: AsyncConnection, before: float, *, with_history: bool) -> int | None:
    """One run that ended before ``before`` (and still has history, if asked), or None."""
    query = select(t.runs.c.pk).where(_ENDED, t.runs.c.finished_at < before)
    if with_history:
        query = query.where(exists().where(t.steps.c.run_pk == t.runs.c.pk))
    return (await conn.execute(query.order_by(t.runs.c.finished_at).limit(1))).scalar()


async def _purge_history(conn: AsyncConnection, run_pk: int, limit: int) -> int:
    """Delete up to ``limit`` rows of the run's history, table by table (points first, steps last, so
    that ``_ended_run(with_history=True)`` finds the run until all of it is gone)."""
    deleted = 0
    for table in _HISTORY:
        primary = list(table.primary_key.columns)
        chosen = select(*primary).where(table.c.run_pk == run_pk).limit(limit - deleted)
        deleted += await _deleted(conn, delete(table).where(tuple_(*primary).in_(chosen)))
        if deleted >= limit:
            break
    return deleted


async def _deleted(conn: AsyncConnection, statement: object) -> int:
    result = await conn.execute(statement)  # type: ignore[call-overload]
    return int(result.rowcount or 0)
