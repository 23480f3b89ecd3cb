"""The SDK's public names are pinned (httpx's test_exported_members style)."""

from __future__ import annotations

import runwatch


def test_exported_members() -> None:
    assert set(runwatch.__all__) == {
        "AlertLevel", "Api", "Config", "ConfigError", "Error", "Image", "Run", "Settings", "Table", "UsageError",
        "__version__", "alert", "config", "define_metric", "finish", "init", "join", "link_model", "log",
        "log_artifact", "log_model", "login", "mark_preempting", "run", "save", "summary", "teardown", "unwatch",
        "use_artifact", "use_model", "watch",
        # loaded on first use (runwatch.__getattr__)
        "Histogram", "plot", "plot_table", "sklearn", "Artifact", "restore",
        # W&B names without a counterpart here: warn once, do nothing (runwatch.compat)
        "Audio", "ArtifactTTL", "Classes", "CommError", "EvalTable", "Graph", "Html", "JoinedTable", "Molecule",
        "Object3D", "Plotly", "Video", "agent", "attach", "box3d", "controller", "require", "setup", "sweep",
        "termerror", "termlog", "termwarn",
    }
    for name in runwatch.__all__:
        assert hasattr(runwatch, name), name


def test_error_hierarchy() -> None:
    assert issubclass(runwatch.UsageError, runwatch.Error)
    assert issubclass(runwatch.ConfigError, runwatch.Error)
