"""Run SDK scripts in their own processes against a real service."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

from tests.support.service import ServiceProcess


def sdk_env(service: ServiceProcess, key: str, tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("RUNWATCH_")}
    env.update(RUNWATCH_BASE_URL=service.base_url, RUNWATCH_API_KEY=key, RUNWATCH_PROJECT="vision",
               RUNWATCH_DIR=str(tmp_path / "runs"), HOME=str(tmp_path / "home"), **extra)
    return env


def script(code: str) -> list[str]:
    return [sys.executable, "-c", textwrap.dedent(code)]


def run_script(code: str, env: dict[str, str], *, timeout: float = 120,
               **kwargs: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run(script(code), env=env, capture_output=True, text=True, timeout=timeout, **kwargs)


def start_script(code: str, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(script(code), env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def history(service: ServiceProcess, run_id: str, project: str = "vision") -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    after: int | None = -1
    while after is not None:
        page = service.api("GET", f"/api/v1/runs/{project}/{run_id}/history?limit=5000&after_step={after}").json()
        rows += page["rows"]
        after = page["next_after_step"]
    return rows


def get_run(service: ServiceProcess, run_id: str, project: str = "vision") -> dict[str, Any]:
    response = service.api("GET", f"/api/v1/runs/{project}/{run_id}")
    assert response.status_code == 200, response.text
    return dict(response.json())
