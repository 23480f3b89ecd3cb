"""The SDK against a service restarted three times during one run (a clean stop, a kill -9, a clean stop
again), while the training loop keeps logging without waiting for it: every point is stored once, in
order, every ``alert()`` call is one alert, and the run ends finished.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.sdk_process import Script, get_run, history, sdk_env, stored_alerts
from tests.support.service import ServiceProcess

pytestmark = [pytest.mark.both_backends, pytest.mark.timeout(900)]

STEPS = 4000
RESTART_AT = (1000, 2000, 3000)


def test_sdk_run_survives_three_service_restarts(service_factory: Callable[..., ServiceProcess], tmp_path: Path,
                                                 fault_report: Callable[..., None]) -> None:
    service = service_factory()
    env = sdk_env(service, service.create_key("vision"), tmp_path)
    with Script(f"""
        import sys, time, runwatch
        run = runwatch.init(id="restarts", config={{"lr": 0.1}})
        began = time.monotonic()
        for step in range({STEPS}):
            if step in {RESTART_AT!r}:
                print("AT", step, flush=True)          # the test restarts the service; the loop goes on
                runwatch.alert(title=f"checkpoint {{step}}", text="saved", wait_duration=0)
            runwatch.log({{"loss": 1.0 / (step + 1), "step_copy": step}})
            time.sleep(0.003)
        print("LOOP", time.monotonic() - began, flush=True)
        sys.stdin.readline()                            # finish once the last restart is over
        run.summary["best"] = 0.5
        runwatch.finish()
    """, env) as script:
        downtimes = []
        for step, how in zip(RESTART_AT, ("SIGTERM", "SIGKILL", "SIGTERM"), strict=True):
            script.expect(f"AT {step}", timeout=300)
            down = time.monotonic()
            if how == "SIGKILL":
                service.kill()
            else:
                service.stop()  # SIGTERM: a clean shutdown
            service.start()
            downtimes.append(time.monotonic() - down)
        loop_seconds = float(script.expect("LOOP", timeout=300).split()[1])
        script.send()
        assert script.wait(timeout=300) == 0, script.stderr
        assert "runwatch: service unreachable" in script.stderr  # the SDK did meet the restarts

    rows = history(service, "restarts")
    assert [row["_step"] for row in rows] == list(range(STEPS))
    assert [row["step_copy"] for row in rows] == [float(s) for s in range(STEPS)]
    timestamps = [row["_timestamp"] for row in rows]
    assert timestamps == sorted(timestamps)
    run = get_run(service, "restarts")
    assert run["state"] == "finished" and run["config"]["lr"] == 0.1 and run["summary"]["best"] == 0.5
    assert sorted(a["title"] for a in stored_alerts(service, "restarts")) == [f"checkpoint {s}" for s in RESTART_AT]
    fault_report(outage=f"service restarted 3× (TERM, KILL, TERM) mid-run [{service.storage_url.split(':')[0]}]",
                 channel="-", notifications="-", delivered=f"{len(rows)}/{STEPS} points, 3/3 alerts", doubled=0,
                 **{"recovery s": "down " + " / ".join(f"{d:.1f}" for d in downtimes)
                    + f"; loop {loop_seconds:.0f} s"})
