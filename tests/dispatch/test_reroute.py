"""A reload rebuilds the groups under the new routes (``Dispatcher.reroute``): the timers of a group
that keeps its key, in process, with a fake clock and the flush recorded as the dispatcher hands it over.
"""

from __future__ import annotations

from typing import Any

from alerts.config.settings import AlertsSettings
from alerts.dispatch.groups import Dispatcher, Group
from alerts.dispatch.router import Router
from alerts.model import Alert, AlertSource, AlertStatus, Severity, fingerprint

T0 = 1_800_000_000.0


def router(**defaults: Any) -> Router:
    return Router.from_settings(AlertsSettings.model_validate({
        "channels": {"hook": {"type": "webhook", "url": "http://127.0.0.1:9/"}},
        "defaults": {"channels": ["hook"], "group_by": ["rule"], "repeat_interval": "4h", **defaults}}))


def rule_alert() -> Alert:
    labels = {"alertname": "loss-high", "rule": "loss-high", "source": "rule", "severity": "warning",
              "project": "vision", "run": "r1", "run_name": "r1", "metric": "loss"}
    return Alert(id="a1", fingerprint=fingerprint(labels), source=AlertSource.RULE, project="vision",
                 title="loss high", text="", severity=Severity.WARNING, labels=labels, status=AlertStatus.FIRING,
                 starts_at=T0, rule="loss-high", created_at=T0)


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> float:
        return self.now


async def test_a_reload_that_shortens_a_groups_timer_takes_effect_at_once() -> None:
    """Found by tests/faults/test_dispatch_properties.py: a group that kept its key kept the timer the old
    config had set, so a reload from ``group_interval: 1h`` to ``1m`` (or from a long ``group_wait`` to
    none) left its next flush up to an hour away."""
    clock = Clock()
    flushes: list[tuple[float, list[str]]] = []

    async def flush(groups: list[Group], now: float) -> None:
        flushes.append((now, [group.key for group in groups]))

    dispatcher = Dispatcher(router(group_wait="10m", group_interval="1h"), flush, public_url="http://localhost",
                            clock=clock)
    await dispatcher.submit([rule_alert()], None)
    (key,) = dispatcher.groups
    clock.now += 60
    await dispatcher.reroute(router(group_wait="0s", group_interval="1h"))
    await dispatcher.flush_due()
    assert flushes == [(T0 + 60, [key])], "the new group_wait (none) is over: flushed at once"

    await dispatcher.reroute(router(group_wait="0s", group_interval="1m"))
    clock.now += 60
    await dispatcher.flush_due()
    assert flushes[1:] == [(T0 + 120, [key])], "the next flush follows the new group_interval"

    # A reload that lengthens a timer never postpones the flush the group is waiting for.
    await dispatcher.reroute(router(group_wait="0s", group_interval="1h"))
    clock.now += 60
    await dispatcher.flush_due()
    assert flushes[2:] == [(T0 + 180, [key])]
    assert dispatcher.groups[key].next_flush == T0 + 180 + 3600
