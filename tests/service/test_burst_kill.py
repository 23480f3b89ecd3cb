"""kill -9 in the middle of a burst of batches: every acknowledged point and every alert it caused survive.

A 2xx from the records endpoint promises the batch is durable (the storage writer answers after COMMIT)
and judged (its alerts saved). Clients post SDK-shaped batches for many runs at once; the service is
killed while they post; after a restart every acknowledged batch reads back whole, and every run whose
crossing was acknowledged has its alert, delivered to the webhook.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import orjson
import pytest
import yaml

from tests.support.receiver import WebhookReceiver
from tests.support.service import ServiceProcess

pytestmark = pytest.mark.both_backends  # their services run on SQLite, then on PostgreSQL

RUNS = 24
KEYS = [f"m{i}" for i in range(18)] + ["loss", "acc"]
STEPS = 10  # per batch: 10 steps x 20 keys = 200 points, as the SDK batches
CROSSING_BATCH = 3  # the batch whose loss crosses the rule's threshold


def _body(batch: int) -> bytes:
    records = []
    for row in range(STEPS):
        step = batch * STEPS + row
        data = {key: (step % 13) / 13 for key in KEYS}
        data["loss"] = 5.0 if batch >= CROSSING_BATCH else 0.5
        records.append({"seq": step + 1, "type": "history", "step": step, "timestamp": time.time(),
                        "runtime": step * 0.01, "data": data})
    return orjson.dumps({"records": records})


@pytest.mark.timeout(600)
def test_kill_9_during_a_burst_loses_no_acknowledged_point_or_alert(
        tmp_path: Path, service_factory: Callable[..., ServiceProcess], webhook_receiver: WebhookReceiver) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"rules": [{"name": "loss-high", "metric": "loss", "when": "> 2"}]}))
    service = service_factory({
        "rule_files": [str(rules)],
        "channels": {"hook": {"type": "webhook", "url": webhook_receiver.url}},
        "defaults": {"channels": ["hook"], "group_by": ["run"], "group_wait": "0s"},
    })
    key = service.create_key("burst")
    headers = {"Authorization": f"Bearer {key}"}
    runs = [f"b{i}" for i in range(RUNS)]
    for run in runs:
        service.api("POST", "/api/v1/runs", key=key, json={"project": "burst", "id": run}).raise_for_status()
    acked = dict.fromkeys(runs, 0)  # per run: batches acknowledged (each run's batches go in order)
    stop = threading.Event()

    def client(mine: list[str]) -> None:
        with httpx.Client(base_url=service.base_url, headers=headers, timeout=10) as http:
            for batch in range(10_000):
                for run in mine:
                    if stop.is_set():
                        return
                    try:
                        response = http.post(f"/api/v1/runs/burst/{run}/records", content=_body(batch))
                    except httpx.TransportError:
                        return  # the service is gone: this batch was not acknowledged
                    if response.status_code != 200:
                        return
                    acked[run] = batch + 1

    threads = [threading.Thread(target=client, args=(runs[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    # Kill while batches are in flight: once every run is past its crossing and some are further on.
    service.wait_for(lambda: min(acked.values()) > CROSSING_BATCH + 1, timeout=180)
    service.kill()
    stop.set()
    for thread in threads:
        thread.join(timeout=60)
    service.start()

    total = 0
    for run in runs:
        answer = service.api("GET", f"/api/v1/runs/burst/{run}", key=key).json()
        assert answer["last_seq"] >= acked[run] * STEPS, run  # an unacknowledged batch may have landed too
        rows = service.api("GET", f"/api/v1/runs/burst/{run}/history", key=key,
                           params={"limit": 100_000}).json()["rows"]
        by_step = {row["_step"]: row for row in rows}
        for step in range(acked[run] * STEPS):
            assert step in by_step, (run, step)
            assert all(name in by_step[step] for name in KEYS), (run, step)
        total += acked[run] * STEPS * len(KEYS)
    print(f"kill -9 during a burst: {total:,} acknowledged points, all read back")

    firing = service.api("GET", "/api/v1/alerts", key=key, params={"status": "firing", "limit": 1000}).json()
    assert {alert["labels"]["run"] for alert in firing["alerts"]} == set(runs)
    webhook_receiver.wait_for(RUNS, timeout=120)
    notified = {alert["labels"]["run"] for request in webhook_receiver.requests for alert in request.json()["alerts"]}
    assert notified == set(runs)
