"""Rules that act: ``actions: [stop_run]``, ``alerts runs stop`` and the admin API stop a real SDK process.

The SDK learns of a stop from the answer to its next records POST or heartbeat, interrupts the main thread
(``KeyboardInterrupt``, as W&B's stop from the UI) or calls ``init(on_stop=...)``, and the run ends
``stopped`` with who asked and why.
"""

from __future__ import annotations

import re
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.sdk_process import Script, get_run, run_script, sdk_env, stored_alerts
from tests.support.receiver import WebhookReceiver
from tests.support.service import ServiceProcess
from tests.support.waiting import eventually

pytestmark = pytest.mark.both_backends

RULES = """
rules:
  - name: loss-diverged
    metric: loss
    when: not finite
    severity: critical
    actions: [stop_run]
  - name: run-stopped
    run_state: [stopped]
    title: "Run {{ run.name }} {{ run.state }}"
    text: "{{ reason }}"
"""

# Logs a falling loss, then NaN from step 50 on, and goes on logging (as a diverged run does) until
# something stops it; prints how long after the first NaN the interrupt came.
DIVERGING_LOOP = """
import math, sys, time, runwatch
run = runwatch.init(id=sys.argv[1], name="exp-" + sys.argv[1])
nan_at = None
try:
    for step in range(100_000):
        if step == 50:
            nan_at = time.monotonic()
        runwatch.log({"loss": math.nan if step >= 50 else 1.0 / (step + 1)})
        time.sleep(0.01)
except KeyboardInterrupt:
    print(f"INTERRUPTED after {time.monotonic() - nan_at:.3f}s at step {step}", flush=True)
    raise
print("NEVER STOPPED", flush=True)
"""


@pytest.fixture
def receiver(webhook_receiver: WebhookReceiver) -> WebhookReceiver:
    return webhook_receiver


@pytest.fixture
def service(service_factory: Callable[..., ServiceProcess], receiver: WebhookReceiver,
            tmp_path: Path) -> ServiceProcess:
    """A service of each test's own, on SQLite and on PostgreSQL (the stop request is stored state)."""
    (tmp_path / "rules.yaml").write_text(RULES)
    return service_factory({"rule_files": [str(tmp_path / "rules.yaml")],
                            "channels": {"hook": {"type": "webhook", "url": receiver.url}},
                            "defaults": {"channels": ["hook"], "group_interval": "500ms"}})


def _alerts_of(receiver: WebhookReceiver, run_id: str) -> list[dict[str, Any]]:
    return [alert for payload in receiver.payloads() for alert in payload["alerts"] if alert["run"]["id"] == run_id]


def _ended(service: ServiceProcess, run_id: str) -> dict[str, Any]:
    return eventually(lambda: get_run(service, run_id), lambda run: run["state"] != "running", timeout=60,
                      what=f"run {run_id} to end")


def test_a_nan_stops_the_run_within_a_second(service: ServiceProcess, receiver: WebhookReceiver,
                                             tmp_path: Path) -> None:
    """The stop rides on the answer to the batch that carried the NaN: the loop is interrupted within
    one second of logging it (the benchmark measures the distribution: ``bench/ingest.py --stop``)."""
    env = sdk_env(service, service.create_key("vision"), tmp_path)
    result = run_script(DIVERGING_LOOP.replace("sys.argv[1]", '"stop1"'), env)
    assert result.returncode == -signal.SIGINT, result.stdout + result.stderr
    match = re.search(r"INTERRUPTED after ([\d.]+)s at step (\d+)", result.stdout)
    assert match, result.stdout + result.stderr
    assert float(match[1]) < 1.0, result.stdout
    assert "runwatch: run vision/stop1 was asked to stop by rule loss-diverged at step 50: loss = nan" \
        in result.stderr

    run = _ended(service, "stop1")
    assert run["state"] == "stopped"
    assert run["failure_reason"] == "stopped by rule loss-diverged at step 50: loss = nan"
    request = run["stop_request"]
    assert (request["by"], request["rule"], request["step"]) == ("rule loss-diverged", "loss-diverged", 50)
    reasons = [event["reason"] for event in run["events"]]
    assert "stop requested: by rule loss-diverged at step 50: loss = nan" in reasons
    assert [e["state"] for e in run["events"]][-1] == "stopped"

    # The notification says the run was stopped, at which step and after how long it ran.
    found = eventually(lambda: _alerts_of(receiver, "stop1"),
                       lambda alerts: {a["rule"] for a in alerts} >= {"loss-diverged", "run-stopped"},
                       timeout=60, what="the diverged and stopped notifications")
    diverged = next(a for a in found if a["rule"] == "loss-diverged")
    assert re.fullmatch(r"loss = nan at step 50 \(when: not finite\)\. Run stopped at step 50 after \d+s",
                        diverged["text"]), diverged["text"]
    stopped = next(a for a in found if a["rule"] == "run-stopped")
    assert stopped["title"] == "Run exp-stop1 stopped"
    assert stopped["text"] == "stopped by rule loss-diverged at step 50: loss = nan"


def test_on_stop_callback_instead_of_the_interrupt(service: ServiceProcess, tmp_path: Path) -> None:
    env = sdk_env(service, service.create_key("vision"), tmp_path)
    result = run_script("""
        import math, threading, time, runwatch
        asked = threading.Event()
        run = runwatch.init(id="stop2", on_stop=lambda request: asked.set())
        for step in range(100_000):
            runwatch.log({"loss": math.nan if step == 20 else 1.0})
            if asked.is_set():
                break
            time.sleep(0.01)
        print("LEFT THE LOOP", step, run.stop_request["rule"], flush=True)
        runwatch.finish()
    """, env)
    assert result.returncode == 0, result.stderr
    assert "LEFT THE LOOP" in result.stdout and "loss-diverged" in result.stdout
    run = _ended(service, "stop2")
    assert run["state"] == "stopped" and run["exit_code"] == 0
    assert run["failure_reason"] == "stopped by rule loss-diverged at step 20: loss = nan"


def test_admin_api_stop_is_idempotent_and_needs_an_admin(service: ServiceProcess, tmp_path: Path) -> None:
    key = service.create_key("vision")
    env = sdk_env(service, key, tmp_path)
    with Script("""
        import sys, threading, time, runwatch
        runwatch.init(id="stop3", on_stop=lambda request: print("ASKED", request["reason"], flush=True))
        done = threading.Event()
        threading.Thread(target=lambda: (sys.stdin.readline(), done.set()), daemon=True).start()
        print("READY", flush=True)
        while not done.is_set():  # goes on until the test says so: the run stays running meanwhile
            runwatch.log({"loss": 0.5})
            time.sleep(0.05)
        runwatch.finish()
    """, env) as script:
        script.expect("READY")
        path = "/api/v1/runs/vision/stop3/stop"
        denied = service.api("POST", path, key=key, json={"reason": "no"})
        assert denied.status_code == 403, denied.text
        assert service.api("POST", path, json={"reason": ""}).status_code == 422
        first = service.api("POST", path, json={"reason": "enough GPU time"})
        assert first.status_code == 200, first.text
        assert first.json()["requested"] is True
        assert first.json()["stop_request"]["reason"] == "enough GPU time"
        assert script.expect("ASKED") == "ASKED enough GPU time"
        again = service.api("POST", path, json={"reason": "second ask"})
        assert again.json()["requested"] is False
        assert again.json()["stop_request"]["reason"] == "enough GPU time"  # the first request stands
        script.send()
        assert script.wait() == 0, script.stderr
    run = _ended(service, "stop3")
    assert run["state"] == "stopped"
    assert run["failure_reason"].startswith("stopped by admin key ") and run["failure_reason"].endswith(
        ": enough GPU time")
    ended = service.api("POST", path, json={"reason": "too late"})
    assert ended.status_code == 200 and ended.json() == {"requested": False, "state": "stopped", "stop_request": None}
    assert service.api("POST", "/api/v1/runs/vision/nosuchrun/stop", json={}).status_code == 404


def test_cli_stop_reaches_a_quiet_run_through_its_heartbeat(service: ServiceProcess, tmp_path: Path) -> None:
    """``alerts runs stop`` writes the database; a run that logs nothing hears of it in a heartbeat
    answer, and a ``sleep`` in the main thread is interrupted (a real SIGINT, not only at the next
    bytecode)."""
    env = sdk_env(service, service.create_key("vision"), tmp_path)
    with Script("""
        import sys, time, runwatch
        runwatch.init(id="stop4", settings={"heartbeat_interval": 0.5})
        runwatch.log({"loss": 0.5})
        print("READY", flush=True)
        try:
            time.sleep(600)
        except KeyboardInterrupt:
            print("INTERRUPTED", flush=True)
        sys.stdin.readline()  # still running until the test has asked again
        runwatch.finish()
    """, env) as script:
        script.expect("READY")
        done = service.cli("runs", "stop", "vision/stop4", "--reason", "maintenance", "--author", "ops")
        assert done.stdout.strip() == "asked run vision/stop4 to stop", done.stderr
        script.expect("INTERRUPTED")
        again = service.cli("runs", "stop", "vision/stop4", "--reason", "twice", "--author", "ops")
        assert "already asked to stop by ops (alerts runs stop): maintenance" in again.stdout
        script.send()
        assert script.wait() == 0, script.stderr
    run = _ended(service, "stop4")
    assert run["state"] == "stopped"
    assert run["failure_reason"] == "stopped by ops (alerts runs stop): maintenance"
    assert service.cli("runs", "stop", "vision/stop4", "--reason", "x").stdout.strip() == \
        "run vision/stop4 is stopped: nothing to stop"
    missing = service.cli("runs", "stop", "vision/nothing", "--reason", "x", check=False)
    assert missing.returncode == 1 and "no run vision/nothing" in missing.stderr
    usage = service.cli("runs", "stop", "no-slash", "--reason", "x", check=False)
    assert usage.returncode == 2 and "expected PROJECT/RUN" in usage.stderr


def test_an_offline_run_is_never_stopped(service: ServiceProcess, receiver: WebhookReceiver,
                                         tmp_path: Path) -> None:
    """Synced later, its NaN fires the rule (the alert is told) but no process is there to stop."""
    env = sdk_env(service, service.create_key("vision"), tmp_path, RUNWATCH_MODE="offline")
    result = run_script("""
        import math, runwatch
        runwatch.init(id="stop5")
        for step in range(30):
            runwatch.log({"loss": math.nan if step == 10 else 1.0})
        runwatch.finish()
    """, env)
    assert result.returncode == 0, result.stderr
    synced = run_script("""
        import sys
        from runwatch.cli import main
        sys.exit(main(["sync", sys.argv[1]]))
    """.replace("sys.argv[1]", repr(str(tmp_path / "runs"))), {**env, "RUNWATCH_MODE": "online"})
    assert synced.returncode == 0, synced.stdout + synced.stderr
    run = _ended(service, "stop5")
    assert run["state"] == "finished" and run["stop_request"] is None
    alerts = eventually(lambda: stored_alerts(service, "stop5"), lambda found: bool(found), timeout=60,
                        what="the synced run's alert")
    assert [a["rule"] for a in alerts] == ["loss-diverged"]
    assert "Run stopped" not in alerts[0]["text"]
