"""Alerts: firing, pending, silenced and resolved, filtered; and one alert with its notifications.

Rows are the API's alert objects (``alerts.presentation.alert_object``, with ``silenced_by`` as in
``GET /api/v1/alerts``) plus ``display_status`` and the links a row needs. Pending alerts are not
stored (a series becomes an alert when it fires): they come from the rule engine's live state.

``/alerts/{alert_id}/chart.png`` is an alert's chart (``service.charts``, the image notifications carry)
for the session's browser; a row links it only when the alert can have one, so the page shows no
broken images. Notifications use the signed ``/charts/{alert_id}.png`` instead, which needs no login.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from alerts.api.charts import png_answer
from alerts.charts.service import may_have_chart
from alerts.model import Alert, AlertSource, Run, Severity, fingerprint
from alerts.presentation import alert_object, iso, run_url
from alerts.rules.engine import ActiveSeries
from alerts.service import Service
from alerts.silence.matchers import Matcher
from alerts.web.views.base import PageContext, Pages, bearer_viewer, find_viewer, login_redirect
from alerts.web.views.notifications import notification_rows

pages = Pages()
PAGE_SIZE = 100
SCAN_LIMIT = 10_000
"""The newest alerts a listing looks at (the page says so when there are more)."""
STATUSES = ("firing", "pending", "silenced", "resolved")
SOURCES = tuple(source.value for source in AlertSource)
SEVERITIES = tuple(severity.value for severity in Severity)
SILENCE_LABELS = ("alertname", "project", "run", "metric")
"""The labels that identify an alert's series: "silence like this" matches on these."""


def run_link(project: str, run_id: str, step: int | None, metric: str | None) -> str:
    """The run page with the chart of ``metric`` scrolled to ``step`` (``?step=`` and ``#metric-<key>``)."""
    url = f"/runs/{quote(project, safe='')}/{quote(run_id, safe='')}"
    if step is not None:
        url += f"?step={step}"
    if metric:
        url += f"#metric-{quote(metric, safe='')}"
    return url


def silence_link(labels: Mapping[str, str]) -> str:
    """The silence form, prefilled with one equality matcher per identifying label the alert has."""
    matchers = [("matcher", str(Matcher(name, "=", labels[name]))) for name in SILENCE_LABELS if labels.get(name)]
    return f"/silences/new?{urlencode(matchers)}"


def alert_row(shown: dict[str, Any], silenced_by: list[str], *, charts: bool = False) -> dict[str, Any]:
    """An alert object as a dashboard row: ``silenced_by``, ``display_status`` and ``links`` added.

    ``links.chart`` is set only for a stored alert that can have a chart while ``charts`` are on: a rule's
    alert, or an ``alert()`` call that named a ``chart=`` metric (never a Prometheus alert)."""
    status = shown["status"]
    run = shown["run"]
    detail = f"/alerts/{quote(shown['id'], safe='')}" if shown["id"] else None
    links: dict[str, str | None] = {
        "detail": detail,
        "run": run_link(shown["project"], run["id"], shown["step"], shown["metric"]) if run else None,
        "notifications": f"/notifications?{urlencode({'alert': shown['id']})}" if shown["id"] else None,
        "silence": silence_link(shown["labels"]),
        "chart": f"{detail}/chart.png" if detail and charts and may_have_chart(shown) else None,
    }
    display = "silenced" if silenced_by and status in ("firing", "pending") else status
    return {**shown, "silenced_by": silenced_by, "display_status": display, "links": links}


def stored_row(alert: Alert, run: Run | None, public_url: str, now: float, ctx: PageContext) -> dict[str, Any]:
    shown = alert_object(alert, run, public_url)
    shown["created_at"] = iso(alert.created_at) if alert.created_at else None
    shown["client_id"] = alert.client_id
    return alert_row(shown, ctx.service.silences.silencer.muting(alert.labels, now), charts=ctx.service.charts.enabled)


def pending_row(series: ActiveSeries, run: Run | None, public_url: str, now: float,
                ctx: PageContext) -> dict[str, Any]:
    """A pending series shown like an alert object: no id yet, nothing rendered from templates yet."""
    spec = series.rule.spec
    url = run_url(public_url, series.project, run.id) if run else public_url
    shown = {
        "id": None, "fingerprint": fingerprint(series.labels), "status": "pending", "source": AlertSource.RULE.value,
        "rule": spec.name, "title": spec.description or spec.name, "text": spec.condition_text,
        "severity": spec.severity.value, "labels": dict(series.labels), "project": series.project,
        "run": {"id": run.id, "name": run.name, "url": url, "state": run.state.value} if run else None,
        "metric": series.metric or None, "value": None, "threshold": spec.threshold, "step": series.step,
        "starts_at": iso(series.since), "ends_at": None, "url": url, "suppressed_count": 0, "delayed": False,
        "resolved_reason": None, "created_at": None, "client_id": None,
    }
    return alert_row(shown, ctx.service.silences.silencer.muting(series.labels, now))


async def find_alerts(ctx: PageContext, *, project: str | None, run: str | None = None, rule: str | None = None,
                      severity: str | None = None, source: str | None = None,
                      status: str | None = None) -> tuple[list[dict[str, Any]], bool]:
    """The rows matching every filter given, newest first, and whether the scan limit cut the list."""
    store, now = ctx.service.store, time.time()
    run_pk: int | None = None
    if project is not None and run is not None:
        found_run = await store.get_run(project, run)
        if found_run is None:
            return [], False  # a run the service never saw has no alerts (not the whole project's)
        run_pk = found_run.pk
    stored: list[Alert] = []
    if status != "pending":
        stored_status = {"firing": "firing", "silenced": "firing", "resolved": "resolved"}.get(status or "")
        stored = await store.list_alerts(project=project, status=stored_status, run_pk=run_pk, source=source,
                                         rule=rule, severity=severity, limit=SCAN_LIMIT)
    truncated = len(stored) >= SCAN_LIMIT
    pending: list[ActiveSeries] = []
    if status in (None, "pending", "silenced") and source in (None, AlertSource.RULE.value):
        pending = [s for s in ctx.service.rules.active_series() if s.status == "pending"
                   and (project is None or s.project == project) and (run_pk is None or s.run_pk == run_pk)
                   and (rule is None or s.rule.name == rule) and (severity is None or s.rule.spec.severity == severity)]
    runs = await store.get_runs_by_pk(sorted({a.run_pk for a in stored if a.run_pk is not None} |
                                             {s.run_pk for s in pending}))
    public_url = ctx.service.public_url
    timed = [(s.since or now, pending_row(s, runs.get(s.run_pk), public_url, now, ctx)) for s in pending]
    timed += [(a.starts_at, stored_row(a, runs.get(a.run_pk) if a.run_pk is not None else None, public_url, now,
                                       ctx)) for a in stored]
    timed.sort(key=lambda pair: pair[0], reverse=True)
    rows = [row for _, row in timed]
    if run is not None and run_pk is None:  # no project given: the run id in any visible project
        rows = [row for row in rows if row["run"] is not None and row["run"]["id"] == run]
    if status is not None:
        rows = [row for row in rows if row["display_status"] == status]
    return rows, truncated


def scoped_project(ctx: PageContext) -> str | None:
    """The ``project`` filter: a project key always looks at its own project only."""
    project = ctx.query("project")
    if project is None and not ctx.viewer.key.admin:
        project = ctx.viewer.key.project
    if project is not None:
        ctx.viewer.require(project)
    return project


@pages.page("/alerts", "alerts.html")
async def alerts(ctx: PageContext) -> dict[str, Any]:
    project = scoped_project(ctx)
    filters = {"project": project, "run": ctx.query("run"), "rule": ctx.query("rule"),
               "severity": ctx.query_choice("severity", SEVERITIES), "source": ctx.query_choice("source", SOURCES),
               "status": ctx.query_choice("status", STATUSES)}
    page = ctx.query_int("page", 1, ge=1)
    rows, truncated = await find_alerts(ctx, **filters)
    total = len(rows)
    projects = [p["name"] for p in await ctx.service.store.list_projects() if ctx.viewer.may_see(p["name"])]
    rules = sorted(rule.name for rule in ctx.service.rules.rules)
    return {"alerts": rows[(page - 1) * PAGE_SIZE: page * PAGE_SIZE], "total": total, "truncated": truncated,
            "scan_limit": SCAN_LIMIT, "page": page, "page_size": PAGE_SIZE, "pages": max(1, -(-total // PAGE_SIZE)),
            "filters": filters, "choices": {"projects": projects, "rules": rules, "severities": list(SEVERITIES),
                                            "sources": list(SOURCES), "statuses": list(STATUSES)}}


@pages.page("/alerts/{alert_id}", "alert.html")
async def alert(ctx: PageContext) -> dict[str, Any]:
    found = await ctx.service.store.get_alert(ctx.params["alert_id"])
    if found is None:
        raise HTTPException(404, f"unknown alert {ctx.params['alert_id']}")
    ctx.viewer.require(found.project)
    runs = await ctx.service.store.get_runs_by_pk([found.run_pk] if found.run_pk is not None else [])
    row = stored_row(found, runs.get(found.run_pk) if found.run_pk is not None else None, ctx.service.public_url,
                     time.time(), ctx)
    return {"alert": row, "notifications": await notification_rows(ctx, alert_id=found.id)}


async def alert_chart(request: Request) -> Response:
    """``GET /alerts/{alert_id}/chart.png``: the alert's chart for a logged-in browser (or a bearer key)
    that may see its project (else 403); 404 when it has none (no points stored, charts off, a Prometheus
    alert). Anonymous: to the login form, as the pages."""
    service: Service = request.app.state.service
    viewer = await find_viewer(request) or await bearer_viewer(request, service)
    if viewer is None:
        return login_redirect(request)  # as the pages do: a person who opened the image comes back to it
    alert_id = request.path_params["alert_id"]
    found = await service.store.get_alert(alert_id)
    if found is None:
        return Response(f"unknown alert {alert_id}", status_code=404, media_type="text/plain")
    if not viewer.may_see(found.project):
        return Response(f"this login may not see project {found.project!r}", status_code=403,
                        media_type="text/plain")
    png = await service.charts.for_alert(found)
    if png is None:
        return Response(f"alert {found.id} has no chart", status_code=404, media_type="text/plain")
    # The chart follows the alert's state (a firing alert's series grows): the browser asks again each
    # time, and the ETag spares it the bytes when nothing changed.
    return png_answer(png, request, cache_control="private, no-cache")


pages.router.add_route("/alerts/{alert_id}/chart.png", alert_chart, methods=["GET"], name="alert-chart")
