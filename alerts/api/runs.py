"""Run endpoints: init, records, heartbeat, explicit alerts, and the read side for export."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

import orjson
from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import StreamingResponse
from pydantic import ValidationError

from alerts.api.answers import (
    AlertCallResults,
    Heartbeat,
    HistoryPage,
    HistoryRow,
    MediaList,
    RecordsAnswer,
    RunDetail,
    RunList,
    RunStarted,
    StopAnswer,
    WhoAmI,
    answers,
)
from alerts.api.auth import CurrentKey, CurrentService, require_admin, require_project
from alerts.api.schemas import RECORDS_BODY_SCHEMA, AlertsBody, RecordsBody, RunInit, StopBody
from alerts.export import history_csv, history_json
from alerts.ingest.protocol import MAX_SAFE_INTEGER
from alerts.ingest.runs import RecordsResult
from alerts.model import Run
from alerts.names import readable_name
from alerts.presentation import history_row_json, run_json, stop_json
from alerts.service import Service
from alerts.storage.base import NewRun

router = APIRouter(prefix="/api/v1", strict_content_type=False)


async def _run_or_404(service: Service, project: str, run_id: str) -> Run:
    run = await service.store.get_run(project, run_id)
    if run is None:
        raise HTTPException(404, f"unknown run {project}/{run_id}: call init (POST /api/v1/runs) first")
    return run


@router.get("/auth", response_model=WhoAmI, responses=answers(401))
async def whoami(key: CurrentKey) -> dict[str, Any]:
    return {"project": key.project, "admin": key.admin, "key_id": key.id}


# OpenAPI links: the project and id in the answer to an init are what the run's own routes take.
_RUN_ROUTES = [("GetRun", "get", ""), ("AddRecords", "post", "/records"), ("AddAlerts", "post", "/alerts"),
               ("Heartbeat", "post", "/heartbeat"), ("History", "get", "/history"), ("Media", "get", "/media"),
               ("Series", "get", "/series"), ("Files", "get", "/files"), ("PutFile", "put", "/files/{path}"),
               ("GetFile", "get", "/files/{path}"), ("Artifacts", "get", "/artifacts"),
               ("UseArtifact", "post", "/artifacts/used"), ("StopRun", "post", "/stop")]
_RUN_PATH = "/api/v1/runs/{project}/{run_id}"
_RUN_LINKS = {name: {"operationRef": f"#/paths/{(_RUN_PATH + tail).replace('/', '~1')}/{method}",
                     "parameters": {"project": "$response.body#/project", "run_id": "$response.body#/id"}}
              for name, method, tail in _RUN_ROUTES}


@router.post("/runs", response_model=RunStarted, responses={
    **answers(401, 403, 404, 409, 413, 422), 200: {"description": "The run, created or resumed", "links": _RUN_LINKS}})
async def init_run(body: RunInit, key: CurrentKey, service: CurrentService) -> dict[str, Any]:
    require_project(key, body.project)
    resume = {True: "allow", False: "never"}[body.resume] if isinstance(body.resume, bool) else body.resume
    new = NewRun(project=body.project, id=body.id, name=body.name or readable_name(body.id),
                 config=body.config, tags=body.tags, notes=body.notes, group=body.group,
                 job_type=body.job_type, started_at=body.started_at or time.time(), host=body.host,
                 pid=body.pid, system=body.system or {})
    run, created = await service.runs.init_run(new, resume=resume)
    # A resumed run goes on after its last step (W&B's resume): the SDK continues its step counter there.
    last_step = None if created else await service.store.last_step(run.pk)
    return {**run_json(run, service.public_url), "heartbeat_interval": service.settings.heartbeat_interval,
            "resumed": not created, "last_step": last_step}


# The body is read by hand (below, and in records_fast.py), so FastAPI is only told its schema.
def records_answer(result: RecordsResult, run: Run) -> dict[str, Any]:
    """What a records POST answers; ``stop`` once the run was asked to stop (the SDK then stops it)."""
    answer: dict[str, Any] = {"accepted": result.accepted, "duplicates": result.duplicates,
                              "last_seq": result.last_seq}
    if run.stop_request is not None and not run.state.is_terminal:
        answer["stop"] = stop_json(run.stop_request)
    return answer


@router.post("/runs/{project}/{run_id}/records", response_model=None,
             responses=answers(401, 403, 404, 409, 413, 422, ok={"model": RecordsAnswer,
                                                                 "description": "What was applied"}),
             openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                 "schema": RECORDS_BODY_SCHEMA}}}})
async def add_records(project: str, run_id: str, request: Request, key: CurrentKey,
                      service: CurrentService) -> Response:
    require_project(key, project)
    # The hot path: validate the raw bytes in one pass (pydantic-core parses the JSON itself).
    try:
        body = RecordsBody.model_validate_json(await request.body())
    except ValidationError as exc:
        raise RequestValidationError([{**error, "loc": ("body", *error["loc"])} for error in exc.errors()]) \
            from None
    run = await service.runs.get_run(project, run_id)  # from memory when cached: no read per batch
    if run is None:
        raise HTTPException(404, f"unknown run {project}/{run_id}: call init (POST /api/v1/runs) first")
    result = await service.runs.add_records(run, body.records, delayed=body.delayed)
    # The hot path answers with bytes: nothing for FastAPI to re-encode.
    return Response(orjson.dumps(records_answer(result, run)), media_type="application/json")


@router.post("/runs/{project}/{run_id}/alerts", response_model=AlertCallResults,
             responses=answers(401, 403, 404, 413, 422))
async def add_alerts(project: str, run_id: str, body: AlertsBody, key: CurrentKey,
                     service: CurrentService) -> dict[str, Any]:
    require_project(key, project)
    run = await _run_or_404(service, project, run_id)
    await service.runs.heartbeat(run)
    results = await service.explicit_alerts.submit(run, [call.model_dump() for call in body.alerts])
    return {"results": [{"id": r.id, "status": r.status, "alert_id": r.alert_id} for r in results]}


@router.post("/runs/{project}/{run_id}/heartbeat", response_model=Heartbeat,
             responses=answers(401, 403, 404, 422))
async def heartbeat(project: str, run_id: str, key: CurrentKey, service: CurrentService) -> dict[str, Any]:
    require_project(key, project)
    run = await _run_or_404(service, project, run_id)
    await service.runs.heartbeat(run)
    answer: dict[str, Any] = {"state": run.state.value, "heartbeat_interval": service.settings.heartbeat_interval}
    if run.stop_request is not None and not run.state.is_terminal:
        answer["stop"] = stop_json(run.stop_request)
    return answer


@router.post("/runs/{project}/{run_id}/stop", response_model=StopAnswer, responses=answers(401, 403, 404, 422))
async def stop_run(project: str, run_id: str, body: StopBody, key: CurrentKey,
                   service: CurrentService) -> dict[str, Any]:
    """Ask a running run to stop (admin keys): its SDK stops it at its next send and it ends ``stopped``.
    Idempotent (the first request stands); a run that has ended is left as it is (``requested: false``)."""
    require_admin(key)
    require_project(key, project)
    run = await service.runs.get_run(project, run_id)  # the copy ingest answers the SDK from, when cached
    if run is None:
        raise HTTPException(404, f"unknown run {project}/{run_id}")
    outcome = await service.stopper.stop(run, by=f"admin key {key.id}", reason=body.reason)
    return {"requested": outcome.requested, "state": run.state.value, "stop_request": stop_json(outcome.request)}


@router.get("/runs", response_model=RunList, responses=answers(401, 403, 422))
async def list_runs(key: CurrentKey, service: CurrentService, project: str | None = None,
                    state: str | None = None, tag: str | None = None, name: str | None = None,
                    limit: Annotated[int, Query(ge=1, le=10_000)] = 1000,
                    offset: Annotated[int, Query(ge=0, le=MAX_SAFE_INTEGER)] = 0) -> dict[str, Any]:
    if project is None and not key.admin:
        project = key.project
    if project is not None:
        require_project(key, project)
    runs = await service.store.list_runs(project=project, state=state, tag=tag, name=name, limit=limit,
                                         offset=offset)
    return {"runs": [run_json(run, service.public_url) for run in runs]}


@router.get("/runs/{project}/{run_id}", response_model=RunDetail, responses=answers(401, 403, 404, 422))
async def get_run(project: str, run_id: str, key: CurrentKey, service: CurrentService) -> dict[str, Any]:
    require_project(key, project)
    run = await _run_or_404(service, project, run_id)
    events = await service.store.list_run_events(run.pk)
    return {**run_json(run, service.public_url), "last_step": await service.store.last_step(run.pk),
            "events": [{"state": e.state.value, "reason": e.reason, "at": e.at} for e in events]}


_HISTORY = {"description": "A page of rows; with `format`, every row after `after_step`, streamed",
            "model": HistoryPage | list[HistoryRow],
            "content": {"text/csv": {"schema": {"type": "string", "description": "_step,_timestamp,<keys>"}}}}


@router.get("/runs/{project}/{run_id}/history", response_model=None,
            responses=answers(401, 403, 404, 422, ok=_HISTORY))
async def history(project: str, run_id: str, key: CurrentKey, service: CurrentService,
                  keys: str | None = None,
                  after_step: Annotated[int, Query(ge=-MAX_SAFE_INTEGER, le=MAX_SAFE_INTEGER)] = -1,
                  limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
                  format: Literal["json", "csv"] | None = None) -> dict[str, Any] | StreamingResponse:
    """A page of rows (``limit`` steps after ``after_step``); with ``format``, every row after
    ``after_step`` streamed as a JSON array or CSV (``alerts.export``)."""
    require_project(key, project)
    run = await _run_or_404(service, project, run_id)
    wanted = list(dict.fromkeys(k for k in (keys or "").split(",") if k)) or None  # in order, once each
    if format == "csv":
        columns = wanted or await service.store.metric_keys(run.pk)
        return StreamingResponse(
            history_csv(service.store, run.pk, keys=wanted, columns=columns, after_step=after_step),
            media_type="text/csv; charset=utf-8",
            headers={"Content-Disposition": f'attachment; filename="{project}-{run_id}-history.csv"'})
    if format == "json":
        return StreamingResponse(history_json(service.store, run.pk, keys=wanted, after_step=after_step),
                                 media_type="application/json")
    rows = await service.store.history(run.pk, keys=wanted, after_step=after_step, limit=limit)
    # Paging follows the step table, so a page filtered down to few rows still advances.
    full_page = await service.store.history(run.pk, keys=None, after_step=after_step, limit=limit) \
        if wanted else rows
    next_after = full_page[-1]["_step"] if len(full_page) == limit else None
    return {"rows": [history_row_json(row) for row in rows], "next_after_step": next_after}


@router.get("/runs/{project}/{run_id}/media", response_model=MediaList, responses=answers(401, 403, 404, 422))
async def media(project: str, run_id: str, key: CurrentKey, service: CurrentService) -> dict[str, Any]:
    require_project(key, project)
    run = await _run_or_404(service, project, run_id)
    return {"media": await service.store.list_media(run.pk)}


