"""Never lose, never duplicate: outages, forked workers, offline sync, alert throttling through the SDK."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.sdk_process import get_run, history, run_script, sdk_env, start_script
from tests.support.receiver import WebhookReceiver
from tests.support.service import ServiceProcess


def test_service_down_for_20s_mid_run_loses_nothing(service: ServiceProcess, tmp_path: Path) -> None:
    env = sdk_env(service, service.create_key("vision"), tmp_path)
    process = start_script("""
        import time, runwatch
        runwatch.init(id="outage1")
        for step in range(3000):
            runwatch.log({"loss": 1.0 / (step + 1), "step_copy": step})
            if step % 100 == 0:
                print("AT", step, flush=True)
            time.sleep(0.01)
        runwatch.alert(title="done", text="finished the loop", wait_duration=0)
        runwatch.finish()
    """, env)
    assert process.stdout is not None
    while not process.stdout.readline().startswith("AT 300"):
        pass
    service.stop()
    time.sleep(20)
    service.start()
    assert process.wait(timeout=120) == 0, process.stderr.read() if process.stderr else ""
    rows = history(service, "outage1")
    assert [row["_step"] for row in rows] == list(range(3000))
    assert [row["step_copy"] for row in rows] == [float(s) for s in range(3000)]
    timestamps = [row["_timestamp"] for row in rows]
    assert timestamps == sorted(timestamps)
    assert get_run(service, "outage1")["state"] == "finished"


def test_fork_pool_inside_a_run_sends_nothing_twice(service: ServiceProcess, tmp_path: Path) -> None:
    env = sdk_env(service, service.create_key("vision"), tmp_path)
    result = run_script("""
        import multiprocessing as mp, runwatch

        def work(i):
            runwatch.log({"from_child": i})   # must not reach the parent's run
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
        runwatch.init(id="storm1")
        for i in range(10_000):
            runwatch.alert(title="Loss is NaN", text=f"call {i}", level="error", wait_duration=3)
        time.sleep(3.5)
        runwatch.alert(title="Loss is NaN", text="after the window", level="error", wait_duration=3)
        for i in range(3):
            runwatch.alert(title="every time", text=f"call {i}", wait_duration=0)
        runwatch.finish()
    """, env)
    assert result.returncode == 0, result.stderr

    def alerts() -> list[dict[str, object]]:
        return [a for payload in webhook_receiver.payloads() for a in payload["alerts"]]

    webhook_service.wait_for(lambda: len(alerts()) >= 5, timeout=30)
    time.sleep(1.0)
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
    assert webhook_service.api("GET", "/api/v1/runs/vision/off1").status_code == 404
    time.sleep(0.5)
    assert webhook_receiver.requests == []
    env.pop("RUNWATCH_MODE")
    sync = subprocess.run([sys.executable, "-m", "runwatch.cli", "sync", str(tmp_path / "runs")], env=env,
                          capture_output=True, text=True, timeout=120)
    assert sync.returncode == 0, sync.stderr
    assert [row["_step"] for row in history(webhook_service, "off1")] == list(range(100))
    run = get_run(webhook_service, "off1")
    assert run["state"] == "finished" and run["config"] == {"lr": 0.1}
    (request,) = webhook_receiver.wait_for(1)
    alert = request.json()["alerts"][0]
    assert alert["title"] == "offline alert" and alert["delayed"] is True
    # Syncing again uploads nothing twice.
    subprocess.run([sys.executable, "-m", "runwatch.cli", "sync", str(tmp_path / "runs")], env=env,
                   capture_output=True, text=True, timeout=120, check=True)
    time.sleep(0.5)
    assert len(history(webhook_service, "off1")) == 100 and len(webhook_receiver.requests) == 1


def test_login_verifies_and_stores_the_key(service: ServiceProcess, tmp_path: Path) -> None:
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


def test_export_api(service: ServiceProcess, tmp_path: Path) -> None:
    env = sdk_env(service, service.create_key("vision"), tmp_path)
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
        runs = api.runs("vision", filters={"tags": "baseline"})
        assert [r.id for r in runs] == ["exp1"], runs
        r = api.run("vision/exp1")
        rows = r.history(keys=["loss"], pandas=False)
        assert len(rows) == 2500 and rows[0]["loss"] == 1.0, rows[:2]
        scanned = list(r.scan_history(keys=["acc"]))
        assert len(scanned) == 2500 and math.isnan(scanned[5]["acc"])
        assert r.config == {"lr": 0.1} and r.state == "finished"
        alerts = api.alerts("vision")
        assert [a["title"] for a in alerts] == ["hello"], alerts
        print("EXPORT-OK")
    """, env)
    assert result.returncode == 0, result.stderr
    assert "EXPORT-OK" in result.stdout
    media = service.api("GET", "/api/v1/runs/vision/exp1/media").json()["media"]
    assert media[0]["kind"] == "table" and media[0]["value"]["data"] == [[1, "x"]]
