"""The channel-independent content of a notification, shaped as SPEC §7's alert objects."""

from __future__ import annotations

import math
from datetime import UTC, datetime
from typing import Any

from alerts.model import Alert, Run


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
    url = run_url(public_url, alert.project, run.id) if run else public_url
    return {
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


def group_key(route: str, group_labels: dict[str, str]) -> str:
    """Alertmanager's spelling: ``{route}:{label="value", ...}``."""
    inner = ", ".join(f'{key}="{value}"' for key, value in sorted(group_labels.items()))
    return f"{route}:{{{inner}}}"
