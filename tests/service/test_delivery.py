"""Explicit alerts through the outbox to a real webhook receiver: payload, signature, retries, restarts."""

from __future__ import annotations

import hashlib
import hmac
import time
import uuid
from collections.abc import Callable

from tests.support.outbox import notifications, wait_for_status, wait_settled
from tests.support.receiver import ReceivedRequest, WebhookReceiver
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


def alert_ids(request: ReceivedRequest) -> list[str]:
    return [alert["id"] for alert in request.json()["alerts"]]


def carrying(alert_id: str) -> Callable[[list[ReceivedRequest]], bool]:
    """A receiver predicate: some request carries the alert ``alert_id``."""
    return lambda requests: any(alert_id in alert_ids(request) for request in requests)


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
    line = "[FIRING] error vision/exp-1 sdk: Low accuracy — accuracy 0.1 below 0.3 [delivery "
    webhook_service.wait_for(lambda: line in webhook_service.log_text(), timeout=30)


def test_throttle_window_counts_suppressed(webhook_service: ServiceProcess, webhook_receiver: WebhookReceiver) -> None:
    key = webhook_service.create_key("vision")
    start_run(webhook_service, key)
    start = 1_800_000_000.0
    statuses = []
    for chunk in range(10):  # 10,000 identical calls inside the 60 s window, in batches like the SDK's
        calls = [call(at=start + (chunk * 1000 + i) * 0.001) for i in range(1000)]
        statuses += [r["status"] for r in send_alerts(webhook_service, key, calls)]
    assert statuses.count("created") == 1 and statuses.count("suppressed") == 9999
    (first,) = webhook_receiver.wait_for(1)
    (after,) = send_alerts(webhook_service, key, [call(at=start + 61)])
    assert after["status"] == "created"
    webhook_receiver.wait_until(carrying(str(after["alert_id"])), what="the first alert after the window")
    # The 9,999 suppressed calls were sent as nothing of their own: the next message is the next window's
    # alert, which carries their count.
    assert len(wait_settled(webhook_service, ["hook"], count=2)) == 2
    assert len(webhook_receiver.requests) == 2 and webhook_receiver.requests[0] is first
    second = webhook_receiver.requests[1]
    assert alert_ids(second) == [after["alert_id"]]
    assert second.json()["alerts"][0]["suppressed_count"] == 9999
    zero = [call("no throttle", at=start + 100, wait=0) for _ in range(3)]
    created = send_alerts(webhook_service, key, zero)
    assert [r["status"] for r in created] == ["created"] * 3
    (third,) = webhook_receiver.wait_until(carrying(str(created[0]["alert_id"])))[2:]
    assert sorted(alert_ids(third)) == sorted(r["alert_id"] for r in created)  # arriving together: one message
    # A retried request (same client ids) is recognised and never delivered twice: the next alert is the
    # next message.
    assert {r["status"] for r in send_alerts(webhook_service, key, zero)} == {"duplicate"}
    (marker,) = send_alerts(webhook_service, key, [call("marker", at=start + 200, wait=0)])
    webhook_receiver.wait_until(carrying(str(marker["alert_id"])), what="the marker alert")
    assert len(wait_settled(webhook_service, ["hook"], count=4)) == 4
    assert len(webhook_receiver.requests) == 4 and alert_ids(webhook_receiver.requests[3]) == [marker["alert_id"]]


def test_retries_5xx_and_429_with_a_stable_delivery_id(webhook_service: ServiceProcess,
                                                       webhook_receiver: WebhookReceiver) -> None:
    key = webhook_service.create_key("vision")
    start_run(webhook_service, key)
    webhook_receiver.failures = [(500, {}), (503, {}), (429, {"Retry-After": "1"})]
    send_alerts(webhook_service, key, [call()])
    (request,) = webhook_receiver.wait_for(1, timeout=30)
    assert webhook_receiver.failures == [] and len(webhook_receiver.rejected) == 3
    assert {r.headers["X-Runwatch-Delivery"] for r in webhook_receiver.rejected} == {
        request.headers["X-Runwatch-Delivery"]}
    # Marked delivered only once the answer came back and the outcome was written: wait for that state.
    delivered = wait_for_status(webhook_service, request.headers["X-Runwatch-Delivery"], "delivered")
    assert delivered["channel"] == "hook" and delivered["attempts"] == 4


def test_permanent_4xx_is_recorded_not_retried(webhook_service: ServiceProcess,
                                               webhook_receiver: WebhookReceiver) -> None:
    key = webhook_service.create_key("vision")
    start_run(webhook_service, key)
    webhook_receiver.failures = [(404, {})]
    (first,) = send_alerts(webhook_service, key, [call()])

    def failed() -> list[dict[str, object]]:
        return list(webhook_service.api("GET", "/api/v1/notifications?status=failed").json()["notifications"])

    (notification,) = webhook_service.wait_for(failed, timeout=30)
    assert notification["attempts"] == 1 and notification["channel"] == "hook"
    assert "HTTP 404" in str(notification["last_error"])
    # Not retried: a later alert's notification, itself retried once (so the retry stage took its turn
    # after the failure), gets through, and it is all the receiver accepted.
    webhook_receiver.failures = [(500, {})]
    (marker,) = send_alerts(webhook_service, key, [call("marker", wait=0)])
    (request,) = webhook_receiver.wait_until(carrying(str(marker["alert_id"])), what="the marker alert")
    assert wait_for_status(webhook_service, request.headers["X-Runwatch-Delivery"], "delivered")["attempts"] == 2
    assert [alert_ids(r) for r in webhook_receiver.rejected] == [[first["alert_id"]], [marker["alert_id"]]]
    assert webhook_receiver.requests == [request]
    (still,) = [n for n in notifications(webhook_service, status="failed") if n["id"] == notification["id"]]
    assert still["attempts"] == 1


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

    def all_tried() -> bool:
        queued = notifications(service, channels=["hook"])
        return len(queued) == 50 and all(n["status"] == "pending" and n["attempts"] >= 1 for n in queued)

    service.wait_for(all_tried, timeout=60, interval=0.2)
    service.kill()  # kill -9 with 50 notifications pending
    webhook_receiver.start()
    service.start()
    # Notifications the killed process had claimed are re-sent once their lease (delivery.timeout + 30 s)
    # runs out: allow for that on top of a slow machine.
    webhook_receiver.wait_for(50, timeout=150)
    assert {n["status"] for n in wait_settled(service, ["hook"], count=50, timeout=60)} == {"delivered"}
    requests = list(webhook_receiver.requests)
    titles = sorted(r.json()["alerts"][0]["title"] for r in requests)
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
    (request,) = webhook_receiver.wait_for(1)
    wait_for_status(webhook_service, request.headers["X-Runwatch-Delivery"], "delivered")
    assert "to hook failed (attempt 1), retrying in" in webhook_service.log_text()  # the error path ran
    everything = webhook_service.api("GET", "/api/v1/notifications").text
    everything += webhook_service.api("GET", "/api/v1/alerts?project=vision").text
    everything += webhook_service.api("GET", "/api/v1/runs/vision/r1").text
    everything += webhook_service.log_text()
    for secret in (SECRET, key, webhook_service.admin_key):
        assert secret not in everything


def test_a_slow_channel_never_delays_the_others_and_keeps_its_concurrency(  # type: ignore[no-untyped-def]
        service_factory, webhook_receiver: WebhookReceiver) -> None:
    slow = WebhookReceiver().start()
    slow.hold()  # the slow channel's receiver answers nothing until the test says so
    try:
        service = service_factory({
            "channels": {"fast": {"type": "webhook", "url": webhook_receiver.url},
                         "slow": {"type": "webhook", "url": slow.url, "concurrency": 2}},
            "defaults": {"channels": ["fast", "slow"], "group_wait": "0s"},
            "delivery": {"timeout": "120s"}})  # held requests must not time out and be retried
        key = service.create_key("vision")
        for run in ("r1", "r2", "r3", "r4", "r5", "r6"):  # six runs: six groups, six notifications per channel
            start_run(service, key, run)
            send_alerts(service, key, [call(f"alert of {run}")], run_id=run)
        # All six reach the fast channel while the slow one has answered none.
        webhook_receiver.wait_for(6, timeout=30)
        service.wait_for(lambda: slow.in_flight >= 2, timeout=30)
        assert slow.in_flight == 2  # held: neither of its two slots answered yet
        slow.release()
        slow.wait_for(6, timeout=30)
        assert slow.max_in_flight == 2  # its own concurrency, not delivery.concurrency
        assert sorted(r.json()["alerts"][0]["title"] for r in slow.requests) == [
            f"alert of r{i}" for i in range(1, 7)]
    finally:
        slow.stop()
