"""Silences: the list, the form with a live preview of what it would mute, create and expire.

Creating and expiring go through the JSON API's own functions (``alerts.api.silences``), so a
dashboard silence obeys the same rules: a project key may only silence its own project (an equality
matcher on ``project``). Form problems come back to the form, naming the field and the line.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from fastapi import HTTPException
from pydantic import ValidationError
from starlette.datastructures import FormData
from starlette.responses import RedirectResponse, Response

from alerts.api.silences import SilenceBody, add_silence, check_scope, expire_silence, list_silences
from alerts.silence.matchers import Matcher, MatcherError
from alerts.web.views.alerts import SCAN_LIMIT, stored_row
from alerts.web.views.base import PageContext, Pages, _json, render

pages = Pages()
STATES = ("active", "pending", "expired")
DEFAULT_DURATION = "2h"
FormErrors = list[dict[str, Any]]
"""``{"field", "line" (or None), "message"}`` each."""


def form_error(field: str, message: str, line: int | None = None) -> dict[str, Any]:
    return {"field": field, "line": line, "message": message}


def parse_lines(text: str) -> tuple[list[Matcher], FormErrors]:
    """Matchers from the textarea, one per line (blank lines skipped); errors name the line."""
    matchers: list[Matcher] = []
    errors: FormErrors = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            matchers.append(Matcher.parse(line))
        except MatcherError as exc:
            errors.append(form_error("matchers", str(exc), number))
    return matchers, errors


def _text(form: FormData, name: str) -> str:
    value = form.get(name)
    return value if isinstance(value, str) else ""


def form_values(form: FormData) -> dict[str, str]:
    """What the user typed, to show it again. Repeated ``matcher`` fields become further lines of the
    textarea, so the line an error names is the line the form shows."""
    extra = [v for v in form.getlist("matcher") if isinstance(v, str) and v.strip()]
    text = _text(form, "matchers").rstrip("\n")
    return {"matchers": "\n".join(([text] if text else []) + extra), "duration": _text(form, "duration").strip(),
            "ends_at": _text(form, "ends_at").strip(), "created_by": _text(form, "created_by").strip(),
            "comment": _text(form, "comment").strip()}


def parse_end(text: str) -> float:
    """``2026-12-02T13:04`` (what ``<input type=datetime-local>`` sends), read as UTC; ``ValueError`` if not."""
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(f"invalid end {text!r}: expected a UTC date and time, e.g. 2026-12-02T13:04") from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


async def preview(ctx: PageContext, text: str) -> dict[str, Any]:
    """The firing alerts the viewer can see that these matchers would mute if the silence started now."""
    matchers, errors = parse_lines(text)
    scope_error = None
    if matchers and not errors:
        try:
            check_scope(ctx.viewer.key, matchers)
        except HTTPException as exc:
            scope_error = str(exc.detail)
    if errors or not matchers:
        return {"matchers": [], "errors": errors, "scope_error": scope_error, "alerts": []}
    project = None if ctx.viewer.key.admin else ctx.viewer.key.project
    firing = await ctx.service.store.list_alerts(project=project, status="firing", limit=SCAN_LIMIT)
    muted = [a for a in firing if all(m.matches(a.labels) for m in matchers)]
    runs = await ctx.service.store.get_runs_by_pk(sorted({a.run_pk for a in muted if a.run_pk is not None}))
    now = time.time()
    return {"matchers": [str(m) for m in matchers], "errors": [], "scope_error": scope_error,
            "alerts": [stored_row(a, runs.get(a.run_pk) if a.run_pk is not None else None, ctx.service.public_url,
                                  now, ctx) for a in muted]}


@pages.page("/silences", "silences.html")
async def silences(ctx: PageContext) -> dict[str, Any]:
    state = ctx.query_choice("state", STATES)
    found = [s for s in (await list_silences(ctx.viewer.key, ctx.service, None))["silences"]
             if state is None or s["state"] == state]
    project = None if ctx.viewer.key.admin else ctx.viewer.key.project
    firing = await ctx.service.store.list_alerts(project=project, status="firing", limit=SCAN_LIMIT)
    now = time.time()
    muting: dict[str, int] = {}
    for alert in firing:
        for silence_id in ctx.service.silences.silencer.muting(alert.labels, now):
            muting[silence_id] = muting.get(silence_id, 0) + 1
    rows = [{**s, "muting": muting.get(s["id"], 0)} for s in sorted(found, key=lambda s: s["ends_at"], reverse=True)]
    return {"silences": rows, "filters": {"state": state}, "states": list(STATES), "created": ctx.query("created")}


def _new_form(values: dict[str, str], errors: FormErrors, shown: dict[str, Any]) -> dict[str, Any]:
    return {"form": values, "errors": errors, "preview": shown,
            "default_duration": DEFAULT_DURATION}


@pages.page("/silences/new", "silence_new.html")
async def new_silence_form(ctx: PageContext) -> dict[str, Any]:
    # Not query_list: a matcher value may contain a comma.
    matchers = "\n".join(v for v in ctx.request.query_params.getlist("matcher") if v.strip())
    values = {"matchers": matchers, "duration": DEFAULT_DURATION, "ends_at": "", "created_by": ctx.viewer.key.id,
              "comment": ""}
    return _new_form(values, [], await preview(ctx, matchers))


def _body_errors(exc: ValidationError) -> FormErrors:
    """``SilenceBody``'s complaints: its field names are the form's."""
    return [form_error(str((error.get("loc") or ("form",))[0]), str(error["msg"]).removeprefix("Value error, "))
            for error in exc.errors()]


def _api_errors(exc: HTTPException) -> FormErrors:
    """The API's 4xx (scope, times, the "mutes everything" check) as form errors."""
    if not isinstance(exc.detail, list):
        return [form_error("matchers", str(exc.detail))]
    errors: FormErrors = []
    for error in exc.detail:
        loc = [part for part in error.get("loc", []) if part != "body"]
        message = str(error.get("msg", ""))
        field = str(loc[0]) if loc else message.partition(":")[0] if ":" in message else "form"
        errors.append(form_error(field, message.removeprefix(f"{field}: ")))
    return errors


@pages.action("/silences/new")
async def create(ctx: PageContext) -> Response:
    form = await ctx.request.form()
    values = form_values(form)
    matchers, errors = parse_lines(values["matchers"])
    if not matchers and not errors:
        errors.append(form_error("matchers", "give at least one matcher, one per line (e.g. project=vision)"))
    body: SilenceBody | None = None
    ends_at: float | None = None
    if values["ends_at"]:
        try:
            ends_at = parse_end(values["ends_at"])
        except ValueError as exc:
            errors.append(form_error("ends_at", str(exc)))
    elif not values["duration"]:
        errors.append(form_error("duration", "give a duration (e.g. 2h) or an end"))
    if not errors:
        try:
            body = SilenceBody.model_validate({
                "matchers": [str(m) for m in matchers], "ends_at": ends_at,
                "duration": None if ends_at is not None else values["duration"],
                "created_by": values["created_by"], "comment": values["comment"]})
        except ValidationError as exc:
            errors += _body_errors(exc)
    status = 422
    if body is not None:
        try:
            created = await add_silence(body, ctx.viewer.key, ctx.service)
        except HTTPException as exc:
            errors, status = _api_errors(exc), exc.status_code
        else:
            return RedirectResponse(f"/silences?created={created['id']}#silence-{created['id']}", status_code=303)
    data = _new_form(values, errors, await preview(ctx, values["matchers"]))
    return render(ctx.request, "silence_new.html", data, ctx.viewer, status_code=status)


@pages.action("/silences/preview")
async def silence_preview(ctx: PageContext) -> Response:
    """The preview as an HTML fragment (htmx swaps it into the form as the user types), or as JSON for
    ``Accept: application/json``."""
    form = await ctx.request.form()
    shown = await preview(ctx, form_values(form)["matchers"])
    if ctx.request.headers.get("HX-Request") is None and "application/json" in ctx.request.headers.get("Accept", ""):
        return _json(shown)
    return render(ctx.request, "_partials/silence_preview.html", {"preview": shown}, ctx.viewer)


@pages.action("/silences/{silence_id}/expire")
async def expire(ctx: PageContext) -> Response:
    await expire_silence(ctx.params["silence_id"], ctx.viewer.key, ctx.service)
    return RedirectResponse("/silences", status_code=303)
