"""JSON shapes of what the API returns."""

from __future__ import annotations

from typing import Any

from alerts.model import Notification, Run
from alerts.notify.message import iso, json_float, run_url


def run_json(run: Run, public_url: str) -> dict[str, Any]:
    return {
        "project": run.project, "id": run.id, "name": run.name, "state": run.state.value,
        "url": run_url(public_url, run.project, run.id), "config": run.config, "tags": run.tags,
        "notes": run.notes, "group": run.group, "job_type": run.job_type, "summary": run.summary,
        "created_at": iso(run.created_at), "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at), "last_contact": iso(run.last_contact),
        "exit_code": run.exit_code, "failure_reason": run.failure_reason,
        "console_tail": run.console_tail, "last_seq": run.last_seq, "host": run.host, "pid": run.pid,
    }


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
