"""System metrics: on by default when psutil (the ``runwatch[system]`` extra) is importable, off on request."""

from __future__ import annotations

import logging
import sys
from typing import Any

import pytest
import runwatch
from _sdkutil import QUIET, FakeTransport
from runwatch.system import SystemMonitor

from tests.support.waiting import eventually

pytest.importorskip("psutil", reason="the default needs the runwatch[system] extra")


@pytest.fixture
def default_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """The user's environment: no RUNWATCH_SYSTEM_METRICS (the suite sets it to 0 for exact counts)."""
    monkeypatch.delenv("RUNWATCH_SYSTEM_METRICS", raising=False)


def system_points(fake: FakeTransport) -> list[dict[str, Any]]:
    with fake.lock:
        records = fake.records()
    return [r for r in records if r["type"] == "history" and "system/cpu_percent" in r["data"]]


def test_on_by_default_as_ordinary_metrics(default_env: None) -> None:
    fake = FakeTransport()
    run = runwatch.init(project="p", settings={**QUIET, "system_metrics_interval": 0.05},
                        transport_factory=lambda: fake)
    [first, *_] = eventually(lambda: system_points(fake), bool, timeout=60, what="a system metrics sample")
    assert {"system/cpu_percent", "system/memory_percent", "system/disk_percent"} <= set(first["data"])
    assert all(0.0 <= value <= 100.0 for value in first["data"].values())
    run.finish()


@pytest.mark.parametrize("how", ["setting", "env"])
def test_off_with_the_setting_or_the_env_var(default_env: None, how: str, monkeypatch: pytest.MonkeyPatch) -> None:
    created: list[dict[str, Any]] = []
    monkeypatch.setattr(SystemMonitor, "create", staticmethod(lambda **kw: created.append(kw)))
    settings: dict[str, Any] = dict(QUIET)
    if how == "setting":
        settings["system_metrics"] = False
    else:
        monkeypatch.setenv("RUNWATCH_SYSTEM_METRICS", "0")
    runwatch.init(project="p", mode="offline", settings=settings).finish()
    assert created == []
    monkeypatch.delenv("RUNWATCH_SYSTEM_METRICS", raising=False)
    runwatch.init(project="p", mode="offline", settings=QUIET).finish()
    assert created == [{"warn": False}]  # the default asks quietly


def test_without_psutil_the_default_is_silent_and_an_explicit_request_warns_once(
        default_env: None, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setitem(sys.modules, "psutil", None)  # import psutil raises ImportError
    with caplog.at_level(logging.WARNING, logger="runwatch"):
        runwatch.init(project="p", mode="offline", settings=QUIET).finish()
        assert "psutil" not in caplog.text
        for _ in range(2):
            runwatch.init(project="p", mode="offline", settings={**QUIET, "system_metrics": True}).finish()
    assert caplog.text.count("system metrics need psutil") == 1
