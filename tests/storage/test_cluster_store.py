"""The store's replica methods (alerts/storage/cluster.py) on both backends, and the alert NOTIFY on
PostgreSQL: leases are exclusive, points come back as a takeover needs them, the outbox says what was told."""

from __future__ import annotations

import asyncio
import math

import asyncpg
import orjson
import pytest

from alerts.cluster.leader import ALERT_CHANNEL
from alerts.model import Alert, AlertSource, AlertStatus, Notification, Severity
from alerts.storage import NewRun, RecordBatch, Store


async def a_run(store: Store) -> int:
    run, _ = await store.upsert_run(NewRun(project="p", id="r", name="r", config={}, tags=[], notes=None,
                                           group=None, job_type=None, started_at=0.0, host=None, pid=None), 0.0)
    return run.pk


def alert(aid: str, status: AlertStatus, *, ends_at: float | None = None, source: AlertSource = AlertSource.RULE,
          created_at: float = 0.0) -> Alert:
    return Alert(id=aid, fingerprint=aid, source=source, project="p", title=aid, text="", severity=Severity.WARNING,
                 labels={}, status=status, starts_at=0.0, ends_at=ends_at, rule="r", created_at=created_at)


async def test_a_lease_is_held_by_one_replica_until_it_expires_or_is_released(store: Store) -> None:
    pk = await a_run(store)
    first = await store.acquire_run_lease(pk, "a", "http://a", now=100.0, until=110.0)
    assert (first.replica, first.url, first.expires_at) == ("a", "http://a", 110.0)
    # Another replica gets the holder back, not the lease, while it lasts.
    assert (await store.acquire_run_lease(pk, "b", "http://b", now=105.0, until=115.0)).replica == "a"
    assert (await store.acquire_run_lease(pk, "a", "http://a", now=105.0, until=115.0)).expires_at == 115.0
    assert await store.renew_run_leases("a", [pk], 120.0) == [pk]
    assert await store.renew_run_leases("b", [pk], 120.0) == []
    # Expired: the next replica to ask takes it, and the old holder can no longer renew it.
    taken = await store.acquire_run_lease(pk, "b", "http://b", now=121.0, until=131.0)
    assert (taken.replica, taken.url) == ("b", "http://b")
    assert await store.renew_run_leases("a", [pk], 140.0) == []
    await store.release_run_leases("b", [pk])
    assert (await store.acquire_run_lease(pk, "a", "http://a", now=122.0, until=132.0)).replica == "a"
    await store.release_run_leases("a")
    assert (await store.acquire_run_lease(pk, "c", "http://c", now=122.0, until=132.0)).replica == "c"


async def test_concurrent_takeovers_leave_one_holder(store: Store) -> None:
    pk = await a_run(store)
    leases = await asyncio.gather(*(store.acquire_run_lease(pk, f"r{i}", f"http://r{i}", now=1.0, until=10.0)
                                    for i in range(8)))
    assert len({lease.replica for lease in leases}) == 1


async def test_recent_points_are_the_time_window_and_count_points_before_it(store: Store) -> None:
    pk = await a_run(store)
    run = (await store.get_runs_by_pk([pk]))[pk]
    points = [("loss", step, 1000.0 + step, math.nan if step == 95 else float(step)) for step in range(100)]
    batch = RecordBatch(first_seq=1, last_seq=1, steps=[(step, 1000.0 + step, None) for step in range(100)],
                        points=points)
    assert (await store.apply_records(run, batch, 0.0))[0]
    got = await store.recent_points(pk, "loss", count=3, seconds=10.0)
    assert [step for _, step, _, _ in got] == list(range(86, 100))  # 3 before, then 1089.0 .. 1099.0
    assert math.isnan(got[-5][3]) and got[-1] == ("loss", 99, 1099.0, 99.0)
    assert len(await store.recent_points(pk, "loss", count=1000, seconds=0.0)) == 100
    assert await store.recent_points(pk, "nothing", count=5, seconds=5.0) == []


async def test_key_points_are_a_keys_points_after_a_step_by_step(store: Store) -> None:
    pk = await a_run(store)
    run = (await store.get_runs_by_pk([pk]))[pk]
    batch = RecordBatch(first_seq=1, last_seq=1, steps=[(step, 1000.0 + step, None) for step in range(10)],
                        points=[(key, step, 1000.0 + step, math.nan if step == 5 else float(step))
                                for step in range(10) for key in ("loss", "acc")])
    assert (await store.apply_records(run, batch, 0.0))[0]
    got = await store.key_points(pk, "loss", after_step=3, limit=4)
    assert [(step, stamp) for step, stamp, _ in got] == [(4, 1004.0), (5, 1005.0), (6, 1006.0), (7, 1007.0)]
    assert got[0][2] == 4.0 and math.isnan(got[1][2])
    assert len(await store.key_points(pk, "acc", after_step=-1, limit=100)) == 10
    assert await store.key_points(pk, "loss", after_step=9, limit=5) == []


async def test_alert_reads_and_what_the_outbox_told(store: Store) -> None:
    await store.save_alerts([alert("firing", AlertStatus.FIRING), alert("old", AlertStatus.RESOLVED, ends_at=10.0),
                             alert("new", AlertStatus.RESOLVED, ends_at=100.0)])
    assert {a.id for a in await store.get_alerts(["firing", "new", "missing"])} == {"firing", "new"}
    assert [a.id for a in await store.alerts_ended_since(50.0)] == ["new"]
    await store.enqueue_notifications([
        Notification(id="n1", channel="hook", group_key="g", created_at=10.0, next_attempt_at=10.0,
                     message={"alerts": [{"id": "old", "status": "firing"}]}),
        Notification(id="n2", channel="hook", group_key="g", created_at=100.0, next_attempt_at=100.0,
                     message={"alerts": [{"id": "new", "status": "firing"}, {"id": "old", "status": "resolved"}]}),
    ])
    assert await store.told_since(50.0) == {("new", "firing"), ("old", "resolved")}


@pytest.mark.parametrize("storage_url", ["postgresql"], indirect=True)
async def test_saved_alerts_are_announced_when_their_transaction_commits(store: Store, storage_url: str) -> None:
    listener = await asyncpg.connect(storage_url)
    heard: asyncio.Queue[str] = asyncio.Queue()
    await listener.add_listener(ALERT_CHANNEL, lambda *args: heard.put_nowait(args[3]))
    try:
        await store.save_alerts([alert("x", AlertStatus.FIRING)])  # no channel set: one process, no NOTIFY
        store.alert_channel = ALERT_CHANNEL
        await store.save_alerts([alert("x", AlertStatus.FIRING), alert("x", AlertStatus.RESOLVED, ends_at=1.0)])
        assert orjson.loads(await asyncio.wait_for(heard.get(), 30)) == [["x", "firing"], ["x", "resolved"]]
        assert heard.empty()
    finally:
        await listener.close()


async def test_a_value_set_once_is_the_first_writers_for_everyone(store: Store) -> None:
    """The dashboard's signing secret: replicas racing to create it all end up with the same one."""
    values = await asyncio.gather(*(store.set_channel_state_once("web", "secret", f"s{i}", 1.0) for i in range(6)))
    assert len(set(values)) == 1 and await store.get_channel_state("web", "secret") == values[0]
