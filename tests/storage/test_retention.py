"""Retention (alerts/storage/retention.py) on both backends: exactly the expired rows go, a batch at a time."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from alerts.model import Alert, AlertSource, AlertStatus, Notification, NotificationStatus, RunState, Severity
from alerts.storage import NewRun, RecordBatch, RunExit, Store
from alerts.storage import tables as t
from alerts.storage.base import ChannelState, DeliveryAttempt
from alerts.storage.retention import KINDS
from alerts.storage.sql import SqlStore

OLD, CUTOFF, NEW = 100.0, 1000.0, 2000.0
LIMIT = 7  # small: every kind takes several batches


def new_run(run_id: str) -> NewRun:
    return NewRun(project="p", id=run_id, name=run_id, config={}, tags=[], notes=None, group=None, job_type=None,
                  started_at=OLD, host=None, pid=None)


async def logged_run(store: Store, run_id: str, *, ended_at: float | None) -> int:
    """A run with 10 steps of 3 metrics (30 points), ended at ``ended_at`` (None: still running)."""
    run, _ = await store.upsert_run(new_run(run_id), OLD)
    batch = RecordBatch(first_seq=1, last_seq=10, steps=[(step, OLD + step, float(step)) for step in range(10)],
                        points=[(key, step, OLD + step, float(step)) for step in range(10) for key in "abc"])
    assert (await store.apply_records(run, batch, OLD))[0]
    if ended_at is not None:
        await store.end_run(run.pk, RunExit(state=RunState.FINISHED, exit_code=0, console_tail=None, at=ended_at,
                                             reason=None))
    return run.pk


async def purge_all(store: Store, kind: str, before: float) -> tuple[int, int]:
    """Purge ``kind`` to the end: (rows deleted, batches taken)."""
    total = batches = 0
    while count := await store.purge_expired(kind, before, LIMIT):
        assert count <= LIMIT * 4  # a batch is bounded (history: up to LIMIT rows of each of its tables)
        total, batches = total + count, batches + 1
        assert batches < 1000
    return total, batches


def alert(aid: str, status: AlertStatus, ends_at: float | None, run_pk: int | None = None) -> Alert:
    return Alert(id=aid, fingerprint=aid, source=AlertSource.RULE, project="p", title=aid, text="",
                 severity=Severity.WARNING, labels={}, status=status, starts_at=OLD, ends_at=ends_at, rule="r",
                 run_pk=run_pk)


async def test_each_kind_deletes_exactly_its_expired_rows_in_batches(store: Store) -> None:
    # The notification log and the outbox.
    states = [ChannelState("hook", f"nflog:g{i}", {"at": OLD}, OLD if i < 20 else NEW) for i in range(25)]
    states.append(ChannelState("slack", "thread:g1", {"ts": "1"}, OLD))  # not the log: a channel's own state
    notifications = [Notification(id=f"n{i}", channel="hook", group_key="g", message={"alerts": []},
                                  next_attempt_at=OLD, created_at=OLD) for i in range(40)]
    await store.enqueue_notifications(notifications, states)
    await store.record_attempts(
        [DeliveryAttempt(f"n{i}", NotificationStatus.DELIVERED, 1, OLD, delivered_at=OLD) for i in range(15)]
        + [DeliveryAttempt(f"n{i}", NotificationStatus.DELIVERED, 1, NEW, delivered_at=NEW) for i in range(15, 20)]
        + [DeliveryAttempt(f"n{i}", NotificationStatus.FAILED, 3, OLD, error="x") for i in range(20, 30)])
    # n30..n39 stay pending, however old.
    await store.save_alerts([alert(f"old{i}", AlertStatus.RESOLVED, OLD) for i in range(12)]
                            + [alert("recent", AlertStatus.RESOLVED, NEW), alert("firing", AlertStatus.FIRING, None)])

    assert await purge_all(store, "notification_log", CUTOFF) == (20, 3)
    stored = await store.get_channel_states([(s.channel, s.key) for s in states])
    assert set(stored) == {("hook", f"nflog:g{i}") for i in range(20, 25)} | {("slack", "thread:g1")}

    assert (await purge_all(store, "delivered_notifications", CUTOFF))[0] == 15
    assert (await purge_all(store, "failed_notifications", CUTOFF))[0] == 10
    left = {n.id: n.status for n in await store.list_notifications(limit=100)}
    assert left == {**{f"n{i}": NotificationStatus.DELIVERED for i in range(15, 20)},
                    **{f"n{i}": NotificationStatus.PENDING for i in range(30, 40)}}

    assert (await purge_all(store, "resolved_alerts", CUTOFF))[0] == 12
    assert {a.id for a in await store.list_alerts(project="p")} == {"recent", "firing"}


async def test_points_of_ended_runs_go_and_the_runs_stay(store: Store) -> None:
    old = await logged_run(store, "old", ended_at=OLD)
    recent = await logged_run(store, "recent", ended_at=NEW)
    running = await logged_run(store, "running", ended_at=None)
    deleted, batches = await purge_all(store, "points", CUTOFF)
    assert deleted >= 30 + 10 and batches > 1  # 30 points, 10 steps, the block summaries
    assert await store.history(old, keys=None, after_step=-1, limit=100) == []
    assert await store.metric_keys(old) == []
    for kept in (recent, running):
        assert len(await store.history(kept, keys=None, after_step=-1, limit=100)) == 10
    runs = await store.get_runs_by_pk([old, recent, running])
    assert set(runs) == {old, recent, running} and runs[old].state is RunState.FINISHED
    assert await purge_all(store, "points", CUTOFF) == (0, 0)


async def test_finished_runs_go_with_everything_of_theirs(store: Store) -> None:
    old = await logged_run(store, "old", ended_at=OLD)
    recent = await logged_run(store, "recent", ended_at=NEW)
    running = await logged_run(store, "running", ended_at=None)
    await store.save_alerts([alert("of-old", AlertStatus.FIRING, None, run_pk=old),
                             alert("of-recent", AlertStatus.RESOLVED, OLD, run_pk=recent)])
    deleted, _ = await purge_all(store, "finished_runs", CUTOFF)
    assert deleted > 30
    assert await store.get_run("p", "old") is None
    assert isinstance(store, SqlStore)
    async with store.engine.connect() as conn:  # no row of the run is left behind, in any table
        for table in (t.run_events, t.steps, t.metrics, t.metric_blocks, t.media, t.run_files, t.artifact_usage):
            assert (await conn.execute(select(func.count()).where(table.c.run_pk == old))).scalar() == 0
    assert await store.history(old, keys=None, after_step=-1, limit=100) == []
    assert {a.id for a in await store.list_alerts(project="p")} == {"of-recent"}
    assert set(await store.get_runs_by_pk([old, recent, running])) == {recent, running}


@pytest.mark.parametrize("kind", KINDS)
async def test_nothing_expired_deletes_nothing(store: Store, kind: str) -> None:
    await logged_run(store, "recent", ended_at=NEW)
    assert await store.purge_expired(kind, CUTOFF, LIMIT) == 0
