"""The run, runs-table and compare pages, read through their JSON twins and HTML (a real service)."""

from __future__ import annotations

import base64
import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from tests.support.service import ServiceProcess, running_service
from tests.support.waiting import eventually

RULES = """
rules:
  - {name: loss-high, metric: "train/*", when: "> 5", recover_when: "< 4"}
  - {name: other-project-only, where: {project: "elsewhere"}, metric: train/loss, when: "> 1"}
  - {name: nan-loss, metric: train/loss, when: not finite}
"""

# A 1x1 PNG, as the SDK's Image sends it.
PNG = base64.b64encode(bytes.fromhex(
    "89504e470d0a1a0a0000000d4948445200000001000000010806000000"
    "1f15c4890000000d49444154789c6360f8cf00000301010018dd8db0"
    "0000000049454e44ae426082")).decode()


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    workdir = tmp_path_factory.mktemp("run-page")
    (workdir / "rules.yaml").write_text(RULES)
    with running_service(workdir, {"rule_files": [str(workdir / "rules.yaml")]}) as started:
        yield started


@pytest.fixture(scope="module")
def key(service: ServiceProcess) -> str:
    return service.create_key("pages")


def new_run(service: ServiceProcess, key: str, **init: Any) -> str:
    run_id = init.pop("id", None) or f"r{uuid.uuid4().hex[:8]}"
    response = service.api("POST", "/api/v1/runs", key=key, json={"project": "pages", "id": run_id, **init})
    assert response.status_code == 200, response.text
    return run_id


def send(service: ServiceProcess, key: str, run_id: str, records: list[dict[str, Any]]) -> None:
    response = service.api("POST", f"/api/v1/runs/pages/{run_id}/records", key=key,
                           json={"records": [{"seq": i + 1, **r} for i, r in enumerate(records)]})
    assert response.status_code == 200, response.text


def step(n: int, data: dict[str, Any]) -> dict[str, Any]:
    return {"type": "history", "step": n, "timestamp": 1_800_000_000.0 + n, "runtime": float(n), "data": data}


def test_run_page_charts_thresholds_markers_media(service: ServiceProcess, key: str, client: httpx.Client) -> None:
    run_id = new_run(service, key, name="page-run", config={"lr": 0.1, "model": {"depth": 3}})
    losses = [1.0, 2.0, 6.0, 7.0, 3.0, 2.0]  # fires at step 2, resolves at step 4
    table = {"_type": "table", "columns": ["input", "pred"],
             "data": [["<b>cat</b>", 0.9], [{"_type": "image", "format": "png", "width": 1, "height": 1,
                                              "caption": "x", "data": PNG}, 0.1]]}
    image = {"_type": "image", "format": "png", "width": 1, "height": 1, "caption": "sample", "data": PNG}
    records = [step(i, {"train/loss": v, "val/acc": i / 10, "system/cpu_percent": 50.0, "epoch": i})
               for i, v in enumerate(losses)]
    records[3]["data"].update(preds=table, sample=image)
    send(service, key, run_id, records)
    page = eventually(lambda: client.get(f"/runs/pages/{run_id}.json").json(),
                      lambda p: any(m["resolved_step"] is not None for m in p["markers"].get("train/loss", [])),
                      what="the fired and resolved alert on the run page")
    assert [g["name"] for g in page["groups"]] == ["train", "val", "metrics", "system"]
    assert page["groups"][2]["metrics"] == ["epoch"]
    # Only the rules that apply to this run, on the keys they watch; `not finite` has no line.
    assert page["thresholds"] == {"train/loss": [{"rule": "loss-high", "value": 5.0, "op": ">", "severity": "warning",
                                                  "condition": "when: > 5"}]}
    [marker] = page["markers"]["train/loss"]
    assert (marker["fired_step"], marker["resolved_step"], marker["status"]) == (2, 4, "resolved")
    assert marker["url"] == f"/alerts/{marker['alert']}"
    [shown_table] = page["media"]["tables"]
    assert shown_table["step"] == 3 and shown_table["columns"] == ["input", "pred"]
    assert shown_table["rows"][0][0] == {"text": "<b>cat</b>"}
    assert shown_table["rows"][1][0]["image"]["src"] == f"data:image/png;base64,{PNG}"
    [shown_image] = page["media"]["images"]
    assert (shown_image["key"], shown_image["step"], shown_image["caption"]) == ("sample", 3, "sample")
    html = client.get(f"/runs/pages/{run_id}?step=2").text
    assert 'id="metric-train/loss"' in html and 'data-focus-step="2"' in html
    assert "loss-high fired at step 2" in html and "resolved at step 4" in html
    assert "&lt;b&gt;cat&lt;/b&gt;" in html and "<b>cat</b>" not in html
    assert 'src="data:image/png;base64,' in html
    assert "depth" in html  # nested config shown


def test_a_failed_run_says_why(service: ServiceProcess, key: str, client: httpx.Client) -> None:
    failed = new_run(service, key, name="will-fail")
    send(service, key, failed, [step(0, {"train/loss": 1.0}),
                                {"type": "exit", "state": "failed", "exit_code": 1, "reason": "ValueError: boom",
                                 "console_tail": "Traceback ...\nValueError: boom", "timestamp": 1_800_000_010.0}])
    html = client.get(f"/runs/pages/{failed}").text
    assert "Failed (exit code 1)" in html and "ValueError: boom" in html and "Console tail" in html
    data = client.get(f"/runs/pages/{failed}.json").json()
    assert data["run"]["state"] == "failed" and data["run"]["console_tail"].endswith("ValueError: boom")


def test_runs_table_filters_pages_and_picked_metrics(service: ServiceProcess, key: str, client: httpx.Client) -> None:
    tag = f"t{uuid.uuid4().hex[:6]}"
    ids = [new_run(service, key, name=f"table-{tag}-{i}", tags=[tag]) for i in range(3)]
    send(service, key, ids[0], [step(0, {"val/acc": 0.5}), {"type": "summary", "summary": {"val/acc": 0.5}}])
    data = client.get(f"/projects/pages.json?tag={tag}&metrics=val/acc").json()
    assert [r["id"] for r in data["runs"]] == ids[::-1]  # newest first
    assert data["runs"][2]["metrics"] == {"val/acc": 0.5} and data["runs"][0]["metrics"] == {"val/acc": None}
    assert [r["id"] for r in client.get(f"/projects/pages.json?name=table-{tag}-1").json()["runs"]] == [ids[1]]
    assert client.get(f"/projects/pages.json?tag={tag}&state=finished").json()["runs"] == []
    assert client.get("/projects/pages.json?page=0").status_code == 422
    assert client.get("/projects/pages.json?state=sleeping").json()["detail"][0]["loc"] == ["query", "state"]
    compare = client.get(f"/compare.json?project=pages&run={ids[0]}&run={ids[1]}").json()
    assert [r["id"] for r in compare["runs"]] == ids[:2]
    assert compare["groups"] == [{"name": "val", "metrics": ["val/acc"]}]
    assert client.get("/compare.json?project=pages&run=nope").status_code == 404


def test_series_twin_matches_the_api(service: ServiceProcess, key: str, client: httpx.Client) -> None:
    run_id = new_run(service, key, name="series")
    send(service, key, run_id, [step(i, {"train/loss": float(i % 7)}) for i in range(3000)])
    query = "key=train/loss&width=100&start=10&end=2500"
    twin = client.get(f"/runs/pages/{run_id}/series.json?{query}")
    api = service.api("GET", f"/api/v1/runs/pages/{run_id}/series?{query}", key=key)
    assert twin.status_code == api.status_code == 200
    assert twin.json() == api.json() and twin.json()["mode"] == "minmax"
    bad = client.get(f"/runs/pages/{run_id}/series.json?key=train/loss&width=5")
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"] == ["query", "width"]
    assert client.get(f"/runs/pages/{run_id}/series.json").json()["detail"][0]["loc"] == ["query", "key"]
