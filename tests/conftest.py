from __future__ import annotations

import compileall
import os
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from alerts.storage import Store, open_store
from tests.support.postgres import PostgresServer, required_bindir
from tests.support.receiver import WebhookReceiver
from tests.support.service import ServiceProcess
from tests.support.slack_server import SlackServer
from tests.support.smtp_server import Certificates, SmtpServer, make_certificates

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


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One real PostgreSQL server for the session (see tests/support/postgres.py); skipped where none is
    installed, unless ``RUNWATCH_REQUIRE_POSTGRES=1`` (CI) makes that an error."""
    server = PostgresServer(required_bindir()).start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def storage_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A fresh database of each backend: a SQLite file in the test's directory, or a new PostgreSQL
    database on the session's server."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store.db'}"
    server: PostgresServer = request.getfixturevalue("postgres_server")
    return server.create_database()


@pytest.fixture
async def store(storage_url: str) -> AsyncIterator[Store]:
    """An open store on each backend (the store contract holds on both)."""
    store = open_store(storage_url)
    await store.open()
    yield store
    await store.close()


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[Store]:
    """A fresh SQLite store (migrated) in the test's folder, for tests that need one backend only."""
    store = open_store(f"sqlite:///{tmp_path / 'alerts.db'}")
    await store.open()
    yield store
    await store.close()


@pytest.fixture(scope="session")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A CA and a server certificate for the SMTP servers' TLS (the channel trusts the CA by ``ca_file``)."""
    return make_certificates(tmp_path_factory.mktemp("smtp-certs"))


@pytest.fixture
def smtp(certificates: Certificates) -> Iterator[SmtpServer]:
    """A real SMTP server (aiosmtpd): STARTTLS and implicit TLS ports, AUTH (tests/support/smtp_server.py)."""
    server = SmtpServer(certificates).start()
    yield server
    server.stop()


@pytest.fixture
def slack() -> Iterator[SlackServer]:
    """A local server speaking Slack's Web API and incoming-webhook protocol (tests/support/slack_server.py)."""
    server = SlackServer().start()
    yield server
    server.stop()


@pytest.fixture
def webhook_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Tests marked ``both_backends`` that start services run once on SQLite and once on PostgreSQL."""
    if "service_backend" in metafunc.fixturenames and metafunc.definition.get_closest_marker("both_backends"):
        metafunc.parametrize("service_backend", ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)],
                             indirect=True)


@pytest.fixture
def service_backend(request: pytest.FixtureRequest) -> str:
    """The storage backend of the services a test starts: SQLite unless the test is ``both_backends``."""
    return str(getattr(request, "param", "sqlite"))


@pytest.fixture
def service_factory(tmp_path: Path, service_backend: str,
                    request: pytest.FixtureRequest) -> Iterator[Callable[..., ServiceProcess]]:
    """Start ``alerts serve`` processes with config overrides; all are stopped after the test. On
    PostgreSQL, every service of the test shares one new database (as replicas and restarts do)."""
    started: list[ServiceProcess] = []
    database: list[str] = []

    def storage_url() -> str | None:
        if service_backend != "postgresql":
            return None
        if not database:
            server: PostgresServer = request.getfixturevalue("postgres_server")
            database.append(server.create_database())
        return database[0]

    def make(config: dict[str, Any] | None = None, *, start: bool = True, name: str = "service") -> ServiceProcess:
        service = ServiceProcess(tmp_path / name, config=config, storage_url=storage_url())
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
