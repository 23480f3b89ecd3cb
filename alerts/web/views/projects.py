"""Projects, and each project's runs table (filter, pick metric columns, page, select to compare)."""

from __future__ import annotations

import time
from typing import Any

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from alerts.model import RunState
from alerts.presentation import run_json
from alerts.web.views.base import PageContext, Pages, find_viewer, login_redirect

pages = Pages()
PAGE_SIZE = 50


@pages.page("/projects", "projects.html")
async def projects(ctx: PageContext) -> dict[str, Any]:
    found = await ctx.service.store.list_projects()
    return {"projects": [p for p in found if ctx.viewer.may_see(p["name"])]}


@pages.page("/projects/{project}", "runs.html")
async def project_runs(ctx: PageContext) -> dict[str, Any]:
    project = ctx.params["project"]
    ctx.viewer.require(project)
    state = ctx.query_choice("state", tuple(s.value for s in RunState))
    tag, name = ctx.query("tag"), ctx.query("name")
    group, job_type = ctx.query("group"), ctx.query("job_type")
    page = ctx.query_int("page", 1, ge=1)
    metrics = ctx.query_list("metrics")
    runs = await ctx.service.store.list_runs(project=project, state=state, tag=tag, limit=10**9)
    if name:  # a substring, as in W&B's search box
        runs = [run for run in runs if name.lower() in run.name.lower() or name.lower() in run.id.lower()]
    if group:  # W&B's grouping of runs (init(group=...)), e.g. the workers of one distributed job
        runs = [run for run in runs if run.group == group]
    if job_type:
        runs = [run for run in runs if run.job_type == job_type]
    total = len(runs)
    shown = runs[(page - 1) * PAGE_SIZE: page * PAGE_SIZE]
    now = time.time()
    keys = sorted({key for run in shown for key in run.summary if not key.startswith("_")})
    rows = []
    for run in shown:
        row = run_json(run, ctx.service.public_url)
        row["duration"] = (run.finished_at or now) - run.started_at
        row["metrics"] = {key: run.summary.get(key) for key in metrics}
        rows.append(row)
    return {"project": project, "runs": rows, "total": total, "page": page, "page_size": PAGE_SIZE,
            "pages": max(1, -(-total // PAGE_SIZE)),
            "filters": {"state": state, "tag": tag, "name": name, "group": group, "job_type": job_type},
            "metrics": metrics, "metric_keys": keys, "states": [s.value for s in RunState]}


async def home(request: Request) -> Response:
    if await find_viewer(request) is None:
        return login_redirect(request)
    return RedirectResponse("/projects", status_code=303)


async def runs_of_project(request: Request) -> Response:
    """``/runs/{project}``: the runs live on the project page."""
    if await find_viewer(request) is None:
        return login_redirect(request)
    return RedirectResponse(f"/projects/{request.path_params['project']}", status_code=303)


pages.router.add_route("/", home, methods=["GET"])
pages.router.add_route("/runs/{project}", runs_of_project, methods=["GET"])
