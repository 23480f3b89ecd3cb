"""Fixtures the dispatch tests share."""

from __future__ import annotations

import pytest

from alerts.storage import Store


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    """A fresh SQLite store (migrated) in the test's folder."""
    return sqlite_store
