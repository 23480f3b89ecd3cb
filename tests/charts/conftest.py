"""Fixtures the chart tests share."""

from __future__ import annotations

import pytest

from alerts.storage import Store


@pytest.fixture
def store(sqlite_store: Store) -> Store:
    """One backend: what a chart shows does not depend on it (the store contract is tested on both)."""
    return sqlite_store
