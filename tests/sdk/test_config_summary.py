"""``config`` and ``summary`` (SPEC 3.4)."""

from __future__ import annotations

import argparse

import pytest
import runwatch
from _sdkutil import offline, spool_lines


def test_config_access_update_and_records() -> None:
    ns = argparse.Namespace(lr=0.1, layers=3)
    run = offline(config=ns)
    assert runwatch.config.lr == 0.1 and runwatch.config["layers"] == 3
    assert "lr" in runwatch.config and runwatch.config.get("nope", 5) == 5
    assert sorted(runwatch.config.keys()) == ["layers", "lr"]
    runwatch.config.update({"bs": 32})
    runwatch.config.lr = 0.1  # same value: allowed
    with pytest.raises(runwatch.ConfigError, match="allow_val_change"):
        runwatch.config.lr = 0.2
    with pytest.raises(runwatch.ConfigError):
        runwatch.config.update({"bs": 64})
    runwatch.config.update({"bs": 64}, allow_val_change=True)
    assert run.config.as_dict() == {"lr": 0.1, "layers": 3, "bs": 64}
    run.finish()
    lines = spool_lines(run)
    assert lines[0]["body"]["config"] == {"lr": 0.1, "layers": 3}
    configs = [r["config"] for r in lines if r.get("type") == "config"]
    assert configs == [{"lr": 0.1, "layers": 3, "bs": 32}, {"lr": 0.1, "layers": 3, "bs": 64}]


def test_config_and_summary_before_init_raise_error() -> None:
    with pytest.raises(runwatch.Error, match=r"runwatch.init\(\)"):
        runwatch.config.lr  # noqa: B018
    with pytest.raises(runwatch.Error, match=r"runwatch.init\(\)"):
        runwatch.summary["x"]  # noqa: B018


def test_summary_defaults_to_last_value_and_explicit_overrides() -> None:
    run = offline()
    for v in (3.0, 1.0, 2.0):
        run.log({"loss": v, "img": "text is not summarised"})
    assert run.summary["loss"] == 2.0
    assert "img" not in run.summary
    run.summary["best"] = 0.5
    run.summary.update({"loss": 0.1})
    assert runwatch.summary["loss"] == 0.1
    run.log({"loss": 4.0})  # like W&B, a later log updates the key again
    assert run.summary["loss"] == 4.0
    run.finish()
    summaries = [r["summary"] for r in spool_lines(run) if r.get("type") == "summary"]
    assert summaries[-1] == {"loss": 4.0, "best": 0.5}


def test_define_metric_aggregates_and_globs() -> None:
    run = offline()
    run.define_metric("loss", summary="min")
    run.define_metric("acc", summary="max")
    run.define_metric("val/*", summary="mean")
    run.define_metric("lr", summary="first")
    run.define_metric("noise", summary="none")
    for loss, acc, v, lr in ((3.0, 0.1, 1.0, 0.1), (1.0, 0.5, 2.0, 0.2), (2.0, 0.3, 6.0, 0.3)):
        run.log({"loss": loss, "acc": acc, "val/x": v, "lr": lr, "noise": 1.0})
    assert run.summary.as_dict() == {"loss": 1.0, "acc": 0.5, "val/x": 3.0, "lr": 0.1}
    with pytest.raises(ValueError):
        run.define_metric("x", summary="median")
    run.finish()


def test_summary_keeps_nan_for_last_but_not_for_min() -> None:
    run = offline()
    run.define_metric("m", summary="min")
    run.log({"m": 2.0, "l": 1.0})
    run.log({"m": float("nan"), "l": float("nan")})
    assert run.summary["m"] == 2.0
    assert run.summary["l"] != run.summary["l"]  # NaN
    run.finish()
    summary = [r for r in spool_lines(run) if r.get("type") == "summary"][-1]["summary"]
    assert summary == {"m": 2.0, "l": "NaN"}
