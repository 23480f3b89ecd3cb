"""Debian's ``prometheus``, ``prometheus-alertmanager`` and ``amtool`` for the suite, on free loopback ports
with configs in temporary folders (never their system services), and a tiny exporter to scrape.

Where a binary is missing the tests that need it skip, saying which; ``RUNWATCH_REQUIRE_PROMETHEUS=1``
(set by ``.ci/run``, which installs both packages) turns that into a failure.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.support.ports import free_port
from tests.support.waiting import stop_process

_PACKAGES = {"prometheus": "prometheus", "amtool": "prometheus-alertmanager",
             "prometheus-alertmanager": "prometheus-alertmanager"}


def required_binary(name: str) -> str:
    """The path of ``name`` (``prometheus``, ``amtool``, ``prometheus-alertmanager``); skips the test
    without it, unless ``RUNWATCH_REQUIRE_PROMETHEUS=1`` makes that a failure."""
    import pytest  # only the tests call this

    found = shutil.which(name)
    if found is None:
        package = _PACKAGES.get(name, name)
        if os.environ.get("RUNWATCH_REQUIRE_PROMETHEUS") == "1":
            pytest.fail(f"RUNWATCH_REQUIRE_PROMETHEUS=1 but {name} is not installed (Debian package {package})")
        pytest.skip(f"{name} is not installed (apt-get install {package})")
    return found


class Exporter:
    """An HTTP server that serves gauges in Prometheus' text format at ``/metrics``; set them at will."""

    def __init__(self) -> None:
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self._values: dict[str, float] = {}
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def set(self, name: str, value: float) -> None:
        with self._lock:
            self._values[name] = value

    def start(self) -> Exporter:
        exporter = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 - http.server's naming
                with exporter._lock:
                    lines = [f"# TYPE {name} gauge\n{name} {value}\n" for name, value in exporter._values.items()]
                body = "".join(lines).encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


class _Daemon:
    """A binary started with a config in its own temporary folder, its output in ``<name>.log`` there."""

    name = "daemon"

    def __init__(self, binary: str) -> None:
        self.binary = binary
        self.folder = Path(tempfile.mkdtemp(prefix=f"runwatch-{self.name}-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None

    def _start(self, args: list[str], ready_path: str, timeout: float) -> None:
        log = (self.folder / f"{self.name}.log").open("ab")
        self.process = subprocess.Popen([self.binary, *args], stdout=log, stderr=subprocess.STDOUT, cwd=self.folder)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{self.name} exited with {self.process.returncode}:\n{self.log_text()}")
            try:
                if httpx.get(f"{self.url}{ready_path}", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} did not become ready within {timeout}s:\n{self.log_text()}")

    def log_text(self) -> str:
        path = self.folder / f"{self.name}.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def stop(self) -> None:
        stop_process(self.process)
        self.process = None
        shutil.rmtree(self.folder, ignore_errors=True)


class Prometheus(_Daemon):
    """Prometheus scraping ``targets`` every second, evaluating ``rules`` (one group) every second and
    sending its alerts to ``alertmanagers`` (entries of ``alerting.alertmanagers``)."""

    name = "prometheus"

    def start(self, *, targets: list[str], rules: list[dict[str, Any]], alertmanagers: list[dict[str, Any]],
              timeout: float = 120.0) -> Prometheus:
        (self.folder / "rules.yml").write_text(yaml.safe_dump(
            {"groups": [{"name": "runwatch-tests", "interval": "1s", "rules": rules}]}))
        config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
                  "rule_files": [str(self.folder / "rules.yml")],
                  "scrape_configs": [{"job_name": "exporter", "static_configs": [{"targets": targets}]}],
                  "alerting": {"alertmanagers": alertmanagers}}
        (self.folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        self._start([f"--config.file={self.folder / 'prometheus.yml'}", f"--storage.tsdb.path={self.folder / 'data'}",
                     f"--web.listen-address=127.0.0.1:{self.port}"], "/-/ready", timeout)
        return self


class Alertmanager(_Daemon):
    """Prometheus' Alertmanager with one webhook receiver, clustering off."""

    name = "alertmanager"

    def start(self, *, webhook_url: str, group_by: list[str], group_wait: str = "0s", group_interval: str = "1s",
              timeout: float = 120.0) -> Alertmanager:
        config = {"route": {"receiver": "hook", "group_by": group_by, "group_wait": group_wait,
                            "group_interval": group_interval, "repeat_interval": "4h"},
                  "receivers": [{"name": "hook", "webhook_configs": [{"url": webhook_url, "send_resolved": True}]}]}
        (self.folder / "alertmanager.yml").write_text(yaml.safe_dump(config))
        self._start([f"--config.file={self.folder / 'alertmanager.yml'}", f"--storage.path={self.folder / 'data'}",
                     f"--web.listen-address=127.0.0.1:{self.port}", "--cluster.listen-address="], "/-/ready", timeout)
        return self


def amtool(binary: str, url: str, http_config: Path, *args: str,
           timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
    """``amtool --alertmanager.url=URL --http.config.file=FILE ARGS`` (its version check stays on: it asks
    ``/api/v2/status``, as it does against Alertmanager)."""
    return subprocess.run([binary, f"--alertmanager.url={url}", f"--http.config.file={http_config}", *args],
                          capture_output=True, text=True, timeout=timeout)
