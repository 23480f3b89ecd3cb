"""``GET /metrics``: what the service did, in Prometheus' format, scraped by a real Prometheus server."""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml
from prometheus_client.parser import text_string_to_metric_families

from tests.support.ports import free_port
from tests.support.receiver import WebhookReceiver
from tests.support.service import ServiceProcess
from tests.support.waiting import eventually

pytestmark = pytest.mark.both_backends  # the database's gauges are read from either backend

RULES = """
rules:
  - name: loss-high
    metric: loss
    when: "> 5"
"""
STEPS = 30


def samples(service: ServiceProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of ``/metrics`` (no key needed, as with Alertmanager), by name and labels."""
    response = httpx.get(f"{service.base_url}/metrics", timeout=30)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


@pytest.fixture
def metered(service_factory: Callable[..., ServiceProcess], webhook_receiver: WebhookReceiver,
            tmp_path: Path) -> ServiceProcess:
    """A service with one threshold rule whose alerts go to a webhook, after a run logged ``STEPS`` steps
    of two metrics, and whose loss crossed the threshold once (one alert, one notification)."""
    (tmp_path / "rules.yaml").write_text(RULES)
    service = service_factory({"rule_files": [str(tmp_path / "rules.yaml")],
                               "channels": {"hook": {"type": "webhook", "url": webhook_receiver.url}},
                               "defaults": {"channels": ["hook"], "group_wait": "0s"}})
    key = service.create_key("vision")
    assert service.api("POST", "/api/v1/runs", key=key, json={"project": "vision", "id": "r1"}).status_code == 200
    records = [{"seq": step + 1, "type": "history", "step": step, "timestamp": time.time(),
                "data": {"loss": 9.0 if step == STEPS - 1 else 1.0, "acc": 0.5}} for step in range(STEPS)]
    for first in range(0, STEPS, 10):
        response = service.api("POST", "/api/v1/runs/vision/r1/records", key=key,
                               json={"records": records[first:first + 10]})
        assert response.status_code == 200, response.text
    webhook_receiver.wait_for(1)
    return service


def test_metrics_count_points_evaluations_alerts_and_deliveries(metered: ServiceProcess) -> None:
    found = eventually(lambda: samples(metered),
                       lambda s: s.get(("runwatch_notification_attempts_total",
                                        (("channel", "hook"), ("outcome", "delivered")))) == 1.0,
                       what="the delivered notification counted")
    assert found[("runwatch_points_ingested_total", ())] == 2 * STEPS
    assert found[("runwatch_record_batches_total", ())] == STEPS // 10
    assert found[("runwatch_evaluation_seconds_count", ())] == STEPS // 10
    assert found[("runwatch_evaluation_seconds_sum", ())] > 0
    assert found[("runwatch_alerts", (("state", "firing"),))] == 1
    assert found[("runwatch_alerts", (("state", "resolved"),))] == 0
    assert found[("runwatch_outbox_pending", ())] == 0
    assert found[("runwatch_outbox_oldest_pending_age_seconds", ())] == 0
    assert found[("runwatch_dispatch_leader", ())] == 1


def test_a_pending_notification_shows_in_the_outbox_gauges(service_factory: Callable[..., ServiceProcess],
                                                            tmp_path: Path) -> None:
    """A webhook that refuses: the notification waits in the outbox, its age grows, the retry is counted."""
    refusing = f"http://127.0.0.1:{free_port()}/nobody-listens"
    service = service_factory({"channels": {"hook": {"type": "webhook", "url": refusing}},
                               "defaults": {"channels": ["hook"], "group_wait": "0s"}})
    key = service.create_key("vision")
    assert service.api("POST", "/api/v1/runs", key=key, json={"project": "vision", "id": "r1"}).status_code == 200
    call = {"id": "c1", "title": "Diverged", "text": "loss is NaN", "level": "error", "wait_duration": 0,
            "timestamp": time.time()}
    assert service.api("POST", "/api/v1/runs/vision/r1/alerts", key=key, json={"alerts": [call]}).status_code == 200
    found = eventually(lambda: samples(service),
                       lambda s: s.get(("runwatch_notification_attempts_total",
                                        (("channel", "hook"), ("outcome", "retry"))), 0) >= 1
                       and s[("runwatch_outbox_oldest_pending_age_seconds", ())] > 0,
                       what="a retried notification waiting in the outbox")
    assert found[("runwatch_outbox_pending", ())] == 1


@pytest.fixture
def prometheus() -> Iterator[Callable[[str], tuple[str, int]]]:
    """Start Debian's ``prometheus`` scraping a target every second; yields ``start(target)`` -> its URL."""
    binary = shutil.which("prometheus")
    if binary is None:
        if os.environ.get("RUNWATCH_REQUIRE_PROMETHEUS") == "1":
            pytest.fail("RUNWATCH_REQUIRE_PROMETHEUS=1 but no prometheus binary is installed")
        pytest.skip("prometheus is not installed")
    folder = Path(tempfile.mkdtemp(prefix="runwatch-prometheus-"))
    processes: list[subprocess.Popen[bytes]] = []

    def start(target: str) -> tuple[str, int]:
        config = {"global": {"scrape_interval": "1s", "scrape_timeout": "1s"},
                  "scrape_configs": [{"job_name": "runwatch", "static_configs": [{"targets": [target]}]}]}
        (folder / "prometheus.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        log = (folder / "prometheus.log").open("ab")
        processes.append(subprocess.Popen(
            [binary, f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}"], stdout=log, stderr=subprocess.STDOUT, cwd=folder))
        return f"http://127.0.0.1:{port}", port

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            process.kill()
    shutil.rmtree(folder, ignore_errors=True)


def test_a_real_prometheus_scrapes_the_service(metered: ServiceProcess,
                                               prometheus: Callable[[str], tuple[str, int]]) -> None:
    url, _port = prometheus(f"127.0.0.1:{metered.port}")

    def query(expression: str) -> list[dict[str, object]]:
        try:
            response = httpx.get(f"{url}/api/v1/query", params={"query": expression}, timeout=5)
        except httpx.TransportError:  # still starting
            return []
        return list(response.json()["data"]["result"]) if response.status_code == 200 else []

    ingested = eventually(lambda: query("runwatch_points_ingested_total"), lambda result: len(result) == 1,
                          timeout=120, what="Prometheus to have scraped the service")
    assert float(ingested[0]["value"][1]) == 2 * STEPS  # type: ignore[index]
    up = query('up{job="runwatch"}')
    assert up and float(up[0]["value"][1]) == 1  # type: ignore[index]
    firing = query('runwatch_alerts{state="firing"}')
    assert firing and float(firing[0]["value"][1]) == 1  # type: ignore[index]
