"""Never lose, never duplicate: outages, forked workers, offline sync, alert throttling through the SDK."""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.sdk_process import (
    Script,
    get_run,
    history,
    run_script,
    sdk_env,
    stored_alerts,
    wait_until_all_delivered,
)
from tests.support.receiver import WebhookReceiver
from tests.support.service import ServiceProcess, running_service

pytestmark = pytest.mark.both_backends  # their services run on SQLite, then on PostgreSQL

OUTAGE = 20.0  # long enough for the SDK's retries to reach their longest backoff (3 s) several times


@pytest.fixture(scope="module")
def shared_service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """For the tests that neither stop the service nor count its notifications; each has its own run ids."""
    with running_service(tmp_path_factory.mktemp("service")) as service:
        yield service


def test_service_down_for_20s_mid_run_loses_nothing(service: ServiceProcess, tmp_path: Path) -> None:
    env = sdk_env(service, service.create_key("vision"), tmp_path)
    with Script("""
        import sys, time, runwatch
        runwatch.init(id="outage1")
        for step in range(3000):
            if step in (1000, 2000):    # the test takes the service down at 1000 and brings it back at 2000
                print("AT", step, flush=True)
                sys.stdin.readline()
            runwatch.log({"loss": 1.0 / (step + 1), "step_copy": step})
            if 1000 <= step < 2000:
                time.sleep(0.005)       # spread over the outage: new data meets every retry
        runwatch.alert(title="done", text="finished the loop", wait_duration=0)
        runwatch.finish()
    """, env) as script:
        script.expect("AT 1000", timeout=120)
        service.stop()
        down_since = time.monotonic()
        script.send()                   # steps 1000-1999 are logged while nobody answers
        script.expect("AT 2000", timeout=120)
        time.sleep(max(0.0, OUTAGE - (time.monotonic() - down_since)))
        service.start()
        script.send()
        assert script.wait(timeout=180) == 0, script.stderr
        assert "runwatch: service unreachable" in script.stderr  # the SDK did meet the outage
    rows = history(service, "outage1")
    assert [row["_step"] for row in rows] == list(range(3000))
    assert [row["step_copy"] for row in rows] == [float(s) for s in range(3000)]
    timestamps = [row["_timestamp"] for row in rows]
    assert timestamps == sorted(timestamps)
    assert get_run(service, "outage1")["state"] == "finished"
    assert [alert["title"] for alert in stored_alerts(service, "outage1")] == ["done"]


def test_fork_pool_inside_a_run_sends_nothing_twice(shared_service: ServiceProcess, tmp_path: Path) -> None:
    service = shared_service
    env = sdk_env(service, service.create_key("vision"), tmp_path)
    result = run_script("""
        import multiprocessing as mp, runwatch

        def work(i):
            runwatch.log({"from_child": i})   # must not reach the parent's run
            runwatch.run._flush(30)           # a child that thought it owned the run would send it now
            return i * i

        if __name__ == "__main__":
            runwatch.init(id="fork1")
            ctx = mp.get_context("fork")
            for epoch in range(5):
                with ctx.Pool(2) as pool:
                    total = sum(pool.map(work, range(20)))
                runwatch.log({"epoch": epoch, "total": total})
            runwatch.finish()
    """, env)
    assert result.returncode == 0, result.stderr
    rows = history(service, "fork1")
    assert [row["_step"] for row in rows] == [0, 1, 2, 3, 4]
    assert all("from_child" not in row for row in rows)
    assert [row["epoch"] for row in rows] == [0.0, 1.0, 2.0, 3.0, 4.0]
    run = get_run(service, "fork1")
    assert run["state"] == "finished"
    assert [e["state"] for e in run["events"]] == ["running", "finished"]


def test_ten_thousand_alerts_make_one_notification(webhook_service: ServiceProcess,
                                                   webhook_receiver: WebhookReceiver, tmp_path: Path) -> None:
    env = sdk_env(webhook_service, webhook_service.create_key("vision"), tmp_path)
    result = run_script("""
        import time, runwatch
        # The service throttles on the alerts' own timestamps: this clock puts the 10,000 calls 2 s apart
        # in all (inside the 3 s window however slow this machine is), then steps past the window.
        now = [time.time()]
        runwatch.init(id="storm1", clock=lambda: now[0])
        for i in range(10_000):
            runwatch.alert(title="Loss is NaN", text=f"call {i}", level="error", wait_duration=3)
            now[0] += 0.0002
        now[0] += 3.5
        runwatch.alert(title="Loss is NaN", text="after the window", level="error", wait_duration=3)
        for i in range(3):
            runwatch.alert(title="every time", text=f"call {i}", wait_duration=0)
        runwatch.finish()
    """, env)
    assert result.returncode == 0, result.stderr
    # finish() returned once the service had every call: the alerts it made are all stored by now.
    stored = stored_alerts(webhook_service, "storm1")
    assert sorted(a["text"] for a in stored) == ["after the window", "call 0", "call 0", "call 1", "call 2"]

    def alerts() -> list[dict[str, object]]:
        return [a for payload in webhook_receiver.payloads() for a in payload["alerts"]]

    webhook_service.wait_for(lambda: len(alerts()) >= 5, timeout=60)
    wait_until_all_delivered(webhook_service)
    nan = [a for a in alerts() if a["title"] == "Loss is NaN"]
    assert [a["text"] for a in nan] == ["call 0", "after the window"]  # exactly one inside the window
    assert nan[1]["suppressed_count"] == 9999
    assert nan[0]["severity"] == "error"
    # wait_duration=0: every call is an alert (calls that arrive together may share one message)
    assert sorted(a["text"] for a in alerts() if a["title"] == "every time") == ["call 0", "call 1", "call 2"]
    assert len(alerts()) == 5


def test_offline_run_synced_later(webhook_service: ServiceProcess, webhook_receiver: WebhookReceiver,
                                  tmp_path: Path) -> None:
    env = sdk_env(webhook_service, webhook_service.create_key("vision"), tmp_path, RUNWATCH_MODE="offline")
    result = run_script("""
        import runwatch
        runwatch.init(id="off1", config={"lr": 0.1})
        for i in range(100):
            runwatch.log({"loss": 1 / (i + 1)})
        runwatch.alert(title="offline alert", text="raised while offline")
        runwatch.finish()
    """, env)
    assert result.returncode == 0, result.stderr
    # Offline, the service heard nothing: no run, no alert, nothing to notify.
    assert webhook_service.api("GET", "/api/v1/runs/vision/off1").status_code == 404
    assert webhook_service.api("GET", "/api/v1/alerts?project=vision").json()["alerts"] == []
    assert webhook_service.api("GET", "/api/v1/notifications").json()["notifications"] == []
    run_dir = tmp_path / "runs" / "run-off1"
    shutil.copy(run_dir / "spool.jsonl", tmp_path / "spool-copy.jsonl")
    env.pop("RUNWATCH_MODE")

    def sync() -> subprocess.CompletedProcess[str]:
        done = subprocess.run([sys.executable, "-m", "runwatch.cli", "sync", str(tmp_path / "runs")], env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return done

    assert "vision/off1 records=102 alerts=1 ok" in sync().stdout
    assert [row["_step"] for row in history(webhook_service, "off1")] == list(range(100))
    run = get_run(webhook_service, "off1")
    assert run["state"] == "finished" and run["config"] == {"lr": 0.1}
    (request,) = webhook_receiver.wait_for(1)
    alert = request.json()["alerts"][0]
    assert alert["title"] == "offline alert" and alert["delayed"] is True
    # Syncing again uploads nothing twice: the synced run is not sent again, and a spool sent a second
    # time (a sync cut off before it could mark the run synced) is recognised by the service.
    assert "nothing to sync" in sync().stdout
    shutil.copy(tmp_path / "spool-copy.jsonl", run_dir / "spool.jsonl")
    assert "vision/off1" in sync().stdout
    assert len(history(webhook_service, "off1")) == 100
    assert [a["title"] for a in stored_alerts(webhook_service, "off1")] == ["offline alert"]
    wait_until_all_delivered(webhook_service)
    assert len(webhook_receiver.requests) == 1


def test_login_verifies_and_stores_the_key(shared_service: ServiceProcess, tmp_path: Path) -> None:
    service = shared_service
    key = service.create_key("vision")
    env = sdk_env(service, key, tmp_path)
    env.pop("RUNWATCH_API_KEY")
    bad = subprocess.run([sys.executable, "-m", "runwatch.cli", "login", "rwk_not-a-key"], env=env,
                         capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert bad.returncode != 0
    assert "rwk_not-a-key" not in bad.stderr + bad.stdout
    good = subprocess.run([sys.executable, "-m", "runwatch.cli", "login", key], env=env, capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    assert good.returncode == 0, good.stderr
    credentials = Path(env["HOME"]) / ".config" / "runwatch" / "credentials.json"
    assert stat.S_IMODE(os.stat(credentials).st_mode) == 0o600
    assert key in credentials.read_text()
    assert key not in good.stdout + good.stderr
    # The stored key is used when the environment has none.
    result = run_script("""
        import runwatch
        runwatch.init(id="login1").finish()
    """, env)
    assert result.returncode == 0, result.stderr
    assert get_run(service, "login1")["state"] == "finished"
    # No key anywhere and no terminal: a clear error saying how to provide one.
    env["HOME"] = str(tmp_path / "empty-home")
    result = run_script("import runwatch; runwatch.login()", env, stdin=subprocess.DEVNULL)
    assert result.returncode != 0 and "RUNWATCH_API_KEY" in result.stderr


def test_export_api(shared_service: ServiceProcess, tmp_path: Path) -> None:
    service = shared_service
    # A project of its own: it asserts on every run and alert of the project, on a service shared with others.
    env = {**sdk_env(service, service.create_key("export"), tmp_path), "RUNWATCH_PROJECT": "export"}
    result = run_script("""
        import math, json, runwatch
        run = runwatch.init(id="exp1", tags=["baseline"], config={"lr": 0.1})
        for i in range(2500):
            runwatch.log({"loss": 1 / (i + 1), "acc": i / 2500 if i != 5 else math.nan})
        table = runwatch.Table(columns=["a", "b"])
        table.add_data(1, "x")
        runwatch.log({"preds": table})
        runwatch.alert(title="hello", text="world", wait_duration=0)
        runwatch.finish()
        api = runwatch.Api()
        runs = api.runs("export", filters={"tags": "baseline"})
        assert [r.id for r in runs] == ["exp1"], runs
        r = api.run("export/exp1")
        rows = r.history(keys=["loss"], pandas=False)
        assert len(rows) == 2500 and rows[0]["loss"] == 1.0, rows[:2]
        scanned = list(r.scan_history(keys=["acc"]))
        assert len(scanned) == 2500 and math.isnan(scanned[5]["acc"])
        assert r.config == {"lr": 0.1} and r.state == "finished"
        alerts = api.alerts("export")
        assert [a["title"] for a in alerts] == ["hello"], alerts
        print("EXPORT-OK")
    """, env)
    assert result.returncode == 0, result.stderr
    assert "EXPORT-OK" in result.stdout
    media = service.api("GET", "/api/v1/runs/export/exp1/media").json()["media"]
    assert media[0]["kind"] == "table" and media[0]["value"]["data"] == [[1, "x"]]
