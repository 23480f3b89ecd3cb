"""Alertmanager's API v2, the part its clients use (``/api/v2``): Prometheus posts alerts here; ``amtool``
and Grafana's Alertmanager data source read alerts and groups and manage silences.

Routes only: the shapes and filters are ``alerts.alertmanager_view``'s, incoming alerts
``alerts.ingest.prometheus``'. Authentication as everywhere (a bearer key), or HTTP basic auth with the key
as the password. A project key posts, sees and silences its own project only.
"""

from __future__ import annotations

import time
import uuid
from typing import Annotated, Any, NoReturn

from fastapi import APIRouter, HTTPException, Query
from fastapi.responses import Response

from alerts import alertmanager_view as view
from alerts.api.alertmanager_models import (
    AlertGroup,
    AlertmanagerStatus,
    AlertsReceived,
    GettableAlert,
    GettableSilence,
    PostableAlert,
    PostableSilence,
    Receiver,
    SilenceCreated,
)
from alerts.api.answers import answers
from alerts.api.auth import AlertmanagerKey, CurrentService
from alerts.api.silences import check_scope, visible_to
from alerts.ingest.prometheus import InvalidAlert, posted_alert
from alerts.model import ApiKey
from alerts.silence.silences import Silence

router = APIRouter(prefix="/api/v2", tags=["alertmanager"], strict_content_type=False)

_FILTER = Query(description='Matchers the alerts\' labels must satisfy, e.g. alertname="X", job=~"node.*"')
_RECEIVER = Query(description="A regular expression (anchored) one of the alert's receivers (channels) must match")


def _refuse(error: view.InvalidInput | InvalidAlert) -> NoReturn:
    raise HTTPException(422, [{"loc": list(error.loc), "msg": str(error), "type": "value_error"}])


def _project_of(key: ApiKey) -> str | None:
    return None if key.admin else key.project


def _query(filter: list[str] | None, silenced: bool, inhibited: bool, active: bool,
           receiver: str | None) -> view.AlertQuery:
    try:
        return view.AlertQuery.parse(filter=filter, silenced=silenced, inhibited=inhibited, active=active,
                                     receiver=receiver)
    except view.InvalidInput as exc:
        _refuse(exc)


@router.post("/alerts", response_model=AlertsReceived, responses=answers(401, 403, 413, 422))
async def post_alerts(body: list[PostableAlert], key: AlertmanagerKey, service: CurrentService) -> dict[str, Any]:
    """Prometheus' notifier (``alerting.alertmanagers`` with ``api_version: v2``): firing alerts, posted
    again at every resend interval, and resolved ones (``endsAt`` in the past). A project key may post
    alerts of its own project only (the label ``prometheus.project_label``)."""
    prometheus = service.prometheus
    posted = []
    for index, alert in enumerate(body):
        try:
            checked = prometheus.with_project(index, posted_alert(
                index, labels=alert.labels, annotations=alert.annotations, starts_at=alert.startsAt,
                ends_at=alert.endsAt, generator_url=alert.generatorURL), fallback=_project_of(key))
        except InvalidAlert as exc:
            _refuse(exc)
        if not key.may_access(checked.project):
            raise HTTPException(403, f"alert {index}: this API key is not allowed to post alerts of project "
                                     f"{checked.project!r} (label {prometheus.settings.project_label!r})")
        posted.append(checked)
    received = await prometheus.receive(posted)
    return {"received": received.received, "new": received.new, "updated": received.updated,
            "resolved": received.resolved}


@router.get("/alerts", response_model=list[GettableAlert], response_model_exclude_none=True,
            responses=answers(401, 422))
async def get_alerts(key: AlertmanagerKey, service: CurrentService,
                     filter: Annotated[list[str] | None, _FILTER] = None,
                     silenced: bool = True, inhibited: bool = True, active: bool = True,
                     unprocessed: Annotated[bool, Query(description="Accepted; no alert is unprocessed here")] = True,
                     receiver: Annotated[str | None, _RECEIVER] = None) -> list[dict[str, Any]]:
    """Firing alerts of every source (rules, ``alert()`` calls, Prometheus), as amtool's ``alert query``
    asks for them: ``active``/``silenced``/``inhibited`` choose by state, ``filter`` by labels."""
    query = _query(filter, silenced, inhibited, active, receiver)
    return await view.gettable_alerts(service, project=_project_of(key), query=query)


@router.get("/alerts/groups", response_model=list[AlertGroup], response_model_exclude_none=True,
            responses=answers(401, 422))
async def get_alert_groups(key: AlertmanagerKey, service: CurrentService,
                           filter: Annotated[list[str] | None, _FILTER] = None,
                           silenced: bool = True, inhibited: bool = True, active: bool = True,
                           receiver: Annotated[str | None, _RECEIVER] = None) -> list[dict[str, Any]]:
    """The firing alerts as the routes group them: one group per (route group, channel)."""
    query = _query(filter, silenced, inhibited, active, receiver)
    return await view.alert_groups(service, project=_project_of(key), query=query)


async def _silences(service: CurrentService) -> list[Silence]:
    return [Silence.from_json(row) for row in await service.store.list_silences()]


@router.get("/silences", response_model=list[GettableSilence], responses=answers(401, 422))
async def get_silences(key: AlertmanagerKey, service: CurrentService,
                       filter: Annotated[list[str] | None, Query(
                           description="Matchers each of which the silence must have")] = None) -> list[dict[str, Any]]:
    """Every silence (Runwatch's: one store with ``/api/v1/silences``) the key may see, active first."""
    try:
        wanted = view.parse_filter(filter or [], ("query", "filter"))
    except view.InvalidInput as exc:
        _refuse(exc)
    now = time.time()
    found = [s for s in await _silences(service) if visible_to(key, s) and view.silence_filter_matches(s, wanted)]
    return [view.gettable_silence(silence, now) for silence in view.sorted_silences(found, now)]


@router.post("/silences", response_model=SilenceCreated, responses=answers(401, 403, 404, 413, 422))
async def post_silence(body: PostableSilence, key: AlertmanagerKey, service: CurrentService) -> dict[str, Any]:
    """A new silence, or with ``id`` an update of that one (replaced by a new one when its matchers change
    or it has expired, as Alertmanager does). A project key's silences need the matcher project=<its project>."""
    try:
        matchers = [view.matcher_from_json(index, name=m.name, value=m.value, is_regex=m.isRegex,
                                           is_equal=m.isEqual) for index, m in enumerate(body.matchers)]
        starts_at = view.seconds(("body", "startsAt"), body.startsAt)
        ends_at = view.seconds(("body", "endsAt"), body.endsAt)
    except view.InvalidInput as exc:
        _refuse(exc)
    check_scope(key, matchers)
    existing = None
    if body.id:
        existing = next((s for s in await _silences(service) if s.id == body.id and visible_to(key, s)), None)
        if existing is None:
            raise HTTPException(404, f"unknown silence {body.id}")
        check_scope(key, existing.matchers)
    now = time.time()
    try:
        silence, replaced = view.store_silence(existing, matchers, starts_at=starts_at, ends_at=ends_at,
                                               created_by=body.createdBy, comment=body.comment, now=now)
    except ValueError as exc:
        field, _, message = str(exc).partition(": ")
        loc = {"starts_at": "startsAt", "ends_at": "endsAt", "matchers": "matchers", "created_by": "createdBy",
               "comment": "comment"}.get(field)
        raise HTTPException(422, [{"loc": ["body", loc] if loc else ["body"], "msg": message if loc else str(exc),
                                   "type": "value_error"}]) from None
    if replaced is not None:
        await service.store.save_silence(replaced.to_json())
    await service.store.save_silence(silence.to_json())
    await service.silences.refresh()
    return {"silenceID": silence.id}


async def _visible_silence(service: CurrentService, key: ApiKey, silence_id: uuid.UUID) -> Silence:
    found = next((s for s in await _silences(service) if s.id == str(silence_id) and visible_to(key, s)), None)
    if found is None:
        raise HTTPException(404, f"unknown silence {silence_id}")
    return found


@router.get("/silence/{silence_id}", response_model=GettableSilence, responses=answers(401, 404, 422))
async def get_silence(silence_id: uuid.UUID, key: AlertmanagerKey, service: CurrentService) -> dict[str, Any]:
    return view.gettable_silence(await _visible_silence(service, key, silence_id), time.time())


@router.delete("/silence/{silence_id}", response_class=Response,
               responses=answers(401, 403, 404, 422, ok={"description": "The silence has expired (now, or before)"}))
async def delete_silence(silence_id: uuid.UUID, key: AlertmanagerKey, service: CurrentService) -> Response:
    """Expire the silence now (amtool's ``silence expire``); one that has expired stays as it is."""
    silence = await _visible_silence(service, key, silence_id)
    check_scope(key, silence.matchers)
    now = time.time()
    if silence.state(now) != "expired":
        silence.ends_at = now
        silence.starts_at = min(silence.starts_at, now)
        silence.updated_at = now
        await service.store.save_silence(silence.to_json())
        await service.silences.refresh()
    return Response(status_code=200)


@router.get("/receivers", response_model=list[Receiver], responses=answers(401))
async def get_receivers(_key: AlertmanagerKey, service: CurrentService) -> list[dict[str, Any]]:
    """The channels, by name."""
    return view.receivers(service)


@router.get("/status", response_model=AlertmanagerStatus, responses=answers(401))
async def get_status(_key: AlertmanagerKey, service: CurrentService) -> dict[str, Any]:
    """Version, uptime and the routing tree as an Alertmanager config (amtool checks the version)."""
    return view.status(service)
