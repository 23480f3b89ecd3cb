"""The plain webhook's ``format: alertmanager``: a Prometheus alert keeps the annotations and the
generatorURL Prometheus posted, as Alertmanager's own payload would carry them."""

from __future__ import annotations

from typing import Any

from alerts.model import Notification
from alerts.notify.channels.webhook import alertmanager_payload


def _alert(**extra: Any) -> dict[str, Any]:
    return {"status": "firing", "labels": {"alertname": "QueueDeep", "project": "infra"}, "title": "Queue is 42 deep",
            "text": "exporter has more than 10 items waiting", "starts_at": "2026-12-03T10:00:00Z", "ends_at": None,
            "url": "http://dash/alerts/a1", "fingerprint": "0123456789abcdef", "metric": None, "value": None,
            "threshold": None, "step": None, "resolved_reason": None, **extra}


def _payload(*alerts: dict[str, Any]) -> dict[str, Any]:
    notification = Notification(id="d1", channel="am", group_key='{}:{alertname="QueueDeep"}',
                                message={"status": "firing", "group_labels": {"alertname": "QueueDeep"},
                                         "alerts": list(alerts)})
    return alertmanager_payload("am", notification, list(alerts), 0, "http://dash")


def test_a_prometheus_alert_keeps_its_annotations_and_generator_url() -> None:
    posted = {"summary": "Queue is 42 deep", "description": "exporter has more than 10 items waiting",
              "runbook_url": "https://runbooks.example/queue"}
    payload = _payload(_alert(annotations=posted, generator_url="http://prometheus:9090/graph?g0.expr=x"))
    (alert,) = payload["alerts"]
    assert alert["annotations"] == posted and payload["commonAnnotations"] == posted
    assert alert["generatorURL"] == "http://prometheus:9090/graph?g0.expr=x"
    assert alert["endsAt"] == "0001-01-01T00:00:00Z"


def test_a_rule_alert_links_to_the_dashboard_and_describes_its_value() -> None:
    payload = _payload(_alert(metric="train/loss", value=12.5, threshold=5.0, step=120))
    (alert,) = payload["alerts"]
    assert alert["generatorURL"] == "http://dash/alerts/a1"
    assert alert["annotations"] == {"summary": "Queue is 42 deep", "description": "exporter has more than 10 items "
                                    "waiting", "metric": "train/loss", "value": "12.5", "threshold": "5.0",
                                    "step": "120"}
