"""``alert(chart=...)`` end to end: a real SDK process, the real service, its webhook notification."""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import pytest

from alerts.model import fingerprint
from tests.e2e.sdk_process import run_script, sdk_env, stored_alerts, wait_until_all_delivered
from tests.support.receiver import WebhookReceiver
from tests.support.service import ServiceProcess

pytestmark = pytest.mark.both_backends  # the SQLite writer and SQLAlchemy store alerts by different code


def test_alert_chart_arrives_as_the_alerts_metric(webhook_service: ServiceProcess,
                                                  webhook_receiver: WebhookReceiver, tmp_path: Path) -> None:
    env = sdk_env(webhook_service, webhook_service.create_key("vision"), tmp_path)
    result = run_script("""
        import runwatch
        run = runwatch.init(id="chart1", name="chart-run")
        for step in range(20):
            runwatch.log({"val/acc": 0.9 - step * 0.04})
        runwatch.alert("Low acc", "val/acc fell", level="warning", wait_duration=0, chart="val/acc")
        run.alert("Plain", "no chart, as before", wait_duration=0)
        runwatch.alert("Typo", "a key the run never logged", wait_duration=0, chart="val/acc_typo")
        try:
            runwatch.alert("Bad", "x", chart="")
        except ValueError as error:
            print("REFUSED:", error)
        runwatch.finish()
    """, env)
    assert result.returncode == 0, result.stderr
    assert "REFUSED: alert chart must be a non-empty metric key" in result.stdout
    stored = {alert["title"]: alert for alert in stored_alerts(webhook_service, "chart1")}
    assert sorted(stored) == ["Low acc", "Plain", "Typo"]  # the refused call raised; nothing of it was sent
    assert {title: alert["metric"] for title, alert in stored.items()} == {
        "Low acc": "val/acc", "Plain": None, "Typo": "val/acc_typo"}  # a never-logged key keeps its alert
    assert stored["Low acc"]["step"] == 19 and stored["Low acc"]["source"] == "sdk"

    # Without chart the labels (and so the fingerprint, routing and silences) are what they always were;
    # with it, the `metric` label every alert with a metric has (SPEC §6).
    plain = {"alertname": "sdk", "source": "sdk", "severity": "info", "project": "vision", "run": "chart1",
             "run_name": "chart-run"}
    assert stored["Plain"]["labels"] == plain
    assert stored["Plain"]["fingerprint"] == fingerprint({**plain, "title": "Plain"})
    assert stored["Low acc"]["labels"] == {**plain, "severity": "warning", "metric": "val/acc"}

    def delivered() -> dict[str, dict[str, object]]:
        return {a["title"]: a for payload in webhook_receiver.payloads() for a in payload["alerts"]}

    webhook_service.wait_for(lambda: len(delivered()) >= 3, timeout=60)
    wait_until_all_delivered(webhook_service)
    sent = delivered()
    assert {title: alert["metric"] for title, alert in sent.items()} == {
        "Low acc": "val/acc", "Plain": None, "Typo": "val/acc_typo"}


@pytest.mark.parametrize(("chart", "message"), [
    (5, "Input should be a valid string"),
    ("", "at least 1 character"),
    ("k" * 301, "at most 300 characters"),
    (["val/acc"], "Input should be a valid string"),
])
def test_api_refuses_a_bad_chart_naming_the_field(service: ServiceProcess, chart: object, message: str) -> None:
    key = service.create_key("vision")
    run_id = f"api-{uuid.uuid4().hex[:8]}"
    assert service.api("POST", "/api/v1/runs", key=key, json={"project": "vision", "id": run_id}).status_code == 200
    response = service.api("POST", f"/api/v1/runs/vision/{run_id}/alerts", key=key, json={"alerts": [
        {"id": "a1", "title": "t", "timestamp": time.time(), "chart": chart}]})
    assert response.status_code == 422, response.text
    (error,) = response.json()["detail"]
    assert error["loc"] == ["body", "alerts", 0, "chart"] and message in error["msg"], error
    assert stored_alerts(service, run_id) == []


def test_chart_does_not_change_throttling(service: ServiceProcess) -> None:
    """The window is per (project, run, title), as before: another chart is not another alert."""
    key = service.create_key("vision")
    response = service.api("POST", "/api/v1/runs", key=key, json={"project": "vision", "id": "throttle1"})
    assert response.status_code == 200, response.text
    now = time.time()
    calls = [{"id": "c1", "title": "Low acc", "timestamp": now, "wait_duration": 60, "chart": "val/acc"},
             {"id": "c2", "title": "Low acc", "timestamp": now + 1, "wait_duration": 60, "chart": "val/loss"},
             {"id": "c3", "title": "Low acc", "timestamp": now + 2, "wait_duration": 60}]
    response = service.api("POST", "/api/v1/runs/vision/throttle1/alerts", key=key, json={"alerts": calls})
    assert response.status_code == 200, response.text
    assert [r["status"] for r in response.json()["results"]] == ["created", "suppressed", "suppressed"]
    assert [a["metric"] for a in stored_alerts(service, "throttle1")] == ["val/acc"]
