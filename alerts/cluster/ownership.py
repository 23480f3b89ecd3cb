"""Run leases: which replica evaluates a run.

A replica evaluates a run while it holds the run's lease (a database row with an expiry). It renews the
leases of its running runs every third of ``lease_ttl``; one it stops renewing (it died, or lost its
database) expires, and the next replica that receives the run's points or heartbeats takes the run,
rebuilding its rule windows from the stored points (:meth:`RuleEngine.adopt`).

A replica trusts its own lease only until a third of the TTL before it expires, so it has stopped
judging a run well before any other replica may take it (clocks are assumed synchronised, NTP-close).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from alerts.model import Run, RunEvent, RunState
from alerts.rules.engine import RuleEngine
from alerts.storage.base import RecordBatch, RunLease, Store

log = logging.getLogger(__name__)


class RunOwnership:
    """This replica's run leases, and the ingest listener that keeps the rule engine to its own runs."""

    def __init__(self, store: Store, engine: RuleEngine, *, replica: str, url: str, ttl: float,
                 clock: Callable[[], float] = time.time) -> None:
        self.replica = replica
        self.url = url
        self._store = store
        self._engine = engine
        self._ttl = ttl
        self._clock = clock
        self._held: dict[int, float] = {}
        """Run pk → when its lease expires (as last written)."""
        self._locks: dict[int, asyncio.Lock] = {}
        self.takeovers = 0
        """Runs this replica took from another replica or from nobody (counted for /metrics)."""
        self.forwarded = 0
        """Record batches this replica sent on to the replica evaluating their run."""

    @property
    def held(self) -> int:
        return len(self._held)

    def holds(self, run_pk: int) -> bool:
        """This replica may judge the run now (its lease has more than a third of its TTL to go)."""
        return self._held.get(run_pk, 0.0) - self._ttl / 3 > self._clock()

    async def claim(self, run: Run) -> RunLease | None:
        """None when this replica evaluates the run now: it held the lease, or took it (adopting the run's
        state) because it was free or expired. Otherwise the lease of the replica that does."""
        if self.holds(run.pk):
            return None
        lock = self._locks.setdefault(run.pk, asyncio.Lock())
        try:
            async with lock:  # one takeover per run, however many requests arrive meanwhile
                if self.holds(run.pk):
                    return None
                now = self._clock()
                lease = await self._store.acquire_run_lease(run.pk, self.replica, self.url, now=now,
                                                            until=now + self._ttl)
                if lease.replica != self.replica:
                    if self._held.pop(run.pk, None) is not None or self._engine.owns(run.pk):
                        log.info("run %s/%s is now evaluated by replica %s", run.project, run.id, lease.replica)
                    self._engine.forget_run(run.pk)
                    return lease
                if not self._engine.owns(run.pk) and run.state is RunState.RUNNING:
                    # Before the lease counts as held here: the run's other requests wait on the lock
                    # above, so none is judged against half-rebuilt windows.
                    await self._engine.adopt(run)
                    self.takeovers += 1
                self._held[run.pk] = lease.expires_at
                return None
        finally:
            if not lock.locked():
                self._locks.pop(run.pk, None)

    async def renew(self) -> None:
        """Scheduled every third of the TTL: extend the leases of the runs still evaluated here; forget
        the ones another replica took meanwhile (this replica stalled past their expiry)."""
        pks = list(self._held)
        until = self._clock() + self._ttl
        kept = set(await self._store.renew_run_leases(self.replica, pks, until))
        for pk in pks:
            if pk in kept:
                self._held[pk] = until
            else:
                self._held.pop(pk, None)
                self._engine.forget_run(pk)

    async def release_all(self) -> None:
        """On a clean stop: the runs move to other replicas at their next request, not after the TTL."""
        self._held.clear()
        await self._store.release_run_leases(self.replica)

    # The ingest listener in front of the rule engine ---------------------------------------------
    async def on_batch(self, run: Run, batch: RecordBatch) -> None:
        await self._engine.on_batch(run, batch)  # the routing middleware made this replica the owner

    async def on_run_event(self, event: RunEvent) -> None:
        """A start, resume or end of a run, on whichever replica it arrived: judged as the run's owner
        (taking the lease if free, so a resumed run's stored alerts are known). A run that starts here
        is let go again at once: its points may arrive at another replica, which then takes it."""
        run = event.run
        held_before = self.holds(run.pk)
        if await self.claim(run) is not None:
            return  # a live replica evaluates this run; it hears of the change through its own requests
        await self._engine.on_run_event(event)
        if event.state.is_terminal or not held_before:
            self._held.pop(run.pk, None)
            self._engine.forget_run(run.pk)
            await self._store.release_run_leases(self.replica, [run.pk])
