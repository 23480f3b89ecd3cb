"""Alert and notification read endpoints."""

from __future__ import annotations

import time
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.exceptions import RequestValidationError

from alerts.api.answers import AlertList, NotificationList, answers
from alerts.api.auth import CurrentKey, CurrentService, require_admin, require_project
from alerts.model import AlertSource, Severity
from alerts.presentation import alert_object, notification_json

router = APIRouter(prefix="/api/v1", strict_content_type=False)


@router.get("/alerts", response_model=AlertList, responses=answers(401, 403, 422))
async def list_alerts(key: CurrentKey, service: CurrentService, project: str | None = None,
                      status: Literal["pending", "firing", "resolved"] | None = None,
                      run: str | None = None, rule: str | None = None, severity: Severity | None = None,
                      source: AlertSource | None = None,
                      limit: Annotated[int, Query(ge=1, le=10_000)] = 500) -> dict[str, Any]:
    """Alerts, newest first; every filter given must match (``run`` needs ``project`` for an admin key)."""
    if project is None and not key.admin:
        project = key.project
    if project is not None:
        require_project(key, project)
    run_pk = None
    if run is not None:
        if project is None:  # run ids are unique within a project only
            raise RequestValidationError([{"loc": ("query", "project"), "msg": "required when 'run' is given",
                                           "type": "missing"}])
        run_obj = await service.store.get_run(project, run)
        if run_obj is None:
            return {"alerts": []}  # a run the service never saw has no alerts (not the whole project's)
        run_pk = run_obj.pk
    alerts = await service.store.list_alerts(
        project=project, status=status, run_pk=run_pk, rule=rule, limit=limit,
        severity=None if severity is None else severity.value, source=None if source is None else source.value)
    runs = await service.store.get_runs_by_pk([a.run_pk for a in alerts if a.run_pk is not None])
    now = time.time()
    out = []
    for alert in alerts:
        shown = alert_object(alert, runs.get(alert.run_pk) if alert.run_pk is not None else None,
                             service.public_url)
        shown["silenced_by"] = service.silences.silencer.muting(alert.labels, now)  # stored, visible, not sent
        out.append(shown)
    return {"alerts": out}


@router.get("/notifications", response_model=NotificationList, responses=answers(401, 403, 422))
async def list_notifications(key: CurrentKey, service: CurrentService,
                             status: Literal["pending", "delivered", "failed"] | None = None,
                             limit: Annotated[int, Query(ge=1, le=10_000)] = 500) -> dict[str, Any]:
    require_admin(key)
    notifications = await service.store.list_notifications(status=status, limit=limit)
    return {"notifications": [notification_json(n) for n in notifications]}
