"""The run page: charts per metric with rule thresholds, compare rules' statistics and alert markers, and
everything else stored about the run (config, summary, system info, events, media, failure). Also its series
and comparison endpoints."""

from __future__ import annotations

import fnmatch
from typing import Any

from fastapi import HTTPException
from fastapi.exceptions import RequestValidationError
from starlette.responses import RedirectResponse, Response

from alerts.api.series import WIDTH_DEFAULT, WIDTH_MAX, WIDTH_MIN, series_json
from alerts.model import Alert, Run
from alerts.presentation import alert_object, iso, run_json
from alerts.rules.loader import Rule
from alerts.rules.spec import Comparison
from alerts.web.views.base import PageContext, Pages, render
from alerts.web.views.run_comparison import comparison_json, comparisons_for
from alerts.web.views.run_files import files_section
from alerts.web.views.run_files import pages as file_pages
from alerts.web.views.run_media import media_sections
from alerts.web.views.run_stop import actor, read_reason, require_stop, run_path, stop_section

pages = Pages()
pages.router.include_router(file_pages.router)  # the downloads of the files section

GROUP_ORDER = ("train", "val", "test", "eval")
"""Key prefixes shown first, in this order; other prefixes follow by name, ``system/`` last."""


async def find_run(ctx: PageContext, project: str, run_id: str) -> Run:
    ctx.viewer.require(project)
    run = await ctx.service.store.get_run(project, run_id)
    if run is None:
        raise HTTPException(404, f"unknown run {project}/{run_id}")
    return run


def group_keys(keys: list[str]) -> list[dict[str, Any]]:
    """Metric keys grouped by the prefix before their first ``/`` (W&B's sections)."""
    groups: dict[str, list[str]] = {}
    for key in sorted(keys):
        prefix, sep, _rest = key.partition("/")
        groups.setdefault(prefix if sep else "", []).append(key)

    def rank(name: str) -> tuple[int, str]:
        if name in GROUP_ORDER:
            return (0, f"{GROUP_ORDER.index(name):02d}")
        return (2, name) if name == "system" else (1, name)

    return [{"name": name or "metrics", "metrics": groups[name]} for name in sorted(groups, key=rank)]


def rule_applies(rule: Rule, run: Run) -> bool:
    return rule.spec.where.matches(run.project, run.id, run.name, run.tags, run.config, run.group, run.job_type)


def thresholds_for(rules: list[Rule], run: Run, keys: list[str]) -> dict[str, list[dict[str, Any]]]:
    """For each key, the comparison rules that apply to this run: their line on the chart."""
    lines: dict[str, list[dict[str, Any]]] = {}
    for rule in rules:
        spec = rule.spec
        if not isinstance(spec.when, Comparison) or not spec.metric or not rule_applies(rule, run):
            continue
        for key in keys:
            if key == spec.metric or fnmatch.fnmatchcase(key, spec.metric):
                lines.setdefault(key, []).append({
                    "rule": spec.name, "value": spec.when.threshold, "op": spec.when.op,
                    "severity": spec.severity.value, "condition": spec.condition_text})
    return lines


async def markers_for(ctx: PageContext, run: Run, alerts: list[Alert]) -> dict[str, list[dict[str, Any]]]:
    """For each key, where its alerts fired and resolved (step and time), linking to the alert."""
    ended = [a.ends_at for a in alerts if a.metric and a.ends_at is not None]
    steps = await ctx.service.store.steps_at(run.pk, ended) if ended else {}
    markers: dict[str, list[dict[str, Any]]] = {}
    for alert in alerts:
        if not alert.metric:
            continue
        markers.setdefault(alert.metric, []).append({
            "alert": alert.id, "title": alert.title, "severity": alert.severity.value, "status": alert.status.value,
            "rule": alert.rule, "fired_step": alert.step, "fired_at": alert.starts_at,
            "resolved_step": steps.get(alert.ends_at) if alert.ends_at is not None else None,
            "resolved_at": alert.ends_at, "url": f"/alerts/{alert.id}"})
    return markers


def system_rows(run: Run) -> list[tuple[str, str]]:
    """The run's system info as W&B's overview shows it: one labelled line per fact known."""
    info = run.system or {}
    found_git = info.get("git")
    git: dict[str, Any] = found_git if isinstance(found_git, dict) else {}
    gpus = [g.get("name", "?") for g in info.get("gpus") or [] if isinstance(g, dict)]
    memory = info.get("memory_total")
    rows = [
        ("OS", info.get("os")),
        ("Python", " ".join(str(v) for v in (info.get("python_implementation"), info.get("python")) if v) or None),
        ("Program", " ".join([str(info["program"]), *map(str, info.get("args") or [])]) if info.get("program")
         else None),
        ("Working directory", info.get("cwd")),
        ("Git remote", git.get("remote")),
        ("Git commit", (f"{str(git['commit'])[:12]}" + (" (dirty)" if git.get("dirty") else "")
                        + (f" on {git['branch']}" if git.get("branch") else "")) if git.get("commit") else None),
        ("Host", run.host or info.get("host")),
        ("PID", run.pid),
        ("CPUs", (f"{info['cpu_count']}" + (f" ({info['cpu_count_physical']} physical)"
                                            if info.get("cpu_count_physical") else "")) if info.get("cpu_count")
         else None),
        ("Memory", f"{memory / 2**30:.1f} GiB" if isinstance(memory, int | float) else None),
        ("GPUs", f"{len(gpus)} × {', '.join(sorted(set(gpus)))}" if gpus else None),
        ("GPU driver", info.get("gpu_driver")),
        ("CUDA", info.get("cuda_version")),
        ("Executable", info.get("executable")),
        ("Group", run.group),
        ("Job type", run.job_type),
    ]
    return [(label, str(value)) for label, value in rows if value not in (None, "")]


@pages.page("/runs/{project}/{run_id}", "run.html")
async def run_page(ctx: PageContext) -> dict[str, Any]:
    run = await find_run(ctx, ctx.params["project"], ctx.params["run_id"])
    store = ctx.service.store
    keys = await store.metric_keys(run.pk)
    alerts = await store.list_alerts(project=run.project, run_pk=run.pk, limit=10_000)
    events = await store.list_run_events(run.pk)
    media = await store.list_media(run.pk)
    public_url = ctx.service.public_url
    return {
        "run": run_json(run, public_url),
        "duration": (run.finished_at or run.last_contact) - run.started_at,
        "groups": group_keys(keys),
        "thresholds": thresholds_for(ctx.service.rules.rules, run, keys),
        "comparisons": comparisons_for(ctx.service.rules.rules, run, keys),
        "markers": await markers_for(ctx, run, alerts),
        "alerts": [alert_object(a, run, public_url) for a in alerts],
        "system": system_rows(run),
        "events": [{"state": e.state.value, "reason": e.reason, "at": iso(e.at)} for e in events],
        "media": media_sections(media),
        "run_files": await files_section(ctx.service, run),
        "focus_step": ctx.query_int("step", -1, ge=-1) if ctx.query("step") else None,
        "x": ctx.query_choice("x", ("step", "time")) or "step",
        "stop": stop_section(ctx.viewer, run),
    }


@pages.page("/runs/{project}/{run_id}/header", "_partials/run_header.html")
async def run_header(ctx: PageContext) -> dict[str, Any]:
    """What changes while a run runs (state, summary, last contact): refreshed by htmx."""
    run = await find_run(ctx, ctx.params["project"], ctx.params["run_id"])
    return {"run": run_json(run, ctx.service.public_url),
            "duration": (run.finished_at or run.last_contact) - run.started_at,
            "stop": stop_section(ctx.viewer, run)}


@pages.action("/runs/{project}/{run_id}/stop")
async def stop_run(ctx: PageContext) -> Response:
    """The Stop form: ask the run to stop, then back to its page (POST/redirect/GET); a missing or
    overlong reason shows the page again with the form open and what was wrong."""
    project, run_id = ctx.params["project"], ctx.params["run_id"]
    require_stop(ctx.viewer, project)
    reason, error = read_reason(await ctx.request.form())
    if error is not None:
        data = await run_page(ctx)
        data["stop"].update(form={"reason": reason}, error=error)
        return render(ctx.request, "run.html", data, ctx.viewer, status_code=422)
    run = await ctx.service.runs.get_run(project, run_id)  # the copy ingest answers the SDK from, when cached
    if run is None:
        raise HTTPException(404, f"unknown run {project}/{run_id}")
    # A run asked before, or ended meanwhile, is left as it is; its page then says why.
    await ctx.service.stopper.stop(run, by=f"dashboard ({actor(ctx.viewer)})", reason=reason)
    return RedirectResponse(run_path(run), status_code=303)


@pages.data("/runs/{project}/{run_id}/series.json")
async def run_series(ctx: PageContext) -> dict[str, Any]:
    """The chart data the run and compare pages fetch: the API's series endpoint, with a session."""
    run = await find_run(ctx, ctx.params["project"], ctx.params["run_id"])
    key = ctx.query("key")
    if key is None:
        raise HTTPException(422, [{"loc": ["query", "key"], "msg": "required", "type": "missing"}])
    x = ctx.query_choice("x", ("step", "time")) or "step"
    width = ctx.query_int("width", WIDTH_DEFAULT, ge=WIDTH_MIN, le=WIDTH_MAX)
    bounds = [ctx.query_float(name) for name in ("start", "end")]
    try:
        return await series_json(ctx.service, run, key, "time" if x == "time" else "step", width, *bounds)
    except RequestValidationError as exc:
        raise HTTPException(422, list(exc.errors())) from None


@pages.data("/runs/{project}/{run_id}/comparison.json")
async def run_comparison(ctx: PageContext) -> dict[str, Any]:
    """What the run's chart of ``key`` draws of the compare rules that judge it (step axis only; the
    ``width``, ``start`` and ``end`` of series.json): see ``run_comparison.py``."""
    run = await find_run(ctx, ctx.params["project"], ctx.params["run_id"])
    key = ctx.query("key")
    if key is None:
        raise HTTPException(422, [{"loc": ["query", "key"], "msg": "required", "type": "missing"}])
    width = ctx.query_int("width", WIDTH_DEFAULT, ge=WIDTH_MIN, le=WIDTH_MAX)
    start, end = ctx.query_float("start"), ctx.query_float("end")
    if start is not None and end is not None and start > end:
        raise HTTPException(422, [{"loc": ["query", "end"], "msg": f"must not be less than start ({start})",
                                   "type": "value_error"}])
    return await comparison_json(ctx.service, run, key, width, start, end)
