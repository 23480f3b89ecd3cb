"""Run SDK scripts in their own processes against a real service."""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.support.outbox import wait_settled
from tests.support.service import ServiceProcess


def sdk_env(service: ServiceProcess, key: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWATCH_")}
    # System metrics (on by default, psutil is installed) would add rows to histories the tests compare.
    env.update(RUNWATCH_BASE_URL=service.base_url, RUNWATCH_API_KEY=key, RUNWATCH_PROJECT="vision",
               RUNWATCH_DIR=str(tmp_path / "runs"), HOME=str(tmp_path / "home"), RUNWATCH_SYSTEM_METRICS="0")
    env.update(extra)
    return env


def script(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def run_script(code: str, env: dict[str, str], *, timeout: float = 120,
               **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(script(code), env=env, capture_output=True, text=True, timeout=timeout, **kwargs)


class Script:
    """A script that keeps running while the test talks to it: stdout lines are read with a deadline
    (a silent or dead script fails the test instead of hanging it), lines go to its stdin, and leaving
    the ``with`` block kills whatever is still running."""

    def __init__(self, code: str, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(script(code), env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                        stderr=subprocess.PIPE, text=True)
        self._lines: queue.Queue[str | None] = queue.Queue()
        self._stderr: list[str] = []
        self._readers = [threading.Thread(target=self._read_stdout, daemon=True),
                         threading.Thread(target=self._read_stderr, daemon=True)]
        for reader in self._readers:
            reader.start()

    def _read_stdout(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self._lines.put(line.rstrip("\n"))
        self._lines.put(None)

    def _read_stderr(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self._stderr.append(line)

    @property
    def stderr(self) -> str:
        """What the script wrote to stderr so far (all of it once the script has exited)."""
        if self.process.poll() is not None:
            self._readers[1].join(timeout=10)
        return "".join(self._stderr)

    def expect(self, prefix: str, timeout: float = 60) -> str:
        """The next stdout line starting with ``prefix`` (other lines are skipped)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"the script printed no line starting with {prefix!r} within {timeout}s; "
                                     f"stderr so far:\n{self.stderr}") from None
            if line is None:
                raise AssertionError(f"the script exited with {self.process.wait(timeout=10)} before printing "
                                     f"{prefix!r}; stderr:\n{self.stderr}")
            if line.startswith(prefix):
                return line

    def send(self, line: str = "go") -> None:
        """Write one line to the script's stdin (scripts wait for it with ``sys.stdin.readline()``)."""
        assert self.process.stdin is not None
        self.process.stdin.write(line + "\n")
        self.process.stdin.flush()

    def wait(self, timeout: float = 120) -> int:
        """The exit code; ``subprocess.TimeoutExpired`` (a failure, not a hang) if it runs on."""
        return self.process.wait(timeout=timeout)

    def __enter__(self) -> Script:
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None,
                 traceback: TracebackType | None) -> None:
        if self.process.poll() is None:
            self.process.kill()
        self.process.wait(timeout=30)
        for reader in self._readers:
            reader.join(timeout=10)
        for stream in (self.process.stdin, self.process.stdout, self.process.stderr):
            if stream is not None:
                try:
                    stream.close()
                except BrokenPipeError:
                    pass


def wait_until_all_delivered(service: ServiceProcess, timeout: float = 60) -> None:
    """Every notification the service has made so far was answered by its receiver (the service marks
    one delivered only after the answer), so the receiver has recorded all of them."""
    wait_settled(service, timeout=timeout)


def stored_alerts(service: ServiceProcess, run_id: str, project: str = "vision") -> list[dict[str, Any]]:
    """The alerts the service stored for a run (created when their calls or points were accepted)."""
    response = service.api("GET", f"/api/v1/alerts?project={project}&run={run_id}")
    assert response.status_code == 200, response.text
    return list(response.json()["alerts"])


def history(service: ServiceProcess, run_id: str, project: str = "vision") -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    after: int | None = -1
    while after is not None:
        page = service.api("GET", f"/api/v1/runs/{project}/{run_id}/history?limit=5000&after_step={after}").json()
        rows += page["rows"]
        after = page["next_after_step"]
    return rows


def find_run(service: ServiceProcess, run_id: str, project: str = "vision") -> dict[str, Any] | None:
    """The run, or None while the service has not heard of it (the SDK sends its init in the background)."""
    response = service.api("GET", f"/api/v1/runs/{project}/{run_id}")
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    return dict(response.json())


def get_run(service: ServiceProcess, run_id: str, project: str = "vision") -> dict[str, Any]:
    response = service.api("GET", f"/api/v1/runs/{project}/{run_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())
