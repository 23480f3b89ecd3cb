"""Reading the service's outbox (``GET /api/v1/notifications``): the state a test waits for, not a guess.

A receiver records a request before the service has its answer, and the service marks the notification
delivered only after that answer, in a batched write: a test that wants ``delivered`` waits for it.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from tests.support.service import ServiceProcess
from tests.support.waiting import eventually


def notifications(service: ServiceProcess, *, status: str | None = None,
                  channels: Iterable[str] | None = None) -> list[dict[str, Any]]:
    """Every notification (of ``channels``, if given) with ``status`` (any, if None), oldest first (those
    of one flush share their ``created_at``: their order among themselves is not defined)."""
    query = "?limit=10000" + (f"&status={status}" if status else "")
    response = service.api("GET", f"/api/v1/notifications{query}")
    assert response.status_code == 200, response.text
    wanted = None if channels is None else set(channels)
    found = [n for n in response.json()["notifications"] if wanted is None or n["channel"] in wanted]
    return found[::-1]


def wait_for_status(service: ServiceProcess, delivery_id: str, status: str,
                    timeout: float = 30.0) -> dict[str, Any]:
    """The notification ``delivery_id`` once its recorded status is ``status``."""
    found = eventually(lambda: {n["id"]: n for n in notifications(service)}.get(delivery_id),
                       lambda notification: notification is not None and notification["status"] == status,
                       timeout=timeout, what=f"notification {delivery_id} {status}")
    assert found is not None
    return found


def wait_settled(service: ServiceProcess, channels: Iterable[str] | None = None, *, count: int | None = None,
                 timeout: float = 60.0) -> list[dict[str, Any]]:
    """Every notification of ``channels`` (all, if None), oldest first, once none is pending (queued or in
    flight) and, with ``count``, at least ``count`` exist.

    Called after a marker that must arrive did: what a flush queued before the marker's is in the outbox
    by then (a flush writes all its notifications in one transaction), so the settled outbox is all that
    was sent before it, and what a receiver holds can be compared with it exactly.
    """
    names = None if channels is None else list(channels)
    return eventually(
        lambda: notifications(service, channels=names),
        lambda found: (count is None or len(found) >= count) and all(n["status"] != "pending" for n in found),
        timeout=timeout, what=f"notifications of {names or 'every channel'} settled")
