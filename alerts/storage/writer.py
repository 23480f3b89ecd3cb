"""The SQLite storage writer: one thread, one raw ``sqlite3`` connection, group commit of record batches.

Through SQLAlchemy and aiosqlite a batch of 200 points paid more for its transaction (pool checkout,
greenlet switches, four thread hops for begin, write, commit and reset) than for the writes. Here a batch is
one queue put and one future; the thread writes every batch waiting in its queue in ONE transaction
(``BEGIN IMMEDIATE``, a ``SAVEPOINT`` per batch so one batch's claim miss or error leaves the others alone)
and resolves the callers' futures only after ``COMMIT``: an acknowledged batch is durable.

``metric_blocks``: a batch that only appends (its steps rise and all lie beyond the run's last stored step,
so none of its points was there before: what the SDK sends) is summarized in Python and merged into the
blocks in its own transaction (counts add, bounds widen), without reading a point back. Any other batch
(a step logged again, out of order) widens the run's stale step range (``runs.blocks_stale_low/high``) in
the same transaction as its points, and the thread rebuilds the stale blocks from the points in bulk when
its queue has been idle for a moment, at least every ``max_delay`` under load, on
:meth:`SqliteWriter.settle` (before a read of blocks) and when it starts or stops. A crash between the two
leaves the range in ``runs``, so the next start rebuilds it.

The service's small writes on the alert path (alerts, the outbox and the notification log) go through the
same thread as functions of its connection (:meth:`SqliteWriter.run`), in their own savepoint: one queue
put and one future, where SQLAlchemy's pool, greenlet and four thread hops cost ~2 ms. They go ahead of the
record batches queued: each transaction takes the waiting calls first, then at most
``_BATCHES_PER_COMMIT`` batches, so under load an alert waits for one such transaction, not the backlog.

The thread never waits on the event loop, so it holds a transaction only while it runs SQL; the service's
other writes (SQLAlchemy's connections) take the same lock with ``BEGIN IMMEDIATE`` and wait in SQLite's
busy handler, as the writer does for them.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import itertools
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

from alerts.storage.base import RecordBatch
from alerts.storage.series import BLOCK_MERGE, BLOCK_UPSERT, block_span, summarize_blocks

log = logging.getLogger(__name__)
T = TypeVar("T")
_Kind = Literal["write", "call", "wake", "flush", "settle", "stop", "pause"]

MAX_GROUP = 128
"""Batches committed together at most (a bound on one transaction's time and size)."""
_BATCHES_PER_COMMIT = 8
"""Record batches per transaction at most: work of the alert path (run) waits for one such transaction."""
_LONGEST_PAUSE = 60.0
"""Seconds a holder of :meth:`SqliteWriter.paused` may keep the writer waiting (a safety net)."""

_CLAIM = "UPDATE runs SET last_seq = ?, last_contact = ? WHERE pk = ? AND last_seq = ?"
# The stale range widens with the batch's steps; min()/max() of SQLite return NULL for a NULL argument.
_CLAIM_POINTS = ("UPDATE runs SET last_seq = ?, last_contact = ?, "
                 "blocks_stale_low = min(coalesce(blocks_stale_low, ?), ?), "
                 "blocks_stale_high = max(coalesce(blocks_stale_high, ?), ?) WHERE pk = ? AND last_seq = ?")
_UPSERT_STEPS = ("INSERT INTO steps (run_pk, step, timestamp, runtime) VALUES (?, ?, ?, ?) "
                 "ON CONFLICT (run_pk, step) DO UPDATE SET timestamp = excluded.timestamp, runtime = excluded.runtime")
_UPSERT_POINTS = ("INSERT INTO metrics (run_pk, key, step, timestamp, value) VALUES (?, ?, ?, ?, ?) "
                  "ON CONFLICT (run_pk, key, step) DO UPDATE SET timestamp = excluded.timestamp, "
                  "value = excluded.value")
_LAST_STEP = "SELECT max(step) FROM steps WHERE run_pk = ?"
_STALE_RUNS = "SELECT pk, blocks_stale_low, blocks_stale_high FROM runs WHERE blocks_stale_low IS NOT NULL"
_FRESH = "UPDATE runs SET blocks_stale_low = NULL, blocks_stale_high = NULL WHERE pk = ?"
# The keys of a run by a loose index scan of the (run_pk, key, step) primary key (see sql._METRIC_KEYS).
_KEYS = ("WITH RECURSIVE found(key) AS (SELECT MIN(key) FROM metrics WHERE run_pk = ?1 UNION ALL "
         "SELECT (SELECT MIN(m.key) FROM metrics m WHERE m.run_pk = ?1 AND m.key > found.key) "
         "FROM found WHERE found.key IS NOT NULL) SELECT key FROM found WHERE key IS NOT NULL")


@dataclass
class _Job:
    kind: _Kind
    future: asyncio.Future[Any]
    loop: asyncio.AbstractEventLoop
    work: Callable[[sqlite3.Connection], Any] | None = None
    run_pk: int = 0
    batch: RecordBatch | None = None
    at: float = 0.0


_Outcome = tuple[asyncio.Future[Any], Any, BaseException | None]


class SqliteWriter:
    """Applies record batches to a SQLite database file from its own thread (see the module docstring)."""

    def __init__(self, path: str, *, idle_delay: float = 0.05, max_delay: float = 0.5) -> None:
        self._path = path
        self._idle_delay = idle_delay
        self._max_delay = max_delay
        self._queue: queue.SimpleQueue[_Job] = queue.SimpleQueue()
        self._calls: queue.SimpleQueue[_Job] = queue.SimpleQueue()  # run()'s work: before queued batches
        self._thread: threading.Thread | None = None
        self._resumed = threading.Event()
        self._stale_since: float | None = None  # the writer thread's own: when blocks first went stale

    async def start(self) -> None:
        """Connect and rebuild the blocks a previous process left stale."""
        ready: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._thread = threading.Thread(target=self._main, args=(ready,), name="sqlite-writer", daemon=True)
        self._thread.start()
        try:
            await ready
        except BaseException:
            self._thread.join()
            self._thread = None
            raise

    async def apply(self, run_pk: int, batch: RecordBatch, at: float) -> bool:
        """Claim, steps, points, config and summary of ``batch``, committed; False when the claim missed
        (``last_seq`` is not ``batch.first_seq - 1``) and nothing was written."""
        return bool(await self._submit("write", run_pk=run_pk, batch=batch, at=at))

    async def run(self, work: Callable[[sqlite3.Connection], T]) -> T:
        """``work(connection)`` inside the writer's next transaction, in a savepoint of its own (an
        exception rolls back only its writes, and is raised here); its result once committed. ``work`` runs
        on the writer's thread: plain SQL, nothing that waits on the event loop."""
        result: T = await self._submit("call", work=work)
        return result

    async def flush(self) -> None:
        """Return once every batch submitted before is committed (or failed)."""
        await self._submit("flush")

    async def settle(self) -> None:
        """:meth:`flush`, then rebuild every stale block: ``metric_blocks`` agree with the points."""
        await self._submit("settle")

    async def close(self) -> None:
        """Drain the queue, rebuild stale blocks and close the connection."""
        if self._thread is None:
            return
        try:
            await self._submit("stop")
        finally:
            self._thread.join()
            self._thread = None

    @contextlib.asynccontextmanager
    async def paused(self) -> AsyncIterator[None]:
        """Hold the writer between two of its transactions (after everything submitted before) while the
        caller writes through another connection.

        SQLite's busy handler makes a waiting connection sleep and retry (up to 100 ms a time), so beside a
        writer that commits back to back it could wait for seconds; handing over is immediate. Nothing
        inside may wait on this writer (apply, flush, settle): it waits for the block to end.
        """
        pause = self._submit("pause")
        try:
            await pause
            yield
        finally:
            self._resumed.set()  # also when cancelled before the writer got to the pause: it then goes on

    def _submit(self, kind: _Kind, **values: Any) -> asyncio.Future[Any]:
        if self._thread is None:
            raise RuntimeError("the storage writer is not running")
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Any] = loop.create_future()
        job = _Job(kind, future, loop, **values)
        if kind == "call":  # ahead of the record batches queued (see _serve); a "wake" job wakes the thread
            self._calls.put(job)
            job = _Job("wake", future, loop)  # resolved with the call, never on its own
        self._queue.put(job)
        return future

    # The writer thread ------------------------------------------------------------------------------
    def _main(self, ready: asyncio.Future[None]) -> None:
        loop = ready.get_loop()
        try:
            db = _connect(self._path)
        except BaseException as exc:
            _post(loop, [(ready, None, exc)])
            return
        try:
            self._stale_since = time.monotonic()  # whatever a previous process left: look once
            self._rebuild(db)
        except BaseException as exc:
            db.close()
            _post(loop, [(ready, None, exc)])
            return
        _post(loop, [(ready, None, None)])
        try:
            while self._serve(db):
                pass
        finally:
            db.close()
            for waiting in (self._calls, self._queue):  # submitted after the stop: refused, not forgotten
                while True:
                    try:
                        job = waiting.get_nowait()
                    except queue.Empty:
                        break
                    if job.kind != "wake":  # its call is refused from the other queue
                        _post(job.loop, [(job.future, None, RuntimeError("the storage writer is closed"))])

    def _serve(self, db: sqlite3.Connection) -> bool:
        """Take the next jobs (waiting for them at most until stale blocks are due) and do them; False
        once stopped."""
        timeout = None
        if self._stale_since is not None:
            timeout = max(0.0, min(self._idle_delay, self._stale_since + self._max_delay - time.monotonic()))
        try:
            jobs = [self._queue.get(timeout=timeout)]
        except queue.Empty:
            self._rebuild_quietly(db)
            return True
        while len(jobs) < MAX_GROUP:
            try:
                jobs.append(self._queue.get_nowait())
            except queue.Empty:
                break
        writes = collections.deque(job for job in jobs if job.kind == "write")
        pauses = [job for job in jobs if job.kind == "pause"]
        # A "wake" only woke the thread: its call is taken with the waiting calls below.
        controls = [job for job in jobs if job.kind not in ("write", "pause", "wake")]
        while True:
            # Taken afresh for every transaction: the alert path's writes wait for one transaction at most.
            group = self._take_calls() + [writes.popleft() for _ in range(min(len(writes), _BATCHES_PER_COMMIT))]
            if not group:
                break
            self._answer(group, functools.partial(self._commit, group, db))
        self._answer(controls, functools.partial(self._control, controls, db))
        for pause in pauses:  # one at a time: each holder ends its block before the next begins
            _post(pause.loop, [(pause.future, None, None)])
            if not self._resumed.wait(timeout=_LONGEST_PAUSE):
                log.warning("the storage writer was held for %ss; going on (SQLite's lock still orders writes)",
                            _LONGEST_PAUSE)
            self._resumed.clear()
        return not any(job.kind == "stop" for job in controls)

    def _take_calls(self) -> list[_Job]:
        calls = []
        while True:
            try:
                calls.append(self._calls.get_nowait())
            except queue.Empty:
                return calls

    @staticmethod
    def _answer(jobs: list[_Job], work: Callable[[], list[_Outcome]]) -> None:
        """Do ``work`` for ``jobs`` and resolve their futures: one wake-up of each event loop."""
        if not jobs:
            return
        try:
            outcomes = work()
        except Exception as exc:  # a bug here must not leave callers waiting forever
            log.exception("the storage writer failed")
            outcomes = [(job.future, None, exc) for job in jobs]
        by_loop: dict[asyncio.AbstractEventLoop, list[_Outcome]] = {}
        for job, outcome in zip(jobs, outcomes, strict=True):
            by_loop.setdefault(job.loop, []).append(outcome)
        for loop, resolved in by_loop.items():
            _post(loop, resolved)

    def _control(self, controls: list[_Job], db: sqlite3.Connection) -> list[_Outcome]:
        """Rebuild stale blocks if a job asks for it (settle, stop) or they are due; the jobs' outcomes."""
        error: BaseException | None = None
        if any(job.kind in ("settle", "stop") for job in controls):
            try:
                self._rebuild(db)
            except Exception as exc:
                error = exc
        elif self._stale_since is not None and time.monotonic() >= self._stale_since + self._max_delay:
            self._rebuild_quietly(db)
        return [(job.future, None, None if job.kind == "flush" else error) for job in controls]

    def _commit(self, writes: list[_Job], db: sqlite3.Connection) -> list[_Outcome]:
        if not writes:
            return []
        outcomes: list[_Outcome] = []
        stale = False
        try:
            db.execute("BEGIN IMMEDIATE")
            for job in writes:
                db.execute("SAVEPOINT batch")
                try:
                    if job.work is not None:
                        result, leaves_stale = job.work(db), False
                    else:
                        assert job.batch is not None
                        result, leaves_stale = _write(db, job.run_pk, job.batch, job.at)
                except Exception as exc:
                    db.execute("ROLLBACK TO batch")
                    db.execute("RELEASE batch")
                    outcomes.append((job.future, None, exc))
                    continue
                db.execute("RELEASE batch")
                outcomes.append((job.future, result, None))
                stale = stale or leaves_stale
            db.execute("COMMIT")
        except Exception as exc:  # the group's transaction is lost: so is every batch of it
            if db.in_transaction:
                db.execute("ROLLBACK")
            return [(job.future, None, exc) for job in writes]
        if stale and self._stale_since is None:
            self._stale_since = time.monotonic()
        return outcomes

    def _rebuild_quietly(self, db: sqlite3.Connection) -> None:
        try:
            self._rebuild(db)
        except Exception:  # stays stale: the next rebuild (settle, stop, the next start) tries again
            log.exception("rebuilding metric blocks failed")
            self._stale_since = time.monotonic()

    def _rebuild(self, db: sqlite3.Connection) -> None:
        """Rebuild the blocks of every run's stale step range, in one transaction."""
        if self._stale_since is None:
            return
        db.execute("BEGIN IMMEDIATE")
        try:
            runs = db.execute(_STALE_RUNS).fetchall()
            for pk, low, high in runs:
                first, last = block_span(low, high)
                db.executemany(BLOCK_UPSERT, [{"run_pk": pk, "key": key, "low": first, "high": last}
                                              for (key,) in db.execute(_KEYS, (pk,))])
            db.executemany(_FRESH, [(pk,) for pk, _low, _high in runs])
            db.execute("COMMIT")
        except BaseException:
            if db.in_transaction:
                db.execute("ROLLBACK")
            raise
        self._stale_since = None


def _connect(path: str) -> sqlite3.Connection:
    # Autocommit at the driver: the writer says BEGIN/SAVEPOINT/COMMIT itself.
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=NORMAL")
    db.execute("PRAGMA busy_timeout=10000")
    return db


def _write(db: sqlite3.Connection, pk: int, batch: RecordBatch, at: float) -> tuple[bool, bool]:
    """Apply ``batch`` in the open transaction: (claimed, whether it left the run's blocks stale)."""
    appends = bool(batch.points) and _only_appends(db, pk, batch)
    if batch.points and not appends:
        steps = [step for _key, step, _at, _value in batch.points]
        low, high = min(steps), max(steps)
        claim = db.execute(_CLAIM_POINTS, (batch.last_seq, at, low, low, high, high, pk, batch.first_seq - 1))
    else:
        claim = db.execute(_CLAIM, (batch.last_seq, at, pk, batch.first_seq - 1))
    # The conditional update is the guard against two concurrent deliveries of one batch.
    if not claim.rowcount:
        return False, False
    if batch.steps:
        db.executemany(_UPSERT_STEPS, [(pk, s, ts, rt) for s, ts, rt in batch.steps])
    if batch.points:
        db.executemany(_UPSERT_POINTS, [(pk, k, s, ts, None if v != v else v) for k, s, ts, v in batch.points])
    if appends:
        db.executemany(BLOCK_MERGE, summarize_blocks(pk, batch.points))
    # JSON as SQLAlchemy's JSON type stores it on SQLite (json.dumps, no custom serializer).
    if batch.config is not None:
        db.execute("UPDATE runs SET config = ? WHERE pk = ?", (json.dumps(batch.config), pk))
    if batch.summary is not None:
        db.execute("UPDATE runs SET summary = ? WHERE pk = ?", (json.dumps(batch.summary), pk))
    return True, bool(batch.points) and not appends


def _only_appends(db: sqlite3.Connection, pk: int, batch: RecordBatch) -> bool:
    """Whether every point of ``batch`` is new to the run: its steps rise strictly (one record per step, so
    one point per key and step), its points lie on them, and the first lies beyond every stored step
    (ingest stores a point only with its step). Then its block summaries can be merged into the stored ones."""
    steps = [step for step, _at, _runtime in batch.steps]
    if not steps or any(later <= earlier for earlier, later in itertools.pairwise(steps)):
        return False
    if not {step for _key, step, _at, _value in batch.points} <= set(steps):
        return False
    (last,) = db.execute(_LAST_STEP, (pk,)).fetchone()
    return last is None or steps[0] > last


def _post(loop: asyncio.AbstractEventLoop, outcomes: list[_Outcome]) -> None:
    """Resolve futures of ``loop`` from the writer thread."""
    try:
        loop.call_soon_threadsafe(_resolve, outcomes)
    except RuntimeError:  # the loop is closed: nobody waits any more
        pass


def _resolve(outcomes: list[_Outcome]) -> None:
    for future, value, error in outcomes:
        if future.cancelled():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


__all__ = ["SqliteWriter"]
