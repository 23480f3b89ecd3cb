"""``GET /api/v1/runs/{project}/{run_id}/series`` against a real service: chart data that keeps every
spike and NaN/inf, zooming, the time axis, and bad input answered 4xx naming the field."""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.service import ServiceProcess, running_service

T0 = 1_700_000_000.0
SPIKE, NAN, INF = 31_337, 50_001, 77_777
BATCH = 10_000  # records per request: well under the 10 MiB body limit


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    with running_service(tmp_path_factory.mktemp("series-service")) as shared:
        yield shared


@pytest.fixture(scope="module")
def key(service: ServiceProcess) -> str:
    return service.create_key("vision")


def wire(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    return value if math.isfinite(value) else ("Infinity" if value > 0 else "-Infinity")


def new_run(service: ServiceProcess, key: str, values: dict[int, float]) -> str:
    run = f"r-{uuid.uuid4().hex[:12]}"
    assert service.api("POST", "/api/v1/runs", key=key, json={"project": "vision", "id": run}).status_code == 200
    steps = sorted(values)
    for first in range(0, len(steps), BATCH):
        records = [{"seq": first + i + 1, "type": "history", "step": step, "timestamp": T0 + step * 0.5,
                    "data": {"loss": wire(values[step])}} for i, step in enumerate(steps[first:first + BATCH])]
        response = service.api("POST", f"/api/v1/runs/vision/{run}/records", key=key, json={"records": records})
        assert response.status_code == 200, response.text
    return run


def series(service: ServiceProcess, api_key: str, run: str, **params: Any) -> dict[str, Any]:
    response = service.api("GET", f"/api/v1/runs/vision/{run}/series", key=api_key,
                           params={"key": "loss", **params})
    assert response.status_code == 200, response.text

    def no_bare_constants(name: str) -> None:
        raise AssertionError(f"bare {name} in the JSON")

    body: dict[str, Any] = json.loads(response.text, parse_constant=no_bare_constants)
    return body


def column_of(body: dict[str, Any], at: float) -> int:
    (found,) = [i for i in range(len(body["xs"])) if body["xs"][i] <= at <= body["xe"][i]]
    return found


@pytest.fixture(scope="module")
def long_run(service: ServiceProcess, key: str) -> str:
    values = {step: math.sin(step / 1000) for step in range(100_000)}
    values[SPIKE], values[NAN], values[INF] = 1e6, math.nan, math.inf
    return new_run(service, key, values)


def test_a_short_series_comes_raw(service: ServiceProcess, key: str) -> None:
    run = new_run(service, key, {0: 1.5, 1: math.nan, 2: math.inf, 3: -math.inf, 4: -2.0})
    assert series(service, key, run) == {
        "key": "loss", "x": "step", "mode": "raw", "width": 1000, "window": [None, None], "points": 5,
        "extent": [0, 4], "xs": [0, 1, 2, 3, 4], "xe": [0, 1, 2, 3, 4], "min": [1.5, None, None, None, -2.0],
        "max": [1.5, None, None, None, -2.0], "count": [1, 1, 1, 1, 1],
        "nonfinite": [[1, "NaN", 1], [2, "Infinity", 1], [3, "-Infinity", 1]]}


def test_100k_points_keep_the_spike_the_nan_and_the_inf(service: ServiceProcess, key: str, long_run: str) -> None:
    body = series(service, key, long_run, width=500)
    assert body["mode"] == "minmax" and body["points"] == 100_000 and body["extent"] == [0, 99_999]
    assert 0 < len(body["xs"]) <= 500 and sum(body["count"]) == 100_000
    assert body["max"][column_of(body, SPIKE)] == 1e6
    assert body["nonfinite"] == [[NAN, "NaN", 1], [INF, "Infinity", 1]]
    assert -1 <= body["min"][column_of(body, INF)] <= body["max"][column_of(body, INF)] <= 1


def test_zoom_window(service: ServiceProcess, key: str, long_run: str) -> None:
    wide = series(service, key, long_run, width=500, start=40_000, end=60_000)
    assert wide["mode"] == "minmax" and wide["window"] == [40_000, 60_000] and sum(wide["count"]) == 20_001
    assert wide["xs"][0] >= 40_000 and wide["xe"][-1] <= 60_000
    assert wide["points"] == 100_000 and wide["extent"] == [0, 99_999]
    near = series(service, key, long_run, width=500, start=SPIKE - 100, end=SPIKE + 100)
    assert near["mode"] == "raw" and near["xs"] == list(range(SPIKE - 100, SPIKE + 101))
    assert near["max"][near["xs"].index(SPIKE)] == 1e6 and near["nonfinite"] == []


def test_time_axis(service: ServiceProcess, key: str, long_run: str) -> None:
    body = series(service, key, long_run, x="time", width=500)
    assert body["x"] == "time" and body["mode"] == "minmax" and body["extent"] == [T0, T0 + 99_999 * 0.5]
    assert body["nonfinite"] == [[T0 + NAN * 0.5, "NaN", 1], [T0 + INF * 0.5, "Infinity", 1]]
    near = series(service, key, long_run, x="time", start=T0 + NAN * 0.5 - 10, end=T0 + NAN * 0.5 + 10)
    assert near["mode"] == "raw" and near["xs"] == [T0 + s * 0.5 for s in range(NAN - 20, NAN + 21)]
    assert near["nonfinite"] == [[T0 + NAN * 0.5, "NaN", 1]]


def test_unknown_key_is_an_empty_series(service: ServiceProcess, key: str, long_run: str) -> None:
    body = series(service, key, long_run, key="never/logged")
    assert (body["mode"], body["points"], body["extent"], body["xs"], body["nonfinite"]) == ("raw", 0, None, [], [])


@pytest.mark.parametrize(("params", "field"), [
    ({"width": 5}, "width"), ({"width": 4001}, "width"), ({"width": "wide"}, "width"),
    ({"x": "epoch"}, "x"), ({"start": "nan"}, "start"), ({"end": "inf"}, "end"), ({"start": "soon"}, "start"),
    ({"start": 10, "end": 5}, "end"), ({"key": ""}, "key"), ({"key": None}, "key"),
])
def test_bad_input_gets_422_naming_the_field(service: ServiceProcess, key: str, long_run: str,
                                              params: dict[str, Any], field: str) -> None:
    query = {k: v for k, v in {"key": "loss", **params}.items() if v is not None}
    response = service.api("GET", f"/api/v1/runs/vision/{long_run}/series", key=key, params=query)
    assert response.status_code == 422, response.text
    assert ["query", field] in [error["loc"] for error in response.json()["detail"]]


def test_auth_and_unknown_run(service: ServiceProcess, key: str, long_run: str) -> None:
    path = f"/api/v1/runs/vision/{long_run}/series"
    assert service.api("GET", path, key=service.create_key("audio"), params={"key": "loss"}).status_code == 403
    assert service.api("GET", path, key="rwk_wrong", params={"key": "loss"}).status_code == 401
    assert service.api("GET", path, key=service.admin_key, params={"key": "loss"}).status_code == 200
    response = service.api("GET", "/api/v1/runs/vision/nope/series", key=key, params={"key": "loss"})
    assert response.status_code == 404 and "unknown run vision/nope" in response.json()["detail"]
