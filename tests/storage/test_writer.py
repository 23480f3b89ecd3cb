"""The SQLite storage writer: group commit of record batches, metric blocks rebuilt off the request path."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from alerts.storage import NewRun, RecordBatch, SqlStore, open_store
from alerts.storage.series import block_summary_sql
from alerts.storage.writer import SqliteWriter

T0 = 1_700_000_000.0


def new_run(run_id: str) -> NewRun:
    return NewRun(project="p", id=run_id, name="n", config={}, tags=[], notes=None, group=None, job_type=None,
                  started_at=T0, host=None, pid=None)


def points(key: str, steps: range) -> list[tuple[str, int, float, float]]:
    return [(key, step, T0 + step, float(step % 7)) for step in steps]


def writer_of(store: Any) -> SqliteWriter:
    assert isinstance(store, SqlStore) and store._writer is not None
    return store._writer


def blocks_as_points_say(db: Path) -> tuple[list[Any], list[Any]]:
    """The stored ``metric_blocks`` rows and the rows the points give, both sorted."""
    with sqlite3.connect(db) as conn:
        stored = conn.execute("SELECT * FROM metric_blocks ORDER BY run_pk, key, block").fetchall()
        expected = conn.execute(f"{block_summary_sql('1 = 1')} ORDER BY 1, 2, 3").fetchall()
    return stored, expected


async def test_queued_batches_commit_together_and_each_caller_gets_its_own_outcome(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    store = open_store(f"sqlite:///{db}")
    await store.open()
    try:
        runs = [(await store.upsert_run(new_run(f"r{i}"), T0))[0] for i in range(4)]
        writer = writer_of(store)
        groups: list[int] = []
        commit = writer._commit
        writer._commit = lambda writes, conn: groups.append(len(writes)) or commit(writes, conn)  # type: ignore[method-assign]
        # Another connection holds the write lock: the first batch waits for it, the others queue behind.
        other = sqlite3.connect(db, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        first = asyncio.ensure_future(store.apply_records(runs[0], RecordBatch(1, 1, points=points("a", range(5))), T0))
        await asyncio.sleep(0)
        while not writer._queue.empty():  # the writer took it and waits for the lock
            await asyncio.sleep(0.01)
        rest = [asyncio.ensure_future(store.apply_records(run, batch, T0)) for run, batch in [
            (runs[1], RecordBatch(1, 1, points=points("a", range(5)))),
            (runs[2], RecordBatch(2, 2, points=points("a", range(5)))),  # a gap: the claim misses
            (runs[3], RecordBatch(1, 1, points=[("a", 0, T0, 1.0), (None, 1, T0, 1.0)])),  # type: ignore[list-item]
            (runs[0], RecordBatch(2, 2, points=points("a", range(5, 9)), summary={"acc": 0.5})),
        ]]
        await asyncio.sleep(0.05)
        other.execute("COMMIT")
        other.close()
        assert await first == (True, None)
        outcomes = await asyncio.gather(*rest, return_exceptions=True)
        assert outcomes[0] == (True, None) and outcomes[1] == (False, None) and outcomes[3] == (True, None)
        assert isinstance(outcomes[2], sqlite3.IntegrityError)  # a key is required: this batch alone fails
        assert groups == [1, 4]
        seqs = {run.id: (await store.get_run("p", run.id)).last_seq for run in runs}  # type: ignore[union-attr]
        assert seqs == {"r0": 2, "r1": 1, "r2": 0, "r3": 0}
        assert [len(await store.history(run.pk, keys=None, after_step=-1, limit=100)) for run in runs] == [0, 0, 0, 0]
        assert (await store.get_run("p", "r0")).summary == {"acc": 0.5}  # type: ignore[union-attr]
        assert await store.metric_keys(runs[3].pk) == []
        data = await store.series(runs[0].pk, "a")
        assert data.xs == list(range(9))
    finally:
        await store.close()


async def test_reads_see_the_blocks_of_a_write_at_once(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    store = open_store(f"sqlite:///{db}")
    await store.open()
    try:
        writer = writer_of(store)
        writer._idle_delay = writer._max_delay = 3600.0  # no rebuild in the background: only the read's
        run, _ = await store.upsert_run(new_run("r1"), T0)
        assert (await store.apply_records(run, RecordBatch(1, 1, points=points("v", range(10_000))), T0))[0]
        data = await store.series(run.pk, "v", width=100)
        assert data.mode == "minmax" and sum(data.counts) == 10_000 and data.xe[-1] == 9_999
        assert (await store.apply_records(run, RecordBatch(2, 2, points=points("v", range(10_000, 12_000))), T0))[0]
        data = await store.series(run.pk, "v", width=100)
        assert sum(data.counts) == 12_000 and data.xe[-1] == 11_999
        timed = await store.series(run.pk, "v", x="time", width=100)
        assert sum(timed.counts) == 12_000
        stored, expected = blocks_as_points_say(db)
        assert stored == expected and len(stored) == 12_000 // 16
    finally:
        await store.close()


CRASHING_WRITER = """
import asyncio, os, sys
from alerts.storage import NewRun, RecordBatch, open_store

async def main():
    store = open_store(f"sqlite:///{sys.argv[1]}")
    await store.open()
    store._writer._idle_delay = store._writer._max_delay = 3600.0
    run, _ = await store.upsert_run(NewRun(project="p", id="r1", name="n", config={}, tags=[], notes=None,
                                           group=None, job_type=None, started_at=0.0, host=None, pid=None), 0.0)
    points = [(key, step, float(step), float(step % 5)) for key in ("a", "b") for step in range(1000)]
    assert (await store.apply_records(run, RecordBatch(1, 1, points=points), 0.0))[0]
    os._exit(0)  # acknowledged, and the process dies before the blocks are rebuilt

asyncio.run(main())
"""


async def test_blocks_left_stale_by_a_crash_are_rebuilt_when_the_store_opens(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    subprocess.run([sys.executable, "-c", textwrap.dedent(CRASHING_WRITER), str(db)], check=True, timeout=120)
    stored, expected = blocks_as_points_say(db)
    assert stored == [] and len(expected) == 2 * -(-1000 // 16)
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT blocks_stale_low, blocks_stale_high FROM runs").fetchall() == [(0, 999)]
    store = open_store(f"sqlite:///{db}")
    await store.open()
    try:
        stored, expected = blocks_as_points_say(db)
        assert stored == expected
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT blocks_stale_low, blocks_stale_high FROM runs").fetchall() == [(None, None)]
    finally:
        await store.close()


async def test_close_drains_the_queue_and_rebuilds_the_blocks(tmp_path: Path) -> None:
    db = tmp_path / "store.db"
    store = open_store(f"sqlite:///{db}")
    await store.open()
    writer = writer_of(store)
    writer._idle_delay = writer._max_delay = 3600.0
    run, _ = await store.upsert_run(new_run("r1"), T0)
    pending = asyncio.ensure_future(store.apply_records(run, RecordBatch(1, 1, points=points("v", range(100))), T0))
    await asyncio.sleep(0)
    await store.close()
    assert await pending == (True, None)
    stored, expected = blocks_as_points_say(db)
    assert stored == expected and len(stored) == -(-100 // 16)


async def test_an_in_memory_store_writes_without_the_writer() -> None:
    store = open_store("sqlite:///:memory:")  # a second connection would open another, empty database
    await store.open()
    try:
        assert isinstance(store, SqlStore) and store._writer is None
        run, _ = await store.upsert_run(new_run("r1"), T0)
        assert (await store.apply_records(run, RecordBatch(1, 1, points=points("v", range(100))), T0))[0]
        assert sum((await store.series(run.pk, "v")).counts) == 100
    finally:
        await store.close()


async def test_another_connection_writes_while_the_writer_is_held(tmp_path: Path) -> None:
    """``paused()`` hands SQLite's write lock over at once: batches submitted meanwhile wait in the queue,
    uncommitted, and commit when the block ends; a pause cancelled before the writer reaches it holds nothing."""
    db = tmp_path / "store.db"
    store = open_store(f"sqlite:///{db}")
    await store.open()
    try:
        run, _ = await store.upsert_run(new_run("r1"), T0)
        writer = writer_of(store)
        async with writer.paused():
            with sqlite3.connect(db, timeout=0) as other:  # no busy wait: the lock must be free now
                other.execute("BEGIN IMMEDIATE")
                other.execute("UPDATE runs SET notes = 'held' WHERE pk = ?", (run.pk,))
                queued = asyncio.ensure_future(writer.apply(run.pk, RecordBatch(
                    first_seq=1, last_seq=1, steps=[(0, T0, 0.0)], points=points("a", range(1))), T0))
                await asyncio.sleep(0.2)
                assert not queued.done()  # the writer is held
                other.execute("COMMIT")
        assert await asyncio.wait_for(queued, 30) is True
        assert (await store.get_run("p", "r1")).notes == "held"  # type: ignore[union-attr]
        cancelled = asyncio.ensure_future(writer.paused().__aenter__())
        cancelled.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await cancelled
        assert await asyncio.wait_for(writer.apply(run.pk, RecordBatch(
            first_seq=2, last_seq=2, steps=[(1, T0 + 1, 1.0)], points=points("a", range(1, 2))), T0), 30) is True
    finally:
        await store.close()


async def test_batches_that_only_append_merge_their_blocks_and_others_rebuild_them(tmp_path: Path) -> None:
    """SDK-shaped batches (rising steps beyond the stored ones) merge their summaries into the blocks in
    their own transaction; a step logged again or a batch out of order is rebuilt from the points. Either
    way the blocks say what the points say, NaN and ±inf included."""
    db = tmp_path / "store.db"
    store = open_store(f"sqlite:///{db}")
    await store.open()
    try:
        writer = writer_of(store)
        writer._idle_delay = writer._max_delay = 3600.0  # nothing rebuilt in the background
        run, _ = await store.upsert_run(new_run("r1"), T0)
        special = {3: float("nan"), 17: float("inf"), 18: float("-inf"), 40: float("nan"), 41: float("nan")}

        def batch(seq: int, steps: list[int], shift: float = 0.0) -> RecordBatch:
            return RecordBatch(seq, seq, steps=[(step, T0 + step, None) for step in steps],
                               points=[(key, step, T0 + step, special.get(step, step % 7 + shift))
                                       for step in steps for key in ("a", "b") if (key, step % 5) != ("b", 0)])

        def stale() -> list[Any]:
            with sqlite3.connect(db) as conn:
                return conn.execute("SELECT blocks_stale_low, blocks_stale_high FROM runs").fetchall()

        seq = 0
        for first in range(0, 60, 7):  # appends, blocks split across batches
            seq += 1
            assert (await store.apply_records(run, batch(seq, list(range(first, first + 7))), T0))[0]
        assert stale() == [(None, None)]
        stored, expected = blocks_as_points_say(db)
        assert stored == expected and stored
        seq += 1  # a step written again: the points replace the old ones, the blocks are rebuilt
        assert (await store.apply_records(run, batch(seq, [20, 21], shift=100.0), T0))[0]
        assert stale() == [(20, 21)]
        seq += 1  # a batch whose steps fall: not an append either
        assert (await store.apply_records(run, batch(seq, [70, 65]), T0))[0]
        assert stale() == [(20, 70)]
        await writer.settle()
        stored, expected = blocks_as_points_say(db)
        assert stored == expected and stale() == [(None, None)]
        seq += 1  # appends again after a rebuild
        assert (await store.apply_records(run, batch(seq, [71, 72, 80]), T0))[0]
        stored, expected = blocks_as_points_say(db)
        assert stored == expected and stale() == [(None, None)]
    finally:
        await store.close()


async def test_alert_path_work_goes_ahead_of_queued_batches(tmp_path: Path) -> None:
    """run() (alerts, the outbox) waits for one transaction of batches at most, not for the whole queue:
    queued behind 40 batches, its work commits in the first transaction and is answered before them."""
    db = tmp_path / "store.db"
    store = open_store(f"sqlite:///{db}")
    await store.open()
    try:
        writer = writer_of(store)
        runs = [(await store.upsert_run(new_run(f"r{i}"), T0))[0] for i in range(40)]
        other = sqlite3.connect(db, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")  # the writer waits for the lock; everything below queues
        answered: list[str] = []

        async def apply(run: Any) -> None:
            await store.apply_records(run, RecordBatch(1, 1, points=points("v", range(50))), T0)
            answered.append(run.id)

        async def call() -> int:
            count = await writer.run(lambda conn: conn.execute("SELECT COUNT(*) FROM runs WHERE last_seq = 1")
                                     .fetchone()[0])
            answered.append("call")
            return int(count)

        batches = [asyncio.ensure_future(apply(run)) for run in runs]
        await asyncio.sleep(0.05)
        work = asyncio.ensure_future(call())
        await asyncio.sleep(0.05)
        other.execute("COMMIT")
        other.close()
        await asyncio.gather(*batches)
        committed_before = await work
        position = answered.index("call")
        assert position <= 8 and committed_before == position  # the first transaction (one batch), then it
        assert answered.count("call") == 1 and len(answered) == 41
    finally:
        await store.close()
