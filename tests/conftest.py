from __future__ import annotations

import compileall
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from alerts.storage import Store, open_store
from tests.support.receiver import WebhookReceiver
from tests.support.service import ServiceProcess

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT / "sdk") not in sys.path:  # this checkout's SDK in-process too, whatever is installed elsewhere
    sys.path.insert(0, str(ROOT / "sdk"))


def pytest_configure(config: pytest.Config) -> None:
    """Let the suite's many interpreters share compiled bytecode, and run this checkout's code.

    Every test spawns interpreters (the service, its CLI, SDK scripts). Where the environment sets
    ``PYTHONDONTWRITEBYTECODE=1`` (these machines do), each of them compiled every module of ``alerts``
    and ``runwatch`` again. The children inherit this process's environment, so dropping the variable here
    and compiling both packages once lets every child load cached bytecode instead.
    """
    os.environ.pop("PYTHONDONTWRITEBYTECODE", None)
    sys.dont_write_bytecode = False
    # The children run this checkout's code, whatever an editable install elsewhere points at (a second
    # clone's `pip install -e .` would otherwise test that clone's service under this one's tests).
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT), str(ROOT / "sdk"),
                                                *filter(None, [os.environ.get("PYTHONPATH")])])
    for package in (ROOT / "alerts", ROOT / "sdk" / "runwatch"):
        compileall.compile_dir(package, quiet=1)


@pytest.fixture(autouse=True)
def no_run_left_behind() -> Iterator[None]:
    """A test that used the SDK in-process must not leave its run as the process's active or last one
    (later tests check what `runwatch.log` says before any `init`)."""
    yield
    session = sys.modules.get("runwatch._session")
    if session is not None:
        run = session.active_run()
        if run is not None:
            run.finish(quiet=True)
        session._last = None


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    """An open SQLite store in the test's directory (PostgreSQL joins as a parameter with its backend)."""
    store = open_store(f"sqlite:///{tmp_path / 'store.db'}")
    await store.open()
    yield store
    await store.close()


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture
def service_factory(tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """Start ``alerts serve`` processes with config overrides; all are stopped after the test."""
    started: list[ServiceProcess] = []

    def make(config: dict[str, Any] | None = None, *, start: bool = True, name: str = "service") -> ServiceProcess:
        service = ServiceProcess(tmp_path / name, config=config)
        started.append(service)
        return service.start() if start else service

    yield make
    for service in started:
        service.stop()


@pytest.fixture
def service(service_factory: Callable[..., ServiceProcess]) -> ServiceProcess:
    """A running service with the default console channel."""
    return service_factory()


@pytest.fixture
def webhook_service(service_factory: Callable[..., ServiceProcess],
                    webhook_receiver: WebhookReceiver) -> ServiceProcess:
    """A running service that delivers every notification to ``webhook_receiver`` (signed)."""
    return service_factory({
        "channels": {"console": {"type": "console"},
                     "hook": {"type": "webhook", "url": webhook_receiver.url, "secret": "test-signing-secret"}},
        "defaults": {"channels": ["console", "hook"]},
    })
