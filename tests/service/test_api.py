"""The HTTP API against a real service process: auth, bad input (4xx naming the field, never 500)."""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator

import httpx
import pytest

from alerts.api import answers
from alerts.api.files import artifact_json, file_json
from alerts.model import Alert, AlertSource, AlertStatus, Notification, Run, RunState, Severity
from alerts.presentation import alert_object, notification_json, run_json
from alerts.storage.base import ArtifactVersion, StoredFile
from tests.support.service import ServiceProcess, running_service


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    """One service for the module (starting one is most of a test's time); each test has its own run."""
    with running_service(tmp_path_factory.mktemp("api-service")) as shared:
        yield shared


@pytest.fixture(scope="module")
def project_key(service: ServiceProcess) -> str:
    return service.create_key("vision")


@pytest.fixture
def run(service: ServiceProcess) -> str:
    """A run id of this test alone, so tests sharing the service never see each other's runs."""
    return f"r-{uuid.uuid4().hex[:12]}"


def init_run(service: ServiceProcess, key: str, run_id: str, **extra: object) -> httpx.Response:
    return service.api("POST", "/api/v1/runs", key=key, json={"project": "vision", "id": run_id, **extra})


def test_missing_bad_and_foreign_keys(service: ServiceProcess, project_key: str, run: str) -> None:
    response = httpx.post(f"{service.base_url}/api/v1/runs", json={"project": "vision", "id": run})
    assert response.status_code == 401
    assert "Authorization: Bearer" in response.json()["detail"]
    assert service.api("POST", "/api/v1/runs", key="rwk_wrong", json={}).status_code == 401
    response = service.api("POST", "/api/v1/runs", key=project_key, json={"project": "audio", "id": run})
    assert response.status_code == 403
    assert init_run(service, project_key, run).status_code == 200
    other = service.create_key("audio")
    assert service.api("GET", f"/api/v1/runs/vision/{run}", key=other).status_code == 403
    assert service.api("GET", f"/api/v1/runs/vision/{run}", key=service.admin_key).status_code == 200


def key_ids(service: ServiceProcess) -> set[str]:
    return {line.split("\t")[0] for line in service.cli("keys", "list").stdout.splitlines()}


def test_revoked_key_stops_working(service: ServiceProcess) -> None:
    before = key_ids(service)
    key = service.create_key("vision")
    (key_id,) = key_ids(service) - before  # from the CLI's listing, not from the answer under test
    assert re.fullmatch(r"[0-9a-f]{8}", key_id)
    assert service.api("GET", "/api/v1/auth", key=key).json() == {"project": "vision", "admin": False,
                                                                   "key_id": key_id}
    assert service.cli("keys", "revoke", key_id).returncode == 0
    listing = service.cli("keys", "list").stdout
    assert f"{key_id}\tproject=vision\trevoked" in listing
    assert key not in listing
    # Keys are cached for 5 s: the revoked one stops working within that, given a slow machine's slack.
    service.wait_for(lambda: service.api("GET", "/api/v1/auth", key=key).status_code == 401, timeout=30)


def test_keys_create_prints_only_the_key(service: ServiceProcess) -> None:
    result = service.cli("keys", "create", "--project", "vision")
    assert result.stdout.count("\n") == 1
    assert result.stdout.startswith("rwk_")
    assert service.cli("keys", "create", check=False).returncode == 2


@pytest.mark.parametrize(("body", "loc"), [
    ({"records": [{"seq": "x", "type": "history", "step": 0, "timestamp": 1, "data": {}}]},
     ["body", "records", 0, "history", "seq"]),
    ({"records": [{"seq": 1, "type": "history", "step": -1, "timestamp": 1, "data": {}}]},
     ["body", "records", 0, "history", "step"]),
    ({"records": [{"seq": 1, "type": "exit", "state": "exploded", "timestamp": 1}]},
     ["body", "records", 0, "exit", "state"]),
    ({"records": [{"seq": 1, "type": "teleport"}]}, ["body", "records", 0]),
    ({"records": "many"}, ["body", "records"]),
    ({"records": [{"seq": 3, "type": "config", "config": {}}]}, ["body", "records", 0, "seq"]),
    ([1, 2, 3], ["body"]),
])
def test_bad_records_get_422_naming_the_field(service: ServiceProcess, project_key: str, run: str, body: object,
                                              loc: list[object]) -> None:
    assert init_run(service, project_key, run).status_code == 200
    response = service.api("POST", f"/api/v1/runs/vision/{run}/records", key=project_key, json=body)
    assert response.status_code == 422, response.text
    assert loc in [error["loc"] for error in response.json()["detail"]]


def test_malformed_json_unknown_run_and_oversized_body(service_factory) -> None:  # type: ignore[no-untyped-def]
    service = service_factory({"server": {"max_body_bytes": 2000}})
    key = service.create_key("vision")
    assert init_run(service, key, "r1").status_code == 200
    response = service.api("POST", "/api/v1/runs/vision/r1/records", key=key, content=b'{"records": [',
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"
    response = service.api("POST", "/api/v1/runs/vision/nope/records", key=key,
                           json={"records": [{"seq": 1, "type": "config", "config": {}}]})
    assert response.status_code == 404
    assert "unknown run vision/nope" in response.json()["detail"]
    big = {"records": [{"seq": 1, "type": "config", "config": {"x": "y" * 5000}}]}
    response = service.api("POST", "/api/v1/runs/vision/r1/records", key=key, json=big)
    assert response.status_code == 413
    assert response.json()["detail"][0]["loc"] == ["body"]
    # Chunked upload without Content-Length is cut off too.
    response = service.api("POST", "/api/v1/runs/vision/r1/records", key=key,
                           content=iter([b'{"records": [', b" " * 3000, b"]}"]),
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert service.api("GET", "/healthz").status_code == 200


def test_resent_batches_are_applied_once(service: ServiceProcess, project_key: str, run: str) -> None:
    assert init_run(service, project_key, run).status_code == 200
    batch = {"records": [
        {"seq": 1, "type": "history", "step": 0, "timestamp": 10.0, "runtime": 0.1,
         "data": {"loss": 1.5, "acc": "NaN", "up": True, "t": {"_type": "table", "columns": ["a"], "data": [[1]]}}},
        {"seq": 2, "type": "history", "step": 1, "timestamp": 11.0, "data": {"loss": "Infinity"}},
    ]}
    first = service.api("POST", f"/api/v1/runs/vision/{run}/records", key=project_key, json=batch).json()
    again = service.api("POST", f"/api/v1/runs/vision/{run}/records", key=project_key, json=batch).json()
    assert first == {"accepted": 2, "duplicates": 0, "last_seq": 2}
    assert again == {"accepted": 0, "duplicates": 2, "last_seq": 2}
    rows = service.api("GET", f"/api/v1/runs/vision/{run}/history", key=project_key).json()["rows"]
    assert rows == [
        {"_step": 0, "_timestamp": 10.0, "_runtime": 0.1, "loss": 1.5, "acc": "NaN", "up": 1.0},
        {"_step": 1, "_timestamp": 11.0, "_runtime": None, "loss": "Infinity"},
    ]
    media = service.api("GET", f"/api/v1/runs/vision/{run}/media", key=project_key).json()["media"]
    assert media == [{"key": "t", "step": 0, "kind": "table",
                      "value": {"_type": "table", "columns": ["a"], "data": [[1]]}}]


def test_history_paging_and_key_filter(service: ServiceProcess, project_key: str, run: str) -> None:
    assert init_run(service, project_key, run).status_code == 200
    records = [{"seq": i + 1, "type": "history", "step": i, "timestamp": 100.0 + i,
                "data": {"loss": float(i)} if i % 2 else {"acc": float(i)}} for i in range(25)]
    response = service.api("POST", f"/api/v1/runs/vision/{run}/records", key=project_key, json={"records": records})
    assert response.status_code == 200, response.text
    steps, after, pages = [], -1, 0
    while after is not None:
        assert pages < 10, f"paging never ends: {steps}"  # 12 rows at 10 a page are 2 pages (3 at most)
        page = service.api("GET", f"/api/v1/runs/vision/{run}/history?limit=10&after_step={after}&keys=loss",
                           key=project_key).json()
        steps += [row["_step"] for row in page["rows"]]
        after, pages = page["next_after_step"], pages + 1
    assert steps == list(range(1, 25, 2))


def test_init_is_idempotent_and_resume_rules(service: ServiceProcess, project_key: str, run: str) -> None:
    first = init_run(service, project_key, run, name="exp-1", config={"lr": 0.1}, tags=["a"]).json()
    assert first["name"] == "exp-1" and first["state"] == "running" and first["heartbeat_interval"] == 10.0
    assert init_run(service, project_key, run).json()["id"] == run
    assert init_run(service, project_key, run, resume="never").status_code == 409
    assert init_run(service, project_key, f"{run}-never-made", resume="must").status_code == 404
    service.api("POST", f"/api/v1/runs/vision/{run}/records", key=project_key, json={"records": [
        {"seq": 1, "type": "exit", "state": "finished", "exit_code": 0, "timestamp": time.time()}]})
    assert init_run(service, project_key, run).json()["state"] == "finished"  # a replayed init never reopens
    assert init_run(service, project_key, run, resume="allow").json()["state"] == "running"


def test_random_bodies_never_get_a_500(service: ServiceProcess, project_key: str, run: str) -> None:
    assert init_run(service, project_key, run).status_code == 200
    log_before = len(service.log_text())
    bodies: list[object] = [None, 0, "x", [], {}, {"records": None}, {"records": [None]},
                            {"records": [{"seq": 1, "type": "history", "step": 0, "timestamp": "now",
                                          "data": {"": 1}}]},
                            {"records": [{"seq": 10**30, "type": "config", "config": []}]},
                            {"alerts": [{"id": "x", "title": "", "timestamp": -1}]},
                            {"alerts": [{"id": "x", "title": "t", "timestamp": 1, "wait_duration": "NaN"}]},
                            {"project": "bad name!", "id": "../etc"}, {"project": "vision", "id": "r" * 500}]
    paths = ["/api/v1/runs", f"/api/v1/runs/vision/{run}/records", f"/api/v1/runs/vision/{run}/alerts",
             f"/api/v1/runs/vision/{run}/heartbeat"]
    for path in paths:
        for body in bodies:
            response = service.api("POST", path, key=project_key, json=body)
            assert response.status_code < 500, (path, body, response.text)
    assert "Traceback" not in service.log_text()[log_before:]


def test_alerts_of_a_run_are_that_runs_only(service: ServiceProcess, project_key: str, run: str) -> None:
    other = f"{run}-other"
    for run_id in (run, other):
        assert init_run(service, project_key, run_id).status_code == 200
        response = service.api("POST", f"/api/v1/runs/vision/{run_id}/alerts", key=project_key, json={"alerts": [{
            "id": uuid.uuid4().hex, "title": f"from {run_id}", "text": "x", "wait_duration": 0,
            "timestamp": time.time()}]})
        assert response.status_code == 200, response.text

    def titles(query: str) -> list[str]:
        response = service.api("GET", f"/api/v1/alerts?{query}", key=project_key)
        assert response.status_code == 200, response.text
        return [alert["title"] for alert in response.json()["alerts"]]

    assert titles(f"project=vision&run={run}") == [f"from {run}"]
    assert titles(f"run={other}") == [f"from {other}"]  # a project key's own project
    assert titles("project=vision&run=never-seen") == []  # not the whole project's alerts
    assert {f"from {run}", f"from {other}"} <= set(titles("project=vision"))
    response = service.api("GET", f"/api/v1/alerts?run={run}")  # admin: a run id needs its project
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "project"]


def test_records_answers_are_the_same_on_the_fast_path(service: ServiceProcess, project_key: str, run: str) -> None:
    """The records route's happy path skips the framework (alerts/api/records_fast.py); with the key cached
    and the run known, every other case still gets the app's own answer."""
    assert init_run(service, project_key, run).status_code == 200
    batch = {"records": [{"seq": 1, "type": "history", "step": 0, "timestamp": time.time(), "data": {"a": 1.0}}]}
    path = f"/api/v1/runs/vision/{run}/records"
    assert service.api("POST", path, key=project_key, json=batch).json() == \
        {"accepted": 1, "duplicates": 0, "last_seq": 1}
    assert service.api("POST", path, key=project_key, json=batch).json() == \
        {"accepted": 0, "duplicates": 1, "last_seq": 1}  # re-sent: applied once
    gap = {"records": [{"seq": 5, "type": "config", "config": {}}]}
    response = service.api("POST", path, key=project_key, json=gap)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "records", 0, "seq"]
    other = service.create_key("audio")
    assert service.api("GET", "/api/v1/auth", key=other).status_code == 200  # cached now
    assert service.api("POST", path, key=other, json=batch).status_code == 403
    response = httpx.post(f"{service.base_url}{path}", json=batch)
    assert response.status_code == 401


# Found by tests/faults/test_api_schema.py: each of these was a 500 (and the first two kept the run
# answering 500 on every read afterwards), or an answer its schema did not document.
@pytest.mark.parametrize(("path", "body", "loc"), [
    # A start beyond 9999-12-31 was stored, then every answer showing the run overflowed datetime.
    ("/api/v1/runs", {"project": "vision", "id": "{run}", "started_at": 7.0e307}, ["body", "started_at"]),
    ("/api/v1/runs/vision/{run}/records", {"records": [{"seq": 1, "type": "exit", "state": "finished",
                                                        "timestamp": 1e300}]},
     ["body", "records", 0, "exit", "timestamp"]),
    # Integers past what the database (and exact JSON) hold: SQLite's OverflowError.
    ("/api/v1/runs/vision/{run}/alerts", {"alerts": [{"id": "a", "title": "t", "timestamp": 1, "step": 2**64}]},
     ["body", "alerts", 0, "step"]),
    ("/api/v1/runs/vision/{run}/records", {"records": [{"seq": 1, "type": "history", "step": 2**63,
                                                        "timestamp": 1, "data": {}}]},
     ["body", "records", 0, "history", "step"]),
    ("/api/v1/runs", {"project": "vision", "id": "{run}", "pid": 2**40}, ["body", "pid"]),
    # A JSON true is not the integer 1 (nor 0 a false): the schema says integer, boolean.
    ("/api/v1/runs", {"project": "vision", "id": "{run}", "pid": True}, ["body", "pid"]),
    ("/api/v1/runs/vision/{run}/alerts", {"alerts": [{"id": "a", "title": "t", "timestamp": 1, "delayed": 0}]},
     ["body", "alerts", 0, "delayed"]),
    # A duration that ends the silence after 9999 (the dashboard and `alerts silence list` overflowed).
    ("/api/v1/silences", {"matchers": ["project=vision"], "duration": 1e300, "created_by": "me",
                          "comment": "c"}, ["body", "duration"]),
])
def test_input_past_what_the_service_can_store_or_show_is_a_422(service: ServiceProcess, project_key: str,
                                                                 run: str, path: str, body: dict[str, object],
                                                                 loc: list[object]) -> None:
    existing = f"{run}-exists"
    assert init_run(service, project_key, existing).status_code == 200
    if body.get("id") == "{run}":
        body = {**body, "id": run}
    response = service.api("POST", path.format(run=existing), key=project_key, json=body)
    assert response.status_code == 422, response.text
    assert loc in [error["loc"] for error in response.json()["detail"]]
    assert service.api("GET", f"/api/v1/runs/vision/{existing}", key=project_key).status_code == 200


def test_huge_integers_in_a_config_are_shown_as_they_came(service: ServiceProcess, project_key: str,
                                                          run: str) -> None:
    """JSON has integers of any size, and a run's config is the user's: orjson's 64-bit limit made every
    read of such a run a 500."""
    big = 10**30
    body = {"project": "vision", "id": run, "config": {"seed": big, "nested": [{"n": -big}], "nan": float("nan")}}
    response = service.api("POST", "/api/v1/runs", key=project_key, content=json.dumps(body),
                           headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    for path in (f"/api/v1/runs/vision/{run}", "/api/v1/runs?project=vision"):
        response = service.api("GET", path, key=project_key)
        assert response.status_code == 200, response.text
        assert f'"seed":{big}' in response.text and f'"n":-{big}' in response.text
    shown = service.api("GET", f"/api/v1/runs/vision/{run}", key=project_key).json()["config"]
    assert shown == {"seed": big, "nested": [{"n": -big}], "nan": None}


def test_a_body_that_is_not_utf8_is_a_422_naming_the_body(service: ServiceProcess, project_key: str) -> None:
    """Malformed JSON is a 422 json_invalid at ["body", ...]; bytes that are not UTF-8 got FastAPI's
    undocumented 400 "There was an error parsing the body"."""
    for content in (b"\xef'\xef\x16f\x10\xef", b'{"project": "vision", "id": "r",'):
        response = service.api("POST", "/api/v1/runs", key=project_key, content=content,
                               headers={"Content-Type": "application/json"})
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["type"] == "json_invalid"
        assert response.json()["detail"][0]["loc"][0] == "body"


def test_a_method_a_path_lacks_is_a_405_allowing_all_of_its_methods(service: ServiceProcess) -> None:
    """The router named only the methods of the first route with the path (`Allow: POST` for /runs)."""
    for path, allowed in (("/api/v1/runs", "GET, POST"), ("/api/v1/silences", "GET, POST"),
                          ("/api/v1/runs/vision/r/files/a.txt", "GET, PUT")):
        response = service.api("OPTIONS", path)
        assert response.status_code == 405
        assert response.headers["allow"] == allowed


def test_the_documented_answers_keep_every_key_the_service_shows() -> None:
    """A route's response_model is also a filter: a key added to a presentation function but not to its
    model in alerts/api/answers.py would vanish from the API (and stay on the dashboard)."""
    run = Run(pk=1, project="p", id="r", name="n", state=RunState.RUNNING, config={}, tags=[], notes=None,
              group=None, job_type=None, summary={}, created_at=1.0, started_at=1.0, last_contact=1.0)
    alert = Alert(id="a", fingerprint="f", source=AlertSource.SDK, project="p", title="t", text="",
                  severity=Severity.INFO, labels={}, status=AlertStatus.FIRING, starts_at=1.0)
    version = ArtifactVersion(pk=1, project="p", name="a", type="t", version=0, digest="d", description=None,
                              metadata={}, size=0, file_count=0, created_by=None, created_at=1.0)
    stored = StoredFile(path="f", sha256="s", size=0, kind="file", updated_at=1.0)
    notification = Notification(id="n", channel="c", group_key="g", message={})
    shown = [(run_json(run, "http://x"), answers.Run),
             (alert_object(alert, run, "http://x"), answers.AlertAnswer),
             (notification_json(notification), answers.NotificationAnswer),
             (artifact_json(version), answers.ArtifactAnswer), (file_json(stored, run), answers.FileAnswer)]
    for data, model in shown:
        assert set(data) <= set(model.model_fields), (model.__name__, set(data) - set(model.model_fields))
