"""The run page's files and artifacts (``_partials/run_files.html``) and their downloads for the browser.

The data comes from the functions behind ``/api/v1`` (``alerts.api.files``); the downloads are the API's,
with the dashboard session instead of a bearer key: ``/runs/{project}/{run_id}/files/{path}`` and
``/artifacts/{project}/{name}/{version}/files/{path}``.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import HTTPException
from starlette.requests import Request
from starlette.responses import Response

from alerts.api.files import (
    artifact_file_download,
    artifacts_json,
    download,
    file_json,
    human_size,
    path_problem,
)
from alerts.model import Run
from alerts.service import Service
from alerts.web.views.base import Pages, error_detail, find_viewer, login_redirect, render

pages = Pages()

MAX_ENTRIES_SHOWN = 200
"""Files listed per artifact version on the page (the API lists them all)."""


def _part(value: str) -> str:
    return quote(value, safe="")


async def files_section(service: Service, run: Run) -> dict[str, Any]:
    """The run's files and the artifact versions it logged and used, with sizes, short digests and links."""
    base = f"/runs/{_part(run.project)}/{_part(run.id)}/files/"
    files = [{**file_json(f, run), "size_text": human_size(f.size), "short": f.sha256[:12],
              "download": base + quote(f.path)} for f in await service.store.list_run_files(run.pk)]
    pairs = await service.store.run_artifacts(run.pk)
    rendered = await artifacts_json(service, [version for _, version in pairs])
    section: dict[str, Any] = {"files": files, "logged": [], "used": []}
    for (relation, version), data in zip(pairs, rendered, strict=True):
        entries = await service.store.artifact_entries(version.pk)
        prefix = f"/artifacts/{_part(version.project)}/{_part(version.name)}/v{version.version}/files/"
        section[relation].append({
            **data, "label": f"{version.name}:v{version.version}", "size_text": human_size(version.size),
            "short": version.digest[:12], "more_entries": max(0, len(entries) - MAX_ENTRIES_SHOWN),
            "entries": [{"path": e.path, "size_text": human_size(e.size), "ref": e.ref,
                         "short": e.sha256[:12] if e.sha256 else None,
                         "download": prefix + quote(e.path) if e.sha256 else None}
                        for e in entries[:MAX_ENTRIES_SHOWN]]})
    return section


async def _viewer_download(request: Request, fetch: Any) -> Response:
    viewer = await find_viewer(request)
    if viewer is None:
        return login_redirect(request)
    try:
        params = request.path_params
        viewer.require(params["project"])
        problem = path_problem(params["path"])
        if problem:
            raise HTTPException(422, f"file path {params['path']!r} {problem}")
        response: Response = await fetch(request.app.state.service, params)
        return response
    except HTTPException as exc:
        return render(request, "error.html", {"status": exc.status_code, "detail": error_detail(exc)}, viewer,
                      status_code=exc.status_code)


async def _run_file(service: Service, params: dict[str, str]) -> Response:
    run = await service.store.get_run(params["project"], params["run_id"])
    if run is None:
        raise HTTPException(404, f"unknown run {params['project']}/{params['run_id']}")
    stored = await service.store.get_run_file(run.pk, params["path"])
    if stored is None:
        raise HTTPException(404, f"run {run.project}/{run.id} has no file {params['path']!r}")
    return download(service, stored.sha256, stored.size, stored.path)


async def _artifact_file(service: Service, params: dict[str, str]) -> Response:
    label = f"{params['project']}/{params['name']}:{params['version']}"
    found = await service.store.find_artifact(params["project"], params["name"], params["version"])
    if found is None:
        raise HTTPException(404, f"artifact {label} does not exist")
    return await artifact_file_download(service, found, params["path"])


async def run_file_download(request: Request) -> Response:
    return await _viewer_download(request, _run_file)


async def artifact_file_download_page(request: Request) -> Response:
    return await _viewer_download(request, _artifact_file)


pages.router.add_route("/runs/{project}/{run_id}/files/{path:path}", run_file_download, methods=["GET"],
                       name="run-file-download")
pages.router.add_route("/artifacts/{project}/{name}/{version}/files/{path:path}", artifact_file_download_page,
                       methods=["GET"], name="artifact-file-download")
