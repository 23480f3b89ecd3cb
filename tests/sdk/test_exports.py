"""The SDK's public names are pinned (httpx's test_exported_members style)."""

from __future__ import annotations

import runwatch


def test_exported_members() -> None:
    assert set(runwatch.__all__) == {
        "AlertLevel", "Api", "ConfigError", "Error", "Image", "Run", "Settings", "Table", "UsageError",
        "alert", "config", "define_metric", "finish", "init", "log", "login", "run", "summary",
    }
    for name in runwatch.__all__:
        assert hasattr(runwatch, name), name


def test_error_hierarchy() -> None:
    assert issubclass(runwatch.UsageError, runwatch.Error)
    assert issubclass(runwatch.ConfigError, runwatch.Error)
