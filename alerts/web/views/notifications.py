"""The notification outbox: what was sent where, how often it was tried, and why it failed.

The JSON API's ``/api/v1/notifications`` is for admins. Here a project key sees the notifications
whose alerts all belong to its project (a group routed by ``[severity]`` alone may mix projects; such a
message stays with the admins).
"""

from __future__ import annotations

from typing import Any

from alerts.model import Notification, NotificationStatus
from alerts.presentation import notification_json
from alerts.web.views.base import PageContext, Pages, Viewer

pages = Pages()
PAGE_SIZE = 100
SCAN_LIMIT = 10_000
"""The newest notifications a listing looks at (the page says so when there are more)."""
STATUSES = tuple(status.value for status in NotificationStatus)


def message_alerts(notification: Notification) -> list[dict[str, Any]]:
    """The alert objects a notification carries (``message["alerts"]``, see ``notify.pipeline``)."""
    alerts = notification.message.get("alerts") if isinstance(notification.message, dict) else None
    return [alert for alert in alerts if isinstance(alert, dict)] if isinstance(alerts, list) else []


def visible_to(viewer: Viewer, notification: Notification) -> bool:
    if viewer.key.admin:
        return True
    alerts = message_alerts(notification)
    return bool(alerts) and all(alert.get("project") == viewer.key.project for alert in alerts)


def notification_row(notification: Notification) -> dict[str, Any]:
    alerts = message_alerts(notification)
    return {**notification_json(notification),
            "alerts": [{"id": a.get("id"), "title": a.get("title"), "status": a.get("status"),
                        "project": a.get("project"), "rule": a.get("rule")} for a in alerts],
            "retrying": notification.status is NotificationStatus.PENDING and notification.attempts > 0}


async def notification_rows(ctx: PageContext, *, status: str | None = None, channel: str | None = None,
                            alert_id: str | None = None) -> list[dict[str, Any]]:
    """The viewer's notifications matching the filters, newest first (from the newest ``SCAN_LIMIT``)."""
    found = await ctx.service.store.list_notifications(status=status, limit=SCAN_LIMIT)
    return [notification_row(n) for n in found
            if visible_to(ctx.viewer, n) and (channel is None or n.channel == channel)
            and (alert_id is None or any(a.get("id") == alert_id for a in message_alerts(n)))]


@pages.page("/notifications", "notifications.html")
async def notifications(ctx: PageContext) -> dict[str, Any]:
    filters = {"status": ctx.query_choice("status", STATUSES), "channel": ctx.query("channel"),
               "alert": ctx.query("alert")}
    page = ctx.query_int("page", 1, ge=1)
    rows = await notification_rows(ctx, status=filters["status"], channel=filters["channel"],
                                   alert_id=filters["alert"])
    total = len(rows)
    return {"notifications": rows[(page - 1) * PAGE_SIZE: page * PAGE_SIZE], "total": total, "page": page,
            "page_size": PAGE_SIZE, "pages": max(1, -(-total // PAGE_SIZE)), "filters": filters,
            "choices": {"statuses": list(STATUSES), "channels": sorted(ctx.service.channels)}}
