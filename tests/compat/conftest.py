"""The W&B compatibility corpus: one real service per test module."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.support.service import ServiceProcess, running_service


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One service per module; every corpus script writes to a project of its own."""
    with running_service(tmp_path_factory.mktemp("compat-service")) as service:
        yield service
