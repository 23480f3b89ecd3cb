"""The Store contract (SQLite today; the PostgreSQL backend will run the same tests)."""

from __future__ import annotations

import math
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from alerts.model import ApiKey, Notification, RunState
from alerts.storage import NewRun, RecordBatch, RunExit, Store, open_store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    # PostgreSQL joins this fixture as a second parameter when its backend lands.
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    await store.open()
    yield store
    await store.close()


def new_run(run_id: str = "r1") -> NewRun:
    return NewRun(project="p", id=run_id, name="n", config={"lr": 0.1}, tags=["a"], notes=None, group=None,
                  job_type=None, started_at=100.0, host="h", pid=1)


async def test_reopening_migrates_once_and_keeps_data(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.db'}"
    first = open_store(url)
    await first.open()
    await first.upsert_run(new_run(), 100.0)
    await first.close()
    second = open_store(url)
    await second.open()
    assert (await second.get_run("p", "r1")) is not None
    await second.close()


async def test_records_are_applied_once_in_order(store: Store) -> None:
    run, created = await store.upsert_run(new_run(), 100.0)
    assert created and run.state is RunState.RUNNING
    batch = RecordBatch(first_seq=1, last_seq=2, steps=[(0, 1.0, 0.0), (1, 2.0, 1.0)],
                        points=[("loss", 0, 1.0, math.nan), ("loss", 1, 2.0, math.inf), ("acc", 1, 2.0, 0.5)])
    assert (await store.apply_records(run, batch, 101.0))[0]
    assert not (await store.apply_records(run, batch, 102.0))[0]  # last_seq moved: the copy is refused
    rows = await store.history(run.pk, keys=None, after_step=-1, limit=10)
    assert math.isnan(rows[0]["loss"]) and rows[1] == {"_step": 1, "_timestamp": 2.0, "_runtime": 1.0,
                                                       "loss": math.inf, "acc": 0.5}
    current = await store.get_run("p", "r1")
    assert current is not None and current.last_seq == 2 and current.last_contact == 101.0


async def test_end_run_only_from_running_and_events(store: Store) -> None:
    run, _ = await store.upsert_run(new_run(), 100.0)
    event = await store.end_run(run.pk, RunExit(RunState.CRASHED, None, "silent", None, 200.0))
    assert event is not None and event.state is RunState.CRASHED
    assert await store.end_run(run.pk, RunExit(RunState.FINISHED, 0, None, None, 201.0)) is None
    assert [e.state for e in await store.list_run_events(run.pk)] == [RunState.RUNNING, RunState.CRASHED]
    assert await store.find_silent_runs(1e12) == []


async def test_throttle_and_outbox(store: Store) -> None:
    assert await store.admit_explicit_alert("p", "r", "t", 10.0, 60.0) == 0
    assert await store.admit_explicit_alert("p", "r", "t", 20.0, 60.0) is None
    assert await store.admit_explicit_alert("p", "r", "t", 30.0, 0.0) == 1
    notification = Notification(id="n1", channel="c", group_key="g", message={"alerts": []},
                                next_attempt_at=5.0, created_at=5.0)
    await store.enqueue_notifications([notification])
    assert [n.id for n in await store.due_notifications(5.0, 10)] == ["n1"]
    assert await store.claim_notification("n1", now=5.0, lease_until=50.0)
    assert not await store.claim_notification("n1", now=6.0, lease_until=60.0)
    assert await store.due_notifications(6.0, 10) == []
    await store.mark_delivered("n1", 7.0, 1)
    assert not await store.claim_notification("n1", now=100.0, lease_until=200.0)


async def test_api_keys(store: Store) -> None:
    await store.insert_api_key(ApiKey(id="k1", project="p", admin=False, created_at=1.0), "hash1")
    found = await store.find_api_key("hash1")
    assert found is not None and found.may_access("p") and not found.may_access("q")
    assert await store.revoke_api_key("k1", 2.0)
    assert await store.find_api_key("hash1") is None


async def test_runs_by_primary_key(store: Store) -> None:
    first, _ = await store.upsert_run(new_run("a"), 100.0)
    second, _ = await store.upsert_run(new_run("b"), 100.0)
    found = await store.get_runs_by_pk([second.pk, first.pk, second.pk, 999])
    assert {pk: run.id for pk, run in found.items()} == {first.pk: "a", second.pk: "b"}
    assert await store.get_runs_by_pk([]) == {}
