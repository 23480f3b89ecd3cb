"""Every wandb name a script reaches resolves in runwatch; Settings, config files and silence the W&B way."""

from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pytest
import runwatch
from _sdkutil import offline, spool_lines
from runwatch.settings import Settings, resolve_settings

wandb = pytest.importorskip("wandb")

# What scripts reach through besides wandb.__all__ (W&B's docs and examples use each of these).
REACHED_THROUGH = ["plot", "sklearn", "Artifact", "Settings", "AlertLevel", "login", "run", "alert", "Error",
                   "mark_preempting", "plot_table", "restore", "termlog", "termwarn", "termerror", "teardown"]
UNSUPPORTED_CALLS = {"sweep": ({"method": "grid"},), "agent": ("sweep-id",), "controller": (), "box3d": ()}
UNSUPPORTED_MEDIA = ["Video", "Audio", "Html", "Plotly", "Object3D", "Molecule", "Graph"]


@pytest.mark.parametrize("name", sorted(set(wandb.__all__) | set(REACHED_THROUGH)))
def test_every_wandb_name_resolves(name: str) -> None:
    assert getattr(runwatch, name, None) is not None or name == "run", name
    assert name in dir(runwatch)


def test_wandb_all_is_the_list_the_issue_names() -> None:
    # The walk above reads the installed wandb's names; guard against an empty or unexpected list.
    assert {"init", "log", "watch", "unwatch", "save", "sweep", "agent", "Histogram", "Video", "Audio", "Html",
            "Plotly", "log_artifact", "use_artifact", "log_model", "define_metric", "Run"} <= set(wandb.__all__)


@pytest.mark.parametrize("name", sorted(UNSUPPORTED_CALLS))
def test_unsupported_calls_warn_once_naming_the_call_and_do_nothing(name: str,
                                                                   caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="runwatch")
    function = getattr(runwatch, name)
    assert function(*UNSUPPORTED_CALLS[name]) is None
    assert function(*UNSUPPORTED_CALLS[name]) is None
    warnings = [r.getMessage() for r in caplog.records if f"wandb.{name} " in r.getMessage()]
    assert warnings == [f"runwatch: wandb.{name} is not supported by Runwatch; the call does nothing"]


@pytest.mark.parametrize("name", UNSUPPORTED_MEDIA)
def test_unsupported_media_warn_once_and_log_as_a_note(name: str, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="runwatch")
    run = offline()
    media = getattr(runwatch, name)("whatever", caption="x")
    getattr(runwatch, name)("again")
    run.log({"thing": media, "loss": 1.0})
    run.finish()
    assert sum(f"wandb.{name} is not supported" in r.getMessage() for r in caplog.records) == 1
    (row,) = [r for r in spool_lines(run) if r.get("type") == "history"]
    assert row["data"]["loss"] == 1.0
    assert row["data"]["thing"] == {"_type": "json", "value": f"<wandb.{name}: not supported by Runwatch>"}


def test_settings_accepts_wandb_keys_and_warns_once_on_unknown(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="runwatch")
    settings = runwatch.Settings(silent=True, _disable_stats=True, console="off", start_method="thread",
                                 init_timeout=5, run_group="g1", bogus_key=1, another=2)
    assert (settings.silent, settings.system_metrics, settings.console, settings.init_timeout) == (
        True, False, False, 5)
    assert settings.init_args == {"group": "g1"}
    runwatch.Settings(bogus_key=1, another=2)
    unknown = [r.getMessage() for r in caplog.records if "ignores keys it does not know" in r.getMessage()]
    assert len(unknown) == 1 and "['another', 'bogus_key']" in unknown[0]
    assert "start_method" not in unknown[0]


def test_only_the_settings_given_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNWATCH_BASE_URL", "http://127.0.0.1:9999")
    monkeypatch.setenv("RUNWATCH_PROJECT", "from-env")
    resolved = resolve_settings(Settings(silent=True))
    assert (resolved.base_url, resolved.project, resolved.silent) == ("http://127.0.0.1:9999", "from-env", True)
    resolved = resolve_settings({"project": "given", "x_disable_stats": True})
    assert (resolved.project, resolved.system_metrics) == ("given", False)
    assert "***" in repr(Settings(api_key="secret-key")) and "secret-key" not in repr(Settings(api_key="secret-key"))


def test_init_takes_wandb_settings_and_run_keys(capfd: pytest.CaptureFixture[str]) -> None:
    run = runwatch.init(project="p", mode="offline",
                        settings=runwatch.Settings(silent=True, run_name="from-settings", run_job_type="eval",
                                                   console="off", signals=False))
    run.finish()
    body = spool_lines(run)[0]["body"]
    assert (body["name"], body["job_type"]) == ("from-settings", "eval")
    assert "runwatch" not in capfd.readouterr().err  # silent: not even the offline hint at finish
    stored = body["system"]["runwatch"]  # what the script chose is stored with the run, never the key
    assert stored["settings"] == {"silent": True, "console": False, "signals": False}
    assert stored["dir"] == str(run.dir.resolve()) and stored["mode"] == "offline"


def test_wandb_silent_quietens_the_sdk(monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setenv("WANDB_SILENT", "true")
    run = offline()
    run.finish()
    assert capfd.readouterr().err == ""


def test_config_defaults_file_and_config_paths(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    (work / "config-defaults.yaml").write_text(
        "wandb_version: 1\nlr:\n  desc: learning rate\n  value: 0.01\nbatch: 32\nepochs: 3\n")
    extra = tmp_path / "extra.json"
    extra.write_text(json.dumps({"batch": 64, "optimizer": "adam"}))
    broken = tmp_path / "broken.yaml"
    broken.write_text("a: [unclosed\n")
    monkeypatch.setenv("WANDB_CONFIG_PATHS", f"{extra},{broken},{tmp_path / 'missing.yaml'}")
    run = offline(config={"epochs": 10})
    assert dict(run.config) == {"lr": 0.01, "batch": 64, "epochs": 10, "optimizer": "adam"}
    run.finish()


def test_config_update_from_argparse_and_setdefaults() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lr", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args(["--lr", "0.5"])
    run = offline(config=args)
    assert dict(run.config) == {"lr": 0.5, "batch_size": 8}
    run.config.update(argparse.Namespace(seed=3))
    run.config.setdefaults({"lr": 9.0, "momentum": 0.9})
    assert dict(run.config) == {"lr": 0.5, "batch_size": 8, "seed": 3, "momentum": 0.9}
    run.finish()
    configs = [r["config"] for r in spool_lines(run) if r.get("type") == "config"]
    assert configs[-1] == {"lr": 0.5, "batch_size": 8, "seed": 3, "momentum": 0.9}


def test_mark_preempting_is_a_record_and_never_blocks() -> None:
    run = offline()
    run.log({"a": 1})
    run.mark_preempting()
    runwatch.mark_preempting()
    run.finish()
    assert [r["type"] for r in spool_lines(run) if r.get("type") == "preempting"] == ["preempting", "preempting"]


def test_module_level_calls_before_init_say_to_call_init() -> None:
    with pytest.raises(runwatch.Error, match=r"runwatch.save\(\) needs an active run: call runwatch.init\(\) first"):
        runwatch.save("*.txt")
    runwatch.unwatch()  # nothing watched, nothing to do
