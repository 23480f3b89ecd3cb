"""Persistence: one async :class:`Store` interface, SQLite and PostgreSQL behind it."""

from alerts.storage.base import NewRun, RecordBatch, RunExit, Store
from alerts.storage.sql import SqlStore


def open_store(url: str) -> Store:
    """The store for a storage URL (``sqlite:///...`` or ``postgresql://...``); call ``open()`` on it."""
    return SqlStore(url)


__all__ = ["NewRun", "RecordBatch", "RunExit", "SqlStore", "Store", "open_store"]
