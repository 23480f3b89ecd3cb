"""The Store's files and artifacts (alerts/storage/files.py), and the migrations against the schema."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from alerts.storage import NewRun, Store, open_store
from alerts.storage import tables as t
from alerts.storage.base import ArtifactEntry, MissingBlobs, NewArtifact, RunBytesExceeded
from alerts.storage.sql import SqlStore
from tests.storage.old_database import OLD_RUN, database_at


def new_run(run_id: str = "r1", project: str = "p") -> NewRun:
    return NewRun(project=project, id=run_id, name="n", config={}, tags=[], notes=None, group=None, job_type=None,
                  started_at=100.0, host=None, pid=None)


async def test_the_migrations_build_exactly_the_schema_of_tables_py(storage_url: str) -> None:
    store = open_store(storage_url)
    await store.open()  # migrates to head
    try:
        assert isinstance(store, SqlStore)
        async with store.engine.connect() as conn:
            differences = await conn.run_sync(lambda sync: compare_metadata(MigrationContext.configure(sync),
                                                                            t.metadata))
        assert differences == []
    finally:
        await store.close()


async def test_a_database_of_the_previous_release_gains_the_file_tables(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    with database_at(db, "0007") as conn:
        conn.execute(sa.text(OLD_RUN))
    store = open_store(f"sqlite:///{db}")
    await store.open()
    try:
        run = await store.get_run("p", "old")
        assert run is not None and await store.list_run_files(run.pk) == []
        assert await store.run_artifacts(run.pk) == []
    finally:
        await store.close()


async def test_blobs_are_stored_in_chunks_and_an_interrupted_upload_leaves_nothing_visible(
        store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(t, "BLOB_CHUNK_BYTES", 4)
    data = b"0123456789abcdefghij!"  # 6 chunks of 4 bytes, the last 1 byte
    digest = hashlib.sha256(data).hexdigest()
    assert isinstance(store, SqlStore)
    # What an upload that died after two chunks left behind: chunks, but no blob.
    async with store.engine.begin() as conn:
        await conn.execute(t.blob_chunks.insert(), [{"sha256": digest, "seq": 0, "data": data[:4]},
                                                    {"sha256": digest, "seq": 1, "data": data[4:8]}])
    assert await store.missing_blobs("p", [digest]) == [digest]
    assert [piece async for piece in store.read_blob(digest)] == []
    # The pieces of a body need not fall on chunk boundaries.
    assert await store.put_blob("p", digest, len(data), [data[:3], data[3:10], data[10:]], 1.0)
    assert [piece async for piece in store.read_blob(digest)] == [data[i:i + 4] for i in range(0, len(data), 4)]
    assert not await store.put_blob("p", digest, len(data), [data], 2.0)  # the project has it already
    assert await store.missing_blobs("p", [digest, "f" * 64, digest]) == ["f" * 64]
    assert await store.missing_blobs("q", [digest]) == [digest]  # another project must upload it itself
    assert await store.put_blob("q", digest, len(data), [data], 3.0)
    async with store.engine.connect() as conn:
        assert (await conn.execute(sa.select(sa.func.count()).select_from(t.blobs))).scalar() == 1
    empty = hashlib.sha256(b"").hexdigest()
    assert await store.put_blob("p", empty, 0, [], 4.0)
    assert [piece async for piece in store.read_blob(empty)] == []


async def test_run_files_and_artifacts_count_against_the_run_limit(store: Store) -> None:
    run, _ = await store.upsert_run(new_run(), 100.0)
    blobs = {}
    for text in (b"a" * 10, b"b" * 20, b"c" * 30):
        blobs[text[:1]] = hashlib.sha256(text).hexdigest()
        await store.put_blob("p", blobs[text[:1]], len(text), [text], 1.0)
    await store.put_run_file(run.pk, "x", blobs[b"a"], "file", 2.0, max_run_bytes=60)
    await store.put_run_file(run.pk, "x", blobs[b"b"], "file", 3.0, max_run_bytes=60)  # replaced: 20, not 30
    version, created = await store.add_artifact(NewArtifact(
        "p", "ds", "dataset", None, {}, [], [ArtifactEntry("c", blobs[b"c"])], run.pk), 4.0, max_run_bytes=60)
    assert created and version.size == 30
    with pytest.raises(RunBytesExceeded) as exceeded:
        await store.put_run_file(run.pk, "y", blobs[b"a"], "code", 5.0, max_run_bytes=59)
    assert (exceeded.value.stored, exceeded.value.adding, exceeded.value.limit) == (50, 10, 59)
    with pytest.raises(MissingBlobs):
        await store.put_run_file(run.pk, "z", "0" * 64, "file", 5.0, max_run_bytes=60)
    assert [(f.path, f.size, f.kind) for f in await store.list_run_files(run.pk)] == [("x", 20, "file")]
    # Using a version is no output of the run: it does not count.
    other, _ = await store.upsert_run(new_run("r2"), 100.0)
    used = await store.use_artifact(other.pk, version, ["prod"], 6.0)
    assert used.aliases == ["latest", "prod"]
    assert [(relation, v.version) for relation, v in await store.run_artifacts(other.pk)] == [("used", 0)]
    assert [(relation, v.name) for relation, v in await store.run_artifacts(run.pk)] == [("logged", "ds")]
