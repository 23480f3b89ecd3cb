"""The Store contract: every test taking ``store`` or ``storage_url`` runs on SQLite and on PostgreSQL."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from alerts.model import Alert, AlertSource, AlertStatus, ApiKey, Notification, NotificationStatus, RunState, Severity
from alerts.storage import NewRun, RecordBatch, RunExit, Store, open_store
from alerts.storage.base import AlertCall, ChannelState, DeliveryAttempt


def new_run(run_id: str = "r1") -> NewRun:
    return NewRun(project="p", id=run_id, name="n", config={"lr": 0.1}, tags=["a"], notes=None, group=None,
                  job_type=None, started_at=100.0, host="h", pid=1)


async def test_reopening_migrates_once_and_keeps_data(storage_url: str) -> None:
    url = storage_url
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
    assert [r.id for r in await store.find_silent_runs(1e12)] == ["r1"]  # running: silent since its contact
    event = await store.end_run(run.pk, RunExit(RunState.CRASHED, None, "silent", None, 200.0))
    assert event is not None and event.state is RunState.CRASHED
    assert await store.end_run(run.pk, RunExit(RunState.FINISHED, 0, None, None, 201.0)) is None
    assert [e.state for e in await store.list_run_events(run.pk)] == [RunState.RUNNING, RunState.CRASHED]
    assert await store.find_silent_runs(1e12) == []  # ended: never silent again


async def test_a_silent_run_that_made_contact_since_is_not_ended(store: Store) -> None:
    run, _ = await store.upsert_run(new_run(), 100.0)
    assert [r.id for r in await store.find_silent_runs(150.0)] == ["r1"]
    await store.touch_run(run.pk, 160.0)  # a heartbeat lands after the search
    crash = RunExit(RunState.CRASHED, None, "silent", None, 170.0)
    assert await store.end_run(run.pk, crash, silent_since=150.0) is None
    current = await store.get_run("p", "r1")
    assert current is not None and current.state is RunState.RUNNING
    assert (await store.end_run(run.pk, crash, silent_since=165.0)) is not None  # silent again: ended


def _alert(call: AlertCall, suppressed: int) -> Alert:
    return Alert(id="a-" + call.client_id, fingerprint="f", source=AlertSource.SDK, project="p", title=call.title,
                 text="", severity=Severity.INFO, labels={}, status=AlertStatus.FIRING, starts_at=call.at,
                 client_id=call.client_id, suppressed_count=suppressed)


async def test_explicit_alerts_are_deduplicated_and_throttled_in_one_batch(store: Store) -> None:
    def call(client_id: str, at: float, wait: float, title: str = "t") -> AlertCall:
        return AlertCall(client_id=client_id, title=title, at=at, wait_duration=wait, request={})

    calls = [call("c1", 10.0, 60.0), call("c2", 20.0, 60.0), call("c1", 21.0, 60.0), call("x1", 22.0, 60.0, "other")]
    first = await store.add_explicit_alerts("p", "r", calls, _alert)
    assert [(o.status, o.alert_id) for o in first] == [
        ("created", "a-c1"), ("suppressed", None), ("duplicate", "a-c1"), ("created", "a-x1")]
    assert first[0].alert is not None and first[0].alert.suppressed_count == 0
    # The throttle state and the client ids persist across batches.
    second = await store.add_explicit_alerts("p", "r", [call("c3", 30.0, 0.0), call("c2", 31.0, 0.0)], _alert)
    assert [(o.status, o.alert_id) for o in second] == [("created", "a-c3"), ("created", "a-c2")]
    assert second[0].alert is not None and second[0].alert.suppressed_count == 1
    assert second[1].alert is not None and second[1].alert.suppressed_count == 0
    assert {a.id for a in await store.list_alerts(project="p")} == {"a-c1", "a-x1", "a-c3", "a-c2"}


async def test_outbox_claims_per_channel_quota_and_records_outcomes(store: Store) -> None:
    def notification(nid: str, channel: str, due: float) -> Notification:
        return Notification(id=nid, channel=channel, group_key="g", message={"alerts": []}, next_attempt_at=due,
                            created_at=due)

    await store.enqueue_notifications(
        [notification("a1", "a", 1.0), notification("a2", "a", 2.0), notification("b1", "b", 3.0),
         notification("b2", "b", 50.0), notification("gone", "removed", 1.0)],
        [ChannelState("a", "nflog:g", {"at": 1.0}, 1.0)])
    assert await store.get_channel_states([("a", "nflog:g"), ("a", "missing")]) == {("a", "nflog:g"): {"at": 1.0}}
    assert await store.fail_unrouted_notifications(["a", "b"], "not configured", 4.0) == 1
    claimed, next_due = await store.claim_notifications(now=5.0, lease_until=100.0, quotas={"a": 1, "b": 5})
    assert [n.id for n in claimed] == ["a1", "b1"] and next_due == 2.0
    claimed, next_due = await store.claim_notifications(now=6.0, lease_until=100.0, quotas={"a": 5, "b": 5})
    assert [n.id for n in claimed] == ["a2"] and next_due == 50.0  # the claimed ones are leased
    await store.record_attempts([
        DeliveryAttempt("a1", NotificationStatus.DELIVERED, 1, 7.0, delivered_at=7.0),
        DeliveryAttempt("a2", NotificationStatus.PENDING, 1, 9.0, error="HTTP 503"),
        DeliveryAttempt("b1", NotificationStatus.FAILED, 1, 7.0, error="HTTP 404")])
    claimed, _ = await store.claim_notifications(now=10.0, lease_until=100.0, quotas={"a": 5, "b": 5})
    assert [(n.id, n.attempts, n.last_error) for n in claimed] == [("a2", 1, "HTTP 503")]
    rows = {n.id: n for n in await store.list_notifications()}
    assert rows["a1"].status is NotificationStatus.DELIVERED and rows["a1"].delivered_at == 7.0
    assert rows["b1"].status is NotificationStatus.FAILED and rows["b1"].last_error == "HTTP 404"
    assert rows["gone"].status is NotificationStatus.FAILED and rows["gone"].last_error == "not configured"


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


async def test_system_info_is_stored_and_a_resume_brings_the_newest(store: Store) -> None:
    first = {"os": "Linux", "git": {"commit": "a" * 40, "dirty": False}, "gpus": [{"name": "A100"}]}
    run, _ = await store.upsert_run(NewRun(**{**vars(new_run()), "system": first}), 100.0)
    assert run.system == first
    assert (await store.upsert_run(new_run(), 101.0))[0].system == first  # an init without it keeps it
    newer = {"os": "Linux", "git": {"commit": "b" * 40, "dirty": True}}
    await store.upsert_run(NewRun(**{**vars(new_run()), "system": newer}), 102.0)
    stored = await store.get_run("p", "r1")
    assert stored is not None and stored.system == newer
    assert (await store.upsert_run(new_run("bare"), 103.0))[0].system == {}



async def test_runs_stored_before_the_system_column_read_as_empty(tmp_path: Path) -> None:
    import sqlalchemy as sa

    from tests.storage.old_database import OLD_RUN, database_at

    db = tmp_path / "old.db"
    with database_at(db, "0005") as conn:  # a database as the previous release left it, with one run
        conn.execute(sa.text(OLD_RUN))
    store = open_store(f"sqlite:///{db}")
    await store.open()
    try:
        old = await store.get_run("p", "old")
        assert old is not None and old.system == {}
    finally:
        await store.close()


async def test_history_pages_cover_every_row_in_bounded_pages(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    from alerts.storage import sql

    monkeypatch.setattr(sql, "_PAGE_POINTS", 1000)  # 10 keys: pages of 100 steps (the least a page holds)
    run, _ = await store.upsert_run(new_run(), 100.0)
    keys = [f"k{i}" for i in range(8)] + ['odd,"key"', "zé"]
    batch = RecordBatch(first_seq=1, last_seq=1, steps=[(s, 1000.0 + s / 7, s / 7) for s in range(250)],
                        points=[(key, s, 1000.0 + s / 7, math.nan if s == 5 and i == 0 else s * 0.1 + i)
                                for s in range(250) for i, key in enumerate(keys) if key != "k1" or s % 3 == 0])
    assert (await store.apply_records(run, batch, 101.0))[0]
    assert await store.metric_keys(run.pk) == sorted(keys)
    pages = [page async for page in store.history_pages(run.pk, keys=None)]
    assert [len(page) for page in pages] == [100, 100, 50]
    rows = [row for page in pages for row in page]
    assert repr(rows) == repr(await store.history(run.pk, keys=None, after_step=-1, limit=1000))  # NaN too
    assert rows[3] == {"_step": 3, "_timestamp": 1000.0 + 3 / 7, "_runtime": 3 / 7,
                       **{key: 3 * 0.1 + i for i, key in enumerate(keys)}}
    assert "k1" not in rows[4] and math.isnan(rows[5]["k0"])
    # With keys: only the steps that logged one of them, and only those keys; pages still advance.
    only = [row async for page in store.history_pages(run.pk, keys=["k1", "never"], after_step=200)
            for row in page]
    assert [(row["_step"], sorted(row)) for row in only] == [
        (s, ["_runtime", "_step", "_timestamp", "k1"]) for s in range(201, 250) if s % 3 == 0]
    assert [page async for page in store.history_pages(run.pk, keys=["never"])] == []
    assert await store.metric_keys(999) == []


async def test_alerts_filter_by_rule_severity_and_source(store: Store) -> None:
    def alert(aid: str, source: AlertSource, rule: str | None, severity: Severity, at: float) -> Alert:
        return Alert(id=aid, fingerprint=aid, source=source, project="p", title=aid, text="", severity=severity,
                     labels={}, status=AlertStatus.FIRING, starts_at=at, rule=rule)

    await store.save_alerts([alert("r1", AlertSource.RULE, "loss-high", Severity.CRITICAL, 1.0),
                             alert("r2", AlertSource.RULE, "acc-low", Severity.WARNING, 2.0),
                             alert("s1", AlertSource.SDK, None, Severity.WARNING, 3.0)])

    async def ids(**filters: str) -> list[str]:
        return [a.id for a in await store.list_alerts(project="p", **filters)]

    assert await ids() == ["s1", "r2", "r1"]
    assert await ids(rule="loss-high") == ["r1"]
    assert await ids(severity="warning") == ["s1", "r2"]
    assert await ids(source="sdk") == ["s1"]
    assert await ids(source="rule", severity="warning") == ["r2"]
    assert await ids(rule="acc-low", severity="critical") == []
