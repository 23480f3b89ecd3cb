"""Files and artifacts in SQL: the ``Store`` methods behind ``save``, ``log_code`` and artifacts.

Contents are content-addressed blobs in the database (``blobs`` + ``blob_chunks`` of
``BLOB_CHUNK_BYTES``), so every replica of the service reads the same files and the service keeps no
disk of its own. A blob is stored once, whatever number of runs, artifacts and projects name it;
``project_blobs`` records which projects uploaded it, so a key can only reference contents its own
project sent.

A blob is written in short transactions of a few chunks (SQLite has one writer: a 100 MiB upload must
not stall metric ingestion for its whole length), and its ``blobs`` row last: until that row exists the
blob is not there for anyone. Chunks left by an interrupted upload are rewritten identically by the next
one (same digest, same fixed chunking), so they can never mix contents.

An artifact version is a manifest of (path, sha256 or reference URI). Its digest is the sha256 of the
sorted manifest (:func:`manifest_digest`); a new version (``v0``, ``v1``, ...) is made only for a digest
the name has not had yet. ``latest`` is not stored: it is always the newest version.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import AsyncIterator, Iterable, Iterator
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

from sqlalchemy import Table, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from alerts.storage import tables as t
from alerts.storage.base import (
    ArtifactEntry,
    ArtifactTypeConflict,
    ArtifactVersion,
    MissingBlobs,
    NewArtifact,
    RunBytesExceeded,
    StoredFile,
)

__all__ = ["SqlFiles", "manifest_digest"]

_WRITE_BYTES = 8 * t.BLOB_CHUNK_BYTES
"""Chunk bytes per write transaction of a blob upload."""

_VERSION = re.compile(r"^v(\d{1,9})$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")


def manifest_digest(entries: Iterable[ArtifactEntry]) -> str:
    """sha256 (hex) of ``<path>\\t<sha256 or "ref:" + uri>\\n`` per entry, sorted by path (code points).

    The SDK computes the same (``runwatch.artifacts``), so an artifact knows its digest before upload.
    """
    lines = sorted(f"{e.path}\t{e.sha256 if e.sha256 is not None else 'ref:' + (e.ref or '')}\n" for e in entries)
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def _rechunk(data: Iterable[bytes], size: int) -> Iterator[bytes]:
    """``data`` cut into pieces of exactly ``size`` bytes (the last may be shorter)."""
    pending = bytearray()
    for piece in data:
        pending += piece
        while len(pending) >= size:
            yield bytes(pending[:size])
            del pending[:size]
    if pending:
        yield bytes(pending)


def _chunks(items: list[Any], size: int = 500) -> list[list[Any]]:
    return [items[i:i + size] for i in range(0, len(items), size)]


class SqlFiles:
    """The file and artifact methods of :class:`~alerts.storage.sql.SqlStore` (mixed into it)."""

    if TYPE_CHECKING:
        @property
        def engine(self) -> AsyncEngine: ...

        def _begin(self) -> AbstractAsyncContextManager[AsyncConnection]: ...

        def _insert(self, table: Table) -> Any: ...

    # Blobs --------------------------------------------------------------------------------------------
    async def missing_blobs(self, project: str, digests: list[str]) -> list[str]:
        wanted = list(dict.fromkeys(digests))
        have: set[str] = set()
        pb = t.project_blobs.c
        async with self.engine.connect() as conn:
            for chunk in _chunks(wanted):
                have.update((await conn.execute(select(pb.sha256).where(
                    pb.project == project, pb.sha256.in_(chunk)))).scalars())
        return [digest for digest in wanted if digest not in have]

    async def put_blob(self, project: str, sha256: str, size: int, data: Iterable[bytes], at: float) -> bool:
        async with self.engine.connect() as conn:
            stored = (await conn.execute(select(t.blobs.c.sha256).where(t.blobs.c.sha256 == sha256))).first()
        chunks = 0
        if stored is None:
            batch: list[dict[str, Any]] = []
            for piece in _rechunk(data, t.BLOB_CHUNK_BYTES):
                batch.append({"sha256": sha256, "seq": chunks, "data": piece})
                chunks += 1
                if len(batch) * t.BLOB_CHUNK_BYTES >= _WRITE_BYTES:
                    await self._write_chunks(batch)
                    batch = []
            await self._write_chunks(batch)
        async with self._begin() as conn:
            if stored is None:
                await conn.execute(self._insert(t.blobs).values(
                    sha256=sha256, size=size, chunks=chunks, created_at=at).on_conflict_do_nothing())
            linked = await conn.execute(self._insert(t.project_blobs).values(
                project=project, sha256=sha256, created_at=at).on_conflict_do_nothing())
        return bool(linked.rowcount)

    async def _write_chunks(self, rows: list[dict[str, Any]]) -> None:
        if rows:
            async with self._begin() as conn:
                await conn.execute(self._insert(t.blob_chunks).on_conflict_do_nothing(), rows)

    async def read_blob(self, sha256: str) -> AsyncIterator[bytes]:
        async with self.engine.connect() as conn:
            count = (await conn.execute(select(t.blobs.c.chunks).where(t.blobs.c.sha256 == sha256))).scalar()
        c = t.blob_chunks.c
        for seq in range(count or 0):
            # A connection per chunk: a slow download holds no read transaction (nor the SQLite WAL) open.
            async with self.engine.connect() as conn:
                data = (await conn.execute(select(c.data).where(c.sha256 == sha256, c.seq == seq))).scalar()
            if data is None:  # pragma: no cover - a complete blob has every chunk
                raise LookupError(f"blob {sha256} is missing chunk {seq}")
            yield bytes(data)

    # Run files ----------------------------------------------------------------------------------------
    async def put_run_file(self, run_pk: int, path: str, sha256: str, kind: str, at: float, *,
                           max_run_bytes: int) -> StoredFile:
        f = t.run_files.c
        async with self._begin() as conn:
            project = (await conn.execute(select(t.runs.c.project).where(t.runs.c.pk == run_pk))).scalar_one()
            sizes = await _blob_sizes(conn, project, [sha256])
            if sha256 not in sizes:
                raise MissingBlobs([sha256])
            size = sizes[sha256]
            before = (await conn.execute(select(f.size).where(f.run_pk == run_pk, f.path == path))).scalar()
            stored = await _run_bytes(conn, run_pk)
            if stored - (before or 0) + size > max_run_bytes:
                raise RunBytesExceeded(stored - (before or 0), size, max_run_bytes)
            row = {"run_pk": run_pk, "path": path, "sha256": sha256, "size": size, "kind": kind, "updated_at": at}
            stmt = self._insert(t.run_files)
            await conn.execute(stmt.values(**row).on_conflict_do_update(
                index_elements=["run_pk", "path"],
                set_={key: stmt.excluded[key] for key in ("sha256", "size", "kind", "updated_at")}))
        return StoredFile(path=path, sha256=sha256, size=size, kind=kind, updated_at=at)

    async def list_run_files(self, run_pk: int) -> list[StoredFile]:
        f = t.run_files.c
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(t.run_files).where(f.run_pk == run_pk))).all()
        # Sorted here: PostgreSQL would order by its collation, not by code point.
        return sorted((_stored_file(row) for row in rows), key=lambda file: file.path)

    async def get_run_file(self, run_pk: int, path: str) -> StoredFile | None:
        f = t.run_files.c
        async with self.engine.connect() as conn:
            row = (await conn.execute(select(t.run_files).where(f.run_pk == run_pk, f.path == path))).first()
        return _stored_file(row) if row else None

    # Artifacts ----------------------------------------------------------------------------------------
    async def add_artifact(self, new: NewArtifact, at: float, *,
                           max_run_bytes: int) -> tuple[ArtifactVersion, bool]:
        for attempt in range(3):
            try:
                return await self._add_artifact(new, at, max_run_bytes)
            except IntegrityError:  # PostgreSQL: a concurrent request took the version number; count again
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    async def _add_artifact(self, new: NewArtifact, at: float, max_run_bytes: int) -> tuple[ArtifactVersion, bool]:
        a = t.artifacts.c
        digest = manifest_digest(new.entries)
        async with self._begin() as conn:
            wanted = [e.sha256 for e in new.entries if e.sha256 is not None]
            sizes = await _blob_sizes(conn, new.project, wanted)
            if missing := [digest for digest in dict.fromkeys(wanted) if digest not in sizes]:
                raise MissingBlobs(missing)
            named = (select(a.type, func.max(a.version)).where(a.project == new.project, a.name == new.name)
                     .group_by(a.type))
            kinds = (await conn.execute(named)).all()
            if kinds and kinds[0][0] != new.type:
                raise ArtifactTypeConflict(new.name, kinds[0][0], new.type)
            pk = (await conn.execute(select(a.pk).where(a.project == new.project, a.name == new.name,
                                                         a.digest == digest))).scalar()
            created = pk is None
            if pk is None:
                size = sum(sizes[e.sha256] for e in new.entries if e.sha256 is not None)
                if new.run_pk is not None and new.relation == "logged":
                    stored = await _run_bytes(conn, new.run_pk)
                    if stored + size > max_run_bytes:
                        raise RunBytesExceeded(stored, size, max_run_bytes)
                version = int(kinds[0][1]) + 1 if kinds else 0
                pk = (await conn.execute(t.artifacts.insert().values(
                    project=new.project, name=new.name, type=new.type, version=version, digest=digest,
                    description=new.description, meta=new.metadata, size=size, file_count=len(new.entries),
                    created_by=new.run_pk if new.relation == "logged" else None, created_at=at,
                ).returning(a.pk))).scalar_one()
                for chunk in _chunks(new.entries):
                    await conn.execute(t.artifact_files.insert(), [
                        {"artifact_pk": pk, "path": e.path, "sha256": e.sha256, "ref": e.ref,
                         "size": sizes[e.sha256] if e.sha256 is not None else e.size} for e in chunk])
            await self._link(conn, pk, new.project, new.name, new.aliases, new.run_pk, new.relation, at)
            found = await _versions(conn, [pk])
        return found[0], created

    async def _link(self, conn: AsyncConnection, pk: int, project: str, name: str, aliases: list[str],
                    run_pk: int | None, relation: str, at: float) -> None:
        """Move ``aliases`` to the version ``pk`` and record the run's relation to it."""
        if aliases:
            stmt = self._insert(t.artifact_aliases)
            await conn.execute(stmt.on_conflict_do_update(
                index_elements=["project", "name", "alias"], set_={"artifact_pk": stmt.excluded.artifact_pk},
            ), [{"project": project, "name": name, "alias": alias, "artifact_pk": pk}
                for alias in dict.fromkeys(aliases)])
        if run_pk is not None:
            await conn.execute(self._insert(t.artifact_usage).values(
                run_pk=run_pk, artifact_pk=pk, relation=relation, at=at).on_conflict_do_nothing())

    async def find_artifact(self, project: str, name: str, version: str) -> ArtifactVersion | None:
        a = t.artifacts.c
        query = select(a.pk).where(a.project == project, a.name == name)
        if version == "latest":
            query = query.order_by(a.version.desc()).limit(1)
        elif found := _VERSION.match(version):
            query = query.where(a.version == int(found.group(1)))
        elif _DIGEST.match(version):
            query = query.where(a.digest == version)
        else:
            al = t.artifact_aliases.c
            query = select(al.artifact_pk).where(al.project == project, al.name == name, al.alias == version)
        async with self.engine.connect() as conn:
            pk = (await conn.execute(query)).scalar()
            if pk is None:
                return None
            return (await _versions(conn, [pk]))[0]

    async def artifact_entries(self, artifact_pk: int, path: str | None = None) -> list[ArtifactEntry]:
        f = t.artifact_files.c
        query = select(t.artifact_files).where(f.artifact_pk == artifact_pk)
        if path is not None:
            query = query.where(f.path == path)
        async with self.engine.connect() as conn:
            rows = (await conn.execute(query)).all()
        entries = [ArtifactEntry(path=row.path, sha256=row.sha256, ref=row.ref, size=row.size) for row in rows]
        return sorted(entries, key=lambda entry: entry.path)

    async def use_artifact(self, run_pk: int, artifact: ArtifactVersion, aliases: list[str],
                           at: float) -> ArtifactVersion:
        async with self._begin() as conn:
            await self._link(conn, artifact.pk, artifact.project, artifact.name, aliases, run_pk, "used", at)
            return (await _versions(conn, [artifact.pk]))[0]

    async def run_artifacts(self, run_pk: int) -> list[tuple[str, ArtifactVersion]]:
        u = t.artifact_usage.c
        async with self.engine.connect() as conn:
            rows = (await conn.execute(select(u.relation, u.artifact_pk).where(u.run_pk == run_pk)
                                       .order_by(u.at, u.artifact_pk))).all()
            versions = {v.pk: v for v in await _versions(conn, [row.artifact_pk for row in rows])}
        return [(row.relation, versions[row.artifact_pk]) for row in rows if row.artifact_pk in versions]


async def _blob_sizes(conn: AsyncConnection, project: str, digests: list[str]) -> dict[str, int]:
    """Sizes of the blobs among ``digests`` that ``project`` uploaded."""
    b, pb = t.blobs.c, t.project_blobs.c
    sizes: dict[str, int] = {}
    for chunk in _chunks(sorted(set(digests))):
        rows = (await conn.execute(select(b.sha256, b.size).join(t.project_blobs, pb.sha256 == b.sha256)
                                   .where(pb.project == project, b.sha256.in_(chunk)))).all()
        sizes.update({row.sha256: int(row.size) for row in rows})
    return sizes


async def _run_bytes(conn: AsyncConnection, run_pk: int) -> int:
    """What counts against ``files.max_run_bytes``: the run's files and the artifact versions it created."""
    files = (await conn.execute(select(func.coalesce(func.sum(t.run_files.c.size), 0))
                                .where(t.run_files.c.run_pk == run_pk))).scalar()
    created = (await conn.execute(select(func.coalesce(func.sum(t.artifacts.c.size), 0))
                                  .where(t.artifacts.c.created_by == run_pk))).scalar()
    return int(files or 0) + int(created or 0)


async def _versions(conn: AsyncConnection, pks: list[int]) -> list[ArtifactVersion]:
    """The versions ``pks`` (in that order, those that exist) with their aliases."""
    if not pks:
        return []
    a, al = t.artifacts.c, t.artifact_aliases.c
    rows: dict[int, Any] = {}
    aliases: dict[int, list[str]] = {}
    for chunk in _chunks(sorted(set(pks))):
        rows.update({row.pk: row for row in (await conn.execute(select(t.artifacts).where(a.pk.in_(chunk)))).all()})
        for pk, alias in (await conn.execute(select(al.artifact_pk, al.alias).where(al.artifact_pk.in_(chunk)))):
            aliases.setdefault(pk, []).append(alias)
    newest: dict[tuple[str, str], int] = {}
    for project, name in {(row.project, row.name) for row in rows.values()}:
        newest[(project, name)] = int((await conn.execute(select(func.max(a.version)).where(
            a.project == project, a.name == name))).scalar_one())
    found = []
    for pk in pks:
        row = rows.get(pk)
        if row is None:
            continue
        names = (["latest"] if newest[(row.project, row.name)] == row.version else []) + sorted(aliases.get(pk, []))
        found.append(ArtifactVersion(
            pk=row.pk, project=row.project, name=row.name, type=row.type, version=row.version, digest=row.digest,
            description=row.description, metadata=row.meta or {}, size=int(row.size), file_count=row.file_count,
            created_by=row.created_by, created_at=row.created_at, aliases=names))
    return found


def _stored_file(row: Any) -> StoredFile:
    return StoredFile(path=row.path, sha256=row.sha256, size=int(row.size), kind=row.kind, updated_at=row.updated_at)

