"""Shared by the benchmarks: start a real `alerts serve` process and talk to it."""

from __future__ import annotations

import atexit
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import yaml

_REPO = Path(__file__).resolve().parent.parent
_REPO_PATH = os.pathsep.join([str(_REPO), str(_REPO / "sdk"), *filter(None, [os.environ.get("PYTHONPATH")])])
"""The service benchmarked is this checkout's, whatever an editable install elsewhere points at."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def tree_path(tree: Path | None) -> str:
    """PYTHONPATH that makes ``python -m alerts`` the service of ``tree`` (a checkout; default: this one)."""
    if tree is None:
        return _REPO_PATH
    return os.pathsep.join([str(tree), str(tree / "sdk"), *filter(None, [os.environ.get("PYTHONPATH")])])


_postgres: Any = None


def storage_url() -> str:
    """SQLite in the service's folder, or with ``RUNWATCH_BENCH_STORAGE=postgresql`` a new database on a
    PostgreSQL server this process starts once (Debian's, as the tests do; crash-safe settings)."""
    global _postgres
    if os.environ.get("RUNWATCH_BENCH_STORAGE", "sqlite") != "postgresql":
        return "sqlite:///alerts.db"
    if _postgres is None:
        from tests.support.postgres import PostgresServer, find_bindir

        bindir = find_bindir()
        if bindir is None:
            raise SystemExit("RUNWATCH_BENCH_STORAGE=postgresql but no PostgreSQL server is installed")
        _postgres = PostgresServer(bindir, crash_safe=True).start()
        atexit.register(_postgres.stop)
    return str(_postgres.create_database())


class BenchService:
    """``tree``: another checkout whose service to run (a before/after comparison in one run); the
    benchmark's own code and load stay this checkout's."""

    def __init__(self, config: dict[str, Any], rules: list[dict[str, Any]] | None = None, *,
                 tree: Path | None = None) -> None:
        self.python_path = tree_path(tree)
        self.dir = Path(tempfile.mkdtemp(prefix="runwatch-bench-"))
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        settings = {"server": {"host": "127.0.0.1", "port": self.port}, "storage": {"url": storage_url()},
                    **config}
        if rules is not None:
            (self.dir / "rules.yaml").write_text(yaml.safe_dump({"rules": rules}, sort_keys=False))
            settings["rule_files"] = ["rules.yaml"]
        self.config_path = self.dir / "alerts.yaml"
        self.config_path.write_text(yaml.safe_dump(settings))
        self.process: subprocess.Popen[bytes] | None = None

    def cli(self, *args: str) -> str:
        return subprocess.run([sys.executable, "-m", "alerts", *args, "--config", str(self.config_path)],
                              capture_output=True, text=True, check=True, cwd=self.dir,
                              env={**os.environ, "PYTHONPATH": self.python_path}).stdout.strip()

    def start(self) -> BenchService:
        log = (self.dir / "service.log").open("ab")
        self.process = subprocess.Popen([sys.executable, "-m", "alerts", "serve", "--config", str(self.config_path)],
                                        stdout=log, stderr=subprocess.STDOUT, cwd=self.dir,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": self.python_path})
        for _ in range(600):
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1).status_code == 200:
                    return self
            except httpx.TransportError:
                time.sleep(0.05)
        raise RuntimeError((self.dir / "service.log").read_text())

    def stop(self) -> None:
        if self.process is not None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
            self.process = None

    @property
    def pids(self) -> list[int]:
        return [self.process.pid] if self.process is not None else []


class BenchCluster:
    """``replicas`` services on one PostgreSQL database (``cluster.enabled``) behind nginx, configured by
    ``deploy/nginx.conf`` as the suite runs it: the same face as :class:`BenchService` (``base_url`` is
    nginx's), its CPU the sum of the replicas'."""

    def __init__(self, config: dict[str, Any], rules: list[dict[str, Any]] | None = None, *,
                 tree: Path | None = None, replicas: int = 3) -> None:
        if os.environ.get("RUNWATCH_BENCH_STORAGE") != "postgresql":
            raise SystemExit("RUNWATCH_BENCH_REPLICAS needs RUNWATCH_BENCH_STORAGE=postgresql")
        url = storage_url()
        clustered = {**config, "storage": {"url": url}, "cluster": {"enabled": True}}
        self.members = [BenchService(clustered, rules, tree=tree) for _ in range(replicas)]
        self.dir = self.members[0].dir
        self.proxy: Any = None
        self.base_url = ""

    def cli(self, *args: str) -> str:
        return self.members[0].cli(*args)

    def start(self) -> BenchCluster:
        from tests.support.nginx import Nginx, find_nginx

        for member in self.members:
            member.start()
        binary = find_nginx()
        if binary is None:
            raise SystemExit("RUNWATCH_BENCH_REPLICAS needs nginx")
        self.proxy = Nginx(binary, [f"127.0.0.1:{member.port}" for member in self.members]).start()
        self.base_url = self.proxy.base_url
        return self

    def stop(self) -> None:
        if self.proxy is not None:
            self.proxy.stop()
        for member in self.members:
            member.stop()

    @property
    def pids(self) -> list[int]:
        return [pid for member in self.members for pid in member.pids]


def make_service(config: dict[str, Any], rules: list[dict[str, Any]] | None = None, *,
                 tree: Path | None = None) -> BenchService | BenchCluster:
    """One service, or with ``RUNWATCH_BENCH_REPLICAS=N`` (N > 1, on PostgreSQL) N replicas behind nginx."""
    replicas = int(os.environ.get("RUNWATCH_BENCH_REPLICAS", "1"))
    if replicas > 1:
        return BenchCluster(config, rules, tree=tree, replicas=replicas)
    return BenchService(config, rules, tree=tree)
