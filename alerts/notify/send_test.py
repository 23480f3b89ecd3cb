"""``alerts send-test CHANNEL``: one sample notification straight through a channel, no outbox."""

from __future__ import annotations

import time
import uuid
from typing import TextIO

from alerts.config.settings import AlertsSettings
from alerts.errors import PermanentDeliveryError, RecoverableDeliveryError
from alerts.model import Notification
from alerts.notify.channels import ChannelContext, build_channels
from alerts.notify.message import group_key
from alerts.presentation import iso
from alerts.storage import open_store


def sample_message(public_url: str) -> dict[str, object]:
    now = time.time()
    labels = {"alertname": "runwatch-test", "rule": "runwatch-test", "source": "rule", "severity": "info",
              "project": "test", "run": "test-run", "run_name": "send-test", "metric": "test/metric"}
    url = f"{public_url.rstrip('/')}/runs/test/test-run"
    return {"status": "firing", "group_labels": {"alertname": "runwatch-test"}, "truncated_alerts": 0, "alerts": [{
        "id": str(uuid.uuid4()), "fingerprint": "0000000000000000", "status": "firing", "source": "rule",
        "rule": "runwatch-test", "title": "Runwatch test notification",
        "text": "If you can read this, the channel works.", "severity": "info", "labels": labels,
        "project": "test", "run": {"id": "test-run", "name": "send-test", "url": url, "state": "running"},
        "metric": "test/metric", "value": 1.0, "threshold": 0.5, "step": 1, "starts_at": iso(now),
        "ends_at": None, "url": url, "suppressed_count": 0, "delayed": False, "resolved_reason": None}]}


async def send_test(settings: AlertsSettings, channel: str, *, out: TextIO) -> int:
    if channel not in settings.channels:
        print(f"error: unknown channel {channel!r} (configured: {', '.join(sorted(settings.channels))})", file=out)
        return 1
    public_url = settings.server.public_url or f"http://{settings.server.host}:{settings.server.port}"
    store = open_store(settings.storage.url)
    await store.open()
    channels = build_channels(settings, ChannelContext(settings.delivery.timeout, public_url, store))
    notification = Notification(id=str(uuid.uuid4()), channel=channel,
                                group_key=group_key("send-test", {"alertname": "runwatch-test"}),
                                message=sample_message(public_url), created_at=time.time())
    try:
        await channels[channel].send(notification)
        if channels[channel].keeps_incidents:  # close the incident the test opened, so nobody is paged for it
            await channels[channel].send(_resolved(notification))
    except RecoverableDeliveryError as exc:
        print(f"error (temporary, would be retried): {exc}", file=out)
        return 1
    except PermanentDeliveryError as exc:
        print(f"error (permanent): {exc}", file=out)
        return 1
    finally:
        for live in channels.values():
            await live.aclose()
        await store.close()
    closed = " and resolved again" if channels[channel].keeps_incidents else ""
    print(f"ok: test notification delivered to {channel}{closed} (delivery {notification.id})", file=out)
    return 0


def _resolved(firing: Notification) -> Notification:
    now = time.time()
    alerts = [{**alert, "status": "resolved", "ends_at": iso(now), "resolved_reason": "test over"}
              for alert in firing.message["alerts"]]
    return Notification(id=str(uuid.uuid4()), channel=firing.channel, group_key=firing.group_key,
                        message={**firing.message, "status": "resolved", "alerts": alerts}, created_at=now)
