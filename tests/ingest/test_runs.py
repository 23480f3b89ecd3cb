"""Run lifecycle: heartbeat loss against the store's view of a run's last contact."""

from __future__ import annotations

from alerts.ingest.runs import RunIngest
from alerts.model import Run, RunState
from alerts.storage import NewRun, SqlStore


class HeartbeatDuringTheCheck(SqlStore):
    """The store of a service under load: a heartbeat is stored just after the first silent-run search."""

    heartbeats = 1

    async def find_silent_runs(self, last_contact_before: float) -> list[Run]:
        silent = await super().find_silent_runs(last_contact_before)
        for run in silent[:self.heartbeats]:
            await self.touch_run(run.pk, last_contact_before + 5.0)
        self.heartbeats = 0
        return silent


async def test_a_heartbeat_between_the_search_and_the_verdict_keeps_the_run_running(tmp_path) -> None:  # type: ignore[no-untyped-def]
    store = HeartbeatDuringTheCheck(f"sqlite:///{tmp_path / 'store.db'}")
    await store.open()
    try:
        now = 1_000.0
        ingest = RunIngest(store, heartbeat_timeout=60.0, clock=lambda: now)
        await store.upsert_run(NewRun(project="p", id="r1", name="n", config={}, tags=[], notes=None, group=None,
                                      job_type=None, started_at=900.0, host="h", pid=1), 900.0)
        assert await ingest.mark_silent_runs_crashed() == []
        run = await store.get_run("p", "r1")
        assert run is not None and run.state is RunState.RUNNING
        now = 2_000.0  # silent for real now, with nothing arriving: crashed
        (event,) = await ingest.mark_silent_runs_crashed()
        assert event.state is RunState.CRASHED
    finally:
        await store.close()
