"""Fixtures the dispatch tests share."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from alerts.storage import Store, open_store


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """A fresh SQLite store (migrated) in the test's folder."""
    store = open_store(f"sqlite:///{tmp_path / 'alerts.db'}")
    await store.open()
    yield store
    await store.close()
