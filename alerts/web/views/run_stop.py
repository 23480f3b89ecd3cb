"""The run page's Stop: who may stop a run from the dashboard, the form's data, and what the page says
once a stop was asked (``alerts.actions.stop``).

The form posts to ``/runs/{project}/{run_id}/stop`` (``views/run.py``), which asks the service's
:class:`~alerts.actions.stop.RunStopper` as the API's ``POST /api/v1/runs/{project}/{run_id}/stop`` does,
under the same rule: admin keys only.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import HTTPException
from pydantic import ValidationError
from starlette.datastructures import FormData

from alerts.api.schemas import StopBody
from alerts.model import Run, RunState, stop_text
from alerts.web.views.base import Viewer


def may_stop(viewer: Viewer, project: str) -> bool:
    """What the API asks of a stop (``require_admin``, ``require_project``)."""
    return viewer.key.admin and viewer.may_see(project)


def require_stop(viewer: Viewer, project: str) -> None:
    if not may_stop(viewer, project):
        raise HTTPException(403, "only an admin key may stop a run: log in with one")


def actor(viewer: Viewer) -> str:
    """The login as the dashboard names it (the navigation bar's ``admin key · 3``)."""
    key = viewer.key
    return f"admin key {key.id}" if key.admin else f"project {key.project} key {key.id}"


def run_path(run: Run) -> str:
    return f"/runs/{quote(run.project, safe='')}/{quote(run.id, safe='')}"


def read_reason(form: FormData) -> tuple[str, str | None]:
    """The reason typed, and what is wrong with it (None when it will do)."""
    value = form.get("reason")
    reason = value.strip() if isinstance(value, str) else ""
    if not reason:
        return reason, "give a reason: it is shown on the run page and becomes the run's failure reason"
    try:
        StopBody.model_validate({"reason": reason})  # the API's limits
    except ValidationError as exc:
        limit = (exc.errors()[0].get("ctx") or {}).get("max_length")
        return reason, (f"the reason is {len(reason)} characters long; at most {limit} fit" if limit
                        else f"the reason will not do: {exc.errors()[0]['msg']}")
    return reason, None


def _afterwards(run: Run, request: dict[str, Any]) -> str | None:
    """What a stopped run's failure reason adds to the request (``model.stopped_reason``): what its
    process reported while stopping, e.g. ``then failed: ...``."""
    if run.state is not RunState.STOPPED or not run.failure_reason:
        return None
    told = f"stopped {stop_text(request)}"
    if not run.failure_reason.startswith(told):
        return run.failure_reason
    return run.failure_reason.removeprefix(told).removeprefix("; ") or None


def stop_section(viewer: Viewer, run: Run) -> dict[str, Any]:
    """The run page's ``stop``: whether this viewer gets the Stop button (a running run not yet asked, an
    admin key), the empty form, and the request in force as text (linking the rule that asked, if one did)."""
    request = run.stop_request
    rule = request.get("rule") if request else None
    return {
        "can_stop": run.state is RunState.RUNNING and request is None and may_stop(viewer, run.project),
        "action": f"{run_path(run)}/stop",
        "form": {"reason": ""},
        "error": None,
        "text": stop_text(request) if request else None,
        "rule_url": f"/rules#rule-{rule}" if rule else None,
        "afterwards": _afterwards(run, request) if request else None,
    }
