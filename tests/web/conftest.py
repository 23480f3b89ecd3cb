"""Fixtures the dashboard's test modules share: each module brings its own ``service`` and ``key``."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from playwright.sync_api import Browser

from tests.support.service import ServiceProcess
from tests.web.browser import chromium
from tests.web.session import logged_in


@pytest.fixture(scope="module")
def client(service: ServiceProcess, key: str) -> Iterator[httpx.Client]:
    """A dashboard session logged in with the module's ``key``."""
    found = logged_in(service, key)
    yield found
    found.close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium, once per module."""
    with chromium() as found:
        yield found
