"""The operations pages (alerts, rules, silences, notifications) against a real service, read through
their JSON twins after a login through the real form; HTML only where escaping is the point."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest

from tests.support.service import ServiceProcess, running_service
from tests.support.waiting import eventually
from tests.web.session import form_token, logged_in

HOSTILE = "<script>alert(1)</script>"
ESCAPED = "&lt;script&gt;alert(1)&lt;/script&gt;"

RULES = """\
rules:
  - name: acc-low
    metric: val/acc
    when: "< 0.3"
    labels: {team: vision}
    title: "Accuracy low in {{ run.name }}"
  - name: loss-high
    description: Loss above ten for a long time
    metric: train/loss
    when: "> 10"
    for: 1000
    severity: critical
"""


@pytest.fixture(scope="module")
def rules_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("ops-rules") / "rules.yaml"


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory, rules_file: Path) -> Iterator[ServiceProcess]:
    rules_file.write_text(RULES)
    with running_service(tmp_path_factory.mktemp("ops-pages"), {"rule_files": [str(rules_file)]}) as shared:
        yield shared


def new_project() -> str:
    """Every test works in projects of its own: the service is shared."""
    return f"p-{uuid.uuid4().hex[:8]}"


def start_run(service: ServiceProcess, key: str, project: str, run_id: str, *,
              points: list[dict[str, float]] | None = None) -> None:
    response = service.api("POST", "/api/v1/runs", key=key, json={"project": project, "id": run_id,
                                                                  "name": f"{run_id}-name"})
    assert response.status_code == 200, response.text
    if points:
        log_points(service, key, project, run_id, points)


def log_points(service: ServiceProcess, key: str, project: str, run_id: str, points: list[dict[str, float]], *,
               first_seq: int = 1, first_step: int = 0) -> None:
    records = [{"seq": first_seq + i, "type": "history", "step": first_step + i, "timestamp": time.time(),
                "data": data} for i, data in enumerate(points)]
    response = service.api("POST", f"/api/v1/runs/{project}/{run_id}/records", key=key, json={"records": records})
    assert response.status_code == 200, response.text


def sdk_alert(service: ServiceProcess, key: str, project: str, run_id: str, title: str, *,
              level: str = "info") -> None:
    response = service.api("POST", f"/api/v1/runs/{project}/{run_id}/alerts", key=key, json={"alerts": [{
        "id": uuid.uuid4().hex, "title": title, "text": "from the training loop", "level": level,
        "wait_duration": 0, "timestamp": time.time()}]})
    assert response.status_code == 200, response.text


def alerts(client: httpx.Client, query: str = "") -> list[dict[str, Any]]:
    response = client.get(f"/alerts.json?{query}")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["alerts"]
    return found


def wait_alerts(client: httpx.Client, query: str, count: int) -> list[dict[str, Any]]:
    return eventually(lambda: alerts(client, query), lambda found: len(found) == count,
                      what=f"{count} alerts for ?{query}")


def notifications_of(client: httpx.Client, alert_id: str) -> list[dict[str, Any]]:
    response = client.get(f"/notifications.json?alert={alert_id}")
    assert response.status_code == 200, response.text
    found: list[dict[str, Any]] = response.json()["notifications"]
    return found


def token(client: httpx.Client) -> str:
    return form_token(client.get("/silences/new").text)


def test_alert_filters_statuses_and_links(service: ServiceProcess) -> None:
    project = new_project()
    key = service.create_key(project)
    start_run(service, key, project, "r1", points=[{"val/acc": 0.5}, {"val/acc": 0.1, "train/loss": 20.0}])
    start_run(service, key, project, "r2")
    sdk_alert(service, key, project, "r2", "checkpoint went missing", level="error")
    client = logged_in(service, key)
    wait_alerts(client, f"project={project}", 3)

    [fired] = alerts(client, "rule=acc-low")  # a project key's listing is its own project's
    assert (fired["status"], fired["display_status"], fired["silenced_by"]) == ("firing", "firing", [])
    assert (fired["step"], fired["metric"], fired["labels"]["team"]) == (1, "val/acc", "vision")
    assert fired["links"] == {
        "detail": f"/alerts/{fired['id']}",
        "run": f"/runs/{project}/r1?step=1#metric-val%2Facc",
        "notifications": f"/notifications?alert={fired['id']}",
        "silence": fired["links"]["silence"],
        "chart": f"/alerts/{fired['id']}/chart.png"}
    silence_link = urlsplit(fired["links"]["silence"])
    assert silence_link.path == "/silences/new"
    assert parse_qs(silence_link.query)["matcher"] == ['alertname="acc-low"', f'project="{project}"', 'run="r1"',
                                                        'metric="val/acc"']

    [pending] = alerts(client, "status=pending")
    assert (pending["rule"], pending["id"], pending["severity"], pending["step"]) == ("loss-high", None, "critical", 1)
    assert pending["links"]["run"] == f"/runs/{project}/r1?step=1#metric-train%2Floss"
    assert [a["title"] for a in alerts(client, "source=sdk")] == ["checkpoint went missing"]
    assert [a["title"] for a in alerts(client, "severity=error")] == ["checkpoint went missing"]
    assert [a["rule"] for a in alerts(client, "severity=critical")] == ["loss-high"]
    assert [a["rule"] for a in alerts(client, "source=rule&status=firing")] == ["acc-low"]
    assert [a["title"] for a in alerts(client, f"project={project}&run=r2")] == ["checkpoint went missing"]
    assert {a["rule"] for a in alerts(client, "run=r1")} == {"acc-low", "loss-high"}
    assert alerts(client, "run=never-seen") == []
    assert alerts(client, "status=resolved") == []
    assert client.get("/alerts.json?status=bogus").status_code == 422
    assert client.get("/alerts?severity=loud").status_code == 422  # the page says so, it does not crash

    log_points(service, key, project, "r1", [{"val/acc": 0.9}], first_seq=3, first_step=2)
    [resolved] = wait_alerts(client, "status=resolved", 1)
    assert (resolved["id"], resolved["resolved_reason"]) == (fired["id"], "condition cleared")

    detail = client.get(f"/alerts/{fired['id']}.json").json()
    assert detail["alert"]["id"] == fired["id"] and detail["alert"]["text"]
    notified = eventually(lambda: client.get(f"/alerts/{fired['id']}.json").json()["notifications"], bool,
                          what="the alert's notification")
    assert all(fired["id"] in [a["id"] for a in n["alerts"]] for n in notified)
    listed = notifications_of(client, fired["id"])
    assert {n["id"] for n in listed} >= {n["id"] for n in notified}
    assert all(n["channel"] == "console" for n in listed)
    assert client.get(f"/notifications.json?alert={fired['id']}&channel=nowhere").json()["notifications"] == []
    assert client.get("/alerts/not-an-alert.json").status_code == 404


def test_silence_form_preview_create_and_expire(service: ServiceProcess) -> None:
    project = new_project()
    key = service.create_key(project)
    for run_id in ("r1", "r2"):
        start_run(service, key, project, run_id, points=[{"val/acc": 0.1}])
    sdk_alert(service, key, project, "r1", "an sdk alert")
    client = logged_in(service, key)
    wait_alerts(client, "status=firing", 3)
    by_run = {a["run"]["id"]: a for a in alerts(client, "rule=acc-low")}
    key_id = service.api("GET", "/api/v1/auth", key=key).json()["key_id"]

    # "Silence like this" opens the form with the alert's matchers, the creator and the preview.
    form = client.get(by_run["r1"]["links"]["silence"].replace("/silences/new?", "/silences/new.json?")).json()
    assert form["form"]["matchers"].splitlines() == ['alertname="acc-low"', f'project="{project}"', 'run="r1"',
                                                     'metric="val/acc"']
    assert form["form"]["created_by"] == key_id
    assert [a["id"] for a in form["preview"]["alerts"]] == [by_run["r1"]["id"]]

    csrf = token(client)
    as_json = {"X-CSRF-Token": csrf, "Accept": "application/json"}

    def preview(matchers: str) -> dict[str, Any]:
        response = client.post("/silences/preview", data={"matchers": matchers}, headers=as_json)
        assert response.status_code == 200, response.text
        shown: dict[str, Any] = response.json()
        return shown

    every = f"project={project}\nalertname=~\"acc-low|sdk\""
    assert {a["id"] for a in preview(every)["alerts"]} == {a["id"] for a in alerts(client, "status=firing")}
    assert {a["id"] for a in preview(f"project={project}\nalertname=acc-low")["alerts"]} == \
        {by_run["r1"]["id"], by_run["r2"]["id"]}
    assert preview(f"project={project}\nrun=r9")["alerts"] == []
    repeated = client.post("/silences/preview", data={"matcher": [f"project={project}", "run=r2"]}, headers=as_json)
    assert [a["id"] for a in repeated.json()["alerts"]] == [by_run["r2"]["id"]]  # repeated fields work too
    bad = preview(f"project={project}\nrun~r1")
    assert bad["alerts"] == [] and bad["errors"][0]["line"] == 2 and bad["errors"][0]["field"] == "matchers"
    assert "only create silences with the matcher" in preview("alertname=acc-low")["scope_error"]
    fragment = client.post("/silences/preview", data={"matchers": f"project={project}\nrun=r1"},
                           headers={"X-CSRF-Token": csrf, "HX-Request": "true"})
    assert fragment.status_code == 200 and 'id="silence-preview"' in fragment.text
    assert f'data-alert-id="{by_run["r1"]["id"]}"' in fragment.text
    assert client.post("/silences/preview", data={"matchers": "run=r1"}).status_code == 403  # no token

    def silences() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = client.get("/silences.json").json()["silences"]
        return found

    good = {"matchers": f"project={project}\nrun=r1\nalertname=acc-low", "duration": "1h",
            "created_by": key_id, "comment": "retraining r1"}
    refused = client.post("/silences/new", data=good, follow_redirects=False)  # no CSRF token
    assert refused.status_code == 403 and silences() == []

    wrong = client.post("/silences/new", data={**good, "csrf_token": csrf,
                                               "matchers": f"project={project}\nrun~r1\n\nteam=\"x"})
    assert wrong.status_code == 422
    assert "matchers, line 2: invalid matcher" in wrong.text and "matchers, line 4:" in wrong.text
    assert client.post("/silences/new", data={**good, "csrf_token": csrf, "duration": "soon"}).status_code == 422
    foreign = client.post("/silences/new", data={**good, "csrf_token": csrf, "matchers": "project=someone-else"})
    assert foreign.status_code == 403 and "may only create silences with the matcher" in foreign.text
    no_end = client.post("/silences/new", data={**good, "csrf_token": csrf, "duration": "",
                                                "ends_at": "2001-01-01T00:00"})
    assert no_end.status_code == 422 and "ends_at: the silence must end after it starts" in no_end.text
    assert silences() == []

    created = client.post("/silences/new", data={**good, "csrf_token": csrf}, follow_redirects=False)
    assert created.status_code == 303, created.text
    [silence] = silences()
    assert created.headers["location"].startswith(f"/silences?created={silence['id']}")
    assert (silence["state"], silence["created_by"], silence["comment"]) == ("active", key_id, "retraining r1")
    assert silence["muting"] == 1

    [silenced] = alerts(client, "status=silenced")
    assert (silenced["id"], silenced["status"], silenced["silenced_by"]) == (by_run["r1"]["id"], "firing",
                                                                             [silence["id"]])
    assert by_run["r1"]["id"] not in {a["id"] for a in alerts(client, "status=firing")}
    assert by_run["r2"]["id"] in {a["id"] for a in alerts(client, "status=firing")}
    assert [s["id"] for s in client.get("/silences.json?state=active").json()["silences"]] == [silence["id"]]
    assert client.get("/silences.json?state=expired").json()["silences"] == []

    assert client.post(f"/silences/{silence['id']}/expire").status_code == 403  # no token: still active
    assert silences()[0]["state"] == "active"
    expired = client.post(f"/silences/{silence['id']}/expire", data={"csrf_token": csrf}, follow_redirects=False)
    assert expired.status_code == 303
    assert [s["id"] for s in client.get("/silences.json?state=expired").json()["silences"]] == [silence["id"]]
    assert alerts(client, "status=silenced") == []
    assert client.post("/silences/nope/expire", data={"csrf_token": csrf}).status_code == 404


def test_a_project_key_sees_only_its_project(service: ServiceProcess) -> None:
    mine, theirs = new_project(), new_project()
    my_key, their_key = service.create_key(mine), service.create_key(theirs)
    admin = logged_in(service, service.admin_key)
    for project, key in ((mine, my_key), (theirs, their_key)):
        start_run(service, key, project, "r1", points=[{"val/acc": 0.1}])
        sdk_alert(service, key, project, "r1", f"alert of {project}")
        for alert in wait_alerts(admin, f"project={project}", 2):  # notified before the silence below
            eventually(partial(notifications_of, admin, alert["id"]), bool,
                       what=f"a notification of {alert['title']}")
        assert service.api("POST", "/api/v1/silences", key=key, json={
            "matchers": [f"project={project}", "run=r1"], "duration": "1h", "created_by": "t",
            "comment": f"silence of {project}"}).status_code == 200
    their_alerts = alerts(admin, f"project={theirs}")

    client = logged_in(service, my_key)
    shown = wait_alerts(client, "", 2)
    assert {a["project"] for a in shown} == {mine}
    assert [s["comment"] for s in client.get("/silences.json").json()["silences"]] == [f"silence of {mine}"]
    notified = eventually(lambda: client.get("/notifications.json").json()["notifications"], bool,
                          what="a notification of the own project")
    assert {a["project"] for n in notified for a in n["alerts"]} == {mine}
    for path in (f"/alerts.json?project={theirs}", f"/alerts?project={theirs}",
                 f"/alerts/{their_alerts[0]['id']}.json", f"/alerts/{their_alerts[0]['id']}"):
        assert client.get(path).status_code == 403, path
    assert notifications_of(client, their_alerts[0]["id"]) == []
    for path in ("/alerts", "/silences", "/notifications", f"/alerts/{shown[0]['id']}",
                 f"/silences/new?matcher=project%3D{theirs}"):
        html = client.get(path).text
        assert f"alert of {theirs}" not in html and f"silence of {theirs}" not in html, path
    [their_id] = [s["id"] for s in admin.get("/silences.json").json()["silences"]
                  if s["comment"] == f"silence of {theirs}"]
    assert client.post(f"/silences/{their_id}/expire", data={"csrf_token": token(client)}).status_code == 403
    assert [s["state"] for s in admin.get("/silences.json").json()["silences"] if s["id"] == their_id] == ["active"]
    # The dashboard's counts are of the own project; the admin's of all.
    rules = {r["name"]: r for r in client.get("/rules.json").json()["rules"]}
    assert rules["acc-low"]["firing"] == 1
    assert {r["name"]: r for r in admin.get("/rules.json").json()["rules"]}["acc-low"]["firing"] >= 2


def test_rules_page_sources_counts_and_reload_errors(service: ServiceProcess, rules_file: Path) -> None:
    project = new_project()
    key = service.create_key(project)
    start_run(service, key, project, "r1", points=[{"val/acc": 0.1, "train/loss": 50.0}])
    client = logged_in(service, key)
    wait_alerts(client, "status=firing", 1)
    data = client.get("/rules.json").json()
    assert data["reload_error"] is None and data["counts_project"] == project
    rules = {r["name"]: r for r in data["rules"]}
    lines = RULES.splitlines()
    for name in ("acc-low", "loss-high"):
        line = lines.index(f"  - name: {name}") + 1
        assert rules[name]["location"] == f"{rules_file}:{line}", rules[name]
        assert rules[name]["source"].startswith(f"{rules_file}:{line}:")
    assert (rules["acc-low"]["firing"], rules["acc-low"]["pending"]) == (1, 0)
    assert (rules["loss-high"]["firing"], rules["loss-high"]["pending"]) == (0, 1)
    assert rules["acc-low"]["condition"] == "when: < 0.3" and rules["acc-low"]["labels"] == {"team": "vision"}
    assert rules["loss-high"]["severity"] == "critical" and rules["loss-high"]["for"] == 1000
    assert rules["acc-low"]["where"]["project"] == "*"
    assert f"{rules_file}:{lines.index('  - name: acc-low') + 1}" in client.get("/rules").text

    try:
        rules_file.write_text(RULES + f'  - name: "{HOSTILE}"\n    metric: x\n    when: "< 1"\n')
        response = service.api("POST", "/api/v1/reload")
        assert response.status_code == 400, response.text
        failure = client.get("/rules.json").json()
        assert failure["reload_error"]["errors"] == response.json()["errors"]
        assert any(e.startswith(f"{rules_file}:{len(lines) + 1}:") for e in failure["reload_error"]["errors"])
        assert {r["name"] for r in failure["rules"]} == {"acc-low", "loss-high"}  # the last good ones
        html = client.get("/rules").text
        assert "The last reload failed" in html and HOSTILE not in html and ESCAPED in html
    finally:
        rules_file.write_text(RULES)
        assert service.api("POST", "/api/v1/reload").status_code == 200
    assert client.get("/rules.json").json()["reload_error"] is None


def test_user_strings_are_escaped(service: ServiceProcess) -> None:
    project = new_project()
    key = service.create_key(project)
    start_run(service, key, project, "r1")
    sdk_alert(service, key, project, "r1", HOSTILE)
    client = logged_in(service, service.admin_key)
    [alert] = wait_alerts(client, f"project={project}", 1)
    csrf = token(client)
    matchers = f"project={project}\ncomment_label=\"{HOSTILE}\""
    created = client.post("/silences/new", follow_redirects=False, data={
        "matchers": matchers, "duration": "1h", "created_by": HOSTILE, "comment": HOSTILE, "csrf_token": csrf})
    assert created.status_code == 303, created.text
    eventually(lambda: notifications_of(client, alert["id"]), bool,
               what="the alert's notification")
    pages = ["/alerts", f"/alerts?project={project}", f"/alerts/{alert['id']}", "/silences",
             f"/notifications?alert={alert['id']}", f"/silences/new?matcher=run%3D{HOSTILE}",
             f"/silences/new?matcher=project%3D{project}"]
    for path in pages:
        response = client.get(path)
        assert response.status_code == 200 and HOSTILE not in response.text, path
    for path in ("/silences", f"/alerts/{alert['id']}", f"/silences/new?matcher=project%3D{project}"):
        assert ESCAPED in client.get(path).text, path
    fragment = client.post("/silences/preview", data={"matchers": f"project={project}"},
                           headers={"X-CSRF-Token": csrf, "HX-Request": "true"})
    assert HOSTILE not in fragment.text and ESCAPED in fragment.text
    form_error = client.post("/silences/new", data={"matchers": f"{HOSTILE}", "duration": "1h", "created_by": "x",
                                                    "comment": "x", "csrf_token": csrf})
    assert form_error.status_code == 422 and HOSTILE not in form_error.text
