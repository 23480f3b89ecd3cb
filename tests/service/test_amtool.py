"""``amtool`` (Debian's, from prometheus-alertmanager) against Runwatch as against an Alertmanager: alert
query, silence add/query/expire. A silence added by amtool is a Runwatch silence: it mutes a training run's
rule alert. amtool authenticates with ``--http.config.file`` (bearer, or basic with the key as password)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.prometheus import amtool, required_binary
from tests.support.receiver import ReceivedRequest, WebhookReceiver
from tests.support.service import ServiceProcess, running_service

RULES = """
rules:
  - name: loss-high
    metric: loss
    when: "> 5"
    severity: error
    title: "Loss high in {{ run.name }}"
    text: "loss = {{ value }}"
"""
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    started = WebhookReceiver().start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def binary() -> str:
    return required_binary("amtool")


@pytest.fixture(scope="module")
def service(binary: str, tmp_path_factory: pytest.TempPathFactory,
            receiver: WebhookReceiver) -> Iterator[ServiceProcess]:
    """The module's service; asks for amtool first, so a machine without it skips before starting one."""
    folder = tmp_path_factory.mktemp("amtool")
    (folder / "rules.yaml").write_text(RULES)
    with running_service(folder, {"rule_files": [str(folder / "rules.yaml")],
                                  "channels": {"hook": {"type": "webhook", "url": receiver.url}},
                                  "defaults": {"channels": ["hook"], "group_wait": "0s", "group_interval": "1s"}}) as s:
        yield s


@pytest.fixture
def run_amtool(service: ServiceProcess, binary: str, tmp_path: Path) -> Callable[..., str]:
    """``amtool ARGS`` with the admin key as a bearer token; returns stdout, fails on a non-zero exit."""
    config = tmp_path / "http.yml"
    config.write_text(f"authorization:\n  type: Bearer\n  credentials: {service.admin_key}\n")

    def run(*args: str, http_config: Path = config, ok: bool = True) -> str:
        result = amtool(binary, service.base_url, http_config, *args)
        if ok:
            assert result.returncode == 0, \
                f"amtool {' '.join(args)}: {result.returncode}\n{result.stdout}{result.stderr}"
        else:
            assert result.returncode != 0, result.stdout
            return result.stderr
        return result.stdout

    return run


def _cross(service: ServiceProcess, key: str, run_id: str) -> None:
    """A run whose loss crosses the rule's threshold at its second step."""
    started = service.api("POST", "/api/v1/runs", key=key, json={"project": "vision", "id": run_id, "name": run_id})
    assert started.status_code == 200, started.text
    records = [{"seq": i + 1, "type": "history", "step": i, "timestamp": time.time(), "data": {"loss": loss}}
               for i, loss in enumerate([1.0, 9.0])]
    response = service.api("POST", f"/api/v1/runs/vision/{run_id}/records", key=key, json={"records": records})
    assert response.status_code == 200, response.text


def _told(run_id: str) -> Callable[[list[ReceivedRequest]], bool]:
    return lambda requests: any(a["labels"].get("run") == run_id for r in requests for a in r.json()["alerts"])


def test_alert_query_lists_rule_and_prometheus_alerts(service: ServiceProcess, receiver: WebhookReceiver,
                                                      run_amtool: Callable[..., str]) -> None:
    key = service.create_key("vision")
    _cross(service, key, "q1")
    receiver.wait_until(_told("q1"), timeout=60, what="the rule alert of run q1")
    posted = [{"labels": {"alertname": "NodeDown", "instance": "gpu-7", "project": "vision"},
               "annotations": {"summary": "gpu-7 is down"}}]
    assert service.api("POST", "/api/v2/alerts", json=posted).status_code == 200

    table = run_amtool("alert", "query")
    lines = table.splitlines()
    assert lines[0].split() == ["Alertname", "Starts", "At", "Summary", "State"]
    assert any(line.startswith("loss-high ") and "Loss high in q1" in line and line.rstrip().endswith("active")
               for line in lines), table
    assert any(line.startswith("NodeDown ") and "gpu-7 is down" in line for line in lines), table
    only = run_amtool("alert", "query", "alertname=NodeDown", "-o", "extended")
    assert "NodeDown" in only and "loss-high" not in only and 'instance="gpu-7"' in only
    assert "loss-high" in run_amtool("alert", "query", 'run="q1"', "--receiver=hook")
    assert run_amtool("alert", "query", "--receiver=nobody").splitlines()[1:] == []


def test_a_silence_added_by_amtool_mutes_a_training_run_alert(service: ServiceProcess, receiver: WebhookReceiver,
                                                               run_amtool: Callable[..., str],
                                                               tmp_path: Path) -> None:
    key = service.create_key("vision")
    silence_id = run_amtool("silence", "add", "rule=loss-high", "project=vision", "run=~s[0-9]", "-a", "oncall",
                            "-d", "1h", "-c", "known issue in the s runs").strip()
    assert UUID.match(silence_id), silence_id
    table = run_amtool("silence", "query")
    row = next(line for line in table.splitlines() if line.startswith(silence_id))
    assert 'rule="loss-high"' in row and 'run=~"s[0-9]"' in row and "oncall" in row and "known issue" in row
    assert run_amtool("silence", "query", "-q", "rule=loss-high").split() == [silence_id]
    stored = service.api("GET", "/api/v1/silences").json()["silences"]  # one store with the v1 API
    assert [s["matchers"] for s in stored if s["id"] == silence_id] == [
        ['rule="loss-high"', 'project="vision"', 'run=~"s[0-9]"']]

    _cross(service, key, "s1")  # silenced
    _cross(service, key, "t1")  # not: the marker that must arrive after s1's would have
    receiver.wait_until(_told("t1"), timeout=60, what="the unsilenced alert of run t1")
    assert not _told("s1")(receiver.requests)
    suppressed = run_amtool("alert", "query", "--silenced", 'run="s1"')
    assert "suppressed" in suppressed and "Loss high in s1" in suppressed
    assert "Loss high in s1" not in run_amtool("alert", "query")  # only active ones by default

    # Basic auth with the key as the password works as well; a wrong key is refused.
    basic = tmp_path / "basic.yml"
    basic.write_text(f"basic_auth:\n  username: amtool\n  password: {service.admin_key}\n")
    run_amtool("silence", "expire", silence_id, http_config=basic)
    assert silence_id not in run_amtool("silence", "query")
    assert silence_id in run_amtool("silence", "query", "--expired")
    wrong = tmp_path / "wrong.yml"
    wrong.write_text("basic_auth:\n  username: amtool\n  password: not-a-key\n")
    assert "401" in run_amtool("silence", "query", http_config=wrong, ok=False)


def test_a_project_key_silences_its_own_project_only(service: ServiceProcess, run_amtool: Callable[..., str],
                                                     tmp_path: Path) -> None:
    config = tmp_path / "vision.yml"
    config.write_text(f"authorization:\n  credentials: {service.create_key('vision')}\n")
    refused = run_amtool("silence", "add", "rule=loss-high", "-c", "everything", http_config=config, ok=False)
    assert "403" in refused
    silence_id = run_amtool("silence", "add", "project=vision", "rule=loss-high", "-c", "mine",
                            http_config=config).strip()
    assert UUID.match(silence_id)
    run_amtool("silence", "expire", silence_id, http_config=config)


def test_status_and_routes_read_as_an_alertmanager_config(run_amtool: Callable[..., str]) -> None:
    shown = run_amtool("config", "show")
    assert "receiver: hook" in shown and "- name: hook" in shown
    assert "receiver: hook" in run_amtool("config", "routes", "show")
