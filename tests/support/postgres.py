"""A real PostgreSQL server for the suite: ``initdb`` into a temporary folder, a free loopback port.

One server per test session (starting one costs a few seconds); every test gets a database of its own
(``CREATE DATABASE`` copies ``template0`` in milliseconds), so tests never see each other's rows.

PostgreSQL refuses to run as root. Where the suite runs as root (CI containers), the server runs as the
``postgres`` system user that Debian's package creates, on a folder handed to that user.

``RUNWATCH_REQUIRE_POSTGRES=1`` (set by ``.ci/run``) turns a missing server into an error instead of a
skip: CI must not pass by skipping the PostgreSQL half of the suite.
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from tests.support.ports import free_port

_SERVER_STARTS_WITHIN = 120.0


def find_bindir() -> Path | None:
    """The folder with ``initdb``, ``pg_ctl`` and ``postgres``: PATH first, then Debian's versioned folders."""
    on_path = shutil.which("initdb")
    if on_path:
        return Path(os.path.realpath(on_path)).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    return Path(found[-1]).parent if found else None


def required_bindir() -> Path:
    """:func:`find_bindir` for a test that needs a server: skips without one, unless
    ``RUNWATCH_REQUIRE_POSTGRES=1`` (CI) makes that a failure."""
    import pytest  # only the tests' fixtures call this

    bindir = find_bindir()
    if bindir is None:
        if os.environ.get("RUNWATCH_REQUIRE_POSTGRES") == "1":
            pytest.fail("RUNWATCH_REQUIRE_POSTGRES=1 but no PostgreSQL server (initdb) is installed")
        pytest.skip("no PostgreSQL server installed (initdb not found)")
    return bindir


class PostgresServer:
    """``initdb`` + ``pg_ctl start`` on 127.0.0.1:<free port>, trust authentication. ``crash_safe=False``
    (tests) turns fsync off; benchmarks keep it on, with ``synchronous_commit=off`` as SQLite's
    ``synchronous=NORMAL`` under WAL: a crash of the process loses nothing, one of the machine the last
    commits."""

    def __init__(self, bindir: Path, *, crash_safe: bool = False) -> None:
        self.crash_safe = crash_safe
        self.bindir = bindir
        self.root = Path(tempfile.mkdtemp(prefix="runwatch-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.user = "runwatch"
        self._as_postgres = os.geteuid() == 0
        self._databases = itertools.count(1)

    def _run(self, *args: str, timeout: float = _SERVER_STARTS_WITHIN) -> subprocess.CompletedProcess[str]:
        command = [str(self.bindir / args[0]), *args[1:]]
        if self._as_postgres:  # PostgreSQL will not run as root
            command = ["setpriv", "--reuid=postgres", "--regid=postgres", "--init-groups", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=self.root)
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
        return result

    def start(self) -> PostgresServer:
        if self._as_postgres:
            entry = pwd.getpwnam("postgres")
            os.chown(self.root, entry.pw_uid, entry.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", self.user, "--auth=trust", "-E", "UTF8",
                  "--locale=C", "--no-sync")
        self._start_server()
        return self

    def _start_server(self) -> None:
        options = (f"-c listen_addresses=127.0.0.1 -p {self.port} -k {self.root} -c synchronous_commit=off "
                   "-c max_connections=300")
        if not self.crash_safe:
            options += " -c fsync=off -c full_page_writes=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-o", options,
                  "-w", "-t", str(int(_SERVER_STARTS_WITHIN)), "start")

    def shut_down(self, mode: str = "fast") -> None:
        """Stop the server and keep its data (``fast``: connections are cut, as a restart does;
        ``immediate``: a crash, recovered from the WAL at the next start)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop", timeout=60)

    def start_again(self) -> None:
        """Start a server that :meth:`shut_down` stopped, on the same port and data."""
        self._start_server()

    def stop(self) -> None:
        try:
            self._run("pg_ctl", "-D", str(self.data), "-m", "immediate", "-w", "stop", timeout=60)
        except (RuntimeError, subprocess.TimeoutExpired):
            pass
        shutil.rmtree(self.root, ignore_errors=True)

    def url(self, database: str) -> str:
        return f"postgresql://{self.user}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; its ``postgresql://`` URL."""
        name = f"test_{os.getpid()}_{next(self._databases)}"
        self._psql(f'CREATE DATABASE "{name}" TEMPLATE template0')
        return self.url(name)

    def _psql(self, sql: str) -> None:
        deadline = time.monotonic() + 30
        while True:
            result = subprocess.run([str(self.bindir / "psql"), "-h", "127.0.0.1", "-p", str(self.port),
                                     "-U", self.user, "-d", "postgres", "-v", "ON_ERROR_STOP=1", "-qc", sql],
                                    capture_output=True, text=True, timeout=60)
            if result.returncode == 0:
                return
            if time.monotonic() > deadline:
                raise RuntimeError(f"psql failed: {result.stderr}")
            time.sleep(0.2)  # e.g. "source database is being accessed by other users"

    def log_text(self) -> str:
        path = self.root / "server.log"
        return path.read_text(errors="replace") if path.exists() else ""
