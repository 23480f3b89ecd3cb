"""W&B scripts and launchers: ``log()`` with no data, and ``WANDB_*`` variables as fallbacks."""

from __future__ import annotations

from pathlib import Path

import pytest
import runwatch
from _sdkutil import QUIET, history, offline, spool_lines


def test_log_without_data_commits_the_pending_step() -> None:
    run = offline()
    run.log({"a": 1}, commit=False)
    run.log({"b": 2}, commit=False)
    run.log()  # W&B's way to close the step
    runwatch.log({"c": 3}, commit=False)
    runwatch.log()
    runwatch.log()  # nothing pending: an empty step, as in W&B
    run.finish()
    assert [(r["step"], r["data"]) for r in history(run)] == [(0, {"a": 1, "b": 2}), (1, {"c": 3}), (2, {})]


def test_wandb_variables_fill_in_what_init_leaves_out(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("RUNWATCH_DIR")
    for name, value in {"PROJECT": "from-wandb", "NAME": "launcher-name", "NOTES": "a note", "TAGS": "a, b,",
                        "RUN_ID": "myrun1", "RESUME": "allow", "RUN_GROUP": "sweep-3", "JOB_TYPE": "train",
                        "MODE": "dryrun", "DIR": str(tmp_path / "wb")}.items():
        monkeypatch.setenv(f"WANDB_{name}", value)
    run = runwatch.init(settings=QUIET)
    assert run.mode == "offline" and run.dir == tmp_path / "wb" / "runwatch" / "run-myrun1"
    run.finish()
    body = spool_lines(run)[0]["body"]
    assert (body["project"], body["name"], body["notes"], body["tags"], body["id"], body["resume"], body["group"],
            body["job_type"]) == ("from-wandb", "launcher-name", "a note", ["a", "b"], "myrun1", "allow", "sweep-3",
                                  "train")


def test_runwatch_variables_and_arguments_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_PROJECT", "wandb-project")
    monkeypatch.setenv("RUNWATCH_PROJECT", "runwatch-project")
    monkeypatch.setenv("WANDB_NAME", "wandb-name")
    monkeypatch.setenv("WANDB_RESUME", "auto")  # W&B's "auto" continues the run if it exists
    run = runwatch.init(mode="offline", name="explicit", settings=QUIET)
    run.finish()
    body = spool_lines(run)[0]["body"]
    assert (body["project"], body["name"], body["resume"]) == ("runwatch-project", "explicit", "allow")


def test_wandb_secrets_and_servers_are_never_read(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_API_KEY", "wandb-secret-key")
    monkeypatch.setenv("WANDB_BASE_URL", "https://api.wandb.ai")
    settings = runwatch.settings.resolve_settings()
    assert settings.api_key is None and settings.base_url == runwatch.settings.DEFAULT_BASE_URL
