"""SDK process → real service: the step/commit table, value types, config and summary end to end."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.sdk_process import (
    get_run,
    history,
    run_script,
    sdk_env,
)
from tests.support.service import ServiceProcess, running_service


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One service for the module's tests; each uses its own run ids."""
    with running_service(tmp_path_factory.mktemp("service")) as service:
        yield service


def test_step_commit_table_end_to_end(service: ServiceProcess, tmp_path: Path) -> None:
    env = sdk_env(service, service.create_key("vision"), tmp_path)
    result = run_script("""
        import runwatch
        run = runwatch.init(id="steps1", config={"lr": 0.1})
        runwatch.log({"a": 1})                      # step 0 committed, now 1
        runwatch.log({"b": 2}, commit=False)        # merged into step 1, not committed
        runwatch.log({"c": 3})                      # merged into 1 and committed, now 2
        runwatch.log({"d": 4}, step=5)              # move to 5 (nothing pending at 2)
        runwatch.log({"e": 5}, step=5)              # merge into 5
        runwatch.log({"f": 6}, step=3)              # older step: dropped with a warning
        runwatch.log({"g": 7}, step=7)              # commits 5, moves to 7
        runwatch.log({"nested": {"x": 1, "y": {"z": 2}}, "train/loss": 0.5}, commit=True)  # commits 7
        print("STEP", run.step)
        runwatch.finish()
    """, env)
    assert result.returncode == 0, result.stderr
    # One warning, naming the dropped step and the current one.
    warnings = [line for line in result.stderr.splitlines() if "steps must increase" in line]
    assert warnings == ["runwatch: tried to log to step 3, which is before the current step 5; steps must "
                        "increase, so this data is dropped"], result.stderr
    assert "STEP 8" in result.stdout.splitlines()
    rows = history(service, "steps1")
    data = [{k: v for k, v in row.items() if not k.startswith("_")} for row in rows]
    assert [row["_step"] for row in rows] == [0, 1, 5, 7]
    assert data == [{"a": 1.0}, {"b": 2.0, "c": 3.0}, {"d": 4.0, "e": 5.0},
                    {"g": 7.0, "nested.x": 1.0, "nested.y.z": 2.0, "train/loss": 0.5}]
    assert all(row["_timestamp"] > 1e9 and row["_runtime"] >= 0 for row in rows)
    run = get_run(service, "steps1")
    assert run["state"] == "finished" and run["exit_code"] == 0
    assert run["config"] == {"lr": 0.1}
    assert run["summary"]["g"] == 7.0 and run["summary"]["a"] == 1.0


def test_value_types_config_and_summary(service: ServiceProcess, tmp_path: Path) -> None:
    env = sdk_env(service, service.create_key("vision"), tmp_path)
    result = run_script("""
        import math, numpy as np, runwatch

        class FakeTensor:  # torch-like: .detach().item() and numel()
            def __init__(self, v): self.v = v
            def detach(self): return self
            def numel(self): return 1
            def item(self): return self.v

        run = runwatch.init(id="types1", config={"lr": 0.1, "arch": "mlp"})
        runwatch.config.update({"epochs": 3})
        try:
            runwatch.config.update({"lr": 0.2})
        except runwatch.ConfigError as exc:
            print("CONFIG-ERROR", exc)
        runwatch.config.update({"lr": 0.3}, allow_val_change=True)
        runwatch.define_metric("loss", summary="min")
        for i, loss in enumerate([0.9, 0.2, 0.5]):
            runwatch.log({"loss": loss, "np": np.float32(0.25), "arr": np.array([7.0]), "t": FakeTensor(1.5),
                          "flag": True, "nan": math.nan, "inf": -math.inf, "i": np.int64(i)})
        runwatch.summary["best"] = 42
        runwatch.finish()
    """, env)
    assert result.returncode == 0, result.stderr
    [config_error] = [line for line in result.stdout.splitlines() if line.startswith("CONFIG-ERROR")]
    assert "config key 'lr' already has value 0.1; refusing to change it to 0.2" in config_error
    rows = history(service, "types1")
    assert len(rows) == 3
    assert rows[0]["np"] == 0.25 and rows[0]["arr"] == 7.0 and rows[0]["t"] == 1.5 and rows[0]["flag"] == 1.0
    assert rows[0]["nan"] == "NaN" and rows[0]["inf"] == "-Infinity" and rows[2]["i"] == 2.0
    run = get_run(service, "types1")
    assert run["config"] == {"lr": 0.3, "arch": "mlp", "epochs": 3}
    assert run["summary"]["loss"] == 0.2 and run["summary"]["best"] == 42
