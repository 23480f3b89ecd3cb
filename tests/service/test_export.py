"""The export API against a real service: a long run logged through the SDK comes back row for row.

One run of 100,000 steps × 20 metrics (NaN, ±inf and missing values among them) is logged through
``runwatch.init``/``log``/``finish`` with an injected clock, so every ``_timestamp`` and ``_runtime`` is
known; the CSV and JSON exports and ``runwatch.Api`` must give back exactly what was logged.
"""

from __future__ import annotations

import csv
import json
import math
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import httpx
import pandas as pd
import pytest
import runwatch

from tests.support.service import ServiceProcess, running_service
from tests.support.waiting import eventually

STEPS = 100_000
# Twenty keys; one holds a comma, quotes (CSV quoting) and U+2028 (a line break to str.splitlines, not to
# JSON or CSV); "epoch" is logged as an int.
ODD = 'grad,"norm"\u2028max'
KEYS = ["epoch", "lr", "train/loss", "val/acc", ODD, *[f"layer.{i}.w" for i in range(15)]]
SPARSE = KEYS[-5:]  # each missing on some steps
T0 = float(int(time.time()) - 3 * 3600)  # the injected clock: the run started three hours ago
RULES = """
rules:
  - name: export-run-failed
    where: {project: export}
    run_state: [failed]
    severity: error
"""


def timestamp(step: int) -> float:
    return T0 + step * 0.0173


def logged(step: int) -> dict[str, Any]:
    """What the test logs at ``step``."""
    row: dict[str, Any] = {"epoch": step // 1000, "lr": 0.1 / (1 + step // 5000)}
    for i, key in enumerate(KEYS[2:], start=2):
        if key in SPARSE and (step + i) % (i - 12) == 0:
            continue
        row[key] = math.sin(step * 0.0007 * i) * 10.0 ** (i % 9 - 4)
    if step % 997 == 3:
        row["train/loss"] = math.nan
    if step % 1009 == 5:
        row["val/acc"] = math.inf
    if step % 1013 == 7:
        row[ODD] = -math.inf
    if 60_000 <= step < 60_050:  # a stretch of steps with one metric only
        row = {"lr": row["lr"]}
    return row


def expected(step: int) -> dict[str, Any]:
    """The W&B row the service must give back for ``step`` (the values as floats)."""
    ts = timestamp(step)
    return {"_step": step, "_timestamp": ts, "_runtime": ts - T0, **{k: float(v) for k, v in logged(step).items()}}


def comparable(row: dict[str, Any]) -> dict[str, Any]:
    """NaN never equals itself: compare it by name."""
    return {k: "NaN" if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}


def spelled(value: float) -> str | float:
    """A non-finite float as the JSON export spells it."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def cell(value: float | None) -> str:
    """A value as the CSV export writes it (README: HTTP API)."""
    if value is None:
        return ""
    return repr(value) if math.isfinite(value) else str(spelled(value))


@dataclass
class Logged:
    service: ServiceProcess
    key: str
    other_key: str
    api: runwatch.Api


@pytest.fixture(scope="module")
def logged_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Logged]:
    """The long run ``export/long`` (finished, tags long+baseline, one ``alert()``) and the short run
    ``export/short`` (failed: the rule alert ``export-run-failed``), logged through the SDK."""
    workdir = tmp_path_factory.mktemp("export-service")
    (workdir / "rules.yaml").write_text(RULES)
    with running_service(workdir, {"rule_files": [str(workdir / "rules.yaml")]}) as service, \
            pytest.MonkeyPatch.context() as env:
        for name in ("RUNWATCH_API_KEY", "RUNWATCH_BASE_URL", "RUNWATCH_PROJECT", "RUNWATCH_MODE",
                     "RUNWATCH_FINISH_TIMEOUT", "RUNWATCH_SYSTEM_METRICS"):
            env.delenv(name, raising=False)
        env.setenv("HOME", str(workdir / "home"))
        key = service.create_key("export")
        settings = {"base_url": service.base_url, "api_key": key, "console": False, "signals": False,
                    "system_metrics": False, "disable_git": True, "disable_system_info": True,
                    "finish_timeout": 600.0}
        now = [T0]
        run = runwatch.init(project="export", id="long", tags=["long", "baseline"], config={"lr": 0.1},
                            dir=str(workdir / "runs"), settings=settings, clock=lambda: now[0])
        for step in range(STEPS):
            now[0] = timestamp(step)
            run.log(logged(step))
            if step == 50_000:
                run.alert(title="halfway", text="half of the steps are logged",
                          level=runwatch.AlertLevel.WARN, wait_duration=0)
        run.finish()
        short = runwatch.init(project="export", id="short", tags=["short"], dir=str(workdir / "runs"),
                              settings=settings)
        short.log({"loss": 1.0})
        short.finish(exit_code=1)
        api = runwatch.Api(base_url=service.base_url, api_key=key)
        eventually(lambda: {r.id: r.state for r in api.runs("export")},
                   lambda states: states == {"long": "finished", "short": "failed"}, what="both runs ended")
        yield Logged(service, key, service.create_key("elsewhere"), api)


@contextmanager
def export(logged_runs: Logged, query: str) -> Iterator[httpx.Response]:
    """The long run's history export, read as it downloads."""
    with httpx.stream("GET", f"{logged_runs.service.base_url}/api/v1/runs/export/long/history?{query}",
                      headers={"Authorization": f"Bearer {logged_runs.key}"}, timeout=300) as response:
        assert response.status_code == 200, response.read()
        yield response


def csv_rows(chunks: Iterator[str]) -> Iterator[list[str]]:
    """Parse CSV while it downloads: lines keep their ends, so quoted line breaks would survive."""
    def lines() -> Iterator[str]:
        rest = ""
        for chunk in chunks:
            *complete, rest = (rest + chunk).split("\n")
            yield from (line + "\n" for line in complete)
        if rest:
            yield rest

    return csv.reader(lines())


def test_csv_export_is_every_logged_row(logged_runs: Logged) -> None:
    columns = sorted(KEYS)
    count = 0
    with export(logged_runs, "format=csv") as response:
        assert response.headers["content-type"] == "text/csv; charset=utf-8"
        assert response.headers["content-disposition"] == 'attachment; filename="export-long-history.csv"'
        rows = csv_rows(response.iter_text())
        assert next(rows) == ["_step", "_timestamp", *columns]
        for step, row in enumerate(rows):
            want = expected(step)
            assert row == [str(step), repr(want["_timestamp"]), *[cell(want.get(key)) for key in columns]], step
            count += 1
    assert count == STEPS


def test_json_export_is_every_logged_row(logged_runs: Logged) -> None:
    with export(logged_runs, "format=json") as response:
        assert response.headers["content-type"] == "application/json"
        rows = json.loads(response.read())  # one JSON document
    assert len(rows) == STEPS
    for step, row in enumerate(rows):
        assert row == {k: spelled(v) if isinstance(v, float) else v for k, v in expected(step).items()}, step


def test_keys_choose_columns_and_rows(logged_runs: Logged) -> None:
    """With keys: the steps that logged one of them; in CSV a never-logged key is an empty column."""
    sparse = SPARSE[0]
    wanted = [step for step in range(STEPS) if sparse in logged(step)]
    assert 0 < len(wanted) < STEPS
    with export(logged_runs, f"format=csv&keys={sparse},never-logged,{sparse}&after_step=9") as response:
        rows = list(csv_rows(response.iter_text()))
    assert rows[0] == ["_step", "_timestamp", sparse, "never-logged"]
    assert rows[1:] == [[str(s), repr(timestamp(s)), cell(expected(s)[sparse]), ""] for s in wanted if s > 9]
    with export(logged_runs, f"format=json&keys=never-logged,{sparse}") as response:
        assert json.loads(response.read()) == [
            {"_step": s, "_timestamp": timestamp(s), "_runtime": timestamp(s) - T0, sparse: expected(s)[sparse]}
            for s in wanted]
    with export(logged_runs, "format=json&keys=never-logged") as response:
        assert json.loads(response.read()) == []
    with export(logged_runs, "format=csv&keys=never-logged") as response:
        assert response.read() == b"_step,_timestamp,never-logged\r\n"


def test_paged_history_keeps_its_shape(logged_runs: Logged) -> None:
    response = logged_runs.service.api("GET", "/api/v1/runs/export/long/history?after_step=59990&limit=20",
                                       key=logged_runs.key)
    assert response.status_code == 200
    page = response.json()
    assert page["next_after_step"] == 60_010
    assert page["rows"] == [{k: spelled(v) if isinstance(v, float) else v for k, v in expected(s).items()}
                            for s in range(59_991, 60_011)]


def test_a_bad_format_names_the_field(logged_runs: Logged) -> None:
    response = logged_runs.service.api("GET", "/api/v1/runs/export/long/history?format=xlsx", key=logged_runs.key)
    assert response.status_code == 422
    assert [error["loc"] for error in response.json()["detail"]] == [["query", "format"]]


def test_api_runs_history_and_scan_history(logged_runs: Logged) -> None:
    api = logged_runs.api
    assert [r.id for r in api.runs("export", filters={"state": "finished"})] == ["long"]
    assert [r.id for r in api.runs("export", filters={"state": "failed"})] == ["short"]
    assert [r.id for r in api.runs("export", filters={"tags": "baseline"})] == ["long"]
    assert sorted(r.id for r in api.runs("export")) == ["long", "short"]
    run = api.run("export/long")
    rows = run.history(pandas=False)
    assert len(rows) == STEPS
    for step, row in enumerate(rows):
        assert comparable(row) == comparable(expected(step)), step
    del rows
    keys = ["train/loss", "lr"]  # the DataFrame form on two columns: the whole run was compared above
    frame = run.history(keys=keys)
    assert isinstance(frame, pd.DataFrame)
    wanted = [{k: v for k, v in expected(step).items() if k.startswith("_") or k in keys} for step in range(STEPS)]
    pd.testing.assert_frame_equal(frame, pd.DataFrame(wanted), check_like=True, check_exact=True)
    del frame

    def only(row: dict[str, Any], keys: list[str]) -> dict[str, Any]:
        return comparable({k: v for k, v in row.items() if k.startswith("_") or k in keys})

    scanned = run.scan_history(keys=["val/acc"])
    assert comparable(next(scanned)) == only(expected(0), ["val/acc"])
    scanned.close()  # leaving early closes the download
    count = 0
    for step, row in enumerate(run.scan_history(keys=["train/loss", "lr"])):
        assert comparable(row) == only(expected(step), ["train/loss", "lr"]), step
        count += 1
    assert count == STEPS


def test_api_alerts_and_their_filters(logged_runs: Logged) -> None:
    api = logged_runs.api

    def titles(**filters: Any) -> list[str]:
        return [alert["title"] for alert in api.alerts("export", **filters)]

    rule_alerts = eventually(lambda: api.alerts("export", rule="export-run-failed"), lambda found: len(found) == 1,
                             what="the rule alert of the failed run")
    assert rule_alerts[0]["run"]["id"] == "short" and rule_alerts[0]["severity"] == "error"
    halfway = api.alerts("export", source="sdk")
    assert [(a["title"], a["severity"], a["rule"], a["run"]["id"]) for a in halfway] == [
        ("halfway", "warning", None, "long")]
    assert len(titles()) == 2
    assert titles(severity="warning") == ["halfway"]
    assert titles(source="rule") == [rule_alerts[0]["title"]]
    assert titles(source="rule", severity="warning") == titles(severity="critical") == []
    assert titles(run="long") == ["halfway"] and titles(run="long", rule="export-run-failed") == []
    response = logged_runs.service.api("GET", "/api/v1/alerts?project=export&severity=fatal", key=logged_runs.key)
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["query", "severity"]


def test_another_projects_key_sees_nothing(logged_runs: Logged) -> None:
    service, other = logged_runs.service, logged_runs.other_key
    for path in ["/api/v1/runs?project=export", "/api/v1/runs/export/long", "/api/v1/runs/export/long/history",
                 "/api/v1/runs/export/long/history?format=csv", "/api/v1/runs/export/long/history?format=json",
                 "/api/v1/alerts?project=export", "/api/v1/alerts?project=export&run=long"]:
        assert service.api("GET", path, key=other).status_code == 403, path
    assert service.api("GET", "/api/v1/runs", key=other).json() == {"runs": []}
    assert service.api("GET", "/api/v1/alerts?source=sdk", key=other).json() == {"alerts": []}
    api = runwatch.Api(base_url=service.base_url, api_key=other)
    with pytest.raises(runwatch.Error, match="HTTP 403"):
        api.run("export/long")
    with pytest.raises(runwatch.Error, match="HTTP 403"):
        api.runs("export")
    assert api.alerts() == []
