"""``alerts db``: migrate a database to this release, and back up a SQLite one while the service runs."""

from __future__ import annotations

import sqlite3
import sys
from pathlib import Path
from typing import TextIO

from alerts.errors import StorageError
from alerts.storage import open_store


async def upgrade_database(url: str, *, out: TextIO) -> int:
    """Migrate the schema to this release's head (what ``serve`` does at start) and say so."""
    store = open_store(url)
    await store.open()  # migrates, under an advisory lock on PostgreSQL
    try:
        await store.check_ready()
    finally:
        await store.close()
    print("database schema is up to date", file=out)
    return 0


def backup_database(url: str, target: Path, *, out: TextIO) -> int:
    """SQLite: an online backup (``sqlite3.Connection.backup``) to ``target``, consistent while the service
    writes. PostgreSQL has its own tools for that: the advice is printed and the exit code is 1."""
    if not url.startswith("sqlite:///"):
        print("error: `alerts db backup` copies SQLite databases; for PostgreSQL use its own tools, e.g.\n"
              "  pg_dump --format=custom --file=runwatch.dump \"$DATABASE_URL\"\n"
              "and pg_restore to bring it back (or continuous archiving for point-in-time recovery)",
              file=sys.stderr)
        return 1
    source_path = url.removeprefix("sqlite:///")
    if source_path == ":memory:" or not Path(source_path).exists():
        raise StorageError(f"no SQLite database at {source_path}")
    if target.exists():
        raise StorageError(f"{target} exists; choose a new file (a backup never overwrites)")
    target.parent.mkdir(parents=True, exist_ok=True)
    source = sqlite3.connect(source_path, timeout=30)
    try:
        copy = sqlite3.connect(target)
        try:
            source.backup(copy, pages=1024)  # in steps: the service's writes go on between them
        finally:
            copy.close()
    finally:
        source.close()
    print(f"backed up {source_path} to {target}", file=out)
    return 0
