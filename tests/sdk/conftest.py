"""Fixtures for the SDK unit tests: no service, isolated env, HOME and run directory."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from runwatch import _session
from runwatch._log import reset_log_once


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    for var in (
        "RUNWATCH_API_KEY",
        "RUNWATCH_BASE_URL",
        "RUNWATCH_PROJECT",
        "RUNWATCH_MODE",
        "RUNWATCH_DIR",
        "RUNWATCH_FINISH_TIMEOUT",
        "RUNWATCH_SYSTEM_METRICS",
        "RUNWATCH_DISABLE_GIT",
        "RUNWATCH_DISABLE_SYSTEM_INFO",
    ):
        monkeypatch.delenv(var, raising=False)
    for var in [name for name in os.environ if name.startswith(("WANDB_", "RUNWATCH_"))]:
        monkeypatch.delenv(var, raising=False)  # a launcher's WANDB_* must not steer these tests
    # psutil is installed here, so system metrics would be on: tests that count points must not race
    # the 15 s sampler (test_system.py checks the default with the variable removed).
    monkeypatch.setenv("RUNWATCH_SYSTEM_METRICS", "0")
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("RUNWATCH_DIR", str(tmp_path / "rw"))
    reset_log_once()  # each test sees the SDK's once-per-process warnings afresh
    yield tmp_path
    run = _session.active_run()
    if run is not None:
        run.finish(quiet=True)
    _session._last = None

