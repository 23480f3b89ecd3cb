"""The Alertmanager API v2 subset at the JSON level: the shapes Alertmanager's clients read, the life of an
alert posted there (resent, resolved by its endsAt, expired when not resent), what a bad body gets, and
what a project key may do. The real clients (Prometheus, amtool) have their own modules."""

from __future__ import annotations

import base64
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.support.receiver import ReceivedRequest, WebhookReceiver
from tests.support.service import ServiceProcess, running_service
from tests.support.waiting import eventually

ZERO = "0001-01-01T00:00:00Z"
RULES = """
rules:
  - name: acc-low
    metric: acc
    when: "< 0.5"
    title: "Accuracy low in {{ run.name }}"
    text: "acc = {{ value }}"
"""


def iso(moment: float) -> str:
    return datetime.fromtimestamp(moment, UTC).isoformat().replace("+00:00", "Z")


def alert(name: str, **labels: str) -> dict[str, Any]:
    return {"labels": {"alertname": name, **labels}, "annotations": {"summary": f"{name} summary",
                                                                     "description": f"{name} text"}}


def told(name: str, status: str = "firing") -> Callable[[list[ReceivedRequest]], bool]:
    return lambda requests: any(a["labels"].get("alertname") == name and a["status"] == status
                                for r in requests for a in r.json()["alerts"])


def notices(receiver: WebhookReceiver, name: str) -> list[str]:
    return [a["status"] for r in receiver.requests for a in r.json()["alerts"] if a["labels"].get("alertname") == name]


@pytest.fixture(scope="module")
def receiver() -> Iterator[WebhookReceiver]:
    started = WebhookReceiver().start()
    yield started
    started.stop()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, receiver: WebhookReceiver) -> Iterator[ServiceProcess]:
    folder = tmp_path_factory.mktemp("alertmanager-api")
    (folder / "rules.yaml").write_text(RULES)
    config = {"rule_files": [str(folder / "rules.yaml")],
              "channels": {"hook": {"type": "webhook", "url": receiver.url}, "console": {"type": "console"}},
              "defaults": {"channels": ["hook"], "group_by": ["project", "alertname"], "group_wait": "0s",
                           "group_interval": "1s"},
              "routes": [{"match": {"team": "both"}, "channels": ["hook", "console"]}],
              "inhibit": [{"source": {"alertname": "NodeDown"}, "target": {"alertname": "DiskSlow"},
                           "equal": ["instance"]}],
              "prometheus": {"default_project": "infra", "resolve_timeout": "5m"}}
    with running_service(folder, config) as started:
        yield started


def post(service: ServiceProcess, alerts: list[dict[str, Any]], key: str | None = None) -> dict[str, Any]:
    response = service.api("POST", "/api/v2/alerts", key=key, json=alerts)
    assert response.status_code == 200, response.text
    return dict(response.json())


def listed(service: ServiceProcess, key: str | None = None, **params: Any) -> dict[str, dict[str, Any]]:
    response = service.api("GET", "/api/v2/alerts", key=key, params=params)
    assert response.status_code == 200, response.text
    return {a["labels"]["alertname"]: a for a in response.json()}


def test_a_posted_alert_in_alertmanagers_shapes(service: ServiceProcess, receiver: WebhookReceiver) -> None:
    now = time.time()
    body = [{**alert("ShapeCheck", instance="a:9100", severity="ERROR", team="both"),
             "startsAt": iso(now - 60), "endsAt": iso(now + 600), "generatorURL": "http://prometheus/graph?x"}]
    assert post(service, body) == {"received": 1, "new": 1, "updated": 0, "resolved": 0}
    shown = listed(service)["ShapeCheck"]
    assert set(shown) == {"labels", "annotations", "receivers", "fingerprint", "startsAt", "updatedAt", "endsAt",
                          "status", "generatorURL"}
    assert shown["labels"] == {"alertname": "ShapeCheck", "instance": "a:9100", "severity": "ERROR", "team": "both",
                               "project": "infra", "source": "prometheus"}
    assert shown["annotations"] == {"summary": "ShapeCheck summary", "description": "ShapeCheck text"}
    assert shown["receivers"] == [{"name": "hook"}, {"name": "console"}]
    assert len(shown["fingerprint"]) == 16
    assert shown["startsAt"] == iso(now - 60)[:19] + shown["startsAt"][19:]
    assert shown["endsAt"].startswith(iso(now + 600)[:19])
    assert shown["status"] == {"state": "active", "silencedBy": [], "inhibitedBy": [], "mutedBy": []}
    assert shown["generatorURL"] == "http://prometheus/graph?x"

    receiver.wait_until(told("ShapeCheck"), timeout=60, what="the ShapeCheck notification")
    delivered = next(a for r in receiver.requests for a in r.json()["alerts"]
                     if a["labels"]["alertname"] == "ShapeCheck")
    assert delivered["severity"] == "error"  # the severity label, in any case
    assert delivered["title"] == "ShapeCheck summary" and delivered["text"] == "ShapeCheck text"

    groups = service.api("GET", "/api/v2/alerts/groups", params={"filter": 'alertname="ShapeCheck"'}).json()
    assert [(g["receiver"]["name"], g["labels"]) for g in groups] == [
        ("console", {"project": "infra", "alertname": "ShapeCheck"}),
        ("hook", {"project": "infra", "alertname": "ShapeCheck"})]
    assert [a["fingerprint"] for g in groups for a in g["alerts"]] == [shown["fingerprint"]] * 2
    assert [g["receiver"]["name"] for g in service.api(
        "GET", "/api/v2/alerts/groups", params={"filter": 'alertname="ShapeCheck"', "receiver": "con.*"}).json()] == [
        "console"]

    status = service.api("GET", "/api/v2/status").json()
    assert status["cluster"] == {"status": "disabled", "peers": []}
    assert set(status["versionInfo"]) == {"version", "revision", "branch", "buildUser", "buildDate", "goVersion"}
    assert "receiver: hook" in status["config"]["original"]
    assert status["uptime"].endswith("Z")
    assert sorted(r["name"] for r in service.api("GET", "/api/v2/receivers").json()) == ["console", "hook"]


def test_rule_alerts_and_sdk_calls_are_listed_too(service: ServiceProcess) -> None:
    key = service.create_key("vision")
    assert service.api("POST", "/api/v1/runs", key=key, json={"project": "vision", "id": "r1", "name": "r1"}
                       ).status_code == 200
    records = [{"seq": 1, "type": "history", "step": 0, "timestamp": time.time(), "data": {"acc": 0.1}}]
    assert service.api("POST", "/api/v1/runs/vision/r1/records", key=key, json={"records": records}).status_code == 200
    call = {"id": "c1", "title": "Diverged", "text": "loss is NaN", "level": "error", "wait_duration": 0,
            "timestamp": time.time()}
    assert service.api("POST", "/api/v1/runs/vision/r1/alerts", key=key, json={"alerts": [call]}).status_code == 200
    found = eventually(lambda: listed(service, key), lambda found: {"acc-low", "sdk"} <= set(found),
                       what="the rule alert and the alert() call")
    rule, sdk = found["acc-low"], found["sdk"]
    assert rule["labels"]["run"] == "r1" and rule["labels"]["source"] == "rule"
    assert rule["annotations"]["summary"] == "Accuracy low in r1"
    assert rule["annotations"]["metric"] == "acc" and rule["annotations"]["value"] == "0.1"
    assert rule["endsAt"] == ZERO  # fires until it resolves
    assert rule["generatorURL"].endswith("/runs/vision/r1")
    assert sdk["annotations"]["summary"] == "Diverged" and sdk["labels"]["severity"] == "error"
    made = datetime.fromisoformat(sdk["updatedAt"]).timestamp()
    assert datetime.fromisoformat(sdk["endsAt"]).timestamp() == pytest.approx(made + 300, abs=0.01)


def test_filters_as_amtool_sends_them(service: ServiceProcess) -> None:
    post(service, [alert("FilterA", instance="x", env="prod"), alert("FilterB", instance="y")])
    assert set(listed(service, filter=['alertname=~"Filter.*"', 'env="prod"'])) == {"FilterA"}
    assert set(listed(service, filter=['alertname=~"Filter.*"', 'env=""'])) == {"FilterB"}  # a missing label is ""
    assert set(listed(service, filter=['alertname=~"Filter.*"', 'env!=""'])) == {"FilterA"}
    assert set(listed(service, filter=['{alertname="FilterB"}'])) == {"FilterB"}  # braces, as in PromQL
    bad = service.api("GET", "/api/v2/alerts", params={"filter": ["alertname=~Filter.*", "not a matcher"]})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "filter", 1]
    bad = service.api("GET", "/api/v2/alerts/groups", params={"receiver": "hook("})
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "receiver"]


def test_silences_and_inhibition_show_in_the_status(service: ServiceProcess, receiver: WebhookReceiver) -> None:
    created = service.api("POST", "/api/v2/silences", json={
        "matchers": [{"name": "alertname", "value": "Muted", "isRegex": False}],
        "startsAt": iso(time.time()), "endsAt": iso(time.time() + 3600), "createdBy": "me", "comment": "quiet"})
    assert created.status_code == 200, created.text
    silence_id = created.json()["silenceID"]
    post(service, [alert("NodeDown", instance="db-1"), alert("DiskSlow", instance="db-1"),
                   alert("Muted", instance="m")])
    found = listed(service)
    assert found["Muted"]["status"] == {"state": "suppressed", "silencedBy": [silence_id], "inhibitedBy": [],
                                        "mutedBy": []}
    assert found["DiskSlow"]["status"]["inhibitedBy"] == [found["NodeDown"]["fingerprint"]]
    assert found["DiskSlow"]["status"]["state"] == "suppressed"
    assert {"Muted", "DiskSlow"}.isdisjoint(listed(service, silenced="false", inhibited="false"))
    assert set(listed(service, silenced="false", inhibited="true")) >= {"DiskSlow"}
    assert {"Muted", "DiskSlow"} <= set(listed(service, active="false"))
    assert "NodeDown" not in listed(service, active="false")
    # Muted and inhibited alerts are not sent: NodeDown's notification arrives, theirs never do.
    receiver.wait_until(told("NodeDown"), timeout=60, what="the NodeDown notification")
    post(service, [alert("AfterMuted")])
    receiver.wait_until(told("AfterMuted"), timeout=60, what="a later marker")
    assert notices(receiver, "Muted") == [] and notices(receiver, "DiskSlow") == []


def test_silences_in_alertmanagers_shapes(service: ServiceProcess) -> None:
    now = time.time()
    body = {"matchers": [{"name": "alertname", "value": "Sil.*", "isRegex": True},
                         {"name": "env", "value": "dev", "isRegex": False, "isEqual": False}],
            "startsAt": ZERO, "endsAt": iso(now + 3600), "createdBy": "amtool", "comment": "first"}
    first = service.api("POST", "/api/v2/silences", json=body).json()["silenceID"]
    shown = service.api("GET", f"/api/v2/silence/{first}").json()
    assert shown["id"] == first and shown["status"] == {"state": "active"}
    assert shown["matchers"] == [{"name": "alertname", "value": "Sil.*", "isRegex": True, "isEqual": True},
                                 {"name": "env", "value": "dev", "isRegex": False, "isEqual": False}]
    assert shown["createdBy"] == "amtool" and shown["comment"] == "first"
    assert {"startsAt", "endsAt", "updatedAt"} <= set(shown)
    v1 = {s["id"]: s for s in service.api("GET", "/api/v1/silences").json()["silences"]}
    assert v1[first]["matchers"] == ['alertname=~"Sil.*"', 'env!="dev"']  # one store for both APIs

    # An update with the same matchers keeps the id; other matchers replace the silence (old one expires).
    same = service.api("POST", "/api/v2/silences", json={**body, "id": first, "comment": "second"}).json()
    assert same == {"silenceID": first}
    assert service.api("GET", f"/api/v2/silence/{first}").json()["comment"] == "second"
    other = service.api("POST", "/api/v2/silences", json={
        **body, "id": first, "matchers": body["matchers"][:1]}).json()["silenceID"]
    assert other != first
    assert service.api("GET", f"/api/v2/silence/{first}").json()["status"]["state"] == "expired"
    unknown = service.api("POST", "/api/v2/silences", json={**body, "id": "00000000-0000-4000-8000-000000000000"})
    assert unknown.status_code == 404

    everything = service.api("GET", "/api/v2/silences").json()
    states = [s["status"]["state"] for s in everything]
    assert states == sorted(states, key=["active", "pending", "expired"].index)  # Alertmanager's order
    assert [s["id"] for s in service.api("GET", "/api/v2/silences",
                                         params={"filter": 'env!="dev"'}).json()] == [first]
    assert service.api("DELETE", f"/api/v2/silence/{other}").status_code == 200
    assert service.api("GET", f"/api/v2/silence/{other}").json()["status"]["state"] == "expired"
    assert service.api("DELETE", f"/api/v2/silence/{other}").status_code == 200  # again: harmless
    assert service.api("GET", "/api/v2/silence/00000000-0000-4000-8000-000000000000").status_code == 404
    assert service.api("GET", "/api/v2/silence/not-a-uuid").status_code == 422

    past = service.api("POST", "/api/v2/silences", json={**body, "endsAt": iso(now - 10)})
    assert past.status_code == 422 and past.json()["detail"][0]["loc"] == ["body", "endsAt"]
    everything_muted = service.api("POST", "/api/v2/silences", json={
        **body, "matchers": [{"name": "x", "value": ".*", "isRegex": True}]})
    assert everything_muted.status_code == 422 and everything_muted.json()["detail"][0]["loc"] == ["body", "matchers"]
    bad_regex = service.api("POST", "/api/v2/silences", json={
        **body, "matchers": [body["matchers"][1], {"name": "x", "value": "(", "isRegex": True}]})
    assert bad_regex.status_code == 422 and bad_regex.json()["detail"][0]["loc"] == ["body", "matchers", 1]


@pytest.mark.parametrize(("body", "loc"), [
    ({"labels": {}}, ["body", 0, "labels"]),
    ({"labels": {"alertname": ""}}, ["body", 0, "labels"]),
    ({"labels": {"bad-name": "x"}}, ["body", 0, "labels", "bad-name"]),
    ({"labels": {"a": "x"}, "annotations": {"0bad": "x"}}, ["body", 0, "annotations", "0bad"]),
    ({"labels": {"a": 1}}, ["body", 0, "labels", "a"]),
    ({"labels": {"a": "x"}, "startsAt": "yesterday"}, ["body", 0, "startsAt"]),
    ({"labels": {"a": "x"}, "startsAt": 1767225600}, ["body", 0, "startsAt"]),  # not UNIX seconds
    ({"labels": {"a": "x"}, "endsAt": "2026-01-01"}, ["body", 0, "endsAt"]),  # a date alone
    ({"labels": {"a": "x"}, "startsAt": "2026-01-02T00:00:00Z", "endsAt": "2026-01-01T00:00:00Z"},
     ["body", 0, "endsAt"]),
    ({"labels": {"a": "x"}, "endsAt": "9999-12-31T23:59:59-05:00"}, ["body", 0, "endsAt"]),
    ({"labels": {"a": "x", "project": "not a project!"}}, ["body", 0, "labels", "project"]),
    ({"annotations": {}}, ["body", 0, "labels"]),
])
def test_a_bad_alert_is_refused_naming_the_field(service: ServiceProcess, body: dict[str, Any],
                                                 loc: list[Any]) -> None:
    response = service.api("POST", "/api/v2/alerts", json=[body])
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == loc


def test_a_body_that_is_not_a_list_is_refused(service: ServiceProcess) -> None:
    for body in ({"labels": {"a": "b"}}, "text", None):
        response = service.api("POST", "/api/v2/alerts", json=body)
        assert response.status_code == 422 and response.json()["detail"][0]["loc"][0] == "body"
    assert service.api("POST", "/api/v2/alerts", content=b"[{", headers={"Content-Type": "application/json"}
                       ).status_code == 422


def test_project_keys_post_and_see_their_own_project(service: ServiceProcess) -> None:
    vision = service.create_key("vision")
    audio = service.create_key("audio")
    assert post(service, [alert("ScopedOwn")], key=vision)["new"] == 1  # no project label: the key's project
    assert post(service, [alert("ScopedLabel", project="vision")], key=vision)["new"] == 1
    refused = service.api("POST", "/api/v2/alerts", key=vision, json=[alert("Ok"), alert("Theirs", project="audio")])
    assert refused.status_code == 403 and "alert 1" in refused.json()["detail"]
    assert "Ok" not in listed(service)  # refused as a whole
    assert {"ScopedOwn", "ScopedLabel"} <= set(listed(service, vision))
    assert all(a["labels"]["project"] == "vision" for a in listed(service, vision).values())
    assert {"ScopedOwn", "ScopedLabel"}.isdisjoint(listed(service, audio))
    assert listed(service)["ScopedOwn"]["labels"]["project"] == "vision"  # admins see every project
    groups = service.api("GET", "/api/v2/alerts/groups", key=audio).json()
    assert all(a["labels"]["project"] == "audio" for g in groups for a in g["alerts"])

    later = iso(time.time() + 600)
    mine = {"matchers": [{"name": "project", "value": "vision", "isRegex": False}], "startsAt": iso(time.time()),
            "endsAt": later, "createdBy": "v", "comment": "ours"}
    theirs = {**mine, "matchers": [{"name": "alertname", "value": "ScopedOwn", "isRegex": False}]}
    assert service.api("POST", "/api/v2/silences", key=vision, json=theirs).status_code == 403
    own = service.api("POST", "/api/v2/silences", key=vision, json=mine).json()["silenceID"]
    assert own in [s["id"] for s in service.api("GET", "/api/v2/silences", key=vision).json()]
    assert own not in [s["id"] for s in service.api("GET", "/api/v2/silences", key=audio).json()]
    assert service.api("GET", f"/api/v2/silence/{own}", key=audio).status_code == 404
    assert service.api("DELETE", f"/api/v2/silence/{own}", key=audio).status_code == 404
    assert service.api("DELETE", f"/api/v2/silence/{own}", key=vision).status_code == 200


def test_basic_auth_with_the_key_as_password(service: ServiceProcess) -> None:
    def basic(password: str) -> dict[str, str]:
        return {"Authorization": "Basic " + base64.b64encode(f"prometheus:{password}".encode()).decode()}

    assert service.api("GET", "/api/v2/status", headers=basic(service.admin_key)).status_code == 200
    assert service.api("POST", "/api/v2/alerts", headers=basic(service.admin_key),
                       json=[alert("ViaBasic")]).status_code == 200
    for headers in (basic("not-a-key"), basic(""), {"Authorization": "Basic !!!"}, {"Authorization": ""}):
        response = service.api("GET", "/api/v2/alerts", headers=headers)
        assert response.status_code == 401, headers


@pytest.mark.both_backends
def test_resent_resolved_and_expired(service_factory: Callable[..., ServiceProcess],
                                     webhook_receiver: WebhookReceiver) -> None:
    """A resend updates the alert (one notification); an endsAt in the past resolves it; an alert not sent
    again before its endsAt resolves by itself; a resolution of nothing firing does nothing."""
    service = service_factory({"channels": {"hook": {"type": "webhook", "url": webhook_receiver.url}},
                               "defaults": {"channels": ["hook"], "group_by": ["alertname"], "group_wait": "0s",
                                            "group_interval": "1s"}})
    far = iso(time.time() + 600)
    first = [{**alert("Resent"), "endsAt": far}]
    assert post(service, first)["new"] == 1
    webhook_receiver.wait_until(told("Resent"), timeout=60, what="the first notification")
    changed = [{**first[0], "annotations": {"summary": "Resent, now worse"}}]
    for copy in (first, first, changed):
        assert post(service, copy) == {"received": 1, "new": 0, "updated": 1, "resolved": 0}
    assert listed(service)["Resent"]["annotations"] == {"summary": "Resent, now worse"}

    # Soon over, and never sent again: the expiry job resolves it (Prometheus went away).
    assert post(service, [{**alert("Expires"), "endsAt": iso(time.time() + 2)}])["new"] == 1
    assert post(service, [{**alert("Nothing"), "endsAt": iso(time.time() - 5)}]) == {
        "received": 1, "new": 0, "updated": 0, "resolved": 0}
    webhook_receiver.wait_until(told("Expires", "resolved"), timeout=60, what="the expired alert resolved")
    stored = {a["labels"]["alertname"]: a for a in service.api(
        "GET", "/api/v1/alerts", params={"source": "prometheus"}).json()["alerts"]}
    assert stored["Expires"]["status"] == "resolved"
    assert stored["Expires"]["resolved_reason"] == "not sent again before its endsAt"
    assert "Expires" not in listed(service)

    # Resolved by Prometheus: an endsAt in the past.
    ended = iso(time.time() - 1)
    assert post(service, [{**changed[0], "endsAt": ended}])["resolved"] == 1
    webhook_receiver.wait_until(told("Resent", "resolved"), timeout=60, what="Resent resolved")
    assert notices(webhook_receiver, "Resent") == ["firing", "resolved"]
    assert notices(webhook_receiver, "Nothing") == []
    resolved = {a["labels"]["alertname"]: a for a in service.api(
        "GET", "/api/v1/alerts", params={"source": "prometheus"}).json()["alerts"]}["Resent"]
    assert resolved["ends_at"][:19] == ended[:19] and resolved["resolved_reason"] == "resolved in Prometheus"
    assert resolved["title"] == "Resent, now worse"

    # Firing again after it resolved: a new alert (a new episode, told again).
    assert post(service, first)["new"] == 1
    webhook_receiver.wait_until(
        lambda requests: notices(webhook_receiver, "Resent") == ["firing", "resolved", "firing"], timeout=60,
        what="Resent firing again")


def test_a_restart_keeps_firing_alerts_and_their_expiry(service_factory: Callable[..., ServiceProcess],
                                                        webhook_receiver: WebhookReceiver) -> None:
    service = service_factory({"channels": {"hook": {"type": "webhook", "url": webhook_receiver.url}},
                               "defaults": {"channels": ["hook"], "group_by": ["alertname"], "group_wait": "0s",
                                            "group_interval": "1s"}})
    assert post(service, [{**alert("Survives"), "endsAt": iso(time.time() + 600)}])["new"] == 1
    assert post(service, [{**alert("RunsOut"), "endsAt": iso(time.time() + 8)}])["new"] == 1
    webhook_receiver.wait_until(lambda requests: told("Survives")(requests) and told("RunsOut")(requests),
                                timeout=60, what="both firing")
    service.stop()
    service.start()
    assert post(service, [{**alert("Survives"), "endsAt": iso(time.time() + 600)}])["updated"] == 1
    webhook_receiver.wait_until(told("RunsOut", "resolved"), timeout=60, what="RunsOut resolved after the restart")
    assert notices(webhook_receiver, "Survives") == ["firing"]
