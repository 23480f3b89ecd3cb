"""How the service shows its objects: alert objects (SPEC §7), runs, notifications, URLs and times.

One neutral home for presentation: the rule engine, the JSON API, the dashboard and the channels all
import it, so evaluation never reaches into delivery (``rules/`` imports nothing from ``notify/``).
"""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

import orjson

from alerts.model import Alert, AlertSource, Notification, Run


def json_bytes(value: Any, *, indent: bool = False) -> bytes:
    """JSON for answers and pages, by orjson: NaN and infinities become null, keys strings.

    Integers past 64 bits are JSON (and a run's config may hold them: it is the user's), but orjson
    refuses them; the rare value that has one is written with those integers spelled out.
    """
    option = orjson.OPT_NON_STR_KEYS | (orjson.OPT_INDENT_2 if indent else 0)
    try:
        return orjson.dumps(value, option=option)
    except TypeError:  # orjson.JSONEncodeError is one
        return orjson.dumps(_big_ints_spelled(value), option=option)


def _big_ints_spelled(value: Any) -> Any:
    if type(value) is int and not -(2**63) <= value < 2**64:
        return orjson.Fragment(str(value))
    if isinstance(value, dict):
        return {key: _big_ints_spelled(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [_big_ints_spelled(item) for item in value]
    return value


def iso(ts: float | None) -> str | None:
    """UNIX seconds as ``2026-11-28T17:00:00Z`` (milliseconds kept when present)."""
    if ts is None:
        return None
    moment = datetime.fromtimestamp(ts, tz=UTC)
    text = moment.isoformat(timespec="milliseconds" if moment.microsecond else "seconds")
    return text.replace("+00:00", "Z")


def json_float(value: float | None) -> float | str | None:
    """JSON has no NaN/Infinity: spell them as the protocol does."""
    if value is None or math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")


def run_url(public_url: str, project: str, run_id: str) -> str:
    return f"{public_url.rstrip('/')}/runs/{project}/{run_id}"


def alert_object(alert: Alert, run: Run | None, public_url: str) -> dict[str, Any]:
    if run is not None:
        url = run_url(public_url, alert.project, run.id)
    elif alert.source is AlertSource.PROMETHEUS:  # no run: the alert's own page
        url = f"{public_url.rstrip('/')}/alerts/{alert.id}"
    else:
        url = public_url
    shown: dict[str, Any] = {
        "id": alert.id,
        "fingerprint": alert.fingerprint,
        "status": alert.status.value,
        "source": alert.source.value,
        "rule": alert.rule,
        "title": alert.title,
        "text": alert.text,
        "severity": alert.severity.value,
        "labels": dict(alert.labels),
        "project": alert.project,
        "run": {"id": run.id, "name": run.name, "url": url, "state": run.state.value} if run else None,
        "metric": alert.metric,
        "value": json_float(alert.value),
        "threshold": json_float(alert.threshold),
        "step": alert.step,
        "starts_at": iso(alert.starts_at),
        "ends_at": iso(alert.ends_at),
        "url": url,
        "suppressed_count": alert.suppressed_count,
        "delayed": alert.delayed,
        "resolved_reason": alert.resolved_reason,
    }
    if alert.source is AlertSource.PROMETHEUS:
        shown["annotations"] = dict(alert.annotations or {})
        shown["generator_url"] = alert.generator_url
    return shown


def run_json(run: Run, public_url: str) -> dict[str, Any]:
    return {
        "project": run.project, "id": run.id, "name": run.name, "state": run.state.value,
        "url": run_url(public_url, run.project, run.id), "config": run.config, "tags": run.tags,
        "notes": run.notes, "group": run.group, "job_type": run.job_type, "summary": run.summary,
        "created_at": iso(run.created_at), "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at), "last_contact": iso(run.last_contact),
        "exit_code": run.exit_code, "failure_reason": run.failure_reason,
        "console_tail": run.console_tail, "last_seq": run.last_seq, "host": run.host, "pid": run.pid,
        "system": run.system, "stop_request": stop_json(run.stop_request),
    }


def stop_json(request: dict[str, Any] | None) -> dict[str, Any] | None:
    """A run's stop request as the API shows it (and the SDK reads it from its answers)."""
    if request is None:
        return None
    return {"by": request.get("by"), "rule": request.get("rule"), "reason": request.get("reason"),
            "step": request.get("step"), "at": iso(request.get("at"))}


def history_row_json(row: dict[str, Any]) -> dict[str, Any]:
    return {key: json_float(value) if isinstance(value, float) else value for key, value in row.items()}


def notification_json(notification: Notification) -> dict[str, Any]:
    return {
        "id": notification.id, "channel": notification.channel, "group_key": notification.group_key,
        "status": notification.status.value, "attempts": notification.attempts,
        "next_attempt_at": iso(notification.next_attempt_at), "last_error": notification.last_error,
        "created_at": iso(notification.created_at), "delivered_at": iso(notification.delivered_at),
        "message": notification.message,
    }


def human_duration(seconds: float) -> str:
    """``45s``, ``12m 05s``, ``3h 20m``, ``2d 4h``: how long something ran, for people."""
    whole = int(max(0.0, seconds))
    if whole < 60:
        return f"{whole}s"
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    if whole < 86400:
        return f"{whole // 3600}h {whole % 3600 // 60:02d}m"
    return f"{whole // 86400}d {whole % 86400 // 3600}h"
