"""Reliability and storm control against real processes (bounded in count and time)."""

from __future__ import annotations

import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest

from tests.support.outbox import wait_settled
from tests.support.receiver import WebhookReceiver
from tests.support.service import ServiceProcess

pytestmark = pytest.mark.both_backends  # their services run on SQLite, then on PostgreSQL


def _alert_every_run(service: ServiceProcess, runs: int) -> None:
    key = service.create_key("vision")
    headers = {"Authorization": f"Bearer {key}"}
    with httpx.Client(base_url=service.base_url, headers=headers, timeout=60) as client:

        def alert(i: int) -> None:  # one run each, so one group and one notification each
            client.post("/api/v1/runs", json={"project": "vision", "id": f"r{i}"}).raise_for_status()
            client.post(f"/api/v1/runs/vision/r{i}/alerts", json={"alerts": [{
                "id": uuid.uuid4().hex, "title": f"alert {i}", "text": "x", "wait_duration": 0,
                "timestamp": time.time()}]}).raise_for_status()

        with ThreadPoolExecutor(max_workers=8) as pool:  # eight clients at once, like bench/notify.py's
            list(pool.map(alert, range(runs)))


@pytest.mark.timeout(900)  # its own deadlines (posting, the lease a kill leaves, delivery) come first
def test_thousand_pending_notifications_survive_kill_9(service_factory: Callable[..., ServiceProcess],
                                                       webhook_receiver: WebhookReceiver) -> None:
    webhook_receiver.stop()  # the receiver is down: everything stays pending
    service = service_factory({
        "channels": {"hook": {"type": "webhook", "url": webhook_receiver.url}},
        "defaults": {"channels": ["hook"]},
        "delivery": {"initial_backoff": "200ms", "max_backoff": "1s"},
    })
    _alert_every_run(service, 1000)

    def pending() -> int:
        return len(service.api("GET", "/api/v1/notifications?status=pending&limit=5000").json()["notifications"])

    # Groups flush on the dispatcher's own task, just after the last POST returned: wait for all 1,000.
    service.wait_for(lambda: pending() == 1000, timeout=60)
    service.kill()
    webhook_receiver.start()
    service.start()
    webhook_receiver.wait_for(1000, timeout=240)  # claims of the killed process wait out their 40 s lease
    # Settled: every notification is recorded delivered, so every request it took has been received.
    assert {n["status"] for n in wait_settled(service, ["hook"], count=1000, timeout=120)} == {"delivered"}
    deliveries = Counter(r.headers["X-Runwatch-Delivery"] for r in webhook_receiver.requests)
    titles = Counter(r.json()["alerts"][0]["title"] for r in webhook_receiver.requests)
    duplicates = sum(count - 1 for count in deliveries.values())
    print(f"1,000 pending notifications after kill -9: {len(deliveries)} delivered, {duplicates} duplicates")
    assert set(titles) == {f"alert {i}" for i in range(1000)}
    assert duplicates == 0
    delivered = service.api("GET", "/api/v1/notifications?status=delivered&limit=5000").json()["notifications"]
    assert len(delivered) == 1000


def test_rate_limit_spaces_a_storm_without_dropping(service_factory: Callable[..., ServiceProcess],
                                                    webhook_receiver: WebhookReceiver) -> None:
    service = service_factory({
        "channels": {"hook": {"type": "webhook", "url": webhook_receiver.url,
                              "rate_limit": {"rate": 2, "per": "1s", "burst": 2}}},
        "defaults": {"channels": ["hook"]},
    })
    _alert_every_run(service, 8)
    webhook_receiver.wait_for(8, timeout=60)
    assert {n["status"] for n in wait_settled(service, ["hook"], count=8)} == {"delivered"}
    requests = list(webhook_receiver.requests)
    assert sorted(r.json()["alerts"][0]["title"] for r in requests) == sorted(f"alert {i}" for i in range(8))
    # 2 at once, then about 2 per second: the last of 8 cannot arrive within 2 s of the first (a lower
    # bound, taken when each request arrived: a slow machine only spaces them more).
    arrivals = sorted(r.received_at for r in requests)
    assert arrivals[-1] - arrivals[0] >= 2.0


def test_hundreds_of_alerts_in_one_group_are_one_message(service_factory: Callable[..., ServiceProcess],
                                                         webhook_receiver: WebhookReceiver) -> None:
    service = service_factory({
        "channels": {"hook": {"type": "webhook", "url": webhook_receiver.url, "max_alerts": 5}},
        "defaults": {"channels": ["hook"], "group_by": ["project"], "group_wait": "2s"},
    })
    key = service.create_key("vision")
    service.api("POST", "/api/v1/runs", key=key, json={"project": "vision", "id": "r1"}).raise_for_status()
    service.api("POST", "/api/v1/runs/vision/r1/alerts", key=key, json={"alerts": [
        {"id": uuid.uuid4().hex, "title": f"alert {i}", "wait_duration": 0, "timestamp": time.time()}
        for i in range(300)]}).raise_for_status()
    (request,) = webhook_receiver.wait_for(1, timeout=30)
    # The 300 came in one request, so one flush: the notification it queued is the only one.
    assert len(wait_settled(service, ["hook"], count=1)) == 1 and len(webhook_receiver.requests) == 1
    payload = request.json()
    assert len(payload["alerts"]) == 5 and payload["truncated_alerts"] == 295
