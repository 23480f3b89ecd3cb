from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import pytest

from tests.rules.harness import Harness


@pytest.fixture
async def make_harness(tmp_path: Path) -> AsyncIterator[Callable[..., Coroutine[Any, Any, Harness]]]:
    made: list[Harness] = []

    async def make(rules_yaml: str, **kwargs: Any) -> Harness:
        harness = await Harness(tmp_path, rules_yaml, **kwargs).start()
        made.append(harness)
        return harness

    yield make
    for harness in made:
        await harness.close()
