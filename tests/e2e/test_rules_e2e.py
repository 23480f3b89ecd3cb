"""SDK process → service rule engine → webhook receiver, for threshold, not-finite, absent and run_state."""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.sdk_process import run_script, sdk_env, start_script
from tests.support.receiver import WebhookReceiver
from tests.support.service import ServiceProcess

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
    absent: 2s
  - name: run-crashed
    run_state: [failed, crashed, killed]
    severity: error
    title: "Run {{ run.name }} {{ run.state }}"
"""


@pytest.fixture
def rules_service(service_factory: Callable[..., ServiceProcess], webhook_receiver: WebhookReceiver,
                  tmp_path: Path) -> ServiceProcess:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    return service_factory({
        "rule_files": [str(rules)],
        "channels": {"hook": {"type": "webhook", "url": webhook_receiver.url}},
        "defaults": {"channels": ["hook"], "group_interval": "500ms"},
    })


def alerts_of(receiver: WebhookReceiver) -> list[dict[str, Any]]:
    return [alert for payload in receiver.payloads() for alert in payload["alerts"]]


def wait_alerts(receiver: WebhookReceiver, predicate: Callable[[list[dict[str, Any]]], bool],
                timeout: float = 30) -> list[dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = alerts_of(receiver)
        if predicate(found):
            return found
        time.sleep(0.05)
    raise AssertionError(f"condition not met; received: {alerts_of(receiver)}")


def test_threshold_and_not_finite_fire_and_resolve(rules_service: ServiceProcess, webhook_receiver: WebhookReceiver,
                                                   tmp_path: Path) -> None:
    env = sdk_env(rules_service, rules_service.create_key("vision"), tmp_path)
    result = run_script("""
        import math, runwatch
        runwatch.init(id="rules1", name="exp-1")
        for acc in [0.5, 0.2, 0.25, 0.1]:
            runwatch.log({"val/acc": acc, "train/loss": 1.0})
        runwatch.log({"train/loss": math.nan})
        runwatch.log({"val/acc": 0.8, "train/loss": 0.5})
        runwatch.finish()
    """, env)
    assert result.returncode == 0, result.stderr
    # The SDK ships the whole loop in one batch, so each alert fires and resolves before its group's
    # first flush: it is notified once, as resolved, with when it started and ended (a blip is never lost).
    found = wait_alerts(webhook_receiver, lambda a: {x["rule"] for x in a} == {"acc-low", "loss-not-finite"})
    time.sleep(1.0)
    found = alerts_of(webhook_receiver)
    assert sorted((a["rule"], a["status"]) for a in found) == [("acc-low", "resolved"), ("loss-not-finite", "resolved")]
    acc = next(a for a in found if a["rule"] == "acc-low")
    assert acc["title"] == "Accuracy low in exp-1"
    assert acc["text"] == "val/acc = 0.25 at step 2 (floor 0.3)"
    assert acc["value"] == 0.25 and acc["threshold"] == 0.3 and acc["step"] == 2 and acc["source"] == "rule"
    assert acc["starts_at"] <= acc["ends_at"] and acc["resolved_reason"] == "condition cleared"
    nan = next(a for a in found if a["rule"] == "loss-not-finite")
    assert nan["value"] == "NaN" and nan["severity"] == "critical" and nan["labels"]["metric"] == "train/loss"


def test_absent_and_run_state(rules_service: ServiceProcess, webhook_receiver: WebhookReceiver,
                              tmp_path: Path) -> None:
    env = sdk_env(rules_service, rules_service.create_key("vision"), tmp_path)
    process = start_script("""
        import time, runwatch
        runwatch.init(id="hung1", name="exp-hung")
        runwatch.log({"loss": 1.0})
        print("READY", flush=True)
        time.sleep(4.5)                 # quiet: heartbeats only, no points
        runwatch.log({"loss": 0.9})     # points resume
        print("RESUMED", flush=True)
        while True:
            time.sleep(0.05)
    """, env)
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "READY"
    found = wait_alerts(webhook_receiver, lambda a: any(x["rule"] == "run-hung" for x in a), timeout=15)
    hung = next(a for a in found if a["rule"] == "run-hung")
    assert hung["status"] == "firing" and hung["run"]["name"] == "exp-hung"
    assert process.stdout.readline().strip() == "RESUMED"
    wait_alerts(webhook_receiver, lambda a: any(x["rule"] == "run-hung" and x["status"] == "resolved"
                                                for x in a), timeout=15)
    process.send_signal(signal.SIGTERM)
    process.wait(timeout=30)
    found = wait_alerts(webhook_receiver, lambda a: any(x["rule"] == "run-crashed" for x in a), timeout=15)
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
    rules_service.wait_for(lambda: "reloaded the config: 4 rules" in rules_service.log_text(), timeout=10)
    assert rules_service.api("GET", "/healthz").status_code == 200


def test_invalid_rule_file_keeps_the_service_from_starting(service_factory: Callable[..., ServiceProcess],
                                                           tmp_path: Path) -> None:
    rules = tmp_path / "bad.yaml"
    rules.write_text("rules:\n  - name: x\n    metric: m\n    when: '=> 1'\n")
    service = service_factory({"rule_files": [str(rules)]}, start=False)
    with pytest.raises(RuntimeError, match=f"{rules}:4:11: rule \"x\": when: invalid condition"):
        service.start()
