"""Explicit alerts through the outbox to a real webhook receiver: payload, signature, retries, restarts."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid

from tests.support.receiver import WebhookReceiver
from tests.support.service import ServiceProcess

SECRET = "test-signing-secret"


def start_run(service: ServiceProcess, key: str, run_id: str = "r1") -> None:
    response = service.api("POST", "/api/v1/runs", key=key,
                           json={"project": "vision", "id": run_id, "name": "exp-1"})
    assert response.status_code == 200, response.text


def send_alerts(service: ServiceProcess, key: str, calls: list[dict[str, object]],
                run_id: str = "r1") -> list[dict[str, object]]:
    response = service.api("POST", f"/api/v1/runs/vision/{run_id}/alerts", key=key, json={"alerts": calls})
    assert response.status_code == 200, response.text
    return list(response.json()["results"])


def call(title: str = "Low accuracy", *, at: float | None = None, wait: float = 60.0,
         level: str = "warning") -> dict[str, object]:
    return {"id": uuid.uuid4().hex, "title": title, "text": "accuracy 0.1 below 0.3", "level": level,
            "wait_duration": wait, "timestamp": time.time() if at is None else at, "step": 7}


def verify_signature(header: str, body: bytes) -> None:
    parts = dict(part.split("=", 1) for part in header.split(","))
    expected = hmac.new(SECRET.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(parts["v1"], expected)
    assert abs(int(parts["t"]) - time.time()) < 60


def test_payload_signature_and_delivery_id(webhook_service: ServiceProcess, webhook_receiver: WebhookReceiver) -> None:
    key = webhook_service.create_key("vision")
    start_run(webhook_service, key)
    (result,) = send_alerts(webhook_service, key, [call(level="error")])
    assert result["status"] == "created"
    (request,) = webhook_receiver.wait_for(1)
    verify_signature(request.headers["X-Runwatch-Signature"], request.body)
    uuid.UUID(request.headers["X-Runwatch-Delivery"])
    assert request.headers["Content-Type"] == "application/json"
    payload = request.json()
    assert payload["version"] == "1" and payload["status"] == "firing" and payload["receiver"] == "hook"
    assert payload["truncated_alerts"] == 0
    assert payload["group_labels"] == {"project": "vision", "run": "r1", "rule": ""}
    (alert,) = payload["alerts"]
    assert alert["id"] == result["alert_id"]
    assert alert["source"] == "sdk" and alert["title"] == "Low accuracy" and alert["severity"] == "error"
    assert alert["labels"] == {"alertname": "sdk", "source": "sdk", "severity": "error", "project": "vision",
                               "run": "r1", "run_name": "exp-1"}
    assert alert["run"]["id"] == "r1" and alert["run"]["name"] == "exp-1" and alert["run"]["state"] == "running"
    assert alert["run"]["url"].endswith("/runs/vision/r1") and alert["step"] == 7
    assert alert["starts_at"].endswith("Z") and alert["ends_at"] is None
    # The console channel got its line in the service log too.
    webhook_service.wait_for(lambda: "Low accuracy" in webhook_service.log_text(), timeout=10)


def test_throttle_window_counts_suppressed(webhook_service: ServiceProcess, webhook_receiver: WebhookReceiver) -> None:
    key = webhook_service.create_key("vision")
    start_run(webhook_service, key)
    start = 1_800_000_000.0
    statuses = []
    for chunk in range(10):  # 10,000 identical calls inside the 60 s window, in batches like the SDK's
        calls = [call(at=start + (chunk * 1000 + i) * 0.001) for i in range(1000)]
        statuses += [r["status"] for r in send_alerts(webhook_service, key, calls)]
    assert statuses.count("created") == 1 and statuses.count("suppressed") == 9999
    webhook_receiver.wait_for(1)
    time.sleep(0.5)
    assert len(webhook_receiver.requests) == 1
    (after,) = send_alerts(webhook_service, key, [call(at=start + 61)])
    assert after["status"] == "created"
    alert = webhook_receiver.wait_for(2)[1].json()["alerts"][0]
    assert alert["suppressed_count"] == 9999
    zero = [call("no throttle", at=start + 100, wait=0) for _ in range(3)]
    assert [r["status"] for r in send_alerts(webhook_service, key, zero)] == ["created"] * 3
    (third,) = webhook_receiver.wait_for(3)[2:]  # arriving together, the three share one message
    assert [a["title"] for a in third.json()["alerts"]] == ["no throttle"] * 3
    # A retried request (same client ids) is recognised and never delivered twice.
    assert {r["status"] for r in send_alerts(webhook_service, key, zero)} == {"duplicate"}
    time.sleep(0.5)
    assert len(webhook_receiver.requests) == 3


def test_retries_5xx_and_429_with_a_stable_delivery_id(webhook_service: ServiceProcess,
                                                       webhook_receiver: WebhookReceiver) -> None:
    key = webhook_service.create_key("vision")
    start_run(webhook_service, key)
    webhook_receiver.failures = [(500, {}), (503, {}), (429, {"Retry-After": "1"})]
    send_alerts(webhook_service, key, [call()])
    (request,) = webhook_receiver.wait_for(1, timeout=30)
    assert webhook_receiver.failures == []
    notifications = webhook_service.api("GET", "/api/v1/notifications?status=delivered").json()["notifications"]
    hook = [n for n in notifications if n["channel"] == "hook"]
    assert hook[0]["id"] == request.headers["X-Runwatch-Delivery"]
    assert hook[0]["attempts"] == 4


def test_permanent_4xx_is_recorded_not_retried(webhook_service: ServiceProcess,
                                               webhook_receiver: WebhookReceiver) -> None:
    key = webhook_service.create_key("vision")
    start_run(webhook_service, key)
    webhook_receiver.failures = [(404, {})]
    send_alerts(webhook_service, key, [call()])

    def failed() -> list[dict[str, object]]:
        return list(webhook_service.api("GET", "/api/v1/notifications?status=failed").json()["notifications"])

    (notification,) = webhook_service.wait_for(failed, timeout=20)
    assert notification["attempts"] == 1
    assert "HTTP 404" in str(notification["last_error"])
    time.sleep(1.0)
    assert webhook_receiver.requests == []


def test_receiver_down_then_up_and_service_restart_loses_nothing(service_factory,  # type: ignore[no-untyped-def]
                                                                  webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.stop()  # connection refused until it comes back
    service = service_factory({
        "channels": {"hook": {"type": "webhook", "url": webhook_receiver.url, "secret": SECRET}},
        "defaults": {"channels": ["hook"]},
        "delivery": {"initial_backoff": "100ms", "max_backoff": "1s"},
    })
    key = service.create_key("vision")
    results = []
    for i in range(50):  # one group (and so one notification) per run
        start_run(service, key, f"r{i}")
        results += send_alerts(service, key, [call(f"alert {i}", wait=0)], run_id=f"r{i}")
    assert {r["status"] for r in results} == {"created"}
    time.sleep(1.0)
    service.kill()  # kill -9 with 50 notifications pending
    webhook_receiver.start()
    service.start()
    requests = webhook_receiver.wait_for(50, timeout=60)
    time.sleep(1.0)
    titles = sorted(r.json()["alerts"][0]["title"] for r in webhook_receiver.requests)
    assert titles == sorted(f"alert {i}" for i in range(50))
    assert len({r.headers["X-Runwatch-Delivery"] for r in requests}) == 50
    for request in requests:
        verify_signature(request.headers["X-Runwatch-Signature"], request.body)


def test_secrets_never_reach_logs_or_responses(webhook_service: ServiceProcess,
                                               webhook_receiver: WebhookReceiver) -> None:
    key = webhook_service.create_key("vision")
    start_run(webhook_service, key)
    webhook_receiver.failures = [(500, {})]
    send_alerts(webhook_service, key, [call()])
    webhook_receiver.wait_for(1)
    everything = webhook_service.api("GET", "/api/v1/notifications").text
    everything += webhook_service.api("GET", "/api/v1/alerts?project=vision").text
    everything += webhook_service.api("GET", "/api/v1/runs/vision/r1").text
    everything += webhook_service.log_text()
    for secret in (SECRET, key, webhook_service.admin_key):
        assert secret not in everything


def test_a_slow_channel_never_delays_the_others_and_keeps_its_concurrency(  # type: ignore[no-untyped-def]
        service_factory, webhook_receiver: WebhookReceiver) -> None:
    slow = WebhookReceiver().start()
    slow.delay = 1.0
    try:
        service = service_factory({
            "channels": {"fast": {"type": "webhook", "url": webhook_receiver.url},
                         "slow": {"type": "webhook", "url": slow.url, "concurrency": 2}},
            "defaults": {"channels": ["fast", "slow"], "group_wait": "0s"}})
        key = service.create_key("vision")
        started = time.monotonic()
        for run in ("r1", "r2", "r3", "r4", "r5", "r6"):  # six runs: six groups, six notifications per channel
            start_run(service, key, run)
            send_alerts(service, key, [call(f"alert of {run}")], run_id=run)
        webhook_receiver.wait_for(6, timeout=20)
        fast_done = time.monotonic() - started
        slow.wait_for(6, timeout=30)
        slow_done = time.monotonic() - started
        assert slow.max_in_flight == 2  # its own concurrency, not delivery.concurrency
        assert slow_done >= 3.0 and fast_done < slow_done - 1.0  # three rounds of 1 s vs. not waiting on them
    finally:
        slow.stop()
