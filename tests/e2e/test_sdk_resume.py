"""W&B's resume across processes, group and job type, mark_preempting: SDK processes → a real service."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.sdk_process import get_run, history, run_script, sdk_env
from tests.support.service import ServiceProcess, running_service

pytestmark = pytest.mark.both_backends  # their services run on SQLite, then on PostgreSQL


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One service for the module's tests (a short heartbeat timeout for the preemption test); own run ids."""
    config = {"runs": {"heartbeat_timeout": "6s", "crash_check_interval": "200ms"}}
    with running_service(tmp_path_factory.mktemp("service"), config) as service:
        yield service


FIRST = """
import runwatch
run = runwatch.init(config={"lr": 0.1, "epochs": 2})
for i in range(5):
    runwatch.log({"loss": 1.0 / (i + 1), "acc": i / 10})
runwatch.summary["best_acc"] = 0.4
print("FIRST", run.id, run.step, flush=True)
"""


def test_resume_through_the_environment_continues_steps_config_and_summary(service: ServiceProcess,
                                                                         tmp_path: Path) -> None:
    env = sdk_env(service, service.create_key("vision"), tmp_path, WANDB_RUN_ID="myrun1", WANDB_RESUME="allow")
    first = run_script(FIRST + "runwatch.finish()\n", env)
    assert first.returncode == 0, first.stderr
    assert "FIRST myrun1 5" in first.stdout
    second = run_script("""
        import runwatch
        run = runwatch.init(config={"epochs": 4})            # a resumed job changes one value
        print("RESUMED", run.resumed, run.step, run.name, flush=True)
        print("CONFIG", sorted(run.config.items()), flush=True)
        print("BEST", run.summary["best_acc"], flush=True)
        for i in range(5, 8):
            runwatch.log({"loss": 1.0 / (i + 1), "acc": i / 10})
        runwatch.finish()
    """, env)
    assert second.returncode == 0, second.stderr
    first_name = get_run(service, "myrun1")["name"]
    assert f"RESUMED True 5 {first_name}" in second.stdout  # the step counter and the name go on
    assert "CONFIG [('epochs', 4), ('lr', 0.1)]" in second.stdout
    assert "BEST 0.4" in second.stdout
    rows = history(service, "myrun1")
    assert [row["_step"] for row in rows] == list(range(8))
    assert [row["acc"] for row in rows] == pytest.approx([i / 10 for i in range(8)])
    run = get_run(service, "myrun1")
    assert run["state"] == "finished" and run["config"] == {"lr": 0.1, "epochs": 4}
    assert run["summary"]["best_acc"] == 0.4 and run["summary"]["acc"] == pytest.approx(0.7)
    states = [e["state"] for e in run["events"]]
    assert states == ["running", "finished", "running", "finished"], run["events"]
    assert run["events"][2]["reason"] == "resumed"


def test_a_crashed_run_resumed_is_running_again_with_an_event(service: ServiceProcess, tmp_path: Path) -> None:
    env = sdk_env(service, service.create_key("vision"), tmp_path)
    first = run_script(FIRST.replace("runwatch.init(", "runwatch.init(id='crashy', ") + """
import os
run._flush(30)
os._exit(0)   # vanish without finishing: the heartbeat timeout marks it crashed
""", env)
    assert "FIRST crashy 5" in first.stdout, first.stderr
    service.wait_for(lambda: get_run(service, "crashy")["state"] == "crashed", timeout=90)
    second = run_script("""
        import runwatch, time
        run = runwatch.init(id="crashy", resume="must")
        print("STEP", run.step, flush=True)
        runwatch.log({"acc": 0.9})
        run._flush(30)
        print("RUNNING", flush=True)
        time.sleep(0.5)
        runwatch.finish()
    """, env)
    assert second.returncode == 0, second.stderr
    assert "STEP 5" in second.stdout
    run = get_run(service, "crashy")
    reasons = [(e["state"], e["reason"]) for e in run["events"]]
    crashed_at = next(i for i, (state, _) in enumerate(reasons) if state == "crashed")
    assert ("running", "resumed") in reasons[crashed_at:], reasons
    assert run["state"] == "finished"
    assert [row["_step"] for row in history(service, "crashy")] == [0, 1, 2, 3, 4, 5]


def test_resume_must_and_never_refuse_clearly(service: ServiceProcess, tmp_path: Path) -> None:
    env = sdk_env(service, service.create_key("vision"), tmp_path)
    missing = run_script("""
        import runwatch
        try:
            runwatch.init(id="nosuchrun", resume="must")
        except runwatch.Error as exc:
            print("ERROR", exc)
    """, env)
    assert "ERROR runwatch.init: run vision/nosuchrun does not exist, and resume='must'" in missing.stdout, \
        missing.stderr
    made = run_script("import runwatch\nrunwatch.init(id='exists1')\nrunwatch.log({'a': 1})\nrunwatch.finish()\n",
                      env)
    assert made.returncode == 0, made.stderr
    never = run_script("""
        import runwatch
        try:
            runwatch.init(id="exists1", resume="never")
        except runwatch.Error as exc:
            print("ERROR", exc)
    """, env)
    assert "ERROR runwatch.init: run vision/exists1 already exists, and resume='never'" in never.stdout, never.stderr


def test_group_and_job_type_are_stored_and_listed(service: ServiceProcess, tmp_path: Path) -> None:
    env = sdk_env(service, service.create_key("vision"), tmp_path, WANDB_RUN_GROUP="ddp-7")
    done = run_script("""
        import runwatch
        runwatch.init(id="worker0", job_type="train", notes="rank 0", tags=["ddp"])
        runwatch.log({"loss": 0.5})
        runwatch.finish()
    """, env)
    assert done.returncode == 0, done.stderr
    run = get_run(service, "worker0")
    assert (run["group"], run["job_type"], run["notes"], run["tags"]) == ("ddp-7", "train", "rank 0", ["ddp"])
    listed = service.api("GET", "/api/v1/runs?project=vision", key=service.admin_key).json()["runs"]
    assert {r["id"]: r["group"] for r in listed}["worker0"] == "ddp-7"


def test_mark_preempting_then_silence_is_recorded_as_a_preemption(service: ServiceProcess, tmp_path: Path) -> None:
    env = sdk_env(service, service.create_key("vision"), tmp_path)
    first = run_script("""
        import os, runwatch
        run = runwatch.init(id="spot1")
        runwatch.log({"loss": 0.5})
        run.mark_preempting()
        run._flush(30)
        print("MARKED", flush=True)
        os._exit(0)
    """, env)
    assert "MARKED" in first.stdout, first.stderr
    service.wait_for(lambda: get_run(service, "spot1")["state"] == "crashed", timeout=90)
    run = get_run(service, "spot1")
    assert ("running", "preempting") in [(e["state"], e["reason"]) for e in run["events"]]
    assert run["failure_reason"].startswith("preempted: no contact for"), run["failure_reason"]
