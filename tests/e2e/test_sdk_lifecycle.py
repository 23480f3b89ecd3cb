"""Run states from real process endings: finish, exception, SIGTERM, os._exit, heartbeats."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from tests.e2e.sdk_process import get_run, run_script, sdk_env, start_script
from tests.support.service import ServiceProcess


def test_uncaught_exception_marks_failed_with_traceback(service: ServiceProcess, tmp_path: Path) -> None:
    env = sdk_env(service, service.create_key("vision"), tmp_path)
    result = run_script("""
        import runwatch
        runwatch.init(id="boom1")
        for i in range(3):
            print(f"epoch {i} done")
            runwatch.log({"loss": 1.0 / (i + 1)})
        raise ValueError("bad batch shape")
    """, env)
    assert result.returncode == 1
    assert "ValueError: bad batch shape" in result.stderr  # the user still sees the traceback
    run = get_run(service, "boom1")
    assert run["state"] == "failed"
    assert run["failure_reason"] == "ValueError: bad batch shape"
    assert "epoch 2 done" in run["console_tail"]
    assert "Traceback (most recent call last)" in run["console_tail"]
    assert "ValueError: bad batch shape" in run["console_tail"]


def test_nonzero_finish_and_context_manager(service: ServiceProcess, tmp_path: Path) -> None:
    env = sdk_env(service, service.create_key("vision"), tmp_path)
    result = run_script("""
        import runwatch
        runwatch.init(id="exit3").finish(exit_code=3)
        try:
            with runwatch.init(id="ctx1") as run:
                run.log({"x": 1})
                raise KeyError("k")
        except KeyError:
            pass
        with runwatch.init(id="ctx2") as run:
            run.log({"x": 1})
    """, env)
    assert result.returncode == 0, result.stderr
    assert get_run(service, "exit3")["state"] == "failed" and get_run(service, "exit3")["exit_code"] == 3
    assert get_run(service, "ctx1")["state"] == "failed" and get_run(service, "ctx1")["exit_code"] == 1
    assert get_run(service, "ctx2")["state"] == "finished"


def test_sigterm_marks_killed(service: ServiceProcess, tmp_path: Path) -> None:
    env = sdk_env(service, service.create_key("vision"), tmp_path)
    process = start_script("""
        import time, runwatch
        runwatch.init(id="term1")
        runwatch.log({"loss": 1.0})
        print("READY", flush=True)
        while True:
            time.sleep(0.05)
    """, env)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "READY"
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=30) == -signal.SIGTERM  # the default behaviour continued
    run = get_run(service, "term1")
    assert run["state"] == "killed" and run["failure_reason"] == "SIGTERM"


def test_os_exit_is_marked_crashed_after_heartbeat_timeout(service_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    service = service_factory({"runs": {"heartbeat_timeout": "2s", "crash_check_interval": "200ms"}})
    env = sdk_env(service, service.create_key("vision"), tmp_path)
    result = run_script("""
        import os, time, runwatch
        runwatch.init(id="gone1")
        runwatch.log({"loss": 1.0})
        time.sleep(0.5)
        os._exit(0)
    """, env)
    assert result.returncode == 0
    assert get_run(service, "gone1")["state"] == "running"
    run = service.wait_for(lambda: (r := get_run(service, "gone1"))["state"] == "crashed" and r, timeout=15)
    assert "no contact" in run["failure_reason"]


def test_heartbeat_keeps_a_quiet_run_alive(service_factory, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    service = service_factory({"runs": {"heartbeat_timeout": "1500ms", "crash_check_interval": "200ms"}})
    env = sdk_env(service, service.create_key("vision"), tmp_path)
    started = time.monotonic()
    result = run_script("""
        import time, runwatch
        runwatch.init(id="quiet1")
        time.sleep(4)
        runwatch.log({"loss": 1.0})
        runwatch.finish()
    """, env)
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - started > 4
    run = get_run(service, "quiet1")
    assert run["state"] == "finished"
    assert [event["state"] for event in run["events"]] == ["running", "finished"]
