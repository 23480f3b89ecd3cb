"""The :class:`Store` on SQLAlchemy Core (async): SQLite (aiosqlite) and PostgreSQL (asyncpg).

The two differ only in the engine URL, connection pragmas and the dialect's ``INSERT .. ON CONFLICT``;
everything else is shared SQL.
"""

from __future__ import annotations

import asyncio
import functools
import json
import math
import sqlite3
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager, nullcontext
from dataclasses import replace
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config as AlembicConfig
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Table, bindparam, case, event, func, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from alerts.errors import StorageError
from alerts.model import (
    Alert,
    AlertSource,
    AlertStatus,
    ApiKey,
    Notification,
    NotificationStatus,
    Run,
    RunEvent,
    RunState,
    Severity,
    stop_text,
    stopped_reason,
)
from alerts.storage import tables as t
from alerts.storage.base import (
    AlertCall,
    AlertCallOutcome,
    ChannelState,
    DeliveryAttempt,
    NewRun,
    OpsCounts,
    RecordBatch,
    RunExit,
    SeriesData,
    SeriesX,
    Store,
)
from alerts.storage.cluster import SqlCluster
from alerts.storage.files import SqlFiles
from alerts.storage.retention import purge_step
from alerts.storage.series import BLOCK_UPSERT, create_series_columns, read_series, touched_blocks
from alerts.storage.writer import SqliteWriter

_MIGRATIONS = Path(__file__).parent / "migrations"


def async_url(url: str) -> str:
    """Map the user-facing storage URL to SQLAlchemy's async driver URL."""
    if url.startswith("sqlite:///"):
        return "sqlite+aiosqlite:///" + url[len("sqlite:///"):]
    if url.startswith("postgresql://"):
        return "postgresql+asyncpg://" + url[len("postgresql://"):]
    return url


class SqlStore(SqlFiles, SqlCluster, Store):
    def __init__(self, url: str) -> None:
        self._url = url
        self._engine: AsyncEngine | None = None
        self._dialect = "postgresql" if url.startswith("postgresql") else "sqlite"
        self._sql = _hot_statements(self._dialect)
        # SQLite has one writer at a time. Pooled connections racing for it do not queue: the loser
        # sleeps in SQLite's busy handler (1, 2, 5, 10... ms), which under concurrent requests cost more
        # than the writes. Writers of this process take turns on this lock instead; the busy timeout
        # still covers other processes (the CLI adding a key or a silence) and the storage writer.
        self._lock = asyncio.Lock() if self._dialect == "sqlite" else None
        # SQLite on a file: record batches go to one writer thread with its own connection (writer.py).
        self._writer: SqliteWriter | None = None
        self._claim = _claim_statement(self._dialect)

    @property
    def engine(self) -> AsyncEngine:
        if self._engine is None:
            raise StorageError("the store is not open")
        return self._engine

    async def open(self) -> None:
        path = self._url[len("sqlite:///"):] if self._dialect == "sqlite" else ""
        if self._dialect == "sqlite":
            if path and path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
        try:
            self._engine = create_async_engine(async_url(self._url))
            if self._dialect == "sqlite":
                event.listen(self._engine.sync_engine, "connect", _sqlite_pragmas)
                event.listen(self._engine.sync_engine, "connect", create_series_columns)
            async with self._engine.begin() as conn:
                await conn.run_sync(_migrate)
            if self._dialect == "sqlite" and _shareable(path):
                writer = SqliteWriter(path)
                await writer.start()
                self._writer = writer
        except Exception as exc:  # the message must not carry the URL: it may hold a password
            raise StorageError(f"cannot open storage ({self._dialect}): {type(exc).__name__}: "
                               f"{_redact(str(exc), self._url)}") from None

    async def close(self) -> None:
        if self._writer is not None:
            writer, self._writer = self._writer, None
            await writer.close()
        if self._engine is not None:
            await self._engine.dispose()
            self._engine = None

    @asynccontextmanager
    async def _begin(self) -> AsyncIterator[AsyncConnection]:
        """A write transaction, committed on exit."""
        async with self._lock or nullcontext():
            if self._writer is None:
                async with self.engine.begin() as conn:
                    yield conn
                return
            # The storage writer steps aside (see SqliteWriter.paused), then SQLite's write lock is taken
            # at once: a transaction that read first and then writes would fail (SQLITE_BUSY, no busy
            # wait) if the writer committed in between.
            async with self._writer.paused(), self.engine.begin() as conn:
                await conn.exec_driver_sql("BEGIN IMMEDIATE")
                yield conn

    @staticmethod
    def _alerts_from(rows: Any) -> list[Alert]:
        return [_alert(row) for row in rows]

    def _insert(self, table: Table) -> Any:
        return (postgresql.insert if self._dialect == "postgresql" else sqlite.insert)(table)

    # API keys -----------------------------------------------------------------------------------
    async def insert_api_key(self, key: ApiKey, key_hash: str) -> None:
        async with self._begin() as conn:
            await conn.execute(t.api_keys.insert().values(
                id=key.id, key_hash=key_hash, project=key.project, admin=key.admin,
                created_at=key.created_at, revoked_at=None))

    async def find_api_key(self, key_hash: str) -> ApiKey | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(t.api_keys).where(
                t.api_keys.c.key_hash == key_hash, t.api_keys.c.revoked_at.is_(None)))).first()
        return _api_key(row) if row else None

    async def list_api_keys(self) -> list[ApiKey]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(t.api_keys).order_by(t.api_keys.c.created_at))).all()
        return [_api_key(row) for row in rows]

    async def revoke_api_key(self, key_id: str, at: float) -> bool:
        async with self._begin() as conn:
            result = await conn.execute(update(t.api_keys).where(
                t.api_keys.c.id == key_id, t.api_keys.c.revoked_at.is_(None)).values(revoked_at=at))
        return bool(result.rowcount)

    # Runs ---------------------------------------------------------------------------------------
    async def upsert_run(self, new: NewRun, at: float) -> tuple[Run, bool]:
        async with self._begin() as conn:
            await conn.execute(self._insert(t.projects).values(name=new.project, created_at=at)
                               .on_conflict_do_nothing())
            inserted = await conn.execute(self._insert(t.runs).values(
                project=new.project, id=new.id, name=new.name, state=RunState.RUNNING.value,
                config=new.config, tags=new.tags, notes=new.notes, group_name=new.group,
                job_type=new.job_type, summary={}, host=new.host, pid=new.pid, system=new.system, created_at=at,
                started_at=new.started_at, last_contact=at, last_seq=0,
            ).on_conflict_do_nothing())
            created = bool(inserted.rowcount)
            row = (await conn.execute(select(t.runs).where(
                t.runs.c.project == new.project, t.runs.c.id == new.id))).one()
            if created:
                await _add_event(conn, row.pk, RunState.RUNNING, "started", at)
            else:
                values: dict[str, Any] = {"last_contact": at}
                if new.config:  # a resumed run's init carries its config, updated by the new process
                    values["config"] = {**(row.config or {}), **new.config}
                if new.system:  # a resumed run describes its newest machine; an init without it keeps the old
                    values["system"] = new.system
                if row.state != RunState.RUNNING.value:
                    values.update(state=RunState.RUNNING.value, finished_at=None, exit_code=None,
                                  failure_reason=None)
                    await _add_event(conn, row.pk, RunState.RUNNING, "resumed", at)
                await conn.execute(update(t.runs).where(t.runs.c.pk == row.pk).values(**values))
                row = (await conn.execute(select(t.runs).where(t.runs.c.pk == row.pk))).one()
        return _run(row), created

    async def get_run(self, project: str, run_id: str) -> Run | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(t.runs).where(
                t.runs.c.project == project, t.runs.c.id == run_id))).first()
        return _run(row) if row else None

    async def get_runs_by_pk(self, pks: list[int]) -> dict[int, Run]:
        if not pks:
            return {}
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(t.runs).where(t.runs.c.pk.in_(sorted(set(pks)))))).all()
        return {row.pk: _run(row) for row in rows}

    async def list_runs(self, *, project: str | None, state: str | None = None, tag: str | None = None,
                        name: str | None = None, limit: int = 100, offset: int = 0) -> list[Run]:
        query = select(t.runs).order_by(t.runs.c.created_at.desc(), t.runs.c.pk.desc())
        if project is not None:
            query = query.where(t.runs.c.project == project)
        if state is not None:
            query = query.where(t.runs.c.state == state)
        if name is not None:
            query = query.where(t.runs.c.name == name)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        found = [_run(row) for row in rows]
        if tag is not None:  # tags are a JSON list; filtering here keeps the SQL portable
            found = [run for run in found if tag in run.tags]
        return found[offset:offset + limit]

    async def list_projects(self) -> list[dict[str, Any]]:
        query = (select(t.runs.c.project, func.count(), func.sum(case((t.runs.c.state == RunState.RUNNING.value, 1),
                                                                   else_=0)),
                        func.max(t.runs.c.started_at))
                 .group_by(t.runs.c.project).order_by(t.runs.c.project))
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [{"name": name, "runs": int(count), "running": int(running or 0), "last_started_at": last}
                for name, count, running, last in rows]

    async def touch_run(self, run_pk: int, at: float) -> None:
        if self._writer is not None:
            await self._writer.run(_executing("UPDATE runs SET last_contact = ? WHERE pk = ? AND last_contact < ?",
                                              [(at, run_pk, at)]))
            return
        async with self._begin() as conn:
            await conn.execute(update(t.runs).where(t.runs.c.pk == run_pk, t.runs.c.last_contact < at)
                               .values(last_contact=at))

    async def apply_records(self, run: Run, batch: RecordBatch, at: float) -> tuple[bool, RunEvent | None]:
        if self._writer is not None:
            if not (batch.media or batch.events or batch.exit is not None):
                return await self._writer.apply(run.pk, batch, at), None
            await self._writer.flush()  # this run's earlier batches first
        async with self._begin() as conn:
            if self._dialect == "sqlite":
                # One hop to the driver's thread for the whole batch: through SQLAlchemy every statement
                # is its own round trip (greenlet switch, queue, future), which cost more than the writes.
                raw = await conn.get_raw_connection()
                driver: Any = raw.driver_connection
                claimed = await driver._execute(_write_points_sqlite, driver._conn, self._sql, run.pk, batch, at)
                if not claimed:
                    return False, None
            elif not await self._write_points(conn, run, batch, at):
                return False, None
            if batch.media:
                await conn.execute(t.media.insert(), [
                    {"run_pk": run.pk, "key": k, "step": s, "kind": kind, "value": value}
                    for k, s, kind, value in batch.media])
            values: dict[str, Any] = {}
            if batch.config is not None:
                values["config"] = batch.config
            if batch.summary is not None:
                values["summary"] = batch.summary
            if values:
                await conn.execute(update(t.runs).where(t.runs.c.pk == run.pk).values(**values))
            for reason, event_at in batch.events:
                await _add_event(conn, run.pk, RunState.RUNNING, reason, event_at)
            if batch.exit is not None:
                return True, await _end_run(conn, run.pk, batch.exit)
        return True, None

    async def _write_points(self, conn: AsyncConnection, run: Run, batch: RecordBatch, at: float) -> bool:
        # The conditional update is the guard against two concurrent deliveries of one batch.
        claimed = await conn.execute(update(t.runs).where(
            t.runs.c.pk == run.pk, t.runs.c.last_seq == batch.first_seq - 1,
        ).values(last_seq=batch.last_seq, last_contact=at))
        if not claimed.rowcount:
            return False
        # Points are the hot path: plain driver-level executemany, no per-row SQL compilation.
        pk = run.pk
        if batch.steps:
            await conn.exec_driver_sql(self._sql["upsert_steps"], [(pk, s, ts, rt) for s, ts, rt in batch.steps])
        if batch.points:
            await conn.exec_driver_sql(self._sql["upsert_points"], [
                (pk, k, s, ts, None if v != v else v) for k, s, ts, v in batch.points])
            if blocks := touched_blocks(pk, batch.points):
                await conn.execute(_BLOCK_UPSERT, blocks)
        return True

    async def end_run(self, run_pk: int, exit: RunExit, *,
                      silent_since: float | None = None) -> RunEvent | None:
        async with self._begin() as conn:
            return await _end_run(conn, run_pk, exit, silent_since=silent_since)

    async def request_stop(self, run_pk: int, request: dict[str, Any], at: float) -> dict[str, Any] | None:
        async with self._begin() as conn:
            row = (await conn.execute(select(t.runs.c.state, t.runs.c.stop_request)
                                      .where(t.runs.c.pk == run_pk))).one_or_none()
            if row is None or row.state != RunState.RUNNING.value:
                return None
            if row.stop_request is not None:
                return dict(row.stop_request)
            await conn.execute(update(t.runs).where(t.runs.c.pk == run_pk).values(stop_request=request))
            await _add_event(conn, run_pk, RunState.RUNNING, f"stop requested: {stop_text(request)}", at)
        return request

    async def stop_requests(self) -> dict[tuple[str, str], dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(t.runs.c.project, t.runs.c.id, t.runs.c.stop_request).where(
                t.runs.c.state == RunState.RUNNING.value, t.runs.c.stop_request.isnot(None)))).all()
        return {(row.project, row.id): dict(row.stop_request) for row in rows}

    async def find_silent_runs(self, last_contact_before: float) -> list[Run]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(t.runs).where(
                t.runs.c.state == RunState.RUNNING.value,
                t.runs.c.last_contact < last_contact_before))).all()
        return [_run(row) for row in rows]

    async def list_run_events(self, run_pk: int) -> list[RunEvent]:
        async with self.engine.connect() as conn:
            run_row = (await conn.execute(select(t.runs).where(t.runs.c.pk == run_pk))).one()
            rows = (await conn.execute(select(t.run_events).where(t.run_events.c.run_pk == run_pk)
                                       .order_by(t.run_events.c.id))).all()
        run = _run(run_row)
        return [RunEvent(run=run, state=RunState(row.state), reason=row.reason, at=row.at) for row in rows]

    async def history(self, run_pk: int, *, keys: list[str] | None, after_step: int,
                      limit: int) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows, _ = await _history_page(conn, run_pk, keys=keys, after_step=after_step, limit=limit)
        return rows

    async def history_pages(self, run_pk: int, *, keys: list[str] | None,
                            after_step: int = -1) -> AsyncIterator[list[dict[str, Any]]]:
        while True:
            # A connection per page: a slow reader must not pin a read transaction (and with it the
            # SQLite WAL) for the whole export.
            async with self.engine.connect() as conn:
                columns = keys or await _metric_keys(conn, run_pk)
                rows, last = await _history_page(conn, run_pk, keys=keys, columns=columns, after_step=after_step,
                                                 limit=max(100, _PAGE_POINTS // max(1, len(columns))))
            if rows:
                yield rows
            if last is None:
                return
            after_step = last

    async def metric_keys(self, run_pk: int) -> list[str]:
        async with self.engine.connect() as conn:
            return await _metric_keys(conn, run_pk)

    async def last_step(self, run_pk: int) -> int | None:
        async with self.engine.connect() as conn:  # the steps primary key makes this one index probe
            found = await conn.scalar(select(func.max(t.steps.c.step)).where(t.steps.c.run_pk == run_pk))
        return int(found) if found is not None else None

    async def series(self, run_pk: int, key: str, *, x: SeriesX = "step", start: float | None = None,
                     end: float | None = None, width: int = 1000) -> SeriesData:
        if self._writer is None:
            async with self.engine.connect() as conn:  # one read transaction: every pass sees the same points
                return await read_series(conn, self._dialect, run_pk, key, x=x, start=start, end=end, width=width)
        for _attempt in range(3):
            async with self.engine.connect() as conn:
                # One snapshot for the stale mark and every pass (pysqlite begins none for reads): the
                # blocks are read only when, in it, the writer has rebuilt them for all of the run's points.
                await conn.exec_driver_sql("BEGIN")
                if await conn.scalar(select(t.runs.c.blocks_stale_low).where(t.runs.c.pk == run_pk)) is None:
                    return await read_series(conn, self._dialect, run_pk, key, x=x, start=start, end=end,
                                             width=width)
            await self._writer.settle()
        async with self.engine.connect() as conn:  # a run written faster than it settles: its points only
            await conn.exec_driver_sql("BEGIN")
            return await read_series(conn, self._dialect, run_pk, key, x=x, start=start, end=end, width=width,
                                     blocks=False)

    async def steps_at(self, run_pk: int, timestamps: list[float]) -> dict[float, int | None]:
        found: dict[float, int | None] = {}
        async with self.engine.connect() as conn:
            for at in sorted(set(timestamps)):
                found[at] = (await conn.execute(select(func.min(t.steps.c.step)).where(
                    t.steps.c.run_pk == run_pk, t.steps.c.timestamp >= at))).scalar()
        return found

    async def list_media(self, run_pk: int) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(t.media).where(t.media.c.run_pk == run_pk)
                                       .order_by(t.media.c.step, t.media.c.id))).all()
        return [{"key": row.key, "step": row.step, "kind": row.kind, "value": row.value} for row in rows]

    # Alerts -------------------------------------------------------------------------------------
    async def get_alert(self, alert_id: str) -> Alert | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(t.alerts).where(t.alerts.c.id == alert_id))).first()
        return None if row is None else _alert(row)

    async def add_explicit_alerts(self, project: str, run_id: str, calls: list[AlertCall],
                                  build: Callable[[AlertCall, int], Alert]) -> list[AlertCallOutcome]:
        if not calls:
            return []
        client_ids = sorted({call.client_id for call in calls})
        titles = sorted({call.title for call in calls})
        if self._writer is not None:
            def write(db: sqlite3.Connection) -> list[AlertCallOutcome]:
                marks = ", ".join("?" * len(client_ids))
                stored = dict(db.execute(f"SELECT client_id, id FROM alerts WHERE client_id IN ({marks})",
                                         client_ids).fetchall())
                marks = ", ".join("?" * len(titles))
                state = {title: [at, suppressed] for title, at, suppressed in db.execute(
                    "SELECT title, last_sent_at, suppressed FROM alert_throttles WHERE project = ? AND run_id = ? "
                    f"AND title IN ({marks})", [project, run_id, *titles]).fetchall()}
                outcomes, created, changed = _throttle(calls, stored, state, build)
                db.executemany(_RAW_THROTTLE_UPSERT, [(project, run_id, title, state[title][0], state[title][1])
                                                      for title in changed])
                db.executemany(_RAW_ALERT_UPSERT, [_raw_alert_row(alert) for alert in created])
                return outcomes
            return await self._writer.run(write)
        throttles = t.alert_throttles.c
        async with self._begin() as conn:
            stored = {row.client_id: row.id for row in (await conn.execute(
                select(t.alerts.c.client_id, t.alerts.c.id).where(t.alerts.c.client_id.in_(client_ids)))).all()}
            state = {row.title: [row.last_sent_at, row.suppressed] for row in (await conn.execute(
                select(throttles.title, throttles.last_sent_at, throttles.suppressed).where(
                    throttles.project == project, throttles.run_id == run_id,
                    throttles.title.in_(titles)))).all()}
            outcomes, created, changed = _throttle(calls, stored, state, build)
            if changed:
                stmt = self._insert(t.alert_throttles)
                await conn.execute(stmt.on_conflict_do_update(
                    index_elements=["project", "run_id", "title"],
                    set_={"last_sent_at": stmt.excluded.last_sent_at, "suppressed": stmt.excluded.suppressed},
                ), [{"project": project, "run_id": run_id, "title": title, "last_sent_at": state[title][0],
                     "suppressed": state[title][1]} for title in changed])
            if created:
                await conn.execute(t.alerts.insert(), [_alert_row(alert) for alert in created])
                await self._announce(conn, created)
        return outcomes

    async def save_alerts(self, alerts: list[Alert]) -> None:
        if not alerts:
            return
        if self._writer is not None:
            rows = [_raw_alert_row(alert) for alert in alerts]
            await self._writer.run(_executing(_RAW_ALERT_UPSERT, rows))
            return
        stmt = self._insert(t.alerts)
        columns = [c.name for c in t.alerts.columns if c.name != "id"]
        async with self._begin() as conn:
            await conn.execute(stmt.on_conflict_do_update(
                index_elements=["id"], set_={name: stmt.excluded[name] for name in columns},
            ), [_alert_row(alert) for alert in alerts])
            await self._announce(conn, alerts)

    async def list_alerts(self, *, project: str | None, status: str | None = None, run_pk: int | None = None,
                          source: str | None = None, rule: str | None = None, severity: str | None = None,
                          fingerprints: list[str] | None = None, limit: int = 500) -> list[Alert]:
        query = select(t.alerts).order_by(t.alerts.c.starts_at.desc()).limit(limit)
        if fingerprints is not None:
            query = query.where(t.alerts.c.fingerprint.in_(fingerprints))
        if source is not None:
            query = query.where(t.alerts.c.source == source)
        if rule is not None:
            query = query.where(t.alerts.c.rule == rule)
        if severity is not None:
            query = query.where(t.alerts.c.severity == severity)
        if project is not None:
            query = query.where(t.alerts.c.project == project)
        if status is not None:
            query = query.where(t.alerts.c.status == status)
        if run_pk is not None:
            query = query.where(t.alerts.c.run_pk == run_pk)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_alert(row) for row in rows]

    # Notification outbox ------------------------------------------------------------------------
    async def enqueue_notifications(self, notifications: list[Notification],
                                    channel_state: list[ChannelState] | None = None) -> None:
        if not notifications and not channel_state:
            return
        if self._writer is not None:
            outbox = [_raw_notification_row(n) for n in notifications]
            states = [(s.channel, s.key, json.dumps(s.value), s.at) for s in channel_state or []]

            def write(db: sqlite3.Connection) -> None:
                db.executemany(_RAW_NOTIFICATION_INSERT, outbox)
                db.executemany(_RAW_CHANNEL_STATE_UPSERT, states)
            await self._writer.run(write)
            return
        async with self._begin() as conn:
            if notifications:
                await conn.execute(t.notifications.insert(), [{
                    "id": n.id, "channel": n.channel, "group_key": n.group_key, "status": n.status.value,
                    "message": n.message, "attempts": n.attempts, "next_attempt_at": n.next_attempt_at,
                    "last_error": n.last_error, "created_at": n.created_at, "delivered_at": n.delivered_at,
                } for n in notifications])
            if channel_state:
                await self._set_channel_states(conn, channel_state)

    async def claim_notifications(self, *, now: float, lease_until: float,
                                  quotas: dict[str, int]) -> tuple[list[Notification], float | None]:
        claimed: list[Notification] = []
        async with self._begin() as conn:
            for channel, quota in quotas.items():
                if quota > 0:
                    rows = (await conn.execute(self._claim, {
                        "claim_channel": channel, "claim_now": now, "claim_quota": quota,
                        "claim_lease": lease_until})).all()
                    claimed.extend(_notification(row) for row in rows)
            next_due = (await conn.execute(_NEXT_DUE)).scalar()
        claimed.sort(key=lambda n: n.created_at)
        return claimed, None if next_due is None else float(next_due)

    async def record_attempts(self, attempts: list[DeliveryAttempt]) -> None:
        if not attempts:
            return
        async with self._begin() as conn:
            await conn.execute(_RECORD_ATTEMPT, [{
                "attempt_id": a.notification_id, "new_status": a.status.value, "new_attempts": a.attempts,
                "next_at": a.next_attempt_at, "error": a.error, "delivered": a.delivered_at,
            } for a in attempts])

    async def fail_unrouted_notifications(self, channels: list[str], error: str, at: float) -> int:
        async with self._begin() as conn:
            result = await conn.execute(update(t.notifications).where(
                t.notifications.c.status == NotificationStatus.PENDING.value,
                t.notifications.c.channel.not_in(channels),
            ).values(status=NotificationStatus.FAILED.value, last_error=error))
        return int(result.rowcount or 0)

    async def save_silence(self, silence: dict[str, Any]) -> None:
        stmt = self._insert(t.silences)
        row = {key: silence[key] for key in ("id", "matchers", "starts_at", "ends_at", "created_by", "comment",
                                             "updated_at")}
        async with self._begin() as conn:
            await conn.execute(stmt.values(**row).on_conflict_do_update(
                index_elements=["id"], set_={key: stmt.excluded[key] for key in row if key != "id"}))

    async def list_silences(self) -> list[dict[str, Any]]:
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(t.silences).order_by(t.silences.c.starts_at))).all()
        return [dict(row._mapping) for row in rows]

    async def get_channel_state(self, channel: str, key: str) -> Any | None:
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(t.channel_state.c.value).where(
                t.channel_state.c.channel == channel, t.channel_state.c.key == key))).first()
        return None if row is None else row.value

    async def get_channel_states(self, keys: list[tuple[str, str]]) -> dict[tuple[str, str], Any]:
        found: dict[tuple[str, str], Any] = {}
        by_channel: dict[str, set[str]] = {}
        for channel, key in keys:
            by_channel.setdefault(channel, set()).add(key)
        state = t.channel_state.c
        async with self.engine.connect() as conn:
            for channel, wanted in by_channel.items():
                # One channel at a time: SQLite searches the (channel, key) key only for "channel = ? AND
                # key IN (...)"; a row-value IN would scan the whole table.
                for chunk in _chunks(sorted(wanted), 500):
                    rows = (await conn.execute(select(state.key, state.value).where(
                        state.channel == channel, state.key.in_(chunk)))).all()
                    found.update({(channel, row.key): row.value for row in rows})
        return found

    async def set_channel_state(self, channel: str, key: str, value: Any, at: float) -> None:
        async with self._begin() as conn:
            await self._set_channel_states(conn, [ChannelState(channel, key, value, at)])

    async def set_channel_state_once(self, channel: str, key: str, value: Any, at: float) -> Any:
        async with self._begin() as conn:
            await conn.execute(self._insert(t.channel_state).values(
                channel=channel, key=key, value=value, updated_at=at).on_conflict_do_nothing())
        return await self.get_channel_state(channel, key)

    async def _set_channel_states(self, conn: AsyncConnection, states: list[ChannelState]) -> None:
        stmt = self._insert(t.channel_state)
        await conn.execute(stmt.on_conflict_do_update(
            index_elements=["channel", "key"],
            set_={"value": stmt.excluded.value, "updated_at": stmt.excluded.updated_at},
        ), [{"channel": s.channel, "key": s.key, "value": s.value, "updated_at": s.at} for s in states])

    async def list_notifications(self, *, status: str | None = None, limit: int = 500) -> list[Notification]:
        query = select(t.notifications).order_by(t.notifications.c.created_at.desc()).limit(limit)
        if status is not None:
            query = query.where(t.notifications.c.status == status)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        return [_notification(row) for row in rows]

    async def purge_expired(self, kind: str, before: float, limit: int) -> int:
        async with self._begin() as conn:
            return await purge_step(conn, kind, before, limit)

    async def check_ready(self) -> None:
        try:
            async with self.engine.connect() as conn:
                current = await conn.run_sync(lambda sync: MigrationContext.configure(sync).get_current_heads())
        except StorageError:
            raise
        except Exception as exc:
            raise StorageError(f"the database does not answer: {type(exc).__name__}: "
                               f"{_redact(str(exc), self._url)}") from None
        head = _head_revisions()
        if set(current) != head:
            raise StorageError(f"the schema is at {', '.join(sorted(current)) or 'nothing'}, this release needs "
                               f"{', '.join(sorted(head))}: run `alerts db upgrade` or restart the service")

    async def ops_counts(self) -> OpsCounts:
        n = t.notifications.c
        async with self.engine.connect() as conn:
            by_status = (await conn.execute(select(t.alerts.c.status, func.count()).group_by(t.alerts.c.status))).all()
            pending, oldest = (await conn.execute(select(func.count(), func.min(n.created_at)).where(_PENDING))).one()
        return OpsCounts(alerts_by_status={status: count for status, count in by_status},
                         pending_notifications=int(pending), oldest_pending_created_at=oldest)


_BLOCK_UPSERT = text(BLOCK_UPSERT)
_PENDING = t.notifications.c.status == NotificationStatus.PENDING.value
_NEXT_DUE = select(func.min(t.notifications.c.next_attempt_at)).where(_PENDING)
_RECORD_ATTEMPT = update(t.notifications).where(t.notifications.c.id == bindparam("attempt_id")).values(
    status=bindparam("new_status"), attempts=bindparam("new_attempts"), next_attempt_at=bindparam("next_at"),
    last_error=bindparam("error"), delivered_at=bindparam("delivered"))


def _claim_statement(dialect: str) -> Any:
    """Claim up to ``claim_quota`` due notifications of ``claim_channel``: built once, as the retry stage
    runs it for every few deliveries."""
    n = t.notifications.c
    due = (select(n.id).where(_PENDING, n.channel == bindparam("claim_channel"),
                              n.next_attempt_at <= bindparam("claim_now"))
           .order_by(n.next_attempt_at, n.created_at).limit(bindparam("claim_quota")))
    if dialect == "postgresql":  # replicas claim disjoint rows without waiting on each other
        due = due.with_for_update(skip_locked=True)
    return (update(t.notifications).where(n.id.in_(due.scalar_subquery()))
            .values(next_attempt_at=bindparam("claim_lease")).returning(*t.notifications.c))


def _write_points_sqlite(db: sqlite3.Connection, sql: dict[str, str], pk: int, batch: RecordBatch,
                         at: float) -> bool:
    """The claim, steps, points and blocks of a batch, run in the driver's thread on its connection (inside
    the transaction the caller opened and commits): the SQLite twin of ``SqlStore._write_points``."""
    # The conditional update is the guard against two concurrent deliveries of one batch.
    if not db.execute(sql["claim"], (batch.last_seq, at, pk, batch.first_seq - 1)).rowcount:
        return False
    if batch.steps:
        db.executemany(sql["upsert_steps"], [(pk, s, ts, rt) for s, ts, rt in batch.steps])
    if batch.points:
        db.executemany(sql["upsert_points"], [(pk, k, s, ts, None if v != v else v) for k, s, ts, v in batch.points])
        if blocks := touched_blocks(pk, batch.points):
            db.executemany(BLOCK_UPSERT, blocks)
    return True


def _hot_statements(dialect: str) -> dict[str, str]:
    """Upserts of the ingest hot path in the driver's own parameter style."""
    def params(count: int) -> str:
        return ", ".join("?" if dialect == "sqlite" else f"${i}" for i in range(1, count + 1))

    return {
        # SQLite only (``_write_points_sqlite``); PostgreSQL claims through SQLAlchemy.
        "claim": "UPDATE runs SET last_seq = ?, last_contact = ? WHERE pk = ? AND last_seq = ?",
        "upsert_steps": f"INSERT INTO steps (run_pk, step, timestamp, runtime) VALUES ({params(4)}) "
                        "ON CONFLICT (run_pk, step) DO UPDATE SET timestamp = excluded.timestamp, "
                        "runtime = excluded.runtime",
        "upsert_points": f"INSERT INTO metrics (run_pk, key, step, timestamp, value) VALUES ({params(5)}) "
                         "ON CONFLICT (run_pk, key, step) DO UPDATE SET timestamp = excluded.timestamp, "
                         "value = excluded.value",
    }


# About this many metric points make one page of an export (steps per page = this / keys of the run).
_PAGE_POINTS = 100_000

# The distinct keys of a run by a loose index scan: one seek on the (run_pk, key, step) primary key per
# key, where DISTINCT would read every point of the run (millions for a long one) to find a few keys.
_METRIC_KEYS = text(
    "WITH RECURSIVE found(key) AS ("
    "SELECT MIN(key) FROM metrics WHERE run_pk = :run_pk "
    "UNION ALL "
    "SELECT (SELECT MIN(m.key) FROM metrics m WHERE m.run_pk = :run_pk AND m.key > found.key) "
    "FROM found WHERE found.key IS NOT NULL) "
    "SELECT key FROM found WHERE key IS NOT NULL")


async def _metric_keys(conn: AsyncConnection, run_pk: int) -> list[str]:
    # Sorted here, not by the database: PostgreSQL would order by its collation, not by code point.
    return sorted((await conn.execute(_METRIC_KEYS, {"run_pk": run_pk})).scalars())


async def _history_page(conn: AsyncConnection, run_pk: int, *, keys: list[str] | None, after_step: int,
                        limit: int, columns: list[str] | None = None) -> tuple[list[dict[str, Any]], int | None]:
    """The rows of the next ``limit`` steps after ``after_step`` and the last of those steps (None when
    there are none), which is where the next page starts even if ``keys`` filtered every row out.

    ``columns`` are the keys to read (``keys``, or else every key of the run, when not given).
    """
    step_rows = (await conn.execute(
        select(t.steps).where(t.steps.c.run_pk == run_pk, t.steps.c.step > after_step)
        .order_by(t.steps.c.step).limit(limit))).all()
    if not step_rows:
        return [], None
    last = step_rows[-1].step
    rows = {row.step: {"_step": row.step, "_timestamp": row.timestamp, "_runtime": row.runtime}
            for row in step_rows}
    m = t.metrics.c
    # Naming the keys lets the (run_pk, key, step) primary key find each key's step range; without them
    # the database would read every point of the run to pick this page's steps.
    for chunk in _chunks(columns or keys or await _metric_keys(conn, run_pk), 500):
        points = (await conn.execute(select(m.step, m.key, m.value).where(
            m.run_pk == run_pk, m.key.in_(chunk), m.step > after_step, m.step <= last))).all()
        for step, key, value in points:
            if step in rows:
                rows[step][key] = math.nan if value is None else value
    ordered = list(rows.values())
    if keys:  # W&B's history(keys=...) only returns rows that have the keys
        ordered = [row for row in ordered if any(key in row for key in keys)]
    return ordered, last


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the CLI (keys, silences) write while the service reads; busy_timeout waits for locks.
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=10000")
    cursor.close()


def _shareable(path: str) -> bool:
    """Whether a second connection opens the same database as the engine's (not an in-memory one)."""
    return bool(path) and path != ":memory:" and not path.startswith("file:") and "?" not in path


@functools.cache
def _head_revisions() -> set[str]:
    config = AlembicConfig(str(_MIGRATIONS / "alembic.ini"))
    config.set_main_option("script_location", str(_MIGRATIONS))
    return set(ScriptDirectory.from_config(config).get_heads())


_MIGRATION_LOCK = 0x52756E7761746368  # "Runwatch": the advisory lock key of schema migrations


def _migrate(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        # Replicas starting together: one migrates, the others wait here, then find the schema at head.
        # A transaction lock: released when the migration's transaction ends.
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
    config = AlembicConfig(str(_MIGRATIONS / "alembic.ini"))
    config.set_main_option("script_location", str(_MIGRATIONS))
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _redact(message: str, url: str) -> str:
    from sqlalchemy.engine import make_url

    try:
        password = make_url(url).password
    except Exception:
        return message
    return message.replace(password, "***") if password else message


async def _add_event(conn: AsyncConnection, run_pk: int, state: RunState, reason: str | None, at: float) -> None:
    await conn.execute(t.run_events.insert().values(run_pk=run_pk, state=state.value, reason=reason, at=at))


async def _end_run(conn: AsyncConnection, run_pk: int, exit: RunExit, *,
                   silent_since: float | None = None) -> RunEvent | None:
    still = [] if silent_since is None else [t.runs.c.last_contact < silent_since]
    stop = (await conn.execute(select(t.runs.c.stop_request).where(t.runs.c.pk == run_pk))).scalar()
    if stop is not None:
        exit = replace(exit, state=RunState.STOPPED, reason=stopped_reason(stop, exit.state, exit.reason))
    result = await conn.execute(update(t.runs).where(
        t.runs.c.pk == run_pk, t.runs.c.state == RunState.RUNNING.value, *still,
    ).values(state=exit.state.value, exit_code=exit.exit_code, failure_reason=exit.reason,
             console_tail=exit.console_tail, finished_at=exit.at))
    if not result.rowcount:
        return None
    await _add_event(conn, run_pk, exit.state, exit.reason, exit.at)
    row = (await conn.execute(select(t.runs).where(t.runs.c.pk == run_pk))).one()
    return RunEvent(run=_run(row), state=exit.state, reason=exit.reason, at=exit.at)


def _chunks(items: list[Any], size: int) -> list[list[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


def _api_key(row: Any) -> ApiKey:
    return ApiKey(id=row.id, project=row.project, admin=bool(row.admin), created_at=row.created_at,
                  revoked_at=row.revoked_at)


def _run(row: Any) -> Run:
    return Run(
        pk=row.pk, project=row.project, id=row.id, name=row.name, state=RunState(row.state),
        config=row.config, tags=row.tags, notes=row.notes, group=row.group_name, job_type=row.job_type,
        summary=row.summary, created_at=row.created_at, started_at=row.started_at,
        last_contact=row.last_contact, finished_at=row.finished_at, exit_code=row.exit_code,
        failure_reason=row.failure_reason, console_tail=row.console_tail, last_seq=row.last_seq,
        host=row.host, pid=row.pid, system=row.system or {}, stop_request=row.stop_request,
    )


def _alert_row(alert: Alert) -> dict[str, Any]:
    return {
        "id": alert.id, "client_id": alert.client_id, "fingerprint": alert.fingerprint,
        "source": alert.source.value, "rule": alert.rule, "project": alert.project, "run_pk": alert.run_pk,
        "title": alert.title, "text": alert.text, "severity": alert.severity.value, "labels": alert.labels,
        "status": alert.status.value, "metric": alert.metric, "value": alert.value,
        "threshold": alert.threshold, "step": alert.step, "starts_at": alert.starts_at,
        "ends_at": alert.ends_at, "suppressed_count": alert.suppressed_count, "delayed": alert.delayed,
        "created_at": alert.created_at, "resolved_reason": alert.resolved_reason,
        "annotations": alert.annotations, "generator_url": alert.generator_url, "expires_at": alert.expires_at,
    }


# The alert path's writes as plain SQLite statements for the storage writer's thread (SqliteWriter.run),
# storing what SQLAlchemy would: JSON as its JSON type writes it on SQLite (json.dumps), booleans as 0/1.
def _throttle(calls: list[AlertCall], stored: dict[str, str], state: dict[str, list[Any]],
              build: Callable[[AlertCall, int], Alert]) -> tuple[list[AlertCallOutcome], list[Alert], list[str]]:
    """``alert()`` calls (in time order) against the stored client ids and throttle windows (``state``:
    title -> [last sent at, suppressed since], updated here): the outcomes, the alerts to insert and the
    titles whose throttle row changed."""
    outcomes: list[AlertCallOutcome] = []
    created: list[Alert] = []
    changed: dict[str, None] = {}
    for call in calls:
        if call.client_id in stored:
            outcomes.append(AlertCallOutcome(call, "duplicate", stored[call.client_id]))
            continue
        last = state.get(call.title)
        changed[call.title] = None
        if last is not None and call.at - last[0] < call.wait_duration:
            last[1] += 1
            outcomes.append(AlertCallOutcome(call, "suppressed", None))
            continue
        alert = build(call, 0 if last is None else int(last[1]))
        state[call.title] = [call.at, 0]
        stored[call.client_id] = alert.id  # a repeated id within the batch is a duplicate too
        created.append(alert)
        outcomes.append(AlertCallOutcome(call, "created", alert.id, alert))
    return outcomes, created, list(changed)


def _raw_upsert(table: Table, conflict: list[str]) -> str:
    names = [c.name for c in table.columns]
    updates = ", ".join(f"{name} = excluded.{name}" for name in names if name not in conflict)
    return (f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' * len(names))}) "
            f"ON CONFLICT ({', '.join(conflict)}) DO UPDATE SET {updates}")


_RAW_ALERT_UPSERT = _raw_upsert(t.alerts, ["id"])
_RAW_THROTTLE_UPSERT = _raw_upsert(t.alert_throttles, ["project", "run_id", "title"])
_RAW_NOTIFICATION_INSERT = (f"INSERT INTO notifications ({', '.join(c.name for c in t.notifications.columns)}) "
                            f"VALUES ({', '.join('?' * len(t.notifications.columns))})")
_RAW_CHANNEL_STATE_UPSERT = ("INSERT INTO channel_state (channel, key, value, updated_at) VALUES (?, ?, ?, ?) "
                             "ON CONFLICT (channel, key) DO UPDATE SET value = excluded.value, "
                             "updated_at = excluded.updated_at")


def _executing(sql: str, rows: list[tuple[Any, ...]]) -> Callable[[sqlite3.Connection], None]:
    """Work for :meth:`SqliteWriter.run`: ``sql`` once per row."""
    def work(db: sqlite3.Connection) -> None:
        db.executemany(sql, rows)
    return work


def _raw_alert_row(alert: Alert) -> tuple[Any, ...]:
    row = _alert_row(alert)
    row["labels"] = json.dumps(row["labels"])
    if row["annotations"] is not None:
        row["annotations"] = json.dumps(row["annotations"])
    return tuple(row[c.name] for c in t.alerts.columns)


def _raw_notification_row(n: Notification) -> tuple[Any, ...]:
    row = {"id": n.id, "channel": n.channel, "group_key": n.group_key, "status": n.status.value,
           "message": json.dumps(n.message), "attempts": n.attempts, "next_attempt_at": n.next_attempt_at,
           "last_error": n.last_error, "created_at": n.created_at, "delivered_at": n.delivered_at}
    return tuple(row[c.name] for c in t.notifications.columns)


def _alert(row: Any) -> Alert:
    return Alert(
        id=row.id, fingerprint=row.fingerprint, source=AlertSource(row.source), project=row.project,
        title=row.title, text=row.text, severity=Severity(row.severity), labels=row.labels,
        status=AlertStatus(row.status), starts_at=row.starts_at, rule=row.rule, run_pk=row.run_pk,
        client_id=row.client_id, metric=row.metric, value=row.value, threshold=row.threshold,
        step=row.step, ends_at=row.ends_at, suppressed_count=row.suppressed_count,
        delayed=bool(row.delayed), created_at=row.created_at, resolved_reason=row.resolved_reason,
        annotations=row.annotations, generator_url=row.generator_url, expires_at=row.expires_at,
    )


def _notification(row: Any) -> Notification:
    return Notification(
        id=row.id, channel=row.channel, group_key=row.group_key, message=row.message,
        status=NotificationStatus(row.status), attempts=row.attempts, next_attempt_at=row.next_attempt_at,
        last_error=row.last_error, created_at=row.created_at, delivered_at=row.delivered_at,
    )


__all__ = ["SqlStore", "async_url"]
