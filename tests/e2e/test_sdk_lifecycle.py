"""Run states from real process endings: finish, exception, SIGTERM, os._exit, heartbeats."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from tests.e2e.sdk_process import (
    Script,
    find_run,
    get_run,
    history,
    run_script,
    sdk_env,
)
from tests.support.service import ServiceProcess, running_service
from tests.support.waiting import eventually

pytestmark = pytest.mark.both_backends  # their services run on SQLite, then on PostgreSQL

# The SDK heartbeats every heartbeat_timeout / 3 (the service tells it so at init), and the service
# records a contact at most once a second: a live run goes at most ~3 s without a recorded contact,
# so a false crash needs a 3 s stall on top. A 2 s timeout turned a busy machine's stall into a crash.
HEARTBEAT_TIMEOUT = 6.0


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One service for the module's tests; each uses its own run ids."""
    with running_service(tmp_path_factory.mktemp("service")) as service:
        yield service


@pytest.fixture(scope="module")
def heartbeat_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    with running_service(tmp_path_factory.mktemp("heartbeat"), {
        "runs": {"heartbeat_timeout": f"{HEARTBEAT_TIMEOUT:g}s", "crash_check_interval": "200ms"},
    }) as service:
        yield service


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
    with Script("""
        import time, runwatch
        runwatch.init(id="term1")
        runwatch.log({"loss": 1.0})
        print("READY", flush=True)
        while True:
            time.sleep(0.05)
    """, env) as script:
        script.expect("READY")
        script.process.send_signal(signal.SIGTERM)
        assert script.wait() == -signal.SIGTERM, script.stderr  # the default behaviour continued
    run = get_run(service, "term1")
    assert run["state"] == "killed" and run["failure_reason"] == "SIGTERM"


def _timestamp(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


def test_os_exit_is_marked_crashed_after_heartbeat_timeout(heartbeat_service: ServiceProcess,
                                                           tmp_path: Path) -> None:
    service = heartbeat_service
    env = sdk_env(service, service.create_key("vision"), tmp_path)
    with Script("""
        import os, sys, runwatch
        runwatch.init(id="gone1")
        runwatch.log({"loss": 1.0})
        print("READY", flush=True)
        sys.stdin.readline()            # alive (heartbeating) until the test has looked
        os._exit(0)                     # no finish, no atexit: only the silence tells
    """, env) as script:
        script.expect("READY")
        eventually(lambda: history(service, "gone1") if find_run(service, "gone1") else [], lambda rows: rows != [],
                   what="the run's point at the service")
        alive = get_run(service, "gone1")
        assert alive["state"] == "running" and [e["state"] for e in alive["events"]] == ["running"], alive
        released_at = time.time()
        script.send()
        assert script.wait() == 0, script.stderr
    run = eventually(lambda: get_run(service, "gone1"), lambda r: r["state"] != "running",
                     timeout=HEARTBEAT_TIMEOUT + 60, what="the run leaving 'running'")
    assert [e["state"] for e in run["events"]] == ["running", "crashed"], run["events"]
    crashed_at = run["events"][-1]["at"]
    assert crashed_at > released_at  # not while the process was alive
    assert crashed_at - _timestamp(run["last_contact"]) >= HEARTBEAT_TIMEOUT
    assert run["failure_reason"].startswith("no contact for ")
    assert run["failure_reason"].endswith(f"(heartbeat timeout {HEARTBEAT_TIMEOUT:g}s)")


def test_heartbeat_keeps_a_quiet_run_alive(heartbeat_service: ServiceProcess, tmp_path: Path) -> None:
    service = heartbeat_service
    env = sdk_env(service, service.create_key("vision"), tmp_path)
    with Script("""
        import sys, runwatch
        runwatch.init(id="quiet1")
        print("READY", flush=True)
        sys.stdin.readline()            # quiet: no points, heartbeats only, for as long as the test says
        runwatch.log({"loss": 1.0})
        runwatch.finish()
    """, env) as script:
        script.expect("READY")
        eventually(lambda: find_run(service, "quiet1"), lambda run: run is not None, what="the run at the service")
        contacts = set()
        quiet_until = time.monotonic() + 3 * HEARTBEAT_TIMEOUT
        while time.monotonic() < quiet_until:
            run = get_run(service, "quiet1")
            assert run["state"] == "running", run
            contacts.add(run["last_contact"])
            time.sleep(0.5)
        assert len(contacts) >= 3, contacts  # heartbeats moved its last contact on, again and again
        script.send()
        assert script.wait() == 0, script.stderr
    run = get_run(service, "quiet1")
    assert run["state"] == "finished"
    assert [event["state"] for event in run["events"]] == ["running", "finished"]
