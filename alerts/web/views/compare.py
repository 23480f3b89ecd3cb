"""Compare: the selected runs of a project overlaid, one chart per metric, one colour per run."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import HTTPException

from alerts.presentation import run_json
from alerts.web.views.base import PageContext, Pages
from alerts.web.views.run import group_keys

pages = Pages()
MAX_RUNS = 10


@pages.page("/compare", "compare.html")
async def compare(ctx: PageContext) -> dict[str, Any]:
    project = ctx.query("project")
    if project is None:
        raise HTTPException(422, [{"loc": ["query", "project"], "msg": "required", "type": "missing"}])
    ctx.viewer.require(project)
    run_ids = list(dict.fromkeys(ctx.query_list("run")))[:MAX_RUNS]
    runs, keys = [], set()
    for run_id in run_ids:
        run = await ctx.service.store.get_run(project, run_id)
        if run is None:
            raise HTTPException(404, f"unknown run {project}/{run_id}")
        keys.update(await ctx.service.store.metric_keys(run.pk))
        runs.append({**run_json(run, ctx.service.public_url),
                     "series_url": f"/runs/{quote(project, safe='')}/{quote(run.id, safe='')}/series.json"})
    chart_runs = [{"name": r["name"], "series_url": r["series_url"]} for r in runs]
    return {"project": project, "runs": runs, "chart_runs": chart_runs, "groups": group_keys(sorted(keys)),
            "max_runs": MAX_RUNS, "x": ctx.query_choice("x", ("step", "time")) or "step"}
