"""The real ``alerts serve`` process on a free loopback port, driven by its own CLI."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.ports import free_port
from tests.support.waiting import stop_process


class ServiceProcess:
    """``alerts serve`` with a config written to ``workdir``; start/stop/kill keep the same port and DB."""

    def __init__(self, workdir: Path, *, config: dict[str, Any] | None = None,
                 storage_url: str | None = None, env: dict[str, str] | None = None) -> None:
        """``storage_url``: a ``postgresql://`` database to use instead of ``alerts.db`` in ``workdir``;
        ``env``: added to the service's environment (a test hook such as ``RUNWATCH_CHART_TEST_DELAY``)."""
        self.workdir = workdir
        self.extra_env = dict(env or {})
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}"
        self.config_path = workdir / "alerts.yaml"
        self.log_path = workdir / "service.log"
        settings: dict[str, Any] = {
            "server": {"host": "127.0.0.1", "port": self.port},
            "storage": {"url": storage_url or "sqlite:///alerts.db"},
            "delivery": {"initial_backoff": "200ms", "max_backoff": "2s"},
        }
        for key, value in (config or {}).items():
            if isinstance(value, dict) and isinstance(settings.get(key), dict):
                settings[key] = {**settings[key], **value}
            else:
                settings[key] = value
        self.config_path.write_text(yaml.safe_dump(settings))
        url = settings["storage"]["url"]
        self.storage_url = f"sqlite:///{workdir / url.removeprefix('sqlite:///')}" if url.startswith("sqlite") else url
        self.process: subprocess.Popen[bytes] | None = None
        self._admin_key: str | None = None

    def env(self) -> dict[str, str]:
        env = dict(os.environ)
        env.pop("ALERTS_CONFIG", None)
        return {**env, **self.extra_env}

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "alerts", *args, "--config", str(self.config_path)],
                              capture_output=True, text=True, env=self.env(), cwd=self.workdir,
                              check=check, timeout=60)

    def create_key(self, project: str | None = None, *, admin: bool = False) -> str:
        """A new API key, made by the function behind ``alerts keys create`` in this process.

        Spawning the CLI for every key cost a second of CPU each (an interpreter importing the service);
        ``tests/service/test_api.py`` covers the CLI command itself.
        """
        from alerts.keys import create_key
        from alerts.storage import open_store

        async def make() -> str:
            store = open_store(self.storage_url)
            await store.open()
            try:
                return (await create_key(store, project=project, admin=admin))[1]
            finally:
                await store.close()

        # Tests may call this from inside a running event loop (async tests): use a thread of its own.
        secret: list[str] = []
        worker = threading.Thread(target=lambda: secret.append(asyncio.run(make())))
        worker.start()
        worker.join(timeout=60)
        if not secret:
            raise RuntimeError(f"could not create a key in {self.storage_url}")
        return secret[0]

    @property
    def admin_key(self) -> str:
        if self._admin_key is None:
            self._admin_key = self.create_key(admin=True)
        return self._admin_key

    def start(self, timeout: float = 120.0) -> ServiceProcess:
        log = self.log_path.open("ab")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "alerts", "serve", "--config", str(self.config_path)],
            stdout=log, stderr=subprocess.STDOUT, env=self.env(), cwd=self.workdir)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"service exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                if httpx.get(f"{self.base_url}/healthz", timeout=1.0).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.05)
        raise RuntimeError(f"service did not become healthy:\n{self.log_text()}")

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs (what `kill -9` does in production)."""
        if self.process is not None:
            self.process.kill()
            self.process.wait()
        self.process = None

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def api(self, method: str, path: str, *, key: str | None = None, **kwargs: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {key or self.admin_key}", **kwargs.pop("headers", {})}
        return httpx.request(method, f"{self.base_url}{path}", headers=headers, timeout=30, **kwargs)

    def wait_for(self, predicate: Any, timeout: float = 60.0, interval: float = 0.1) -> Any:
        deadline = time.monotonic() + timeout
        while True:
            value = predicate()
            if value:
                return value
            if time.monotonic() > deadline:
                raise AssertionError(f"condition not met within {timeout}s")
            time.sleep(interval)


@contextmanager
def running_service(workdir: Path, config: dict[str, Any] | None = None, *,
                    env: dict[str, str] | None = None) -> Iterator[ServiceProcess]:
    """A service for a whole module: its tests share it, each with its own run ids (or project)."""
    service = ServiceProcess(workdir, config=config, env=env).start()
    try:
        yield service
    finally:
        service.stop()
