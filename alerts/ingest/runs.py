"""Run lifecycle: init/resume, ordered records, heartbeats and heartbeat loss (→ crashed)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from alerts.ingest.events import IngestListener
from alerts.ingest.protocol import Record
from alerts.ingest.records import PREEMPTING, build_batch
from alerts.model import Run, RunEvent, RunState
from alerts.storage.base import NewRun, RunExit, Store

log = logging.getLogger(__name__)

_TOUCH_AT_MOST_EVERY = 1.0  # seconds
_MAX_CACHED_RUNS = 100_000


class RunConflict(Exception):
    """The request contradicts the run's state (e.g. ``resume="never"`` for an existing run)."""


@dataclass
class RecordsResult:
    accepted: int
    duplicates: int
    last_seq: int


class RunIngest:
    """Applies what the SDK sends about runs, and publishes points and state changes to listeners."""

    def __init__(self, store: Store, *, heartbeat_timeout: float,
                 clock: Callable[[], float] = time.time, cache_runs: bool = False) -> None:
        """``cache_runs``: this process is the database's only writer (SQLite), so the running runs it has
        read stay true in memory and a batch needs no read of its run; every change of a run here
        (init, a batch, an end) updates or drops the copy. Several replicas must not cache."""
        self._store = store
        self._heartbeat_timeout = heartbeat_timeout
        self._clock = clock
        self._cache_runs = cache_runs
        self._running: dict[tuple[str, str], Run] = {}
        self.listeners: list[IngestListener] = []
        self.observe_batch: Callable[[int, float], None] | None = None
        """Told of every applied batch: its points and the seconds its listeners (the rules) took."""
        self.may_judge: Callable[[Run], Awaitable[bool]] | None = None
        """Replicas: whether this replica may judge the run (holds or takes its lease); the heartbeat-loss
        check leaves the others' runs to them."""

    async def get_run(self, project: str, run_id: str) -> Run | None:
        """The run, from memory when cached (see ``cache_runs``)."""
        run = self._running.get((project, run_id))
        if run is None:
            run = await self._store.get_run(project, run_id)
            if run is not None and self._cache_runs and run.state is RunState.RUNNING:
                if len(self._running) >= _MAX_CACHED_RUNS:
                    self._running.clear()
                self._running[(project, run_id)] = run
        return run

    @property
    def caches_runs(self) -> bool:
        return self._cache_runs

    def forget(self, run: Run) -> None:
        self._running.pop((run.project, run.id), None)

    def learn_stop_requests(self, requests: dict[tuple[str, str], dict[str, Any]]) -> None:
        """Stop requests stored by another process: the cached runs they name carry them from now on."""
        for key, request in requests.items():
            run = self._running.get(key)
            if run is not None and run.stop_request is None:
                run.stop_request = request

    async def init_run(self, new: NewRun, *, resume: str | None) -> tuple[Run, bool]:
        """Create the run, or return it again for a retried init; reopen it only when resuming."""
        self._running.pop((new.project, new.id), None)
        existing = await self._store.get_run(new.project, new.id)
        if existing is not None and resume == "never":
            raise RunConflict(f"run {new.project}/{new.id} already exists and resume is 'never'")
        if existing is None and resume == "must":
            raise LookupError(f"run {new.project}/{new.id} does not exist and resume is 'must'")
        if existing is not None and resume is None:
            # A retried or replayed init: idempotent, never reopens a run that has ended.
            await self._store.touch_run(existing.pk, self._clock())
            return existing, False
        run, created = await self._store.upsert_run(new, self._clock())
        if not created and existing is not None and existing.state.is_terminal:
            await self._publish_event(RunEvent(run=run, state=RunState.RUNNING, reason="resumed",
                                               at=self._clock()))
        elif created:
            await self._publish_event(RunEvent(run=run, state=RunState.RUNNING, reason="started",
                                               at=self._clock()))
        return run, created

    async def add_records(self, run: Run, records: list[Record], *, delayed: bool = False) -> RecordsResult:
        batch = build_batch(records, last_seq=run.last_seq, delayed=delayed)
        if batch is None:
            await self._store.touch_run(run.pk, self._clock())
            return RecordsResult(accepted=0, duplicates=len(records), last_seq=run.last_seq)
        at = self._clock()
        applied, event = await self._store.apply_records(run, batch, at)
        if not applied:
            self.forget(run)
            raise RunConflict("another copy of this batch was applied concurrently; resend it")
        run.last_seq = batch.last_seq
        run.last_contact = at
        if batch.config is not None:
            run.config = batch.config
        if batch.summary is not None:
            run.summary = batch.summary
        evaluation_started = time.perf_counter()
        for listener in self.listeners:
            await listener.on_batch(run, batch)
        if self.observe_batch is not None:
            self.observe_batch(len(batch.points), time.perf_counter() - evaluation_started)
        if event is not None:
            await self._publish_event(event)
        accepted = batch.last_seq - batch.first_seq + 1
        return RecordsResult(accepted=accepted, duplicates=len(records) - accepted, last_seq=run.last_seq)

    async def heartbeat(self, run: Run) -> None:
        now = self._clock()
        # Crash detection works in heartbeat timeouts (seconds at least): a busy run posting many
        # requests a second need not write its last contact on each one.
        if now - run.last_contact >= _TOUCH_AT_MOST_EVERY:
            await self._store.touch_run(run.pk, now)
            run.last_contact = now

    async def mark_silent_runs_crashed(self) -> list[RunEvent]:
        """The heartbeat-loss check, run periodically by the scheduler."""
        now = self._clock()
        cutoff = now - self._heartbeat_timeout
        events = []
        for run in await self._store.find_silent_runs(cutoff):
            if self.may_judge is not None and not await self.may_judge(run):
                continue
            silent_for = now - run.last_contact
            reason = f"no contact for {silent_for:.0f}s (heartbeat timeout {self._heartbeat_timeout:g}s)"
            run_events = await self._store.list_run_events(run.pk)
            if run_events and run_events[-1].reason == PREEMPTING:
                reason = f"preempted: {reason} after the run called mark_preempting(); resume it with its id"
            # silent_since: a heartbeat stored between the search and this write keeps the run alive.
            event = await self._store.end_run(run.pk, RunExit(
                state=RunState.CRASHED, exit_code=None, console_tail=None, at=now, reason=reason),
                silent_since=cutoff)
            if event is not None:
                events.append(event)
                await self._publish_event(event)
        return events

    async def _publish_event(self, event: RunEvent) -> None:
        run = event.run
        self.forget(run)  # read again when next needed: its state changed
        reason = f" ({event.reason})" if event.reason else ""
        log.info("run %s/%s %r is %s%s", run.project, run.id, run.name, event.state.value, reason)
        for listener in self.listeners:
            await listener.on_run_event(event)
