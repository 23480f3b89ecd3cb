"""One metric series of a run, downsampled for a chart: ``GET /api/v1/runs/{project}/{run_id}/series``.

``series_json`` builds the answer, so the dashboard's JSON twin (session login instead of a bearer key)
serves the same shape from the same function.
"""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

from fastapi import APIRouter, HTTPException, Query
from fastapi.exceptions import RequestValidationError

from alerts.api.answers import Series, answers
from alerts.api.auth import CurrentKey, CurrentService, require_project
from alerts.model import Run
from alerts.presentation import json_float
from alerts.service import Service
from alerts.storage.base import SeriesX

WIDTH_MIN, WIDTH_MAX, WIDTH_DEFAULT = 10, 4000, 1000

router = APIRouter(prefix="/api/v1", strict_content_type=False)


def _invalid(field: str, message: str) -> RequestValidationError:
    return RequestValidationError([{"loc": ("query", field), "msg": message, "type": "value_error"}])


async def series_json(service: Service, run: Run, key: str, x: SeriesX = "step", width: int = WIDTH_DEFAULT,
                      start: float | None = None, end: float | None = None) -> dict[str, Any]:
    """The chart data of ``key`` in ``run`` (shape in the README, "Metric series for charts").

    Raises :class:`RequestValidationError` naming the query field (``x``, ``width``, ``start``, ``end``)
    for input the route's own validation would have refused, so every caller answers 422 alike.
    """
    if x not in ("step", "time"):
        raise _invalid("x", "must be 'step' or 'time'")
    if not WIDTH_MIN <= width <= WIDTH_MAX:
        raise _invalid("width", f"must be between {WIDTH_MIN} and {WIDTH_MAX} (pixel columns of the chart)")
    for field, bound in (("start", start), ("end", end)):
        if bound is not None and not math.isfinite(bound):
            raise _invalid(field, "must be a finite number")
    if start is not None and end is not None and start > end:
        raise _invalid("end", f"must not be less than start ({start})")
    data = await service.store.series(run.pk, key, x=x, start=start, end=end, width=width)
    return {
        "key": key,
        "x": x,
        "mode": data.mode,
        "width": width,
        "window": [start, end],
        "points": data.points,
        "extent": list(data.extent) if data.extent is not None else None,
        "xs": data.xs,
        "xe": data.xe,
        "min": data.mins,
        "max": data.maxs,
        "count": data.counts,
        "nonfinite": [[at, json_float(kind), count] for at, kind, count in data.nonfinite],
    }


@router.get("/runs/{project}/{run_id}/series", response_model=Series, responses=answers(401, 403, 404, 422))
async def series(project: str, run_id: str, api_key: CurrentKey, service: CurrentService,
                 key: Annotated[str, Query(min_length=1, max_length=300, description="the metric key")],
                 x: Literal["step", "time"] = "step",
                 width: Annotated[int, Query(ge=WIDTH_MIN, le=WIDTH_MAX)] = WIDTH_DEFAULT,
                 start: Annotated[float | None, Query(allow_inf_nan=False)] = None,
                 end: Annotated[float | None, Query(allow_inf_nan=False)] = None) -> dict[str, Any]:
    require_project(api_key, project)
    run = await service.store.get_run(project, run_id)
    if run is None:
        raise HTTPException(404, f"unknown run {project}/{run_id}")
    return await series_json(service, run, key, x, width, start, end)
