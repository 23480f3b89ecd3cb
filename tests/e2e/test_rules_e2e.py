"""SDK process → service rule engine → webhook receiver, for threshold, not-finite, absent and run_state."""

from __future__ import annotations

import signal
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.sdk_process import (
    Script,
    run_script,
    sdk_env,
    stored_alerts,
    wait_until_all_delivered,
)
from tests.support.receiver import WebhookReceiver
from tests.support.service import ServiceProcess, running_service
from tests.support.waiting import eventually

pytestmark = pytest.mark.both_backends  # their services run on SQLite, then on PostgreSQL

# run-hung's window. Wide, so that a slow start (from init to the first point) never looks like a hang;
# the test holds the script quiet until the alert has come, however long that takes.
ABSENT = 8.0

RULES = """
rules:
  - name: acc-low
    metric: val/acc
    when: "< 0.3"
    for: 2
    title: "Accuracy low in {{ run.name }}"
    text: "{{ metric }} = {{ value | round(3) }} at step {{ step }} (floor {{ threshold }})"
  - name: loss-not-finite
    metric: "train/*loss"
    when: not finite
    severity: critical
  - name: run-hung
    metric: "*"
    absent: __ABSENT__
  - name: run-crashed
    run_state: [failed, crashed, killed]
    severity: error
    title: "Run {{ run.name }} {{ run.state }}"
""".replace("__ABSENT__", f"{ABSENT:g}s")


def _rules_config(rules: Path, receiver: WebhookReceiver) -> dict[str, Any]:
    rules.write_text(RULES)
    return {
        "rule_files": [str(rules)],
        "channels": {"hook": {"type": "webhook", "url": receiver.url}},
        "defaults": {"channels": ["hook"], "group_interval": "500ms"},
    }


@pytest.fixture
def rules_service(service_factory: Callable[..., ServiceProcess], webhook_receiver: WebhookReceiver,
                  tmp_path: Path) -> ServiceProcess:
    """A service of its own: the test rewrites and reloads its rules."""
    return service_factory(_rules_config(tmp_path / "rules.yaml", webhook_receiver))


@pytest.fixture(scope="module")
def shared_receiver() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver().start()
    yield receiver
    receiver.stop()


@pytest.fixture(scope="module")
def shared_rules_service(tmp_path_factory: pytest.TempPathFactory,
                         shared_receiver: WebhookReceiver) -> Iterator[ServiceProcess]:
    """For tests that only read the rules: each uses its own run id and looks at that run's alerts only."""
    workdir = tmp_path_factory.mktemp("rules")
    with running_service(workdir, _rules_config(workdir / "rules.yaml", shared_receiver)) as service:
        yield service


def alerts_of(receiver: WebhookReceiver, run_id: str) -> list[dict[str, Any]]:
    return [alert for payload in receiver.payloads() for alert in payload["alerts"] if alert["run"]["id"] == run_id]


def wait_alerts(receiver: WebhookReceiver, run_id: str, predicate: Callable[[list[dict[str, Any]]], bool],
                timeout: float = 60) -> list[dict[str, Any]]:
    return eventually(lambda: alerts_of(receiver, run_id), predicate, timeout=timeout,
                      what=f"the notifications expected for run {run_id}")


def test_threshold_and_not_finite_fire_and_resolve(shared_rules_service: ServiceProcess,
                                                   shared_receiver: WebhookReceiver, tmp_path: Path) -> None:
    service = shared_rules_service
    env = sdk_env(service, service.create_key("vision"), tmp_path)
    result = run_script("""
        import math, runwatch
        run = runwatch.init(id="rules1", name="exp-1")
        # Holding the sender's lock until the loop is queued makes it one batch, however slow this machine.
        with run._sender.lock:
            for acc in [0.5, 0.2, 0.25, 0.1]:
                runwatch.log({"val/acc": acc, "train/loss": 1.0})
            runwatch.log({"train/loss": math.nan})
            runwatch.log({"val/acc": 0.8, "train/loss": 0.5})
        runwatch.finish()
    """, env)
    assert result.returncode == 0, result.stderr
    # The whole loop reaches the service in one batch, so each alert fires and resolves before its group's
    # first flush: it is told firing first, and resolved at the group's next flush, with when it started
    # and ended (a blip is never lost).
    wait_alerts(shared_receiver, "rules1",
                lambda a: {x["rule"] for x in a if x["status"] == "resolved"} == {"acc-low", "loss-not-finite"})
    wait_until_all_delivered(service)  # a notification sent before the resolved ones has arrived by now
    found = alerts_of(shared_receiver, "rules1")
    assert [(a["rule"], a["status"]) for a in found if a["rule"] == "acc-low"] == \
        [("acc-low", "firing"), ("acc-low", "resolved")]
    assert [(a["rule"], a["status"]) for a in found if a["rule"] == "loss-not-finite"] == \
        [("loss-not-finite", "firing"), ("loss-not-finite", "resolved")]
    found = [a for a in found if a["status"] == "resolved"]
    assert sorted((a["rule"], a["status"]) for a in stored_alerts(service, "rules1")) == \
        [("acc-low", "resolved"), ("loss-not-finite", "resolved")]
    acc = next(a for a in found if a["rule"] == "acc-low")
    assert acc["title"] == "Accuracy low in exp-1"
    assert acc["text"] == "val/acc = 0.25 at step 2 (floor 0.3)"
    assert acc["value"] == 0.25 and acc["threshold"] == 0.3 and acc["step"] == 2 and acc["source"] == "rule"
    assert acc["starts_at"] <= acc["ends_at"] and acc["resolved_reason"] == "condition cleared"
    nan = next(a for a in found if a["rule"] == "loss-not-finite")
    assert nan["value"] == "NaN" and nan["severity"] == "critical" and nan["labels"]["metric"] == "train/loss"


def test_absent_and_run_state(shared_rules_service: ServiceProcess, shared_receiver: WebhookReceiver,
                              tmp_path: Path) -> None:
    service = shared_rules_service
    env = sdk_env(service, service.create_key("vision"), tmp_path)
    with Script("""
        import sys, time, runwatch
        runwatch.init(id="hung1", name="exp-hung")
        runwatch.log({"loss": 1.0})
        print("READY", flush=True)
        sys.stdin.readline()            # quiet (heartbeats only, no points) until the test has seen the alert
        runwatch.log({"loss": 0.9})     # points resume
        print("RESUMED", flush=True)
        while True:
            time.sleep(0.05)
    """, env) as script:
        script.expect("READY")
        found = wait_alerts(shared_receiver, "hung1", lambda a: any(x["rule"] == "run-hung" for x in a),
                            timeout=ABSENT + 60)
        [hung] = [a for a in found if a["rule"] == "run-hung"]
        assert hung["status"] == "firing" and hung["run"]["name"] == "exp-hung"
        assert hung["value"] >= ABSENT and hung["threshold"] == ABSENT
        script.send()
        script.expect("RESUMED")
        found = wait_alerts(shared_receiver, "hung1",
                            lambda a: any(x["rule"] == "run-hung" and x["status"] == "resolved" for x in a))
        resolved = next(a for a in found if a["rule"] == "run-hung" and a["status"] == "resolved")
        assert resolved["resolved_reason"] == "points resumed"
        script.process.send_signal(signal.SIGTERM)
        assert script.wait() == -signal.SIGTERM, script.stderr
    found = wait_alerts(shared_receiver, "hung1", lambda a: any(x["rule"] == "run-crashed" for x in a))
    crashed = next(a for a in found if a["rule"] == "run-crashed")
    assert crashed["title"] == "Run exp-hung killed" and crashed["severity"] == "error"


def test_reload_via_api_and_sighup(rules_service: ServiceProcess, tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    response = rules_service.api("POST", "/api/v1/reload", key=rules_service.create_key("vision"))
    assert response.status_code == 403
    rules.write_text(RULES + '  - {name: extra, metric: m, when: "> 1"}\n')
    response = rules_service.api("POST", "/api/v1/reload")
    assert response.status_code == 200, response.text
    assert response.json()["added"] == ["extra"] and response.json()["rules"] == 5
    rules.write_text("rules:\n  - name: broken\n    metric: m\n    when: 5\n")
    response = rules_service.api("POST", "/api/v1/reload")
    assert response.status_code == 400
    assert response.json()["errors"][0].startswith(f'{rules}:4:11: rule "broken": when: condition 5 has no operator')
    rules.write_text(RULES)
    assert rules_service.process is not None
    rules_service.process.send_signal(signal.SIGHUP)
    rules_service.wait_for(lambda: "reloaded the config: 4 rules" in rules_service.log_text())
    assert rules_service.api("GET", "/healthz").status_code == 200


def test_invalid_rule_file_keeps_the_service_from_starting(service_factory: Callable[..., ServiceProcess],
                                                           tmp_path: Path) -> None:
    rules = tmp_path / "bad.yaml"
    rules.write_text("rules:\n  - name: x\n    metric: m\n    when: '=> 1'\n")
    service = service_factory({"rule_files": [str(rules)]}, start=False)
    with pytest.raises(RuntimeError, match=f"{rules}:4:11: rule \"x\": when: invalid condition"):
        service.start()
