"""Timing scenarios modelled on Alertmanager's acceptance tests, against a real service and receivers.

Rule alerts are driven through the records API (a metric crossing a threshold); tolerances are generous
because the machines are shared: the assertions are on what arrives and in which order, not on speed.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support.outbox import wait_settled
from tests.support.receiver import ReceivedRequest, WebhookReceiver
from tests.support.service import ServiceProcess

pytestmark = pytest.mark.both_backends  # their services run on SQLite, then on PostgreSQL

RULES = """
rules:
  - {name: loss-high, metric: loss, when: "> 1", severity: warning}
  - {name: acc-low, metric: acc, when: "< 0.5", severity: critical}
  - {name: run-crashed, run_state: [crashed, failed], severity: error}
"""


class Driver:
    def __init__(self, service: ServiceProcess, project: str = "vision") -> None:
        self.service = service
        self.project = project
        self.key = service.create_key(project)
        self.seq: dict[str, int] = {}
        self.step: dict[str, int] = {}

    def run(self, run_id: str) -> None:
        response = self.service.api("POST", "/api/v1/runs", key=self.key, json={"project": self.project, "id": run_id})
        assert response.status_code == 200, response.text

    def log(self, run_id: str, **values: float) -> None:
        seq = self.seq[run_id] = self.seq.get(run_id, 0) + 1
        step = self.step[run_id] = self.step.get(run_id, -1) + 1
        response = self.service.api("POST", f"/api/v1/runs/{self.project}/{run_id}/records", key=self.key, json={
            "records": [{"seq": seq, "type": "history", "step": step, "timestamp": time.time(), "data": values}]})
        assert response.status_code == 200, response.text

    def fail(self, run_id: str) -> None:
        seq = self.seq[run_id] = self.seq.get(run_id, 0) + 1
        self.service.api("POST", f"/api/v1/runs/{self.project}/{run_id}/records", key=self.key, json={
            "records": [{"seq": seq, "type": "exit", "state": "failed", "exit_code": 1, "reason": "boom",
                         "timestamp": time.time()}]}).raise_for_status()


def received(receiver: WebhookReceiver) -> list[dict[str, Any]]:
    return receiver.payloads()


def summary(payload: dict[str, Any]) -> tuple[str, list[tuple[str, str, str]]]:
    return payload["status"], sorted((a["rule"], a["labels"]["run"], a["status"]) for a in payload["alerts"])


def carrying(*alerts: tuple[str, str, str]) -> Callable[[list[ReceivedRequest]], bool]:
    """A receiver predicate: some request carries every one of ``alerts`` (rule, run, status)."""
    return lambda requests: any(set(alerts) <= set(summary(r.json())[1]) for r in requests)


def firing_runs(payload: dict[str, Any]) -> list[str]:
    return sorted(a["labels"]["run"] for a in payload["alerts"] if a["status"] == "firing")


def alerts_with(service: ServiceProcess, status: str) -> list[tuple[str, str]]:
    """(rule, run) of the service's stored alerts with ``status``."""
    found = service.api("GET", f"/api/v1/alerts?project=vision&status={status}").json()["alerts"]
    return sorted((a["rule"], a["labels"]["run"]) for a in found)


def quiet_hours(start: int, end: int) -> dict[str, Any]:
    """A daily UTC interval from ``start`` to ``end`` minutes from now: with an hour's margin on either
    side of the present it holds (or not) for the whole test, whatever the time of day, midnight too."""
    now = datetime.now(UTC)

    def hhmm(minutes: int) -> str:
        return f"{now + timedelta(minutes=minutes):%H:%M}"

    return {"times": [f"{hhmm(start)}-{hhmm(end)}"], "location": "UTC"}


@pytest.fixture
def make_service(service_factory: Callable[..., ServiceProcess], webhook_receiver: WebhookReceiver,
                 tmp_path: Path) -> Callable[..., ServiceProcess]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)

    def make(**config: Any) -> ServiceProcess:
        defaults = {"channels": ["hook"], "group_by": ["project", "rule"], "group_wait": "1s",
                    "group_interval": "1s", "repeat_interval": "1h", "send_resolved": True,
                    **config.pop("defaults", {})}
        return service_factory({"rule_files": [str(rules)],
                                "channels": {"hook": {"type": "webhook", "url": webhook_receiver.url},
                                             **config.pop("channels", {})},
                                "defaults": defaults, **config})

    return make


def test_group_wait_batches_alerts_of_one_group(make_service, webhook_receiver: WebhookReceiver) -> None:  # type: ignore[no-untyped-def]
    service = make_service(defaults={"group_wait": "5s"})  # the two posts after the first alert fit in it
    driver = Driver(service)
    for run in ("r1", "r2", "r3"):
        driver.run(run)
    for run in ("r1", "r2", "r3"):
        driver.log(run, loss=5.0)
    (request,) = webhook_receiver.wait_for(1, timeout=30)
    assert summary(request.json()) == ("firing", [("loss-high", "r1", "firing"), ("loss-high", "r2", "firing"),
                                                  ("loss-high", "r3", "firing")])
    assert request.json()["group_labels"] == {"project": "vision", "rule": "loss-high"}
    # Nothing else was sent for the three: the next alert to join the group is the next message.
    driver.run("r4")
    driver.log("r4", loss=5.0)
    webhook_receiver.wait_until(carrying(("loss-high", "r4", "firing")), what="r4's notification")
    assert len(wait_settled(service, ["hook"], count=2)) == 2
    assert [firing_runs(p) for p in received(webhook_receiver)] == [["r1", "r2", "r3"], ["r1", "r2", "r3", "r4"]]


def test_resolved_is_sent_and_repeat_interval_repeats(make_service, webhook_receiver: WebhookReceiver) -> None:  # type: ignore[no-untyped-def]
    service = make_service(defaults={"repeat_interval": "3s", "group_wait": "0s"})
    driver = Driver(service)
    driver.run("r1")
    driver.log("r1", loss=5.0)
    webhook_receiver.wait_for(2, timeout=30)  # the first and its repeat, with nothing changed
    payloads = received(webhook_receiver)
    assert [summary(p) for p in payloads[:2]] == [("firing", [("loss-high", "r1", "firing")])] * 2
    # Made no sooner than repeat_interval after the first, on the service's own clock (a slow machine can
    # only make the gap longer).
    first, repeat = wait_settled(service, ["hook"], count=2)[:2]
    gap = datetime.fromisoformat(repeat["created_at"]) - datetime.fromisoformat(first["created_at"])
    assert gap.total_seconds() >= 3.0, (first, repeat)
    driver.log("r1", loss=0.5)
    requests = webhook_receiver.wait_until(carrying(("loss-high", "r1", "resolved")), what="the resolved notice")
    (resolved,) = [r.json() for r in requests if r.json()["status"] == "resolved"]
    assert summary(resolved) == ("resolved", [("loss-high", "r1", "resolved")])
    assert resolved["alerts"][0]["resolved_reason"] == "condition cleared"


def test_without_send_resolved_nothing_is_sent_on_resolve(make_service, webhook_receiver: WebhookReceiver) -> None:  # type: ignore[no-untyped-def]
    service = make_service(defaults={"send_resolved": False, "group_wait": "0s"})
    driver = Driver(service)
    driver.run("r1")
    driver.log("r1", loss=5.0)
    webhook_receiver.wait_for(1, timeout=30)
    driver.log("r1", loss=0.5)
    assert alerts_with(service, "resolved") == [("loss-high", "r1")]  # it did resolve
    # The next alert of the same group is the next message, and carries no resolved notice either.
    driver.run("r2")
    driver.log("r2", loss=5.0)
    webhook_receiver.wait_until(carrying(("loss-high", "r2", "firing")), what="r2's notification")
    assert len(wait_settled(service, ["hook"], count=2)) == 2
    assert [summary(p) for p in received(webhook_receiver)] == [("firing", [("loss-high", "r1", "firing")]),
                                                                ("firing", [("loss-high", "r2", "firing")])]


def test_silence_added_and_expired_mid_stream(make_service, webhook_receiver: WebhookReceiver) -> None:  # type: ignore[no-untyped-def]
    service = make_service(defaults={"group_wait": "0s"})
    driver = Driver(service)
    for run in ("r1", "r3"):
        driver.run(run)
        driver.log(run, loss=5.0)
    webhook_receiver.wait_until(lambda rs: any(firing_runs(r.json()) == ["r1", "r3"] for r in rs),
                                what="the group with r1 and r3")
    before = wait_settled(service, ["hook"], count=1)  # what came before the silence was delivered
    assert {n["status"] for n in before} == {"delivered"} and len(webhook_receiver.requests) == len(before)
    # Mid-stream, with r1 firing and notified: a silence for r1 and r2.
    response = service.api("POST", "/api/v1/silences", json={
        "matchers": ["rule=loss-high", "run=~r[12]"], "duration": "1h", "created_by": "test", "comment": "maint"})
    assert response.status_code == 200, response.text
    silence_id = response.json()["id"]
    shown = service.api("GET", "/api/v1/alerts?project=vision&status=firing").json()["alerts"]
    assert {a["labels"]["run"]: a["silenced_by"] for a in shown} == {"r1": [silence_id], "r3": []}
    for run in ("r2", "r4"):  # r2 fires silenced; r4 is not silenced and makes the group send
        driver.run(run)
        driver.log(run, loss=5.0)
    webhook_receiver.wait_until(carrying(("loss-high", "r4", "firing")), what="r4's notification")
    during = wait_settled(service, ["hook"], count=len(before) + 1)
    assert [firing_runs(p) for p in received(webhook_receiver)[len(before):]] == [["r3", "r4"]]  # r1, r2 silenced
    assert service.api("DELETE", f"/api/v1/silences/{silence_id}").json()["state"] == "expired"
    # Once the silence expired, r1 and r2 are notified with the group at its next flush.
    webhook_receiver.wait_until(lambda rs: any(firing_runs(r.json()) == ["r1", "r2", "r3", "r4"] for r in rs),
                                what="the group with r1 and r2 again")
    wait_settled(service, ["hook"], count=len(during) + 1)
    assert [firing_runs(p) for p in received(webhook_receiver)[len(during):]] == [["r1", "r2", "r3", "r4"]]


def test_a_series_that_resolved_while_silenced_and_fires_again_is_news(  # type: ignore[no-untyped-def]
        make_service, webhook_receiver: WebhookReceiver) -> None:
    """Nobody heard it resolve (silenced), so its next firing is a new alert, sent once the silence ends;
    not a repeat of the first firing held back until repeat_interval (1h here)."""
    service = make_service(defaults={"group_wait": "0s"})
    driver = Driver(service)
    driver.run("r1")
    driver.log("r1", loss=5.0)
    webhook_receiver.wait_until(carrying(("loss-high", "r1", "firing")), what="the first firing")
    [first] = wait_settled(service, ["hook"], count=1)
    response = service.api("POST", "/api/v1/silences", json={
        "matchers": ["rule=loss-high", "run=r1"], "duration": "1h", "created_by": "test", "comment": "maint"})
    assert response.status_code == 200, response.text
    driver.log("r1", loss=0.0)  # resolves, silenced
    driver.log("r1", loss=5.0)  # fires again, silenced
    service.wait_for(lambda: alerts_with(service, "resolved") == [("loss-high", "r1")]
                     and alerts_with(service, "firing") == [("loss-high", "r1")])
    assert service.api("DELETE", f"/api/v1/silences/{response.json()['id']}").json()["state"] == "expired"
    webhook_receiver.wait_until(lambda rs: len(rs) > 1 and carrying(("loss-high", "r1", "firing"))(rs[1:]),
                                what="the second firing, after the silence")
    second = received(webhook_receiver)[1]
    assert second["alerts"][0]["id"] != first["message"]["alerts"][0]["id"]
    assert second["alerts"][0]["step"] == 2


def test_silence_cli(make_service) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    result = service.cli("silence", "add", "--match", "project=vision", "--match", "severity=~warn.*",
                         "--for", "2h", "--comment", "noisy", "--author", "ops")
    silence_id = result.stdout.strip()
    assert re.fullmatch(r"[0-9a-f-]{36}", silence_id), result.stdout  # the id alone, a UUID
    listing = service.cli("silence", "list").stdout
    assert silence_id in listing and 'severity=~"warn.*"' in listing and "active" in listing
    assert service.cli("silence", "add", "--match", "bad matcher", "--comment", "x", check=False).returncode == 1
    service.cli("silence", "expire", silence_id)
    assert silence_id not in service.cli("silence", "list").stdout
    assert silence_id in service.cli("silence", "list", "--all").stdout


def test_inhibition_while_the_source_fires_and_after_it_resolves(make_service,  # type: ignore[no-untyped-def]
                                                                  webhook_receiver: WebhookReceiver) -> None:
    service = make_service(defaults={"group_wait": "0s", "group_by": ["project", "run"]},
                           inhibit=[{"source": {"rule": "loss-high"}, "target": {"rule": "acc-low"}, "equal": ["run"]}])
    driver = Driver(service)
    driver.run("r1")
    driver.run("r2")
    driver.log("r1", loss=5.0, acc=0.1)  # both fire together; r1's acc-low is inhibited by r1's loss-high
    (first,) = webhook_receiver.wait_for(1, timeout=30)
    assert alerts_with(service, "firing") == [("acc-low", "r1"), ("loss-high", "r1")]
    assert summary(first.json()) == ("firing", [("loss-high", "r1", "firing")])  # the same flush left it out
    driver.log("r2", acc=0.1)  # another run's acc-low: no equal source, not inhibited
    webhook_receiver.wait_until(carrying(("acc-low", "r2", "firing")), what="r2's acc-low")
    driver.log("r1", loss=0.5)  # the source resolves: r1's acc-low, still firing, goes out with that flush
    webhook_receiver.wait_until(carrying(("acc-low", "r1", "firing")), what="r1's acc-low after the source resolved")
    assert len(wait_settled(service, ["hook"], count=3)) == 3
    assert [summary(p) for p in received(webhook_receiver)] == [
        ("firing", [("loss-high", "r1", "firing")]),
        ("firing", [("acc-low", "r2", "firing")]),
        ("firing", [("acc-low", "r1", "firing"), ("loss-high", "r1", "resolved")])]


def test_a_crashed_run_inhibits_the_other_notices_of_its_run(make_service,  # type: ignore[no-untyped-def]
                                                            webhook_receiver: WebhookReceiver) -> None:
    service = make_service(defaults={"group_wait": "0s", "group_by": ["project", "run"]},
                           inhibit=[{"source": {"rule": "run-crashed"}, "target": {}, "equal": ["run"]}])
    driver = Driver(service)
    driver.run("r1")
    driver.run("r2")
    driver.log("r1", acc=0.1)
    webhook_receiver.wait_for(1, timeout=30)
    # run-crashed fires for r1 and the run's end resolves r1's acc-low, in one change and so one flush of
    # r1's group: the crash's message is the one that would have carried the resolved notice.
    driver.fail("r1")
    webhook_receiver.wait_until(carrying(("run-crashed", "r1", "firing")), what="r1's crash")
    assert alerts_with(service, "resolved") == [("acc-low", "r1")]
    driver.log("r2", acc=0.1)  # another run is not inhibited
    webhook_receiver.wait_until(carrying(("acc-low", "r2", "firing")), what="r2's acc-low")
    assert len(wait_settled(service, ["hook"], count=3)) == 3
    assert [summary(p) for p in received(webhook_receiver)] == [
        ("firing", [("acc-low", "r1", "firing")]),
        ("firing", [("run-crashed", "r1", "firing")]),
        ("firing", [("acc-low", "r2", "firing")])]


def test_routing_tree_first_match_and_continue(make_service, webhook_receiver: WebhookReceiver) -> None:  # type: ignore[no-untyped-def]
    other = WebhookReceiver().start()
    try:
        service = make_service(
            channels={"pager": {"type": "webhook", "url": other.url}},
            defaults={"group_wait": "0s"},
            routes=[{"match": {"severity": "critical"}, "channels": ["pager"], "continue": True},
                    {"match": ["rule=~acc-.*"], "channels": ["hook"], "group_by": ["run"]},
                    {"match": {"rule": "loss-high"}, "channels": ["pager"]}])
        driver = Driver(service)
        driver.run("r1")
        driver.log("r1", acc=0.1, loss=5.0)
        other.wait_for(2, timeout=30)
        webhook_receiver.wait_for(1, timeout=30)
        # One flush queued every group's notification in one transaction: settled, that is all of them.
        assert len(wait_settled(service, ["hook", "pager"], count=3)) == 3
        pager = sorted(a["rule"] for p in other.payloads() for a in p["alerts"])
        hook = [(p["group_labels"], [a["rule"] for a in p["alerts"]]) for p in received(webhook_receiver)]
        assert pager == ["acc-low", "loss-high"]
        assert hook == [({"run": "r1"}, ["acc-low"])]
    finally:
        other.stop()


def test_quiet_hours_mute_the_route(make_service, webhook_receiver: WebhookReceiver) -> None:  # type: ignore[no-untyped-def]
    other = WebhookReceiver().start()
    try:
        service = make_service(
            channels={"pager": {"type": "webhook", "url": other.url}},
            defaults={"group_wait": "0s", "mute_times": ["quiet-hours"]},  # the hook route inherits them
            mute_times={"quiet-hours": quiet_hours(-60, 60), "other-hours": quiet_hours(60, 120)},
            routes=[{"match": {"rule": "loss-high"}, "channels": ["pager"], "mute_times": ["other-hours"],
                     "continue": True},
                    {"match": {"rule": "loss-high"}, "channels": ["hook"]}])
        driver = Driver(service)
        driver.run("r1")
        driver.log("r1", loss=5.0)
        # Outside its mute times the pager route sends at once; the same flush (one transaction) found the
        # hook route inside its quiet hours and sent nothing.
        (paged,) = other.wait_for(1, timeout=30)
        assert summary(paged.json()) == ("firing", [("loss-high", "r1", "firing")])
        assert [n["channel"] for n in wait_settled(service, ["hook", "pager"], count=1)] == ["pager"]
        assert "muted by quiet-hours" in service.log_text() and webhook_receiver.requests == []
        # The quiet hours move to later: now is outside them, and the alert, still firing in its group,
        # goes out at the group's next flush.
        rewrite_config(service, mute_times={"quiet-hours": quiet_hours(60, 120), "other-hours": quiet_hours(60, 120)})
        reload(service)
        (request,) = webhook_receiver.wait_for(1, timeout=30)
        assert summary(request.json()) == ("firing", [("loss-high", "r1", "firing")])
        assert [n["channel"] for n in wait_settled(service, ["hook", "pager"], count=2)] == ["pager", "hook"]
    finally:
        other.stop()


def test_alertmanager_format(make_service, webhook_receiver: WebhookReceiver) -> None:  # type: ignore[no-untyped-def]
    driver = Driver(make_service(channels={"hook": {"type": "webhook", "url": webhook_receiver.url,
                                                    "format": "alertmanager"}}, defaults={"group_wait": "0s"}))
    driver.run("r1")
    driver.log("r1", loss=5.0)
    (request,) = webhook_receiver.wait_for(1, timeout=30)
    payload = request.json()
    assert payload["version"] == "4" and payload["status"] == "firing" and payload["receiver"] == "hook"
    assert payload["groupLabels"] == {"project": "vision", "rule": "loss-high"}
    assert payload["truncatedAlerts"] == 0 and payload["externalURL"].startswith("http://")
    assert payload["groupKey"] == '{}:{project="vision", rule="loss-high"}'  # Alertmanager's spelling
    assert payload["commonLabels"]["alertname"] == "loss-high"
    (alert,) = payload["alerts"]
    assert alert["status"] == "firing" and alert["labels"]["metric"] == "loss"
    assert alert["annotations"]["summary"] and alert["annotations"]["value"] == "5.0"
    assert alert["endsAt"] == "0001-01-01T00:00:00Z" and alert["startsAt"].endswith("Z")
    assert alert["generatorURL"].endswith("/runs/vision/r1") and len(alert["fingerprint"]) == 16


def test_send_test_command(make_service, webhook_receiver: WebhookReceiver) -> None:  # type: ignore[no-untyped-def]
    service = make_service()
    result = service.cli("send-test", "hook")
    assert result.returncode == 0 and "ok: test notification delivered to hook" in result.stdout
    assert webhook_receiver.wait_for(1)[0].json()["alerts"][0]["title"] == "Runwatch test notification"
    webhook_receiver.failures = [(404, {})]
    result = service.cli("send-test", "hook", check=False)
    assert result.returncode == 1 and "error (permanent)" in result.stdout and "HTTP 404" in result.stdout


def rewrite_config(service: ServiceProcess, **changes: Any) -> None:
    """Edit the running service's config file (merging ``defaults`` and ``channels``)."""
    config = yaml.safe_load(service.config_path.read_text())
    for key, value in changes.items():
        if key in ("defaults", "channels"):
            config[key] = {**config.get(key, {}), **value}
        else:
            config[key] = value
    service.config_path.write_text(yaml.safe_dump(config))


def reload(service: ServiceProcess) -> dict[str, Any]:
    response = service.api("POST", "/api/v1/reload")
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def loss_high_notified(service: ServiceProcess, receiver: WebhookReceiver) -> Driver:
    """Run r1 fires loss-high and the receiver has its notification."""
    driver = Driver(service)
    driver.run("r1")
    driver.log("r1", loss=5.0)
    receiver.wait_for(1, timeout=30)
    return driver


def test_reload_notifies_nobody_again(make_service, webhook_receiver: WebhookReceiver) -> None:  # type: ignore[no-untyped-def]
    loss_route = {"match": {"rule": "loss-high"}, "channels": ["hook"]}
    service = make_service(defaults={"group_wait": "0s"}, routes=[loss_route])
    driver = loss_high_notified(service, webhook_receiver)
    # A route added before the alert's route, a new channel, a changed repeat interval: nothing here
    # changes the group of the firing alert, so nothing is sent again (two reloads, one by SIGHUP).
    other = WebhookReceiver().start()
    try:
        rewrite_config(service, channels={"audit": {"type": "webhook", "url": other.url}},
                       defaults={"repeat_interval": "2h"},
                       routes=[{"match": {"severity": "critical"}, "channels": ["audit"]}, loss_route])
        answer = reload(service)
        assert answer["channels"] == {"added": ["audit"], "changed": [], "removed": []}
        assert answer["restart_required"] == []
        assert service.process is not None
        service.process.send_signal(signal.SIGHUP)
        service.wait_for(lambda: service.log_text().count("reloaded the config") == 2, timeout=30)
        # Give the group's flushes (every 1 s) the chance to re-send: a forgetful reload would show in any of them.
        time.sleep(3)
        # The group lives on: a new alert joins it, and its notification, listing both, is the second one.
        driver.run("r2")
        driver.log("r2", loss=7.0)
        webhook_receiver.wait_until(carrying(("loss-high", "r2", "firing")), what="r2's notification")
        assert len(wait_settled(service, ["hook"], count=2)) == 2
        assert [summary(p) for p in received(webhook_receiver)] == [
            ("firing", [("loss-high", "r1", "firing")]),
            ("firing", [("loss-high", "r1", "firing"), ("loss-high", "r2", "firing")])]
        # The new route works: a critical alert goes to the new channel only (routed in one flush, so once
        # its notification is queued any other would be too).
        driver.log("r1", acc=0.1)
        (audit,) = other.wait_for(1, timeout=30)
        assert summary(audit.json()) == ("firing", [("acc-low", "r1", "firing")])
        assert [n["channel"] for n in wait_settled(service, ["hook", "audit"], count=3)] == ["hook", "hook", "audit"]
        assert len(received(webhook_receiver)) == 2
    finally:
        other.stop()


def test_reload_adding_a_channel_to_a_route_notifies_only_that_channel(  # type: ignore[no-untyped-def]
        make_service, webhook_receiver: WebhookReceiver) -> None:
    service = make_service(defaults={"group_wait": "0s"})
    loss_high_notified(service, webhook_receiver)
    other = WebhookReceiver().start()
    try:
        rewrite_config(service, channels={"audit": {"type": "webhook", "url": other.url}},
                       defaults={"channels": ["hook", "audit"]})
        reload(service)
        (audit,) = other.wait_for(1, timeout=30)
        assert summary(audit.json()) == ("firing", [("loss-high", "r1", "firing")])
        # The flush that queued it judged the hook channel too (one transaction): settled, nothing else came.
        assert [n["channel"] for n in wait_settled(service, ["hook", "audit"], count=2)] == ["hook", "audit"]
        assert len(received(webhook_receiver)) == 1 and len(other.payloads()) == 1
    finally:
        other.stop()


def test_broken_reload_keeps_the_running_config(make_service, webhook_receiver: WebhookReceiver) -> None:  # type: ignore[no-untyped-def]
    service = make_service(defaults={"group_wait": "0s"})
    driver = Driver(service)
    assert service.admin_key  # created while the config is still valid
    rewrite_config(service, defaults={"channels": ["nowhere"]})
    response = service.api("POST", "/api/v1/reload")
    assert response.status_code == 400
    (error,) = response.json()["errors"]
    assert error.startswith(f"{service.config_path}:") and "unknown channel(s): nowhere" in error
    driver.run("r1")
    driver.log("r1", loss=5.0)
    (request,) = webhook_receiver.wait_for(1, timeout=30)
    assert summary(request.json()) == ("firing", [("loss-high", "r1", "firing")])


def test_reload_removing_a_channel_fails_its_pending_notifications(  # type: ignore[no-untyped-def]
        make_service, webhook_receiver: WebhookReceiver) -> None:
    dead = WebhookReceiver()  # never started: connections are refused
    service = make_service(channels={"dead": {"type": "webhook", "url": dead.url}},
                           defaults={"group_wait": "0s", "channels": ["hook", "dead"]},
                           delivery={"initial_backoff": "30s", "max_backoff": "30s"})
    driver = Driver(service)
    driver.run("r1")
    driver.log("r1", loss=5.0)
    webhook_receiver.wait_for(1, timeout=30)

    def pending() -> list[dict[str, Any]]:
        rows = service.api("GET", "/api/v1/notifications").json()["notifications"]
        return [row for row in rows if row["channel"] == "dead"]

    service.wait_for(lambda: any(row["attempts"] >= 1 for row in pending()), timeout=30)
    rewrite_config(service, defaults={"channels": ["hook"]})
    config = yaml.safe_load(service.config_path.read_text())
    del config["channels"]["dead"]
    service.config_path.write_text(yaml.safe_dump(config))
    assert reload(service)["channels"]["removed"] == ["dead"]
    (row,) = pending()
    assert row["status"] == "failed" and row["last_error"] == "channel removed from the config"
