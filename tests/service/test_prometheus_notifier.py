"""A real Prometheus sends its alerts to Runwatch as to an Alertmanager (``alerting.alertmanagers``,
``api_version: v2``): they are delivered by Runwatch's routes and channels with ``source: prometheus``, and
resolve when Prometheus resolves them. Also: Runwatch's fingerprint of an alert is Alertmanager's own."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.support.prometheus import Alertmanager, Exporter, Prometheus, required_binary
from tests.support.receiver import ReceivedRequest, WebhookReceiver
from tests.support.service import ServiceProcess
from tests.support.waiting import eventually

GAUGE = "queue_depth"
RULES = [{"alert": "QueueDeep", "expr": f"{GAUGE} > 10", "for": "0s",
          "labels": {"severity": "critical", "team": "data"},
          "annotations": {"summary": "Queue is {{ $value }} deep",
                          "description": "{{ $labels.job }} has more than 10 items waiting",
                          "runbook_url": "https://runbooks.example/queue"}}]


@pytest.fixture
def exporter() -> Iterator[Exporter]:
    started = Exporter().start()
    started.set(GAUGE, 1)
    yield started
    started.stop()


@pytest.fixture
def prometheus_binary() -> str:
    return required_binary("prometheus")


@pytest.fixture
def prometheus(prometheus_binary: str) -> Iterator[Callable[..., Prometheus]]:
    started: list[Prometheus] = []

    def start(**kwargs: Any) -> Prometheus:
        server = Prometheus(prometheus_binary)
        started.append(server)
        return server.start(**kwargs)

    yield start
    for server in started:
        server.stop()


def _runwatch(service_factory: Callable[..., ServiceProcess], receiver: WebhookReceiver) -> ServiceProcess:
    # group_interval 1s: the resolved notification follows the firing one within a second (Alertmanager's rule).
    return service_factory({"channels": {"hook": {"type": "webhook", "url": receiver.url}},
                            "defaults": {"channels": ["hook"], "group_by": ["alertname"], "group_wait": "0s",
                                         "group_interval": "1s"},
                            "prometheus": {"project_label": "project", "default_project": "infra"}})


def _alerts_with(status: str) -> Callable[[list[ReceivedRequest]], bool]:
    return lambda requests: any(request.json()["status"] == status for request in requests)


def _fires_and_resolves(service: ServiceProcess, exporter: Exporter, receiver: WebhookReceiver,
                        key: str, project: str) -> None:
    exporter.set(GAUGE, 42)
    firing = receiver.wait_until(_alerts_with("firing"), timeout=120, what="the firing notification")
    alert = next(r.json() for r in firing if r.json()["status"] == "firing")["alerts"][0]
    assert alert["source"] == "prometheus"
    assert alert["title"] == "Queue is 42 deep"  # the summary annotation, rendered by Prometheus
    assert alert["text"] == "exporter has more than 10 items waiting"
    assert alert["severity"] == "critical"
    assert alert["project"] == project
    assert {k: alert["labels"][k] for k in ("alertname", "job", "team", "severity", "project", "source")} == {
        "alertname": "QueueDeep", "job": "exporter", "team": "data", "severity": "critical", "project": project,
        "source": "prometheus"}
    assert alert["annotations"]["runbook_url"] == "https://runbooks.example/queue"
    assert alert["generator_url"].startswith("http://")
    listed = service.api("GET", "/api/v1/alerts", key=key, params={"source": "prometheus"}).json()["alerts"]
    assert [(a["status"], a["title"]) for a in listed] == [("firing", "Queue is 42 deep")]

    exporter.set(GAUGE, 0)
    done = receiver.wait_until(_alerts_with("resolved"), timeout=120, what="the resolved notification")
    resolved = next(r.json() for r in done if r.json()["status"] == "resolved")["alerts"][0]
    assert resolved["id"] == alert["id"] and resolved["status"] == "resolved"
    assert resolved["resolved_reason"] == "resolved in Prometheus"
    assert [r.json()["status"] for r in done] == ["firing", "resolved"]  # resends told nobody again
    stored = service.api("GET", "/api/v1/alerts", key=key, params={"source": "prometheus"}).json()["alerts"]
    assert [a["status"] for a in stored] == ["resolved"]


def test_prometheus_with_basic_auth_and_an_admin_key(service_factory: Callable[..., ServiceProcess],
                                                     webhook_receiver: WebhookReceiver, exporter: Exporter,
                                                     prometheus: Callable[..., Prometheus]) -> None:
    """The key as the basic-auth password; no project label: the configured default project."""
    service = _runwatch(service_factory, webhook_receiver)
    prometheus(targets=[exporter.target], rules=RULES, alertmanagers=[{
        "api_version": "v2", "static_configs": [{"targets": [f"127.0.0.1:{service.port}"]}],
        "basic_auth": {"username": "prometheus", "password": service.admin_key}}])
    _fires_and_resolves(service, exporter, webhook_receiver, service.admin_key, "infra")


def test_prometheus_with_a_bearer_project_key(service_factory: Callable[..., ServiceProcess],
                                              webhook_receiver: WebhookReceiver, exporter: Exporter,
                                              prometheus: Callable[..., Prometheus]) -> None:
    """A project key as the bearer token; the rule's project label names the key's project."""
    service = _runwatch(service_factory, webhook_receiver)
    key = service.create_key("vision")
    rules = [{**RULES[0], "labels": {**RULES[0]["labels"], "project": "vision"}}]
    prometheus(targets=[exporter.target], rules=rules, alertmanagers=[{
        "api_version": "v2", "static_configs": [{"targets": [f"127.0.0.1:{service.port}"]}],
        "authorization": {"type": "Bearer", "credentials": key}}])
    _fires_and_resolves(service, exporter, webhook_receiver, key, "vision")


def test_the_fingerprint_is_alertmanagers(service_factory: Callable[..., ServiceProcess],
                                          webhook_receiver: WebhookReceiver) -> None:
    """The same alert posted to a real Alertmanager and to Runwatch has the same fingerprint in both."""
    manager = Alertmanager(required_binary("prometheus-alertmanager"))
    try:
        manager.start(webhook_url=webhook_receiver.url, group_by=["alertname"])
        service = _runwatch(service_factory, webhook_receiver)
        alerts = [{"labels": {"alertname": "DiskFull", "instance": "db-1:9100", "mountpoint": "/var/lib/ü",
                              "severity": "warning"}, "annotations": {"summary": "Disk full"}},
                  {"labels": {"alertname": "Up", "job": "a"}}]
        assert httpx.post(f"{manager.url}/api/v2/alerts", json=alerts, timeout=30).status_code == 200
        assert service.api("POST", "/api/v2/alerts", json=alerts).status_code == 200
        theirs = eventually(lambda: httpx.get(f"{manager.url}/api/v2/alerts", timeout=30).json(),
                            lambda found: len(found) == 2, what="Alertmanager's two alerts")
        ours = service.api("GET", "/api/v2/alerts").json()
        assert sorted((a["labels"]["alertname"], a["fingerprint"]) for a in theirs) == \
            sorted((a["labels"]["alertname"], a["fingerprint"]) for a in ours)
    finally:
        manager.stop()
