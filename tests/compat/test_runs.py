"""The corpus' scalar scripts: config, step and commit semantics, define_metric, groups, resume, summary,
alerts and preemption. Each runs with the real wandb (offline) and, changed only in its import, with
Runwatch against a real service; both must commit the same steps with the same keys and values."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tests.compat.harness import (
    compare_all,
    compare_config,
    compare_history,
    compare_run_fields,
    compare_summary,
    run_both,
    run_runwatch,
    run_wandb,
    service_runs,
)
from tests.support.service import ServiceProcess

pytest.importorskip("wandb", reason="the corpus compares against the real wandb (test extra)")


def test_argparse_config(service: ServiceProcess, tmp_path: Path) -> None:
    script = "argparse_config.py"
    wandb_runs, _ = run_both(script, service, tmp_path, "compat-argparse", "--lr", "0.02", "--epochs", "4")
    [wandb_run] = wandb_runs
    # The script itself: the argparse values, update() and setdefaults() as wandb keeps them.
    assert {k: v for k, v in wandb_run.config.items() if k != "_wandb"} == {
        "lr": 0.02, "epochs": 4, "batch_size": 32, "arch": "mlp", "dataset": "synthetic", "seed": 7,
        "optimizer": "sgd"}
    [rw] = service_runs(service, "compat-argparse", 1, script=script)
    compare_all(script, wandb_run, rw)


def test_commit_false_then_empty_log(service: ServiceProcess, tmp_path: Path) -> None:
    script = "commit_false.py"
    wandb_runs, _ = run_both(script, service, tmp_path, "compat-commit", "--steps", "6", "--seed", "3")
    [wandb_run] = wandb_runs
    assert wandb_run.steps() == list(range(7))  # six loop steps and the pending one finish() commits
    [rw] = service_runs(service, "compat-commit", 1, script=script)
    compare_all(script, wandb_run, rw)


def test_explicit_steps(service: ServiceProcess, tmp_path: Path) -> None:
    script = "explicit_step.py"
    wandb_runs, child = run_both(script, service, tmp_path, "compat-step")
    [wandb_run] = wandb_runs
    assert wandb_run.steps() == [0, 1, 2, 3, 4, 10, 11]
    [rw] = service_runs(service, "compat-step", 1, script=script)
    compare_all(script, wandb_run, rw)
    dropped = [line for line in child.stderr.splitlines() if "step 7" in line]
    assert dropped, f"{script}: runwatch did not warn about the data logged to step 7; stderr:\n{child.stderr}"


def test_define_metric_summaries(service: ServiceProcess, tmp_path: Path) -> None:
    script = "define_metric.py"
    wandb_runs, _ = run_both(script, service, tmp_path, "compat-define-metric")
    [wandb_run] = wandb_runs
    assert wandb_run.summary["val/loss"] == {"min": 0.4} and wandb_run.summary["val/acc"] == {"max": 0.8}
    [rw] = service_runs(service, "compat-define-metric", 1, script=script)
    compare_all(script, wandb_run, rw)


def test_group_and_job_type(service: ServiceProcess, tmp_path: Path) -> None:
    script = "group_job_type.py"
    args = ("--group", "cv-exp-7", "--fold", "2")
    wandb_runs, _ = run_both(script, service, tmp_path, "compat-groups", *args)
    assert [(r.group, r.job_type, r.name) for r in wandb_runs] == [("cv-exp-7", "train", "fold-2"),
                                                                   ("cv-exp-7", "eval", "eval-2")]
    rw_runs = service_runs(service, "compat-groups", 2, script=script)
    for wandb_run, rw in zip(wandb_runs, rw_runs, strict=True):
        compare_all(f"{script} ({wandb_run.job_type})", wandb_run, rw)


def test_resume_across_two_processes(service: ServiceProcess, tmp_path: Path) -> None:
    """A job preempted and relaunched with ``WANDB_RUN_ID`` and ``WANDB_RESUME=allow``.

    The real wandb cannot resume offline (each process records a run of its own from step 0), so each
    process' steps are compared to its own share of the one Runwatch run, whose second half continues
    the step counter where the first ended, with config and summary carried over."""
    script, project = "resume.py", "compat-resume"
    env = {"WANDB_RUN_ID": "resume0001", "WANDB_RESUME": "allow"}

    def wandb_side() -> list:
        return [run_wandb(script, tmp_path / f"wandb-{phase}", "--phase", str(phase), extra_env=env)[1][0]
                for phase in (1, 2)]

    def runwatch_side() -> list:
        return [run_runwatch(script, service, tmp_path / f"runwatch-{phase}", project, "--phase", str(phase),
                             extra_env=env) for phase in (1, 2)]

    with ThreadPoolExecutor(max_workers=2) as pool:
        wandb_future, runwatch_future = pool.submit(wandb_side), pool.submit(runwatch_side)
        first, second = wandb_future.result()
        children = runwatch_future.result()
    assert first.steps() == second.steps() == [0, 1, 2, 3]

    assert children[0].lines("START-STEP") == ["START-STEP 0 RESUMED False"], children[0].stdout
    assert children[1].lines("START-STEP") == ["START-STEP 4 RESUMED True"], (
        f"{script}: the second process should continue at step 4 as a resumed run; stdout:\n{children[1].stdout}")
    [rw] = service_runs(service, project, 1, script=script)
    assert rw.id == "resume0001"
    compare_run_fields(script, first, rw)
    compare_history(f"{script} (first process)", first, rw.window(0, 4))
    compare_history(f"{script} (second process)", second, rw.window(4), step_offset=4)
    assert rw.steps() == list(range(8)), f"{script}: runwatch steps {rw.steps()}"
    assert rw.run["config"] == {"lr": 0.05, "restarted": True}, f"{script}: config {rw.run['config']}"
    compare_summary(f"{script} (second process)", second, rw)
    assert rw.run["summary"].get("best_loss") == 0.25, (
        f"{script}: summary set by the first process was not carried over: {rw.run['summary']}")
    events = rw.run["events"]
    assert any("resum" in f"{e['state']} {e['reason']}".lower() for e in events), (
        f"{script}: no 'resumed' event among the run's events: {events}")


def test_summary_alert_settings_preempting(service: ServiceProcess, tmp_path: Path) -> None:
    script, project = "alerts_summary_settings.py", "compat-alerts"
    wandb_runs, _ = run_both(script, service, tmp_path, project)
    [wandb_run] = wandb_runs
    assert wandb_run.summary["acc"] == 0.7 and wandb_run.preempting
    [rw] = service_runs(service, project, 1, script=script)
    compare_run_fields(script, wandb_run, rw)
    compare_config(script, wandb_run, rw)
    compare_history(script, wandb_run, rw)
    compare_summary(script, wandb_run, rw)
    # The alerts wandb recorded (offline it records them without sending) are the service's sdk alerts.
    response = service.api("GET", f"/api/v1/alerts?project={project}&run={rw.id}")
    assert response.status_code == 200, response.text
    stored = sorted((a["title"], a["severity"]) for a in response.json()["alerts"])
    # wait_duration is 5 minutes: the second low value (step 4) is throttled on both sides.
    assert [(a["title"], a["level"]) for a in wandb_run.alerts] == [("Accuracy dropped", "WARN")] * 2
    assert stored == [("Accuracy dropped", "warning")], f"{script}: alerts stored by the service: {stored}"
    events = rw.run["events"]
    assert any("preempt" in f"{e['state']} {e['reason']}".lower() for e in events), (
        f"{script}: runwatch feature missing or silent: mark_preempting() left no run event: {events}")
